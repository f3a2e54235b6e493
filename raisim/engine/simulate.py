"""One patient through a protocol: the engine at batch size one, its record and its time course.

``simulate(protocol, seed)`` is the entry point behind ``raisim simulate``. It
runs the one engine (:func:`raisim.engine.batch.run_cohort` with ``detail=True``) for
the protocol's own patient, numbered ``patient`` in the cohort of ``seed``, so
its numbers are the cohort row of that patient; then it writes what the engine
computed as a :class:`~raisim.engine.outcomes.PatientOutcome` and a long-format time
course. Nothing here decides an outcome: every rule lives in
:mod:`raisim.engine.outcomes` and :mod:`raisim.engine.batch`.

Parameters come from the shipped posterior by default (the draw nearest the
posterior median, :func:`raisim.io.parameter_draws.parameter_set`), as sweeps and
``predict`` use it; ``parameters="typical"`` gives the cards' values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import equinox as eqx
import jax
import numpy as np
import pandas as pd

from ..biology.response import sphere_diameter_mm
from ..biology.toxicity import NO_DAY
from ..core.model import PatientModel, Schedule
from ..core.state import PatientState
from ..io.parameter_draws import ParameterSet, merge_overrides, parameter_set
from ..protocol.schedule import (
    FAR_FUTURE_H,
    STOP_CONDITION,
    Channel,
    Course,
    DoseSchedule,
    build_channels,
    build_doses,
    day_to_h,
    enumerate_courses,
    grid_start_h,
    protocol_drugs,
)
from ..protocol.schema import Protocol
from ..runtime import require_x64
from .batch import protocol_solver, run_cohort, typical_model
from .cohort import cohort_from_patient, cohort_model
from .course import PatientRow
from .outcomes import GUIDED_LIMITS, METRIC_NAMES, RECIST_CODES, LesionOutcome, PatientOutcome, ScanReadout
from .plan import (
    Padding,
    cohort_draws,
    cut_schedule,
    doses_given,
    patient_padding,
    plan_cell,
    scan_positions,
    time_grid,
)


def build_model(p: Protocol, overrides: dict[str, dict] | None = None, drug_slots: int | None = None) -> PatientModel:
    """The model of the protocol's own patient (its lesions, sex, weight), built as the engine builds
    every patient: the typical model with the patient's covariates applied (unbatched).

    ``overrides``: ``{block: {name: value}}`` in the cards' units (``pk``: ``{drug: {key: value}}``);
    ``drug_slots``: drug slots (a count; default: the protocol's own padding), the drugs first.
    """
    o = overrides or {}
    typical = typical_model(p, len(p.patient.lesions), o)
    batched = cohort_model(typical, cohort_from_patient(p, 1), protocol_drugs(p), o.get("pk"))
    batched = batched.with_drug_slots(drug_slots or patient_padding(p).drugs)
    return jax.tree_util.tree_map(lambda x: x[0] if eqx.is_array(x) else x, batched)


@dataclass
class CourseArrays:
    """The followed course of one patient as numpy arrays, with its schedule.

    ``ts``: the output grid, h; ``ys``: the states on it (:class:`raisim.core.state.PatientState`,
    numpy arrays); ``doses``: the doses taken (missed doses and a
    discontinuation applied); ``num_steps``: solver steps of every course (a count).
    """

    course: Course
    channels: list[Channel]
    doses: DoseSchedule
    ts: np.ndarray
    ys: PatientState  # numpy leaves
    ok: bool
    num_steps: int


@dataclass
class SimulationResult:
    """The outcome record, the long-format time course, and the engine's record behind them.

    Units as in :class:`raisim.engine.outcomes.PatientOutcome` and :func:`timecourse_frame`;
    ``course_readouts``: P(success) of each scan on every course of the protocol (in the order of
    :func:`raisim.protocol.schedule.enumerate_courses`), whichever the patient followed; ``record``: the
    engine's detailed arrays of this patient (:func:`raisim.engine.batch.run_cohort`).
    """

    outcome: PatientOutcome
    timecourse: pd.DataFrame
    course: CourseArrays
    course_readouts: list[dict[str, float]]
    model: PatientModel
    parameters: ParameterSet
    record: PatientRow


@dataclass
class Prepared:
    """A protocol's patient before solving: model, plan, every course's schedule, the grid (h).

    ``schedules``: one :class:`raisim.core.model.Schedule` per course (the patient's missed doses
    applied, nothing cut); ``grid``: the output grid without its padding.
    """

    protocol: Protocol
    model: PatientModel
    courses: list[Course]
    schedules: list[Schedule]
    grid: np.ndarray
    padded_grid: np.ndarray


def prepare(
    p: Protocol,
    seed: int = 0,
    overrides: dict[str, dict] | None = None,
    *,
    patient: int = 0,
    pad: Padding | None = None,
) -> Prepared:
    """The model and every course's schedule of the protocol's patient, from the engine's plan.

    ``overrides``: card values (see :func:`build_model`); ``patient``: the patient's number in the
    cohort of ``seed`` (its missed doses); ``pad``: the plan's shapes (default
    :func:`raisim.engine.plan.patient_padding`).
    """
    courses = enumerate_courses(p)
    pad = pad or patient_padding(p)
    plan = plan_cell(p, pad)
    model = build_model(p, overrides, pad.drugs)
    cohort = cohort_from_patient(p, 1, seed, first=patient)
    draws = cohort_draws(p, cohort, plan)
    draws = jax.tree_util.tree_map(lambda x: x[0], draws)
    scheds = [
        cut_schedule(spec, plan, model, NO_DAY, doses_given(spec, draws)) for spec in plan.courses[: len(courses)]
    ]
    grid = time_grid(p, courses, grid_start_h(p, courses))
    return Prepared(p, model, courses, scheds, grid, np.asarray(plan.grid_h))


def build_schedule(
    p: Protocol, course: Course, *, n_channels: int | None = None, dose_pad: int | None = None
) -> tuple[Schedule, DoseSchedule, list[Channel]]:
    """One course's schedule from the engine's plan, with ``n_channels`` administration channels and
    ``dose_pad`` dose slots per drug (counts; default: the protocol's own), no missed doses.

    Returns the :class:`raisim.core.model.Schedule` (times h, amounts mg), the doses and the channels.
    """
    base = patient_padding(p)
    pad = Padding(**{**base.__dict__, "channels": n_channels or base.channels, "doses": dose_pad or base.doses})
    plan = plan_cell(p, pad)
    k = enumerate_courses(p).index(course)
    spec = plan.courses[k]
    sched = cut_schedule(spec, plan, build_model(p), NO_DAY)
    return (
        sched,
        build_doses(p, course, pad_to=pad.doses),
        build_channels(p, course, pad.channels),
    )


def _doses(p: Protocol, times_h: np.ndarray, mg: np.ndarray, days: np.ndarray) -> DoseSchedule:
    """The doses of the engine's cut schedule (each drug's doses first, in time order; slots at the
    far future are not given), with the engine's days on each drug."""
    drugs = protocol_drugs(p)
    times_h, mg, days = times_h[: len(drugs)], mg[: len(drugs)], np.asarray(days, float)[: len(drugs)]  # no padding
    return DoseSchedule(drugs, times_h, mg, days, (times_h < FAR_FUTURE_H / 2).sum(axis=1))


