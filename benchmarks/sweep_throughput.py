"""Full-chain throughput of the batched engine, against the scipy reference on the same patients.

One grid cell of ``configs/sweeps/duration.yaml`` (BRAF V600E, trametinib +
dabrafenib 75 mg, 21 days, I-123 scan at end + 1, dosimetry-guided RAI at
end + 2, RECIST to 12 months): every patient solves both courses of the
protocol (selection succeeds / fails), from the first tablet to RECIST.

Measured, in one run on this machine:

1. raisim: compile time, then patient-protocols per second (warm) on
   ``--patients`` virtual patients, split over one CPU device per core (as
   ``raisim sweep`` does; ``--compare-one-device`` also times one device);
2. the reference (``benchmarks/reference_scipy.py``: the same model in
   numpy/scipy, LSODA piecewise between discontinuities, the engine's
   outcome rules run unbatched on its solutions, a Python loop over patients) on the first ``--reference``
   of the same patients, with the same tolerances — the ratio of the two
   rates, and the largest differences of the outcomes;
3. optionally (``--scaling``) warm time against cohort size and against the
   number of lesion slots.

Usage::

    python benchmarks/sweep_throughput.py --patients 512 --reference 200 --json results/sweep_throughput.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from reference_scipy import reference_patient  # noqa: E402

from raisim.engine.batch import run_cohort, typical_model  # noqa: E402
from raisim.engine.cohort import cohort_model, sample_cohort  # noqa: E402
from raisim.engine.plan import cell_shapes  # noqa: E402
from raisim.io.store import library_versions  # noqa: E402
from raisim.protocol.schedule import protocol_drugs  # noqa: E402
from raisim.runtime import available_cores  # noqa: E402
from raisim.sweep.config import load_sweep  # noqa: E402

CONFIG = HERE.parent / "configs" / "sweeps" / "duration.yaml"


def the_cell(stop_day: int = 21, genotype: str = "BRAF_V600E"):
    """The ``T + D75`` cell of ``duration.yaml`` for ``genotype`` (BRAF V600E: trametinib + dabrafenib;
    RAS: trametinib alone) stopped on ``stop_day``, and the sweep."""
    sweep = load_sweep(CONFIG)
    return next(
        c
        for c in sweep.cells
        if c.genotype == genotype and c.arm == "T + D75" and c.knobs["treatment.stop_day"] == stop_day
    ), sweep


def run_record() -> dict:
    """When and where a sweep benchmark ran: date (UTC), machine, jax backend and devices, library versions."""
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": available_cores()},
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.local_devices()],
        "libraries": library_versions(),
    }


def time_raisim(p, cohort, solver, repeats: int = 2, devices: int | None = None, cost_hint=None) -> tuple[dict, dict]:
    """Compile, then time ``repeats`` warm runs on ``devices`` local devices (None: all of them)."""
    devices = devices or len(jax.local_devices())
    t = time.perf_counter()
    out = run_cohort(p, cohort, solver=solver, devices=devices, cost_hint=cost_hint).columns()
    first = time.perf_counter() - t
    warm = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = run_cohort(p, cohort, solver=solver, devices=devices, cost_hint=cost_hint).columns()
        warm.append(time.perf_counter() - t)
    best = min(warm)
    return out, {
        "patients": len(cohort),
        "devices": devices,
        "first_call_s": first,
        "warm_s": warm,
        "compile_s_approx": first - best,
        "patient_protocols_per_s": len(cohort) / best,
        "mean_steps_per_patient": float(np.mean(out["steps"])),
        "solver_failures": int((~out["ok"]).sum()),
    }


def compare(ref: list[dict], out: dict, months: list[float]) -> dict:
    def rel(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        both = np.isfinite(a) & np.isfinite(b)
        scale = np.maximum(np.abs(b), 1.0)
        return float(np.max(np.abs(a - b)[both] / scale[both])) if both.any() else 0.0

    n = len(ref)
    col = lambda k: [r[k] for r in ref]  # noqa: E731
    m6 = months.index(6.0) if 6.0 in months else 0
    return {
        "patients": n,
        "readout_p_max_abs_diff": float(np.max(np.abs(np.asarray(col("readout_p")) - out["readout_p"][:n]))),
        "treated_agree": float(np.mean(np.asarray(col("treated")) == out["treated"][:n])),
        "activity_gbq_max_rel_diff": rel(out["activity_gbq"][:n], col("activity_gbq")),
        "best_lesion_gy_max_rel_diff": rel(out["best_lesion_gy"][:n], col("best_lesion_gy")),
        "sum_change_pct_6m_max_abs_diff_pct_points": float(
            np.nanmax(np.abs(out["sum_change_pct"][:n, m6] - np.asarray(col("sum_change_pct"))[:, m6]))
        ),
        "recist_6m_agree": float(np.mean(out["recist"][:n, m6] == np.asarray(col("recist"))[:, m6])),
        "pfs_both_nan_or_equal": float(
            np.mean(
                (np.isnan(out["pfs_months"][:n]) & np.isnan(np.asarray(col("pfs_months"), float)))
                | np.isclose(out["pfs_months"][:n], np.asarray(col("pfs_months"), float), atol=1e-6)
            )
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=512, help="virtual patients for the raisim timing")
    ap.add_argument("--reference", type=int, default=200, help="patients run through the scipy reference (0: skip)")
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--scaling", action="store_true", help="also time 128..4096 patients and 1..10 lesion slots")
    ap.add_argument(
        "--compare-tsit5", action="store_true", help="also time the same patients with Tsit5 to the end (no RKC tail)"
    )
    ap.add_argument(
        "--compare-one-device", action="store_true", help="also time the same patients on one CPU device (all cores)"
    )
    ap.add_argument(
        "--dtype", choices=["float64", "float32"], default=None, help="precision (default: the sweep config's)"
    )
    ap.add_argument("--rtol", type=float, default=None, help="relative tolerance (default: the sweep config's)")
    ap.add_argument("--atol", type=float, default=None, help="absolute tolerance (default: the sweep config's)")
    ap.add_argument(
        "--ordered",
        action="store_true",
        help="also time the cell ordered by the steps of the 14-day cell (as raisim sweep orders units)",
    )
    ap.add_argument(
        "--genotype", default="BRAF_V600E", help="the cell's genotype (RAS: a single-drug cell; default BRAF_V600E)"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    cell, sweep = the_cell(genotype=args.genotype)
    p = cell.protocol
    cfg = sweep.config
    given = {k: v for k, v in (("dtype", args.dtype), ("rtol", args.rtol), ("atol", args.atol)) if v is not None}
    solver = type(cfg.solver).model_validate(cfg.solver.model_dump() | given).settings(args.micro_batch)
    cohort = sample_cohort(args.patients, cfg.seed, max_lesions=cfg.cohort.max_lesions)
    out, rs = time_raisim(p, cohort, solver)
    rate, compile_s = rs["patient_protocols_per_s"], rs["compile_s_approx"]
    print(f"raisim: {rate:.1f} patient-protocols/s warm on {rs['devices']} device(s), compile ~{compile_s:.0f} s")
    result = {
        **run_record(),
        "cell": {**cell.labels(), "protocol": p.name},
        "solver": {
            "rtol": solver.rtol,
            "atol": solver.atol,
            "micro_batch": solver.micro_batch,
            "dtype": solver.dtype,
            "tail_delay_h": solver.tail_delay_h,
        },
        "raisim": rs,
    }
    if args.compare_one_device and rs["devices"] > 1:
        out_one, r1 = time_raisim(p, cohort, solver, devices=1)
        result["raisim_one_device"] = r1
        result["one_device_identical"] = all(
            np.array_equal(np.asarray(out[k]), np.asarray(out_one[k]), equal_nan=np.asarray(out[k]).dtype.kind == "f")
            for k in out
        )
        print(f"one device: {r1['patient_protocols_per_s']:.1f} patient-protocols/s warm")
    if args.ordered:
        # raisim sweep orders a unit by the steps of the previous unit of the same genotype and arm;
        # here that is the 14-day cell (typical parameters), run once on the same patients
        previous = the_cell(14, args.genotype)[0].protocol
        hint = run_cohort(previous, cohort, solver=solver).summary.steps
        out_ord, ro = time_raisim(p, cohort, solver, cost_hint=hint)
        result["raisim_ordered_by_14_day_steps"] = ro
        result["ordered_identical"] = all(
            np.array_equal(np.asarray(out[k]), np.asarray(out_ord[k]), equal_nan=np.asarray(out[k]).dtype.kind == "f")
            for k in out
        )
        result["ordered_over_unordered"] = ro["patient_protocols_per_s"] / rate
        print(
            f"ordered by the 14-day cell's steps: {ro['patient_protocols_per_s']:.1f} patient-protocols/s warm "
            f"({result['ordered_over_unordered']:.2f}x; identical: {result['ordered_identical']})"
        )
    if args.compare_tsit5:
        plain = dataclasses.replace(solver, tail_delay_h=None)
        out_plain, rp = time_raisim(p, cohort, plain, repeats=1)
        result["raisim_tsit5_to_the_end"] = rp
        result["tsit5_vs_rkc_tail_max_abs_diff"] = {
            k: float(np.nanmax(np.abs(np.asarray(out[k], float) - np.asarray(out_plain[k], float))))
            for k in ("readout_p", "activity_gbq", "best_lesion_gy", "sum_change_pct", "tg_change_pct")
        }
        print(f"Tsit5 to the end: {rp['patient_protocols_per_s']:.1f} patient-protocols/s warm")
    if args.reference:
        n = min(args.reference, len(cohort))
        models = cohort_model(typical_model(p, cohort.max_lesions), cohort, protocol_drugs(p))
        models = models.with_drug_slots(cell_shapes(p).drugs)
        reference_patient(p, cohort, models, 0, solver.rtol, solver.atol)  # compiles its outcome rules: not timed
        t = time.perf_counter()
        ref = [reference_patient(p, cohort, models, i, solver.rtol, solver.atol) for i in range(n)]
        wall = time.perf_counter() - t
        ref_rate = n / wall
        result["reference"] = {
            "patients": n,
            "wall_s": wall,
            "patient_protocols_per_s": ref_rate,
            "method": "LSODA (piecewise), the engine's outcome rules unbatched",
        }
        result["ratio_raisim_over_reference"] = rs["patient_protocols_per_s"] / ref_rate
        result["agreement"] = compare(ref, out, list(p.followup.months))
        print(
            f"reference: {ref_rate:.3f}/s on {n} patients -> ratio {result['ratio_raisim_over_reference']:.0f}x; "
            f"agreement {json.dumps(result['agreement'])}"
        )
    if args.scaling:
        result["scaling_patients"] = {}
        for n in (128, 512, 2048, 4096):
            co = sample_cohort(n, cfg.seed, max_lesions=cfg.cohort.max_lesions)
            _, r = time_raisim(p, co, solver, repeats=1)
            result["scaling_patients"][n] = r["warm_s"][0]
            print(f"  {n} patients: {r['warm_s'][0]:.1f} s ({r['patient_protocols_per_s']:.1f}/s)")
        result["scaling_lesions"] = {}
        for lesions in (1, 3, 5, 10):
            co = sample_cohort(256, cfg.seed, max_lesions=lesions)
            _, r = time_raisim(p, co, solver, repeats=1)
            result["scaling_lesions"][lesions] = r["warm_s"][0]
            print(f"  {lesions} lesion slots, 256 patients: {r['warm_s'][0]:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    main()
