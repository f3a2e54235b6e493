"""Which model a posterior was fitted to: a hash of the model's definition, and the check on use.

A posterior is only the posterior of the model it was fitted to. ``raisim calibrate`` writes
:func:`model_sha256` into the posterior's ``manifest.json``; every reader of a posterior
(:func:`raisim.io.parameter_draws.load_posterior`) compares it with the model it runs now and
logs one warning per posterior and process when they differ (or when the manifest has no hash).

"The model" is what changes the numbers a posterior's draws produce: the parameter cards
(``models/biology``, ``models/drugs``, ``models/calibration``), the trials table the fit saw
(``models/data/trials.csv`` and any other table in ``models/data``) and the code of the
biology blocks, the solve, the engine's outcome rules and the protocols (``raisim/biology``,
``raisim/core``, ``raisim/engine``, ``raisim/protocol``). Edits that cannot change a number do not
change the hash: cards are hashed as parsed YAML (comments and layout ignored), Python as its
syntax tree without docstrings (comments, formatting and documentation ignored).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import logging
from pathlib import Path

import yaml

_LOG = logging.getLogger(__name__)

#: Code packages of the model, relative to the ``raisim`` package.
MODEL_PACKAGES = ("biology", "core", "engine", "protocol")
#: Single modules of the model outside those packages: what a calibration target is (the arm
#: probabilities an emulator learns) and how parameter values become a model's overrides.
MODEL_MODULES = ("calibration/targets.py", "io/parameter_draws.py")
#: Card and data folders of the model, relative to ``models/``.
MODEL_FOLDERS = ("biology", "drugs", "calibration", "data")
#: The key of the hash in a posterior's ``manifest.json``.
MANIFEST_KEY = "model_sha256"
#: The key of the per-file digests in a posterior's ``manifest.json`` (the warning names what changed).
MANIFEST_FILES_KEY = "model_files_sha256"


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _digest_python(text: str) -> str:
    tree = _strip_docstrings(ast.parse(text))
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _digest_yaml(text: str) -> str:
    return json.dumps(yaml.safe_load(text), sort_keys=True, default=str)


def model_files(package_dir: Path, models_dir: Path) -> list[tuple[str, Path]]:
    """The files that define the model, as (name in the hash, path), sorted by name.

    ``package_dir``: the ``raisim`` package folder; ``models_dir``: the ``models`` folder.
    """
    out = []
    for pkg in MODEL_PACKAGES:
        for p in (package_dir / pkg).rglob("*.py"):
            out.append((f"raisim/{p.relative_to(package_dir).as_posix()}", p))
    out += [(f"raisim/{m}", package_dir / m) for m in MODEL_MODULES]
    for folder in MODEL_FOLDERS:
        for p in (models_dir / folder).rglob("*"):
            if p.is_file() and p.suffix in (".yaml", ".csv"):
                out.append((f"models/{p.relative_to(models_dir).as_posix()}", p))
    return sorted(out)


def model_digests(package_dir: Path | None = None, models_dir: Path | None = None) -> dict[str, str]:
    """SHA-256 hex digest of each file of the model (:func:`model_files`), by its name in the hash.

    Arguments as :func:`model_sha256`.
    """
    if package_dir is None and models_dir is None:
        return dict(_current_digests())
    from .cards import MODELS_DIR

    return _digests(package_dir or Path(__file__).resolve().parents[1], models_dir or MODELS_DIR)


def model_sha256(package_dir: Path | None = None, models_dir: Path | None = None) -> str:
    """SHA-256 hex digest of the model's definition (see the module docstring).

    **Arguments:**

    - `package_dir`: the ``raisim`` package folder (default: this installation's).
    - `models_dir`: the ``models`` folder (default: :data:`raisim.io.cards.MODELS_DIR`).

    **Returns:**

    64 hex characters; equal for two trees whose cards, tables and model code say the same.
    """
    return _combine(model_digests(package_dir, models_dir))


@functools.lru_cache(maxsize=1)
def _current_digests() -> tuple[tuple[str, str], ...]:
    from .cards import MODELS_DIR

    return tuple(_digests(Path(__file__).resolve().parents[1], MODELS_DIR).items())


def _digests(package_dir: Path, models_dir: Path) -> dict[str, str]:
    out = {}
    for name, path in model_files(package_dir, models_dir):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            body = _digest_python(text)
        elif path.suffix == ".yaml":
            body = _digest_yaml(text)
        else:
            body = text
        out[name] = hashlib.sha256(body.encode()).hexdigest()
    return out


def _combine(digests: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(digests):
        h.update(name.encode() + b"\0" + bytes.fromhex(digests[name]))
    return h.hexdigest()


def changed_files(fitted: dict[str, str], now: dict[str, str] | None = None) -> list[str]:
    """Names of the model files added, removed or changed between two digest maps (sorted)."""
    now = model_digests() if now is None else now
    return sorted(n for n in set(fitted) | set(now) if fitted.get(n) != now.get(n))


def manifest_beside(path: Path) -> dict:
    """The ``manifest.json`` in the folder of ``path`` (a posterior, an emulator), parsed; ``{}``
    when there is none or it is not a readable JSON object."""
    m = Path(path).with_name("manifest.json")
    try:
        data = json.loads(m.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def fitted_model_sha256(posterior_path: Path) -> str | None:
    """The model hash in the ``manifest.json`` beside a posterior, or None (no manifest, no hash)."""
    value = manifest_beside(posterior_path).get(MANIFEST_KEY)
    return value if isinstance(value, str) else None


_WARNED: set[str] = set()


def model_change_warning(posterior_path: Path) -> str | None:
    """One line saying that the posterior at ``posterior_path`` was fitted to another model, or None.

    None when its manifest's :data:`MANIFEST_KEY` equals the running model's :func:`model_sha256`.
    """
    fitted = fitted_model_sha256(posterior_path)
    now = model_sha256()
    if fitted == now:
        return None
    if fitted is None:
        return (
            f"posterior {posterior_path} has no model hash in its manifest.json: the model it was fitted "
            "to is unknown; refit with raisim calibrate to be sure its draws describe this model"
        )
    files = manifest_beside(posterior_path).get(MANIFEST_FILES_KEY)
    what = "cards, trials table or model code changed since"
    if isinstance(files, dict):
        names = changed_files(files)
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        what = f"changed since: {', '.join(names[:3])}{more}"
    return (
        f"posterior {posterior_path} was fitted to another model (model {fitted[:12]}, running {now[:12]}; "
        f"{what}): its draws are used as they are; refit with raisim calibrate"
    )


def warn_if_model_changed(posterior_path: str | Path) -> str | None:
    """Log :func:`model_change_warning` once per posterior and process (logger ``raisim.io``).

    Returns the message (also on later calls, when it is not logged again), or None.
    """
    p = Path(posterior_path)
    msg = model_change_warning(p)
    key = str(p.resolve())
    if msg is not None and key not in _WARNED:
        _WARNED.add(key)
        _LOG.warning("warning: %s", msg)
    return msg