def discontinued_course(course: Course, last_tki_day: int) -> Course:
    """The rest of ``course`` skipped after a toxicity stop: TKI to ``last_tki_day`` (study day), no
    later scans/RAI; only the conditions on scans still done are kept (the others were not met
    by a readout but by the stop)."""
    rai = course.rai_day if course.rai_day is not None and course.rai_day <= last_tki_day else None
    scans = tuple(s for s in course.scans if s.day <= last_tki_day)
    done = {s.name for s in scans}
    return Course(
        conditions=(*((n, ok) for n, ok in course.conditions if n in done), (STOP_CONDITION, True)),
        scans=scans,
        rai_day=rai,
        tki_last_day=last_tki_day,
    )


def simulate(
    p: Protocol,
    seed: int = 0,
    overrides: dict[str, dict] | None = None,
    *,
    parameters: str | int = "posterior",
    patient: int = 0,
    micro_batch: int = 1,
) -> SimulationResult:
    """Simulate the protocol's patient: readouts, activity, doses, response, Tg and toxicity.

    **Arguments:**

    - `p`: the protocol, with its patient.
    - `seed`: the cohort seed; with ``patient``, it fixes every draw (missed doses, readout noise,
      the grade ≥ 3 AE and the decision to stop), as for that patient of a cohort.
    - `overrides`: parameter-card values per block, card units (see :func:`build_model`), applied
      on top of ``parameters``.
    - `parameters`: ``"posterior"`` (the shipped posterior's draw nearest its median; the
      default, as sweeps and predict), ``"typical"`` (the cards' values), or a draw number
      of the shipped posterior.
    - `patient`: the patient's number in the cohort (its identity for the random streams).
    - `micro_batch`: patients solved in lockstep (1: the kernel of one patient; a cohort run's
      16 gives its rows bit for bit).

    **Returns:**

    The :class:`SimulationResult`; units in :class:`raisim.engine.outcomes.PatientOutcome` and
    :func:`timecourse_frame`.

    **Raises:**

    - `InputError`: an unknown parameter set or draw number.
    """
    require_x64("raisim.simulate")
    params = parameter_set(parameters)
    ov = merge_overrides(params.overrides, overrides)
    pad = patient_padding(p)
    cohort = cohort_from_patient(p, 1, seed, first=patient)
    out = run_cohort(
        p, cohort, overrides=ov, pad=pad, solver=protocol_solver(p, micro_batch=micro_batch), devices=1, detail=True
    )
    rec = jax.tree_util.tree_map(lambda x: x[0], out)
    model = build_model(p, ov)
    courses = enumerate_courses(p)
    positions = [s.name for s in scan_positions(p)]
    grid = time_grid(p, courses, grid_start_h(p, courses))
    n = len(grid)
    k = int(rec.course)
    planned = courses[k]
    course = discontinued_course(planned, int(rec.detail.last_day)) if bool(rec.summary.discontinued) else planned
    channels = build_channels(p, planned, pad.channels)
    ys = jax.tree_util.tree_map(lambda x: np.asarray(x)[:n], rec.detail.ys)
    doses = _doses(p, rec.detail.dose_times_h, rec.detail.dose_mg, rec.detail.days_on_drug)
    ok = bool(rec.summary.ok)
    ca = CourseArrays(course, channels, doses, grid, ys, ok, int(rec.summary.steps))
    course_readouts = [
        {positions[j]: float(rec.course_p_scan[i, j]) for j in range(len(c.scans)) if c.scans[j].readout}
        for i, c in enumerate(courses)
    ]
    activity = float(rec.summary.activity_gbq)
    lc = {"dose_t": rec.detail.dose_t_gy[:n], "volume_ml": rec.detail.volume_ml[:n], "tg": rec.detail.tg_ng_ml[:n]}
    solver = {
        "ok": ok,
        "failed_courses": [c.describe() for c, good in zip(courses, rec.course_ok, strict=False) if not good],
        "steps": int(rec.summary.steps),
        "rtol": p.solver.rtol,
        "atol": p.solver.atol,
        "max_steps": p.solver.max_steps,
        "tail_delay_h": p.solver.tail_delay_h,
    }
    if ok:
        outcome = _outcome(p, seed, patient, rec, course, planned, grid, solver)
    else:
        outcome = _failed_outcome(p, seed, patient, solver)
        activity = 0.0
    tc = timecourse_frame(p, model, ca, lc, activity)
    return SimulationResult(outcome, tc, ca, course_readouts, model, params, rec)


