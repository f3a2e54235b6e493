"""The error contract through the command line, one regression test per class issue 23 found.

Each test runs the real entry point (``raisim.cli.main``, in this process) and asserts exit 2
with exactly one line naming the file and the field, and nothing written. The sweep-side
classes (signals, a damaged chunk, censoring, file permissions) are in ``test_sweep.py``,
beside the small run they resume; the fuzzer that looks for the next class is ``test_fuzz.py``.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import PROTOCOLS, REPO, assert_one_line_error, cli, tree, write_yaml

ERRITI = PROTOCOLS / "erriti_21d.yaml"
DEMO_SWEEP = REPO / "configs" / "sweeps" / "duration_demo.yaml"


def _protocol() -> dict:
    return yaml.safe_load(ERRITI.read_text())


def _simulate_refused(tmp_path: Path, config: Path, *needles: str) -> None:
    before = tree(tmp_path)
    code, _, err = cli("simulate", config, "--out", tmp_path / "out")
    assert_one_line_error(code, err, config.name, *needles)
    assert not (tmp_path / "out").exists()
    assert tree(tmp_path) == before


# 1. bytes that are not UTF-8, as a protocol or a sweep config


@pytest.mark.parametrize(
    "data",
    [bytes(range(256)) * 4, "name: protocole d'été\n".encode("latin-1")],
    ids=["binary", "latin-1"],
)
def test_a_protocol_or_sweep_file_that_is_not_utf8_is_one_line(tmp_path, data):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(data)
    _simulate_refused(tmp_path, bad, "'<file>'", "UTF-8")
    code, _, err = cli("sweep", bad, "--out", tmp_path / "out")
    assert_one_line_error(code, err, "bad.yaml", "UTF-8")
    assert not (tmp_path / "out").exists()


# 2. non-finite numbers


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["rai"].update(policy="dosimetry_guided", cap_gbq=float("inf")), "rai.cap_gbq"),
        (lambda d: d["patient"].update(weight_kg=float("nan")), "patient.weight_kg"),
        (lambda d: d["patient"]["lesions"][0].update(diameter_mm=float("-inf"), mass_g=None), "diameter_mm"),
    ],
    ids=["inf-cap", "nan-weight", "minus-inf-diameter"],
)
def test_non_finite_numbers_are_refused_before_anything_runs(tmp_path, edit, field):
    d = _protocol()
    edit(d)
    config = write_yaml(tmp_path / "bad.yaml", d)
    assert ".inf" in config.read_text() or ".nan" in config.read_text()
    _simulate_refused(tmp_path, config, field, "finite number")


# 3. duplicate keys


def test_a_key_given_twice_is_refused_not_silently_overwritten(tmp_path):
    text = ERRITI.read_text()
    assert "weight_kg:" in text
    dup = text.replace("weight_kg:", "weight_kg: 70\n  weight_kg:", 1)
    config = tmp_path / "dup.yaml"
    config.write_text(dup)
    _simulate_refused(tmp_path, config, "weight_kg", "at most once")


def test_yaml_merge_keys_may_still_override(tmp_path):
    """A ``<<`` merge is YAML's own way to override a key, not a duplicate."""
    from raisim.io.cards import read_yaml

    f = tmp_path / "m.yaml"
    f.write_text("base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n")
    assert read_yaml(f, "YAML file")["derived"] == {"x": 1, "y": 3}


# 4. output paths


def test_out_under_a_regular_file_or_in_an_uncreatable_place_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    code, _, err = cli("simulate", ERRITI, "--out", tmp_path / "afile" / "sub")
    assert_one_line_error(code, err, "--out", "is a file")
    if Path("/proc").is_dir():
        code, _, err = cli("simulate", ERRITI, "--out", "/proc/raisim-cannot-be-here")
        assert_one_line_error(code, err, "--out", "can be created")
    code, _, err = cli("sweep", DEMO_SWEEP, "--out", tmp_path / "afile" / "sub")
    assert_one_line_error(code, err, "--out")
    assert (tmp_path / "afile").read_text() == "x"


# 5. upper bounds


