"""One patient, one course: the cut at a discontinuation, the outcome rules, the course followed.

Each function takes and returns typed records (``equinox.Module``), unbatched: the
engine (:mod:`raisim.engine.batch`) vmaps them over patients, the scipy reference
of the benchmarks applies them to its own solution.

- :func:`course_cut` → :class:`CourseCut`: the toxicity draws and the schedule the
  patient takes (missed doses dropped, cut at the AE day on a discontinuation);
- :func:`course_outcome` → :class:`CourseOutcome`: the solved course through the
  rules of :mod:`raisim.engine.outcomes` (:class:`CourseSummary`, the row of a
  cohort run, and :class:`CourseDetail`, what ``raisim simulate`` reports);
- :func:`follow_course`: the course the patient's drawn readouts follow.

Units: time h, activity GBq, dose Gy, diameters mm, Tg ng/mL, months of 365.25/12 days.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ..biology.response import sphere_diameter_mm
from ..biology.toxicity import NO_DAY
from ..core.model import PatientModel, Schedule, Solution
from ..core.state import PatientState
from ..io.vocab import isotope_decay_per_h
from .cohort import Cohort, lesion_sites
from .outcomes import (
    ScanContext,
    background_per_g,
    effective_decay_per_h,
    progression_months,
    rai_activity,
    recist,
    scan_readout,
    wbs_visibility,
    whole_body,
)
from .plan import CellPlan, CourseSpec, Draws, cut_schedule, days_on_drug, doses_given, nth_dose_day

#: I-131's physical decay constant, 1/h (the therapy isotope of every dosimetry projection).
I131_DECAY_PER_H = isotope_decay_per_h("I-131")


class PatientInputs(eqx.Module):
    """Per-patient inputs of the outcome rules besides the model and the draws.

    ``lesion_mask``: lesion slots the patient has; ``baseline_tg_ng_ml``: ng/mL; ``lung_lesion``:
    slots at site ``lung`` (their cumulated activity gives the lung dose).
    """

    lesion_mask: Bool[Array, "*patients l"]
    baseline_tg_ng_ml: Float[Array, "*patients"]
    lung_lesion: Bool[Array, "*patients l"]


def patient_inputs(cohort: Cohort) -> PatientInputs:
    """The outcome rules' per-patient inputs of ``cohort`` (leading patient axis)."""
    return PatientInputs(
        lesion_mask=jnp.asarray(cohort.lesion_mask),
        baseline_tg_ng_ml=jnp.asarray(cohort.baseline_tg_ng_ml),
        lung_lesion=jnp.asarray(lesion_sites(cohort) == "lung"),
    )


class CourseCut(eqx.Module):
    """A course's toxicity draws and the schedule the patient takes.

    ``grade3``, ``discontinued``: the grade ≥ 3 AE and the stop it leads to; ``ae_day``,
    ``last_day``: study days of the AE and of the last TKI dose taken (:data:`NO_DAY` for none);
    ``planned_days``, ``days``: days on each drug planned and taken; ``schedule``: the
    :class:`raisim.core.model.Schedule` the solve uses (missed doses dropped, cut at ``last_day``).
    """

    grade3: Bool[Array, ""]
    discontinued: Bool[Array, ""]
    ae_day: Int[Array, ""]
    last_day: Int[Array, ""]
    planned_days: Float[Array, " d"]
    days: Float[Array, " d"]
    schedule: Schedule


