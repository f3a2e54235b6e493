"""Validated loader for the published-trials table ``models/data/trials.csv``.

The table (documented in ``models/data/README.md``) holds one row per study arm
and endpoint. This module parses and checks every row and returns a
:class:`TrialsTable`. Any problem stops the load with one
:class:`~raisim.io.errors.InputError` whose one-line message names the file, the
field, the 1-based data row (the header is row 0) and what is allowed.

Units used throughout:

* days are study days, **day 1 is the day of the first TKI dose**
  (t = 0 h is that dose; day d starts at t = 24·(d − 1) h);
* doses are in mg per administration, dosing intervals in hours;
* I-131 activities (``rai_gbq``) are in GBq;
* ``response_month`` is months after RAI.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from .config import FrozenConfig
from .errors import InputError
from .files import read_input_bytes
from .limits import MAX_ARM_PATIENTS
from .vocab import (
    ARM_COMPOSITIONS,
    CRITERIA,
    DRUG_NAMES,
    ENDPOINTS,
    GENOTYPES,
    RAI_POLICIES,
    allowed,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_TRIALS_CSV",
    "REGIMEN_GRAMMAR",
    "Composition",
    "RegimenItem",
    "TrialRow",
    "TrialsTable",
    "load_trials",
    "parse_composition",
    "parse_regimen",
]

#: The packaged trials table.
DEFAULT_TRIALS_CSV: Path = Path(__file__).resolve().parents[2] / "models" / "data" / "trials.csv"

#: The header of the trials table, in the shipped order.
COLUMNS: tuple[str, ...] = (
    "trial",
    "study",
    "year",
    "arm",
    "genotype",
    "regimen",
    "tki_stop_day",
    "scan_day",
    "rai_day",
    "endpoint",
    "criterion",
    "n",
    "k",
    "rai_policy",
    "rai_gbq",
    "response_month",
    "n_cr",
    "n_pr",
    "n_sd",
    "n_pd",
    "note",
)

#: The regimen grammar, in words, for error messages.
REGIMEN_GRAMMAR = "drug:DOSEmg:qNh[@GENOTYPE] items separated by ';'"

#: Endpoints whose rows count k successes out of n.
_K_ENDPOINTS: tuple[str, ...] = ("uptake", "grade3_ae")

#: RECIST count columns of a ``response`` row.
_RESPONSE_COUNTS: tuple[str, ...] = ("n_cr", "n_pr", "n_sd", "n_pd")

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_ITEM_RE = re.compile(
    rf"^(?P<drug>[A-Za-z0-9_]+):(?P<dose>{_NUMBER})mg:q(?P<interval>{_NUMBER})h(?:@(?P<genotype>[A-Za-z0-9_]+))?$"
)
#: The largest trials table read, bytes (the shipped one is a few kB).
MAX_TRIALS_BYTES = 16 << 20

_INT_RE = re.compile(r"^[+-]?\d{1,9}$")  # at most 9 digits: days, counts and years are far below


def _context_file(info: ValidationInfo) -> str | Path | None:
    context = info.context
    if isinstance(context, Mapping):
        return context.get("file")
    return None


def _context_row(info: ValidationInfo) -> int | None:
    context = info.context
    if isinstance(context, Mapping):
        return context.get("row")
    return None


def _as_input_error(err: ValidationError, file: str | Path | None, row: int | None) -> InputError:
    """Turn a pydantic ValidationError into the one-line InputError it carries (or describes)."""
    details = err.errors()
    for detail in details:
        cause = (detail.get("ctx") or {}).get("error")
        if isinstance(cause, InputError):
            return cause
    first = details[0]
    field = ".".join(str(part) for part in first["loc"]) or "row"
    message = str(first["msg"]).removeprefix("Value error, ")
    return InputError(file, field, message, row=row, got=first.get("input"))


# ---------------------------------------------------------------------------
# Regimens
# ---------------------------------------------------------------------------


class RegimenItem(FrozenConfig):
    """One drug of a regimen.

    Attributes:
        drug: the drug card name, one of :data:`raisim.io.vocab.DRUG_NAMES`.
        dose_mg: dose per administration, mg (> 0).
        interval_h: dosing interval, hours (> 0); ``q12h`` is 12.0, ``q504h``
            (every 3 weeks) is 504.0.
        genotype: the ``@GENOTYPE`` restriction (the drug is given only to
            patients of that genotype), or None when everyone gets it.
    """

    drug: str
    dose_mg: float = Field(allow_inf_nan=False)
    interval_h: float = Field(allow_inf_nan=False)
    genotype: str | None = None

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> RegimenItem:
        file, row = _context_file(info), _context_row(info)
        if self.drug not in DRUG_NAMES:
            raise InputError(file, "regimen", "drug " + allowed(DRUG_NAMES), row=row, got=self.drug)
        if not self.dose_mg > 0:
            raise InputError(file, "regimen", "a dose > 0 mg", row=row, got=self.dose_mg)
        if not self.interval_h > 0:
            raise InputError(file, "regimen", "an interval > 0 h (qNh with N > 0)", row=row, got=self.interval_h)
        if self.genotype is not None and self.genotype not in GENOTYPES:
            raise InputError(file, "regimen", "@GENOTYPE " + allowed(GENOTYPES), row=row, got=self.genotype)
        return self

    def applies_to(self, genotype: str) -> bool:
        """Whether a patient of ``genotype`` receives this drug."""
        return self.genotype is None or self.genotype == genotype

    def to_text(self) -> str:
        """The item in regimen grammar, e.g. ``dabrafenib:75mg:q12h@BRAF_V600E``."""
        text = f"{self.drug}:{self.dose_mg:g}mg:q{self.interval_h:g}h"
        return text + (f"@{self.genotype}" if self.genotype else "")


def parse_regimen(text: str, *, file: str | Path | None = None, row: int | None = None) -> tuple[RegimenItem, ...]:
    """Parse a regimen string into its items.

    Grammar: ``item (";" item)*`` with ``item := drug ":" DOSE "mg" ":" "q" N "h"
    ["@" GENOTYPE]``; doses are mg per administration, intervals hours.
    Whitespace around items is ignored.

    **Arguments:**

    - `text`: the regimen cell, e.g. ``trametinib:2mg:q24h;dabrafenib:75mg:q12h@BRAF_V600E``.
    - `file`: the file the text came from, for error messages.
    - `row`: the 1-based data row, for error messages.

    **Returns:**

    The items, in the order written.

    **Raises:**

    - `InputError`: on field ``regimen`` for text that does not follow the
      grammar, an unknown drug, a non-positive dose or interval, or an
      ``@GENOTYPE`` that is not a genotype.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(file, "regimen", REGIMEN_GRAMMAR, row=row, got=text)
    items: list[RegimenItem] = []
    seen: set[str] = set()
    for part in text.split(";"):
        match = _ITEM_RE.match(part.strip())
        if match is None:
            raise InputError(file, "regimen", REGIMEN_GRAMMAR, row=row, got=part.strip() or text)
        try:
            item = RegimenItem.model_validate(
                {
                    "drug": match["drug"],
                    "dose_mg": float(match["dose"]),
                    "interval_h": float(match["interval"]),
                    "genotype": match["genotype"],
                },
                context={"file": file, "row": row},
            )
        except ValidationError as err:
            raise _as_input_error(err, file, row) from None
        if item.drug in seen:
            raise InputError(file, "regimen", "each drug at most once per regimen", row=row, got=item.drug)
        seen.add(item.drug)
        items.append(item)
    return tuple(items)


