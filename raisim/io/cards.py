"""Parameter cards: YAML files in ``models/`` that hold every model parameter.

A card is a mapping ``parameters: {name: entry}``; each entry carries the
typical ``value``, its ``unit``, a ``prior``, the ``source`` and a
``confidence`` code:

- ``V`` read in the source (abstract, label or table);
- ``D`` derived from V values;
- ``R`` recalled, not checked (the prior is widened accordingly);
- ``A`` an assumption made for this model with no direct source; the prior
  must be wide (geometric SD >= 1.5 for log-normal priors).

Cards are data, not code: a block reads its typical values with
:func:`card_values`, calibration reads the priors with :func:`load_card`.
"""

from __future__ import annotations

import math
import os
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from .config import FrozenConfig
from .errors import InputError
from .files import read_input_bytes

#: The parameter cards: the shipped ``models/`` folder, or ``$RAISIM_MODELS_DIR`` when set
#: (a copy with your own cards, e.g. a new drug).
MODELS_DIR = Path(os.environ.get("RAISIM_MODELS_DIR") or Path(__file__).resolve().parents[2] / "models")

CONFIDENCE_CODES = ("V", "D", "R", "A")


class LogNormalPrior(FrozenConfig):
    """Log-normal prior given by its median and geometric standard deviation.

    ``median``, ``lower`` and ``upper`` are in the parameter's unit; ``gsd`` is dimensionless (> 1).
    """

    dist: Literal["lognormal"]
    median: float = Field(gt=0)
    gsd: float = Field(gt=1)
    lower: float | None = None
    upper: float | None = None


class NormalPrior(FrozenConfig):
    """Normal prior; ``mean``, ``sd``, ``lower`` and ``upper`` in the parameter's unit."""

    dist: Literal["normal"]
    mean: float
    sd: float = Field(gt=0)
    lower: float | None = None
    upper: float | None = None


class BetaPrior(FrozenConfig):
    """Beta(a, b) prior of a fraction or probability in [0, 1]; ``a`` and ``b`` dimensionless."""

    dist: Literal["beta"]
    a: float = Field(gt=0)
    b: float = Field(gt=0)


class UniformPrior(FrozenConfig):
    """Uniform prior on [``low``, ``high``], in the parameter's unit."""

    dist: Literal["uniform"]
    low: float
    high: float


class FixedPrior(FrozenConfig):
    """A structural constant that calibration never moves (physics, units)."""

    dist: Literal["fixed"]


Prior = Annotated[
    LogNormalPrior | NormalPrior | BetaPrior | UniformPrior | FixedPrior,
    Field(discriminator="dist"),
]


class ParameterEntry(FrozenConfig):
    """One parameter: typical value, unit, prior, source and confidence code.

    ``value`` (and the prior's location and bounds) are in ``unit``, the card's own unit string.
    """

    value: float
    unit: str
    prior: Prior
    source: str = Field(min_length=1)
    confidence: Literal["V", "D", "R", "A"]
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> ParameterEntry:
        p = self.prior
        if isinstance(p, LogNormalPrior):
            if self.value <= 0:
                raise ValueError("a log-normal prior needs a positive value")
            if self.confidence == "A" and p.gsd < 1.5:
                raise ValueError("an assumption (confidence A) needs a wide prior: gsd >= 1.5")
        if isinstance(p, UniformPrior) and not (p.low <= self.value <= p.high):
            raise ValueError("value lies outside the uniform prior's support")
        if isinstance(p, BetaPrior) and not (0.0 <= self.value <= 1.0):
            raise ValueError("a beta prior needs a value in [0, 1]")
        if isinstance(p, FixedPrior) and self.confidence == "A":
            raise ValueError("an assumption cannot be fixed: give it a prior")
        if not math.isfinite(self.value):
            raise ValueError("value must be finite")
        return self


class Card(FrozenConfig):
    """A parameter card: a named set of parameters for one block (or drug); each entry carries its unit."""

    block: str
    name: str
    description: str = ""
    parameters: dict[str, ParameterEntry]
    metadata: dict[str, object] = Field(default_factory=dict)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return loc or "<root>", err["msg"]


#: The largest configuration file read, bytes: a protocol, sweep or calibration file is a few kB,
#: so anything this big is a wrong path (a data file, a binary), refused before it is parsed.
MAX_CONFIG_BYTES = 1 << 20


#: The most digits of an integer in a YAML file: every integer a config holds (days, counts, seeds)
#: has at most 20 (2**64 has 20), so a longer one is a typo, refused before Python parses it
#: (past 4,300 digits Python refuses to, with a traceback).
MAX_INTEGER_DIGITS = 20

#: The most nodes a YAML document may expand to, its aliases followed: a configuration has a few
#: hundred, so this bounds a "billion laughs" document (aliases of aliases) before anything walks it.
MAX_YAML_NODES = 100_000