@pytest.mark.parametrize(
    ("edit", "field", "allowed"),
    [
        (lambda d: d["patient"].update(lesions=[{"site": "lung", "diameter_mm": 10_000}]), "diameter_mm", "150"),
        (lambda d: d["patient"].update(lesions=[{"site": "lung", "mass_g": 1.0}] * 1000), "patient.lesions", "20"),
        (lambda d: d["treatment"].update(stop_day=100_000), "treatment.stop_day", "730"),
        (lambda d: d["followup"].update(months=[6, 12, 100_000]), "followup.months", "120"),
        (lambda d: d["solver"].update(output_step_h=1e-9), "solver.output_step_h", "0.25"),
    ],
    ids=["10000-mm-lesion", "1000-lesions", "100000-day-course", "huge-follow-up", "tiny-output-step"],
)
def test_sizes_and_durations_beyond_the_model_are_refused(tmp_path, edit, field, allowed):
    d = _protocol()
    d.setdefault("solver", {})
    edit(d)
    _simulate_refused(tmp_path, write_yaml(tmp_path / "big.yaml", d), field, allowed)


def test_large_cohorts_stay_allowed_and_absurd_ones_are_refused(tmp_path):
    code, _, err = cli("sweep", DEMO_SWEEP, "--dry-run", "--patients", 1_000_000)
    assert code == 0, err
    assert "12 cells x 2 draw(s) x 1000000 patients" in err  # 2.4e7 patient-protocols
    code, _, err = cli("sweep", DEMO_SWEEP, "--dry-run", "--patients", 100_000_000)
    assert_one_line_error(code, err, "--patients", "10000000")
    d = yaml.safe_load(DEMO_SWEEP.read_text())
    d["protocol"] = str(ERRITI)
    d["grid"] = {"treatment.stop_day": list(range(10, 60)), "rai.max_gbq": [5.0 + i / 10 for i in range(100)]}
    code, _, err = cli("sweep", write_yaml(tmp_path / "grid.yaml", d), "--dry-run")
    assert_one_line_error(code, err, "field 'grid'", "10000 cells")


# 10. a valid trials row whose imaging falls after its follow-up ran


def test_every_timeline_a_trials_row_can_have_runs(tmp_path):
    header = (REPO / "models" / "data" / "trials.csv").read_text().splitlines()[0]
    row = "Late2026,Late2026,2026,dab,BRAF_V600E,dabrafenib:150mg:q12h,,29,,uptake,diagnostic_wbs,10,,,,,,,,,"
    trials = tmp_path / "late.csv"
    trials.write_text(f"{header}\n{row}\n")
    code, _, err = cli("predict", "--trials", trials, "--dry-run")
    assert code == 0, err
    assert "every check passed" in err
    # a 42-day course with a scan on day 43 (imaging 72 h later) is a protocol that runs too
    d = _protocol()
    d["treatment"]["stop_day"] = 42
    d["scans"] = [{"name": "wbs", "day": 43, "isotope": "I-131", "readout": "diagnostic_wbs"}]
    d.pop("rai", None)
    d.pop("branches", None)
    d["followup"] = {"months": [1]}
    code, _, err = cli("check", write_yaml(tmp_path / "late.yaml", d))
    assert code == 0, err
    from raisim.engine.plan import plan_cell
    from raisim.protocol.schema import load_protocol

    p = load_protocol(tmp_path / "late.yaml")
    assert p.followup_end_day() >= 43 + 72 / 24  # the simulation runs past the imaging time
    assert float(plan_cell(p).grid_h[-1]) >= (43 - 1) * 24 + 72


@pytest.mark.slow
def test_the_late_imaging_trials_row_predicts(tmp_path):
    header = (REPO / "models" / "data" / "trials.csv").read_text().splitlines()[0]
    row = "Late2026,Late2026,2026,dab,BRAF_V600E,dabrafenib:150mg:q12h,,29,,uptake,diagnostic_wbs,10,,,,,,,,,"
    trials = tmp_path / "late.csv"
    trials.write_text(f"{header}\n{row}\n")
    code, out, err = cli("predict", "--trials", trials, "--patients", 4, "--draws", 1, "--json")
    assert code == 0, err
    assert '"Late2026"' in out or "Late2026" in out


# the validate-only path


