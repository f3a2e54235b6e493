"""The host's CPU cores as jax devices, so batched runs put one patient share on each core.

jax's CPU backend is a single device by default. The batched solve
(:func:`raisim.run_cohort`) is thousands of small vmapped operations per
step, which XLA's intra-op threads barely spread over the cores. Split the
patient axis over one CPU device per core instead (data parallel, one
thread per device, see :func:`raisim.batch.run_cohort`) and every core runs
its own share: on a 2-core CPU, 43 → 107 patient-protocols/s with bit-identical
outcomes (BENCHMARKS.md, "one CPU device per core"). Results are bit-identical whatever
the split.

jax fixes its device count when it starts its backends (the first array
operation), so :func:`use_cpu_cores` must run before that. ``raisim``'s
command line calls it first thing; a notebook calls it right after the
imports.
"""

from __future__ import annotations

import os
import re

import jax

from .errors import InputError

CPU_DEVICES_ENV = "RAISIM_CPU_DEVICES"
_FORCED = re.compile(r"--xla_force_host_platform_device_count=(\d+)")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one), a count ≥ 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return max(os.cpu_count() or 1, 1)


def use_cpu_cores(n: int | None = None) -> int:
    """Make jax's CPU backend ``n`` devices (default: ``$RAISIM_CPU_DEVICES``, else one per available core).

    Changes nothing, and returns the count jax has or will have, when the choice is
    already made: jax's backends are running, ``XLA_FLAGS`` holds
    ``--xla_force_host_platform_device_count``, or ``jax_num_cpu_devices`` was set.
    GPUs are unaffected (on a GPU host the default devices stay the GPUs).

    Returns the number of CPU devices (a count). Raises :class:`raisim.InputError` when
    ``$RAISIM_CPU_DEVICES`` is set to anything but a whole number ≥ 1 (whatever else is set).
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
