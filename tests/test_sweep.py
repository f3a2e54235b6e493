"""Sweeps: grid expansion, chunks, manifest, resume after a kill, determinism, bad input (exit 2)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import REPO, cli_process, write_yaml

from raisim.cli import main
from raisim.engine.batch import run_cohort
from raisim.io.errors import InputError
from raisim.io.model_identity import model_sha256
from raisim.sweep import runner
from raisim.sweep.config import load_sweep
from raisim.sweep.runner import read_chunks
from raisim.sweep.summary import SUMMARY_COLUMNS, draw_metrics, summarise

SMALL = {
    "name": "small sweep",
    "protocol": str(REPO / "configs" / "protocols" / "erriti_21d.yaml"),
    "grid": {"treatment.stop_day": [10, 21]},
    "set": {"scans[0].day": "end + 1", "rai.day": "end + 2", "rai.tki_days_after_rai": None},
    "genotypes": ["RAS"],
    "compare": {"treatment.stop_day": 21},
    "cohort": {"patients": 32, "max_lesions": 3, "chunk": 16},
    "solver": {"rtol": 1e-6, "atol": 1e-9},
    "seed": 5,
}


def _dir_state(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-1500:])
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)


#: (cost_hint, steps) of each run_cohort call of the small_run fixture, in call order
SMALL_RUN_CALLS: list[tuple] = []


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    cfg = write_yaml(d / "small.yaml", SMALL)
    out = d / "run"

    def recording(*args, **kwargs):
        res = run_cohort(*args, **kwargs)
        SMALL_RUN_CALLS.append((kwargs.get("cost_hint"), res.summary.steps.copy()))
        return res

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "run_cohort", recording)
        assert main(["sweep", str(cfg), "--out", str(out), "--no-progress"]) == 0
    return cfg, out


def test_grid_expands_relative_days_and_arms(tmp_path):
    cfg = dict(SMALL, genotypes=["BRAF_V600E", "RAS"])
    cfg["arms"] = [
        {"name": "D75"},
        {"name": "D150", "genotypes": ["BRAF_V600E"], "set": {"treatment.regimens.BRAF_V600E[1].dose_mg": 150}},
    ]
    sweep = load_sweep(write_yaml(tmp_path / "s.yaml", cfg))
    assert len(sweep.cells) == 2 * 2 + 2  # (2 genotypes + 1 extra BRAF arm) x 2 durations
    for c in sweep.cells:
        end = c.protocol.treatment.stop_day
        assert c.protocol.scans[0].day == end + 1 and c.protocol.rai.day == end + 2
        assert c.protocol.patient.genotype == c.genotype
        assert c.protocol.rai.tki_days_after_rai is None
    d150 = [c for c in sweep.cells if c.arm == "D150"]
    assert {c.genotype for c in d150} == {"BRAF_V600E"}
    assert all(c.protocol.treatment.regimens["BRAF_V600E"][1].dose_mg == 150 for c in d150)


def test_shipped_sweep_configs_load():
    for name in ("duration.yaml", "duration_demo.yaml"):
        sweep = load_sweep(REPO / "configs" / "sweeps" / name)
        assert {c.genotype for c in sweep.cells} == {"BRAF_V600E", "RAS", "OTHER"}
    full = load_sweep(REPO / "configs" / "sweeps" / "duration.yaml")
    assert sorted({c.knobs["treatment.stop_day"] for c in full.cells}) == [7, 10, 14, 21, 28, 35, 42]


def test_run_writes_chunks_manifest_summary_and_figure(small_run):
    cfg, out = small_run
    assert sorted(p.name for p in (out / "chunks").glob("*.parquet")) == [
        f"cell{c:04d}_draw000_block{b:05d}.parquet" for c in range(2) for b in range(2)
    ]
    rows = read_chunks(out)
    assert len(rows) == 2 * 32 and rows["ok"].all()
    assert set(rows["treatment.stop_day"]) == {10, 21}
    m = json.loads((out / "manifest.json").read_text())
    assert m["seed"] == 5 and len(m["config_sha256"]) == 64 and m["units"] == 4
    s = pd.read_csv(out / "summary.csv")
    p = s[(s["metric"] == "p_treated")].set_index("treatment.stop_day")
    for day, g in rows.groupby("treatment.stop_day"):
        assert p.loc[day, "estimate"] == pytest.approx(g["treated"].mean())
    # paired difference vs 21 days, computed on the same patients
    rows21 = rows[rows["treatment.stop_day"] == 21].set_index("patient")
    rows10 = rows[rows["treatment.stop_day"] == 10].set_index("patient")
    want = (rows10["grade3_ae"].astype(float) - rows21["grade3_ae"].astype(float)).mean()
    got = s[(s["metric"] == "p_grade3_ae") & (s["treatment.stop_day"] == 10)]["diff_vs_reference"].item()
    assert got == pytest.approx(want)
    assert (out / "duration_response.png").stat().st_size > 10_000


def test_each_unit_is_ordered_by_the_steps_of_the_previous_unit_of_its_regimen(small_run):
    # units: block 0 (cells 0, 1), block 1 (cells 0, 1); both cells are RAS in the same arm.
    # The first unit of a block has no hint; the next one gets the steps of the one before.
    # (That the hint leaves the numbers unchanged: the resume test recomputes cell 1 of block 1
    # without a hint and compares it with the hinted original.)
    (h0, s0), (h1, _), (h2, s2), (h3, _) = SMALL_RUN_CALLS
    assert h0 is None and h2 is None
    np.testing.assert_array_equal(h1, s0)
    np.testing.assert_array_equal(h3, s2)


def test_summary_reads_only_the_columns_it_uses(small_run):
    _, out = small_run
    full = read_chunks(out, [0])
    part = read_chunks(out, [0], SUMMARY_COLUMNS)
    assert list(part.columns) == [c for c in SUMMARY_COLUMNS if c in full.columns]
    assert 3 * len(part.columns) < len(full.columns)  # the point: a large cell's memory
    pd.testing.assert_frame_equal(part, full[part.columns])
    assert draw_metrics(part) == pytest.approx(draw_metrics(full), nan_ok=True)


def test_summary_of_a_follow_up_shorter_than_12_months_is_nan_without_warnings(small_run, tmp_path):
    cfg, out = small_run
    short = tmp_path / "short"
    (short / "chunks").mkdir(parents=True)
    for f in (out / "chunks").glob("*.parquet"):  # as a run with RECIST to 6 months only writes them
        rows = pd.read_parquet(f)
        rows["progressed_12m"] = np.nan
        runner.write_parquet(short / "chunks" / f.name, rows)  # with its checksum, as a run writes it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = summarise(load_sweep(cfg), short)
    pfs = s[s["metric"] == "pfs_12m"]
    assert pfs[["estimate", "mcse", "diff_vs_reference", "diff_mcse"]].isna().all().all()
    other = s[s["metric"] == "p_treated"]
    assert other["estimate"].notna().all() and other["mcse"].notna().all()


def test_same_patients_in_every_cell(small_run):
    _, out = small_run
    rows = read_chunks(out)
    a = rows[rows["treatment.stop_day"] == 10].set_index("patient")
    b = rows[rows["treatment.stop_day"] == 21].set_index("patient")
    for col in ("weight_kg", "n_lesions", "fdg_suv", "baseline_tg_ng_ml"):
        pd.testing.assert_series_equal(a[col], b[col])


def test_resume_recomputes_only_missing_chunks_and_gives_the_same_numbers(small_run, tmp_path):
    cfg, out = small_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    victim = copy / "chunks" / "cell0001_draw000_block00001.parquet"
    before = pd.read_parquet(victim)
    victim.unlink()
    keep = copy / "chunks" / "cell0000_draw000_block00000.parquet"
    mtime = keep.stat().st_mtime_ns
    assert main(["sweep", str(cfg), "--out", str(copy), "--resume", "--no-progress"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(victim), before)
    assert keep.stat().st_mtime_ns == mtime  # not recomputed


def test_killed_run_leaves_only_whole_chunks_and_resume_completes(small_run, tmp_path):
    cfg, out = small_run
    run = tmp_path / "killed"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(
        [sys.executable, "-m", "raisim.cli", "sweep", str(cfg), "--out", str(run), "--no-progress"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list((run / "chunks").glob("*.parquet")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list((run / "chunks").glob("*.parquet"))
    assert 1 <= len(done) < 4, "the kill should land mid-run"
    for f in done:
        pd.read_parquet(f)  # every file that has a chunk's name is complete
    assert main(["sweep", str(cfg), "--out", str(run), "--resume", "--no-progress"]) == 0
    a = read_chunks(run).drop(columns="steps")
    b = read_chunks(out).drop(columns="steps")
    pd.testing.assert_frame_equal(a, b)


def test_same_config_and_seed_give_the_same_numbers(small_run, tmp_path):
    cfg, out = small_run
    again = tmp_path / "again"
    assert main(["sweep", str(cfg), "--out", str(again), "--no-progress"]) == 0
    pd.testing.assert_frame_equal(read_chunks(again), read_chunks(out))
    assert (again / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"grid": {}}, ["field 'grid'"]),
        ({"grid": {"treatment.stop_day": []}}, ["grid.treatment.stop_day"]),
        ({"grid": {"treatment.stopday": [10]}}, ["grid.treatment.stopday", "path into the protocol"]),
        ({"cohort": {"patients": 0}}, ["cohort.patients"]),
        ({"genotypes": ["BRAF"]}, ["genotypes", "BRAF_V600E"]),
        ({"grid": {"treatment.stop_day": [-3]}}, ["treatment.stop_day"]),
        ({"set": {"scans[0].day": "end plus 1"}}, ["end + N"]),
        ({"protocol": "missing.yaml"}, ["field 'protocol'"]),
    ],
)
def test_bad_sweep_config_is_one_line_exit_2_and_writes_nothing(tmp_path, change, needles):
    cfg = write_yaml(tmp_path / "bad.yaml", {**SMALL, **change})
    out = tmp_path / "out"
    proc = cli_process("sweep", str(cfg), "--out", str(out))
    _one_line_error(proc, "bad.yaml", *needles)
    assert not out.exists()


def test_resume_into_a_run_of_another_config_is_refused_untouched(small_run, tmp_path):
    cfg, out = small_run
    other = write_yaml(tmp_path / "other.yaml", {**SMALL, "seed": 6})
    before = _dir_state(out)
    proc = cli_process("sweep", str(other), "--out", str(out), "--resume")
    _one_line_error(proc, "--resume", "same config")
    assert _dir_state(out) == before
    proc = cli_process("sweep", str(cfg), "--out", str(out))  # no --resume into a non-empty directory
    _one_line_error(proc, "--out", "--resume")
    assert _dir_state(out) == before


@pytest.mark.parametrize("recorded", ["another model", "no model"])
def test_resume_into_a_run_of_another_model_is_refused_untouched(small_run, tmp_path, recorded):
    """A run records the model's hash (cards, tables, code); a resume under another model, or into a
    directory from before runs recorded it, would mix chunks of two models."""
    cfg, out = small_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    m = json.loads((copy / "manifest.json").read_text())
    assert m["model_sha256"] == model_sha256()
    if recorded == "another model":
        m["model_sha256"] = "0" * 64
    else:
        del m["model_sha256"]
        m["models_sha256"] = "0" * 64  # what earlier runs recorded: the cards only
    (copy / "manifest.json").write_text(json.dumps(m))
    before = _dir_state(copy)
    proc = cli_process("sweep", str(cfg), "--out", str(copy), "--resume")
    _one_line_error(proc, "--resume", "same model" if recorded == "another model" else "records its model")
    assert _dir_state(copy) == before


def test_malformed_yaml_and_non_positive_patients_on_the_command_line(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    _one_line_error(cli_process("sweep", str(bad), "--out", str(tmp_path / "o")), "broken.yaml", "YAML")
    cfg = write_yaml(tmp_path / "ok.yaml", SMALL)
    _one_line_error(
        cli_process("sweep", str(cfg), "--out", str(tmp_path / "o"), "--patients", "-4"), "--patients", "from 1"
    )
    assert not (tmp_path / "o").exists()


def test_load_sweep_raises_input_error_naming_the_knob(tmp_path):
    cfg = write_yaml(tmp_path / "k.yaml", {**SMALL, "set": {"scans[3].day": 5}})
    with pytest.raises(InputError, match=r"set\.scans\[3\]\.day"):
        load_sweep(cfg)
    assert yaml.safe_load((tmp_path / "k.yaml").read_text())["name"] == "small sweep"


def test_two_processes_share_one_run_directory(small_run, tmp_path):
    """jax.distributed with two local processes: each writes its own chunks; the result equals one process."""
    import socket

    cfg, out = small_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "multi"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "raisim.cli",
                "sweep",
                str(cfg),
                "--out",
                str(run),
                "--no-progress",
                "--distributed",
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=900) for p in procs]
    for p, (_, e) in zip(procs, results, strict=True):
        assert p.returncode == 0, e[-2000:]
    assert "d(CR+PR)" in results[0][0]  # process 0 summarised
    assert json.loads((run / "manifest.json").read_text())["processes"] == 2
    pd.testing.assert_frame_equal(read_chunks(run).drop(columns="steps"), read_chunks(out).drop(columns="steps"))
    assert (run / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()


def test_the_readme_duckdb_query_runs_on_the_chunks(small_run):
    import re

    duckdb = pytest.importorskip("duckdb")
    _, out = small_run
    text = (REPO / "README.md").read_text()
    query = re.search(r'duckdb\.sql\("""(.*?)"""\)', text, re.S).group(1)
    frame = duckdb.sql(query.replace("results/duration", str(out))).df()
    rows = read_chunks(out)
    assert len(frame) == rows.groupby(["genotype", "treatment.stop_day"]).ngroups
    got = frame.set_index("days")["p_treated"]
    for day, g in rows[rows["ok"]].groupby("treatment.stop_day"):
        assert got[day] == pytest.approx(g["treated"].mean())


# --- hardening (issue 23): signals, damaged chunks, a full disk, censoring, permissions ---


def _rows(out):
    return read_chunks(out).drop(columns="steps")


def _interrupt_at_random_points(small_run, tmp_path, tries: int, seed: int) -> int:
    """Send SIGINT/SIGTERM to this process at random points of a warm sweep run — before the first
    unit, at a random moment inside a random unit, or at the summary — resume each run, and check
    it against the uninterrupted one; returns how many runs the signal interrupted."""
    import random
    import threading

    from helpers import cli

    import raisim.sweep.summary

    cfg, out = small_run
    ref, ref_summary = _rows(out), (out / "summary.csv").read_bytes()
    t0 = time.perf_counter()
    assert cli("sweep", cfg, "--out", tmp_path / "warm", "--no-progress")[0] == 0
    unit_s = (time.perf_counter() - t0) / 4  # the small sweep has 4 units
    rng = random.Random(seed)
    stray: list[int] = []  # a signal that lands after a run returned must not stop pytest
    previous = {s: signal.signal(s, lambda n, f: stray.append(n)) for s in (signal.SIGINT, signal.SIGTERM)}
    real_run, real_summary = runner.run_cohort, raisim.sweep.summary.summarise
    interrupted = 0
    try:
        for i in range(tries):
            sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
            point = rng.randrange(6)  # 0: while starting; 1-4: inside that unit; 5: at the summary
            calls = {"units": 0}

            def send(delay_s, sig=sig):
                threading.Timer(delay_s, os.kill, (os.getpid(), sig)).start()

            def unit(*args, point=point, calls=calls, **kwargs):
                calls["units"] += 1
                if calls["units"] == point:
                    send(rng.uniform(0.0, unit_s))
                return real_run(*args, **kwargs)

            def summary(*args, point=point, sig=sig, **kwargs):
                if point == 5:
                    os.kill(os.getpid(), sig)
                return real_summary(*args, **kwargs)

            run = tmp_path / f"run{i}"
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(runner, "run_cohort", unit)
                mp.setattr(raisim.sweep.summary, "summarise", summary)
                if point == 0:
                    send(rng.uniform(0.0, 0.5))
                code, _, err = cli("sweep", cfg, "--out", run, "--no-progress")
                time.sleep(unit_s)  # a late timer lands here, on the stray handler
            if code != 0:
                interrupted += 1
                assert code == 128 + sig, err
                last = err.strip().splitlines()[-1]
                assert last.startswith(f"raisim: interrupted by {signal.Signals(sig).name};"), err
                assert "Traceback" not in err
                if (run / "complete.json").exists():  # the signal came after the last write: the run is whole
                    pd.testing.assert_frame_equal(_rows(run), ref)
            assert not list(run.rglob("*.tmp")) if run.exists() else True  # no half-written file
            again = ["--resume"] if (run / "manifest.json").exists() else ["--force"]
            code, _, err = cli("sweep", cfg, "--out", run, "--no-progress", *again)
            assert code == 0, err
            assert (run / "complete.json").exists()
            pd.testing.assert_frame_equal(_rows(run), ref)
            assert (run / "summary.csv").read_bytes() == ref_summary
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return interrupted


def test_signals_at_random_points_end_cleanly_and_resume_to_the_same_rows(small_run, tmp_path):
    assert _interrupt_at_random_points(small_run, tmp_path, tries=3, seed=23) >= 2


@pytest.mark.slow
def test_signals_at_twenty_random_points(small_run, tmp_path):
    assert _interrupt_at_random_points(small_run, tmp_path, tries=20, seed=2026) >= 15


@pytest.mark.parametrize("sig", [signal.SIGINT])
def test_the_console_script_ends_an_interrupted_sweep_with_130_not_a_crash(small_run, tmp_path, sig):
    cfg, out = small_run
    run = tmp_path / "int"
    proc = subprocess.Popen(
        [sys.executable, "-m", "raisim.cli", "sweep", str(cfg), "--out", str(run), "--no-progress"],
        cwd=REPO,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list((run / "chunks").glob("*.parquet")):
        time.sleep(0.2)
    proc.send_signal(sig)
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode == 128 + sig, err[-2000:]
    assert err.strip().splitlines()[-1].startswith(f"raisim: interrupted by {signal.Signals(sig).name};")
    assert "Traceback" not in err and "Segmentation" not in err
    assert not (run / "complete.json").exists()
    assert main(["sweep", str(cfg), "--out", str(run), "--resume", "--no-progress"]) == 0
    pd.testing.assert_frame_equal(_rows(run), _rows(out))


class _Records:
    def __init__(self):
        self.lines: list[str] = []

    def __enter__(self):
        import logging

        self.handler = logging.Handler()
        self.handler.emit = lambda record: self.lines.append(record.getMessage())
        logging.getLogger("raisim").addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        import logging

        logging.getLogger("raisim").removeHandler(self.handler)


@pytest.mark.parametrize("damage", ["middle", "truncated", "no_checksum", "directory"])
def test_a_damaged_chunk_is_quarantined_and_recomputed(small_run, tmp_path, damage):
    cfg, out = small_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    victim = copy / "chunks" / "cell0001_draw000_block00000.parquet"
    data = bytearray(victim.read_bytes())
    if damage == "middle":
        mid = len(data) // 2
        data[mid : mid + 16] = bytes(16)
        victim.write_bytes(bytes(data))
        pq.ParquetFile(victim)  # the footer is intact: pyarrow still opens the file
    elif damage == "truncated":
        victim.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "directory":  # a directory in the chunk's place (was IsADirectoryError on --resume)
        victim.unlink()
        victim.mkdir()
        (victim / "x").write_text("x")
    else:  # killed between the chunk and its checksum
        victim.with_suffix(".sha256").unlink()
    with _Records() as log:
        assert main(["sweep", str(cfg), "--out", str(copy), "--resume", "--no-progress"]) == 0
    assert any(victim.name in m and "quarantine" in m for m in log.lines), log.lines
    assert [p.name.split(".parquet")[0] for p in (copy / "quarantine").glob("*.parquet.*")] == [victim.stem]
    pd.testing.assert_frame_equal(_rows(copy), _rows(out))
    assert (copy / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()
    assert (copy / "complete.json").exists()


def test_the_summary_refuses_a_damaged_chunk_and_names_it(small_run, tmp_path):
    cfg, out = small_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    victim = copy / "chunks" / "cell0000_draw000_block00001.parquet"
    data = bytearray(victim.read_bytes())
    data[len(data) // 3] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        summarise(load_sweep(cfg), copy)
    assert victim.stem in info.value.one_line() and "--resume" in info.value.one_line()
    assert not victim.exists() and list((copy / "quarantine").iterdir())


def test_a_full_disk_mid_sweep_is_one_line_and_the_directory_resumes(small_run, tmp_path, monkeypatch):
    import errno

    from helpers import cli

    from raisim.io import store

    cfg, out = small_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    (copy / "chunks" / "cell0001_draw000_block00001.parquet").unlink()
    (copy / "complete.json").unlink()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as mp:
        mp.setattr(store.os, "fsync", full)
        code, _, err = cli("sweep", cfg, "--out", copy, "--resume", "--no-progress")
    assert code == 2 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]  # after the run's header line: the one-line error
    for needle in ("error: ", "cell0001_draw000_block00001.parquet", "'<write>'", "No space left"):
        assert needle in last, (needle, last)
    assert not list(copy.rglob("*.tmp")) and not (copy / "complete.json").exists()
    code, _, err = cli("sweep", cfg, "--out", copy, "--resume", "--no-progress")
    assert code == 0, err
    pd.testing.assert_frame_equal(_rows(copy), _rows(out))


def test_resume_of_a_complete_run_recomputes_nothing(small_run, tmp_path):
    from helpers import cli

    cfg, out = small_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(out), str(copy)], check=True)
    code, _, err = cli("sweep", cfg, "--out", copy, "--resume", "--no-progress")
    assert code == 0, err
    assert "0 chunk(s) computed, 4 already on disk" in err
    assert (copy / "complete.json").exists()


def test_censored_patients_have_their_own_column_not_a_nan(small_run):
    cfg, out = small_run
    rows = read_chunks(out)
    ok = rows["ok"].astype(bool)
    assert rows.loc[ok, "pfs_months"].notna().all()  # NaN marks only a failed patient
    censored = ok & ~rows["pfs_event"].astype(bool)
    assert censored.any() and (ok & rows["pfs_event"].astype(bool)).any()
    months = load_sweep(cfg).cells[0].protocol.followup.end_months
    # a censored patient is followed to the end of follow-up (or past it, when a late scan ran longer)
    assert (rows.loc[censored, "pfs_months"] >= months - 1e-9).all()
    progressed = rows["pfs_event"].astype(bool) & (rows["pfs_months"] <= 12.0 + 1e-9)
    np.testing.assert_array_equal(rows.loc[ok, "progressed_12m"], progressed[ok].astype(float))


def test_written_files_follow_the_umask(small_run):
    cfg, out = small_run
    mask = os.umask(0o022)
    os.umask(mask)
    files = [p for p in out.rglob("*") if p.is_file() and p.name != ".raisim.lock"]
    assert len(files) > 5
    for p in files:
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, (p.name, oct(p.stat().st_mode))