def test_check_names_what_it_checked_and_writes_nothing(tmp_path):
    for f, kind in [
        (ERRITI, "simulate"),
        (DEMO_SWEEP, "sweep"),
        (REPO / "models" / "data" / "trials.csv", "predict"),
    ]:
        before = tree(tmp_path)
        code, _, err = cli("check", f)
        assert code == 0, err
        assert err.startswith(f"raisim {kind}: ok: ") and len(err.strip().splitlines()) == 1, err
        assert tree(tmp_path) == before
    code, _, err = cli("simulate", ERRITI, "--out", tmp_path / "o", "--dry-run")
    assert code == 0 and not (tmp_path / "o").exists(), err
    unknown = write_yaml(tmp_path / "what.yaml", {"hello": 1})
    code, _, err = cli("check", unknown)
    assert_one_line_error(code, err, "what.yaml", "protocol")


def test_the_calibration_config_checks_its_emulator_before_any_write(tmp_path):
    cfg = yaml.safe_load((REPO / "configs" / "calibration" / "default.yaml").read_text())
    cfg["trials"] = str(REPO / "models" / "data" / "trials.csv")
    good = write_yaml(tmp_path / "cal.yaml", cfg)
    code, _, err = cli("check", good)
    assert code == 0, err
    cfg["emulator"] = {**cfg.get("emulator", {}), "file": str(tmp_path / "missing.npz")}
    bad = write_yaml(tmp_path / "cal_bad.yaml", cfg)
    code, _, err = cli("calibrate", bad, "--out", tmp_path / "out")
    assert_one_line_error(code, err, "emulator.file", "existing emulator")
    assert not (tmp_path / "out").exists()


# one writer per output directory