class _Refused(yaml.YAMLError):
    """A YAML construct this program does not take (its ``problem`` says what is allowed)."""

    def __init__(self, problem: str, mark):
        self.problem, self.problem_mark = problem, mark


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (the last would silently win),
    an integer of more than :data:`MAX_INTEGER_DIGITS` digits, a set (``!!set``: only mappings, lists
    and scalars), and a document that expands to more than :data:`MAX_YAML_NODES` nodes."""

    def construct_document(self, node):
        _check_expanded_size(node)
        return super().construct_document(node)

    def construct_yaml_int(self, node):
        digits = sum(c.isdigit() for c in str(node.value))
        if digits > MAX_INTEGER_DIGITS:
            raise _Refused(f"an integer of at most {MAX_INTEGER_DIGITS} digits (got {digits} digits)", node.start_mark)
        return super().construct_yaml_int(node)

    def construct_yaml_set(self, node):
        raise _Refused("a list or a mapping, not a set (!!set)", node.start_mark)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<' merges are YAML's own way to override
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: SafeLoader's own error follows
            if duplicate:
                raise _DuplicateKey(key, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key, mark):
        self.key, self.problem_mark = key, mark


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:set", _UniqueKeyLoader.construct_yaml_set)


def _check_expanded_size(root) -> None:
    """Refuse a node graph that expands to more than :data:`MAX_YAML_NODES` nodes (aliases followed),
    or that holds itself (a recursive alias): depth first, without recursion, each node sized once."""
    size: dict[int, int] = {}
    open_ = -1  # expanded, its subtree not yet sized: an ancestor of what is being expanded
    stack = [(root, False)]
    while stack:
        node, sized = stack.pop()
        if sized:
            size[id(node)] = 1 + sum(size[id(c)] for c in _children(node))
            if size[id(node)] > MAX_YAML_NODES:
                raise _Refused(
                    f"a document of at most {MAX_YAML_NODES} nodes with its aliases expanded", node.start_mark
                )
            continue
        if id(node) in size:
            continue
        size[id(node)] = open_
        stack.append((node, True))
        for child in _children(node):
            if size.get(id(child)) == open_:
                raise _Refused("a document without recursive aliases (a node inside itself)", child.start_mark)
            if id(child) not in size:
                stack.append((child, False))


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def read_yaml(path: str | Path, kind: str) -> object:
    """Parse a YAML file strictly.

    **Arguments:**

    - `path`: the file.
    - `kind`: names the file in messages, e.g. ``"protocol YAML file"``.

    **Returns:**

    The parsed document (``yaml.safe_load`` types).

    **Raises:**

    - `InputError` (one line): a missing or unreadable file, a directory, a file over
      :data:`MAX_CONFIG_BYTES`, bytes that are not UTF-8, bad YAML, or a key given twice in one
      mapping.
    """
    p = Path(path)
    data = read_input_bytes(p, kind, MAX_CONFIG_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(p, "<file>", f"a UTF-8 text {kind} (byte {exc.start} is not UTF-8)") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        mark = exc.problem_mark
        raise InputError(p, f"<yaml line {mark.line + 1}, column {mark.column + 1}>", exc.problem) from None
    except _DuplicateKey as exc:
        mark = exc.problem_mark
        raise InputError(
            p, f"{exc.key} (yaml line {mark.line + 1})", "each key at most once in a mapping (given twice)"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"<yaml line {mark.line + 1}, column {mark.column + 1}>" if mark is not None else "<yaml>"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InputError(p, where, f"valid YAML ({problem})") from None
    except RecursionError:
        raise InputError(p, "<yaml>", "valid YAML nested less deeply") from None


@cache
def _load_card_cached(path: str) -> Card:
    p = Path(path)
    raw = read_yaml(p, "parameter card file")
    if not isinstance(raw, dict):
        raise InputError(p, "<root>", "a mapping with block, name and parameters")
    try:
        return Card.model_validate(raw)
    except ValidationError as exc:
        loc, msg = _first_error(exc)
        raise InputError(p, loc, msg) from None


def card_path(relative: str) -> Path:
    """Path of a card under ``models/``, e.g. ``"biology/pathway.yaml"``."""
    return MODELS_DIR / relative


def load_card(relative_or_path: str | Path) -> Card:
    """Load and validate a parameter card (cached). Relative paths are under ``models/``."""
    p = Path(relative_or_path)
    if not p.is_absolute() and not p.exists():
        p = card_path(str(relative_or_path))
    return _load_card_cached(str(p.resolve()))


def card_values(relative_or_path: str | Path) -> dict[str, float]:
    """Typical values of a card as ``{name: value}`` (units as in the card)."""
    return {k: v.value for k, v in load_card(relative_or_path).parameters.items()}


def available_drugs() -> tuple[str, ...]:
    """Drugs with a card in ``models/drugs/`` (the drugs a protocol may use)."""
    return tuple(sorted(p.stem for p in (MODELS_DIR / "drugs").glob("*.yaml")))


def all_cards() -> dict[str, Card]:
    """Every card under ``models/`` (drug, biology and calibration cards), keyed by relative path."""
    out = {}
    for p in sorted(MODELS_DIR.rglob("*.yaml")):
        rel = p.relative_to(MODELS_DIR).as_posix()
        if rel.startswith(("drugs/", "biology/", "calibration/")):
            out[rel] = load_card(p)
    return out
