"""Sweeps: a grid of protocol variants × genotypes × parameter draws × one virtual cohort.

A sweep config (``configs/sweeps/*.yaml``) names a base protocol and the
*knobs* to vary: dotted paths into the protocol config
(``treatment.stop_day``, ``scans[0].day``,
``treatment.regimens.BRAF_V600E[1].dose_mg``). Day values may be written
relative to the course end, ``end + 1`` (``end`` = the cell's
``treatment.stop_day``). Every cell runs the same virtual patients (common
random numbers), so differences between cells are paired.

The run is cut into work units (cell × draw × block of patients); each
finished unit is written atomically as ``chunks/<unit>.parquet``, so a killed
run leaves only whole files and ``--resume`` computes only what is missing.
``manifest.json`` (written first) pins the config hash and seed: resuming
with another config is refused.

Units: days in the config; outputs as in :mod:`raisim.engine.batch`.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator

from ..engine.batch import SolverSettings
from ..io.cards import MAX_CONFIG_BYTES, read_yaml
from ..io.config import FrozenConfig, PathText
from ..io.errors import InputError
from ..io.files import check_input_file
from ..io.limits import MAX_DRAWS, MAX_PATIENTS_PER_CELL, MAX_SEED
from ..io.parameter_draws import DEFAULT_PRIOR_PARAMETERS, check_parameter
from ..io.vocab import GENOTYPES, allowed
from ..protocol.schema import TAIL_DELAY_H, Protocol, _submodel, protocol_from_dict

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_RELATIVE = re.compile(r"^\s*end\s*([+-])\s*(\d{1,4})\s*$")


class Arm(FrozenConfig):
    """A named variant of the base protocol (e.g. a second dose), optionally for some genotypes only."""

    name: str = Field(description="arm label in outputs")
    set: dict[str, object] = Field(default_factory=dict, description="knob → value applied to this arm")
    genotypes: list[str] | None = Field(None, description="genotypes this arm applies to (default: all)")


#: Sizes a sweep may ask for. Sweeps exist for 1e6-1e7 patient-protocols; the bounds sit 100x above
#: that, so a typo (an extra zero, a runaway grid) stops with one line before any work starts.
MAX_CELLS = 10_000
MAX_PATIENT_PROTOCOLS = 1_000_000_000


class CohortSettings(FrozenConfig):
    """The sweep's virtual cohort: patients, lesion slots and patients per work unit (all counts)."""

    patients: int = Field(
        200,
        gt=0,
        le=MAX_PATIENTS_PER_CELL,
        description="virtual patients per cell (the same patients in every cell)",
    )
    max_lesions: int = Field(
        5, ge=1, le=20, description="lesion slots per patient (counts are drawn; padded slots are masked)"
    )
    chunk: int = Field(
        128,
        gt=0,
        le=1_000_000,
        description="patients per work unit (one Parquet file); a multiple of 16 x devices solves no padding",
    )


class Parameters(FrozenConfig):
    """Where the model parameters come from: typical values, prior or posterior draws (``draws`` a count)."""

    source: Literal["typical", "prior", "posterior"] = Field(
        "typical", description="typical values (one draw), prior draws, or posterior draws"
    )
    draws: int = Field(
        1,
        gt=0,
        le=MAX_DRAWS,
        description="parameter draws; each cell × draw runs the same patients (posterior draws: evenly spaced)",
    )
    vary: list[str] | None = Field(None, description="prior: card:parameter names to draw (default: a shipped list)")
    posterior: PathText | None = Field(
        None,
        description="posterior: a posterior.nc of raisim calibrate or a draws CSV (columns card:parameter), "
        "relative to the config (default: the shipped models/posterior/posterior.nc)",
    )


