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

import raisim  # noqa: E402

raisim.configure()

sys.path.insert(0, str(Path(__file__).resolve().parent))
