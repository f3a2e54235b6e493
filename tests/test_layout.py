"""The package's layout and its conventions: every module listed, layers, no side effects at import,
no printing outside the CLI, one docstring convention, the runtime checks of the tests themselves."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "raisim"


def _modules() -> set[str]:
    return {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}


def _layout_block() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("<!-- BEGIN layout -->", 1)[1].split("<!-- END layout -->", 1)[0]


def test_the_readme_layout_lists_every_module_and_only_modules_that_exist():
    listed = set(re.findall(r"`(raisim/[\w/]+\.py)`", _layout_block()))
    assert listed == _modules(), (
        f"missing from the README layout: {sorted(_modules() - listed)}; "
        f"listed but absent: {sorted(listed - _modules())}"
    )
    packages = {str(p.parent.relative_to(ROOT)) + "/" for p in PACKAGE.glob("*/__init__.py")}
    assert packages <= set(re.findall(r"`(raisim/\w+/)`", _layout_block()))


def _library_files():
    return [p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts]


def test_the_library_never_prints_parses_arguments_or_draws_progress_bars():
    """Only raisim/cli/ talks to the terminal; the library returns values, logs, or calls back."""
    offences = []
    for path in _library_files():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("print", "input"):
                offences.append(f"{path.name}:{node.lineno} {node.func.id}()")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("stdout", "stderr")
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            ):
                offences.append(f"{path.name}:{node.lineno} sys.{node.attr}")
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                offences += [
                    f"{path.name}:{node.lineno} import {n}" for n in names if n.split(".")[0] in ("argparse", "tqdm")
                ]
    assert not offences, offences


def test_one_docstring_convention():
    """diffrax's **Arguments:** / **Returns:** / **Raises:**, never Google or numpy section headers."""
    header = re.compile(r"^\s+(Args|Arguments|Returns|Raises|Parameters|Yields)\s*:?\s*$")
    found = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in PACKAGE.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if header.match(line) or re.match(r"^\s+-{3,}\s*$", line)
    ]
    assert not found, found


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "RAISIM_NO_XLA_TUNING")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)


def test_importing_raisim_changes_nothing_in_the_process():
    probe = """
import json, os, warnings
# the libraries' own filters first
import diffrax, equinox, jax, matplotlib.pyplot, numpyro, pandas, pyarrow, pydantic, scipy.stats, yaml
before = list(warnings.filters)
import raisim, raisim.cli, raisim.calibration.fit, raisim.sweep.runner
from jax._src import xla_bridge
import jax
print(json.dumps({
    "x64": bool(jax.config.jax_enable_x64),
    "xla_flags": os.environ.get("XLA_FLAGS"),
    "backends": bool(xla_bridge.backends_are_initialized()),
    "cpu_devices": int(jax.config.jax_num_cpu_devices),
    "filters_changed": list(warnings.filters) != before,
}))
"""
    run = _fresh_python(probe)
    assert run.returncode == 0, run.stderr
    state = json.loads(run.stdout.strip().splitlines()[-1])
    assert state == {"x64": False, "xla_flags": None, "backends": False, "cpu_devices": -1, "filters_changed": False}


def test_configure_sets_float64_the_xla_flag_and_the_cpu_devices_once():
    probe = """
import json, os
import raisim, jax
raisim.configure(cpu_devices=2)
raisim.configure(cpu_devices=2)
print(json.dumps({"x64": bool(jax.config.jax_enable_x64), "xla_flags": os.environ.get("XLA_FLAGS"),
                  "devices": len(jax.devices("cpu")), "dtype": str(jax.numpy.ones(1).dtype)}))
"""
    run = _fresh_python(probe)
    assert run.returncode == 0, run.stderr
    state = json.loads(run.stdout.strip().splitlines()[-1])
    assert state["x64"] and state["devices"] == 2 and state["dtype"] == "float64"
    from importlib.metadata import version

    from raisim.runtime import TUNED_JAXLIB

    if version("jaxlib") == TUNED_JAXLIB:
        assert state["xla_flags"] == "--xla_cpu_experimental_ynn_fusion_type="  # once, not twice


@pytest.mark.parametrize(
    "call",
    [
        "raisim.simulate(raisim.load_protocol('configs/protocols/short_10d.yaml'))",
        "raisim.run_cohort(raisim.load_protocol('configs/protocols/short_10d.yaml'), raisim.sample_cohort(2, 0))",
    ],
)
def test_engine_entry_points_refuse_to_run_in_float32(call):
    """Forgetting raisim.configure() would silently run in float32: the engine refuses, in one line."""
    run = _fresh_python(f"import raisim\ntry:\n    {call}\nexcept raisim.RuntimeNotConfigured as e:\n    print(e)\n")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1 and "float32" in lines[0] and "raisim.configure()" in lines[0]


def test_the_tests_check_core_and_engine_shapes_at_run_time():
    """conftest installs jaxtyping's import hook with beartype on raisim.core and raisim.engine."""
    if os.environ.get("RAISIM_TYPECHECK", "1") != "1":
        pytest.skip("RAISIM_TYPECHECK=0: runtime type checks off for this run")
    from jaxtyping import TypeCheckError

    from raisim.engine.plan import days_on_drug

    dose_day = jnp.zeros((2, 3), dtype=int)
    assert days_on_drug(dose_day, jnp.ones((2, 3), dtype=bool)).shape == (2,)
    with pytest.raises(TypeCheckError):
        days_on_drug(dose_day, jnp.ones((2, 4), dtype=bool))  # dose slots disagree
