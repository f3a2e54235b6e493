"""Tests for the trials-table loader (raisim.io.trials)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from raisim.io.errors import InputError
from raisim.io.trials import (
    COLUMNS,
    DEFAULT_TRIALS_CSV,
    Composition,
    RegimenItem,
    TrialRow,
    TrialsTable,
    load_trials,
    parse_composition,
    parse_regimen,
)
from raisim.io.vocab import DRUG_NAMES, GENOTYPES

# ---------------------------------------------------------------------------
# helpers: read the shipped table, write modified copies
# ---------------------------------------------------------------------------


def shipped_records() -> list[list[str]]:
    """Header + data records of the shipped CSV, as lists of cells."""
    with DEFAULT_TRIALS_CSV.open(newline="", encoding="utf-8") as handle:
        return [list(record) for record in csv.reader(handle)]


def write_records(tmp_path: Path, records: list[list[str]], name: str = "trials_bad.csv") -> Path:
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(records)
    return path


def find_row(records: list[list[str]], **match: str) -> int:
    """Data row number (1-based; header is 0) of the first record matching column=value pairs."""
    header = records[0]
    for number, record in enumerate(records[1:], start=1):
        if all(record[header.index(col)] == value for col, value in match.items()):
            return number
    raise AssertionError(f"no row matches {match}")


def with_cells(tmp_path: Path, row: int, **cells: str) -> Path:
    """A copy of the shipped CSV with the given cells of data row ``row`` replaced."""
    records = shipped_records()
    header = records[0]
    for col, value in cells.items():
        records[row][header.index(col)] = value
    return write_records(tmp_path, records)


def load_error(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        load_trials(path)
    return info.value


def assert_one_line_error(err: InputError, path: Path, field: str, row: int) -> str:
    message = str(err)
    assert "\n" not in message and "\r" not in message
    assert path.name in message
    assert f"'{field}'" in message
    assert f"row {row}:" in message or f"row {row}," in message
    assert err.field == field
    assert err.row == row
    return message


# ---------------------------------------------------------------------------
# the shipped table
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table() -> TrialsTable:
    return load_trials()


def test_default_path_is_packaged_file():
    assert DEFAULT_TRIALS_CSV.is_file()
    assert DEFAULT_TRIALS_CSV.parts[-3:] == ("models", "data", "trials.csv")
    assert tuple(shipped_records()[0]) == COLUMNS


def test_shipped_file_loads_every_row(table):
    expected = sum(1 for record in shipped_records()[1:] if any(cell.strip() for cell in record))
    assert expected > 0
    assert len(table.rows) == expected
    assert [r.line for r in table.rows] == list(range(1, expected + 1))
    assert table.path == DEFAULT_TRIALS_CSV
    assert load_trials(DEFAULT_TRIALS_CSV).rows == table.rows


def test_rows_keep_raw_cells(table):
    records = shipped_records()
    header = records[0]
    for r, record in zip(table.rows, records[1:], strict=True):
        raw = dict(zip(header, record, strict=True))
        assert r.trial == raw["trial"]
        assert r.arm == raw["arm"]
        assert r.genotype == raw["genotype"]
        assert r.n == int(raw["n"])
        assert r.k == (int(raw["k"]) if raw["k"] else None)
        assert r.scan_day == (int(raw["scan_day"]) if raw["scan_day"] else None)
        assert r.year == (int(raw["year"]) if raw["year"] else None)
        assert r.rai_gbq == (float(raw["rai_gbq"]) if raw["rai_gbq"] else None)
        assert r.note == raw["note"]


def test_every_regimen_parses(table):
    records = shipped_records()
    column = records[0].index("regimen")
    for r, record in zip(table.rows, records[1:], strict=True):
        items = parse_regimen(record[column])
        assert items == r.regimen
        assert len(items) == record[column].count(";") + 1
        for item in items:
            assert isinstance(item, RegimenItem)
            assert item.drug in DRUG_NAMES
            assert item.dose_mg > 0 and item.interval_h > 0
        assert ";".join(item.to_text() for item in items) == record[column]


def test_erriti_dabrafenib_restricted_to_braf(table):
    rows = [r for r in table.rows if r.arm in ("ERRITI_treated", "ERRITI_all")]
    assert len(rows) == 2
    for r in rows:
        drugs = {item.drug: item for item in r.regimen}
        assert drugs["dabrafenib"].genotype == "BRAF_V600E"
        assert drugs["dabrafenib"].dose_mg == 75.0 and drugs["dabrafenib"].interval_h == 12.0
        assert drugs["trametinib"].genotype is None
        assert drugs["dabrafenib"].applies_to("BRAF_V600E")
        assert not drugs["dabrafenib"].applies_to("RAS")
        assert drugs["trametinib"].applies_to("RAS")


def test_compositions_sum_to_n(table):
    kinds = set()
    for r in table.rows:
        assert isinstance(r.composition, Composition)
        assert sum(r.composition.counts.values()) == r.n
        kinds.add(r.composition.kind)
    assert kinds == {"genotype", "BRAF_WT", "ANY", "counts"}
    ho = next(r for r in table.rows if r.arm == "selumetinib_treated")
    assert ho.composition.kind == "counts"
    assert ho.composition.counts == {"RAS": 5, "BRAF_V600E": 1, "OTHER": 2}
    erriti = next(r for r in table.rows if r.arm == "ERRITI_treated")
    assert erriti.composition.counts == {"BRAF_V600E": 2, "BRAF_WT": 5}


def test_nested_groups(table):
    groups = table.nested_groups()
    pairs = {(trial, arm) for trial, arm, _ in groups}
    assert pairs == {
        ("Ho2013", "selumetinib_RAS"),
        ("Ho2013", "selumetinib_BRAF"),
        ("Ho2013", "selumetinib_OTHER"),
        ("Dunn2019", "vemurafenib"),
    }
    for (trial, arm, scan_day), rows in groups.items():
        assert scan_day == 29
        assert {r.criterion for r in rows} == {"i124_increase", "i124_dosimetry"}
        assert all(r.endpoint == "uptake" and r.trial == trial and r.arm == arm for r in rows)
        by = {r.criterion: r for r in rows}
        assert by["i124_dosimetry"].k <= by["i124_increase"].k
        assert by["i124_dosimetry"].n == by["i124_increase"].n


def test_by_trial(table):
    groups = table.by_trial()
    records = shipped_records()
    column = records[0].index("trial")
    assert list(groups) == list(dict.fromkeys(record[column] for record in records[1:]))
    assert sum(len(rows) for rows in groups.values()) == len(table.rows)
    assert {r.study for r in groups["MERAIODE"]} == {"Leboulleux2023", "Leboulleux_RAS"}


def test_to_frame(table):
    frame = table.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert tuple(frame.columns) == COLUMNS
    assert len(frame) == len(table.rows)
    assert list(frame.index) == [r.line for r in table.rows]
    raw = pd.read_csv(DEFAULT_TRIALS_CSV, dtype=str, keep_default_na=False)
    assert list(frame["regimen"]) == list(raw["regimen"])
    assert list(frame["n"]) == [int(v) for v in raw["n"]]
    assert frame["k"].isna().sum() == (raw["k"] == "").sum()


# ---------------------------------------------------------------------------
# parse_regimen / parse_composition directly
# ---------------------------------------------------------------------------


def test_parse_regimen_fields():
    items = parse_regimen("trametinib:2mg:q24h; dabrafenib:0.5mg:q504h@BRAF_V600E")
    assert items == (
        RegimenItem(drug="trametinib", dose_mg=2.0, interval_h=24.0, genotype=None),
        RegimenItem(drug="dabrafenib", dose_mg=0.5, interval_h=504.0, genotype="BRAF_V600E"),
    )
    with pytest.raises(ValidationError):
        items[0].dose_mg = 3.0  # frozen


@pytest.mark.parametrize(
    "text, expect",
    [
        ("aspirin:75mg:q12h", "trametinib"),  # unknown drug: lists the allowed drugs
        ("selumetinib:0mg:q12h", "> 0 mg"),
        ("selumetinib:-5mg:q12h", "> 0 mg"),
        ("selumetinib:75mg:q0h", "> 0 h"),
        ("selumetinib 75mg q12h", "drug:DOSEmg:qNh[@GENOTYPE]"),
        ("selumetinib:75:q12h", "drug:DOSEmg:qNh[@GENOTYPE]"),
        ("selumetinib:75mg:q12h;", "drug:DOSEmg:qNh[@GENOTYPE]"),
        ("", "drug:DOSEmg:qNh[@GENOTYPE]"),
        ("dabrafenib:75mg:q12h@BRAF", "BRAF_V600E"),
        ("dabrafenib:75mg:q12h;dabrafenib:75mg:q12h", "at most once"),
    ],
)
def test_parse_regimen_rejects(text, expect):
    with pytest.raises(InputError) as info:
        parse_regimen(text, file="x.csv", row=7)
    message = str(info.value)
    assert info.value.field == "regimen"
    assert "x.csv, row 7" in message and expect in message and "\n" not in message


def test_parse_composition_kinds():
    assert parse_composition("RAS", n=5) == Composition(kind="genotype", counts={"RAS": 5})
    assert parse_composition("BRAF_WT", n=14).kind == "BRAF_WT"
    assert parse_composition("ANY", n=20).counts == {"ANY": 20}
    comp = parse_composition("RAS:5;BRAF_V600E:1;OTHER:2", n=8)
    assert comp.kind == "counts" and comp.counts == {"RAS": 5, "BRAF_V600E": 1, "OTHER": 2} and comp.n == 8
    assert parse_composition("BRAF_V600E:0;BRAF_WT:3", n=3).counts == {"BRAF_V600E": 0, "BRAF_WT": 3}


@pytest.mark.parametrize(
    "text",
    [
        "RAS:5;OTHER:2",
        "RAS:5;BRAF_V600E:1;OTHER:3",
        "RAS:-1;OTHER:9",
        "RAS:2.5;OTHER:5.5",
        "ANY:8",
        "KRAS",
        "RAS:8;RAS:0",
        "",
    ],
)
def test_parse_composition_rejects(text):
    with pytest.raises(InputError) as info:
        parse_composition(text, n=8, file="x.csv", row=3)
    assert info.value.field == "genotype" and info.value.row == 3
    assert "\n" not in str(info.value)


def test_trial_row_direct_construction_is_validated(table):
    good = table.rows[0].model_dump()
    assert TrialRow.model_validate(good) == table.rows[0]
    bad = dict(good, k=good["n"] + 1)
    with pytest.raises(ValueError):
        TrialRow.model_validate(bad)


# ---------------------------------------------------------------------------
# bad input: modified copies of the shipped CSV
# ---------------------------------------------------------------------------


def test_k_greater_than_n(tmp_path):
    row = find_row(shipped_records(), arm="selumetinib_BRAF", criterion="i124_increase")
    path = with_cells(tmp_path, row, n="9", k="10")
    message = assert_one_line_error(load_error(path), path, "k", row)
    assert "an integer 0..n (n=9)" in message


def test_k_missing_for_uptake(tmp_path):
    row = find_row(shipped_records(), arm="ERRITI_WT")
    path = with_cells(tmp_path, row, k="")
    assert_one_line_error(load_error(path), path, "k", row)


def test_unparseable_regimen(tmp_path):
    row = find_row(shipped_records(), arm="dabrafenib")
    path = with_cells(tmp_path, row, regimen="dabrafenib 150 mg twice daily")
    message = assert_one_line_error(load_error(path), path, "regimen", row)
    assert "drug:DOSEmg:qNh[@GENOTYPE] items separated by ';'" in message


def test_unknown_drug(tmp_path):
    row = find_row(shipped_records(), arm="vemurafenib", criterion="i124_dosimetry")
    path = with_cells(tmp_path, row, regimen="encorafenib:450mg:q24h")
    message = assert_one_line_error(load_error(path), path, "regimen", row)
    assert all(drug in message for drug in DRUG_NAMES)


def test_unknown_regimen_genotype(tmp_path):
    row = find_row(shipped_records(), arm="ERRITI_all")
    path = with_cells(tmp_path, row, regimen="trametinib:2mg:q24h;dabrafenib:75mg:q12h@BRAF_WT")
    message = assert_one_line_error(load_error(path), path, "regimen", row)
    assert all(g in message for g in GENOTYPES)


def test_unknown_endpoint(tmp_path):
    row = find_row(shipped_records(), arm="trametinib_RET")
    path = with_cells(tmp_path, row, endpoint="survival")
    message = assert_one_line_error(load_error(path), path, "endpoint", row)
    assert "uptake" in message and "grade3_ae" in message


def test_unknown_criterion(tmp_path):
    row = find_row(shipped_records(), arm="trametinib_BRAF")
    path = with_cells(tmp_path, row, criterion="pet_ct")
    message = assert_one_line_error(load_error(path), path, "criterion", row)
    assert "i124_dosimetry" in message


def test_unknown_rai_policy(tmp_path):
    row = find_row(shipped_records(), arm="MERAIODE_RAS")
    path = with_cells(tmp_path, row, rai_policy="empiric")
    assert_one_line_error(load_error(path), path, "rai_policy", row)


def test_fixed_policy_needs_activity(tmp_path):
    row = find_row(shipped_records(), arm="MERAIODE_RAS")
    path = with_cells(tmp_path, row, rai_gbq="")
    assert_one_line_error(load_error(path), path, "rai_gbq", row)


def test_response_counts_must_sum_to_n(tmp_path):
    row = find_row(shipped_records(), arm="dabrafenib_treated")
    path = with_cells(tmp_path, row, n_sd="5")
    message = assert_one_line_error(load_error(path), path, "n_cr+n_pr+n_sd+n_pd", row)
    assert "n=6" in message


def test_response_needs_month(tmp_path):
    row = find_row(shipped_records(), arm="trametinib_RAS_treated")
    path = with_cells(tmp_path, row, response_month="")
    assert_one_line_error(load_error(path), path, "response_month", row)


def test_negative_response_count(tmp_path):
    row = find_row(shipped_records(), arm="trametinib_WT_treated")
    path = with_cells(tmp_path, row, n_pr="-1", n_sd="5")
    assert_one_line_error(load_error(path), path, "n_pr", row)


def test_counts_composition_must_sum_to_n(tmp_path):
    row = find_row(shipped_records(), arm="selumetinib_treated")
    path = with_cells(tmp_path, row, genotype="RAS:5;BRAF_V600E:1;OTHER:3")
    message = assert_one_line_error(load_error(path), path, "genotype", row)
    assert "n=8" in message


@pytest.mark.parametrize("column, value", [("scan_day", "0"), ("scan_day", "-3"), ("tki_stop_day", "0")])
def test_non_positive_day(tmp_path, column, value):
    row = find_row(shipped_records(), arm="vemurafenib_treated")
    path = with_cells(tmp_path, row, **{column: value})
    message = assert_one_line_error(load_error(path), path, column, row)
    assert "positive integer day" in message


def test_rai_day_before_scan_day(tmp_path):
    row = find_row(shipped_records(), arm="vemurafenib_treated")
    path = with_cells(tmp_path, row, rai_day="20")
    assert_one_line_error(load_error(path), path, "rai_day", row)


@pytest.mark.parametrize("column", ["trial", "n", "note"])
def test_missing_column(tmp_path, column):
    records = shipped_records()
    index = records[0].index(column)
    path = write_records(tmp_path, [record[:index] + record[index + 1 :] for record in records])
    assert_one_line_error(load_error(path), path, column, 0)


def test_unknown_column(tmp_path):
    records = shipped_records()
    path = write_records(tmp_path, [record + (["extra"] if i == 0 else ["x"]) for i, record in enumerate(records)])
    assert_one_line_error(load_error(path), path, "extra", 0)


@pytest.mark.parametrize("value", ["5.0", "five", "5.5"])
def test_non_integer_n(tmp_path, value):
    row = find_row(shipped_records(), arm="selumetinib_RAS", criterion="i124_increase")
    path = with_cells(tmp_path, row, n=value)
    assert_one_line_error(load_error(path), path, "n", row)


def test_zero_n(tmp_path):
    row = find_row(shipped_records(), arm="selumetinib_all")
    path = with_cells(tmp_path, row, n="0", k="0")
    assert_one_line_error(load_error(path), path, "n", row)


def test_non_integer_year(tmp_path):
    row = find_row(shipped_records(), arm="dabrafenib_all")
    path = with_cells(tmp_path, row, year="2015a")
    assert_one_line_error(load_error(path), path, "year", row)


def test_nested_dosimetry_above_increase(tmp_path):
    records = shipped_records()
    row = find_row(records, arm="vemurafenib", criterion="i124_dosimetry")
    path = with_cells(tmp_path, row, k="7")
    message = assert_one_line_error(load_error(path), path, "k", row)
    assert "i124_increase" in message


def test_nested_dosimetry_different_n(tmp_path):
    row = find_row(shipped_records(), arm="selumetinib_OTHER", criterion="i124_dosimetry")
    path = with_cells(tmp_path, row, n="7")
    assert_one_line_error(load_error(path), path, "n", row)


def test_ragged_row(tmp_path):
    records = shipped_records()
    records[3] = records[3][:-2]
    path = write_records(tmp_path, records)
    assert_one_line_error(load_error(path), path, "row", 3)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    assert_one_line_error(load_error(path), path, "header", 0)


def test_header_only(tmp_path):
    path = write_records(tmp_path, shipped_records()[:1], name="header_only.csv")
    err = load_error(path)
    assert "header_only.csv" in str(err) and err.row == 1


def test_not_csv(tmp_path):
    text = DEFAULT_TRIALS_CSV.read_text(encoding="utf-8").splitlines()
    text[2] = text[2] + ',"unterminated'
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    assert_one_line_error(load_error(path), path, "file", 2)


def test_not_utf8(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    err = load_error(path)
    assert "binary.csv" in str(err) and "\n" not in str(err)


def test_missing_file(tmp_path):
    err = load_error(tmp_path / "nope.csv")
    assert "nope.csv" in str(err) and err.field == "path"


def test_row_numbers_count_blank_lines(tmp_path):
    records = shipped_records()
    row = find_row(records, arm="trametinib_RET")
    records[row][records[0].index("endpoint")] = "bogus"
    records.insert(2, [])  # a blank record before the bad row shifts it by one
    path = write_records(tmp_path, records)
    assert_one_line_error(load_error(path), path, "endpoint", row + 1)