class SolverSettingsConfig(FrozenConfig):
    """The batched solve: tolerances (``atol`` in state units), step budget (a count), float precision."""

    def settings(self, micro_batch: int = 16) -> SolverSettings:
        """These settings as the engine's :class:`raisim.engine.batch.SolverSettings`; ``micro_batch``:
        patients solved in lockstep (a count)."""
        return SolverSettings(
            self.rtol, self.atol, self.max_steps, micro_batch, dtype=self.dtype, tail_delay_h=self.tail_delay_h
        )

    rtol: float = Field(1e-6, gt=0, lt=1e-2, description="relative tolerance of the batched solve")
    atol: float = Field(1e-9, gt=0, description="absolute tolerance (state units: mg, folds, MBq per MBq)")
    max_steps: int = Field(
        100_000, ge=100, description="solver steps per course; a patient that needs more is flagged, not dropped"
    )
    dtype: Literal["float64", "float32"] = Field(
        "float64", description="float32: model, schedules and states in single precision (GPU; use rtol >= 1e-5)"
    )
    tail_delay_h: float | None = Field(
        TAIL_DELAY_H,
        ge=0,
        description="hours after a course's last dose, TSH event or administration from which the stabilised "
        "explicit solver (RKC) takes over to the end; null: Tsit5 throughout",
    )


class SweepConfig(FrozenConfig):
    """A sweep: base protocol, knobs, genotypes, arms, cohort, parameter draws, solver.

    Knob values are in the protocol field's unit (days as study days, or ``end ± N``; doses mg).
    """

    name: str = Field(description="sweep name shown in outputs")
    description: str = Field("", description="free text")
    protocol: PathText = Field(description="base protocol YAML, relative to this file")
    grid: dict[str, list[object]] = Field(description="knob → values (the cartesian product is the grid)")
    set: dict[str, object] = Field(
        default_factory=dict,
        description="knob → value for every cell (after the grid values; `end ± N` allowed anywhere)",
    )
    genotypes: list[str] = Field(
        default_factory=lambda: list(GENOTYPES), description="patient genotypes per cell: BRAF_V600E, RAS, OTHER"
    )
    arms: list[Arm] = Field(
        default_factory=lambda: [Arm(name="base")],
        description="named protocol variants (a variant applies its `set` after the grid's)",
    )
    compare: dict[str, object] | None = Field(
        None,
        description="reference level of the paired differences, e.g. `{treatment.stop_day: 21}` "
        "(default: the first value of the first knob)",
    )
    cohort: CohortSettings = Field(default_factory=CohortSettings, description="virtual cohort size and work units")
    parameters: Parameters = Field(default_factory=Parameters, description="where the model parameters come from")
    solver: SolverSettingsConfig = Field(default_factory=SolverSettingsConfig, description="batched ODE solve")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="cohort and draw seed (the CLI --seed replaces it)")

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, v: list[Arm]) -> list[Arm]:
        names = [a.name for a in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"arms with distinct names (their rows are told apart by name); twice: {twice}")
        return v

    @field_validator("genotypes")
    @classmethod
    def _genotypes(cls, v: list[str]) -> list[str]:
        for g in v:
            if g not in GENOTYPES:
                raise ValueError(f"{allowed(GENOTYPES)}; got {g!r}")
        if not v:
            raise ValueError("at least one genotype")
        return v


@dataclass
class Cell:
    """One grid cell: its labels and its validated protocol."""

    index: int
    arm: str
    genotype: str
    knobs: dict[str, object]
    protocol: Protocol

    def labels(self) -> dict[str, object]:
        """Output columns of the cell: index, arm, genotype and each knob's value (in its config unit)."""
        return {"cell": self.index, "arm": self.arm, "genotype": self.genotype, **self.knobs}


@dataclass
class Sweep:
    """A loaded sweep: config, its file, cells."""

    config: SweepConfig
    path: Path
    raw: dict
    cells: list[Cell] = field(default_factory=list)

    @property
    def knob_names(self) -> list[str]:
        """The grid's knobs (dotted protocol paths), in config order."""
        return list(self.config.grid)


