"""Writing results: output directories, atomic files and the run manifest.

Every file is written to a temporary name in the same directory and moved
into place with ``os.replace``, so an interrupted run never leaves a
half-written file, and a run refused for bad input writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from .errors import InputError

LIBRARIES = ("jax", "jaxlib", "diffrax", "equinox", "numpyro", "arviz", "numpy", "scipy", "pydantic", "pandas")


def prepare_out_dir(out: str | Path, *, force: bool = False, resume: bool = False) -> Path:
    """Create ``out`` or accept it if empty; a non-empty directory needs ``force`` (or ``resume``)."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise InputError(p, "--out", "a directory path (a file of that name exists)")
    if p.exists() and any(p.iterdir()) and not (force or resume):
        raise InputError(p, "--out", "an empty or new directory; pass --force to overwrite")
    p.mkdir(parents=True, exist_ok=True)
    return p


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (temporary file + rename)."""
    atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, obj) -> None:
    """Deterministic JSON (sorted keys, fixed indentation), written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_csv(path: str | Path, frame) -> None:
    """A pandas DataFrame as CSV with full float precision, written atomically."""
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.10g"))


def atomic_savefig(fig, path: str | Path, **kwargs) -> None:
    """Save a matplotlib figure atomically."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", **kwargs)
    atomic_write_bytes(path, buf.getvalue())


def git_commit() -> str | None:
    """The commit of the source tree the package runs from, if it is a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def library_versions() -> dict[str, str | None]:
    """Installed version of each library in :data:`LIBRARIES` (None when not installed)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def config_hash(config: dict) -> str:
    """SHA-256 hex digest of ``config`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def manifest(command: str, config: dict, seed: int, config_path: str | Path | None = None, **extra) -> dict:
    """The run manifest: config and its hash, seed, versions, commit, machine."""
    from .._version import __version__

    return {
        "command": command,
        "config_path": str(config_path) if config_path is not None else None,
        "config": config,
        "config_sha256": config_hash(config),
        "seed": seed,
        "raisim_version": __version__,
        "git_commit": git_commit(),
        "libraries": library_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }
