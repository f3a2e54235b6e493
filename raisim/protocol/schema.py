"""The protocol schema: a treatment protocol and the patient it is applied to, as data.

Configs speak clinical days. **Day 1 is the day of the first TKI dose**;
t = 0 h is that dose and day d starts at t = 24·(d − 1) h, so day 0 is the
day before treatment (baseline scans may use day 0 or negative days). A scan
day is the day the tracer is given; imaging follows at the readout's delay.

The schema is complete: every field a published protocol needs is here,
validated with pydantic v2 and loaded from YAML by :func:`load_protocol`,
which turns every problem into a one-line :class:`~raisim.io.errors.InputError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ..io.cards import available_drugs, card_values, load_card, read_yaml
from ..io.config import FrozenConfig
from ..io.errors import InputError
from ..io.vocab import (
    DRUG_NAMES,
    GENOTYPES,
    LESION_SITES,
    RAI_POLICIES,
    READOUTS,
    TARGET_IC50_KEYS,
    allowed,
)

DAYS_PER_MONTH = 365.25 / 12.0

#: Default imaging delay after tracer administration, hours, per readout
#: (I-124 PET at 24 h and later; I-123 at 24 h; diagnostic I-131 WBS at 72 h;
#: post-therapy WBS at 7 d). Assumptions of common practice (A).
DEFAULT_IMAGING_DELAY_H: dict[str, float] = {
    "i124_increase": 24.0,
    "i124_dosimetry": 24.0,
    "i123_tbr": 24.0,
    "i123_planar_tbr": 24.0,
    "diagnostic_wbs": 72.0,
    "post_therapy_wbs": 168.0,
}

# What the model is valid for. Every size and duration a protocol can ask for is bounded, so a
# typo (a 10,000-mm lesion, a 100,000-day course) stops with one line instead of running for
# minutes on numbers outside the model's support. Each bound names its reason; cohort sizes are
# bounded separately, in the sweep schema, so that 1e6-1e7 patient-protocol sweeps stay possible.

#: Last study day of any TKI course, scan, hold or RAI: two years after the first dose. The
#: redifferentiation chain is calibrated to courses of 10 days to ~3 months (trials.csv), and
#: continuation after RAI is months, not years; a later day is extrapolation or a typo.
MAX_STUDY_DAY = 730
#: Earliest study day of a baseline scan or rhTSH/withdrawal event: one year before the first dose.
MIN_STUDY_DAY = -365
#: Follow-up after RAI, months: 10 years (the trials report response at 6 months and PFS to ~5 years).
MAX_FOLLOWUP_MONTHS = 120.0
#: Lesions per patient: RECIST 1.1 follows at most 5 target lesions; 20 leaves room for non-target
#: lesions followed for dosimetry (the state grows with each lesion).
MAX_LESIONS = 20
#: Longest lesion diameter, mm (150 mm, a 1.8-kg sphere): the sphere dosimetry and the tumour
#: growth law are calibrated on lesions of millimetres to a few centimetres.
MAX_LESION_DIAMETER_MM = 150.0
#: Lesion mass, g: the sphere of :data:`MAX_LESION_DIAMETER_MM` at 1 g/mL.
MAX_LESION_MASS_G = 4.0 / 3.0 * 3.141592653589793 * (MAX_LESION_DIAMETER_MM / 20.0) ** 3
#: Scans (baseline, selection, re-scans) and branches per protocol, holds and dose changes per course.
MAX_SCANS = 12
MAX_BRANCHES = 4
MAX_SCHEDULE_CHANGES = 50
#: Drugs per regimen: combinations in trials.csv have at most 2 (BRAF + MEK inhibitor); the PK
#: checks give every linear drug card in one regimen.
MAX_DRUGS_PER_REGIMEN = 8
#: RECIST assessments in follow-up.
MAX_ASSESSMENTS = 40
#: Dose per administration, mg: 10x the largest labelled TKI dose (vemurafenib 960 mg).
MAX_DOSE_MG = 10_000.0
#: Dosing interval, h: hourly to four-weekly (an infusion every three weeks is 504 h).
MIN_INTERVAL_H, MAX_INTERVAL_H = 1.0, 672.0
#: I-131 activity, GBq: empiric therapy is <= 11.1 GBq; dosimetry-guided activities above 30 GBq are unreported.
MAX_ACTIVITY_GBQ = 30.0
#: Imaging delay after a tracer or therapy, h: two weeks (the longest post-therapy WBS is ~10 d).
MAX_IMAGING_DELAY_H = 14 * 24.0
#: Saved time grid spacing, h: at least 15 minutes (finer only inflates the output), at most a day.
MIN_OUTPUT_STEP_H, MAX_OUTPUT_STEP_H = 0.25, 24.0
#: Solver step budget per course (100,000 is the default; more is a stiff-solver problem, not a budget).
MAX_SOLVER_STEPS = 10_000_000

#: Dosimetry images of one tracer scan (a retention fit needs two; protocols image 2 to 4 times).
MAX_IMAGING_POINTS = 4
#: Default I-124 PET/CT imaging times for lesion dosimetry, h after the tracer (24, 48 and 72-96 h
#: in the redifferentiation trials; the trial timelines in models/data/timelines.csv give each arm's).
DEFAULT_DOSIMETRY_TIMES_H: tuple[float, ...] = (24.0, 48.0, 96.0)

#: Default tracer activities, MBq (typical diagnostic activities; A).
DEFAULT_TRACER_MBQ: dict[str, float] = {"I-123": 185.0, "I-124": 74.0, "I-131": 185.0}


def mechanism_problem(drug: str) -> str | None:
    """Why a drug card cannot act in the pathway block, or None when its mechanism entry is complete.

    The card needs ``metadata.targets`` (one or more of the known targets) and an
    in-vivo IC50 parameter for each target it names.
    """
    card = load_card(f"drugs/{drug}.yaml")
    where = f"a drug whose card models/drugs/{drug}.yaml"
    targets = card.metadata.get("targets")
    if not targets or not isinstance(targets, list):
        return f"{where} has a mechanism entry: metadata.targets, {allowed(TARGET_IC50_KEYS)}"
    unknown = [t for t in targets if t not in TARGET_IC50_KEYS]
    if unknown:
        return f"{where} names known targets only (got {unknown}): {allowed(TARGET_IC50_KEYS)}"
    missing = [TARGET_IC50_KEYS[t] for t in targets if TARGET_IC50_KEYS[t] not in card.parameters]
    if missing:
        return f"{where} gives the IC50 of each target (missing {missing})"
    return None


class DrugDose(FrozenConfig):
    """One drug of a regimen: ``dose_mg`` every ``interval_h`` hours, orally."""

    drug: str = Field(description="drug card name in models/drugs/")
    dose_mg: float = Field(gt=0, le=MAX_DOSE_MG, description="dose per administration, mg")
    interval_h: float = Field(
        ge=MIN_INTERVAL_H, le=MAX_INTERVAL_H, description="dosing interval, hours (12 = q12h, 24 = q24h)"
    )

    @field_validator("drug")
    @classmethod
    def _known_drug(cls, v: str) -> str:
        carded = available_drugs()
        if v not in carded:
            extra = " (no card yet)" if v in DRUG_NAMES else ""
            raise ValueError(f"a drug with a card in models/drugs/{extra}: {allowed(carded)}")
        problem = mechanism_problem(v)
        if problem:
            raise ValueError(problem)
        return v


class Hold(FrozenConfig):
    """A treatment interruption: no doses from ``from_day`` to ``to_day`` inclusive (study days)."""

    from_day: int = Field(ge=1, le=MAX_STUDY_DAY, description="first day without dosing (day 1 = first dose)")
    to_day: int = Field(ge=1, le=MAX_STUDY_DAY, description="last day without dosing, inclusive")
    drug: str | None = Field(None, description="drug held; all drugs when omitted")

    @model_validator(mode="after")
    def _order(self) -> Hold:
        if self.to_day < self.from_day:
            raise ValueError("to_day: a day >= from_day")
        return self


class DoseChange(FrozenConfig):
    """A dose reduction (or increase) of one drug from ``from_day`` (study day) on, to ``dose_mg`` mg."""

    drug: str = Field(description="drug whose dose changes (one of the regimen drugs)")
    from_day: int = Field(ge=1, le=MAX_STUDY_DAY, description="first day at the new dose")
    dose_mg: float = Field(gt=0, le=MAX_DOSE_MG, description="new dose per administration, mg")


class Treatment(FrozenConfig):
    """The TKI course: drugs per genotype, days on drug, holds, dose changes, adherence.

    Days are study days (day 1 = first dose); ``missed_dose_probability`` is a probability in [0, 1].
    """

    regimens: dict[str, list[DrugDose]] = Field(
        description="drugs per patient genotype (keys: BRAF_V600E, RAS, OTHER, or ALL)"
    )
    start_day: int = Field(1, ge=1, le=MAX_STUDY_DAY, description="first day on TKI (day 1 = first dose)")
    stop_day: int = Field(ge=1, le=MAX_STUDY_DAY, description="last day on TKI of the planned course, inclusive")
    holds: list[Hold] = Field(
        default_factory=list, max_length=MAX_SCHEDULE_CHANGES, description="treatment interruptions (days inclusive)"
    )
    dose_changes: list[DoseChange] = Field(
        default_factory=list, max_length=MAX_SCHEDULE_CHANGES, description="dose reductions or increases"
    )
    missed_dose_probability: float = Field(
        0.0, ge=0.0, le=1.0, description="probability that any one dose is missed (seeded)"
    )

    @field_validator("regimens")
    @classmethod
    def _keys(cls, v: dict[str, list[DrugDose]]) -> dict[str, list[DrugDose]]:
        ok = (*GENOTYPES, "ALL")
        for key, items in v.items():
            if key not in ok:
                raise ValueError(f"genotype key {key!r}: {allowed(ok)}")
            if not items:
                raise ValueError(f"regimen for {key} needs at least one drug")
            if len(items) > MAX_DRUGS_PER_REGIMEN:
                raise ValueError(f"regimen for {key}: at most {MAX_DRUGS_PER_REGIMEN} drugs")
        return v

    @model_validator(mode="after")
    def _days(self) -> Treatment:
        if self.stop_day < self.start_day:
            raise ValueError("stop_day: a day >= start_day (a course of at least one day)")
        return self

    def regimen_for(self, genotype: str) -> list[DrugDose]:
        """The drugs given to a patient of ``genotype``."""
        if genotype in self.regimens:
            return self.regimens[genotype]
        if "ALL" in self.regimens:
            return self.regimens["ALL"]
        raise KeyError(genotype)


class Scan(FrozenConfig):
    """A tracer scan: tracer given on ``day`` (study day), imaged ``imaging_delay_h`` hours later.

    ``activity_mbq``: tracer activity, MBq (default per isotope: :data:`DEFAULT_TRACER_MBQ`).
    """

    name: str = Field(description="unique scan name, referenced by rai.require and branches")
    day: int = Field(
        ge=MIN_STUDY_DAY,
        le=MAX_STUDY_DAY,
        description="day the tracer is given (day 1 = first TKI dose; <= 0 before TKI)",
    )
    isotope: Literal["I-123", "I-124", "I-131"] = Field(description="tracer isotope")
    readout: str | None = Field(None, description="readout criterion; none for a baseline scan")
    baseline: str | None = Field(None, description="name of the baseline scan (i124_increase)")
    activity_mbq: float | None = Field(None, gt=0, le=MAX_ACTIVITY_GBQ * 1000.0, description="tracer activity, MBq")
    imaging_delay_h: float | None = Field(
        None, gt=0, le=MAX_IMAGING_DELAY_H, description="imaging time after the tracer, hours"
    )
    imaging_times_h: list[float] | None = Field(
        None,
        min_length=2,
        max_length=MAX_IMAGING_POINTS,
        description="i124_dosimetry: PET/CT images for the retention fit, hours after the tracer, increasing "
        "(default 24, 48, 96)",
    )

    @field_validator("readout")
    @classmethod
    def _readout(cls, v: str | None) -> str | None:
        if v is not None and v not in READOUTS:
            raise ValueError(allowed(READOUTS))
        return v

    @field_validator("imaging_times_h")
    @classmethod
    def _times(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (
            any(not 0.0 < t <= MAX_IMAGING_DELAY_H for t in v) or any(b <= a for a, b in zip(v, v[1:], strict=False))
        ):
            raise ValueError(f"increasing hours after the tracer, each in (0, {MAX_IMAGING_DELAY_H:g}]")
        return v

    @model_validator(mode="after")
    def _dosimetry_images(self) -> Scan:
        if self.imaging_times_h is not None and self.readout != "i124_dosimetry":
            raise ValueError("imaging_times_h: only for readout i124_dosimetry (a retention fit of PET images)")
        if self.imaging_times_h is not None and self.imaging_delay_h is not None:
            raise ValueError("imaging_delay_h: leave it out with imaging_times_h (the first image is the scan's)")
        return self

    @property
    def tracer_mbq(self) -> float:
        """Tracer activity, MBq (``activity_mbq``, else the isotope's default)."""
        return self.activity_mbq if self.activity_mbq is not None else DEFAULT_TRACER_MBQ[self.isotope]

    @property
    def delay_h(self) -> float:
        """Imaging delay after the tracer, h (``imaging_delay_h``, else the first dosimetry image,
        else the readout's default)."""
        if self.imaging_delay_h is not None:
            return self.imaging_delay_h
        return (
            self.dosimetry_times_h[0]
            if self.dosimetry_times_h
            else DEFAULT_IMAGING_DELAY_H.get(self.readout or "", 24.0)
        )

    @property
    def dosimetry_times_h(self) -> tuple[float, ...]:
        """PET/CT images of the retention fit, h after the tracer (``i124_dosimetry`` scans:
        ``imaging_times_h``, else :data:`DEFAULT_DOSIMETRY_TIMES_H`; empty for other scans)."""
        if self.readout != "i124_dosimetry":
            return ()
        return tuple(self.imaging_times_h) if self.imaging_times_h is not None else DEFAULT_DOSIMETRY_TIMES_H

    @property
    def last_image_h(self) -> float:
        """The scan's last image, h after the tracer (the dosimetry fit's last, else ``delay_h``)."""
        return max((*self.dosimetry_times_h, self.delay_h))


class TSH(FrozenConfig):
    """TSH stimulation before every tracer and therapy administration.

    rhTSH: 0.9 mg IM, ``injection_days_before`` days before each administration.
    """

    method: Literal["rhTSH", "withdrawal", "none"] = Field(
        "rhTSH", description="rhTSH injections, thyroid-hormone withdrawal (~4 weeks), or none"
    )
    injection_days_before: list[int] = Field(
        default_factory=lambda: [2, 1],
        max_length=7,
        description="rhTSH: 0.9 mg IM on these days before each administration (0 to 14)",
    )

    @field_validator("injection_days_before")
    @classmethod
    def _injection_days(cls, v: list[int]) -> list[int]:
        if any(not 0 <= d <= 14 for d in v):
            raise ValueError("days from 0 to 14 before the administration (rhTSH acts for days, not weeks)")
        return v


class RAI(FrozenConfig):
    """Radioiodine (I-131) therapy: day, activity policy and safety limits.

    ``day`` is a study day; activities and limits in GBq, doses in Gy, ``tki_days_after_rai`` in
    days, ``stunning_factor`` a fold of the tracer-predicted uptake, imaging delay in h.
    """

    day: int = Field(le=MAX_STUDY_DAY, description="day I-131 therapy is given")
    policy: str = Field(description="fixed, dosimetry_max_11.1 or dosimetry_guided")
    activity_gbq: float | None = Field(
        None, gt=0, le=MAX_ACTIVITY_GBQ, description="fixed policy: administered activity, GBq"
    )
    target_dose_gy: float = Field(20.0, gt=0, le=1000.0, description="dosimetry_max_11.1: dose to the best lesion, Gy")
    max_gbq: float = Field(
        11.1, gt=0, le=MAX_ACTIVITY_GBQ, description="dosimetry_max_11.1: no treatment above this, GBq"
    )
    cap_gbq: float | None = Field(None, gt=0, le=MAX_ACTIVITY_GBQ, description="dosimetry_guided: protocol cap, GBq")
    blood_limit_gy: float = Field(2.0, gt=0, le=100.0, description="dosimetry_guided: blood absorbed dose limit, Gy")
    retention_48h_limit_gbq: float = Field(
        4.44, gt=0, le=MAX_ACTIVITY_GBQ, description="48-h whole-body retention limit, GBq"
    )
    lung_retention_48h_limit_gbq: float = Field(
        2.96, gt=0, le=MAX_ACTIVITY_GBQ, description="48-h retention limit with diffuse lung metastases, GBq"
    )
    require: str | None = Field(None, description="treat only if this scan's readout succeeds")
    tki_days_after_rai: int | None = Field(
        None,
        ge=0,
        le=MAX_STUDY_DAY,
        description="TKI continues without a gap to rai day + N; none = stops at course end",
    )
    stunning_factor: float = Field(
        1.0, gt=0, le=1.0, description="therapy uptake relative to the tracer prediction (1 = no stunning)"
    )
    post_therapy_imaging_delay_h: float = Field(
        168.0, gt=0, le=MAX_IMAGING_DELAY_H, description="post-therapy WBS after RAI, hours"
    )

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        if v not in RAI_POLICIES:
            raise ValueError(allowed(RAI_POLICIES))
        return v

    @model_validator(mode="after")
    def _fixed(self) -> RAI:
        if self.policy == "fixed" and self.activity_gbq is None:
            raise ValueError("activity_gbq: required (GBq) with policy fixed")
        return self


class Branch(FrozenConfig):
    """If ``on_fail``'s readout fails: continue TKI, re-scan, and treat if the re-scan succeeds (days: study days)."""

    on_fail: str = Field(description="name of the scan whose failure triggers this branch")
    extend_tki_to_day: int = Field(le=MAX_STUDY_DAY, description="TKI continues to this day (inclusive)")
    rescan: Scan = Field(description="the re-scan (its readout decides treatment)")
    rai_day: int = Field(le=MAX_STUDY_DAY, description="RAI day if the re-scan succeeds")


class Lesion(FrozenConfig):
    """A tumour lesion: site and size (``mass_g`` in g or ``diameter_mm`` in mm, one of them).

    ``nis_capacity`` and ``radiosensitivity`` are folds (dimensionless).
    """

    name: str | None = Field(None, description="label used in outputs (default lesionN)")
    site: str = Field(
        "other", description="anatomical site: lung, lymph_node, bone, thyroid_bed, soft_tissue, liver or other"
    )
    mass_g: float | None = Field(None, gt=0, le=MAX_LESION_MASS_G, description="lesion mass, g (density 1 g/mL)")
    diameter_mm: float | None = Field(
        None, gt=0, le=MAX_LESION_DIAMETER_MM, description="longest diameter, mm (sphere)"
    )
    nis_capacity: float = Field(
        1.0, gt=0, le=100.0, description="lesion NIS capacity relative to the patient's (at most 100-fold)"
    )
    radiosensitivity: float = Field(
        1.0, gt=0, le=100.0, description="lesion radiosensitivity (alpha) relative to the typical lesion"
    )

    @field_validator("site")
    @classmethod
    def _site(cls, v: str) -> str:
        if v not in LESION_SITES:
            raise ValueError(allowed(LESION_SITES))
        return v

    @model_validator(mode="after")
    def _size(self) -> Lesion:
        if (self.mass_g is None) == (self.diameter_mm is None):
            raise ValueError("give exactly one of mass_g or diameter_mm")
        return self

    @property
    def mass(self) -> float:
        """Lesion mass, g (sphere of density 1 g/mL when given by diameter)."""
        if self.mass_g is not None:
            return self.mass_g
        r_cm = self.diameter_mm / 20.0
        return 4.0 / 3.0 * 3.141592653589793 * r_cm**3


class Patient(FrozenConfig):
    """The simulated patient: genotype, covariates (weight kg, baseline Tg ng/mL) and lesions."""

    genotype: str = Field(description="BRAF_V600E, RAS or OTHER")
    sex: Literal["female", "male"] = Field("female", description="female or male (PK covariate)")
    weight_kg: float = Field(70.0, gt=20, lt=300, description="body weight, kg")
    baseline_tg_ng_ml: float = Field(
        50.0, ge=0, le=1e6, description="baseline serum thyroglobulin, ng/mL (at most 10^6)"
    )
    diffuse_lung_metastases: bool = Field(
        False, description="true lowers the 48-h retention limit to lung_retention_48h_limit_gbq"
    )
    lesions: list[Lesion] = Field(
        min_length=1, max_length=MAX_LESIONS, description=f"one or more lesions (at most {MAX_LESIONS})"
    )

    @field_validator("genotype")
    @classmethod
    def _genotype(cls, v: str) -> str:
        if v not in GENOTYPES:
            raise ValueError(allowed(GENOTYPES))
        return v


class FollowUp(FrozenConfig):
    """RECIST assessments, months after RAI (after day 1 if there is no RAI)."""

    months: list[float] = Field(
        default_factory=lambda: [3.0, 6.0, 12.0],
        max_length=MAX_ASSESSMENTS,
        description="RECIST assessment times, months after RAI (after day 1 without RAI); the last ends follow-up",
    )

    horizon_months: float | None = Field(
        None,
        gt=0,
        le=MAX_FOLLOWUP_MONTHS,
        description="simulated follow-up after RAI (after day 1 without RAI), months; default: the last month",
    )

    @field_validator("months")
    @classmethod
    def _months(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < m <= MAX_FOLLOWUP_MONTHS for m in v):
            raise ValueError(f"a non-empty list of months in (0, {MAX_FOLLOWUP_MONTHS:g}]")
        return sorted(v)

    @model_validator(mode="after")
    def _horizon(self) -> FollowUp:
        if self.horizon_months is not None and self.months[-1] > self.horizon_months:
            raise ValueError(
                f"months: {self.months[-1]:g} is beyond horizon_months ({self.horizon_months:g}); "
                f"allowed: months <= {self.horizon_months:g}"
            )
        return self

    @property
    def end_months(self) -> float:
        """End of the simulated follow-up, months after the anchor (RAI, else day 1)."""
        return self.horizon_months if self.horizon_months is not None else self.months[-1]


#: Default start of the stabilised solver, h after a course's last dose, TSH event or administration.
TAIL_DELAY_H = 7.0 * 24.0


class SolverOptions(FrozenConfig):
    """Numerical options: tolerances (``atol`` in state units), step budget (a count), output step (h)."""

    rtol: float = Field(1e-7, gt=0, lt=1e-2, description="relative tolerance of the adaptive ODE solver")
    atol: float = Field(1e-10, gt=0, description="absolute tolerance (state units: mg, folds, MBq per MBq)")
    max_steps: int = Field(
        100_000, ge=100, le=MAX_SOLVER_STEPS, description="solver step budget per course; exceeding it is reported"
    )
    output_step_h: float = Field(
        2.0, ge=MIN_OUTPUT_STEP_H, le=MAX_OUTPUT_STEP_H, description="spacing of the saved time grid, hours"
    )
    tail_delay_h: float | None = Field(
        TAIL_DELAY_H,
        ge=0,
        le=MAX_STUDY_DAY * 24.0,
        description="hours after the last dose, TSH event or administration from which the stabilised "
        "explicit solver (RKC) takes over to the end; null: Tsit5 throughout",
    )


class Protocol(FrozenConfig):
    """A complete protocol applied to one patient (see the README for every field)."""

    name: str = Field(description="protocol name shown in outputs")
    description: str = Field("", description="free text")
    patient: Patient = Field(description="the simulated patient")
    treatment: Treatment = Field(description="the TKI course")
    scans: list[Scan] = Field(
        default_factory=list, max_length=MAX_SCANS, description="tracer scans (baseline and selection)"
    )
    tsh: TSH = Field(default_factory=TSH, description="TSH stimulation before each administration")
    rai: RAI | None = Field(None, description="radioiodine therapy; omit for TKI-only simulations")
    branches: list[Branch] = Field(
        default_factory=list, max_length=MAX_BRANCHES, description="continue-and-re-scan branches"
    )
    followup: FollowUp = Field(default_factory=FollowUp, description="follow-up assessments")
    solver: SolverOptions = Field(default_factory=SolverOptions, description="numerical options")

    @model_validator(mode="after")
    def _consistency(self) -> Protocol:
        _check_protocol(self)
        return self

    # -- derived quantities -------------------------------------------------

    def all_scans(self) -> list[Scan]:
        """The scans and every branch's re-scan, in that order."""
        return [*self.scans, *(b.rescan for b in self.branches)]

    def scan(self, name: str) -> Scan:
        """The scan (or branch re-scan) called ``name``; KeyError if none."""
        for s in self.all_scans():
            if s.name == name:
                return s
        raise KeyError(name)

    def followup_end_day(self) -> float:
        """Last study day of follow-up (fractional days), the end of every simulation."""
        rai_days = [self.rai.day] if self.rai else []
        rai_days += [b.rai_day for b in self.branches] if self.rai else []
        anchor = max(rai_days) if rai_days else 1
        end = anchor + self.followup.end_months * DAYS_PER_MONTH
        # whatever the follow-up, the simulation runs past every imaging time (and its 48-h
        # retention reading), every therapy's post-therapy scan and the last day on TKI
        for s in self.all_scans():
            end = max(end, s.day + max(s.last_image_h, 48.0) / 24.0)
        if self.rai is not None:
            after = max(self.rai.post_therapy_imaging_delay_h, 48.0) / 24.0
            end = max(end, *(d + after for d in rai_days))
        return max(end, _last_possible_tki_day(self) + 1.0)

    def content_hash(self) -> str:
        """SHA-256 hex digest of the protocol's content (canonical JSON)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def _check_protocol(p: Protocol) -> None:
    t = p.treatment
    g = p.patient.genotype
    if not any(k in t.regimens for k in (g, "ALL")):
        raise ValueError(f"treatment.regimens has no entry for the patient genotype {g}: add {g} or ALL")
    drugs = {d.drug for items in t.regimens.values() for d in items}
    for key, items in t.regimens.items():
        for i, d in enumerate(items):
            infusion = card_values(f"drugs/{d.drug}.yaml").get("infusion_h", 0.0)
            if infusion >= d.interval_h:
                raise ValueError(
                    f"treatment.regimens.{key}[{i}].interval_h: longer than the {infusion:g}-h infusion of {d.drug}"
                )
    for i, h in enumerate(t.holds):
        if h.drug is not None and h.drug not in drugs:
            raise ValueError(f"treatment.holds[{i}].drug: one of the regimen drugs {sorted(drugs)}")
        if h.from_day < t.start_day or h.to_day > _last_possible_tki_day(p):
            raise ValueError(
                f"treatment.holds[{i}]: days {h.from_day}-{h.to_day} outside the course "
                f"(days {t.start_day}-{_last_possible_tki_day(p)})"
            )
    for i, c in enumerate(t.dose_changes):
        if c.drug not in drugs:
            raise ValueError(f"treatment.dose_changes[{i}].drug: one of the regimen drugs {sorted(drugs)}")
    names = [s.name for s in p.all_scans()]
    if len(set(names)) != len(names):
        raise ValueError("scans: scan names must be unique (including branch re-scans)")
    for i, s in enumerate(p.scans):
        if s.readout == "i124_increase":
            if s.baseline is None or s.baseline not in names:
                raise ValueError(f"scans[{i}].baseline: i124_increase needs the name of a baseline scan")
            if p.scan(s.baseline).day >= s.day:
                raise ValueError(f"scans[{i}].baseline: the baseline scan must come before the scan")
        if s.readout is not None and s.readout.startswith("i124") and s.isotope != "I-124":
            raise ValueError(f"scans[{i}].isotope: readout {s.readout} needs I-124")
        if s.readout in ("i123_tbr", "i123_planar_tbr") and s.isotope != "I-123":
            raise ValueError(f"scans[{i}].isotope: readout {s.readout} needs I-123")
    if p.rai is not None:
        r = p.rai
        if r.require is not None and r.require not in names:
            raise ValueError(f"rai.require: the name of a scan, one of {names}")
        scan_days = [s.day for s in p.scans if s.name == r.require]
        if scan_days and r.day < scan_days[0]:
            raise ValueError("rai.day: must not come before the scan it requires")
        if r.day < 1:
            raise ValueError("rai.day: a day >= 1 (day 1 = first TKI dose)")
        if r.tki_days_after_rai is not None:
            for label, rai_day, course_end in [
                ("rai.day", r.day, t.stop_day),
                *((f"branches[{i}].rai_day", b.rai_day, b.extend_tki_to_day) for i, b in enumerate(p.branches)),
            ]:
                if rai_day + r.tki_days_after_rai < course_end:
                    raise ValueError(
                        f"rai.tki_days_after_rai: TKI continuation would end on day {rai_day + r.tki_days_after_rai} "
                        f"({label} {rai_day} + {r.tki_days_after_rai}), before the course it continues ends "
                        f"(day {course_end}); allowed: >= {course_end - rai_day}, or leave it out"
                    )
        if r.policy != "fixed" and not any(s.day <= r.day for s in p.scans):
            raise ValueError(f"rai.policy: {r.policy} needs a tracer scan on or before rai.day for dosimetry")
        for i, s in enumerate(p.scans):
            end_h = 24.0 * (s.day - 1) + s.last_image_h
            if s.day < r.day and s.readout != "post_therapy_wbs" and end_h > 24.0 * (r.day - 1):
                raise ValueError(
                    f"scans[{i}]: its last image ({s.last_image_h:g} h after the tracer of day {s.day}) comes after "
                    f"the therapy on rai.day {r.day}; allowed: images before day {r.day} (or a later rai.day)"
                )
    for i, b in enumerate(p.branches):
        if b.on_fail not in names:
            raise ValueError(f"branches[{i}].on_fail: the name of a scan, one of {names}")
        failed = p.scan(b.on_fail)
        if b.extend_tki_to_day < t.stop_day:
            raise ValueError(f"branches[{i}].extend_tki_to_day: a day >= treatment.stop_day ({t.stop_day})")
        if b.rescan.day <= failed.day:
            raise ValueError(f"branches[{i}].rescan.day: after the failed scan (day {failed.day})")
        if b.rai_day < b.rescan.day:
            raise ValueError(f"branches[{i}].rai_day: on or after the re-scan day ({b.rescan.day})")
        if b.rescan.readout is None:
            raise ValueError(f"branches[{i}].rescan.readout: {allowed(READOUTS)}")
        if p.rai is None:
            raise ValueError(f"branches[{i}]: a branch needs an rai section")


def _last_possible_tki_day(p: Protocol) -> int:
    last = p.treatment.stop_day
    for b in p.branches:
        last = max(last, b.extend_tki_to_day)
    if p.rai is not None and p.rai.tki_days_after_rai is not None:
        days = [p.rai.day, *(b.rai_day for b in p.branches)]
        last = max(last, max(days) + p.rai.tki_days_after_rai)
    return last


_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.*)$")


def _split_problem(msg: str) -> tuple[str | None, str]:
    """Split 'field.path: message' produced by the validators into (field, message)."""
    m = _FIELD_PREFIX.match(msg)
    return (m.group(1), m.group(2)) if m else (None, msg)


def protocol_from_dict(raw: object, source: str | Path = "<input>") -> Protocol:
    """Validate a protocol given as a mapping; problems raise :class:`InputError`."""
    if not isinstance(raw, dict):
        raise InputError(source, "<root>", "a YAML mapping with name, patient, treatment, ...")
    try:
        return Protocol.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in err["loc"]).replace(".[", "[")
        msg = err["msg"].removeprefix("Value error, ")
        field, rest = _split_problem(msg)
        if field is not None:
            absolute = field.split(".")[0].split("[")[0] in Protocol.model_fields
            loc, msg = (field if absolute or not loc else f"{loc}.{field}"), rest
        got = (
            err.get("input")
            if err["type"] not in ("missing",) and not isinstance(err.get("input"), dict | list)
            else None
        )
        raise InputError(source, loc or "<root>", msg, got=got) from None


def load_protocol(path: str | Path) -> Protocol:
    """Load a protocol YAML file; every problem is a one-line :class:`InputError`."""
    p = Path(path)
    return protocol_from_dict(read_yaml(p, "protocol YAML file"), p)


def protocol_json_schema() -> dict:
    """The JSON schema of the protocol file format."""
    return Protocol.model_json_schema()


def field_reference_markdown(model: type[BaseModel] | None = None) -> str:
    """A Markdown table of every field of a config model (default: the protocol): path, type,
    default, meaning with units.

    The README's config references are these tables, for protocols, sweeps
    (:class:`raisim.sweep.config.SweepConfig`) and calibrations
    (:class:`raisim.calibration.fit.CalibrationConfig`); a test keeps them identical.
    """
    rows = ["| field | type | default | allowed | meaning (units) |", "|---|---|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            path = f"{prefix}{name}"
            ann = f.annotation
            sub = _submodel(ann)
            tname = _type_name(ann)
            if f.is_required():
                default = "required"
            elif f.default_factory is not None:
                default = "`" + json.dumps(_jsonable(f.default_factory())) + "`"
            else:
                default = "`" + json.dumps(_jsonable(f.default)) + "`"
            rows.append(f"| `{path}` | {tname} | {default} | {_bounds(f)} | {f.description or ''} |")
            if sub is not None:
                suffix = ".{genotype}[]." if tname.startswith("dict") else ("[]." if tname.startswith("list") else ".")
                walk(sub, path + suffix)

    walk(model or Protocol, "")
    return "\n".join(rows)


def _bounds(f) -> str:
    """A field's numeric range and length limits, in words (e.g. ``> 0, <= 150``; ``1-20 items``)."""
    parts = []
    lo = hi = None
    for m in f.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            v = getattr(m, attr, None)
            if v is not None:
                parts.append(f"{sign} {int(v):,}" if float(v).is_integer() else f"{sign} {v:g}")
        lo = getattr(m, "min_length", lo)
        hi = getattr(m, "max_length", hi)
    if hi is not None:
        parts.append(f"{lo or 0}-{hi} items")
    elif lo:
        parts.append(f">= {lo} items")
    return ", ".join(parts)


def _submodel(ann):
    import typing

    for a in (ann, *typing.get_args(ann), *(x for t in typing.get_args(ann) for x in typing.get_args(t))):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def _type_name(ann) -> str:
    text = re.sub(r"Annotated\[(\w+), [^\[\]]*?\]", r"\1", str(ann))  # a validated str is a str
    text = re.sub(r"^Optional\[(.*)\]$", r"\1 | None", text.replace("typing.", ""))
    return (
        re.sub(r"raisim(\.\w+)+?\.(?=[A-Z])", "", text)
        .replace("typing.", "")
        .replace("<class '", "")
        .replace("'>", "")
        .replace("|", "or")
    )


def _jsonable(x):
    if isinstance(x, BaseModel):
        return x.model_dump(mode="json")
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x
