"""Single-patient benchmark: the jax/diffrax engine against a hand-written scipy solve of the same ODE.

One patient (the protocol's typical patient, first course: for ERRITI the
selection scan succeeds and I-131 is given on day 25) is simulated over a
fixed horizon (200 days by default). Reported:

- jax compile time of ``raisim.core.model.solve``, measured two ways:
  *first call − median warm call* (what a user sees on the first solve:
  tracing + lowering + XLA compilation), and ahead-of-time
  ``solve.lower(...)`` / ``.compile()`` after ``jax.clear_caches()``;
- time of one solve after compilation (median and min of ``--repeats``,
  with ``jax.block_until_ready``), and the number of solver steps;
- the same solve with ``benchmarks/reference_scipy.solve_reference`` (numpy
  right-hand side, scipy LSODA by default, same rtol/atol as the protocol's
  solver options, restarted at every dosing/TSH/iodine discontinuity), its
  median time, the ratio scipy / raisim, and the max relative difference of
  the two on ERK and membrane NIS (relative to each series' max over time);
- the error of both against a tight reference (scipy DOP853, rtol 1e-10,
  atol 1e-14);
- the machine, the date (UTC) and the library versions.

Usage::

    .venv/bin/python benchmarks/single_patient.py [--days 200] [--repeats 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from reference_scipy import solve_reference_with_stats  # noqa: E402

from raisim import load_protocol  # noqa: E402
from raisim.core.model import solve  # noqa: E402
from raisim.engine.simulate import prepare  # noqa: E402
from raisim.protocol.schedule import protocol_drugs  # noqa: E402
from raisim.runtime import available_cores  # noqa: E402

DEFAULT_PROTOCOL = REPO / "configs" / "protocols" / "erriti_21d.yaml"
TIGHT = {"method": "DOP853", "rtol": 1e-10, "atol": 1e-14}


# ---------------------------------------------------------------------------
# Set-up (as raisim.engine.simulate.simulate does it)
# ---------------------------------------------------------------------------


def setup(protocol_path: Path, days: float, grid_kind: str, seed: int = 0):
    prep = prepare(load_protocol(protocol_path), seed)
    p, t_start, t_end = prep.protocol, float(prep.grid[0]), days * 24.0
    if grid_kind == "uniform":
        grid = np.unique(np.append(np.arange(t_start, t_end, p.solver.output_step_h), t_end))
    else:
        # the protocol's grid (fine through the active phase, daily after), cut or extended to t_end
        grid = prep.grid[prep.grid <= t_end]
        if grid[-1] < t_end:
            grid = np.unique(np.concatenate([grid, np.arange(grid[-1], t_end, 24.0), [t_end]]))
    return p, prep.model, prep.courses[0], prep.schedules[0], grid


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------


def _rel(x: np.ndarray, ref: np.ndarray) -> float:
    x = np.asarray(x).reshape(len(x), -1)
    ref = np.asarray(ref).reshape(len(ref), -1)
    scale = np.abs(ref).max(axis=0)
    err = np.abs(x - ref).max(axis=0)
    return float(np.max(np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), err)))


def _quantities(ys, drug: str) -> dict[str, np.ndarray]:
    return {
        "erk": np.asarray(ys.pathway.erk),
        "membrane_nis": np.asarray(ys.nis.membrane),
        f"{drug}_central_mg": np.asarray(ys.pk.central_mg)[:, 0],
        "lesion_iodine": np.asarray(ys.iodine.lesion),
    }


def _diffs(ys, ref, drug: str) -> dict[str, float]:
    a, b = _quantities(ys, drug), _quantities(ref, drug)
    return {k: _rel(a[k], b[k]) for k in a}


def time_raisim(model, sched, ts, rtol, atol, max_steps, repeats):
    kw = {"rtol": rtol, "atol": atol, "max_steps": max_steps}
    t = time.perf_counter()
    sol = jax.block_until_ready(solve(model, sched, ts, **kw))
    first = time.perf_counter() - t
    warm = []
    for _ in range(repeats):
        t = time.perf_counter()
        sol = jax.block_until_ready(solve(model, sched, ts, **kw))
        warm.append(time.perf_counter() - t)
    # ahead-of-time, from cleared caches: tracing + lowering, then XLA compilation
    jax.clear_caches()
    t = time.perf_counter()
    lowered = solve.lower(model, sched, ts, **kw)
    t_lower = time.perf_counter() - t
    t = time.perf_counter()
    lowered.compile()
    t_compile = time.perf_counter() - t
    return sol, {
        "first_call_s": first,
        "warm_s": warm,
        "warm_median_s": statistics.median(warm),
        "warm_min_s": min(warm),
        "compile_first_minus_warm_s": first - statistics.median(warm),
        "aot_lower_s": t_lower,
        "aot_compile_s": t_compile,
        "aot_total_s": t_lower + t_compile,
        "num_steps": int(sol.num_steps),
        "ok": bool(sol.ok),
    }


def time_scipy(model, sched, ts, rtol, atol, method, repeats):
    times = []
    ref = stats = None
    for _ in range(repeats):
        t = time.perf_counter()
        ref, stats = solve_reference_with_stats(model, sched, ts, rtol=rtol, atol=atol, method=method)
        times.append(time.perf_counter() - t)
    return ref, {
        "method": method,
        "rtol": rtol,
        "atol": atol,
        "times_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        **stats,
    }


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = available_cores()
    versions = {}
    for pkg in ("raisim", "jax", "jaxlib", "diffrax", "equinox", "numpy", "scipy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "versions": versions,
    }


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _fmt_s(x: float) -> str:
    return f"{x * 1e3:.1f} ms" if x < 1.0 else f"{x:.2f} s"


def report(r: dict) -> str:
    m, rs, sc, tight = r["machine"], r["raisim"], r["scipy"], r["accuracy_vs_tight_reference"]
    rows = [
        ("Protocol / course", f"{r['protocol']} — {r['course']}"),
        (
            "Horizon",
            f"{r['t0_h']:g} h to {r['t1_h']:g} h ({r['days']:g} days), {r['n_save']} save points ({r['grid']})",
        ),
        (
            "State size",
            f"{r['state_size']} (drugs {r['n_drugs']}, lesions {r['n_lesions']}, channels {r['n_channels']})",
        ),
        ("Tolerances", f"rtol {r['rtol']:g}, atol {r['atol']:g} (protocol solver options)"),
        ("", ""),
        ("raisim (diffrax Tsit5, jit)", ""),
        ("  first call (trace+compile+run)", _fmt_s(rs["first_call_s"])),
        ("  compile = first − warm median", _fmt_s(rs["compile_first_minus_warm_s"])),
        ("  AOT lower / compile", f"{_fmt_s(rs['aot_lower_s'])} / {_fmt_s(rs['aot_compile_s'])}"),
        (
            "  solve, median (min) of " + str(len(rs["warm_s"])),
            f"{_fmt_s(rs['warm_median_s'])} ({_fmt_s(rs['warm_min_s'])})",
        ),
        ("  solver steps", f"{rs['num_steps']} (ok={rs['ok']})"),
        ("", ""),
        (f"scipy reference ({sc['method']}, numpy RHS)", ""),
        ("  solve, median (min) of " + str(len(sc["times_s"])), f"{_fmt_s(sc['median_s'])} ({_fmt_s(sc['min_s'])})"),
        ("  segments / steps / RHS evals", f"{sc['n_segments']} / {sc['n_steps']} / {sc['nfev']} (jac {sc['njev']})"),
        ("  ratio scipy / raisim (median)", f"{r['ratio_scipy_over_raisim']:.1f}x"),
        ("", ""),
        ("max rel. diff raisim vs scipy", "(|Δ| / max over time of the series)"),
    ]
    for k, v in r["diff_raisim_vs_scipy"].items():
        rows.append((f"  {k}", f"{v:.2e}"))
    rows += [("", ""), (f"error vs tight ref ({TIGHT['method']} rtol {TIGHT['rtol']:g})", "raisim | scipy")]
    for k in tight["raisim"]:
        rows.append((f"  {k}", f"{tight['raisim'][k]:.2e} | {tight['scipy'][k]:.2e}"))
    rows += [
        ("", ""),
        ("Machine", m["platform"]),
        ("CPU", f"{m['cpu_model']} ({m['cpu_count']} cores, {m['cpu_usable']} usable)"),
        ("jax backend / devices", f"{m['jax_backend']} / {', '.join(m['jax_devices'])}"),
        ("Python", m["python"]),
        ("Versions", ", ".join(f"{k} {v}" for k, v in m["versions"].items())),
        ("Date", m["date_utc"]),
    ]
    w = max(len(k) for k, _ in rows)
    lines = ["Single-patient benchmark: raisim (jax/diffrax) vs scipy reference", "=" * 72]
    lines += [f"{k:<{w}}  {v}".rstrip() for k, v in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=200.0, help="horizon, days from the first dose (default 200)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of each solve (default 5)")
    ap.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    ap.add_argument("--protocol", type=Path, default=DEFAULT_PROTOCOL, help="protocol YAML (default ERRITI 21 d)")
    ap.add_argument("--method", choices=("LSODA", "RK45", "DOP853"), default="LSODA", help="scipy method")
    ap.add_argument(
        "--grid",
        choices=("protocol", "uniform"),
        default="protocol",
        help="protocol: the protocol's time_grid cut to the horizon (output step through the active phase, "
        "daily after); uniform: the output step throughout",
    )
    a = ap.parse_args(argv)
    if a.repeats < 1:
        ap.error("--repeats must be >= 1")

    p, model, course, sched, grid = setup(a.protocol, a.days, a.grid)
    ts = jnp.asarray(grid)
    rtol, atol, max_steps = p.solver.rtol, p.solver.atol, p.solver.max_steps

    sol, rs = time_raisim(model, sched, ts, rtol, atol, max_steps, a.repeats)
    ys = jax.tree_util.tree_map(np.asarray, sol.ys)
    ref, sc = time_scipy(model, sched, grid, rtol, atol, a.method, a.repeats)
    tight, _ = solve_reference_with_stats(model, sched, grid, **TIGHT)

    flat = jax.tree_util.tree_leaves(ys)
    drug = protocol_drugs(p)[0]
    result = {
        "protocol": p.name,
        "course": course.describe(),
        "days": a.days,
        "t0_h": float(grid[0]),
        "t1_h": float(grid[-1]),
        "n_save": int(len(grid)),
        "grid": a.grid,
        "state_size": int(sum(x[0].size for x in flat)),
        "n_drugs": int(model.pk.ka_per_h.shape[0]),
        "n_lesions": int(model.iodine.lesion_mass_g.shape[0]),
        "n_channels": int(sched.channels.admin_time_h.shape[0]),
        "rtol": rtol,
        "atol": atol,
        "max_steps": max_steps,
        "compile_time_method": "first call minus median warm call; also AOT solve.lower()/.compile() "
        "after jax.clear_caches()",
        "raisim": rs,
        "scipy": sc,
        "ratio_scipy_over_raisim": sc["median_s"] / rs["warm_median_s"],
        "diff_raisim_vs_scipy": _diffs(ys, ref, drug),
        "accuracy_vs_tight_reference": {
            "reference": TIGHT,
            "raisim": _diffs(ys, tight, drug),
            "scipy": _diffs(ref, tight, drug),
        },
        "machine": machine_info(),
    }
    print(report(result))
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {a.json}")
    return result


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    main()