def test_a_second_writer_of_an_output_directory_is_refused(tmp_path):
    out = tmp_path / "out"
    holder = textwrap.dedent(
        f"""
        import sys, time
        from raisim.io.store import out_dir_lock
        with out_dir_lock({str(out)!r}):
            print("held", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "held"
        code, _, err = cli("simulate", ERRITI, "--out", out, "--force")
        assert_one_line_error(code, err, "--out", f"process {proc.pid} is")
    finally:
        proc.kill()
        proc.wait()
    assert [p.name for p in out.iterdir()] == [".raisim.lock"]  # the refused run wrote nothing


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    from raisim.io.store import out_dir_lock

    out = tmp_path / "out"
    holder = f"from raisim.io.store import out_dir_lock\nwith out_dir_lock({str(out)!r}):\n    import os; os._exit(9)"
    assert subprocess.run([sys.executable, "-c", holder], cwd=REPO).returncode == 9
    with out_dir_lock(out) as p, out_dir_lock(out) as q:  # free again, and re-entrant in one process
        assert p == q


# a full disk


def test_a_full_disk_is_one_line_and_leaves_whole_files(tmp_path, monkeypatch):
    import errno
    import os

    from raisim.io import store

    target = tmp_path / "manifest.json"
    store.write_json(target, {"a": 1})
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store.os, "fsync", full)
    with pytest.raises(store.OutputError) as info:
        store.write_json(target, {"a": 2})
    monkeypatch.setattr(store.os, "fsync", real_fsync)
    line = info.value.one_line()
    assert "manifest.json" in line and "'<write>'" in line and "No space left" in line
    assert isinstance(info.value, store.InputError)  # the CLI prints it as one line, exit 2
    assert target.read_text() == '{\n  "a": 1\n}\n'  # the earlier file is whole
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temporary file left


def test_results_follow_the_umask(tmp_path):
    import os

    from raisim.io import store

    old = os.umask(0o027)
    try:
        store.write_json(tmp_path / "a.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    store.write_json(tmp_path / "b.json", {})
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o666 & ~old


def test_a_yaml_bigger_than_any_config_is_refused_unparsed(tmp_path):
    from raisim.io.cards import MAX_CONFIG_BYTES

    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_CONFIG_BYTES + b"\n")
    _simulate_refused(tmp_path, big, "1 MiB")


def test_fuzz_regressions_stay_fixed(tmp_path):
    """Inputs the Hypothesis suite (test_fuzz.py) found, kept as plain regressions."""
    d = copy.deepcopy(_protocol())
    d["patient"] = "not a mapping"
    _simulate_refused(tmp_path, write_yaml(tmp_path / "p.yaml", d), "patient")
    sweep = yaml.safe_load(DEMO_SWEEP.read_text())
    sweep["protocol"] = str(ERRITI)
    # (a) a grid value null for the day that 'end + N' values are relative to (was a TypeError)
    nulls = {**sweep, "grid": {"treatment.stop_day": [None, 21]}}
    code, _, err = cli("check", write_yaml(tmp_path / "s1.yaml", nulls))
    assert_one_line_error(code, err, "s1.yaml", "treatment.stop_day")
    # (b) a NUL character in a path (was a ValueError from the path library)
    code, _, err = cli("check", write_yaml(tmp_path / "s2.yaml", {**sweep, "protocol": "\x00"}))
    assert_one_line_error(code, err, "s2.yaml", "field 'protocol'", "NUL")
    # (c) a nested i124_dosimetry row before its i124_increase row is a valid table (was a KeyError)
    lines = (REPO / "models" / "data" / "trials.csv").read_text().splitlines()
    increase, dosimetry = lines[3], lines[4]
    assert ",i124_increase," in increase and ",i124_dosimetry," in dosimetry
    trials = tmp_path / "t.csv"
    trials.write_text("\n".join([lines[0], dosimetry, increase]) + "\n")
    code, _, err = cli("check", trials)
    assert code == 0, err


# signals during the other commands (the sweep's are in test_sweep.py, at random points of a real run)


def _blocked_until_signalled(*args, **kwargs):
    import time

    for _ in range(600):  # 60 s at most; the signal arrives within a second
        time.sleep(0.1)
    raise AssertionError("no signal arrived")


@pytest.mark.parametrize(
    ("command", "target", "sig"),
    [
        ("simulate", "raisim.engine.simulate.simulate", "SIGINT"),
        ("predict", "raisim.calibration.predict.predict_table", "SIGTERM"),
        ("calibrate", "raisim.calibration.fit.get_facts", "SIGINT"),
    ],
)
def test_a_signal_during_a_command_is_one_line_and_its_exit_code(tmp_path, monkeypatch, command, target, sig):
    import os
    import signal
    import threading

    monkeypatch.setattr(target, _blocked_until_signalled)
    cal = yaml.safe_load((REPO / "configs" / "calibration" / "default.yaml").read_text())
    cal["trials"] = str(REPO / "models" / "data" / "trials.csv")
    argv = {
        "simulate": ["simulate", ERRITI, "--out", tmp_path / "out"],
        "predict": ["predict", "--trials", REPO / "models" / "data" / "trials.csv"],
        "calibrate": ["calibrate", write_yaml(tmp_path / "cal.yaml", cal), "--out", tmp_path / "out", "--no-progress"],
    }[command]
    signum = getattr(signal, sig)
    stray: list[int] = []
    previous = {s: signal.signal(s, lambda n, f: stray.append(n)) for s in (signal.SIGINT, signal.SIGTERM)}
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signum))
    try:
        timer.start()
        code, _, err = cli(*argv)
        timer.join()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    assert code == 128 + signum, err
    assert err.strip().splitlines()[-1].startswith(f"raisim: interrupted by {sig};"), err
    assert "Traceback" not in err and not stray
    if (tmp_path / "out").exists():  # locked and started, never marked complete
        assert not (tmp_path / "out" / "complete.json").exists()


# 6. scans and lesions the readout models cannot read (issue 24)


@pytest.mark.parametrize(
    ("edit", "field", "allowed"),
    [
        (lambda d: d["scans"][0].update(activity_mbq=-185.0), "scans[0].activity_mbq", "greater than 0"),
        (lambda d: d["scans"][0].update(activity_mbq=0.0), "scans[0].activity_mbq", "greater than 0"),
        (lambda d: d["scans"][0].update(readout="i123_spect_guess"), "scans[0].readout", "i123_tbr"),
        (lambda d: d["patient"]["lesions"][0].update(site="spleen"), "site", "lymph_node"),
        (lambda d: d["scans"][0].update(day=26), "rai.day", "scan it requires"),
    ],
    ids=["negative-tracer-activity", "zero-tracer-activity", "unknown-readout", "unknown-organ", "scan-after-rai"],
)
def test_scans_and_lesions_the_readouts_cannot_read_are_refused(tmp_path, edit, field, allowed):
    d = _protocol()
    edit(d)
    _simulate_refused(tmp_path, write_yaml(tmp_path / "scan.yaml", d), field, allowed)