# ---------------------------------------------------------------------------
# Arm compositions
# ---------------------------------------------------------------------------

_COUNT_KEYS: tuple[str, ...] = (*GENOTYPES, "BRAF_WT")


class Composition(FrozenConfig):
    """The genotype make-up of an arm (the ``genotype`` column).

    Attributes:
        kind: ``"genotype"`` (every patient has one genotype), ``"BRAF_WT"``
            (RAS and OTHER in an unknown, calibrated proportion), ``"ANY"``
            (composition not reported) or ``"counts"`` (explicit counts).
        counts: patients per key. For a single genotype ``{genotype: n}``; for
            ``BRAF_WT`` ``{"BRAF_WT": n}``; for ``ANY`` ``{"ANY": n}``; for
            counts the keys are genotypes or ``BRAF_WT``. Always sums to n.
    """

    kind: Literal["genotype", "BRAF_WT", "ANY", "counts"]
    counts: dict[str, int]

    @property
    def n(self) -> int:
        """Number of patients (sum of the counts)."""
        return sum(self.counts.values())


def parse_composition(text: str, *, n: int, file: str | Path | None = None, row: int | None = None) -> Composition:
    """Parse the ``genotype`` cell of a row with ``n`` patients.

    Accepts a single genotype (``BRAF_V600E``, ``RAS``, ``OTHER``), ``BRAF_WT``,
    ``ANY``, or counts such as ``RAS:5;BRAF_V600E:1;OTHER:2`` whose keys are
    genotypes or ``BRAF_WT`` (each at most once) and whose non-negative integer
    counts sum to ``n``.

    **Raises:**

    - `InputError`: on field ``genotype`` for anything else.
    """
    words = allowed((*GENOTYPES, *ARM_COMPOSITIONS)) + ", or KEY:COUNT items separated by ';'"
    if not isinstance(text, str) or not text.strip():
        raise InputError(file, "genotype", words, row=row, got=text)
    text = text.strip()
    if text in GENOTYPES:
        return Composition(kind="genotype", counts={text: n})
    if text in ARM_COMPOSITIONS:
        return Composition(kind=text, counts={text: n})
    counts: dict[str, int] = {}
    for part in text.split(";"):
        key, sep, value = (piece.strip() for piece in part.partition(":"))
        if not sep or key not in _COUNT_KEYS:
            raise InputError(file, "genotype", words + " with KEY " + allowed(_COUNT_KEYS), row=row, got=text)
        if key in counts:
            raise InputError(file, "genotype", "each KEY at most once in KEY:COUNT items", row=row, got=text)
        if not re.fullmatch(r"\d{1,9}", value):
            raise InputError(file, "genotype", "KEY:COUNT with COUNT a non-negative integer", row=row, got=text)
        counts[key] = int(value)
    total = sum(counts.values())
    if total != n:
        raise InputError(file, "genotype", f"KEY:COUNT counts summing to n (n={n}, sum={total})", row=row, got=text)
    return Composition(kind="counts", counts=counts)


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------