def load_sweep(path: str | Path, *, seed: int | None = None, patients: int | None = None) -> Sweep:
    """Load and validate a sweep config; every problem is a one-line :class:`InputError`.

    ``seed`` and ``patients`` (a count) replace the config's values when given.
    """
    p = Path(path)
    raw = read_yaml(p, "sweep YAML file")
    if not isinstance(raw, dict):
        raise InputError(p, "<root>", "a YAML mapping with name, protocol, grid, ...")
    if seed is not None:
        raw = {**raw, "seed": seed}
    if patients is not None:
        raw = {**raw, "cohort": {**(raw.get("cohort") or {}), "patients": patients}}
    try:
        cfg = SweepConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "<root>"
        raise InputError(p, loc, err["msg"].removeprefix("Value error, ")) from None
    if not cfg.grid or any(len(v) == 0 for v in cfg.grid.values()):
        empty = next((k for k, v in cfg.grid.items() if not v), None)
        raise InputError(p, f"grid.{empty}" if empty else "grid", "at least one knob with at least one value")
    cells = len(cfg.arms) * len(cfg.genotypes) * math.prod(len(v) for v in cfg.grid.values())
    if cells > MAX_CELLS:
        raise InputError(p, "grid", f"at most {MAX_CELLS} cells (arms x genotypes x grid values)", got=cells)
    total = cells * cfg.parameters.draws * cfg.cohort.patients
    if total > MAX_PATIENT_PROTOCOLS:
        raise InputError(
            p,
            "cohort.patients",
            f"at most {MAX_PATIENT_PROTOCOLS:.0e} patient-protocols (cells x draws x patients)",
            got=total,
        )
    if cfg.parameters.source == "prior":
        for name in cfg.parameters.vary or DEFAULT_PRIOR_PARAMETERS:
            check_parameter(name, p, "parameters.vary")
    sweep = Sweep(cfg, p, raw)
    sweep.cells = _cells(sweep)
    return sweep


def _cells(sweep: Sweep) -> list[Cell]:
    cfg, path = sweep.config, sweep.path
    given = path.parent / cfg.protocol
    check_input_file(given, f"protocol YAML file (relative to {path.parent})", MAX_CONFIG_BYTES, path, "protocol")
    base_path = given.resolve()  # no loop: the check above reached the file
    base = read_yaml(base_path, "protocol YAML file")
    if not isinstance(base, dict):
        raise InputError(base_path, "<root>", "a YAML mapping with name, patient, treatment, ...")
    for where, knobs in (("grid", cfg.grid), ("set", cfg.set), ("compare", cfg.compare or {})):
        for k in knobs:
            _check_path(base, k, path, f"{where}.{k}")
            _check_relative(knobs[k], path, f"{where}.{k}")
    for i, arm in enumerate(cfg.arms):
        for k in arm.set:
            _check_path(base, k, path, f"arms[{i}].set.{k}")
            _check_relative(arm.set[k], path, f"arms[{i}].set.{k}")
        for g in arm.genotypes or []:
            if g not in cfg.genotypes:
                raise InputError(path, f"arms[{i}].genotypes", f"genotypes of the sweep: {cfg.genotypes}", got=g)
    if cfg.compare:
        for k, v in cfg.compare.items():
            if k not in cfg.grid or v not in cfg.grid[k]:
                raise InputError(path, f"compare.{k}", "a grid knob and one of its values", got=v)
    cells: list[Cell] = []
    names = list(cfg.grid)
    for arm in cfg.arms:
        for g in arm.genotypes or cfg.genotypes:
            for values in product(*(cfg.grid[k] for k in names)):
                knobs = dict(zip(names, values, strict=True))
                d = copy.deepcopy(base)
                for k, v in {**arm.set, **knobs}.items():
                    _set_path(d, k, v, path)
                for k, v in cfg.set.items():
                    _set_path(d, k, v, path)
                _resolve_relative(d, path)
                if not isinstance(d.get("patient"), dict):
                    raise InputError(base_path, "patient", "a mapping with genotype, lesions, ...")
                d["patient"]["genotype"] = g
                label = f"{cfg.protocol} ({arm.name}, {g}, {knobs})"
                try:
                    prot = protocol_from_dict(d, label)
                except InputError as exc:
                    raise InputError(path, f"cell {label}: {exc.field}", exc.allowed, got=exc.got) from None
                cells.append(Cell(len(cells), arm.name, g, knobs, prot))
    return cells


def _tokens(knob: str) -> list[str | int]:
    out: list[str | int] = []
    pos = 0
    for m in _TOKEN.finditer(knob):
        if m.start() != pos and knob[pos : m.start()] != ".":
            return []
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    return out if pos == len(knob) else []


