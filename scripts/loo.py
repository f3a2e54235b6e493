"""Leave-one-trial-out: fit without each trial (on the shipped emulator) and predict its rows.

Writes models/posterior/loo.csv (what `make loo` ships) from results/loo/<trial>/loo.csv.
Usage: python scripts/loo.py [--method nuts|svi]
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from raisim.cli import main as raisim
from raisim.io.trials import load_trials

REPO = Path(__file__).resolve().parents[1]


def run(method: str) -> None:
    trials = sorted({r.trial for r in load_trials(REPO / "models" / "data" / "trials.csv").rows})
    frames = []
    for t in trials:
        out = REPO / "results" / "loo" / t
        print(f"leave out {t}", file=sys.stderr)
        code = raisim(
            [
                "calibrate",
                str(REPO / "configs/calibration/default.yaml"),
                "--out",
                str(out),
                "--force",
                "--leave-out",
                t,
                "--method",
                method,
                "--no-progress",
            ]
        )
        if code != 0:
            sys.exit(code)
        frames.append(pd.read_csv(out / "loo.csv"))
    loo = pd.concat(frames, ignore_index=True)
    loo.to_csv(REPO / "models" / "posterior" / "loo.csv", index=False)
    print(f"wrote models/posterior/loo.csv ({len(loo)} counts of {len(trials)} trials)")


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="nuts", choices=("nuts", "svi"))
    run(ap.parse_args().method)