class TrialRow(FrozenConfig):
    """One validated row of the trials table.

    Days are study days (day 1 = first TKI dose); ``n``/``k`` and the RECIST counts
    ``n_cr``…``n_pd`` are patients; ``rai_gbq`` is the I-131 activity in GBq; ``response_month`` is months
    after RAI. Blank cells are None (``note`` is ``""`` when blank).

    Attributes:
        line: 1-based data row number (the header is row 0).
        genotype: the raw ``genotype`` cell; ``composition`` is its parse.
        regimen: the parsed regimen items.
    """

    line: int
    trial: str
    study: str
    year: int | None = None
    arm: str
    genotype: str
    composition: Composition
    regimen: tuple[RegimenItem, ...]
    tki_stop_day: int | None = None
    scan_day: int | None = None
    rai_day: int | None = None
    endpoint: str
    criterion: str
    n: int
    k: int | None = None
    rai_policy: str | None = None
    rai_gbq: float | None = Field(default=None, allow_inf_nan=False)
    response_month: int | None = None
    n_cr: int | None = None
    n_pr: int | None = None
    n_sd: int | None = None
    n_pd: int | None = None
    note: str = ""

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> TrialRow:
        context = info.context if isinstance(info.context, Mapping) else {}
        _check_row(self, _context_file(info), observed=context.get("observed", True))
        return self

    def cells(self) -> dict[str, object]:
        """The row as the table's columns (regimen rendered back to text)."""
        values: dict[str, object] = {name: getattr(self, name) for name in COLUMNS if name != "regimen"}
        values["regimen"] = ";".join(item.to_text() for item in self.regimen)
        return {name: values[name] for name in COLUMNS}


