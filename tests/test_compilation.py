"""raisim.compilation: the compile counter and the persistent compilation cache (issue 38, A0-A1).

The cache is judged by the counter, not by time: a second process with the same cache directory
must load every program the first one compiled (cache hits, no misses).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from helpers import REPO, write_yaml

from raisim.compilation import CompileStats, compile_stats

#: A kernel no other test compiles (its constant makes the program its own).
_KERNEL = textwrap.dedent(
    """
    import json, sys
    import raisim
    raisim.configure()
    import jax, jax.numpy as jnp
    from raisim.compilation import cache_dir, compile_stats

    @jax.jit
    def kernel(x):
        return jnp.cumsum(jnp.sin(x) * 0.123456789) @ jnp.cos(x)

    value = float(kernel(jnp.linspace(0.0, 1.0, 257)))
    stats = compile_stats().to_dict()
    print(json.dumps({"value": value, "cache_dir": str(cache_dir()), **stats}))
    """
)


def _run_kernel(cache: str) -> dict:
    env = dict(os.environ, RAISIM_CACHE_DIR=cache, RAISIM_CPU_DEVICES="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-c", _KERNEL], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"stderr": proc.stderr, **json.loads(proc.stdout.strip().splitlines()[-1])}


def test_the_counter_counts_a_new_program_once():
    before = compile_stats()

    @jax.jit
    def fresh(x):
        return jnp.tanh(x) * 0.987654321 + x.size

    fresh(jnp.ones(13)).block_until_ready()
    first = compile_stats().minus(before)
    fresh(jnp.ones(13)).block_until_ready()  # the same program again: nothing compiles
    again = compile_stats().minus(before)
    assert first.programs >= 1 and first.by_name["jit(fresh)"] == 1
    assert first.trace_s > 0 and first.backend_s > 0
    assert again.programs == first.programs
    assert isinstance(first, CompileStats) and "programs" in first.describe()


def test_a_second_process_loads_every_program_from_the_cache(tmp_path):
    cache = str(tmp_path / "cache")
    cold = _run_kernel(cache)
    warm = _run_kernel(cache)
    assert cold["cache_dir"] == cache
    assert cold["cache_misses"] >= 1 and cold["cache_hits"] == 0
    assert warm["cache_misses"] == 0 and warm["cache_hits"] == cold["cache_misses"]
    # a hit is timed as a backend compile by jax; the counter tells the load apart
    assert cold["load_s"] == 0 and 0 < warm["load_s"] <= warm["backend_s"]
    assert warm["xla_compile_s"] == pytest.approx(warm["backend_s"] - warm["load_s"], abs=2e-3)
    assert warm["value"] == cold["value"]  # the loaded program computes the same number
    off = _run_kernel("off")
    assert off["cache_dir"] == "None" and off["cache_hits"] == off["cache_misses"] == 0
    assert off["value"] == cold["value"]


def test_processes_racing_on_one_kernel_share_the_cache_safely(tmp_path):
    """Four processes compile one kernel at once into an empty cache (jax's file lock, set by the
    size bound, keeps their writes apart); all agree, and a fifth only loads."""
    cache = str(tmp_path / "cache")
    env = dict(os.environ, RAISIM_CACHE_DIR=cache, RAISIM_CPU_DEVICES="1", PYTHONWARNINGS="ignore")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _KERNEL],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        for _ in range(4)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert len({r["value"] for r in results}) == 1
    after = _run_kernel(cache)
    assert after["cache_misses"] == 0 and after["cache_hits"] >= 1 and after["value"] == results[0]["value"]


def test_a_cache_that_cannot_be_written_is_one_warning_and_no_cache(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = _run_kernel(str(blocker / "cache"))  # a directory under a regular file cannot be made
    assert res["cache_dir"] == "None" and res["cache_misses"] == 0
    warnings = [line for line in res["stderr"].splitlines() if "compilation cache" in line]
    assert len(warnings) == 1 and "cannot be written" in warnings[0], res["stderr"]


@pytest.mark.slow
def test_the_same_small_sweep_twice_compiles_nothing_new(tmp_path):
    """Two fresh processes, one cache directory: the second sweep's complete.json counts cache
    hits for every program and no miss (issue 38's acceptance test, by the counter)."""
    cfg = write_yaml(
        tmp_path / "small.yaml",
        {
            "name": "cache sweep",
            "protocol": str(REPO / "configs" / "protocols" / "erriti_21d.yaml"),
            "grid": {"treatment.stop_day": [10, 21]},
            "set": {"scans[0].day": "end + 1", "rai.day": "end + 2", "rai.tki_days_after_rai": None},
            "genotypes": ["RAS"],
            "cohort": {"patients": 8, "max_lesions": 2, "chunk": 8},
            "seed": 3,
        },
    )
    env = dict(os.environ, RAISIM_CACHE_DIR=str(tmp_path / "cache"), RAISIM_CPU_DEVICES="1", PYTHONWARNINGS="ignore")
    records = []
    for run in ("first", "second"):
        proc = subprocess.run(
            [sys.executable, "-m", "raisim.cli", "sweep", str(cfg), "--out", str(tmp_path / run), "--no-progress"],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        records.append(json.loads((tmp_path / run / "complete.json").read_text())["compilation"])
    first, second = records
    assert first["cache_misses"] >= 1
    # every program the first process compiled is loaded now (a program it compiled twice was a hit
    # there already)
    assert second["cache_misses"] == 0 and second["programs"] == first["programs"]
    assert second["cache_hits"] >= first["cache_misses"]
    # and every program, the engine's kernel included, is one the cache keeps: none has a host
    # callback, so the second process loads all of them and compiles nothing
    assert second["cache_hits"] == second["programs"]
    assert first["cache_hits"] + first["cache_misses"] == first["programs"]
    assert second["backend_s"] < first["backend_s"]
    assert Path(second["cache_dir"]) == tmp_path / "cache"
