"""Property-based tests of the error contract: generated protocol, sweep and trials files.

Hypothesis starts from the shipped files and breaks them by mutation — wrong types, values out of
range, non-finite numbers, huge sizes, missing and extra fields, duplicate keys, bytes that are
not UTF-8, truncation — then runs each through the command line in this process on the
validate-only path (``raisim check``, ``--dry-run``). Whatever it makes, the answer is exit 0, or
exit 2 with exactly one ``error:`` line naming the file; never a traceback, and nothing written.
A handful of valid generated protocols also go through a full solve. Issue 37 added generators
for what still broke the contract: integers of thousands of digits, sets and alias bombs anywhere
in a document, paths that are not regular files (a FIFO, ``/dev/zero``, a directory, a
symbolic-link loop, a dangling link, parts and paths over the system's limits) in every place a
path is given, every integer option at and past its bounds, and draws files with wrong columns
and values; what passes validation is checked to run where it is cheap to (a seed draws).

Profiles: the CI one is derandomised, without deadline (``FUZZ_EXAMPLES`` examples per file kind,
about a minute); the deep one (``@pytest.mark.slow``, ``make test-all``) tries 25 times as many.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import PROTOCOLS, REPO, cli, tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raisim.io.limits import MAX_DRAWS, MAX_PATIENTS_PER_CELL, MAX_PK_REPORT_PATIENTS, MAX_SEED
from raisim.streams import patient_uniforms
from raisim.sweep.config import load_sweep

FUZZ_EXAMPLES = 100
_COMMON = {"deadline": None, "suppress_health_check": list(HealthCheck), "database": None}
CI = settings(max_examples=FUZZ_EXAMPLES, derandomize=True, **_COMMON)
DEEP = settings(max_examples=25 * FUZZ_EXAMPLES, **_COMMON)

PROTOCOL_BASES = [yaml.safe_load(p.read_text()) for p in sorted(PROTOCOLS.glob("*.yaml"))]
_SWEEP = yaml.safe_load((REPO / "configs" / "sweeps" / "duration_demo.yaml").read_text())
_SWEEP["protocol"] = str(PROTOCOLS / "erriti_21d.yaml")
SWEEP_BASES = [_SWEEP, {**_SWEEP, "parameters": {"source": "typical"}, "genotypes": ["RAS"]}]
TRIALS_CSV = REPO / "models" / "data" / "trials.csv"
with TRIALS_CSV.open(newline="", encoding="utf-8") as _f:
    TRIALS_ROWS = list(csv.DictReader(_f))
TRIALS_COLUMNS = list(TRIALS_ROWS[0])


def _shared_lists(depth: int) -> list:
    """Lists of ten references to one list, ``depth`` deep: YAML writes them with anchors and aliases,
    a few hundred bytes that expand to 10**(depth + 1) items (a "billion laughs" document)."""
    node: list = [1] * 10
    for _ in range(depth):
        node = [node] * 10
    return node


#: Values a mutation puts anywhere: wrong types, edges, non-finite and huge numbers (up to
#: thousands of digits), odd text, sets, and aliases that expand past any configuration.
VALUES = st.one_of(
    st.integers(10**19, 10**4000),
    st.sets(st.integers(0, 9), max_size=3),
    st.integers(1, 7).map(_shared_lists),
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 1000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e308, -1e-308, float("inf"), float("nan"), "", "end + 1", "ÿ", "\x00", "-", "[]"]),
    st.text(max_size=12),
    st.lists(st.integers(-5, 50), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(-5, 50), max_size=2),
)
CELLS = st.one_of(
    st.sampled_from(["", "0", "-1", "1e308", "inf", "nan", "NaN", "-inf", "1.5", "x", "ÿ", ",", '"', "99999999999"]),
    st.text(max_size=10),
    st.integers(-(2**40), 2**40).map(str),
)


def _paths(node, prefix=(), seen=None):
    """Every path to a value inside nested dicts and lists (the places a mutation may hit); a list or
    dict met again (the shared lists of :func:`_shared_lists`) is not entered twice."""
    seen = set() if seen is None else seen
    yield prefix
    if isinstance(node, dict | list):
        if id(node) in seen:
            return
        seen.add(id(node))
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k), seen)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i), seen)


def _get(node, path):
    for p in path:
        node = node[p]
    return node


@st.composite
def mutated(draw, bases: list[dict]) -> dict:
    """A deep copy of one of ``bases`` after 0-3 mutations: set, delete, add an extra key, or grow a list."""
    d = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(0, 3))):
        paths = [p for p in _paths(d) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _get(d, path[:-1]), path[-1]
        op = draw(st.sampled_from(["set", "set", "set", "delete", "extra", "grow"]))
        if op == "set":
            parent[key] = draw(VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "extra" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(VALUES)
        elif op == "grow" and isinstance(parent[key], list) and parent[key]:
            parent[key] = parent[key] * draw(st.integers(2, 300))
    return d


@st.composite
def yaml_bytes(draw, bases: list[dict]) -> bytes:
    """A YAML file from :func:`mutated`, sometimes broken at the byte level as well."""
    text = yaml.safe_dump(draw(mutated(bases)), sort_keys=False, allow_unicode=True)
    return _break_bytes(draw, text)


def _break_bytes(draw, text: str) -> bytes:
    how = draw(st.sampled_from(["none"] * 6 + ["duplicate_line", "latin1", "binary", "truncate", "bom", "tab"]))
    lines = text.splitlines(keepends=True)
    if how == "duplicate_line" and lines:
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
        text = "".join(lines)
    elif how == "latin1":
        return ("# é\n" + text).encode("latin-1", errors="replace")
    elif how == "binary":
        return draw(st.binary(min_size=1, max_size=200))
    elif how == "truncate" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif how == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    elif how == "tab":
        text = text.replace("  ", "\t", 1)
    return text.encode()


@st.composite
def trials_bytes(draw) -> bytes:
    """A trials CSV: some shipped rows, cells replaced, columns dropped or added, bytes broken."""
    rows = [dict(r) for r in draw(st.lists(st.sampled_from(TRIALS_ROWS), min_size=1, max_size=4))]
    columns = list(TRIALS_COLUMNS)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["cell", "cell", "cell", "drop", "extra", "duplicate_column"]))
        if op == "cell":
            r = draw(st.sampled_from(rows))
            r[draw(st.sampled_from(columns))] = draw(CELLS)
        elif op == "drop" and len(columns) > 1:
            columns.remove(draw(st.sampled_from(columns)))
        elif op == "extra":
            columns.append(draw(st.text(min_size=1, max_size=6)))
        elif op == "duplicate_column":
            columns.append(draw(st.sampled_from(columns)))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([r.get(c, "") for c in columns])
    return _break_bytes(draw, buf.getvalue())


def _lines(err: str) -> list[str]:
    """The lines a command printed on stderr, less the shipped posterior's once-per-process warning
    that it was fitted to another model (shown by whichever test of a worker reads it first)."""
    return [line for line in err.strip().splitlines() if "was fitted to another model" not in line]


def _contract(name: str, data: bytes, *args: str) -> int:
    """Write ``data`` as ``name`` in a fresh directory, run the CLI on it, assert the contract."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        f = d / name
        f.write_bytes(data)
        before = tree(d)
        out = d / "out"
        argv = [a.replace("{file}", str(f)).replace("{out}", str(out)) for a in args]
        code, stdout, err = cli(*argv)
        lines = _lines(err)
        assert "Traceback" not in err, err[-3000:]
        assert code in (0, 2), (code, err[-3000:])
        assert len(lines) == 1, lines
        if code == 2:
            assert lines[0].startswith("error: "), lines
        else:
            assert " ok: " in lines[0], lines
        assert tree(d) == before and not out.exists()  # nothing written, not even the output directory
        return code