def _check_row(r: TrialRow, file: str | Path | None, observed: bool = True) -> None:
    """The single-row rules; raises a one-line InputError naming field and row."""
    row = r.line
    for name in ("trial", "study", "arm"):
        if not getattr(r, name).strip():
            raise InputError(file, name, "a non-blank name", row=row)
    if r.endpoint not in ENDPOINTS:
        raise InputError(file, "endpoint", allowed(ENDPOINTS), row=row, got=r.endpoint)
    if r.criterion not in CRITERIA:
        raise InputError(file, "criterion", allowed(CRITERIA), row=row, got=r.criterion)
    if r.rai_policy is not None and r.rai_policy not in RAI_POLICIES:
        raise InputError(file, "rai_policy", allowed(RAI_POLICIES) + " or blank", row=row, got=r.rai_policy)
    if not 1 <= r.n <= MAX_ARM_PATIENTS:
        raise InputError(file, "n", f"an integer from 1 to {MAX_ARM_PATIENTS} (evaluable patients)", row=row, got=r.n)
    if r.composition.n != r.n:
        raise InputError(
            file, "genotype", f"a composition of n={r.n} patients", row=row, got=dict(r.composition.counts)
        )
    for name in ("tki_stop_day", "scan_day", "rai_day"):
        value = getattr(r, name)
        if value is not None and value < 1:
            raise InputError(file, name, "a positive integer day (day 1 = first TKI dose) or blank", row=row, got=value)
    if r.scan_day is not None and r.rai_day is not None and r.rai_day < r.scan_day:
        raise InputError(file, "rai_day", f"a day >= scan_day (scan_day={r.scan_day})", row=row, got=r.rai_day)
    k_words = f"an integer 0..n (n={r.n})"
    if r.k is None:
        if r.endpoint in _K_ENDPOINTS and observed:
            raise InputError(file, "k", k_words + f", required for {r.endpoint} rows", row=row)
    elif not 0 <= r.k <= r.n:
        raise InputError(file, "k", k_words, row=row, got=r.k)
    if r.rai_gbq is not None and not r.rai_gbq > 0:
        raise InputError(file, "rai_gbq", "a positive activity in GBq or blank", row=row, got=r.rai_gbq)
    if r.rai_policy == "fixed" and r.rai_gbq is None:
        raise InputError(file, "rai_gbq", "a positive activity in GBq, required by rai_policy 'fixed'", row=row)
    if r.response_month is not None and r.response_month < 1:
        raise InputError(
            file,
            "response_month",
            "a positive integer (months after RAI) or blank",
            row=row,
            got=r.response_month,
        )
    for name in _RESPONSE_COUNTS:
        value = getattr(r, name)
        if value is not None and value < 0:
            raise InputError(file, name, "a non-negative integer count or blank", row=row, got=value)
    if r.endpoint == "response":
        if r.response_month is None:
            raise InputError(file, "response_month", "a positive integer (months after RAI), required", row=row)
        given = [getattr(r, name) is not None for name in _RESPONSE_COUNTS]
        if not observed and not any(given):
            return
        for name in _RESPONSE_COUNTS:
            if getattr(r, name) is None:
                raise InputError(file, name, "a non-negative integer count, required for response rows", row=row)
        total = sum(getattr(r, name) for name in _RESPONSE_COUNTS)
        if total != r.n:
            raise InputError(
                file,
                "n_cr+n_pr+n_sd+n_pd",
                f"RECIST counts summing to n (n={r.n}, sum={total})",
                row=row,
                got=total,
            )


def _cell_int(cells: Mapping[str, str | None], name: str, file: str | Path | None, row: int, words: str) -> int | None:
    text = cells[name]
    if text is None:
        return None
    if not _INT_RE.match(text):
        raise InputError(file, name, words, row=row, got=text)
    return int(text)


def _cell_float(
    cells: Mapping[str, str | None], name: str, file: str | Path | None, row: int, words: str
) -> float | None:
    text = cells[name]
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(file, name, words, row=row, got=text) from None
    if not math.isfinite(value):
        raise InputError(file, name, words, row=row, got=text)
    return value


