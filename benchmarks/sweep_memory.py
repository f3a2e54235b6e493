"""Resident memory of `raisim sweep` against the number of patient-protocols.

Runs the CLI in a fresh process per size on one cell (by default: RAS, trametinib
21 days, ERRITI I-123 scan at end + 1 and dosimetry-guided RAI at end + 2, up to
5 lesions, follow-up to 12 months) and samples the process's resident set from
``/proc/<pid>/status`` once a second (Linux): ``VmRSS`` against the number of
chunk files written, and ``VmHWM`` (the peak) at the end. So one large run also
shows its memory after 10⁴, 10⁵, ... patient-protocols were done, and whether the
peak comes from compilation, the chunks or the summary. Results stream to Parquet
chunk by chunk, so neither should grow with the run.

Usage::

    python benchmarks/sweep_memory.py 1000 10000 [--chunk 500]
    python benchmarks/sweep_memory.py 1000000 --chunk 2000 --stop-day 7 --max-lesions 1 --months 6

(the second: a cheaper cell — 7 days, one lesion, RECIST to 6 months — so that 10⁶
patient-protocols fit in about an hour on two cores).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a live process, kB (empty once it has exited)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}


def run(patients: int, args, work: Path) -> dict:
    cfg = {
        "name": f"memory {patients}",
        "protocol": str(REPO / "configs" / "protocols" / "erriti_21d.yaml"),
        "grid": {"treatment.stop_day": [args.stop_day]},
        "set": {
            "scans[0].day": "end + 1",
            "rai.day": "end + 2",
            "rai.tki_days_after_rai": None,
            "followup.months": args.months,
        },
        "genotypes": [args.genotype],
        "cohort": {"patients": patients, "max_lesions": args.max_lesions, "chunk": args.chunk},
    }
    path = work / f"m{patients}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = work / f"run{patients}"
    cmd = [sys.executable, "-m", "raisim.cli", "sweep", str(path), "--out", str(out), "--no-progress"]
    log = work / f"m{patients}.log"
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
        samples, peak_kb = [], 0
        while proc.poll() is None:
            s = _status_kb(proc.pid)
            if s:
                peak_kb = max(peak_kb, s.get("VmHWM", 0))
                done = len(list((out / "chunks").glob("*.parquet"))) if (out / "chunks").is_dir() else 0
                # (VmHWM itself can read lower later: the kernel updates its high-water mark lazily)
                samples.append((round(time.perf_counter() - t0, 1), done, s.get("VmRSS", 0), peak_kb))
            time.sleep(1.0)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(log.read_text()[-2000:])
    n_chunks = -(-patients // args.chunk)
    # RSS when 1 %, 10 %, ... of the chunks were on disk (the first sample at or after each mark)
    marks = {}
    for frac in (0.01, 0.1, 0.5, 1.0):
        need = max(1, round(frac * n_chunks))
        hit = next((s for s in samples if s[1] >= need), None)
        if hit is not None:
            marks[f"{min(need * args.chunk, patients)}"] = round(hit[2] / 1024, 1)
    computing = [s[2] for s in samples if 1 <= s[1] < n_chunks]
    # the peak so far when the first chunk and the last chunk appeared: compilation vs chunks vs summary
    hwm = {k: next((s[3] for s in samples if s[1] >= need), None) for k, need in (("first", 1), ("last", n_chunks))}
    return {
        "patient_protocols": patients,
        "chunk": args.chunk,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "rss_mb_after_patient_protocols": marks,
        "max_rss_mb_while_computing_after_first_chunk": round(max(computing) / 1024, 1) if computing else None,
        "peak_rss_mb_when_first_chunk_written": round(hwm["first"] / 1024, 1) if hwm["first"] else None,
        "peak_rss_mb_when_last_chunk_written": round(hwm["last"] / 1024, 1) if hwm["last"] else None,
        "wall_s": round(wall, 1),
        "samples": len(samples),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", type=int, nargs="+", help="patient-protocols per run (one cell, one draw)")
    ap.add_argument("--chunk", type=int, default=500, help="patients per chunk file")
    ap.add_argument("--stop-day", type=int, default=21, help="last TKI day of the cell")
    ap.add_argument("--genotype", default="RAS")
    ap.add_argument("--max-lesions", type=int, default=5)
    ap.add_argument("--months", type=float, nargs="+", default=[3, 6, 12], help="follow-up assessments, months")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as d:
        for n in args.sizes:
            r = run(n, args, Path(d))
            results.append(r)
            print(json.dumps(r), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "runs": results}, indent=1))


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    main()
