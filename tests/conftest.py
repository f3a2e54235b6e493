import os
import sys
import warnings
from pathlib import Path

# One jax CPU device per test process and per CLI subprocess (they inherit this). pytest-xdist
# already runs one worker per core; a second device per process would compile every kernel
# twice and oversubscribe the cores (CI took 2,371 s at the landing where the CLI started using
# one device per core, 1,211 s before it and 1,434 s after this line). Device splitting is
# tested explicitly (test_devices, test_batch).
os.environ.setdefault("RAISIM_CPU_DEVICES", "1")
warnings.filterwarnings("ignore", category=FutureWarning)

# Runtime type checks of the core and engine layers, as diffrax runs its tests: every jaxtyping
# annotation (dtype and shape) of raisim.core and raisim.engine is checked by beartype on each
# call. Installed before raisim is imported (the hook rewrites modules as they load).
if os.environ.get("RAISIM_TYPECHECK", "1") == "1":
    from jaxtyping import install_import_hook

    install_import_hook(["raisim.core", "raisim.engine"], "beartype.beartype")

# One persistent compilation cache for the whole run, shared by the xdist workers and the CLI
# subprocesses (they inherit the variable): a program one process compiled, the others load
# (raisim.compilation). It lives in the checkout's .pytest_cache (ignored by git), so a fresh clone
# starts empty and a developer's second run starts warm; RAISIM_CACHE_DIR=off runs without it.
os.environ.setdefault("RAISIM_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-cache"))

import raisim  # noqa: E402

raisim.configure()


def pytest_sessionfinish(session, exitstatus):
    """With ``RAISIM_COMPILE_STATS_DIR`` set, each test process writes what it compiled there
    (``<worker>.json``: programs, trace / lower / backend seconds, cache hits and misses), so a
    run's compilation can be summed over workers (BENCHMARKS.md)."""
    out = os.environ.get("RAISIM_COMPILE_STATS_DIR")
    if not out:
        return
    import json

    from raisim.compilation import compile_stats

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f"{worker}.json").write_text(json.dumps(compile_stats().to_dict(), indent=1) + "\n")


sys.path.insert(0, str(Path(__file__).resolve().parent))