def _row_from_cells(
    cells: Mapping[str, str | None], *, file: str | Path | None, row: int, observed: bool = True
) -> TrialRow:
    """Parse one CSV record (blank cells as None) into a validated :class:`TrialRow`."""
    for name in ("trial", "study", "arm", "genotype", "regimen", "endpoint", "criterion", "n"):
        if cells[name] is None:
            raise InputError(file, name, "a value (this column may not be blank)", row=row)
    day_words = "a positive integer day (day 1 = first TKI dose) or blank"
    count_words = "a non-negative integer count or blank"
    n = _cell_int(cells, "n", file, row, f"an integer from 1 to {MAX_ARM_PATIENTS} (evaluable patients)")
    assert n is not None
    if n < 1:
        raise InputError(file, "n", "an integer >= 1 (evaluable patients)", row=row, got=n)
    data: dict[str, object] = {
        "line": row,
        "trial": cells["trial"],
        "study": cells["study"],
        "year": _cell_int(cells, "year", file, row, "an integer year or blank"),
        "arm": cells["arm"],
        "genotype": cells["genotype"],
        "composition": parse_composition(cells["genotype"] or "", n=n, file=file, row=row),
        "regimen": parse_regimen(cells["regimen"] or "", file=file, row=row),
        "tki_stop_day": _cell_int(cells, "tki_stop_day", file, row, day_words),
        "scan_day": _cell_int(cells, "scan_day", file, row, day_words),
        "rai_day": _cell_int(cells, "rai_day", file, row, day_words),
        "endpoint": cells["endpoint"],
        "criterion": cells["criterion"],
        "n": n,
        "k": _cell_int(cells, "k", file, row, f"an integer 0..n (n={n}) or blank"),
        "rai_policy": cells["rai_policy"],
        "rai_gbq": _cell_float(cells, "rai_gbq", file, row, "a positive activity in GBq or blank"),
        "response_month": _cell_int(
            cells, "response_month", file, row, "a positive integer (months after RAI) or blank"
        ),
        **{name: _cell_int(cells, name, file, row, count_words) for name in _RESPONSE_COUNTS},
        "note": cells["note"] or "",
    }
    try:
        return TrialRow.model_validate(data, context={"file": file, "row": row, "observed": observed})
    except ValidationError as err:
        raise _as_input_error(err, file, row) from None


# ---------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialsTable:
    """The validated trials table.

    Attributes:
        rows: the rows, in file order.
        path: the file they came from (None when built in memory).

    Construction checks the rules across rows: in a nested group (see
    :meth:`nested_groups`) each criterion appears once, and the
    ``i124_dosimetry`` row has the same n as the ``i124_increase`` row and
    k no larger than it (every dosimetry success is also an increase).
    """

    rows: tuple[TrialRow, ...]
    path: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(self.rows))
        _check_nested(self)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[TrialRow]:
        return iter(self.rows)

    def subset(self, keep) -> TrialsTable:
        """The rows for which ``keep(row)`` is true (same path; nested groups re-checked)."""
        return TrialsTable(tuple(r for r in self.rows if keep(r)), self.path)

    def by_trial(self) -> dict[str, list[TrialRow]]:
        """Rows grouped by ``trial`` (the unit of the between-trial random effect), in file order."""
        groups: dict[str, list[TrialRow]] = {}
        for r in self.rows:
            groups.setdefault(r.trial, []).append(r)
        return groups

    def nested_groups(self) -> dict[tuple[str, str, int | None], list[TrialRow]]:
        """Nested readouts on the same patients.

        **Returns:**

        ``{(trial, arm, scan_day): rows}`` for every set of ``uptake`` rows
        that share trial, arm and scan day (study day, or None) and span at
        least two distinct criteria, in file order.
        """
        groups: dict[tuple[str, str, int | None], list[TrialRow]] = {}
        for r in self.rows:
            if r.endpoint == "uptake":
                groups.setdefault((r.trial, r.arm, r.scan_day), []).append(r)
        return {key: rows for key, rows in groups.items() if len({r.criterion for r in rows}) >= 2}

    def to_frame(self) -> pd.DataFrame:
        """The table's columns as a DataFrame, one row per table row, indexed by ``line``.

        Values are the typed cells (blank cells are missing; integer columns
        use the nullable ``Int64`` dtype; the regimen is rendered back to text).
        """
        records = [r.cells() for r in self.rows]
        frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
        frame.index = pd.Index([r.line for r in self.rows], name="line")
        int_columns = (
            "year",
            "tki_stop_day",
            "scan_day",
            "rai_day",
            "n",
            "k",
            "response_month",
            *_RESPONSE_COUNTS,
        )
        for name in int_columns:
            frame[name] = frame[name].astype("Int64")
        frame["rai_gbq"] = frame["rai_gbq"].astype("float64")
        return frame


