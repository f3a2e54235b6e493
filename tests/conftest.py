import os
import sys
import warnings
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
# One jax CPU device per test process and per CLI subprocess (they inherit this). pytest-xdist
# already runs one worker per core; a second device per process would compile every kernel
# twice and oversubscribe the cores (CI took 2,371 s at the landing where the CLI started using
# one device per core, 1,211 s before it and 1,434 s after this line). Device splitting is
# tested explicitly (test_devices, test_batch).
os.environ.setdefault("RAISIM_CPU_DEVICES", "1")
warnings.filterwarnings("ignore", category=FutureWarning)

sys.path.insert(0, str(Path(__file__).resolve().parent))