def _protocol_case(data: bytes, as_dry_run: bool) -> None:
    if as_dry_run:
        _contract("p.yaml", data, "simulate", "{file}", "--out", "{out}", "--dry-run", "--parameters", "typical")
    else:
        _contract("p.yaml", data, "check", "{file}", "--kind", "protocol")


def _sweep_case(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "s.yaml"
        f.write_bytes(data)
        if _contract("s.yaml", data, "sweep", "{file}", "--out", "{out}", "--dry-run") == 0:
            _seed_runs(load_sweep(f).config.seed)  # what passed the dry run also draws


def _seed_runs(seed: int) -> None:
    """A seed that passed validation works where the run uses it (numpy's and jax's generators)."""
    patient_uniforms(seed, "fuzz", np.arange(2), 1)
    np.random.default_rng([seed, 7]).random()


def _trials_case(data: bytes) -> None:
    _contract("t.csv", data, "check", "{file}", "--kind", "trials")


@CI
@given(yaml_bytes(PROTOCOL_BASES), st.booleans())
def test_generated_protocol_files_meet_the_error_contract(data, as_dry_run):
    _protocol_case(data, as_dry_run)


@CI
@given(yaml_bytes(SWEEP_BASES))
def test_generated_sweep_files_meet_the_error_contract(data):
    _sweep_case(data)


@CI
@given(trials_bytes())
def test_generated_trials_files_meet_the_error_contract(data):
    _trials_case(data)


@pytest.mark.slow
@DEEP
@given(yaml_bytes(PROTOCOL_BASES), st.booleans())
def test_generated_protocol_files_deep(data, as_dry_run):
    _protocol_case(data, as_dry_run)


@pytest.mark.slow
@DEEP
@given(yaml_bytes(SWEEP_BASES))
def test_generated_sweep_files_deep(data):
    _sweep_case(data)


@pytest.mark.slow
@DEEP
@given(trials_bytes())
def test_generated_trials_files_deep(data):
    _trials_case(data)


#: Valid protocols that keep the shapes of erriti_21d.yaml (one compiled program serves them all).
VALID_CHANGES = st.fixed_dictionaries(
    {
        "weight_kg": st.floats(40, 150),
        "baseline_tg_ng_ml": st.floats(0, 5000),
        "diameter_mm": st.floats(3, 60),
        "missed": st.floats(0, 0.3),
        "seed": st.integers(0, 2**31 - 1),
    }
)


@settings(max_examples=3, derandomize=True, **_COMMON)
@given(VALID_CHANGES)
def test_valid_generated_protocols_solve_and_write_a_complete_directory(change):
    d = copy.deepcopy(yaml.safe_load((PROTOCOLS / "erriti_21d.yaml").read_text()))
    d["patient"]["weight_kg"] = change["weight_kg"]
    d["patient"]["baseline_tg_ng_ml"] = change["baseline_tg_ng_ml"]
    for lesion in d["patient"]["lesions"]:
        lesion.pop("mass_g", None)
        lesion["diameter_mm"] = change["diameter_mm"]
    d["treatment"]["missed_dose_probability"] = change["missed"]
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "p.yaml"
        f.write_text(yaml.safe_dump(d))
        out = Path(tmp) / "out"
        code, _, err = cli("simulate", f, "--out", out, "--seed", change["seed"], "--parameters", "typical")
        assert code == 0, err[-3000:]
        done = json.loads((out / "complete.json").read_text())
        assert set(done["outputs"]) <= {p.name for p in out.iterdir()}
        outcome = json.loads((out / "outcome.json").read_text())
        assert outcome["solver"]["ok"] in (True, False)


# ---------------------------------------------------------------------------
# Round two (issue 37): paths, command-line integers and draws files
# ---------------------------------------------------------------------------

#: A one-row trials table: predict's validate-only path on it takes a fraction of a second.
_ONE_ROW_TRIALS = "\n".join(TRIALS_CSV.read_text().splitlines()[:2]) + "\n"

#: What a path may be that no command can use.
BAD_PATHS = st.sampled_from(["fifo", "directory", "dev_zero", "loop", "long_part", "long_path", "missing", "dangling"])

#: Where a path is given: the command line (a file, an option) or inside a sweep config.
PATH_ROLES = st.sampled_from(
    ["check", "sweep_config", "sweep_protocol", "sweep_posterior", "predict_posterior", "predict_trials", "out"]
)


def _bad_path(d: Path, kind: str, suffix: str) -> Path:
    """A path of the given ``kind`` under ``d`` (made on disk where it is a thing)."""
    p = d / f"bad{suffix}"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "directory":
        p.mkdir()
    elif kind == "dev_zero":
        return Path("/dev/zero")
    elif kind == "loop":
        p.symlink_to(d / f"loop{suffix}")
        (d / f"loop{suffix}").symlink_to(p)
    elif kind == "long_part":
        return d / ("x" * 256 + suffix)
    elif kind == "long_path":
        return d.joinpath(*["y" * 250] * 17, f"z{suffix}")
    elif kind == "dangling":
        p.symlink_to(d / "nowhere")
    return p


def _path_case(kind: str, role: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        trials = d / "t.csv"
        trials.write_text(_ONE_ROW_TRIALS)
        suffix = {"sweep_posterior": ".csv", "predict_posterior": ".nc", "predict_trials": ".csv"}.get(role, ".yaml")
        bad = _bad_path(d, kind, suffix)
        sweep = dict(_SWEEP)
        if role == "sweep_protocol":
            sweep["protocol"] = str(bad)
        if role == "sweep_posterior":
            sweep["parameters"] = {"source": "posterior", "draws": 1, "posterior": str(bad)}
        cfg = d / "s.yaml"
        cfg.write_text(yaml.safe_dump(sweep))
        argv = {
            "check": ["check", bad, "--kind", "protocol"],
            "sweep_config": ["sweep", bad, "--dry-run"],
            "sweep_protocol": ["check", cfg],
            "sweep_posterior": ["check", cfg],
            "predict_posterior": ["predict", "--trials", trials, "--posterior", bad, "--dry-run"],
            "predict_trials": ["predict", "--trials", bad, "--dry-run"],
            "out": [
                "simulate",
                PROTOCOLS / "erriti_21d.yaml",
                "--parameters",
                "typical",
                "--dry-run",
                "--out",
                bad / "out",
            ],
        }[role]
        if role == "out" and kind in ("missing", "directory"):
            argv[-1] = bad  # a new directory, or an empty one: fine places to write
        before = tree(d) if kind not in ("loop",) else None
        start = time.monotonic()
        code, _, err = cli(*argv)
        lines = _lines(err)
        assert "Traceback" not in err, err[-3000:]
        assert time.monotonic() - start < 60, (kind, role)
        if role == "out" and kind in ("missing", "directory"):
            assert code == 0 and len(lines) == 1 and " ok: " in lines[0], err[-3000:]
            return
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (kind, role, err[-3000:])
        if before is not None:
            assert tree(d) == before


@CI
@given(BAD_PATHS, PATH_ROLES)
def test_generated_paths_meet_the_error_contract(kind, role):
    _path_case(kind, role)


@pytest.mark.slow
@DEEP
@given(BAD_PATHS, PATH_ROLES)
def test_generated_paths_deep(kind, role):
    _path_case(kind, role)


#: Every integer option: (command line before it, option, lowest, highest allowed).
_DRY = ["--dry-run"]
INT_OPTIONS = [
    (["simulate", PROTOCOLS / "erriti_21d.yaml", "--parameters", "typical", *_DRY], "--seed", 0, MAX_SEED),
    (
        ["simulate", PROTOCOLS / "erriti_21d.yaml", "--parameters", "typical", *_DRY],
        "--patient",
        0,
        MAX_PATIENTS_PER_CELL - 1,
    ),
    (
        ["simulate", PROTOCOLS / "erriti_21d.yaml", "--parameters", "typical", *_DRY],
        "--pk-report",
        0,
        MAX_PK_REPORT_PATIENTS,
    ),
    (["sweep", REPO / "configs" / "sweeps" / "duration_demo.yaml", *_DRY], "--seed", 0, MAX_SEED),
    (["sweep", REPO / "configs" / "sweeps" / "duration_demo.yaml", *_DRY], "--patients", 1, MAX_PATIENTS_PER_CELL),
    (["predict", "--trials", "{trials}", *_DRY], "--seed", 0, MAX_SEED),
    (["predict", "--trials", "{trials}", *_DRY], "--draws", 1, MAX_DRAWS),
    (["predict", "--trials", "{trials}", "--posterior", "{draws}", *_DRY], "--draws", 1, MAX_DRAWS),
    (["predict", "--trials", "{trials}", *_DRY], "--prior-draws", 0, MAX_DRAWS),
    (["predict", "--trials", "{trials}", *_DRY], "--patients", 1, MAX_PATIENTS_PER_CELL),
]


@st.composite
def int_option_values(draw):
    """An integer option and a value at, inside or past its bounds (or not an integer at all)."""
    argv, option, low, high = draw(st.sampled_from(INT_OPTIONS))
    value = draw(
        st.one_of(
            st.sampled_from([low - 1, low, low + 1, high - 1, high, high + 1, 2**63, -(2**63)]),
            st.integers(-(2**80), 2**80),
            st.integers(10**20, 10**4000),
            st.sampled_from(["", "1.5", "1e3", "x", "0x10", " 7", "+3", "--", "٣"]),
        )
    )
    return argv, option, low, high, value


def _int_option_case(case) -> None:
    argv, option, low, high, value = case
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "t.csv").write_text(_ONE_ROW_TRIALS)
        (d / "draws.csv").write_text("biology/nis.yaml:hill\n" + "2.0\n" * 3)
        args = [str(a).replace("{trials}", str(d / "t.csv")).replace("{draws}", str(d / "draws.csv")) for a in argv]
        before = tree(d)
        code, _, err = cli(*args, option, str(value))
        lines = _lines(err)
        assert "Traceback" not in err, err[-3000:]
        assert len(lines) == 1, err[-3000:]
        text = str(value).strip()
        number = int(text) if re.fullmatch(r"[+-]?[0-9]{1,20}", text) else None  # as a shell passes it
        inside = number is not None and low <= number <= high
        if not inside:
            assert code == 2 and option in lines[0], (option, value, lines)
        elif code == 0 and option == "--seed":
            _seed_runs(number)
        assert tree(d) == before


@CI
@given(int_option_values())
def test_generated_command_line_integers_meet_their_bounds(case):
    _int_option_case(case)


@pytest.mark.slow
@DEEP
@given(int_option_values())
def test_generated_command_line_integers_deep(case):
    _int_option_case(case)


_DRAW_COLUMNS = st.one_of(
    st.sampled_from(
        [
            "biology/nis.yaml:hill",
            "biology/nis.yaml:erk_half_max",
            "drugs/trametinib.yaml:ic50_mek_nM",
            "calibration/between_trial.yaml:logit_sd",
            "biology/population.yaml:share_RAS",
            "biology/nis.yaml:nope",
            "nis.yaml:hill",
            "card",
            "",
        ]
    ),
    st.text(max_size=12),
)


@st.composite
def draws_files(draw) -> tuple[str, bytes]:
    """A draws file: a CSV of generated columns and cells, or bytes that claim to be a posterior.nc."""
    if draw(st.integers(0, 5)) == 0:
        return ".nc", draw(st.binary(max_size=300))
    columns = draw(st.lists(_DRAW_COLUMNS, min_size=0, max_size=4))
    rows = draw(
        st.lists(
            st.lists(st.one_of(CELLS, st.floats(0.01, 10).map(str)), min_size=len(columns), max_size=len(columns)),
            max_size=4,
        )
    )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return ".csv", _break_bytes(draw, buf.getvalue())


def _draws_case(case) -> None:
    suffix, data = case
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "t.csv").write_text(_ONE_ROW_TRIALS)
        f = d / f"draws{suffix}"
        f.write_bytes(data)
        before = tree(d)
        code, _, err = cli("predict", "--trials", d / "t.csv", "--posterior", f, "--dry-run")
        lines = _lines(err)
        assert "Traceback" not in err, err[-3000:]
        assert code in (0, 2) and len(lines) == 1, err[-3000:]
        if code == 0:  # what passed is a table a run can use: every cell a finite number of a known parameter
            from raisim.io.parameter_draws import read_draws

            table = read_draws(f, "<test>", "draws")
            assert np.isfinite(table.to_numpy(dtype=float)).all()
        assert tree(d) == before


@CI
@given(draws_files())
def test_generated_draws_files_meet_the_error_contract(case):
    _draws_case(case)


@pytest.mark.slow
@DEEP
@given(draws_files())
def test_generated_draws_files_deep(case):
    _draws_case(case)
