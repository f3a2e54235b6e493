"""The error contract, round two (issue 37): one regression test per class of input that crashed,
hung or passed validation.

Each runs the real entry point (``raisim.cli.main``, in this process, except where the process
itself is the subject) and asserts exit 2 with exactly one line naming the file or option and what
is allowed, nothing written, and (for the resource cases) an answer within seconds. The fuzzer that
looks for the next defect of each class is ``test_fuzz.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from helpers import PROTOCOLS, REPO, assert_one_line_error, cli, tree, write_yaml

ERRITI = PROTOCOLS / "erriti_21d.yaml"
DEMO_SWEEP = REPO / "configs" / "sweeps" / "duration_demo.yaml"
TRIALS = REPO / "models" / "data" / "trials.csv"


def _sweep(**changes) -> dict:
    d = yaml.safe_load(DEMO_SWEEP.read_text())
    d["protocol"] = str(ERRITI)
    d.update(changes)
    return d


def _refused(tmp_path: Path, *argv, needles=()) -> str:
    """Run the CLI, assert the one-line refusal holding ``needles`` and that nothing was written."""
    before = tree(tmp_path)
    code, _, err = cli(*argv)
    assert_one_line_error(code, err, *needles)
    assert tree(tmp_path) == before
    assert not (tmp_path / "out").exists()
    return err


# crashes with a traceback


def test_an_integer_of_thousands_of_digits_is_one_line(tmp_path):
    text = ERRITI.read_text()
    assert "stop_day: 21" in text
    f = tmp_path / "big.yaml"
    f.write_text(text.replace("stop_day: 21", "stop_day: " + "9" * 5000, 1))
    _refused(tmp_path, "check", f, needles=("big.yaml", "at most 20 digits"))
    _refused(tmp_path, "simulate", f, "--out", tmp_path / "out", needles=("big.yaml", "20 digits"))


def test_a_sweep_protocol_path_in_a_symlink_loop_is_one_line(tmp_path):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    cfg = write_yaml(tmp_path / "s.yaml", _sweep(protocol="a.yaml"))
    _refused(tmp_path, "check", cfg, needles=("s.yaml", "field 'protocol'", "symbolic-link loop"))


def test_a_posterior_that_is_a_directory_is_one_line(tmp_path):
    code, _, err = cli("predict", "--trials", TRIALS, "--dry-run", "--posterior", REPO / "configs" / "protocols")
    assert_one_line_error(code, err, "--posterior", "not a directory")
    par = {"source": "posterior", "draws": 2, "posterior": str(REPO / "configs" / "protocols")}
    cfg = write_yaml(tmp_path / "s.yaml", _sweep(parameters=par))
    _refused(tmp_path, "check", cfg, needles=("s.yaml", "parameters.posterior", "not a directory"))


@pytest.mark.parametrize("where", ["long-part", "long-path"])
def test_an_out_path_the_system_cannot_take_is_one_line_before_anything_is_made(tmp_path, where):
    out = tmp_path / ("x" * 300) if where == "long-part" else tmp_path.joinpath(*["d" * 200] * 25)
    for argv in (["simulate", ERRITI, "--parameters", "typical"], ["sweep", DEMO_SWEEP]):
        for extra in ([], ["--dry-run"]):
            err = _refused(tmp_path, *argv, "--out", out, *extra, needles=("--out",))
            assert ("255 bytes" if where == "long-part" else "4095 bytes") in err


@pytest.mark.parametrize("seed", [2**63, 2**70, -1, 2**32])
def test_a_seed_past_its_bound_is_refused_before_the_run_creates_anything(tmp_path, seed):
    out = tmp_path / "out"
    for argv in (
        ["simulate", ERRITI, "--parameters", "typical", "--seed", seed, "--out", out],
        ["simulate", ERRITI, "--parameters", "typical", "--seed", seed, "--dry-run"],
        ["sweep", DEMO_SWEEP, "--seed", seed, "--out", out],
        ["predict", "--trials", TRIALS, "--seed", seed, "--dry-run"],
    ):
        _refused(tmp_path, *argv, needles=("--seed", "4294967295"))
    cfg = write_yaml(tmp_path / "s.yaml", _sweep(seed=seed))
    err = _refused(tmp_path, "check", cfg, needles=("s.yaml",))
    assert "field 'seed'" in err or "at most 20 digits" in err, err  # 2**70 has 22 digits


def test_the_largest_seed_passes_and_runs_as_far_as_the_dry_run(tmp_path):
    code, _, err = cli("simulate", ERRITI, "--parameters", "typical", "--seed", 2**32 - 1, "--dry-run")
    assert code == 0, err


# unbounded resources


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory"])
def test_a_config_that_is_not_a_regular_file_ends_at_once(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "config.yaml"
        os.mkfifo(path)
    elif kind == "directory":
        path = tmp_path / "config.yaml"
        path.mkdir()
    else:
        path = Path(kind)
        if not path.exists():
            pytest.skip("no /dev/zero here")
    start = time.monotonic()
    for argv in (["check", path, "--kind", "protocol"], ["check", path], ["sweep", path, "--dry-run"]):
        code, _, err = cli(*argv)
        assert_one_line_error(code, err, "regular file" if kind != "directory" else "not a directory")
    assert time.monotonic() - start < 10


def test_an_alias_bomb_in_a_sweep_set_value_is_refused_in_seconds(tmp_path):
    lines = ["  patient.weight_kg: &b0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, 9):
        lines.append(f"  scans[0].note{i}: &b{i} [" + ", ".join([f"*b{i - 1}"] * 10) + "]")
    text = DEMO_SWEEP.read_text().replace("../protocols/erriti_21d.yaml", str(ERRITI))
    text = text.replace("set:\n", "set:\n" + "\n".join(lines) + "\n", 1)
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(text)
    start = time.monotonic()
    _refused(tmp_path, "check", cfg, needles=("bomb.yaml", "nodes with its aliases expanded"))
    assert time.monotonic() - start < 10
    rec = tmp_path / "rec.yaml"
    rec.write_text("name: x\npatient: &p {lesions: [*p]}\n")
    _refused(tmp_path, "check", rec, "--kind", "protocol", needles=("rec.yaml", "recursive"))


# validation that passed bad input


@pytest.mark.parametrize(
    ("csv_text", "needles"),
    [
        ("biology/nis.yaml:hill,not_a_card:x\n2.0,1\n", ("not_a_card:x", "card:parameter")),
        ("biology/nis.yaml:no_such_parameter\n2.0\n", ("no_such_parameter", "a parameter of biology/nis.yaml")),
        ("biology/nis.yaml:hill\n2.0\nnan\n", ("finite numbers", "draw 1")),
        ("biology/nis.yaml:hill\n2.0\n\n3.0\nabc\n", ("finite numbers",)),
        ("biology/nis.yaml:hill\n", ("at least one row",)),
    ],
    ids=["unknown-card", "unknown-parameter", "nan", "text", "no-rows"],
)
def test_a_draws_csv_is_checked_on_the_validate_only_path_as_the_run_reads_it(tmp_path, csv_text, needles):
    draws = tmp_path / "draws.csv"
    draws.write_text(csv_text)
    cfg = write_yaml(
        tmp_path / "s.yaml", _sweep(parameters={"source": "posterior", "draws": 1, "posterior": "draws.csv"})
    )
    _refused(tmp_path, "check", cfg, needles=("s.yaml", "parameters.posterior", *needles))
    code, _, err = cli("predict", "--trials", TRIALS, "--posterior", draws, "--dry-run")
    assert_one_line_error(code, err, "--posterior", *needles)


def test_a_valid_draws_csv_still_passes(tmp_path):
    draws = tmp_path / "draws.csv"
    draws.write_text("biology/nis.yaml:hill,calibration/between_trial.yaml:logit_sd\n2.0,0.5\n3.0,0.4\n")
    cfg = write_yaml(
        tmp_path / "s.yaml", _sweep(parameters={"source": "posterior", "draws": 2, "posterior": "draws.csv"})
    )
    code, _, err = cli("check", cfg)
    assert code == 0, err


def test_two_sweep_arms_of_one_name_are_refused(tmp_path):
    d = _sweep()
    d["arms"][1]["name"] = d["arms"][0]["name"]
    _refused(tmp_path, "check", write_yaml(tmp_path / "s.yaml", d), needles=("field 'arms'", "distinct names"))


def test_command_line_counts_have_the_schema_bounds(tmp_path):
    _refused(tmp_path, "simulate", ERRITI, "--pk-report", 10**6, "--dry-run", needles=("--pk-report", "10000"))
    _refused(tmp_path, "sweep", DEMO_SWEEP, "--patients", 0, "--dry-run", needles=("--patients",))
    _refused(tmp_path, "predict", "--trials", TRIALS, "--draws", 10**5, "--dry-run", needles=("--draws", "10000"))
    _refused(tmp_path, "schema", "--indent", 10**9, needles=("--indent", "16"))


def test_predict_refuses_two_sources_of_draws(tmp_path):
    posterior = REPO / "models" / "posterior" / "posterior.nc"
    argv = ("predict", "--trials", TRIALS, "--posterior", posterior, "--prior-draws", 4, "--dry-run")
    _refused(tmp_path, *argv, needles=("--posterior/--prior-draws", "not both"))


@pytest.mark.parametrize("count", ["10" + "0" * 40, "100001"])
def test_trials_counts_past_any_arm_are_refused(tmp_path, count):
    lines = TRIALS.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("n")] = count
    f = tmp_path / "t.csv"
    f.write_text("\n".join([lines[0], ",".join(row)]) + "\n")
    _refused(tmp_path, "check", f, needles=("t.csv", "row 1", "field 'n'", "100000"))


@pytest.mark.parametrize(
    ("old", "new", "needles"),
    [
        ("stop_day: 21", "stop_day: true", ("treatment.stop_day", "not true/false")),
        ("weight_kg: 70", "weight_kg: false", ("weight_kg", "not true/false")),
        ("months: [3, 6, 12]", "months: !!set {3, 6, 12}", ("not a set",)),
    ],
    ids=["bool-day", "bool-weight", "set"],
)
def test_booleans_and_sets_are_not_read_as_numbers_or_lists(tmp_path, old, new, needles):
    text = ERRITI.read_text()
    assert old in text, old
    f = tmp_path / "p.yaml"
    f.write_text(text.replace(old, new, 1))
    _refused(tmp_path, "check", f, needles=("p.yaml", *needles))


# messages


def test_a_second_signal_while_unwinding_still_says_one_line():
    script = textwrap.dedent(
        """
        import os, signal, time
        from raisim.cli.interrupt import Interrupted, interruptible
        with interruptible():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(30)
            except Interrupted:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted again by SIGTERM" in lines[0], proc.stderr


def test_a_second_writer_is_told_who_holds_the_directory_in_one_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("earlier run\n")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(out / '.raisim.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = tree(tmp_path)
        for extra in ([], ["--resume"], ["--force"], ["--dry-run"]):
            code, _, err = cli("sweep", DEMO_SWEEP, "--out", out, "--no-progress", *extra)
            assert_one_line_error(code, err, "--out", f"process {holder.pid} is")
        code, _, err = cli("simulate", ERRITI, "--out", out, "--force")
        assert_one_line_error(code, err, "--out", f"process {holder.pid} is")
        assert tree(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_malformed_relative_day_names_its_knob(tmp_path):
    d = _sweep()
    d["set"]["rai.day"] = "end + x"
    _refused(tmp_path, "check", write_yaml(tmp_path / "s.yaml", d), needles=("field 'set.rai.day'", "end + N"))
    d = _sweep(grid={"treatment.stop_day": [10, "end - two"]})
    _refused(tmp_path, "check", write_yaml(tmp_path / "s2.yaml", d), needles=("field 'grid.treatment.stop_day'",))
