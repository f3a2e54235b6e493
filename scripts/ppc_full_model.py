"""Posterior predictive check on the full model: `raisim predict` over the shipped trials table.

The calibration's own check (ppc.csv) reads arm probabilities from the emulator; this one runs
every arm through the full model under posterior draws (the same machinery as `raisim predict`)
and writes models/posterior/ppc_full_model.csv in the layout of ppc.csv.
Usage: python scripts/ppc_full_model.py [--draws 8] [--patients 32]
"""

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from raisim.calibration.fit import predictive_interval
from raisim.calibration.predict import predict_table
from raisim.io.parameter_draws import evenly_spaced, read_draws
from raisim.io.trials import load_trials

REPO = Path(__file__).resolve().parents[1]


def main(draws: int, patients: int) -> None:
    table = load_trials(REPO / "models" / "data" / "trials.csv")
    post = evenly_spaced(read_draws(REPO / "models" / "posterior" / "posterior.nc", "<script>", "posterior"), draws)
    t0 = time.time()
    results = predict_table(table, post, patients=patients, seed=0, keep_pmf=True, progress=lambda r: None)
    rows = {r.line: r for r in table.rows}
    out = []
    for res in results:
        row = rows[res["row"]]
        for name, o in res["outcomes"].items():
            lo, hi = predictive_interval(o["pmf"], 0.95)
            obs = o["observed"]
            out.append(
                {
                    "observation": f"row{row.line}",
                    "trial": row.trial,
                    "arm": row.arm,
                    "endpoint": row.endpoint,
                    "criterion": row.criterion,
                    "count": name,
                    "n": row.n,
                    "observed": obs,
                    "mean": o["mean"],
                    "q05": o["q05"],
                    "q50": o["q50"],
                    "q95": o["q95"],
                    "lo95": lo,
                    "hi95": hi,
                    "p_tail": o["p_tail"],
                    "inside95": None if obs is None else bool(lo <= obs <= hi),
                }
            )
    frame = pd.DataFrame(out)
    frame.to_csv(REPO / "models" / "posterior" / "ppc_full_model.csv", index=False)
    inside = frame["inside95"].dropna()
    print(
        f"full-model PPC: {draws} posterior draws x {patients} virtual patients, {time.time() - t0:.0f} s; "
        f"{int(inside.sum())}/{len(inside)} observed counts inside their 95 % interval",
        file=sys.stderr,
    )


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--patients", type=int, default=32)
    a = ap.parse_args()
    main(a.draws, a.patients)