def _check_path(base: dict, knob: str, path: Path, field: str) -> None:
    toks = _tokens(knob)
    what = "a path into the protocol, e.g. treatment.stop_day or scans[0].day"
    if not toks or not isinstance(toks[0], str):
        raise InputError(path, field, what, got=knob)
    node: object = base
    for i, t in enumerate(toks):
        last = i == len(toks) - 1
        if isinstance(t, int):
            if not isinstance(node, list) or t >= len(node):
                raise InputError(path, field, f"{what}; index [{t}] does not exist in the base protocol", got=knob)
            node = node[t]
        else:
            if not isinstance(node, dict):
                raise InputError(path, field, f"{what}; {t!r} is not a mapping key there", got=knob)
            if t not in node:
                if last and _known_field(toks):
                    return
                raise InputError(path, field, f"{what}; {t!r} is not in the base protocol", got=knob)
            node = node[t]


def _known_field(toks: list[str | int]) -> bool:
    """True when the path names a protocol schema field that the base file leaves at its default."""
    model: type[BaseModel] | None = Protocol
    for t in toks:
        if isinstance(t, int):
            continue
        if model is None or t not in model.model_fields:
            return False
        model = _submodel(model.model_fields[t].annotation)
    return True


def _set_path(d: dict, knob: str, value, path: Path | None = None) -> None:
    toks = _tokens(knob)
    node = d
    try:
        for t in toks[:-1]:
            node = node[t]
        node[toks[-1]] = copy.deepcopy(value)
    except (KeyError, IndexError, TypeError):  # an earlier knob replaced a section this one goes into
        raise InputError(
            path, knob, "a path into the protocol as the other knobs and set values leave it (a section was replaced)"
        ) from None


def _relative(value, path: Path, field: str) -> re.Match | None:
    """The ``end ± N`` match of ``value`` (None: not a relative day); a value that starts like one
    but is not is refused, naming ``field`` (the one rule for knob values and protocol values)."""
    if not (isinstance(value, str) and value.strip().startswith("end")):
        return None
    m = _RELATIVE.match(value)
    if not m:
        raise InputError(path, field, "a day relative to the course end: 'end + N' or 'end - N' (N days)", got=value)
    return m


def _check_relative(value, path: Path, field: str) -> None:
    """Refuse a knob value (or grid values) that starts like ``end ± N`` but is not, naming the knob."""
    for v in value if isinstance(value, list) else [value]:
        _relative(v, path, field)


def _resolve_relative(d: dict, path: Path) -> None:
    """Replace ``end ± N`` strings by days (end = treatment.stop_day)."""
    treatment = d.get("treatment")
    end = treatment.get("stop_day") if isinstance(treatment, dict) else None

    def walk(node, where: str):
        if isinstance(node, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(node)]
        m = _relative(node, path, where)
        if m:
            if not isinstance(end, int) or isinstance(end, bool):
                raise InputError(
                    path,
                    "treatment.stop_day",
                    "an integer day, as values are given relative to it ('end + N')",
                    got=end,
                )
            n = int(m.group(2))
            return end + n if m.group(1) == "+" else end - n
        return node

    new = walk(d, "")
    d.clear()
    d.update(new)


# ---------------------------------------------------------------------------
# Work units
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One work unit: grid cell, parameter draw and block of patients (indices)."""

    cell: int
    draw: int
    block: int

    @property
    def name(self) -> str:
        """The unit's chunk file stem, e.g. ``cell0003_draw000_block00001``."""
        return f"cell{self.cell:04d}_draw{self.draw:03d}_block{self.block:05d}"


def work_units(sweep: Sweep, n_draws: int) -> list[Unit]:
    """Every (cell, draw, block), block by block (a block's virtual patients are drawn once)."""
    n, chunk = sweep.config.cohort.patients, sweep.config.cohort.chunk
    blocks = (n + chunk - 1) // chunk
    order = sorted(sweep.cells, key=lambda c: (len(c.protocol.treatment.regimen_for(c.genotype)), c.index))
    return [Unit(c.index, d, b) for b in range(blocks) for c in order for d in range(n_draws)]


def block_patients(sweep: Sweep, block: int) -> np.ndarray:
    """Patient numbers of work block ``block`` (``cohort.chunk`` consecutive patients)."""
    n, chunk = sweep.config.cohort.patients, sweep.config.cohort.chunk
    return np.arange(block * chunk, min((block + 1) * chunk, n))
