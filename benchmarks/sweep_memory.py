"""Peak resident memory of `raisim sweep` against the number of patient-protocols.

Runs the CLI in a fresh process per size on one cell (RAS, trametinib 21 days,
ERRITI scan and dosimetry-guided RAI) and reads the peak RSS from
``/usr/bin/time -v``. Results stream to Parquet chunk by chunk, so the peak
should not grow with the run.

Usage: python benchmarks/sweep_memory.py 1000 10000 [--chunk 500]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run(patients: int, chunk: int, work: Path) -> dict:
    cfg = {
        "name": f"memory {patients}",
        "protocol": str(REPO / "configs" / "protocols" / "erriti_21d.yaml"),
        "grid": {"treatment.stop_day": [21]},
        "set": {"scans[0].day": "end + 1", "rai.day": "end + 2", "rai.tki_days_after_rai": None},
        "genotypes": ["RAS"],
        "cohort": {"patients": patients, "max_lesions": 5, "chunk": chunk},
    }
    path = work / f"m{patients}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = work / f"run{patients}"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "raisim.cli", "sweep", str(path), "--out", str(out)]
    t = time.perf_counter()
    proc = subprocess.run(cmd + ["--no-progress"], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {"patient_protocols": patients, "chunk": chunk, "peak_rss_mb": rss_kb / 1024, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", type=int, nargs="+")
    ap.add_argument("--chunk", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for n in args.sizes:
            print(run(n, args.chunk, Path(d)), flush=True)


if __name__ == "__main__":
    main()