class CourseSummary(eqx.Module):
    """The outcome columns of one course of one patient (a cohort run's row; units as named).

    ``p_scan``/``scan_success`` per scan position; ``recist`` (codes 0 CR … 3 PD),
    ``sum_change_pct`` and ``tg_change_pct`` (% of baseline) per follow-up assessment;
    ``pfs_months``: months after the anchor to progression (``pfs_event`` true) or to the end of
    follow-up (``pfs_event`` false: censored); ``ae_day``: study day (−1 if none);
    ``days_on_tki``: days the patient took a TKI; ``steps``: solver steps.
    """

    ok: Bool[Array, ""]
    steps: Int[Array, ""]
    p_scan: Float[Array, " s"]
    scan_success: Bool[Array, " s"]
    treated: Bool[Array, ""]
    activity_gbq: Float[Array, ""]
    best_projected_gy_per_gbq: Float[Array, ""]
    best_lesion_gy: Float[Array, ""]
    best_lesion_bed_gy: Float[Array, ""]
    lung_dose_gy: Float[Array, ""]
    recist: Int[Array, " a"]
    sum_change_pct: Float[Array, " a"]
    pfs_months: Float[Array, ""]
    pfs_event: Bool[Array, ""]
    tg_change_pct: Float[Array, " a"]
    grade3_ae: Bool[Array, ""]
    discontinued: Bool[Array, ""]
    ae_day: Int[Array, ""]
    p_grade3_ae: Float[Array, ""]
    p_discontinuation: Float[Array, ""]
    days_on_tki: Float[Array, ""]


class CourseDetail(eqx.Module):
    """The record behind a :class:`CourseSummary`: per scan position, per lesion, the time course.

    Per scan position ``s`` and lesion ``l``: ``scan_done``, ``scan_p_lesion``, ``scan_metric``
    (the readout's metric), ``scan_projected_gy_per_gbq`` (what the scan projects: the I-124 PET
    retention fit where it has dosimetry images, else the truth) and ``scan_true_gy_per_gbq`` (the
    truth: I-131 given with the tracer, over its whole future; Gy/GBq). The activity decision:
    ``rai_allowed``, ``projected_*`` (Gy/GBq, fraction), ``limits_gbq`` (GBq, the limits of
    :data:`raisim.engine.outcomes.GUIDED_LIMITS`). Per lesion: therapy dose and BED (Gy),
    effective decay (1/h), Gy/GBq, P(sterilised). On the grid ``t``: ``dose_t_gy`` (Gy),
    ``volume_ml`` (mL), ``tg_ng_ml`` (ng/mL) and ``ys``, the model state
    (:class:`raisim.core.state.PatientState`).
    """

    scan_done: Bool[Array, " s"]
    scan_p_lesion: Float[Array, "s l"]
    scan_metric: Float[Array, "s l"]
    scan_projected_gy_per_gbq: Float[Array, "s l"]
    scan_true_gy_per_gbq: Float[Array, "s l"]
    rai_allowed: Bool[Array, ""]
    projected_blood_gy_per_gbq: Float[Array, ""]
    projected_retention_48h_fraction: Float[Array, ""]
    projected_best_lesion_gy_per_gbq: Float[Array, ""]
    projected_lung_gy_per_gbq: Float[Array, ""]
    limits_gbq: Float[Array, " 3"]
    post_therapy_wbs_p: Float[Array, ""]
    lesion_gy: Float[Array, " l"]
    lesion_bed_gy: Float[Array, " l"]
    lesion_decay_per_h: Float[Array, " l"]
    lesion_therapy_gy_per_gbq: Float[Array, " l"]
    lesion_p_sterilised: Float[Array, " l"]
    recist_sum_mm: Float[Array, " a"]
    days_on_drug: Float[Array, " d"]
    last_day: Int[Array, ""]
    ae_day_raw: Int[Array, ""]
    dose_times_h: Float[Array, "d n"]
    dose_mg: Float[Array, "d n"]
    dose_t_gy: Float[Array, "t l"]
    volume_ml: Float[Array, "t l"]
    tg_ng_ml: Float[Array, " t"]
    tg_at_followup_ng_ml: Float[Array, " a"]
    ys: PatientState


class CourseOutcome(eqx.Module):
    """One solved course of one patient: its :class:`CourseSummary` and :class:`CourseDetail`."""

    summary: CourseSummary
    detail: CourseDetail


