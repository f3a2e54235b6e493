"""Property-based tests of the error contract: generated protocol, sweep and trials files.

Hypothesis starts from the shipped files and breaks them by mutation — wrong types, values out of
range, non-finite numbers, huge sizes, missing and extra fields, duplicate keys, bytes that are
not UTF-8, truncation — then runs each through the command line in this process on the
validate-only path (``raisim check``, ``--dry-run``). Whatever it makes, the answer is exit 0, or
exit 2 with exactly one ``error:`` line naming the file; never a traceback, and nothing written.
A handful of valid generated protocols also go through a full solve.

Profiles: the CI one is derandomised, without deadline (``FUZZ_EXAMPLES`` examples per file kind,
about a minute); the deep one (``@pytest.mark.slow``, ``make test-all``) tries 25 times as many.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
import yaml
from helpers import PROTOCOLS, REPO, cli, tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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

#: Values a mutation puts anywhere: wrong types, edges, non-finite and huge numbers, odd text.
VALUES = st.one_of(
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


def _paths(node, prefix=()):
    """Every path to a value inside nested dicts and lists (the places a mutation may hit)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


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
        lines = err.strip().splitlines()
        assert "Traceback" not in err, err[-3000:]
        assert code in (0, 2), (code, err[-3000:])
        assert len(lines) == 1, err[-3000:]
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
    _contract("s.yaml", data, "sweep", "{file}", "--out", "{out}", "--dry-run")


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
