"""A protocol as arrays for the batched engine (:mod:`raisim.batch`).

A :class:`CellPlan` holds everything about one protocol (one grid cell) as
arrays — schedules per course, grid indices of imaging, retention and
assessment times, policy numbers — padded to shapes shared by every cell of
a sweep, so durations 7 to 42 days reuse one compiled function. Toxicity is
drawn before the solve: a patient who discontinues has each course cut at the
AE day (no later doses, scans or RAI), exactly as the single-patient engine
does after the fact (:func:`cut_schedule`).

Units: time h, activity GBq/MBq as named, dose Gy, diameters mm, Tg ng/mL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .cohort import Cohort, patient_uniforms
from .iodine import IodineChannels
from .model import PatientModel, Schedule
from .outcomes import assessment_times_h, grid_index
from .params import card_values
from .protocol import Protocol, Scan
from .schedule import (
    FAR_FUTURE_H,
    administration_days,
    build_channels,
    build_doses,
    channel_arrays,
    day_to_h,
    enumerate_courses,
    grid_start_h,
)
from .simulate import padded_grid, time_grid
from .tsh import TSHForcing

NO_DAY = 10**6  # "never": an AE day beyond any course


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
    scan_tracer_mbq: Float[Array, " s"]
    scan_baseline: Int[Array, " s"]  # position (in this course) of the baseline scan, or -1
    rai_day: Int[Array, ""]  # NO_DAY without RAI
    therapy: Int[Array, ""]  # channel of the therapy (or 0 when none)
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
    months after the anchor; ``rai_numbers``: RAI policy numbers in GBq and Gy (stunning factor a
    fold), see the field comment; ``start_day``: first study day on TKI.
    """

    grid_h: Float[Array, " t"]
    i0: Int[Array, ""]
    courses: tuple[CourseSpec, ...]
    readout_scan: Int[Array, ""]  # position of the scan behind "readout success"
    months: Float[Array, " a"]
    rai_numbers: Float[Array, " 8"]  # activity GBq, target Gy, max GBq, cap GBq, blood limit Gy,
    # 48-h retention limit GBq (the lung limit with diffuse lung metastases), unused, stunning factor
    tsh_method: str = eqx.field(static=True)
    readouts: tuple[str | None, ...] = eqx.field(static=True)  # per scan position (all courses share them)
    policy: str | None = eqx.field(static=True)
    drugs: tuple[str, ...] = eqx.field(static=True)
    start_day: int = eqx.field(static=True)


@dataclass(frozen=True)
class Padding:
    """Shapes shared by every cell of a sweep (array sizes: counts of grid points, dose slots, ...)."""

    grid: int
    doses: int
    channels: int
    scans: int
    conditions: int
    courses: int


def cell_shapes(p: Protocol) -> Padding:
    """The unpadded shapes of one protocol (combine cells with :func:`merge_padding`)."""
    courses = enumerate_courses(p)
    grid = _grid(p, courses)
    return Padding(
        grid=len(grid),
        doses=max(build_doses(_no_misses(p), c, 0).times_h.shape[1] for c in courses),
        channels=max(len(build_channels(p, c)) for c in courses),
        scans=max(len(c.scans) for c in courses),
        conditions=max(max((len(c.conditions) for c in courses), default=0), 1),
        courses=len(courses),
    )


def merge_padding(shapes: list[Padding]) -> Padding:
    """The smallest padding that fits every one of ``shapes`` (elementwise maximum of the counts)."""
    return Padding(*(max(getattr(s, f) for s in shapes) for f in Padding.__dataclass_fields__))


def _no_misses(p: Protocol) -> Protocol:
    if p.treatment.missed_dose_probability == 0:
        return p
    return p.model_copy(update={"treatment": p.treatment.model_copy(update={"missed_dose_probability": 0.0})})


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


