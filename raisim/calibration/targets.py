"""Calibration targets: the arm-level probabilities a trials table's likelihood needs.

Every likelihood term of :mod:`raisim.calibration.fit` is built from a few
arm-level probabilities per row and genotype, each a weighted mean over
virtual patients of a per-patient quantity ``y`` with weight ``w``:

==========================  =============================================  ==============================
quantity                    y (per virtual patient)                        w
==========================  =============================================  ==============================
``readout``                 P(the row's readout succeeds) (smooth)         1
``dosimetry_given_increase`` min(p_dosimetry, p_increase) / p_increase     p_increase (same patient)
``pd``                      RECIST PD at the response month                P(selected for RAI)
``sd_given_not_pd``         SD                                             P(selected) · [not PD]
``pr_given_cr_or_pr``       PR                                             P(selected) · [CR or PR]
==========================  =============================================  ==============================

Response rows are solved on the treated course (RAI given whatever the scan
shows); weighting by the patient's smooth probability of being selected
gives the categories *among the treated* without the noise of drawn
selections. The three response quantities are continuation ratios, so any
values in (0, 1) give valid category probabilities (:func:`categories`).

The same definitions serve two uses: with one population draw for a fixed
virtual cohort (common random numbers), the weighted means are the arm's
probabilities (:func:`arm_probabilities`, used by ``raisim predict`` and to
validate the emulator); with a *different* population draw per virtual
patient, the per-patient pairs (y, w) train the emulator
(:func:`simulate_design`, :mod:`raisim.calibration.emulator`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from ..engine.batch import SolverSettings, run_cohort
from ..engine.cohort import Cohort
from ..engine.course import PatientRow
from ..engine.plan import cell_shapes, merge_padding
from ..io.errors import InputError
from ..io.trials import TrialRow, TrialsTable
from ..protocol.arms import arm_protocol, genotype_weights
from ..protocol.schema import Protocol

RESPONSE_QUANTITIES = ("pd", "sd_given_not_pd", "pr_given_cr_or_pr")


@dataclass(frozen=True)
class Target:
    """One arm-level probability: ``quantity`` of trials row ``line`` for patients of ``genotype``.

    ``design`` identifies what is simulated (:func:`design_hash` of the arm's protocol, and of
    the parent row's for a nested readout), so ``key`` names the same
    probability whichever table or row number it comes from; ``label`` is for people.
    """

    line: int
    genotype: str
    quantity: str
    design: str = ""

    @property
    def key(self) -> str:
        """``<design>:<quantity>``: the same probability whichever table or row it comes from."""
        return f"{self.design}:{self.quantity}"

    @property
    def label(self) -> str:
        """``<line>:<genotype>:<quantity>``, for people."""
        return f"{self.line}:{self.genotype}:{self.quantity}"


def design_hash(p: Protocol) -> str:
    """Hash of what a protocol simulates, 12 hex digits: its content without the name, the
    free-text description and the numerical ``solver`` options (the calibration simulates every
    arm with its own solver settings, so a new solver option must not orphan a trained emulator).
    Scan fields added later and left unset (``imaging_times_h``) are left out too: a protocol that
    says what it said before keeps its hash."""
    d = p.model_dump(mode="json", exclude={"name", "description", "solver"})
    scans = list(d.get("scans") or []) + [b.get("rescan") or {} for b in d.get("branches") or []]
    for scan in scans:
        if scan.get("imaging_times_h") is None:
            scan.pop("imaging_times_h", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Run:
    """One simulation the targets need: row ``line``'s protocol for ``genotype``."""

    line: int
    genotype: str
    protocol: Protocol
    treated_course: bool  # response rows: follow the RAI course whatever the selection scan reads


def nested_parent(table: TrialsTable) -> dict[int, int]:
    """``{dosimetry row line: its i124_increase row line}`` for every nested readout pair."""
    out = {}
    for rows in table.nested_groups().values():
        inc = [r for r in rows if r.criterion == "i124_increase"]
        for r in rows:
            if inc and r.criterion == "i124_dosimetry":
                out[r.line] = inc[0].line
    return out


def row_genotypes(row: TrialRow, ras_share: float | None = None) -> list[str]:
    """The genotypes whose patients make up the row's arm (BRAF_WT and ANY split as :func:`genotype_weights`).

    ``ras_share``: RAS fraction of BRAF wild-type patients, in [0, 1] (default 0.5; only which
    genotypes appear matters here).
    """
    return sorted(genotype_weights(row, ras_share if ras_share is not None else 0.5))


def table_targets(table: TrialsTable) -> tuple[list[Target], list[Run]]:
    """The targets and simulation runs of every row (``grade3_ae`` rows need none: they are closed-form)."""
    parent = nested_parent(table)
    targets: list[Target] = []
    runs: list[Run] = []
    source = str(table.path)
    hashes: dict[tuple[int, str], str] = {}
    simulated = [row for row in table.rows if row.endpoint != "grade3_ae"]
    for row in simulated:  # every design first: a nested row may come before its parent in the file
        for g in row_genotypes(row):
            p = arm_protocol(row, g, source)
            hashes[(row.line, g)] = design_hash(p)
            runs.append(Run(row.line, g, p, row.endpoint == "response"))
    for row in simulated:
        for g in row_genotypes(row):
            h = hashes[(row.line, g)]
            if row.endpoint == "response":
                targets += [Target(row.line, g, q, h) for q in RESPONSE_QUANTITIES]
            elif row.line in parent:
                parent_hash = hashes.get((parent[row.line], g))
                if parent_hash is None:
                    raise InputError(
                        source, "genotype", "the genotypes of the i124_increase row it is nested in", row=row.line
                    )
                targets.append(Target(row.line, g, "dosimetry_given_increase", f"{h}+{parent_hash}"))
            else:
                targets.append(Target(row.line, g, "readout", h))
    return targets, runs


def target_keys(table: TrialsTable) -> dict[tuple[int, str, str], str]:
    """``{(line, genotype, quantity): target key}`` of every target of the table."""
    return {(t.line, t.genotype, t.quantity): t.key for t in table_targets(table)[0]}


def patient_pairs(
    target: Target, outs: dict[tuple[int, str], PatientRow], table: TrialsTable
) -> tuple[np.ndarray, np.ndarray]:
    """Per-patient (y, w) of ``target`` from the runs' outcome arrays (failed solves get w = 0).

    ``y`` is a probability or a 0/1 indicator and ``w`` a weight in [0, 1] (dimensionless; see the
    module table).
    """
    out = outs[(target.line, target.genotype)]
    ok = np.asarray(out.summary.ok, bool)
    if target.quantity == "readout":
        y, w = out.readout_p, np.ones(ok.shape)
    elif target.quantity == "dosimetry_given_increase":
        inc = outs[(nested_parent(table)[target.line], target.genotype)]
        ok = ok & np.asarray(inc.summary.ok, bool)
        p_inc = np.nan_to_num(inc.readout_p)
        y = np.minimum(np.nan_to_num(out.readout_p), p_inc) / np.maximum(p_inc, 1e-300)
        w = p_inc
    else:
        code = np.asarray(out.summary.recist)[:, 0]
        selected = np.where(np.isnan(out.readout_p), 1.0, out.readout_p)
        if target.quantity == "pd":
            y, w = code == 3, selected
        elif target.quantity == "sd_given_not_pd":
            y, w = code == 2, selected * (code != 3)
        else:
            y, w = code == 1, selected * (code <= 1)
    y = np.where(ok, np.nan_to_num(np.asarray(y, float)), 0.0)
    w = np.where(ok, np.nan_to_num(np.asarray(w, float)), 0.0)
    return y, w


def simulate_runs(
    runs: list[Run],
    cohort: Cohort,
    *,
    overrides: dict | None = None,
    patient_overrides: list[dict] | None = None,
    solver: SolverSettings | None = None,
    progress=None,
) -> dict[tuple[int, str], PatientRow]:
    """Outcome arrays of every run for one cohort (one population draw, or one per patient).

    ``overrides``/``patient_overrides``: parameter-card values per block (card units). Arrays as
    :func:`raisim.engine.batch.run_cohort` returns them (GBq, Gy, months, probabilities).
    """
    solver = solver or SolverSettings(1e-6, 1e-9, 100_000)
    pad = merge_padding([cell_shapes(r.protocol) for r in runs])
    outs = {}
    for r in runs:
        outs[(r.line, r.genotype)] = run_cohort(
            r.protocol,
            cohort,
            overrides=overrides,
            patient_overrides=patient_overrides,
            pad=pad,
            solver=solver,
            course=0 if r.treated_course else None,  # response rows follow the treated course
        )
        if progress is not None:
            progress(r)
    return outs


def arm_probabilities(
    table: TrialsTable, outs: dict[tuple[int, str], PatientRow], targets: list[Target] | None = None
) -> dict[str, float]:
    """``{target label: Σ w·y / Σ w}`` over the virtual cohort: probabilities in [0, 1] (NaN if every weight is 0)."""
    targets = targets if targets is not None else table_targets(table)[0]
    probs = {}
    for t in targets:
        y, w = patient_pairs(t, outs, table)
        probs[t.label] = float(np.sum(w * y) / np.sum(w)) if np.sum(w) > 0 else float("nan")
    return probs


def categories(pd_, sd_given_not_pd, pr_given_cr_or_pr):
    """P(CR, PR, SD, PD) (last axis) from the three continuation ratios (numpy or jax arrays).

    Inputs and outputs are probabilities in [0, 1]; the four categories sum to 1.
    """
    not_pd = 1.0 - pd_
    sd = not_pd * sd_given_not_pd
    cr_or_pr = not_pd * (1.0 - sd_given_not_pd)
    return jnp.stack([cr_or_pr * (1.0 - pr_given_cr_or_pr), cr_or_pr * pr_given_cr_or_pr, sd, pd_], axis=-1)


__all__ = [
    "RESPONSE_QUANTITIES",
    "Run",
    "Target",
    "arm_probabilities",
    "categories",
    "nested_parent",
    "patient_pairs",
    "row_genotypes",
    "simulate_runs",
    "table_targets",
    "target_keys",
]
