"""Simulate one patient through a protocol: build the model, solve every course, follow the readouts.

``simulate(protocol, seed)`` is the single-patient entry point behind
``raisim simulate``. Every course of the protocol (see
:mod:`raisim.schedule`) is solved on one shared time grid with one compiled
shape; the scan readouts, drawn with the seed, decide which course the
patient follows; the outcome and the time course come from that course.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pandas as pd

from .dosimetry import Dosimetry
from .iodine import Iodine, IodineChannels
from .model import PatientModel, Schedule, Solution, solve
from .nis import NIS
from .outcomes import (
    CourseArrays,
    LesionOutcome,
    PatientOutcome,
    assessment_times_h,
    choose_activity,
    lesion_course,
    projected_gy_per_gbq,
    scan_readouts,
    wbs_visibility,
)
from .pathway import Pathway
from .pk import PK
from .protocol import Protocol
from .response import Response, sphere_diameter_mm
from .schedule import (
    Course,
    administration_days,
    build_channels,
    build_doses,
    channel_arrays,
    day_to_h,
    enumerate_courses,
    grid_start_h,
    protocol_drugs,
)
from .toxicity import Toxicity
from .tsh import TSHForcing


def build_model(p: Protocol, overrides: dict[str, dict] | None = None) -> PatientModel:
    """Typical-value model of the protocol's patient (parameter cards, optional overrides per block).

    ``overrides``: ``{block: {name: value}}`` in the cards' units (``pk``: ``{drug: {key: value}}``).
    """
    o = overrides or {}
    drugs = protocol_drugs(p)
    lesions = p.patient.lesions
    return PatientModel(
        pk=PK.from_cards(drugs, o.get("pk"), sex=p.patient.sex, weight_kg=p.patient.weight_kg),
        pathway=Pathway.from_cards(p.patient.genotype, drugs, o.get("pathway")),
        nis=NIS.from_cards([les.nis_capacity for les in lesions], o.get("nis")),
        iodine=Iodine.from_cards([les.mass for les in lesions], p.patient.weight_kg, o.get("iodine")),
        dosimetry=Dosimetry.from_cards(o.get("dosimetry")),
        response=Response.from_cards([les.radiosensitivity for les in lesions], o.get("response")),
        toxicity=Toxicity.from_cards(drugs, o.get("toxicity")),
    )


def build_schedule(p: Protocol, model: PatientModel, course, seed: int, n_channels: int, dose_pad: int):
    """Arrays of one course, padded to shared shapes (channels, doses, TSH events).

    ``n_channels`` and ``dose_pad`` are counts (padded sizes). Returns the :class:`Schedule`
    (dose times h, amounts mg, TSH mU/L, channel times h and decay 1/h), the dose schedule and
    the channels.
    """
    doses = build_doses(p, course, seed, pad_to=dose_pad)
    channels = build_channels(p, course, n_channels)
    times, decay, renal, uptake = channel_arrays(
        channels, p.tsh.method == "withdrawal", model.iodine.withdrawal_renal_factor
    )
    admin_h = [day_to_h(d) for d in administration_days(p, course)]
    tsh = TSHForcing.build(p.tsh.method, admin_h, p.tsh.injection_days_before, n_slots=n_channels)
    f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
    sched = Schedule(
        dose_times_h=f(doses.times_h),
        dose_mg=f(doses.amounts_mg),
        tsh=tsh,
        channels=IodineChannels(f(times), f(decay), f(renal), f(uptake)),
    )
    return sched, doses, channels


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
            key += [t, t + s.delay_h, t + 48.0]
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


@dataclass
class SimulationResult:
    """The outcome record, the long-format time course, and every solved course.

    Units as in :class:`raisim.outcomes.PatientOutcome` and :func:`timecourse_frame`.
    """

    outcome: PatientOutcome
    timecourse: pd.DataFrame
    course: CourseArrays
    all_courses: list[CourseArrays]
    model: PatientModel


def _draw(seed: int, names: list[str]) -> dict[str, float]:
    """One uniform per scan name, fixed by the seed (the measurement-noise draw)."""
    rng = np.random.default_rng([seed, 7919])
    u = rng.random(len(names))
    return dict(zip(names, u.tolist(), strict=True))


@dataclass
class Prepared:
    """Everything a protocol needs before solving: model, courses, padded schedules, shared grid (h)."""

    protocol: Protocol
    model: PatientModel
    courses: list
    schedules: list  # (Schedule, DoseSchedule, list[Channel]) per course
    grid: np.ndarray


def prepare(p: Protocol, seed: int = 0, overrides: dict[str, dict] | None = None) -> Prepared:
    """Build the model, every course's schedule (padded to one compiled shape) and the time grid."""
    model = build_model(p, overrides)
    courses = enumerate_courses(p)
    n_channels = max(1, *(len(build_channels(p, c)) for c in courses))
    dose_pad = max(build_doses(p, c, seed).times_h.shape[1] for c in courses)
    scheds = [build_schedule(p, model, c, seed, n_channels, dose_pad) for c in courses]
    return Prepared(p, model, courses, scheds, time_grid(p, courses, grid_start_h(p, courses)))