def _check_nested(table: TrialsTable) -> None:
    file = table.path
    for rows in table.nested_groups().values():
        by_criterion: dict[str, TrialRow] = {}
        for r in rows:
            if r.criterion in by_criterion:
                raise InputError(
                    file,
                    "criterion",
                    "each criterion once per (trial, arm, scan_day) group "
                    f"(also on row {by_criterion[r.criterion].line})",
                    row=r.line,
                    got=r.criterion,
                )
            by_criterion[r.criterion] = r
        increase, dosimetry = by_criterion.get("i124_increase"), by_criterion.get("i124_dosimetry")
        if increase is None or dosimetry is None:
            continue
        if dosimetry.n != increase.n:
            raise InputError(
                file,
                "n",
                f"the n of the nested i124_increase row {increase.line} (n={increase.n})",
                row=dosimetry.line,
                got=dosimetry.n,
            )
        if dosimetry.k is not None and increase.k is not None and dosimetry.k > increase.k:
            raise InputError(
                file,
                "k",
                f"an integer 0..{increase.k}: i124_dosimetry successes are nested in the "
                f"i124_increase row {increase.line} (k={increase.k})",
                row=dosimetry.line,
                got=dosimetry.k,
            )


def load_trials(path: str | Path | None = None, *, observed: bool = True) -> TrialsTable:
    """Load and validate the trials table.

    **Arguments:**

    - `path`: a trials CSV; default :data:`DEFAULT_TRIALS_CSV` (the packaged
      ``models/data/trials.csv``).
    - `observed`: False accepts rows without outcomes (blank ``k``, blank RECIST
      counts): trials to predict. Given outcomes are still checked.

    **Returns:**

    The validated table. Row numbers (``TrialRow.line`` and in errors) count
    CSV records after the header, starting at 1; blank records are skipped
    but counted.

    **Raises:**

    - `InputError`: for a missing, unreadable, empty or malformed file, a
      header with missing or unknown columns (row 0), or any row that
      breaks the rules of ``models/data/README.md``.
    """
    file = Path(path) if path is not None else DEFAULT_TRIALS_CSV
    data = read_input_bytes(file, "trials CSV file", MAX_TRIALS_BYTES, field="path")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(file, "file", "a UTF-8 encoded CSV file") from None
    records: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records.extend(reader)
    except csv.Error as err:
        # the record being read when the error struck; header = row 0
        raise InputError(file, "file", f"valid CSV (csv module: {err})", row=len(records)) from None

    if not records or not any(cell.strip() for cell in records[0]):
        raise InputError(file, "header", "a CSV header: " + ",".join(COLUMNS), row=0)
    header = [cell.strip() for cell in records[0]]
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    seen: set[str] = set()
    for name in header:
        if name not in COLUMNS:
            raise InputError(file, name or "header", "a known column, " + allowed(COLUMNS), row=0, got=name)
        if name in seen:
            raise InputError(file, name, "each column once in the header", row=0)
        seen.add(name)
    for name in COLUMNS:
        if name not in seen:
            raise InputError(file, name, "a required column; the header is " + ",".join(COLUMNS), row=0)

    rows: list[TrialRow] = []
    for number, record in enumerate(records[1:], start=1):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            raise InputError(
                file,
                "row",
                f"{len(header)} comma-separated cells, as in the header",
                row=number,
                got=len(record),
            )
        cells = {name: (cell.strip() or None) for name, cell in zip(header, record, strict=True)}
        rows.append(_row_from_cells(cells, file=file, row=number, observed=observed))
    if not rows:
        raise InputError(file, "rows", "at least one data row after the header", row=1)
    return TrialsTable(rows=tuple(rows), path=file)
