"""What a user waits for in compilation: the demo sweep and ``predict``, with a cold and a warm cache.

Each job runs in a fresh process (as a user's command does), first with an empty persistent
compilation cache, then again with the cache the first left, and once with the cache off; the
counter of :mod:`raisim.compilation` gives the programs, the trace / lower / backend-compile seconds
and the cache hits and misses of each. The jobs:

- ``demo``: ``raisim sweep configs/sweeps/duration_demo.yaml`` (what ``make demo`` runs first; its
  ``complete.json`` records the counter);
- ``predict``: ``predict_table`` on ``models/data/trials.csv`` with the CLI's defaults (8 posterior
  draws, 32 patients), in one process, the counter read after it.

Usage::

    python benchmarks/compile_cost.py --jobs demo predict --json results/compile_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PREDICT = """
import json, sys, time
import raisim
raisim.configure()
from raisim.calibration.predict import predict_table
from raisim.compilation import compile_stats
from raisim.io.parameter_draws import evenly_spaced, read_draws, shipped_posterior
from raisim.io.trials import load_trials
table = load_trials(sys.argv[1], observed=False)
draws = evenly_spaced(read_draws(shipped_posterior(), "<bench>", "posterior"), int(sys.argv[2]))
start = time.perf_counter()
predict_table(table, draws, patients=int(sys.argv[3]), seed=0)
print(json.dumps({"work_s": time.perf_counter() - start, **compile_stats().to_dict()}))
"""


def run_job(job: str, cache: str, out: Path, args) -> dict:
    """One job in a fresh process with ``RAISIM_CACHE_DIR=cache``: wall seconds and the counter."""
    env = dict(os.environ, RAISIM_CACHE_DIR=cache, PYTHONWARNINGS="ignore")
    if job == "demo":
        cmd = [sys.executable, "-m", "raisim.cli", "sweep", str(REPO / "configs/sweeps/duration_demo.yaml")]
        cmd += ["--out", str(out), "--force", "--no-progress"]
    else:
        cmd = [sys.executable, "-c", _PREDICT, str(args.trials), str(args.draws), str(args.patients)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{job} failed:\n{proc.stderr[-3000:]}")
    if job == "demo":
        stats = json.loads((out / "complete.json").read_text())["compilation"]
    else:
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
    stats.pop("by_name", None)
    return {"job": job, "wall_s": round(wall, 1), **stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", nargs="+", choices=("demo", "predict"), default=["demo", "predict"])
    ap.add_argument("--trials", default=str(REPO / "models/data/trials.csv"))
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--patients", type=int, default=32)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for job in args.jobs:
            cache = str(Path(tmp) / f"cache-{job}")
            for label, c in (("cold cache", cache), ("warm cache", cache), ("no cache", "off")):
                row = {"run": label, **run_job(job, c, Path(tmp) / f"out-{job}", args)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    meta = {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "load_1min": os.getloadavg()[0],
    }
    print(json.dumps(meta))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