def plan_cell(p: Protocol, pad: Padding | None = None) -> CellPlan:
    """Arrays of every course of ``p`` (its genotype's regimen) on the cell's grid, padded to ``pad``."""
    pad = pad or cell_shapes(p)
    courses = enumerate_courses(p)
    grid = _grid(p, courses)
    if len(grid) > pad.grid or len(courses) > pad.courses:
        raise ValueError("padding smaller than the cell")
    grid_pad = padded_grid(grid, pad.grid)
    idx = lambda t: grid_index(grid, t)  # noqa: E731
    specs = []
    q = _no_misses(p)
    wd_days = card_values("biology/tsh.yaml")["withdrawal_days_before"]
    for c in courses:
        doses = build_doses(q, c, 0, pad_to=pad.doses)
        chans = build_channels(p, c, pad.channels)
        t, decay, renal, uptake = channel_arrays(chans, p.tsh.method == "withdrawal", _withdrawal_factor())
        ch_day = np.asarray([_day_of(ch.time_h) for ch in chans])
        admin = administration_days(p, c)
        inj, inj_day, ws, we, wday = [], [], [], [], []
        for d in admin:
            if p.tsh.method == "rhTSH":
                inj += [day_to_h(d) - 24.0 * b for b in p.tsh.injection_days_before]
                inj_day += [d] * len(p.tsh.injection_days_before)
            elif p.tsh.method == "withdrawal":
                ws.append(day_to_h(d) - 24.0 * wd_days)
                we.append(day_to_h(d) + 48.0)
                wday.append(d)
        n_inj = pad.channels * max(len(p.tsh.injection_days_before), 1)
        scan_pos = {s.name: i for i, s in enumerate(c.scans)}
        sp = lambda vals, fill, dtype: _pad(vals, pad.scans, fill, dtype)  # noqa: E731
        tracer = [_channel(chans, "tracer", s.name) for s in c.scans]
        proj = [_channel(chans, "projection", s.name) for s in c.scans]
        before_rai = [i for i, s in enumerate(c.scans) if c.rai_day is not None and s.day <= c.rai_day]
        ps = before_rai[-1] if before_rai else -1
        conds = [(scan_pos[n], ok) for n, ok in c.conditions]
        specs.append(
            CourseSpec(
                dose_times_h=jnp.asarray(doses.times_h),
                dose_mg=jnp.asarray(doses.amounts_mg),
                dose_day=jnp.asarray(np.floor(np.minimum(doses.times_h, 1e9) / 24.0).astype(int) + 1),
                days_on_drug=jnp.asarray(doses.days_on_drug),
                channel_time_h=jnp.asarray(t),
                channel_day=jnp.asarray(ch_day),
                channel_decay=jnp.asarray(decay),
                channel_renal=jnp.asarray(renal),
                channel_uptake=jnp.asarray(uptake),
                tsh_inj_h=jnp.asarray(_pad(inj, n_inj, FAR_FUTURE_H, float)),
                tsh_inj_day=jnp.asarray(_pad(inj_day, n_inj, NO_DAY, int)),
                tsh_wd_start_h=jnp.asarray(_pad(ws, pad.channels, FAR_FUTURE_H, float)),
                tsh_wd_end_h=jnp.asarray(_pad(we, pad.channels, FAR_FUTURE_H + 1.0, float)),
                tsh_wd_day=jnp.asarray(_pad(wday, pad.channels, NO_DAY, int)),
                scan_day=jnp.asarray(sp([s.day for s in c.scans], NO_DAY, int)),
                scan_tracer=jnp.asarray(sp(tracer, 0, int)),
                scan_projection=jnp.asarray(sp(proj, 0, int)),
                scan_img=jnp.asarray(sp([idx(day_to_h(s.day) + s.delay_h) for s in c.scans], 0, int)),
                scan_delay_h=jnp.asarray(sp([s.delay_h for s in c.scans], 0.0, float)),
                scan_tracer_mbq=jnp.asarray(sp([s.tracer_mbq for s in c.scans], 0.0, float)),
                scan_baseline=jnp.asarray(
                    sp([scan_pos.get(s.baseline, -1) if s.baseline else -1 for s in c.scans], -1, int)
                ),
                rai_day=jnp.asarray(c.rai_day if c.rai_day is not None else NO_DAY),
                therapy=jnp.asarray(_channel(chans, "therapy", None) if c.rai_day is not None else 0),
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
    readouts = tuple(p.scan(n).readout for n in positions) + (None,) * (pad.scans - len(positions))
    decide = readout_scan_name(p)
    r = p.rai
    rai_numbers = (
        [
            r.activity_gbq or 0.0,
            r.target_dose_gy,
            r.max_gbq,
            r.cap_gbq if r.cap_gbq is not None else math.inf,
            r.blood_limit_gy,
            r.lung_retention_48h_limit_gbq if p.patient.diffuse_lung_metastases else r.retention_48h_limit_gbq,
            0.0,
            r.stunning_factor,
        ]
        if r is not None
        else [0.0] * 8
    )
    return CellPlan(
        grid_h=jnp.asarray(grid_pad),
        i0=jnp.asarray(idx(0.0)),
        courses=tuple(specs),
        readout_scan=jnp.asarray(positions.index(decide) if decide in positions else -1),
        months=jnp.asarray(p.followup.months, dtype=jnp.float64),
        rai_numbers=jnp.asarray(rai_numbers, dtype=jnp.float64),
        tsh_method=p.tsh.method,
        readouts=readouts,
        policy=r.policy if r is not None else None,
        drugs=tuple(d.drug for d in p.treatment.regimen_for(p.patient.genotype)),
        start_day=p.treatment.start_day,
    )


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
    """Uniforms on [0, 1) of one patient: readout noise per scan position, AE timing, discontinuation."""

    scan_u: Float[Array, " s"]
    ae_u: Float[Array, ""]
    stop_u: Float[Array, ""]


def cohort_draws(p: Protocol, cohort: Cohort, n_scans: int) -> Draws:
    """Per-patient uniforms on [0, 1), one stream per scan name (the same draw for a scan in every cell).

    ``n_scans``: scan positions to fill (a count; padding positions get 1, i.e. never succeed).
    """
    cols = [patient_uniforms(cohort.seed, f"scan:{s.name}", cohort.index, 1)[:, 0] for s in scan_positions(p)]
    cols += [np.ones(len(cohort))] * (n_scans - len(cols))
    tox = patient_uniforms(cohort.seed, "toxicity", cohort.index, 2)
    return Draws(jnp.asarray(np.stack(cols, axis=1)), jnp.asarray(tox[:, 0]), jnp.asarray(tox[:, 1]))


def ae_day_on_tki(hazard: Float[Array, " d"], days: Float[Array, " d"], u: Float[Array, ""]) -> Array:
    """The n-th day on TKI of the grade ≥ 3 AE (1-based), or NO_DAY (see Toxicity.draw_event).

    ``hazard``: grade ≥ 3 hazard per drug, 1/day; ``days``: days on each drug; ``u``: a uniform on [0, 1).
    """
    target = -jnp.log(jnp.maximum(u, 1e-300))
    n = jnp.arange(1, 400)
    cum = jnp.sum(hazard[None, :] * jnp.minimum(n[:, None], days[None, :]), axis=1)
    hit = (cum >= target) & (n <= jnp.max(days))
    return jnp.where(jnp.any(hit), n[jnp.argmax(hit)], NO_DAY)


def cut_schedule(spec: CourseSpec, plan: CellPlan, model: PatientModel, last_day: Array) -> Schedule:
    """The course's schedule with nothing after ``last_day`` (study day; doses, tracers, therapy, TSH).

    Returns a :class:`raisim.model.Schedule` (times h, amounts mg).
    """
    keep_dose = spec.dose_day <= last_day
    keep_ch = spec.channel_day <= last_day
    tsh = TSHForcing.build(plan.tsh_method, [], [2, 1])
    tsh = eqx.tree_at(
        lambda t: (t.injection_times_h, t.withdrawal_start_h, t.withdrawal_end_h),
        tsh,
        (
            jnp.where(spec.tsh_inj_day <= last_day, spec.tsh_inj_h, FAR_FUTURE_H),
            jnp.where(spec.tsh_wd_day <= last_day, spec.tsh_wd_start_h, FAR_FUTURE_H),
            jnp.where(spec.tsh_wd_day <= last_day, spec.tsh_wd_end_h, FAR_FUTURE_H + 1.0),
        ),
    )
    return Schedule(
        dose_times_h=jnp.where(keep_dose, spec.dose_times_h, FAR_FUTURE_H),
        dose_mg=jnp.where(keep_dose, spec.dose_mg, 0.0),
        tsh=tsh,
        channels=IodineChannels(
            jnp.where(keep_ch, spec.channel_time_h, FAR_FUTURE_H),
            spec.channel_decay,
            spec.channel_renal,
            spec.channel_uptake,
        ),
    )
