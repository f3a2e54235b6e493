"""Population-PK throughput: closed-form and ODE paths vs a scipy solve_ivp loop.

100,000 virtual patients (IIV and covariates from the cards) × 42 days of
trametinib 2 mg q24h + dabrafenib 150 mg q12h. Reports patients/s of

- the closed-form path (trametinib: linear, exact superposition),
- the ODE path (diffrax Tsit5, jit + vmap in chunks) for trametinib alone and
  for trametinib + dabrafenib (autoinduction needs the ODE),
- a Python loop over ``scipy.integrate.solve_ivp`` (LSODA, piecewise between
  doses) for the same two-drug model on 1,000 patients,

and the ratio ODE-path / scipy in patients/s, in one run.

    .venv/bin/python benchmarks/pk_population.py [--n 100000] [--n-scipy 1000] [--chunk 5000] [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raisim.biology.population_pk import closed_form_central_mg, concentration_ng_ml, sample_population, solve_pk  # noqa: E402

DRUGS = ("trametinib", "dabrafenib")
REGIMEN = {"trametinib": (2.0, 24.0), "dabrafenib": (150.0, 12.0)}
DAYS = 42
FAR = 1e12


def dose_arrays(drugs):
    n_max = max(int(DAYS * 24 / REGIMEN[d][1]) for d in drugs)
    T = np.full((len(drugs), n_max), FAR)
    A = np.zeros((len(drugs), n_max))
    for j, d in enumerate(drugs):
        dose, tau = REGIMEN[d]
        t = np.arange(0.0, DAYS * 24.0, tau)
        T[j, : len(t)] = t
        A[j, : len(t)] = dose
    return jnp.asarray(T), jnp.asarray(A)


def covariates(n, seed=11):
    rng = np.random.default_rng(seed)
    sex = np.where(rng.random(n) < 0.5, "female", "male")
    weight = np.clip(rng.normal(75.0, 12.0, n), 45.0, 130.0)
    return sex, weight


def _slice(pop, i, j):
    return jax.tree_util.tree_map(lambda x: x[i:j] if hasattr(x, "shape") and x.ndim >= 1 else x, pop)


def run_path(pop, n, chunk, fn):
    """Run ``fn`` (vmapped) over the population in chunks; returns (seconds, first-chunk compile seconds, summary)."""
    vfn = jax.jit(jax.vmap(fn))
    t0 = time.perf_counter()
    first = vfn(_slice(pop, 0, min(chunk, n)))
    jax.block_until_ready(first)
    t_first = time.perf_counter() - t0
    # time a warm run of the first chunk to separate compile time
    t0 = time.perf_counter()
    jax.block_until_ready(vfn(_slice(pop, 0, min(chunk, n))))
    t_warm = time.perf_counter() - t0
    outs = [np.asarray(first)]
    t0 = time.perf_counter()
    for i in range(chunk, n, chunk):
        outs.append(np.asarray(vfn(_slice(pop, i, min(i + chunk, n)))))
    t_rest = time.perf_counter() - t0
    total_run = t_warm + t_rest  # every chunk once, compilation excluded
    return total_run, t_first - t_warm, np.concatenate(outs)


def scipy_patient(pk_row: dict, T: np.ndarray, A: np.ndarray, ts: np.ndarray, rtol=1e-7, atol=1e-10) -> np.ndarray:
    """Same two-drug model in numpy, solve_ivp LSODA piecewise between dose (and lag) times."""
    d = len(pk_row["ka"])
    breaks = np.unique(np.concatenate([[ts[0], ts[-1]], T[T < FAR], (T + pk_row["tlag"][:, None])[T < FAR]]))
    breaks = breaks[(breaks >= ts[0]) & (breaks <= ts[-1])]

    def rhs(t, y):
        c = y[:d] / pk_row["v1"]
        p = y[d : 2 * d] / pk_row["v2"]
        e = y[2 * d :]
        s = t - T - pk_row["tlag"][:, None]
        on = s >= 0
        inp = np.sum(
            np.where(on, A * pk_row["ka"][:, None] * np.exp(-pk_row["ka"][:, None] * np.where(on, s, 0.0)), 0.0), 1
        )
        elim = pk_row["cl"] * e * c
        dist = pk_row["q"] * (c - p)
        cng = np.maximum(c, 0.0) * 1000.0
        tgt = 1.0 + (pk_row["fold"] - 1.0) * cng / (pk_row["ec50"] + cng)
        return np.concatenate([inp - elim - dist, dist, pk_row["krate"] * (tgt - e)])

    y = np.concatenate([np.zeros(2 * d), np.ones(d)])
    out = np.empty((len(ts), d))
    out[-1] = np.nan  # filled after the loop (the last segment's end)
    for a, b in zip(breaks[:-1], breaks[1:], strict=True):
        sel = (ts >= a) & (ts < b)
        t_eval = np.append(ts[sel], b)  # the segment end is always evaluated: it starts the next segment
        sol = solve_ivp(rhs, (a, b), y, method="LSODA", rtol=rtol, atol=atol, t_eval=t_eval)
        if sel.any():
            out[sel] = sol.y[:d, :-1].T / pk_row["v1"] * 1000.0
        y = sol.y[:, -1]
    out[-1] = y[:d] / pk_row["v1"] * 1000.0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n-scipy", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=5000)
    ap.add_argument("--rtol", type=float, default=1e-7, help="relative tolerance (raisim ODE and scipy)")
    ap.add_argument("--atol", type=float, default=1e-10, help="absolute tolerance, mg")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    ts = jnp.arange(0.0, DAYS * 24.0 + 1e-9, 4.0)  # 4-hourly over 42 days
    sex, weight = covariates(args.n)
    pop2 = sample_population(DRUGS, args.n, seed=1, sex=sex, weight_kg=weight)
    pop1 = sample_population(DRUGS[:1], args.n, seed=1, sex=sex, weight_kg=weight)
    T1, A1 = dose_arrays(DRUGS[:1])
    T2, A2 = dose_arrays(DRUGS)

    def summary(conc):  # day-42 trough and Cmax per drug (keeps memory small)
        return jnp.stack([conc[-1], jnp.max(conc, axis=0)])

    def closed(pk):
        return summary(concentration_ng_ml(pk, closed_form_central_mg(pk, ts, T1, A1)))

    def ode1(pk):
        ys, ok = solve_pk(pk, T1, A1, ts, rtol=args.rtol, atol=args.atol)
        return summary(jnp.where(ok, concentration_ng_ml(pk, ys.central_mg), jnp.nan))

    def ode2(pk):
        ys, ok = solve_pk(pk, T2, A2, ts, rtol=args.rtol, atol=args.atol)
        return summary(jnp.where(ok, concentration_ng_ml(pk, ys.central_mg), jnp.nan))

    res = {}
    for name, pop, fn in (
        ("closed_form_trametinib", pop1, closed),
        ("ode_trametinib", pop1, ode1),
        ("ode_trametinib_dabrafenib", pop2, ode2),
    ):
        secs, compile_s, out = run_path(pop, args.n, args.chunk, fn)
        res[name] = {
            "seconds": secs,
            "compile_seconds": compile_s,
            "patients_per_s": args.n / secs,
            "failed": int(np.isnan(out).any(axis=(1, 2)).sum()),
        }
        if name == "closed_form_trametinib":
            closed_out = out
        if name == "ode_trametinib":
            res["closed_vs_ode_max_rel_diff"] = float(np.nanmax(np.abs(out - closed_out) / np.abs(out)))
        if name == "ode_trametinib_dabrafenib":
            ode2_out = out
        print(f"{name:28s} {secs:8.2f} s  {args.n / secs:10.0f} patients/s  (compile {compile_s:.1f} s)", flush=True)

    # scipy loop on the first n_scipy patients, same two-drug model
    keys = {
        "ka": "ka_per_h",
        "tlag": "tlag_h",
        "cl": "cl_l_per_h",
        "v1": "v1_l",
        "q": "q_l_per_h",
        "v2": "v2_l",
        "fold": "induction_fold",
        "ec50": "induction_ec50_ng_ml",
        "krate": "induction_rate_per_h",
    }
    arrays = {k: np.asarray(getattr(pop2, v)) for k, v in keys.items()}
    Tn, An, tsn = np.asarray(T2), np.asarray(A2), np.asarray(ts)
    t0 = time.perf_counter()
    diffs = []
    for i in range(args.n_scipy):
        c = scipy_patient({k: v[i] for k, v in arrays.items()}, Tn, An, tsn, args.rtol, args.atol)
        ref = np.stack([c[-1], c.max(axis=0)])
        diffs.append(np.max(np.abs(ref - ode2_out[i]) / np.abs(ref)))
    secs = time.perf_counter() - t0
    res["scipy_lsoda_loop"] = {
        "seconds": secs,
        "patients_per_s": args.n_scipy / secs,
        "n": args.n_scipy,
        "max_rel_diff_vs_ode_summary": float(np.max(diffs)),
    }
    ratio = res["ode_trametinib_dabrafenib"]["patients_per_s"] / res["scipy_lsoda_loop"]["patients_per_s"]
    res["ratio_ode_vs_scipy_patients_per_s"] = ratio
    print(f"{'scipy LSODA loop':28s} {secs:8.2f} s  {args.n_scipy / secs:10.1f} patients/s  (n = {args.n_scipy})")
    agree = res["scipy_lsoda_loop"]["max_rel_diff_vs_ode_summary"]
    print(
        f"ratio raisim ODE / scipy (T+D): {ratio:.0f}x; closed-form vs ODE max rel diff "
        f"{res['closed_vs_ode_max_rel_diff']:.1e}; raisim vs scipy summaries {agree:.1e}"
    )
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    res["machine"] = {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "jax_devices": [str(d) for d in jax.devices()],
    }
    res["date_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    res["n"] = args.n
    res["rtol"], res["atol"] = args.rtol, args.atol
    print(f"machine: {cpu} ({os.cpu_count()} cores), {jax.devices()}, {res['date_utc']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    raise SystemExit(main())
