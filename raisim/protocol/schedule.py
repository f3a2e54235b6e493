"""From a protocol to concrete schedules: courses (decision paths), doses and administrations.

A protocol with conditional branches describes several possible *courses*:
"the selection scan succeeds → RAI on day 12", "it fails → TKI to day 20,
re-scan, RAI on day 22 if that succeeds", "both fail → no RAI". Every course
is a fixed schedule, so each is simulated as one ODE solve of one compiled
shape, and the readouts decide which course a patient follows. Later stages
(cohorts, calibration) weigh courses by their readout probabilities.

Units: days in configs, hours in arrays (t = 24·(day − 1) h).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..io.vocab import ISOTOPE_HALF_LIFE_H, isotope_decay_per_h
from .schema import DAYS_PER_MONTH, Protocol, Scan

FAR_FUTURE_H = 1e12  # padding time for doses or administrations that never happen
DOSE_PAD = 32  # dose arrays are padded to a multiple of this (fewer recompilations)


def day_to_h(day: float) -> float:
    """Start of clinical (study) day ``day`` in hours (day 1 starts at t = 0 h)."""
    return 24.0 * (day - 1.0)


@dataclass(frozen=True)
class Course:
    """One decision path through a protocol.

    ``conditions``: (scan name, succeeded) pairs required to follow it; ``rai_day`` and
    ``tki_last_day``: study days (``rai_day`` None: no RAI on this course).
    """

    conditions: tuple[tuple[str, bool], ...]  # (scan name, succeeded) required to follow this course
    scans: tuple[Scan, ...]
    rai_day: int | None
    tki_last_day: int

    def describe(self) -> str:
        """One line in words, e.g. ``selection succeeds: TKI to day 12, RAI on day 12`` (study days)."""
        if not self.conditions:
            cond = "all patients"
        else:
            cond = ", ".join(
                "discontinued for toxicity" if n == STOP_CONDITION else f"{n} {'succeeds' if ok else 'fails'}"
                for n, ok in self.conditions
            )
        rai = f"RAI on day {self.rai_day}" if self.rai_day is not None else "no RAI"
        return f"{cond}: TKI to day {self.tki_last_day}, {rai}"


#: The condition a course cut by a toxicity stop carries (see ``raisim.engine.simulate.discontinued_course``).
STOP_CONDITION = "discontinued_for_toxicity"


def enumerate_courses(p: Protocol) -> list[Course]:
    """Every course the protocol allows, in a fixed order (main path first)."""
    base = tuple(p.scans)
    stop = p.treatment.stop_day
    if p.rai is None:
        return [Course((), base, None, stop)]

    def last_day(rai_day: int, tki_stop: int) -> int:
        k = p.rai.tki_days_after_rai
        return max(tki_stop, rai_day + k) if k is not None else tki_stop

    if p.rai.require is None:
        return [Course((), base, p.rai.day, last_day(p.rai.day, stop))]

    courses: list[Course] = []

    def expand(scan_name, conditions, scans, rai_day, tki_stop):
        courses.append(Course((*conditions, (scan_name, True)), scans, rai_day, last_day(rai_day, tki_stop)))
        branch = next((b for b in p.branches if b.on_fail == scan_name), None)
        failed = (*conditions, (scan_name, False))
        if branch is None:
            courses.append(Course(failed, scans, None, tki_stop))
        else:
            expand(branch.rescan.name, failed, (*scans, branch.rescan), branch.rai_day, branch.extend_tki_to_day)

    expand(p.rai.require, (), base, p.rai.day, stop)
    return courses


@dataclass(frozen=True)
class Channel:
    """One radioiodine administration of unit activity (1 MBq).

    ``time_h``: administration time, h (t = 0 at the first TKI dose); ``uptake_factor``: fold of
    lesion uptake (the therapy's stunning factor), dimensionless.
    """

    kind: str  # "tracer" | "projection" | "therapy" | "padding"
    scan: str | None
    isotope: str
    time_h: float
    uptake_factor: float = 1.0


@dataclass
class DoseSchedule:
    """Oral doses per drug, padded: times (h) and amounts (mg), shape (n_drugs, n_max).

    ``days_on_drug``: days with at least one dose given, per drug; ``n_doses``: doses given per
    drug (a count, padding excluded). Padding doses are 0 mg at a far-future time.
    """

    drugs: tuple[str, ...]
    times_h: np.ndarray
    amounts_mg: np.ndarray
    days_on_drug: np.ndarray  # (n_drugs,) days with at least one dose given
    n_doses: np.ndarray = field(default_factory=lambda: np.zeros(0))


def protocol_drugs(p: Protocol) -> tuple[str, ...]:
    """The drugs the protocol's patient receives, in regimen order."""
    return tuple(d.drug for d in p.treatment.regimen_for(p.patient.genotype))


def build_doses(p: Protocol, course: Course, pad_to: int | None = None) -> DoseSchedule:
    """The planned doses of one course: times and amounts with holds and dose changes applied.

    Missed doses are not drawn here: the engine draws which dose slots a patient takes from
    its own stream (:func:`raisim.engine.plan.cohort_draws`), for one patient and cohorts alike.
    ``pad_to``: dose slots per drug (a count). Returns times in h and amounts in mg (see
    :class:`DoseSchedule`).
    """
    t = p.treatment
    regimen = t.regimen_for(p.patient.genotype)
    times, amounts, days_on = [], [], []
    for item in regimen:
        start_h, end_h = day_to_h(t.start_day), day_to_h(course.tki_last_day + 1)
        n = int(math.ceil((end_h - start_h) / item.interval_h - 1e-9))
        tt = start_h + item.interval_h * np.arange(n)
        day = np.floor(tt / 24.0).astype(int) + 1
        dose = np.full(n, item.dose_mg)
        for c in sorted(t.dose_changes, key=lambda c: c.from_day):
            if c.drug == item.drug:
                dose = np.where(day >= c.from_day, c.dose_mg, dose)
        keep = np.ones(n, dtype=bool)
        for h in t.holds:
            if h.drug in (None, item.drug):
                keep &= ~((day >= h.from_day) & (day <= h.to_day))
        times.append(tt[keep])
        amounts.append(dose[keep])
        days_on.append(len(np.unique(day[keep])))
    n_max = max((len(x) for x in times), default=0)
    size = pad_to or max(DOSE_PAD, int(math.ceil(n_max / DOSE_PAD)) * DOSE_PAD)
    T = np.full((len(regimen), size), FAR_FUTURE_H)
    A = np.zeros((len(regimen), size))
    for i, (tt, aa) in enumerate(zip(times, amounts, strict=True)):
        T[i, : len(tt)] = tt
        A[i, : len(aa)] = aa
    return DoseSchedule(
        drugs=tuple(r.drug for r in regimen),
        times_h=T,
        amounts_mg=A,
        days_on_drug=np.asarray(days_on, dtype=float),
        n_doses=np.asarray([len(x) for x in times]),
    )


def build_channels(p: Protocol, course: Course, n_channels: int | None = None) -> list[Channel]:
    """Administrations of a course: each scan's tracer and its I-131 projection, then the therapy.

    Each is a unit-activity (1 MBq) channel at its time in h; ``n_channels`` pads the list to that
    count with never-given channels.
    """
    out: list[Channel] = []
    for s in course.scans:
        out.append(Channel("tracer", s.name, s.isotope, day_to_h(s.day)))
        out.append(Channel("projection", s.name, "I-131", day_to_h(s.day)))
    if course.rai_day is not None:
        out.append(Channel("therapy", None, "I-131", day_to_h(course.rai_day), p.rai.stunning_factor))
    while n_channels is not None and len(out) < n_channels:
        out.append(Channel("padding", None, "I-131", FAR_FUTURE_H))
    return out


def channel_arrays(channels: list[Channel], withdrawal: bool, withdrawal_renal_factor: float):
    """(admin_time_h, decay_per_h, renal_factor, uptake_factor) arrays for the iodine block.

    Times in h, decay constants 1/h, factors are folds (``withdrawal_renal_factor``: fold of
    euthyroid renal clearance, applied to every channel when ``withdrawal``).
    """
    times = np.asarray([c.time_h for c in channels], dtype=float)
    decay = np.asarray([isotope_decay_per_h(c.isotope) for c in channels], dtype=float)
    renal = np.full(len(channels), withdrawal_renal_factor if withdrawal else 1.0)
    uptake = np.asarray([c.uptake_factor for c in channels], dtype=float)
    return times, decay, renal, uptake


def assessment_times_h(p: Protocol, course: Course) -> list[float]:
    """Follow-up assessment times of a course, h: months after RAI (after day 1 without RAI)."""
    anchor = day_to_h(course.rai_day) if course.rai_day is not None else 0.0
    return [anchor + m * DAYS_PER_MONTH * 24.0 for m in p.followup.months]


def grid_start_h(p: Protocol, courses: list[Course]) -> float:
    """Start of the simulation, h: a whole day before the earliest event of any course (first dose,
    tracer or therapy, rhTSH injection, start of a hormone withdrawal), so every course starts
    from the untreated steady state."""
    from ..io.cards import card_values

    if p.tsh.method == "rhTSH":
        before = max(p.tsh.injection_days_before, default=0)
    elif p.tsh.method == "withdrawal":
        before = card_values("biology/tsh.yaml")["withdrawal_days_before"]
    else:
        before = 0
    starts = [0.0]
    for c in courses:
        starts += [ch.time_h for ch in build_channels(p, c)]
        starts += [day_to_h(d) - 24.0 * before for d in administration_days(p, c)]
    return math.floor(min(starts) / 24.0) * 24.0 - 24.0


def administration_days(p: Protocol, course: Course) -> list[int]:
    """Study days with a radioiodine administration (tracers and therapy), for TSH stimulation."""
    days = [s.day for s in course.scans]
    if course.rai_day is not None:
        days.append(course.rai_day)
    return sorted(set(days))


__all__ = [
    "Course",
    "Channel",
    "DoseSchedule",
    "enumerate_courses",
    "build_doses",
    "build_channels",
    "channel_arrays",
    "administration_days",
    "assessment_times_h",
    "day_to_h",
    "grid_start_h",
    "protocol_drugs",
    "ISOTOPE_HALF_LIFE_H",
]
