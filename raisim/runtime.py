"""The jax runtime raisim runs on: float64, the XLA CPU flag, one CPU device per core, warnings.

Importing raisim changes nothing in the process: no jax option, no environment
variable, no warning filter, no array. One explicit call, :func:`configure`,
sets everything up, as ``numpyro.enable_x64()`` does for numpyro. The command
line, the benchmarks, the scripts, the notebooks and the tests make it first
thing; call it in your own scripts right after ``import raisim``::

    import raisim
    raisim.configure()

Because forgetting it would silently run the engine in float32, every engine
entry point calls :func:`require_x64`, which refuses with one line.

The CPU device split (:func:`use_cpu_cores`) and the XLA flag only take effect
before jax starts its backends (the first array operation), so call
:func:`configure` before any computation.
"""

from __future__ import annotations

import os
import re
import warnings

import jax

from .compilation import enable_cache, start_counting
from .io.errors import InputError

CPU_DEVICES_ENV = "RAISIM_CPU_DEVICES"
_FORCED = re.compile(r"--xla_force_host_platform_device_count=(\d+)")

#: The jaxlib for which the XLA CPU flag of :func:`tune_xla_cpu` was measured (BENCHMARKS.md).
TUNED_JAXLIB = "0.10.2"
_YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type="


class RuntimeNotConfigured(RuntimeError):
    """An engine entry point ran before :func:`configure` (float64 off); the message is one line."""


def backends_started() -> bool:
    """True once jax has started its backends (after the first array operation), when flags no longer apply."""
    from jax._src import xla_bridge  # read-only query; jax has no public one

    probe = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(probe()) if probe is not None else False


def tune_xla_cpu() -> bool:
    """Turn off XLA CPU's experimental "ynn" fusions for the pinned jaxlib (0.10.2), via ``XLA_FLAGS``.

    Measured on the 2-core CPU (BENCHMARKS.md): batched Tsit5 solves run ~2x faster
    without them. Skipped when ``XLA_FLAGS`` already names the option, when
    ``RAISIM_NO_XLA_TUNING=1``, for another jaxlib (an XLA build that does not know the
    flag would abort) and once jax's backends have started (the flag would not apply).

    **Returns:** True when the flag was added to ``XLA_FLAGS`` now.
    """
    from importlib.metadata import PackageNotFoundError, version

    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("RAISIM_NO_XLA_TUNING") == "1" or "ynn_fusion_type" in flags or backends_started():
        return False
    try:
        if version("jaxlib") != TUNED_JAXLIB:
            return False
    except PackageNotFoundError:
        return False
    os.environ["XLA_FLAGS"] = (flags + " " + _YNN_FLAG).strip()
    return True


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one), a count ≥ 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return max(os.cpu_count() or 1, 1)


def use_cpu_cores(n: int | None = None) -> int:
    """Make jax's CPU backend ``n`` devices (default: ``$RAISIM_CPU_DEVICES``, else one per available core).

    jax's CPU backend is a single device by default. The batched solve
    (:func:`raisim.run_cohort`) is thousands of small vmapped operations per step,
    which XLA's intra-op threads barely spread over the cores; split over one CPU
    device per core, every core runs its own share of patients (on a 2-core CPU,
    43 → 107 patient-protocols/s with bit-identical outcomes; BENCHMARKS.md, "one CPU
    device per core"). Results are bit-identical whatever the split.

    Changes nothing, and returns the count jax has or will have, when the choice is
    already made: jax's backends are running, ``XLA_FLAGS`` holds
    ``--xla_force_host_platform_device_count``, or ``jax_num_cpu_devices`` was set.
    GPUs are unaffected (on a GPU host the default devices stay the GPUs).

    **Arguments:**

    - `n`: the number of CPU devices, ≥ 1; ``None`` for the default above.

    **Returns:** the number of CPU devices (a count).

    **Raises:** :class:`raisim.InputError` when ``$RAISIM_CPU_DEVICES`` is set to anything but
    a whole number ≥ 1 (whatever else is set); ``ValueError`` for ``n < 1``.
    """
    env = os.environ.get(CPU_DEVICES_ENV, "").strip()
    if env and not (env.isdigit() and int(env) >= 1):  # bad input even where another setting wins
        raise InputError("<environment>", CPU_DEVICES_ENV, "a whole number of CPU devices >= 1", got=env)
    forced = _FORCED.search(os.environ.get("XLA_FLAGS", ""))
    if forced:
        return int(forced.group(1))
    if jax.config.jax_num_cpu_devices > 0:
        return int(jax.config.jax_num_cpu_devices)
    if n is None:
        n = int(env) if env else available_cores()
    if n < 1:
        raise ValueError(f"use_cpu_cores: n must be >= 1 (got {n})")
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # the backends already started: the count is fixed
        return len(jax.devices("cpu"))
    return n


def configure(*, cpu_devices: int | None = None, split_cpu: bool = True, cache: bool = True) -> None:
    """Set up jax for raisim: float64, the XLA CPU flag, one CPU device per core, quiet arviz, the
    compile counter and the persistent compilation cache (:mod:`raisim.compilation`).

    Idempotent; call it before the first computation (flags and the device split do not
    apply once jax's backends have started; float64 always does).

    **Arguments:**

    - `cpu_devices`: CPU devices to split batched runs over (default: ``$RAISIM_CPU_DEVICES``,
      else one per core; see :func:`use_cpu_cores`).
    - `split_cpu`: False to leave jax's CPU device count alone.
    - `cache`: False to compile without the persistent cache (``RAISIM_CACHE_DIR=off`` does the
      same); it is set once per process, by the first call.

    **Raises:** :class:`raisim.InputError` for a bad ``$RAISIM_CPU_DEVICES``.
    """
    tune_xla_cpu()
    jax.config.update("jax_enable_x64", True)
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
    if split_cpu:
        use_cpu_cores(cpu_devices)
    start_counting()
    enable_cache(enabled=cache)


def require_x64(entry: str) -> None:
    """Refuse to run ``entry`` in float32: raise :class:`RuntimeNotConfigured` unless float64 is on.

    **Arguments:**

    - `entry`: the entry point's name, for the message (e.g. ``"raisim.run_cohort"``).
    """
    if not jax.config.jax_enable_x64:
        raise RuntimeNotConfigured(
            f"{entry}: jax runs in float32 (jax_enable_x64 is off); call raisim.configure() "
            "after `import raisim` and before the first computation"
        )
