"""Copy a calibration run's results into models/posterior/ (what `make calibrate` ships).

Usage: python scripts/ship_posterior.py RUN_DIR
"""

import shutil
import sys
from pathlib import Path

FILES = (
    "posterior.nc",
    "emulator.npz",
    "facts.npz",
    "emulator_validation.csv",
    "diagnostics.csv",
    "ppc.csv",
    "ppc.png",
    "prior_predictive.csv",
    "prior_predictive.png",
    "manifest.json",
)


def main(run: Path) -> None:
    dest = Path(__file__).resolve().parents[1] / "models" / "posterior"
    dest.mkdir(parents=True, exist_ok=True)
    missing = [f for f in FILES if not (run / f).exists()]
    if missing:
        sys.exit(f"error: {run}: missing {', '.join(missing)} (run raisim calibrate with --retrain first)")
    for f in FILES:
        shutil.copy2(run / f, dest / f)
    print(f"shipped {len(FILES)} files to {dest}")


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    main(Path(sys.argv[1]))