def _failed_outcome(p: Protocol, seed: int, patient: int, solver: dict) -> PatientOutcome:
    """The record of a patient whose ODE solve failed: status only, no derived numbers.

    Readouts, doses and RECIST would be computed from an incomplete solution, so they
    are left empty (null in JSON) rather than reported as if they were results.
    """
    return PatientOutcome(
        protocol=p.name,
        genotype=p.patient.genotype,
        seed=seed,
        patient=patient,
        course="solver failure: no course could be followed",
        scans=[],
        rai={
            "treated": None,
            "day": None,
            "policy": p.rai.policy if p.rai else None,
            "activity_gbq": None,
            "reason": "solver failure",
        },
        lesions=[],
        recist=[],
        progression_free_months=None,
        pfs_event=None,
        tg={},
        toxicity={},
        solver=solver,
    )


def _rai_record(p: Protocol, rec: PatientRow, course: Course, planned: Course) -> dict:
    """The RAI decision as the engine made it, in words and numbers (GBq, Gy/GBq, fractions)."""
    r = p.rai
    if course.rai_day is None or r is None:
        return {
            "treated": False,
            "day": None,
            "policy": r.policy if r else None,
            "activity_gbq": 0.0,
            "reason": "not treated on this course",
        }
    info: dict = {"treated": bool(rec.summary.treated), "day": course.rai_day, "policy": r.policy}
    lung = any(les.site == "lung" for les in p.patient.lesions)
    before = [s for s in planned.scans if s.day <= course.rai_day]
    if before:
        info.update(
            projection_scan=before[-1].name,
            projected_blood_gy_per_gbq=float(rec.detail.projected_blood_gy_per_gbq),
            projected_retention_48h_fraction=float(rec.detail.projected_retention_48h_fraction),
            projected_best_lesion_gy_per_gbq=float(rec.detail.projected_best_lesion_gy_per_gbq),
        )
        if lung:
            info["projected_lung_gy_per_gbq"] = float(rec.detail.projected_lung_gy_per_gbq)
    limits = rec.detail.limits_gbq
    info["activity_gbq"] = float(rec.summary.activity_gbq)
    if r.policy == "fixed":
        info["reason"] = "fixed activity"
    elif r.policy == "dosimetry_max_11.1":
        info["reason"] = (
            f"{r.target_dose_gy:g} Gy to the best lesion"
            if bool(rec.detail.rai_allowed)
            else f"would need {float(limits[0]):.3g} GBq > {r.max_gbq:g} GBq"
        )
    else:
        names = list(GUIDED_LIMITS)
        if p.patient.diffuse_lung_metastases:
            names[1] = "lung_retention_48h"
        by_name = {nm: float(v) for nm, v in zip(names, limits, strict=True) if nm != "cap" or r.cap_gbq is not None}
        binding = min(by_name, key=by_name.get)
        info.update(limits_gbq=by_name, binding=binding, reason=f"limited by {binding}")
    if info["treated"]:
        info["post_therapy_wbs_p_success"] = float(rec.detail.post_therapy_wbs_p)
        if lung:
            info["lung_dose_gy"] = float(rec.summary.lung_dose_gy)
    return info


