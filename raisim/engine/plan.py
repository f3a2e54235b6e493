"""A protocol as arrays for the batched engine (:mod:`raisim.engine.batch`).

A :class:`CellPlan` holds everything about one protocol (one grid cell) as
arrays — schedules per course, grid indices of imaging, retention and
assessment times, policy numbers — padded to shapes shared by every cell of
a sweep, so durations 7 to 42 days reuse one compiled function. It is the
only place a protocol becomes a schedule: one patient (:func:`raisim.simulate`)
and a million (:func:`raisim.engine.batch.run_cohort`) go through it alike.

Per-patient randomness (:class:`Draws`) is drawn on the host from the cohort's
streams: missed doses, readout noise, the grade ≥ 3 AE and the decision to
stop. Toxicity is drawn before the solve: a patient who discontinues has each
course cut at the AE day (no later doses, scans or RAI; :func:`cut_schedule`).

Units: time h, activity GBq/MBq as named, dose Gy, diameters mm, Tg ng/mL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ..biology.iodine import IodineChannels
from ..biology.toxicity import NO_DAY
from ..biology.tsh import TSHForcing, stimulation_events
from ..core.model import PatientModel, Schedule
from ..io.cards import card_values
from ..io.vocab import policy_code, readout_code
from ..protocol.schedule import (
    FAR_FUTURE_H,
    administration_days,
    assessment_times_h,
    build_channels,
    build_doses,
    channel_arrays,
    day_to_h,
    enumerate_courses,
    grid_start_h,
    protocol_drugs,
)
from ..protocol.schema import MAX_IMAGING_POINTS, RAI, Protocol, Scan
from ..streams import patient_uniforms
from .cohort import Cohort

#: The output grid is solved padded to a multiple of this many points (its last time repeated),
#: so protocols of similar length share one compiled solve: a notebook that varies a scan day or
#: a duration pays the compilation once per bucket, not once per protocol.
GRID_PAD = 256


def padded_grid(grid: np.ndarray, size: int | None = None) -> np.ndarray:
    """``grid`` (h) with its last time repeated up to ``size`` points (a count; default: the next
    multiple of :data:`GRID_PAD`)."""
    size = -(-len(grid) // GRID_PAD) * GRID_PAD if size is None else size
    return np.concatenate([grid, np.full(size - len(grid), grid[-1])])


def grid_index(ts: np.ndarray, t_h: float) -> int:
    """Index of time ``t_h`` (h) on an output grid; it must be a grid point (within 1e-6 h).

    **Raises:**

    - `ValueError`: ``t_h`` is not on the grid.
    """
    i = int(np.argmin(np.abs(ts - t_h)))
    if abs(ts[i] - t_h) > 1e-6:
        raise ValueError(f"time {t_h} h is not on the output grid")
    return i


def time_grid(p: Protocol, courses, t_start_h: float) -> np.ndarray:
    """Shared output grid, h: fine (``solver.output_step_h``) through the active phase, daily after,
    with every imaging, retention and assessment time on it exactly; starts at ``t_start_h`` (h)."""
    step = p.solver.output_step_h
    t_end = day_to_h(p.followup_end_day())
    key = [0.0, t_end]
    active_end = 0.0
    for c in courses:
        active_end = max(active_end, day_to_h(c.tki_last_day + 1) + 30 * 24.0)
        for s in c.scans:
            t = day_to_h(s.day)
            key += [t, t + s.delay_h, t + 48.0, *(t + h for h in s.dosimetry_times_h)]
            active_end = max(active_end, t + 21 * 24.0)
        if c.rai_day is not None:
            t = day_to_h(c.rai_day)
            key += [t, t + 48.0, t + p.rai.post_therapy_imaging_delay_h]
            active_end = max(active_end, t + 60 * 24.0)
        key += assessment_times_h(p, c)
    active_end = min(active_end, t_end)
    fine = np.arange(t_start_h, active_end, step)
    coarse = np.arange(active_end, t_end, 24.0)
    grid = np.unique(np.round(np.concatenate([fine, coarse, key, [t_start_h]]), 9))
    return grid[(grid >= t_start_h) & (grid <= t_end)]


class CourseSpec(eqx.Module):
    """One course of a cell as arrays (unbatched; the engine cuts it per patient).

    Units follow the names: ``*_h`` h (t = 0 at the first TKI dose), ``dose_mg`` mg, ``*_day`` study
    days (:data:`NO_DAY` = never), ``days_on_drug`` days, ``channel_decay`` 1/h, ``channel_renal``
    and ``channel_uptake`` folds, ``scan_tracer_mbq`` MBq; the integer fields without a unit are
    channel, scan-position or grid indices.
    """

    dose_times_h: Float[Array, "d n"]
    dose_mg: Float[Array, "d n"]
    dose_day: Int[Array, "d n"]
    days_on_drug: Float[Array, " d"]
    channel_time_h: Float[Array, " c"]
    channel_day: Int[Array, " c"]
    channel_decay: Float[Array, " c"]
    channel_renal: Float[Array, " c"]
    channel_uptake: Float[Array, " c"]
    tsh_inj_h: Float[Array, " m"]
    tsh_inj_day: Int[Array, " m"]
    tsh_wd_start_h: Float[Array, " w"]
    tsh_wd_end_h: Float[Array, " w"]
    tsh_wd_day: Int[Array, " w"]
    scan_day: Int[Array, " s"]
    scan_tracer: Int[Array, " s"]  # channel of the scan's tracer
    scan_projection: Int[Array, " s"]  # channel of its I-131 projection
    scan_img: Int[Array, " s"]  # grid index of imaging
    scan_delay_h: Float[Array, " s"]
    scan_fit_img: Int[Array, "s q"]  # grid indices of the dosimetry images (i124_dosimetry)
    scan_fit_time_h: Float[Array, "s q"]  # their times after the tracer
    scan_fit_valid: Bool[Array, "s q"]  # images taken (at least two for a retention fit)
    scan_tracer_mbq: Float[Array, " s"]
    scan_baseline: Int[Array, " s"]  # position (in this course) of the baseline scan, or -1
    rai_day: Int[Array, ""]  # NO_DAY without RAI
    therapy: Int[Array, ""]  # channel of the therapy (or 0 when none)
    therapy_img: Int[Array, ""]  # grid index of the post-therapy scan (or 0 when no RAI)
    proj_scan: Int[Array, ""]  # position of the projection scan behind the therapy, or -1
    proj_i48: Int[Array, ""]  # grid index 48 h after that scan's tracer
    anchor: Int[Array, ""]  # grid index of the follow-up anchor (RAI, else t = 0)
    assess: Int[Array, " a"]  # grid indices of the follow-up assessments
    cond_scan: Int[Array, " k"]  # scans (positions) whose readouts decide the course
    cond_ok: Bool[Array, " k"]
    cond_valid: Bool[Array, " k"]


class CellPlan(eqx.Module):
    """A protocol ready for the batched engine: courses as arrays on a shared grid.

    ``grid_h``: the output grid, h; ``i0``: grid index of t = 0 h; ``months``: assessment times,
    months after the anchor; ``rai_numbers``: the RAI policy's numbers (:class:`RAINumbers`).

    Every choice of the protocol is data here, none is static: the readout of each scan position
    and the activity policy are codes (:func:`raisim.io.vocab.readout_code`,
    :func:`~raisim.io.vocab.policy_code`; -1 for none) that the kernel selects by, so cells
    and trial arms that differ only in these share one compiled program (issue 38).
    """

    grid_h: Float[Array, " t"]
    i0: Int[Array, ""]
    courses: tuple[CourseSpec, ...]
    readout_scan: Int[Array, ""]  # position of the scan behind "readout success"
    readout_code: Int[Array, " s"]  # readout per scan position (all courses share them), -1: none
    policy_code: Int[Array, ""]  # activity policy, -1: no RAI
    forced_course: Int[Array, ""]  # the course every patient follows whatever the readouts, -1: the drawn one
    months: Float[Array, " a"]
    rai_numbers: RAINumbers
    missed_dose_probability: Float[Array, ""]


#: Every plan has at least this many drug slots (inert padding drugs fill the rest), so that
#: protocols of one and of two drugs share one compiled program (issue 38).
MIN_DRUG_SLOTS = 2


@dataclass(frozen=True)
class Padding:
    """Shapes shared by every cell of a sweep (array sizes: counts of grid points, dose slots, ...;
    ``drugs``: drug slots, at least :data:`MIN_DRUG_SLOTS`)."""

    grid: int
    doses: int
    channels: int
    scans: int
    conditions: int
    courses: int
    drugs: int


def cell_shapes(p: Protocol) -> Padding:
    """The unpadded shapes of one protocol (combine cells with :func:`merge_padding`)."""
    courses = enumerate_courses(p)
    grid = _grid(p, courses)
    return Padding(
        grid=len(grid),
        doses=max(build_doses(p, c).times_h.shape[1] for c in courses),
        channels=max(max(len(build_channels(p, c)) for c in courses), 1),  # one never-given channel
        scans=max(max(len(c.scans) for c in courses), 1),  # one padding position without scans
        conditions=max(max((len(c.conditions) for c in courses), default=0), 1),
        courses=len(courses),
        drugs=max(len(protocol_drugs(p)), MIN_DRUG_SLOTS),
    )


def merge_padding(shapes: list[Padding]) -> Padding:
    """The smallest padding that fits every one of ``shapes`` (elementwise maximum of the counts)."""
    return Padding(*(max(getattr(s, f) for s in shapes) for f in Padding.__dataclass_fields__))


def patient_padding(p: Protocol) -> Padding:
    """The padding of one protocol run alone (``raisim simulate``): its own shapes, the grid rounded up
    to a multiple of :data:`GRID_PAD` so that protocols of similar length share one compiled kernel."""
    s = cell_shapes(p)
    return Padding(**{**s.__dict__, "grid": -(-s.grid // GRID_PAD) * GRID_PAD})


class RAINumbers(eqx.Module):
    """The RAI section's numbers as the activity rules read them (:func:`raisim.engine.outcomes.rai_activity`).

    ``fixed_gbq``: the fixed activity, GBq; ``target_dose_gy``: the lesion dose
    ``dosimetry_max_11.1`` aims at, Gy; ``max_gbq``: the most it gives, GBq; ``cap_gbq``: the
    cap of ``dosimetry_guided``, GBq (inf: none); ``blood_limit_gy``: its blood limit, Gy;
    ``retention_48h_limit_gbq``: the activity whose 48-h whole-body retention is at the limit,
    GBq (the lung limit with diffuse lung metastases). All zero without RAI.
    """

    fixed_gbq: Float[Array, ""]
    target_dose_gy: Float[Array, ""]
    max_gbq: Float[Array, ""]
    cap_gbq: Float[Array, ""]
    blood_limit_gy: Float[Array, ""]
    retention_48h_limit_gbq: Float[Array, ""]


def rai_numbers(rai: RAI | None, diffuse_lung_metastases: bool = False) -> RAINumbers:
    """The :class:`RAINumbers` of an RAI section (float64; all zero for ``None``)."""
    f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
    if rai is None:
        return RAINumbers(*(f(0.0) for _ in range(6)))
    return RAINumbers(
        fixed_gbq=f(rai.activity_gbq or 0.0),
        target_dose_gy=f(rai.target_dose_gy),
        max_gbq=f(rai.max_gbq),
        cap_gbq=f(rai.cap_gbq if rai.cap_gbq is not None else math.inf),
        blood_limit_gy=f(rai.blood_limit_gy),
        retention_48h_limit_gbq=f(
            rai.lung_retention_48h_limit_gbq if diffuse_lung_metastases else rai.retention_48h_limit_gbq
        ),
    )


def scan_positions(p: Protocol) -> tuple[Scan, ...]:
    """The scans of the protocol's longest course, in order: the engine's scan positions.

    Every course lists its scans in this order (branches append re-scans), so a
    position means the same scan in every course.
    """
    return max(enumerate_courses(p), key=lambda c: len(c.scans)).scans


def readout_scan_name(p: Protocol) -> str | None:
    """The scan behind "readout success": the one RAI requires, else the first scan with a readout."""
    if p.rai is not None and p.rai.require:
        return p.rai.require
    return next((s.name for s in p.scans if s.readout), None)


def _grid(p: Protocol, courses) -> np.ndarray:
    return time_grid(p, courses, grid_start_h(p, courses))


def plan_cell(p: Protocol, pad: Padding | None = None, course: int | None = None) -> CellPlan:
    """Arrays of every course of ``p`` (its genotype's regimen) on the cell's grid, padded to ``pad``;
    ``course``: the index of the course every patient follows whatever the readouts (None: the
    drawn one).

    **Raises:**

    - `ValueError`: ``pad`` is smaller than the cell, or ``course`` is not one of its courses.
    """
    pad = pad or cell_shapes(p)
    courses = enumerate_courses(p)
    grid = _grid(p, courses)
    if len(grid) > pad.grid or len(courses) > pad.courses or len(protocol_drugs(p)) > pad.drugs:
        raise ValueError("padding smaller than the cell")
    if course is not None and not 0 <= course < len(courses):
        raise ValueError(f"course {course}: the protocol has courses 0..{len(courses) - 1}")
    grid_pad = padded_grid(grid, pad.grid)
    idx = lambda t: grid_index(grid, t)  # noqa: E731
    specs = []
    for c in courses:
        doses = build_doses(p, c, pad_to=pad.doses)
        dose_times_h = _drug_rows(doses.times_h, pad.drugs, FAR_FUTURE_H)  # padding drugs: never given
        dose_mg = _drug_rows(doses.amounts_mg, pad.drugs, 0.0)
        chans = build_channels(p, c, pad.channels)
        t, decay, renal, uptake = channel_arrays(chans, p.tsh.method == "withdrawal", _withdrawal_factor())
        ch_day = np.asarray([_day_of(ch.time_h) for ch in chans])
        tsh = stimulation_events(p.tsh.method, administration_days(p, c), p.tsh.injection_days_before, pad.channels)
        scan_pos = {s.name: i for i, s in enumerate(c.scans)}
        sp = lambda vals, fill, dtype: _pad(vals, pad.scans, fill, dtype)  # noqa: E731
        tracer = [_channel(chans, "tracer", s.name) for s in c.scans]
        proj = [_channel(chans, "projection", s.name) for s in c.scans]
        before_rai = [i for i, s in enumerate(c.scans) if c.rai_day is not None and s.day <= c.rai_day]
        ps = before_rai[-1] if before_rai else -1
        conds = [(scan_pos[n], ok) for n, ok in c.conditions]
        specs.append(
            CourseSpec(
                dose_times_h=jnp.asarray(dose_times_h),
                dose_mg=jnp.asarray(dose_mg),
                dose_day=jnp.asarray(np.floor(np.minimum(dose_times_h, 1e9) / 24.0).astype(int) + 1),
                days_on_drug=jnp.asarray(_pad(doses.days_on_drug, pad.drugs, 0.0, float)),
                channel_time_h=jnp.asarray(t),
                channel_day=jnp.asarray(ch_day),
                channel_decay=jnp.asarray(decay),
                channel_renal=jnp.asarray(renal),
                channel_uptake=jnp.asarray(uptake),
                tsh_inj_h=tsh.injection_h,
                tsh_inj_day=tsh.injection_day,
                tsh_wd_start_h=tsh.withdrawal_start_h,
                tsh_wd_end_h=tsh.withdrawal_end_h,
                tsh_wd_day=tsh.withdrawal_day,
                scan_day=jnp.asarray(sp([s.day for s in c.scans], NO_DAY, int)),
                scan_tracer=jnp.asarray(sp(tracer, 0, int)),
                scan_projection=jnp.asarray(sp(proj, 0, int)),
                scan_img=jnp.asarray(sp([idx(day_to_h(s.day) + s.delay_h) for s in c.scans], 0, int)),
                scan_delay_h=jnp.asarray(sp([s.delay_h for s in c.scans], 0.0, float)),
                **_fit_images(c.scans, pad.scans, idx),
                scan_tracer_mbq=jnp.asarray(sp([s.tracer_mbq for s in c.scans], 0.0, float)),
                scan_baseline=jnp.asarray(
                    sp([scan_pos.get(s.baseline, -1) if s.baseline else -1 for s in c.scans], -1, int)
                ),
                rai_day=jnp.asarray(c.rai_day if c.rai_day is not None else NO_DAY),
                therapy=jnp.asarray(_channel(chans, "therapy", None) if c.rai_day is not None else 0),
                therapy_img=jnp.asarray(
                    idx(day_to_h(c.rai_day) + p.rai.post_therapy_imaging_delay_h) if c.rai_day is not None else 0
                ),
                proj_scan=jnp.asarray(ps),
                proj_i48=jnp.asarray(idx(day_to_h(c.scans[ps].day) + 48.0) if ps >= 0 else 0),
                anchor=jnp.asarray(idx(day_to_h(c.rai_day) if c.rai_day is not None else 0.0)),
                assess=jnp.asarray([idx(t_) for t_ in assessment_times_h(p, c)]),
                cond_scan=jnp.asarray(_pad([i for i, _ in conds], pad.conditions, 0, int)),
                cond_ok=jnp.asarray(_pad([ok for _, ok in conds], pad.conditions, True, bool)),
                cond_valid=jnp.asarray(_pad([True] * len(conds), pad.conditions, False, bool)),
            )
        )
    while len(specs) < pad.courses:  # padding courses never match (no valid condition can hold)
        specs.append(_never(specs[0], pad))
    positions = [s.name for s in scan_positions(p)]
    readouts = [readout_code(p.scan(n).readout) for n in positions]
    decide = readout_scan_name(p)
    return CellPlan(
        grid_h=jnp.asarray(grid_pad),
        i0=jnp.asarray(idx(0.0)),
        courses=tuple(specs),
        readout_scan=jnp.asarray(positions.index(decide) if decide in positions else -1),
        readout_code=jnp.asarray(_pad(readouts, pad.scans, -1, int)),
        policy_code=jnp.asarray(policy_code(p.rai.policy if p.rai is not None else None)),
        forced_course=jnp.asarray(-1 if course is None else course),
        months=jnp.asarray(p.followup.months, dtype=jnp.float64),
        rai_numbers=rai_numbers(p.rai, p.patient.diffuse_lung_metastases),
        missed_dose_probability=jnp.asarray(p.treatment.missed_dose_probability, dtype=jnp.float64),
    )


def _fit_images(scans, n_scans: int, idx) -> dict[str, jnp.ndarray]:
    """The dosimetry images of each scan position, padded to (scans, :data:`MAX_IMAGING_POINTS`):
    grid indices, hours after the tracer, taken (a scan without a retention fit has none)."""
    img = np.zeros((n_scans, MAX_IMAGING_POINTS), int)
    t = np.ones((n_scans, MAX_IMAGING_POINTS))
    ok = np.zeros((n_scans, MAX_IMAGING_POINTS), bool)
    for j, s in enumerate(scans):
        for k, h in enumerate(s.dosimetry_times_h):
            img[j, k], t[j, k], ok[j, k] = idx(day_to_h(s.day) + h), h, True
    return {"scan_fit_img": jnp.asarray(img), "scan_fit_time_h": jnp.asarray(t), "scan_fit_valid": jnp.asarray(ok)}


def _drug_rows(x: np.ndarray, slots: int, fill: float) -> np.ndarray:
    """``x`` (drugs, n) with rows of ``fill`` appended up to ``slots`` rows (the padding drugs)."""
    x = np.asarray(x, dtype=float)
    return np.concatenate([x, np.full((slots - x.shape[0], x.shape[1]), fill)])


def _never(spec: CourseSpec, pad: Padding) -> CourseSpec:
    return eqx.tree_at(
        lambda s: (s.cond_scan, s.cond_ok, s.cond_valid),
        spec,
        (jnp.zeros(pad.conditions, int), jnp.zeros(pad.conditions, bool), jnp.ones(pad.conditions, bool)),
    )


def _withdrawal_factor() -> float:
    return float(card_values("biology/iodine.yaml")["withdrawal_renal_factor"])


def _day_of(t_h: float) -> int:
    return NO_DAY if t_h >= FAR_FUTURE_H / 2 else int(math.floor(t_h / 24.0)) + 1


def _channel(chans, kind, scan) -> int:
    return next(i for i, c in enumerate(chans) if c.kind == kind and c.scan == scan)


def _pad(vals, size, fill, dtype) -> np.ndarray:
    vals = list(vals)
    if len(vals) > size:
        raise ValueError("padding smaller than the cell")
    return np.asarray(vals + [fill] * (size - len(vals)), dtype=dtype)


# ---------------------------------------------------------------------------
# Per-patient draws (host) and the cut of a course at a discontinuation
# ---------------------------------------------------------------------------


class Draws(eqx.Module):
    """One patient's draws: uniforms on [0, 1) for readout noise per scan position, the AE timing and
    the decision to stop, and which dose slots of the plan the patient takes (missed doses)."""

    scan_u: Float[Array, "*patients s"]
    ae_u: Float[Array, "*patients"]
    stop_u: Float[Array, "*patients"]
    dose_taken: Bool[Array, "*patients d n"]


def cohort_draws(p: Protocol, cohort: Cohort, plan: CellPlan) -> Draws:
    """Per-patient draws of ``cohort`` through ``p``; each depends only on the cohort seed, the stream
    and the patient's number, never on the lane, batch, chunk or device count.

    Streams: ``scan:<name>`` (one per scan, so a scan has the same draw in every cell),
    ``toxicity`` (AE timing, stop), ``doses:<drug>`` (one uniform per dose slot of the plan; a
    dose is missed when it is below ``treatment.missed_dose_probability``). ``plan``: the cell's
    plan (:func:`plan_cell`), whose padded sizes the draws take (padding scan positions get 1,
    i.e. never succeed).
    """
    n = len(cohort)
    n_scans, n_dose_slots = plan.readout_code.shape[0], plan.courses[0].dose_times_h.shape[1]
    cols = [patient_uniforms(cohort.seed, f"scan:{s.name}", cohort.index, 1)[:, 0] for s in scan_positions(p)]
    cols += [np.ones(n)] * (n_scans - len(cols))
    tox = patient_uniforms(cohort.seed, "toxicity", cohort.index, 2)
    drugs = protocol_drugs(p)
    q = p.treatment.missed_dose_probability
    taken = np.ones((n, plan.courses[0].dose_times_h.shape[0], n_dose_slots), dtype=bool)  # padding drugs: all
    if q > 0:
        taken[:, : len(drugs)] = np.stack(
            [patient_uniforms(cohort.seed, f"doses:{d}", cohort.index, n_dose_slots) >= q for d in drugs], axis=1
        )
    return Draws(
        jnp.asarray(np.stack(cols, axis=1) if cols else np.ones((n, 0))),
        jnp.asarray(tox[:, 0]),
        jnp.asarray(tox[:, 1]),
        jnp.asarray(taken),
    )


def days_on_drug(dose_day: Int[Array, "d n"], given: Bool[Array, "d n"]) -> Float[Array, " d"]:
    """Days with at least one dose given, per drug (dose slots in time order; ``dose_day`` study days)."""
    seen = jax.lax.cummax(jnp.where(given, dose_day, 0), axis=1)
    before = jnp.concatenate([jnp.zeros_like(seen[:, :1]), seen[:, :-1]], axis=1)
    return jnp.sum(given & (dose_day > before), axis=1).astype(jnp.float64)


def nth_dose_day(dose_day: Int[Array, "d n"], given: Bool[Array, "d n"], n: Int[Array, ""]) -> Int[Array, ""]:
    """The study day of the ``n``-th day (1-based) on which any drug is given: the day a count of
    days on TKI reaches ``n`` (holds and wholly missed days skipped); :data:`NO_DAY` if fewer."""
    d = jnp.sort(jnp.where(given, dose_day, NO_DAY).ravel())
    first = (d < NO_DAY) & (d != jnp.concatenate([jnp.full((1,), -1, d.dtype), d[:-1]]))
    return jnp.min(jnp.where(first & (jnp.cumsum(first) == n), d, NO_DAY))


def doses_given(spec: CourseSpec, draws: Draws) -> Bool[Array, "d n"]:
    """The course's dose slots that the patient takes (real doses, not missed)."""
    return draws.dose_taken & (spec.dose_times_h < FAR_FUTURE_H / 2)


def cut_schedule(
    spec: CourseSpec,
    plan: CellPlan,
    model: PatientModel,
    last_day: Int[ArrayLike, ""],
    given: Bool[Array, "d n"] | None = None,
) -> Schedule:
    """The course's schedule with nothing after ``last_day`` (study day; doses, tracers, therapy, TSH)
    and only the dose slots ``given`` (default: all), each drug's doses sorted in time.

    Returns a :class:`raisim.core.model.Schedule` (times h, amounts mg).
    """
    keep_dose = spec.dose_day <= last_day
    if given is not None:
        keep_dose = keep_dose & given
    keep_ch = spec.channel_day <= last_day
    tsh = TSHForcing.from_events(
        jnp.where(spec.tsh_inj_day <= last_day, spec.tsh_inj_h, FAR_FUTURE_H),
        jnp.where(spec.tsh_wd_day <= last_day, spec.tsh_wd_start_h, FAR_FUTURE_H),
        jnp.where(spec.tsh_wd_day <= last_day, spec.tsh_wd_end_h, FAR_FUTURE_H + 1.0),
    )
    # the doses kept, compacted to the front of each drug's row in time order (the PK's dose table
    # needs sorted times with the padding at the end; a missed dose leaves a hole otherwise)
    times_h = jnp.where(keep_dose, spec.dose_times_h, FAR_FUTURE_H)
    order = jnp.argsort(times_h, axis=1, stable=True)
    return Schedule(
        dose_times_h=jnp.take_along_axis(times_h, order, axis=1),
        dose_mg=jnp.take_along_axis(jnp.where(keep_dose, spec.dose_mg, 0.0), order, axis=1),
        tsh=tsh,
        channels=IodineChannels(
            jnp.where(keep_ch, spec.channel_time_h, FAR_FUTURE_H),
            spec.channel_decay,
            spec.channel_renal,
            spec.channel_uptake,
        ),
    )
