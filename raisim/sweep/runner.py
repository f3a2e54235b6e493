"""Running a sweep: work units → Parquet chunks, a manifest, resume, progress.

``run_sweep`` validates everything before it touches the output directory,
writes ``manifest.json`` first, then each work unit (cell × draw × block of
patients) as ``chunks/<unit>.parquet`` through a temporary file and an atomic
rename — an interrupted run leaves only complete chunks — and its SHA-256 as
``chunks/<unit>.sha256`` after it. ``resume=True`` checks that the directory
was made by the same config, cards and seed, and skips the chunks whose
checksum holds; a chunk that fails it (damaged on disk, or written without its
checksum) is moved to ``quarantine/`` and recomputed, with a warning on the
``raisim`` logger. :func:`read_chunks` verifies every chunk it reads. With several processes (``jax.distributed``),
process ``i`` of ``k`` takes every k-th unit and writes its own chunks into
the same directory.

Throughput is reported in patient-protocols per second: one virtual patient
through one grid cell (all of that cell's courses), for one parameter draw.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import pandas as pd
import pyarrow.parquet as pq

from ..engine.batch import outcome_frame, run_cohort, scan_names
from ..engine.cohort import sample_cohort
from ..engine.plan import cell_shapes, merge_padding
from ..io.errors import InputError
from ..io.model_identity import MANIFEST_KEY, model_sha256
from ..io.parameter_draws import (
    DEFAULT_PRIOR_PARAMETERS,
    draws_as_overrides,
    evenly_spaced,
    prior_draws,
    read_draws,
    shipped_posterior,
    typical_draws,
)
from ..io.store import (
    COMPLETE_MARKER,
    atomic_write_bytes,
    atomic_write_text,
    check_out_dir,
    clear_complete,
    config_hash,
    dir_entries,
    make_out_dir,
    manifest,
    out_dir_lock,
    write_json,
)
from .config import Sweep, block_patients, work_units

_LOG = logging.getLogger("raisim")

SHIPPED_POSTERIOR = shipped_posterior()

CHUNK_DIR = "chunks"
QUARANTINE_DIR = "quarantine"


@dataclass
class RunReport:
    """What a sweep run did: work units (counts), patient-protocols simulated, wall time (s), failed solves."""

    units_total: int
    units_done_now: int
    units_skipped: int
    patient_protocols: int
    wall_s: float
    failures: int

    @property
    def rate(self) -> float:
        """Throughput, patient-protocols per second of wall time (NaN when no time elapsed)."""
        return self.patient_protocols / self.wall_s if self.wall_s > 0 else float("nan")


def sweep_identity(sweep: Sweep) -> dict:
    """What a resumed run must share with the run that made the directory: the config with its
    cells (``config_sha256``) and the model (``model_sha256``, :func:`raisim.io.model_identity.model_sha256`:
    cards, tables and model code, as a posterior's manifest records it)."""
    cfg = sweep.config.model_dump(mode="json")
    cells = [c.protocol.model_dump(mode="json") for c in sweep.cells]
    return {"config_sha256": config_hash({"config": cfg, "cells": cells}), MANIFEST_KEY: model_sha256()}


def parameter_draws(sweep: Sweep) -> pd.DataFrame:
    """The draws table of a sweep (one row per draw, columns card:parameter)."""
    par = sweep.config.parameters
    if par.source == "typical":
        return typical_draws()
    if par.source == "prior":
        return prior_draws(list(par.vary or DEFAULT_PRIOR_PARAMETERS), par.draws, sweep.config.seed)
    path = sweep.path.parent / par.posterior if par.posterior else SHIPPED_POSTERIOR  # read_draws checks it
    table = read_draws(path, sweep.path, "parameters.posterior")
    if len(table) < par.draws:
        raise InputError(sweep.path, "parameters.draws", f"at most the {len(table)} rows of {path.name}")
    return evenly_spaced(table, par.draws)


def check_run_dir(out: str | Path, sweep: Sweep, *, resume: bool, force: bool, joining: bool = False) -> Path:
    """Refuse (InputError) an output directory that does not fit the run; writes nothing.

    ``joining``: a process other than 0 of a multi-process run (process 0 holds the lock).
    """
    p = check_out_dir(out, force=True, joining=joining)  # a file, a path under a file, a running writer
    ident = sweep_identity(sweep)
    if resume:
        m = p / "manifest.json"
        if not m.exists():
            raise InputError(p, "--resume", "a run directory with a manifest.json (start without --resume)")
        try:
            old = json.loads(m.read_text())
        except json.JSONDecodeError:
            raise InputError(m, "<file>", "a readable manifest.json") from None
        if MANIFEST_KEY not in old:  # made before runs recorded the model (only the cards were hashed)
            raise InputError(p, "--resume", "a directory that records its model (this one predates that): start anew")
        for key in ("config_sha256", MANIFEST_KEY):
            if old.get(key) != ident[key]:
                config = key == "config_sha256"
                what = "config (grid, cohort, seed, protocol)" if config else "model (cards, tables and code)"
                raise InputError(p, "--resume", f"a directory made by the same {what}; it was made by another")
    elif p.is_dir() and dir_entries(p) and not force:
        raise InputError(p, "--out", "an empty or new directory; pass --resume to continue or --force to replace")
    return p


def prepare_run_dir(out: str | Path, sweep: Sweep, *, resume: bool, force: bool) -> Path:
    """Check the output directory (:func:`check_run_dir`), then create it or clear an earlier run (``force``)."""
    p = check_run_dir(out, sweep, resume=resume, force=force)
    if resume:
        return p
    if p.exists() and any(p.iterdir()):
        earlier = (COMPLETE_MARKER, CHUNK_DIR, QUARANTINE_DIR, "manifest.json", "summary.csv", "duration_response.png")
        for name in earlier:
            q = p / name
            shutil.rmtree(q) if q.is_dir() else q.unlink(missing_ok=True)
    return make_out_dir(p)


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """A frame as Parquet, written atomically, then its SHA-256 beside it (``<stem>.sha256``)."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    atomic_write_text(path.with_suffix(".sha256"), hashlib.sha256(data).hexdigest() + "\n")


def chunk_problem(path: Path) -> str | None:
    """Why the chunk at ``path`` cannot be used (None when its checksum holds)."""
    if not os.path.lexists(path):
        return "missing"
    if path.is_symlink() or not path.is_file():
        return "not a regular file"
    digest = path.with_suffix(".sha256")
    if not digest.exists():
        return "written without its checksum (interrupted between the two files)"
    if digest.is_symlink() or not digest.is_file():
        return "its checksum chunks/" + digest.name + " is not a regular file"
    try:
        want = digest.read_text().strip()
        have = hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, UnicodeDecodeError) as exc:
        return f"unreadable ({getattr(exc, 'strerror', None) or exc})"
    if have != want:
        return "its SHA-256 does not match chunks/" + digest.name + " (damaged on disk)"
    return None


def quarantine(path: Path, why: str) -> None:
    """Move a bad chunk (and its checksum) to ``quarantine/`` in the run directory and say so."""
    q = path.parent.parent / QUARANTINE_DIR
    q.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for f in (path, path.with_suffix(".sha256")):
        if os.path.lexists(f):  # a directory or a link in a chunk's place moves as a file does
            f.replace(q / f"{f.name}.{stamp}")
    _LOG.warning("chunk %s: %s; moved to %s/, the unit will be recomputed", path.name, why, QUARANTINE_DIR)


def _usable(path: Path) -> bool:
    why = chunk_problem(path)
    if why is None:
        return True
    if why != "missing":
        quarantine(path, why)
    return False


def incomplete_units(sweep: Sweep, out: str | Path) -> list[str]:
    """Names of the work units whose chunk is missing or fails its checksum (bad ones are quarantined)."""
    chunks = Path(out) / CHUNK_DIR
    par = sweep.config.parameters
    n_draws = 1 if par.source == "typical" else par.draws  # what parameter_draws gives, without reading it
    return [u.name for u in work_units(sweep, n_draws) if not _usable(chunks / f"{u.name}.parquet")]


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    devices: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    config_path: str | Path | None = None,
) -> RunReport:
    """Run every missing work unit of ``sweep`` into ``out`` (see the module docstring).

    Each chunk row is one patient: outcome columns in the units of
    :func:`raisim.engine.batch.outcome_frame` (GBq, Gy, months, %, probabilities). ``devices``: local
    devices to split patients over (a count). ``progress``: called as ``progress(done, total)``
    (patient-protocols of this call) before the first unit and after each; the command line
    draws its progress bar from it. Waits of multi-process runs are logged (``logging``, logger
    ``raisim``), never printed.
    """
    proc = jax.process_index()
    if proc != 0:  # the other processes of a multi-process run join the directory process 0 locks
        return _run_sweep(sweep, out, resume, force, devices, progress, config_path)
    check_run_dir(out, sweep, resume=resume, force=force)  # before the directory is created or locked
    with out_dir_lock(out):
        return _run_sweep(sweep, out, resume, force, devices, progress, config_path)


def _run_sweep(sweep, out, resume, force, devices, progress, config_path) -> RunReport:
    draws = parameter_draws(sweep)
    overrides = draws_as_overrides(draws)
    proc, n_proc = jax.process_index(), jax.process_count()
    if proc == 0:
        out = prepare_run_dir(out, sweep, resume=resume, force=force)
        clear_complete(out)  # the run is incomplete until the CLI marks it
    else:  # process 0 prepares the directory and writes the manifest; the others join it
        out = Path(out)
        _wait_for(lambda: (out / "manifest.json").exists(), "the manifest of process 0")
        check_run_dir(out, sweep, resume=True, force=False, joining=True)
    chunks = out / CHUNK_DIR
    chunks.mkdir(exist_ok=True)
    cfg = sweep.config
    units = work_units(sweep, len(draws))
    mine = [u for i, u in enumerate(units) if i % n_proc == proc]
    ident = sweep_identity(sweep)
    if proc == 0 and (not resume or not (out / "manifest.json").exists()):
        write_json(
            out / "manifest.json",
            manifest(
                "sweep",
                sweep.raw,
                cfg.seed,
                config_path,
                **ident,
                cells=[{**c.labels(), "protocol": c.protocol.name} for c in sweep.cells],
                draws=draws.to_dict("records"),
                units=len(units),
                patients=cfg.cohort.patients,
                chunk=cfg.cohort.chunk,
                processes=n_proc,
                devices=[str(d) for d in jax.local_devices()],
            ),
        )
    todo = [u for u in mine if not _usable(chunks / f"{u.name}.parquet")]
    pad = merge_padding([cell_shapes(c.protocol) for c in sweep.cells])
    solver = cfg.solver.settings()
    cells = {c.index: c for c in sweep.cells}
    total = sum(len(block_patients(sweep, u.block)) for u in todo)
    report_progress = progress or (lambda done, total: None)
    report_progress(0, total)
    t0 = time.perf_counter()
    done_pp, failures = 0, 0
    cohorts: dict[int, object] = {}
    # solver steps per patient of the block's last unit of each (genotype, arm): the next unit of
    # that regimen solves patients of similar cost together (faster; the numbers are unchanged)
    steps: dict[tuple[str, str], object] = {}
    for u in todo:
        cell = cells[u.cell]
        if u.block not in cohorts:  # units come block by block: keep only the current block's patients
            patients = block_patients(sweep, u.block)
            cohorts = {u.block: sample_cohort(patients, cfg.seed, max_lesions=cfg.cohort.max_lesions)}
            steps = {}
        cohort = cohorts[u.block]
        regimen = (cell.genotype, cell.arm)
        res = run_cohort(
            cell.protocol,
            cohort,
            overrides=overrides[u.draw],
            pad=pad,
            solver=solver,
            devices=devices,
            cost_hint=steps.get(regimen),
        )
        steps[regimen] = res.summary.steps
        frame = outcome_frame(res, list(cell.protocol.followup.months), scan_names(cell.protocol))
        labels = pd.DataFrame({**cell.labels(), "draw": u.draw}, index=frame.index)
        cov = pd.DataFrame(cohort.covariates(), index=frame.index)
        write_parquet(chunks / f"{u.name}.parquet", pd.concat([labels, cov, frame], axis=1))
        n = len(frame)
        failures += int((~frame["ok"].astype(bool)).sum())
        done_pp += n
        report_progress(done_pp, total)
    wall = time.perf_counter() - t0
    if n_proc > 1 and proc == 0:  # the summary needs every process's chunks
        names = [f"{u.name}.parquet" for u in units]
        _wait_for(lambda: all((chunks / n).exists() for n in names), "the chunks of the other processes")
    return RunReport(len(units), len(todo), len(mine) - len(todo), done_pp, wall, failures)


def _wait_for(ready, what: str, poll_s: float = 1.0, timeout_s: float = 7 * 24 * 3600.0) -> None:
    """Poll the shared run directory until ``ready()`` (multi-process runs)."""
    t0 = time.perf_counter()
    said = False
    while not ready():
        if not said and time.perf_counter() - t0 > 10:
            _LOG.info("waiting for %s ...", what)
            said = True
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(poll_s)


def read_chunks(out: str | Path, cells: list[int] | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows of the run's chunks (optionally only some cells), in unit order.

    ``columns``: read only these (those a chunk lacks are skipped), so that a large cell
    costs memory for what the caller uses, not for all of its ~40 columns.
    """
    files = sorted((Path(out) / CHUNK_DIR).glob("*.parquet"))
    if cells is not None:
        keep = {f"cell{c:04d}_" for c in cells}
        files = [f for f in files if f.name[:9] in keep]
    if not files:
        return pd.DataFrame()
    for f in files:
        why = chunk_problem(f)
        if why is not None:
            quarantine(f, why)
            raise InputError(Path(out), f"{CHUNK_DIR}/{f.name}", f"chunks whose checksum holds ({why}); run --resume")

    def read(f: Path) -> pd.DataFrame:
        if columns is None:
            return pd.read_parquet(f)
        have = set(pq.read_schema(f).names)
        return pd.read_parquet(f, columns=[c for c in columns if c in have])

    return pd.concat([read(f) for f in files], ignore_index=True)