def fields(record: eqx.Module) -> dict:
    """A record's fields by name (shallow: nested records stay records)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


#: The outcome columns of a cohort run (:func:`raisim.engine.batch.run_cohort`): the fields of
#: :class:`CourseSummary`; ``detail=True`` adds those of :class:`CourseDetail`.
SUMMARY_KEYS = tuple(f.name for f in dataclasses.fields(CourseSummary))


def course_cut(plan: CellPlan, spec: CourseSpec, model: PatientModel, draws: Draws) -> CourseCut:
    """The course's toxicity draws and its schedule: the doses the patient takes (missed doses
    dropped), cut at the AE day if the patient discontinues.

    The AE is drawn on the days the patient takes the drugs over the planned course
    (:meth:`raisim.biology.toxicity.Toxicity.ae_day_on_tki`, any course length) and falls on the
    study day of its n-th day on TKI (:func:`raisim.engine.plan.nth_dose_day`: holds and missed
    days skipped). Returns a :class:`CourseCut`.
    """
    tox = model.toxicity
    given = doses_given(spec, draws)
    dtype = spec.days_on_drug.dtype
    planned = days_on_drug(spec.dose_day, given).astype(dtype)
    n_ae = tox.ae_day_on_tki(planned, draws.ae_u)
    grade3 = n_ae < NO_DAY
    disc = grade3 & (draws.stop_u < tox.discontinuation_probability)
    ae_day = jnp.where(grade3, nth_dose_day(spec.dose_day, given, n_ae), NO_DAY)
    last_day = jnp.where(disc, ae_day, NO_DAY)
    taken = given & (spec.dose_day <= last_day)
    return CourseCut(
        grade3=grade3,
        discontinued=disc,
        ae_day=ae_day,
        last_day=last_day,
        planned_days=planned,
        days=days_on_drug(spec.dose_day, taken).astype(dtype),
        schedule=cut_schedule(spec, plan, model, last_day, given),
    )


def course_outcome(
    plan: CellPlan,
    spec: CourseSpec,
    model: PatientModel,
    draws: Draws,
    inputs: PatientInputs,
    cut: CourseCut,
    sol: Solution,
) -> CourseOutcome:
    """One solved course of one patient through the outcome rules of :mod:`raisim.engine.outcomes`.

    **Arguments:**

    - `plan`, `spec`: the protocol and this course as arrays (:func:`raisim.engine.plan.plan_cell`).
    - `model`: the patient's model (unbatched).
    - `draws`: the patient's draws; `inputs`: its lesion mask, baseline Tg and lung lesions.
    - `cut`: :func:`course_cut` of this course; `sol`: its solution on ``plan.grid_h``.

    **Returns:**

    The course's :class:`CourseOutcome` (units as in its fields' docstrings).
    """
    tox, dos, rsp = model.toxicity, model.dosimetry, model.response
    mask, tg0 = inputs.lesion_mask, inputs.baseline_tg_ng_ml
    last_day = cut.last_day
    grid = plan.grid_h
    io = sol.ys.iodine
    mass = model.iodine.lesion_mass_g
    diam0 = sphere_diameter_mm(mass)
    s_val = dos.s_value_gy_per_mbq_h(mass)
    countable = mask & (diam0 >= dos.min_dosimetry_diameter_mm)
    t_ch, k_ch = spec.channel_time_h, spec.channel_decay

    def ratio_at(i, c, lesion):
        return (lesion / mass) / background_per_g(model, io, grid, t_ch[c], k_ch[c], i, c)

    # I-131 Gy/GBq per scan: the truth (an I-131 channel given with the tracer, integrated over its
    # whole future) and what the scan measures (the PET retention fit where it has images, else the truth)
    true_gy = io.cum_lesion[-1][spec.scan_projection, :] * s_val[None, :] * 1000.0  # (s, l)
    fit_lesion = io.lesion[spec.scan_fit_img, spec.scan_tracer[:, None], :]  # (s, m, l)
    pet_gy = jax.vmap(lambda t, a, ok, lam: dos.pet_projected_gy_per_gbq(t, a, ok, lam, I131_DECAY_PER_H, mass, diam0))(
        spec.scan_fit_time_h, fit_lesion, spec.scan_fit_valid, k_ch[spec.scan_tracer]
    )
    has_fit = jnp.sum(spec.scan_fit_valid, axis=1) >= 2
    projected = jnp.where(has_fit[:, None], pet_gy, true_gy)
    p_scan, success, done_all, p_lesion, metric = [], [], [], [], []
    for j in range(plan.readout_code.shape[0]):
        readout = plan.readout_code[j]
        done = (spec.scan_day[j] < NO_DAY) & (spec.scan_day[j] <= last_day)
        done_all.append(done)
        c, i = spec.scan_tracer[j], spec.scan_img[j]
        lesion = io.lesion[i, c, :]
        b = jnp.maximum(spec.scan_baseline[j], 0)
        cb, ib = spec.scan_tracer[b], spec.scan_img[b]
        base = io.lesion[ib, cb, :] * jnp.exp(k_ch[cb] * spec.scan_delay_h[b])
        seen = ScanContext(
            lesion=lesion,
            ratio=ratio_at(i, c, lesion),
            ecf_per_g=io.ecf[i, c] / (model.iodine.ecf_volume_l * 1000.0),
            correction=jnp.exp(k_ch[c] * spec.scan_delay_h[j]),
            baseline=jnp.where(mask, base, 1.0),
            projected_gy_per_gbq=projected[j],
            tracer_mbq=spec.scan_tracer_mbq[j],
            countable=countable,
        )
        p_l, m = scan_readout(readout, model, seen)
        p_l = jnp.where(mask, p_l, 0.0)
        has = readout >= 0  # a scan without a readout: P NaN, never a success
        p = jnp.where(has, jnp.where(done, dos.p_any(p_l), 0.0), jnp.nan)
        p_scan.append(p)
        success.append(has & done & (draws.scan_u[j] < p))
        p_lesion.append(p_l)
        metric.append(m)
    p_scan, success = jnp.stack(p_scan), jnp.stack(success)
    # the activity, from the projection behind the therapy (the last scan before RAI)
    has_proj = spec.proj_scan >= 0
    ps = jnp.maximum(spec.proj_scan, 0)
    cp = spec.scan_projection[ps]
    best = jnp.where(has_proj, jnp.max(jnp.where(countable, projected[ps], 0.0)), 0.0)
    blood = dos.blood_gy_per_gbq(
        io.cum_blood[-1, cp], io.cum_body[-1, cp], model.iodine.blood_volume_l * 1000.0, model.iodine.body_mass_kg
    )
    r48 = whole_body(model, io, grid, t_ch[cp], k_ch[cp], spec.proj_i48, cp)
    activity, allowed, limits = rai_activity(plan.policy_code, plan.rai_numbers, best, blood, r48)
    treated = (spec.rai_day < NO_DAY) & (spec.rai_day <= last_day) & allowed  # (never allowed without RAI)
    gbq = jnp.where(treated, activity, 0.0)
    # therapy dose, BED, volumes, RECIST, progression, Tg
    c = spec.therapy
    cum = io.cum_lesion[:, c, :]
    dose_t = gbq * 1000.0 * cum * s_val[None, :]
    total = dose_t[-1]
    frac = jnp.where(total > 0, dose_t / jnp.where(total > 0, total, 1.0), 0.0)
    lam = effective_decay_per_h(io.lesion[:, c, :], cum)
    given = treated & mask
    bed = jnp.where(given, rsp.bed_gy(total, lam), 0.0)
    total = jnp.where(given, total, 0.0)
    viable, dead = rsp.volumes_ml(grid, mass, sol.ys.cum_erk_inhibition_h, frac, bed)
    viable = viable * mask
    volume = viable + dead * mask
    diam = sphere_diameter_mm(volume)
    code, change, sums = recist(rsp, diam, plan.i0, spec.assess)
    tg = rsp.thyroglobulin_ng_ml(grid, viable, sol.ys.nis.organification, tg0)
    lung = inputs.lung_lesion & mask
    lung_s = dos.lung_s_value_gy_per_mbq_h() * 1000.0
    post = io.lesion[spec.therapy_img, c, :]
    post_p = wbs_visibility(
        dos, post * gbq * 1000.0, dos.tumour_to_background(ratio_at(spec.therapy_img, c, post), diam0)
    )
    pfs_months, pfs_event = progression_months(grid, diam, spec.anchor)
    summary = dict(
        ok=sol.ok,
        steps=sol.num_steps,
        p_scan=p_scan,
        scan_success=success,
        treated=treated,
        activity_gbq=gbq,
        best_projected_gy_per_gbq=best,
        best_lesion_gy=jnp.max(total),
        best_lesion_bed_gy=jnp.max(bed),
        lung_dose_gy=gbq * jnp.sum(jnp.where(lung, cum[-1], 0.0)) * lung_s,
        recist=code,
        sum_change_pct=change,
        pfs_months=pfs_months,
        pfs_event=pfs_event,
        tg_change_pct=100.0 * (tg[spec.assess] / jnp.maximum(tg0, 1e-12) - 1.0),
        grade3_ae=cut.grade3,
        discontinued=cut.discontinued,
        ae_day=jnp.where(cut.grade3, cut.ae_day, -1),
        p_grade3_ae=tox.p_grade3(cut.planned_days),
        p_discontinuation=tox.p_discontinuation(cut.planned_days),
        days_on_tki=jnp.max(cut.days),
    )
    detail = dict(
        scan_done=jnp.stack(done_all),
        scan_p_lesion=jnp.stack(p_lesion),
        scan_metric=jnp.stack(metric),
        scan_projected_gy_per_gbq=projected,
        scan_true_gy_per_gbq=true_gy,
        rai_allowed=allowed,
        projected_blood_gy_per_gbq=blood,
        projected_retention_48h_fraction=r48,
        projected_best_lesion_gy_per_gbq=jnp.max(jnp.where(mask, projected[ps], 0.0)),
        projected_lung_gy_per_gbq=jnp.sum(jnp.where(lung, io.cum_lesion[-1, cp, :], 0.0)) * lung_s,
        limits_gbq=limits,
        post_therapy_wbs_p=jnp.where(treated, dos.p_any(jnp.where(mask, post_p, 0.0)), jnp.nan),
        lesion_gy=total,
        lesion_bed_gy=bed,
        lesion_decay_per_h=jnp.where(given, lam, jnp.nan),
        lesion_therapy_gy_per_gbq=jnp.where(given, cum[-1] * s_val * 1000.0, jnp.nan),
        lesion_p_sterilised=jnp.where(given, rsp.sterilisation_probability(viable[spec.anchor], bed), 0.0),
        recist_sum_mm=sums,
        days_on_drug=cut.days,
        last_day=cut.last_day,
        ae_day_raw=cut.ae_day,
        dose_times_h=cut.schedule.dose_times_h,
        dose_mg=cut.schedule.dose_mg,
        dose_t_gy=dose_t * given[None, :],
        volume_ml=volume,
        tg_ng_ml=tg,
        tg_at_followup_ng_ml=tg[spec.assess],
        ys=sol.ys,
    )
    return CourseOutcome(CourseSummary(**summary), CourseDetail(**detail))


#: The fields of :class:`PatientRow` that are outcome columns besides its summary's.
_ROW_FIELDS = ("course", "readout_p", "readout_success")


class PatientRow(eqx.Module):
    """The outcome of one patient: the course it follows, as a cohort run's row.

    ``summary``: the followed course's :class:`CourseSummary`, with ``ok`` over every course
    of the protocol and ``steps`` summed over them; ``course``: the followed course's index
    (in the order of :func:`raisim.protocol.schedule.enumerate_courses`); ``readout_p`` and
    ``readout_success``: the scan behind "readout success" (NaN / False without one). With
    ``detail`` (:func:`raisim.simulate`): ``detail``, the followed course's
    :class:`CourseDetail`, ``course_p_scan`` (P(success) of every scan position on every
    course) and ``course_ok`` (each course solved); None otherwise. A cohort run's row has a
    leading patient axis on every array.
    """

    summary: CourseSummary
    course: Int[Array, ""]
    readout_p: Float[Array, ""]
    readout_success: Bool[Array, ""]
    detail: CourseDetail | None = None
    course_p_scan: Float[Array, "k s"] | None = None
    course_ok: Bool[Array, " k"] | None = None

    def columns(self) -> dict[str, ArrayLike]:
        """The row's outcome columns by name (:data:`ROW_COLUMNS`): the table a chunk writes."""
        return {**fields(self.summary), **{name: getattr(self, name) for name in _ROW_FIELDS}}