def _outcome(
    p: Protocol,
    seed: int,
    patient: int,
    rec: PatientRow,
    course: Course,
    planned: Course,
    grid: np.ndarray,
    solver: dict,
) -> PatientOutcome:
    """The record of a solved patient, read off the engine's arrays (nothing recomputed)."""
    L = len(p.patient.lesions)
    scans = []
    for j, s in enumerate(planned.scans):
        if not bool(rec.detail.scan_done[j]):
            continue
        has = s.readout is not None
        scans.append(
            ScanReadout(
                name=s.name,
                day=s.day,
                isotope=s.isotope,
                readout=s.readout,
                imaging_time_h=day_to_h(s.day) + s.delay_h,
                p_success=float(rec.summary.p_scan[j]) if has else None,
                success=bool(rec.summary.scan_success[j]) if has else None,
                lesion_metric=[float(x) for x in rec.detail.scan_metric[j][:L]] if has else [],
                metric_name=METRIC_NAMES.get(s.readout, ""),
                projected_gy_per_gbq=[float(x) for x in rec.detail.scan_projected_gy_per_gbq[j][:L]],
                true_gy_per_gbq=[float(x) for x in rec.detail.scan_true_gy_per_gbq[j][:L]],
                dosimetry_times_h=list(s.dosimetry_times_h),
            )
        )
    rai = _rai_record(p, rec, course, planned)
    # projected from the scan behind the therapy, else from the course's last scan
    proj_scan = rai.get("projection_scan") or (course.scans[-1].name if course.scans else None)
    j_proj = [s.name for s in planned.scans].index(proj_scan) if proj_scan else None
    mass = np.asarray([les.mass for les in p.patient.lesions])
    diam0 = np.asarray(sphere_diameter_mm(mass))
    n = len(grid)
    lesions = []
    for l, les in enumerate(p.patient.lesions):
        lam = float(rec.detail.lesion_decay_per_h[l])
        lesions.append(
            LesionOutcome(
                name=les.name or f"lesion{l + 1}",
                site=les.site,
                mass_g=float(mass[l]),
                diameter_mm=float(diam0[l]),
                projected_gy_per_gbq=float(rec.detail.scan_projected_gy_per_gbq[j_proj][l])
                if j_proj is not None
                else math.nan,
                therapy_gy_per_gbq=float(rec.detail.lesion_therapy_gy_per_gbq[l]),
                absorbed_dose_gy=float(rec.detail.lesion_gy[l]),
                bed_gy=float(rec.detail.lesion_bed_gy[l]),
                effective_half_life_h=math.log(2.0) / lam if math.isfinite(lam) and lam > 0 else None,
                volume_change_pct_at_followup_end=float(100.0 * (rec.detail.volume_ml[n - 1, l] / mass[l] - 1.0)),
                p_sterilised=float(rec.detail.lesion_p_sterilised[l]),
            )
        )
    months = list(p.followup.months)
    recist = [
        {
            "sum_diameters_mm": float(rec.detail.recist_sum_mm[a]),
            "change_from_baseline_pct": float(rec.summary.sum_change_pct[a]),
            "category": RECIST_CODES[int(rec.summary.recist[a])],
            "month": m,
        }
        for a, m in enumerate(months)
    ]
    pfs = float(rec.summary.pfs_months)
    tg_t = rec.detail.tg_ng_ml[:n]
    tg0 = p.patient.baseline_tg_ng_ml
    tg = {
        "baseline_ng_ml": tg0,
        "at_followup": [
            {
                "month": m,
                "ng_ml": float(rec.detail.tg_at_followup_ng_ml[a]),
                "change_pct": float(rec.summary.tg_change_pct[a]) if tg0 > 0 else None,
            }
            for a, m in enumerate(months)
        ],
        "peak_ng_ml": float(np.max(tg_t)),
        # weekly from day 1 to the end of follow-up
        "trajectory": [
            {"day": float(d), "ng_ml": float(np.interp(day_to_h(d), grid, tg_t))}
            for d in np.arange(1.0, grid[-1] / 24.0 + 1.0, 7.0)
        ],
    }
    drugs = protocol_drugs(p)
    grade3 = bool(rec.summary.grade3_ae)
    toxicity = {
        "days_on_drug": {d: float(x) for d, x in zip(drugs, rec.detail.days_on_drug[: len(drugs)], strict=True)},
        "p_grade3_ae": float(rec.summary.p_grade3_ae),
        "p_discontinuation": float(rec.summary.p_discontinuation),
        "grade3_ae": grade3,
        "ae_day": int(rec.summary.ae_day) if grade3 else None,
        "discontinued": bool(rec.summary.discontinued),
    }
    return PatientOutcome(
        protocol=p.name,
        genotype=p.patient.genotype,
        seed=seed,
        patient=patient,
        course=course.describe(),
        scans=scans,
        rai=rai,
        lesions=lesions,
        recist=recist,
        progression_free_months=pfs if math.isfinite(pfs) else None,
        pfs_event=bool(rec.summary.pfs_event) if math.isfinite(pfs) else None,
        tg=tg,
        toxicity=toxicity,
        solver=solver,
    )


