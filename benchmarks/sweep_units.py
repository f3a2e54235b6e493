"""How the cut into work units and the order of patients change a sweep's speed (not its numbers).

A device solves its share of a work unit in micro-batches of 16 patients in lockstep: a
micro-batch runs until its slowest patient is done, and a unit is padded to whole
micro-batches on every device. Two things follow, measured here by running the cells
of one genotype of ``configs/sweeps/duration.yaml`` under several variants, each into a
temporary directory with ``raisim.sweep.runner.run_sweep``:

- ``cohort.chunk`` (patients per unit): with 2 devices a unit of 100 patients is solved
  as 128; a unit of 128 as 128;
- ordering: ``raisim sweep`` orders each unit's patients by the solver steps of the
  block's previous unit of the same genotype and arm (``run_cohort(cost_hint=...)``), so
  that similar patients share a micro-batch; ``unordered`` removes the hint.

The first variant is run twice and its first (compiling) run discarded. Reported: the
warm rate of each variant, and whether every variant's rows equal the first one's
(sorted by cell, draw and patient: the cut and the order must not change a number).

Usage::

    python benchmarks/sweep_units.py --patients 500 --genotype OTHER --json results/sweep_units.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pandas as pd  # noqa: E402
from sweep_throughput import CONFIG, run_record  # noqa: E402

from raisim.sweep import runner  # noqa: E402
from raisim.sweep.config import load_sweep  # noqa: E402


def run_variant(sweep, out: Path, chunk: int, ordered: bool) -> tuple[runner.RunReport, pd.DataFrame]:
    """One sweep run with ``cohort.chunk = chunk``; ``ordered=False`` drops the cost hint."""
    cohort = sweep.config.cohort.model_copy(update={"chunk": chunk})
    sweep.config = sweep.config.model_copy(update={"cohort": cohort})
    real = runner.run_cohort

    def unordered(*args, **kwargs):
        return real(*args, **{**kwargs, "cost_hint": None})

    runner.run_cohort = real if ordered else unordered
    try:
        rep = runner.run_sweep(sweep, out)
    finally:
        runner.run_cohort = real
    rows = runner.read_chunks(out).sort_values(["cell", "draw", "patient"], kind="stable")
    return rep, rows.reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=500)
    ap.add_argument("--genotype", default="OTHER", help="run only this genotype's cells")
    ap.add_argument("--cells", type=int, default=None, help="only the first N cells of that genotype")
    ap.add_argument(
        "--variants",
        default="128:ordered,100:ordered,128:unordered,128:ordered",
        help="comma-separated chunk:ordered|unordered, in run order",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    sweep = load_sweep(CONFIG, patients=args.patients)
    sweep.cells = [c for c in sweep.cells if c.genotype == args.genotype][: args.cells]
    if not sweep.cells:
        raise SystemExit(f"--genotype: no cell of {args.genotype!r} in {CONFIG.name}")
    variants = []
    for v in args.variants.split(","):
        chunk, how = v.split(":")
        if how not in ("ordered", "unordered"):
            raise SystemExit(f"--variants: {v!r}: chunk:ordered or chunk:unordered")
        variants.append((int(chunk), how == "ordered"))
    results, first_rows = [], None
    with tempfile.TemporaryDirectory() as tmp:
        run_variant(sweep, Path(tmp) / "compile", *variants[0])  # compilation, discarded
        for k, (chunk, ordered) in enumerate(variants):
            rep, rows = run_variant(sweep, Path(tmp) / f"v{k}", chunk, ordered)
            first_rows = rows if first_rows is None else first_rows
            same = bool(rows.drop(columns="steps").equals(first_rows.drop(columns="steps")))
            same_steps = bool(rows["steps"].equals(first_rows["steps"]))
            name = f"chunk {chunk}, {'ordered' if ordered else 'unordered'}"
            results.append(
                {
                    "variant": name,
                    "patient_protocols": rep.patient_protocols,
                    "wall_s": rep.wall_s,
                    "rate_per_s": rep.rate,
                    "rows_equal_first": same,
                    "steps_equal_first": same_steps,
                }
            )
            print(f"{name}: {rep.patient_protocols} in {rep.wall_s:.1f} s = {rep.rate:.1f}/s; rows equal: {same}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    **run_record(),
                    "genotype": args.genotype,
                    "cells": len(sweep.cells),
                    "patients": args.patients,
                    "runs": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    main()
