"""Shared test helpers: example protocols, CLI runner, file writers."""

from __future__ import annotations

import contextlib
import copy
import io
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROTOCOLS = REPO / "configs" / "protocols"

BASE_PROTOCOL: dict = {
    "name": "test protocol",
    "patient": {
        "genotype": "BRAF_V600E",
        "weight_kg": 70,
        "lesions": [
            {"name": "a", "site": "lung", "diameter_mm": 12},
            {"name": "b", "site": "lymph_node", "mass_g": 2.0, "nis_capacity": 0.5},
        ],
    },
    "treatment": {
        "regimens": {
            "BRAF_V600E": [
                {"drug": "trametinib", "dose_mg": 2, "interval_h": 24},
                {"drug": "dabrafenib", "dose_mg": 75, "interval_h": 12},
            ],
            "RAS": [{"drug": "trametinib", "dose_mg": 2, "interval_h": 24}],
            "OTHER": [{"drug": "trametinib", "dose_mg": 2, "interval_h": 24}],
        },
        "start_day": 1,
        "stop_day": 21,
    },
    "scans": [{"name": "selection", "day": 22, "isotope": "I-123", "readout": "i123_tbr"}],
    "rai": {"day": 25, "policy": "fixed", "activity_gbq": 5.55},
    "followup": {"months": [6]},
}


def protocol_dict(**changes) -> dict:
    """A deep copy of the base protocol with top-level sections replaced."""
    d = copy.deepcopy(BASE_PROTOCOL)
    d.update(copy.deepcopy(changes))
    return d


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m raisim.cli ARGS`` in a subprocess (the real CLI, exit code and streams)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "raisim.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=600,
    )


def cli(*args: str) -> tuple[int, str, str]:
    """Run the command line in this process (``raisim.cli.main``): (exit code, stdout, stderr)."""
    from raisim.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def cli_process(*args: str) -> subprocess.CompletedProcess:
    """:func:`cli` as a ``CompletedProcess`` (returncode, stdout, stderr): the in-process stand-in for
    :func:`run_cli` where a test checks the error contract, not the process (no interpreter start-up)."""
    code, out, err = cli(*args)
    return subprocess.CompletedProcess(list(args), code, out, err)


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    """Exit 2 and exactly one line on stderr, ``error: ...``, holding every needle; no traceback."""
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    for n in needles:
        assert n in lines[0], (n, lines[0])


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (relative name → bytes): to show that nothing was written or changed."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


class Course:
    """Typical-patient time courses (h): ERK, HER3, patient-mean membrane NIS."""

    def __init__(self, tc):
        def series(q):
            s = tc[(tc.quantity == q) & (tc.lesion == "")]
            return s.value.to_numpy()

        self.t = tc[tc.quantity == "erk_activity"].time_h.to_numpy()
        self.erk = series("erk_activity")
        self.her3 = series("her3")
        self.nis = series("membrane_nis")

    def at(self, x, t_h: float) -> float:
        import numpy as np

        return float(np.interp(t_h, self.t, x))


def typical_course(genotype: str, regimen: str, stop_day: int = 42, tsh: str = "none", scans=()) -> Course:
    """One lesion, no radioiodine, TKI days 1..stop_day; TSH off unless asked (isolates the TKI effect)."""
    from raisim import simulate, tki_only_protocol

    return Course(
        simulate(
            tki_only_protocol(genotype, regimen, stop_day, tsh=tsh, scans=scans),
            seed=0,
            overrides=no_ae(),
            parameters="typical",
        ).timecourse
    )


def synthetic_emulator(table=None, seed: int = 0, scale: float = 0.4):
    """An emulator with random weights for every target of ``table`` (default: the shipped trials)
    over the default calibration parameters: a stand-in for the trained one."""
    import jax.numpy as jnp
    import numpy as np

    from raisim.calibration.emulator import HIDDEN, ArmEmulator, parameter_space
    from raisim.calibration.fit import load_calibration_config
    from raisim.calibration.targets import table_targets
    from raisim.io.model_identity import MANIFEST_KEY, model_sha256
    from raisim.io.trials import load_trials

    table = table if table is not None else load_trials(REPO / "models" / "data" / "trials.csv")
    space = parameter_space(load_calibration_config(REPO / "configs" / "calibration" / "default.yaml").parameters)
    keys = tuple(dict.fromkeys(t.key for t in table_targets(table)[0]))
    d, t = len(space), len(keys)
    rng = np.random.default_rng(seed)
    return ArmEmulator(
        keys,
        tuple(space),
        w1=jnp.asarray(rng.normal(0.0, 0.5, (HIDDEN, d))),
        b1=jnp.asarray(rng.normal(0.0, 0.5, HIDDEN)),
        w2=jnp.asarray(rng.normal(0.0, scale / 4, (t, HIDDEN))),
        b2=jnp.asarray(rng.normal(0.0, 0.5, t)),
        lin=jnp.asarray(rng.normal(0.0, scale, (t, d))),
        meta={"synthetic": True, MANIFEST_KEY: model_sha256()},  # a stand-in for one trained on this model
    )


def no_ae(overrides: dict | None = None) -> dict:
    """``overrides`` with no grade >= 3 AE on any drug: for tests of the cards' biology that need the
    patient to complete the planned course (whether a seed draws an AE is luck, not what they test)."""
    from raisim.biology.toxicity import without_adverse_events

    return without_adverse_events(overrides)