def timecourse_frame(p: Protocol, model: PatientModel, ca: CourseArrays, lc: dict, activity_gbq: float) -> pd.DataFrame:
    """Long-format time course: columns time_h (h), quantity, lesion, value.

    Each quantity's unit is in its name: ``conc_total_ng_ml`` ng/mL, ``conc_unbound_nM`` nM,
    ``blood_activity_mbq``/``lesion_activity_mbq`` MBq, ``lesion_dose_gy`` Gy, ``lesion_volume_ml``
    mL, ``tg_ng_ml`` ng/mL; ``erk_activity``, ``her3``, ``her_adaptive`` and ``membrane_nis`` are
    folds of untreated. ``lc``: the engine's ``dose_t`` (Gy), ``volume_ml`` (mL) and ``tg`` (ng/mL)
    on the grid; ``activity_gbq``: the therapy activity, GBq.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        return _timecourse_frame(p, model, ca, lc, activity_gbq)


def _timecourse_frame(p, model, ca, lc, activity_gbq):
    import jax.numpy as jnp

    ts = ca.ts
    names = [les.name or f"lesion{i + 1}" for i, les in enumerate(p.patient.lesions)]
    frames: list[pd.DataFrame] = []

    def add(quantity: str, values, lesion: str = ""):
        frames.append(
            pd.DataFrame({"time_h": ts, "quantity": quantity, "lesion": lesion, "value": np.asarray(values, float)})
        )

    ys = ca.ys
    pk_state = jax.tree_util.tree_map(jnp.asarray, ys.pk)
    total = np.asarray(model.pk.total_ng_per_ml(pk_state))
    unbound = np.asarray(model.pk.unbound_nM(pk_state))
    for j, d in enumerate(ca.doses.drugs):
        add(f"conc_total_ng_ml:{d}", total[:, j])
        add(f"conc_unbound_nM:{d}", unbound[:, j])
    add("erk_activity", ys.pathway.erk)
    add("her3", ys.pathway.her3)
    add("her_adaptive", ys.pathway.adaptive)
    memb = ys.nis.membrane
    add("membrane_nis", memb.mean(axis=1))
    for l, n in enumerate(names):
        add("membrane_nis", memb[:, l], n)
    # actual administered activities per channel (MBq); projection channels are virtual
    scale = []
    for c in ca.channels:
        if c.kind == "tracer":
            scale.append(p.scan(c.scan).tracer_mbq)
        elif c.kind == "therapy":
            scale.append(activity_gbq * 1000.0)
        else:
            scale.append(0.0)
    scale = np.asarray(scale)
    blood_frac = float(model.iodine.blood_fraction_of_ecf)
    for iso in sorted({c.isotope for c in ca.channels if c.kind in ("tracer", "therapy")}):
        mask = np.asarray([c.isotope == iso and c.kind in ("tracer", "therapy") for c in ca.channels])
        w = scale * mask
        add(f"blood_activity_mbq:{iso}", blood_frac * ys.iodine.ecf @ w)
        les = np.einsum("tcl,c->tl", ys.iodine.lesion, w)
        for l, n in enumerate(names):
            add(f"lesion_activity_mbq:{iso}", les[:, l], n)
    for l, n in enumerate(names):
        add("lesion_dose_gy", lc["dose_t"][:, l], n)
        add("lesion_volume_ml", lc["volume_ml"][:, l], n)
    add("tg_ng_ml", lc["tg"])
    return pd.concat(frames, ignore_index=True)