#: The output grid is solved padded to a multiple of this many points (its last time repeated),
#: so protocols of similar length share one compiled solve: a notebook that varies a scan day or
#: a duration pays the ~7-s compilation once per bucket, not once per protocol.
GRID_PAD = 256


def padded_grid(grid: np.ndarray, size: int | None = None) -> np.ndarray:
    """``grid`` (h) with its last time repeated up to ``size`` points (a count; default: the next
    multiple of :data:`GRID_PAD`)."""
    size = -(-len(grid) // GRID_PAD) * GRID_PAD if size is None else size
    return np.concatenate([grid, np.full(size - len(grid), grid[-1])])


def _solve_course(prep: Prepared, course: Course, sched_tuple) -> CourseArrays:
    p = prep.protocol
    sched, doses, channels = sched_tuple
    n = len(prep.grid)
    sol: Solution = solve(
        prep.model,
        sched,
        jnp.asarray(padded_grid(prep.grid)),
        rtol=p.solver.rtol,
        atol=p.solver.atol,
        max_steps=p.solver.max_steps,
        tail_delay_h=p.solver.tail_delay_h,
    )
    ys = {k: np.asarray(v)[:n] for k, v in _flatten(sol.ys).items()}  # the padding dropped
    return CourseArrays(course, channels, doses, prep.grid, _unflatten(ys), bool(sol.ok), int(sol.num_steps))


def discontinued_course(course: Course, last_tki_day: int) -> Course:
    """The rest of ``course`` skipped after a toxicity stop: TKI to ``last_tki_day`` (study day), no later scans/RAI."""
    rai = course.rai_day if course.rai_day is not None and course.rai_day <= last_tki_day else None
    return Course(
        conditions=(*course.conditions, ("discontinued_for_toxicity", True)),
        scans=tuple(s for s in course.scans if s.day <= last_tki_day),
        rai_day=rai,
        tki_last_day=last_tki_day,
    )


def _toxicity_draw(seed: int) -> tuple[float, float]:
    """Two uniforms for the grade ≥ 3 AE and the discontinuation decision, fixed by the seed."""
    u = np.random.default_rng([seed, 104729]).random(2)
    return float(u[0]), float(u[1])


def simulate(p: Protocol, seed: int = 0, overrides: dict[str, dict] | None = None) -> SimulationResult:
    """Simulate the protocol's patient with typical parameters; readouts and AEs drawn with ``seed``.

    Every course is solved; the scan draws pick the one the patient follows. A
    grade ≥ 3 AE drawn on that course that leads to discontinuation ends the TKI
    on the AE day and skips the rest of the protocol (later scans, RAI).
    ``overrides``: parameter-card values per block, card units (see :func:`build_model`).
    Units of the result: see :class:`raisim.outcomes.PatientOutcome` and :func:`timecourse_frame`.
    """
    prep = prepare(p, seed, overrides)
    model = prep.model
    solved = [_solve_course(prep, c, st) for c, st in zip(prep.courses, prep.schedules, strict=True)]
    draws = _draw(seed, [s.name for s in p.all_scans()])
    readouts_by_course = [scan_readouts(p, model, ca) for ca in solved]
    chosen = 0
    for i, ca in enumerate(solved):
        r = readouts_by_course[i]
        if all(
            (r[name].p_success is not None and draws[name] < r[name].p_success) == ok
            for name, ok in ca.course.conditions
        ):
            chosen = i
            break
    ca = solved[chosen]
    readouts = readouts_by_course[chosen]
    if not all(c.ok for c in solved):
        return _failed_result(p, model, ca, seed, solved)
    planned_days = ca.doses.days_on_drug
    event = model.toxicity.draw_event(planned_days, *_toxicity_draw(seed))
    if event["discontinued"]:
        ae_day = p.treatment.start_day + event["ae_day_on_tki"] - 1
        course = discontinued_course(ca.course, ae_day)
        n_channels = int(prep.schedules[0][0].channels.admin_time_h.shape[0])
        dose_pad = int(prep.schedules[0][0].dose_times_h.shape[1])
        ca = _solve_course(prep, course, build_schedule(p, model, course, seed, n_channels, dose_pad))
        solved.append(ca)
        readouts = scan_readouts(p, model, ca)
        if not ca.ok:
            return _failed_result(p, model, ca, seed, solved)
    for name, r in readouts.items():
        if r.p_success is not None:
            r.success = bool(draws[name] < r.p_success)
    outcome, lc = _outcome(p, model, ca, readouts, seed, solved)
    outcome.toxicity.update(
        p_grade3_ae=float(model.toxicity.p_grade3(jnp.asarray(planned_days))),
        p_discontinuation=float(model.toxicity.p_discontinuation(jnp.asarray(planned_days))),
        grade3_ae=event["grade3_ae"],
        ae_day=None if event["ae_day_on_tki"] is None else p.treatment.start_day + event["ae_day_on_tki"] - 1,
        discontinued=event["discontinued"],
    )
    tc = timecourse_frame(p, model, ca, lc, outcome.rai["activity_gbq"])
    return SimulationResult(outcome, tc, ca, solved, model)


def _solver_status(p: Protocol, solved: list[CourseArrays], followed: CourseArrays | None) -> dict:
    return {
        "ok": all(c.ok for c in solved),
        "failed_courses": [c.course.describe() for c in solved if not c.ok],
        "steps_followed_course": followed.num_steps if followed is not None else None,
        "rtol": p.solver.rtol,
        "atol": p.solver.atol,
        "max_steps": p.solver.max_steps,
        "tail_delay_h": p.solver.tail_delay_h,
    }


def _failed_result(p: Protocol, model: PatientModel, ca: CourseArrays, seed: int, solved) -> SimulationResult:
    """The result of a patient with a failed solve: the failure record and the raw time course, no RAI."""
    lc = lesion_course(p, model, ca, 0.0)
    return SimulationResult(
        _failed_outcome(p, seed, solved), timecourse_frame(p, model, ca, lc, 0.0), ca, solved, model
    )


def _failed_outcome(p: Protocol, seed: int, solved: list[CourseArrays]) -> PatientOutcome:
    """The record of a patient whose ODE solve failed: status only, no derived numbers.

    Readouts, doses and RECIST would be computed from an incomplete solution, so they
    are left empty (null in JSON) rather than reported as if they were results.
    """
    return PatientOutcome(
        protocol=p.name,
        genotype=p.patient.genotype,
        seed=seed,
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
        tg={},
        toxicity={},
        solver=_solver_status(p, solved, None),
    )


def _outcome(p, model, ca, readouts, seed, solved):
    rai = choose_activity(p, model, ca)
    activity = rai["activity_gbq"] if rai["treated"] else 0.0
    lc = lesion_course(p, model, ca, activity)
    if rai["treated"]:
        c = ca.channel("therapy")
        t_img = day_to_h(ca.course.rai_day) + p.rai.post_therapy_imaging_delay_h
        _, p_l = wbs_visibility(model, ca, ca.index(t_img), c, activity * 1000.0)
        rai["post_therapy_wbs_p_success"] = float(model.dosimetry.p_any(jnp.asarray(p_l)))
    assess = assessment_times_h(p, ca.course)
    i0 = ca.index(0.0)
    rec = model.response.recist(lc["diameter_mm"], i0, [ca.index(t) for t in assess])
    for m, r in zip(p.followup.months, rec, strict=True):
        r["month"] = m
    anchor = day_to_h(ca.course.rai_day) if ca.course.rai_day is not None else 0.0
    t_prog = model.response.progression_time_h(ca.ts, lc["diameter_mm"], ca.index(anchor))
    pf_months = None if t_prog is None else (t_prog - anchor) / 24.0 / (365.25 / 12.0)
    mass = np.asarray(model.iodine.lesion_mass_g)
    diam0 = np.asarray(sphere_diameter_mm(jnp.asarray(mass)))
    # projected from the scan behind the therapy, else from the course's last scan
    scan_for_proj = rai.get("projection_scan") or (ca.course.scans[-1].name if ca.course.scans else None)
    proj = projected_gy_per_gbq(model, ca, scan_for_proj) if scan_for_proj else np.full(len(mass), np.nan)
    lesions = []
    for l, les in enumerate(p.patient.lesions):
        lam = lc["decay_per_h"][l]
        lesions.append(
            LesionOutcome(
                name=les.name or f"lesion{l + 1}",
                site=les.site,
                mass_g=float(mass[l]),
                diameter_mm=float(diam0[l]),
                projected_gy_per_gbq=float(proj[l]),
                therapy_gy_per_gbq=float(lc["gy_per_gbq"][l]),
                absorbed_dose_gy=float(lc["total_gy"][l]),
                bed_gy=float(lc["bed_gy"][l]),
                effective_half_life_h=float(math.log(2.0) / lam) if np.isfinite(lam) and lam > 0 else None,
                volume_change_pct_at_followup_end=float(100.0 * (lc["volume_ml"][-1, l] / mass[l] - 1.0)),
                p_sterilised=float(lc["p_sterilised"][l]),
            )
        )
    i_end = len(ca.ts) - 1
    tg = {
        "baseline_ng_ml": p.patient.baseline_tg_ng_ml,
        "at_followup": [
            {
                "month": m,
                "ng_ml": float(lc["tg"][ca.index(t)]),
                "change_pct": 100.0 * (float(lc["tg"][ca.index(t)]) / p.patient.baseline_tg_ng_ml - 1.0)
                if p.patient.baseline_tg_ng_ml > 0
                else None,
            }
            for m, t in zip(p.followup.months, assess, strict=True)
        ],
        "peak_ng_ml": float(np.max(lc["tg"][: i_end + 1])),
        # weekly from day 1 to the end of follow-up
        "trajectory": [
            {"day": float(d), "ng_ml": float(np.interp(day_to_h(d), ca.ts, lc["tg"]))}
            for d in np.arange(1.0, ca.ts[-1] / 24.0 + 1.0, 7.0)
        ],
    }
    days = ca.doses.days_on_drug
    tox = {"days_on_drug": {d: float(x) for d, x in zip(ca.doses.drugs, days, strict=True)}}
    solver = _solver_status(p, solved, ca)
    return (
        PatientOutcome(
            protocol=p.name,
            genotype=p.patient.genotype,
            seed=seed,
            course=ca.course.describe(),
            scans=list(readouts.values()),
            rai=rai,
            lesions=lesions,
            recist=rec,
            progression_free_months=pf_months,
            tg=tg,
            toxicity=tox,
            solver=solver,
        ),
        lc,
    )


def timecourse_frame(p: Protocol, model: PatientModel, ca: CourseArrays, lc: dict, activity_gbq: float) -> pd.DataFrame:
    """Long-format time course: columns time_h (h), quantity, lesion, value.

    Each quantity's unit is in its name: ``conc_total_ng_ml`` ng/mL, ``conc_unbound_nM`` nM,
    ``blood_activity_mbq``/``lesion_activity_mbq`` MBq, ``lesion_dose_gy`` Gy, ``lesion_volume_ml``
    mL, ``tg_ng_ml`` ng/mL; ``erk_activity``, ``her3``, ``her_adaptive`` and ``membrane_nis`` are
    folds of untreated. ``activity_gbq``: the therapy activity, GBq.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        return _timecourse_frame(p, model, ca, lc, activity_gbq)


def _timecourse_frame(p, model, ca, lc, activity_gbq):
    ts = ca.ts
    names = [les.name or f"lesion{i + 1}" for i, les in enumerate(p.patient.lesions)]
    frames: list[pd.DataFrame] = []

    def add(quantity: str, values, lesion: str = ""):
        frames.append(
            pd.DataFrame({"time_h": ts, "quantity": quantity, "lesion": lesion, "value": np.asarray(values, float)})
        )

    ys = ca.ys
    pk_state = {k: jnp.asarray(v) for k, v in ys["pk"].items()}
    total = np.asarray(model.pk.total_ng_per_ml(pk_state))
    unbound = np.asarray(model.pk.unbound_nM(pk_state))
    for j, d in enumerate(ca.doses.drugs):
        add(f"conc_total_ng_ml:{d}", total[:, j])
        add(f"conc_unbound_nM:{d}", unbound[:, j])
    add("erk_activity", ys["pathway"]["erk"])
    add("her3", ys["pathway"]["her3"])
    add("her_adaptive", ys["pathway"]["adaptive"])
    memb = ys["nis"]["membrane"]
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
        add(f"blood_activity_mbq:{iso}", blood_frac * ys["iodine"]["ecf"] @ w)
        les = np.einsum("tcl,c->tl", ys["iodine"]["lesion"], w)
        for l, n in enumerate(names):
            add(f"lesion_activity_mbq:{iso}", les[:, l], n)
    for l, n in enumerate(names):
        add("lesion_dose_gy", lc["dose_t"][:, l], n)
        add("lesion_volume_ml", lc["volume_ml"][:, l], n)
    add("tg_ng_ml", lc["tg"])
    return pd.concat(frames, ignore_index=True)


def _flatten(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out


def _unflatten(flat):
    out: dict = {}
    for k, v in flat.items():
        parts = k.split("/")
        d = out
        for part in parts[:-1]:
            d = d.setdefault(part, {})
        d[parts[-1]] = v
    return out