#: The outcome columns of a cohort run's row, in order: the :class:`CourseSummary` fields, then
#: ``course``, ``readout_p`` and ``readout_success`` (:meth:`PatientRow.columns`).
ROW_COLUMNS = (*SUMMARY_KEYS, *_ROW_FIELDS)


def follow_course(plan: CellPlan, recs: list[CourseOutcome], detail: bool = False) -> PatientRow:
    """The course the patient follows: the first whose conditions its drawn readouts meet (or the
    plan's ``forced_course`` when it is >= 0), as its :class:`PatientRow`.

    Without ``detail`` a failed solve's floating-point numbers are NaN (check ``summary.ok``);
    with it they are left as computed and the row carries the :class:`CourseDetail`.
    """
    match = []
    for spec, rec in zip(plan.courses, recs, strict=True):
        got = rec.summary.scan_success[spec.cond_scan]
        match.append(jnp.all(~spec.cond_valid | (got == spec.cond_ok)))
    match = jnp.stack(match)
    chosen = jnp.where(jnp.any(match), jnp.argmax(match), 0)
    chosen = jnp.where(plan.forced_course >= 0, plan.forced_course, chosen)
    kept = recs if detail else [r.summary for r in recs]
    pick = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs)[chosen], *kept)
    summary = pick.summary if detail else pick
    ok = jnp.stack([r.summary.ok for r in recs])
    summary = eqx.tree_at(
        lambda s: (s.ok, s.steps), summary, (jnp.all(ok), jnp.sum(jnp.stack([r.summary.steps for r in recs])))
    )
    has_readout = plan.readout_scan >= 0
    at = jnp.maximum(plan.readout_scan, 0)
    row = PatientRow(
        summary=summary,
        course=chosen,
        readout_p=jnp.where(has_readout, summary.p_scan[at], jnp.nan),
        readout_success=has_readout & summary.scan_success[at],
    )
    if detail:
        return eqx.tree_at(
            lambda r: (r.detail, r.course_p_scan, r.course_ok),
            row,
            (pick.detail, jnp.stack([r.summary.p_scan for r in recs]), ok),
            is_leaf=lambda x: x is None,
        )
    return jax.tree_util.tree_map(lambda x: _fail(x, summary.ok), row)


def _fail(x: Array, ok: Array) -> Array:
    if jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.where(ok, x, jnp.nan)
    return x


__all__ = [
    "CourseCut",
    "CourseDetail",
    "CourseOutcome",
    "CourseSummary",
    "PatientInputs",
    "PatientRow",
    "ROW_COLUMNS",
    "SUMMARY_KEYS",
    "course_cut",
    "course_outcome",
    "fields",
    "follow_course",
    "patient_inputs",
]
