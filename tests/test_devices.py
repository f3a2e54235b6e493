"""raisim.runtime: the host's cores as jax CPU devices."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import pytest

from raisim.io.errors import InputError
from raisim.runtime import CPU_DEVICES_ENV, available_cores, use_cpu_cores

PROBE = "import raisim, jax; n = raisim.use_cpu_cores({arg}); print(n, len(jax.devices('cpu')))"


def _probe(arg: str = "", **env: str) -> str:
    """``use_cpu_cores`` in a fresh interpreter (jax not started yet): 'returned  devices'."""
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", CPU_DEVICES_ENV)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(arg=arg)],
        capture_output=True,
        text=True,
        env={**base, "PYTHONWARNINGS": "ignore", **env},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("\n")[0].strip()


def test_default_is_one_device_per_available_core():
    cores = available_cores()
    assert _probe() == f"{cores} {cores}"


def test_count_from_argument_and_from_environment():
    assert _probe("3") == "3 3"
    assert _probe(**{CPU_DEVICES_ENV: "1"}) == "1 1"


def test_an_explicit_xla_flag_wins():
    assert _probe("3", XLA_FLAGS="--xla_force_host_platform_device_count=2") == "2 2"


def test_once_jax_runs_the_count_is_reported_not_changed():
    jax.numpy.zeros(1).block_until_ready()  # the backends are up in this process
    before = len(jax.devices("cpu"))
    assert use_cpu_cores(before + 1) == before
    assert len(jax.devices("cpu")) == before


@pytest.mark.parametrize("bad", ["0", "two", "-1"])
def test_a_bad_environment_value_is_one_line_input_error(monkeypatch, bad):
    monkeypatch.setenv(CPU_DEVICES_ENV, bad)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with pytest.raises(InputError, match=CPU_DEVICES_ENV):
        use_cpu_cores()


def test_the_cli_rejects_a_bad_environment_value_with_exit_2():
    from helpers import run_cli

    proc = run_cli("version", env={CPU_DEVICES_ENV: "many"})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and CPU_DEVICES_ENV in proc.stderr
