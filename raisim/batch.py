"""The engine: a protocol × a cohort → one outcome record per virtual patient.

There is one engine. The outcome rules of :mod:`raisim.outcomes` (jax, one
patient) are fused with the ODE solve and ``vmap``-ped over the patient axis
in one compiled call, so a chunk's time courses never leave the device: only
its outcome rows do. One patient (:func:`raisim.simulate`) is the same kernel
at batch size one with ``detail=True``, which also returns the record behind
the row and the time course.

Each patient solves every course of the protocol (each cut at the patient's
AE day if the patient discontinues, missed doses dropped), computes every
course's readouts, and follows the first course whose conditions its drawn
readouts meet. Solver failures are per patient: ``ok`` is False and every
derived number of that row is NaN.

The patient axis can be split over local devices (one share per device, each
placed with a ``jax.sharding.SingleDeviceSharding``): results are identical to
one device, patient by patient.

Units: time h, activity GBq, dose Gy, diameters mm, Tg ng/mL, months of
365.25/12 days.
"""

from __future__ import annotations

import concurrent.futures

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Bool, Float

from .cohort import Cohort, cohort_model, lesion_sites, stack_models
from .dosimetry import Dosimetry
from .iodine import Iodine
from .model import PatientModel, Solution, solve_branches
from .nis import NIS
from .outcomes import (
    RECIST_CODES,
    background_per_g,
    effective_decay_per_h,
    progression_months,
    rai_activity,
    recist,
    scan_readout,
    wbs_visibility,
    whole_body,
)
from .pathway import Pathway
from .pk import PK
from .plan import (
    CellPlan,
    CourseSpec,
    Draws,
    Padding,
    cohort_draws,
    cut_schedule,
    days_on_drug,
    doses_given,
    nth_dose_day,
    plan_cell,
    scan_positions,
)
from .protocol import TAIL_DELAY_H, Protocol
from .response import Response, sphere_diameter_mm
from .schedule import protocol_drugs
from .toxicity import NO_DAY, Toxicity


class SolverSettings(eqx.Module):
    """Tolerances and step budget of the batched solve (static: part of the compiled function).

    ``rtol``: relative tolerance (dimensionless); ``atol``: absolute tolerance, in each state's
    own units (mg, fold, MBq per MBq, ...); ``max_steps``: solver step budget (a count);
    ``course``: index of the course to follow whatever the readouts (None: the drawn one);
    ``micro_batch``: patients solved in lockstep (a count); ``dtype``: ``"float64"`` or ``"float32"``;
    ``tail_delay_h``: from this long (h) after a course's last dose, TSH event or administration, the
    solve continues with the stabilised explicit method (:func:`raisim.model.solve`; None: Tsit5 to the end).
    """

    rtol: float = eqx.field(static=True, default=1e-7)
    atol: float = eqx.field(static=True, default=1e-10)
    max_steps: int = eqx.field(static=True, default=100_000)
    course: int | None = eqx.field(static=True, default=None)  # follow this course whatever the readouts
    micro_batch: int = eqx.field(static=True, default=16)  # patients solved in lockstep (one vmapped kernel)
    dtype: str = eqx.field(static=True, default="float64")  # "float32": model, schedules and states in float32
    tail_delay_h: float | None = eqx.field(static=True, default=TAIL_DELAY_H)


def protocol_solver(p: Protocol, course: int | None = None, micro_batch: int = 16) -> SolverSettings:
    """The protocol's ``solver`` section (tolerances, step budget) as settings of the batched engine;
    ``micro_batch``: patients solved in lockstep (a count; 1 for one patient)."""
    return SolverSettings(
        p.solver.rtol, p.solver.atol, p.solver.max_steps, course, micro_batch, tail_delay_h=p.solver.tail_delay_h
    )


def typical_model(p: Protocol, max_lesions: int, overrides: dict[str, dict] | None = None) -> PatientModel:
    """Typical-value model of the protocol's genotype and regimen with ``max_lesions`` 1-g lesion slots
    (a count; a 70-kg woman; :func:`raisim.cohort.cohort_model` applies each patient's covariates).
    ``overrides``: parameter-card values per block, in the cards' units."""
    o = overrides or {}
    drugs = protocol_drugs(p)
    ones = [1.0] * max_lesions
    return PatientModel(
        pk=PK.from_cards(drugs, o.get("pk"), sex="female", weight_kg=70.0),
        pathway=Pathway.from_cards(p.patient.genotype, drugs, o.get("pathway")),
        nis=NIS.from_cards(ones, o.get("nis")),
        iodine=Iodine.from_cards(ones, 70.0, o.get("iodine")),
        dosimetry=Dosimetry.from_cards(o.get("dosimetry")),
        response=Response.from_cards(ones, o.get("response")),
        toxicity=Toxicity.from_cards(drugs, o.get("toxicity")),
    )


# ---------------------------------------------------------------------------
# One patient, one course
# ---------------------------------------------------------------------------


class PatientInputs(eqx.Module):
    """Per-patient inputs of the outcome rules besides the model and the draws.

    ``lesion_mask``: lesion slots the patient has; ``baseline_tg_ng_ml``: ng/mL; ``lung_lesion``:
    slots at site ``lung`` (their cumulated activity gives the lung dose).
    """

    lesion_mask: Bool[Array, " l"]
    baseline_tg_ng_ml: Float[Array, ""]
    lung_lesion: Bool[Array, " l"]


def patient_inputs(cohort: Cohort) -> PatientInputs:
    """The outcome rules' per-patient inputs of ``cohort`` (leading patient axis)."""
    return PatientInputs(
        lesion_mask=jnp.asarray(cohort.lesion_mask),
        baseline_tg_ng_ml=jnp.asarray(cohort.baseline_tg_ng_ml),
        lung_lesion=jnp.asarray(lesion_sites(cohort) == "lung"),
    )


#: The outcome columns of a cohort run (:func:`run_cohort`); ``detail=True`` adds the rest of the record.
SUMMARY_KEYS = (
    "ok",
    "steps",
    "p_scan",
    "scan_success",
    "treated",
    "activity_gbq",
    "best_projected_gy_per_gbq",
    "best_lesion_gy",
    "best_lesion_bed_gy",
    "lung_dose_gy",
    "recist",
    "sum_change_pct",
    "pfs_months",
    "tg_change_pct",
    "grade3_ae",
    "discontinued",
    "ae_day",
    "p_grade3_ae",
    "p_discontinuation",
    "days_on_tki",
)


def course_cut(plan: CellPlan, spec: CourseSpec, model: PatientModel, draws: Draws) -> dict:
    """The course's toxicity draws and its schedule: the doses the patient takes (missed doses
    dropped), cut at the AE day if the patient discontinues.

    The AE is drawn on the days the patient takes the drugs over the planned course
    (:meth:`raisim.toxicity.Toxicity.ae_day_on_tki`, any course length) and falls on the study
    day of its n-th day on TKI (:func:`raisim.plan.nth_dose_day`: holds and missed days skipped). Returns ``grade3``,
    ``disc`` (booleans), ``ae_day`` and ``last_day`` (study days, :data:`NO_DAY` for none),
    ``planned_days`` and ``days`` (days on each drug planned and taken), ``sched`` (the cut
    :class:`raisim.model.Schedule`).
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
    return {
        "grade3": grade3,
        "disc": disc,
        "ae_day": ae_day,
        "last_day": last_day,
        "planned_days": planned,
        "days": days_on_drug(spec.dose_day, taken).astype(dtype),
        "sched": cut_schedule(spec, plan, model, last_day, given),
    }


def course_outcome(
    plan: CellPlan,
    spec: CourseSpec,
    model: PatientModel,
    draws: Draws,
    inputs: PatientInputs,
    cut: dict,
    sol: Solution,
) -> dict:
    """One solved course of one patient through the outcome rules of :mod:`raisim.outcomes`.

    Arguments:
        plan, spec: the protocol and this course as arrays (:func:`raisim.plan.plan_cell`).
        model: the patient's model (unbatched).
        draws: the patient's draws; inputs: its lesion mask, baseline Tg and lung lesions.
        cut: :func:`course_cut` of this course; sol: its solution on ``plan.grid_h``.

    Returns:
        The course's record: the :data:`SUMMARY_KEYS` (units as in :func:`run_cohort`) and the
        detail behind them, per scan position and per lesion (see :func:`raisim.simulate`).
    """
    tox, dos, rsp = model.toxicity, model.dosimetry, model.response
    mask, tg0 = inputs.lesion_mask, inputs.baseline_tg_ng_ml
    last_day = cut["last_day"]
    grid = plan.grid_h
    io = sol.ys["iodine"]
    mass = model.iodine.lesion_mass_g
    diam0 = sphere_diameter_mm(mass)
    s_val = dos.s_value_gy_per_mbq_h(mass)
    countable = mask & (diam0 >= dos.min_dosimetry_diameter_mm)
    t_ch, k_ch = spec.channel_time_h, spec.channel_decay

    def ratio_at(i, c, lesion):
        return (lesion / mass) / background_per_g(model, io, grid, t_ch[c], k_ch[c], i, c)

    projected = io["cum_lesion"][-1][spec.scan_projection, :] * s_val[None, :] * 1000.0  # (s, l) Gy/GBq
    nan_l = jnp.full(mass.shape, jnp.nan, mass.dtype)
    p_scan, success, done_all, p_lesion, metric = [], [], [], [], []
    for j, readout in enumerate(plan.readouts):
        done = (spec.scan_day[j] < NO_DAY) & (spec.scan_day[j] <= last_day)
        done_all.append(done)
        if readout is None:
            p_scan.append(jnp.asarray(jnp.nan, mass.dtype))
            success.append(jnp.asarray(False))
            p_lesion.append(jnp.zeros_like(mass))
            metric.append(nan_l)
            continue
        c, i = spec.scan_tracer[j], spec.scan_img[j]
        lesion = io["lesion"][i, c, :]
        b = jnp.maximum(spec.scan_baseline[j], 0)
        cb, ib = spec.scan_tracer[b], spec.scan_img[b]
        base = io["lesion"][ib, cb, :] * jnp.exp(k_ch[cb] * spec.scan_delay_h[b])
        p_l, m = scan_readout(
            readout,
            model,
            lesion,
            ratio_at(i, c, lesion),
            jnp.exp(k_ch[c] * spec.scan_delay_h[j]),
            jnp.where(mask, base, 1.0),
            projected[j],
            spec.scan_tracer_mbq[j],
            countable,
        )
        p_l = jnp.where(mask, p_l, 0.0)
        p = jnp.where(done, dos.p_any(p_l), 0.0)
        p_scan.append(p)
        success.append(done & (draws.scan_u[j] < p))
        p_lesion.append(p_l)
        metric.append(m)
    p_scan, success = jnp.stack(p_scan), jnp.stack(success)
    # the activity, from the projection behind the therapy (the last scan before RAI)
    has_proj = spec.proj_scan >= 0
    ps = jnp.maximum(spec.proj_scan, 0)
    cp = spec.scan_projection[ps]
    best = jnp.where(has_proj, jnp.max(jnp.where(countable, projected[ps], 0.0)), 0.0)
    blood = dos.blood_gy_per_gbq(
        io["cum_blood"][-1, cp], io["cum_body"][-1, cp], model.iodine.blood_volume_l * 1000.0, model.iodine.body_mass_kg
    )
    r48 = whole_body(model, io, grid, t_ch[cp], k_ch[cp], spec.proj_i48, cp)
    activity, allowed, limits = rai_activity(plan.policy, plan.rai_numbers, best, blood, r48)
    treated = (spec.rai_day < NO_DAY) & (spec.rai_day <= last_day) & allowed
    if plan.policy is None:
        treated = jnp.asarray(False)
    gbq = jnp.where(treated, activity, 0.0)
    # therapy dose, BED, volumes, RECIST, progression, Tg
    c = spec.therapy
    cum = io["cum_lesion"][:, c, :]
    dose_t = gbq * 1000.0 * cum * s_val[None, :]
    total = dose_t[-1]
    frac = jnp.where(total > 0, dose_t / jnp.where(total > 0, total, 1.0), 0.0)
    lam = effective_decay_per_h(io["lesion"][:, c, :], cum)
    given = treated & mask
    bed = jnp.where(given, rsp.bed_gy(total, lam), 0.0)
    total = jnp.where(given, total, 0.0)
    viable, dead = rsp.volumes_ml(grid, mass, sol.ys["cum_erk_inhibition_h"], frac, bed)
    viable = viable * mask
    volume = viable + dead * mask
    diam = sphere_diameter_mm(volume)
    code, change, sums = recist(rsp, diam, plan.i0, spec.assess)
    tg = rsp.thyroglobulin_ng_ml(grid, viable, sol.ys["nis"]["organification"], tg0)
    lung = inputs.lung_lesion & mask
    lung_s = dos.lung_s_value_gy_per_mbq_h() * 1000.0
    post = io["lesion"][spec.therapy_img, c, :]
    post_p = wbs_visibility(
        dos, post * gbq * 1000.0, dos.tumour_to_background(ratio_at(spec.therapy_img, c, post), diam0)
    )
    return {
        "ok": sol.ok,
        "steps": sol.num_steps,
        "p_scan": p_scan,
        "scan_success": success,
        "treated": treated,
        "activity_gbq": gbq,
        "best_projected_gy_per_gbq": best,
        "best_lesion_gy": jnp.max(total),
        "best_lesion_bed_gy": jnp.max(bed),
        "lung_dose_gy": gbq * jnp.sum(jnp.where(lung, cum[-1], 0.0)) * lung_s,
        "recist": code,
        "sum_change_pct": change,
        "pfs_months": progression_months(grid, diam, spec.anchor),
        "tg_change_pct": 100.0 * (tg[spec.assess] / jnp.maximum(tg0, 1e-12) - 1.0),
        "grade3_ae": cut["grade3"],
        "discontinued": cut["disc"],
        "ae_day": jnp.where(cut["grade3"], cut["ae_day"], -1),
        "p_grade3_ae": tox.p_grade3(cut["planned_days"]),
        "p_discontinuation": tox.p_discontinuation(cut["planned_days"]),
        "days_on_tki": jnp.max(cut["days"]),
        # the detail behind them (raisim.simulate's record)
        "scan_done": jnp.stack(done_all),
        "scan_p_lesion": jnp.stack(p_lesion),
        "scan_metric": jnp.stack(metric),
        "scan_projected_gy_per_gbq": projected,
        "rai_allowed": allowed & (plan.policy is not None),
        "projected_blood_gy_per_gbq": blood,
        "projected_retention_48h_fraction": r48,
        "projected_best_lesion_gy_per_gbq": jnp.max(jnp.where(mask, projected[ps], 0.0)),
        "projected_lung_gy_per_gbq": jnp.sum(jnp.where(lung, io["cum_lesion"][-1, cp, :], 0.0)) * lung_s,
        "limits_gbq": limits,
        "post_therapy_wbs_p": jnp.where(treated, dos.p_any(jnp.where(mask, post_p, 0.0)), jnp.nan),
        "lesion_gy": total,
        "lesion_bed_gy": bed,
        "lesion_decay_per_h": jnp.where(given, lam, jnp.nan),
        "lesion_therapy_gy_per_gbq": jnp.where(given, cum[-1] * s_val * 1000.0, jnp.nan),
        "lesion_p_sterilised": jnp.where(given, rsp.sterilisation_probability(viable[spec.anchor], bed), 0.0),
        "recist_sum_mm": sums,
        "days_on_drug": cut["days"],
        "last_day": cut["last_day"],
        "ae_day_raw": cut["ae_day"],
        "dose_times_h": cut["sched"].dose_times_h,
        "dose_mg": cut["sched"].dose_mg,
        "dose_t_gy": dose_t * given[None, :],
        "volume_ml": volume,
        "tg_ng_ml": tg,
        "tg_at_followup_ng_ml": tg[spec.assess],
        "ys": sol.ys,
    }


def follow_course(plan: CellPlan, recs: list[dict], course: int | None = None, detail: bool = False) -> dict:
    """The record of the course the patient follows: the first whose conditions its drawn readouts
    meet (or ``course``), with ``ok`` (every course solved), ``steps`` (summed over the courses),
    ``course`` (its index), ``readout_p`` and ``readout_success`` (the scan behind "readout
    success"). Without ``detail`` only the :data:`SUMMARY_KEYS` are kept; with it, also
    ``course_p_scan`` (P(success) of every scan position on every course)."""
    match = []
    for spec, rec in zip(plan.courses, recs, strict=True):
        got = rec["scan_success"][spec.cond_scan]
        match.append(jnp.all(~spec.cond_valid | (got == spec.cond_ok)))
    match = jnp.stack(match)
    chosen = jnp.where(jnp.any(match), jnp.argmax(match), 0)
    if course is not None:
        chosen = jnp.asarray(course)
    kept = recs if detail else [{k: r[k] for k in SUMMARY_KEYS} for r in recs]
    out = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs)[chosen], *kept)
    out["ok"] = jnp.all(jnp.stack([r["ok"] for r in recs]))
    out["steps"] = jnp.sum(jnp.stack([r["steps"] for r in recs]))
    out["course"] = chosen
    out["readout_p"] = jnp.where(plan.readout_scan >= 0, out["p_scan"][jnp.maximum(plan.readout_scan, 0)], jnp.nan)
    out["readout_success"] = (plan.readout_scan >= 0) & out["scan_success"][jnp.maximum(plan.readout_scan, 0)]
    if detail:
        out["course_p_scan"] = jnp.stack([r["p_scan"] for r in recs])
        out["course_ok"] = jnp.stack([r["ok"] for r in recs])
        return out
    return jax.tree_util.tree_map(lambda x: _fail(x, out["ok"]), out)


def _patient(model, plan: CellPlan, draws: Draws, inputs: PatientInputs, solver: SolverSettings, detail: bool) -> dict:
    """Every course of one patient, then the one its drawn readouts follow (or ``solver.course``).

    The courses share the TKI course up to their first difference, solved once
    (:func:`raisim.model.solve_branches`).
    """
    cuts = [course_cut(plan, spec, model, draws) for spec in plan.courses]
    sols = solve_branches(
        model,
        [c["sched"] for c in cuts],
        plan.grid_h,
        rtol=solver.rtol,
        atol=solver.atol,
        max_steps=solver.max_steps,
        tail_delay_h=solver.tail_delay_h,
    )
    recs = [
        course_outcome(plan, spec, model, draws, inputs, cut, sol)
        for spec, cut, sol in zip(plan.courses, cuts, sols, strict=True)
    ]
    return follow_course(plan, recs, solver.course, detail)


def _fail(x: Array, ok: Array) -> Array:
    if jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.where(ok, x, jnp.nan)
    return x


def _patients(
    models, plan: CellPlan, draws: Draws, inputs: PatientInputs, solver: SolverSettings, detail: bool
) -> dict:
    """Patients in micro-batches of ``solver.micro_batch`` (a multiple of it), one vmapped kernel each.

    The kernel's shape never depends on the chunk size or the device count, so a
    patient's numbers are bit-identical however the cohort is cut or sharded.
    """
    dyn, static = eqx.partition(models, eqx.is_array)

    def one_patient(args):  # lax.map vmaps it over each micro-batch
        dm, d, inp = args
        return _patient(eqx.combine(dm, static), plan, d, inp, solver, detail)

    return jax.lax.map(one_patient, (dyn, draws, inputs), batch_size=solver.micro_batch)


@eqx.filter_jit
def _run(models, plan: CellPlan, draws: Draws, inputs: PatientInputs, solver: SolverSettings, detail: bool) -> dict:
    return _patients(models, plan, draws, inputs, solver, detail)


def _run_on_devices(
    models, plan: CellPlan, draws: Draws, inputs: PatientInputs, solver: SolverSettings, detail: bool, devices
) -> dict:
    """The patient axis split into one contiguous share per device, each share running the same
    compiled kernel on its device (dispatched asynchronously, so the devices work in parallel).

    Data parallel with no communication: a patient's numbers are bit-identical to a
    one-device run. (``shard_map``/GSPMD compile a different program whose rounding
    differs at ~1e-9 relative and changes step counts, so they are not used.)
    """
    n = inputs.lesion_mask.shape[0]
    size = n // len(devices)

    def on_device(i: int) -> dict:
        where = jax.sharding.SingleDeviceSharding(devices[i])

        def share(x):
            return jax.device_put(x[i * size : (i + 1) * size], where) if eqx.is_array(x) else x

        parts = [jax.tree_util.tree_map(share, a) for a in (models, draws, inputs)]
        plan_d = jax.tree_util.tree_map(lambda x: jax.device_put(x, where) if eqx.is_array(x) else x, plan)
        return _run(parts[0], plan_d, parts[1], parts[2], solver, detail)

    if len(devices) == 1:
        pending = [on_device(0)]
    else:  # jax compiles the kernel once per device: from one thread each, the compilations overlap
        with concurrent.futures.ThreadPoolExecutor(len(devices)) as pool:
            pending = list(pool.map(on_device, range(len(devices))))
    return jax.tree_util.tree_map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *pending)


def run_cohort(
    p: Protocol,
    cohort: Cohort,
    *,
    overrides: dict[str, dict] | None = None,
    pad: Padding | None = None,
    solver: SolverSettings | None = None,
    devices: int | None = None,
    patient_overrides: list[dict[str, dict]] | None = None,
    cost_hint: np.ndarray | None = None,
    detail: bool = False,
) -> dict[str, np.ndarray]:
    """Simulate every patient of ``cohort`` through protocol ``p`` (genotype ``p.patient.genotype``).

    Args:
        p: the protocol (its ``patient`` section gives the genotype; lesions come from the cohort).
        cohort: the virtual patients.
        overrides: parameter-card values per block (as :func:`raisim.simulate`), e.g. a posterior draw.
        pad: shapes shared with other cells (default: this protocol's own).
        solver: tolerances (default: the protocol's ``solver`` section).
        devices: split the patient axis over this many local devices (default: all local
            devices; the cohort is padded to a multiple and the padding dropped).
        patient_overrides: instead of ``overrides``, one overrides mapping per patient
            (population parameters drawn per patient, as calibration's emulator design
            does); PK overrides are not allowed here.
        cost_hint: an expected solver cost per patient (any increasing measure, e.g. the
            ``steps`` of an earlier run of the same patients): patients of similar cost are
            solved in the same micro-batch (:func:`lockstep_order`). It changes the speed only:
            every patient's numbers are bit-identical with or without it.
        detail: also return the rest of each patient's record (per scan and per lesion, the
            time course of the followed course): what :func:`raisim.simulate` reports. Failed
            patients' numbers are then left as computed (check ``ok``).

    Returns a dict of numpy arrays with a leading patient axis (see :func:`outcome_frame`):
    ``activity_gbq`` (GBq), ``best_projected_gy_per_gbq`` (Gy/GBq), ``best_lesion_gy`` and
    ``best_lesion_bed_gy`` and ``lung_dose_gy`` (Gy), ``pfs_months`` (months after the anchor),
    ``ae_day`` (study day, −1 if none), ``days_on_tki`` (days the patient took a TKI on the
    followed course), ``sum_change_pct``/``tg_change_pct`` (% of baseline), ``p_*``
    (probabilities in [0, 1]), ``recist`` (codes 0 CR … 3 PD), ``steps`` (solver steps) and
    booleans.
    """
    solver = solver or protocol_solver(p)
    plan = plan_cell(p, pad)
    n = len(cohort)
    n_dev = devices if devices is not None else len(jax.local_devices())
    # the patient axis as solved: padded with copies of the last patient to whole micro-batches
    # on every device, then (cost_hint) ordered so that each micro-batch holds patients of similar cost
    order = np.concatenate([np.arange(n), np.full((-n) % (n_dev * solver.micro_batch), n - 1)])
    if cost_hint is not None:
        hint = np.asarray(cost_hint, dtype=float)
        if hint.shape != (n,):
            raise ValueError(f"cost_hint: one value per patient ({n}), got shape {hint.shape}")
        order = order[lockstep_order(hint[order], n_dev)]
    if not np.array_equal(order, np.arange(n)):
        cohort = cohort.take(order)
    if patient_overrides is not None:
        if len(patient_overrides) != n or overrides or any("pk" in o for o in patient_overrides):
            raise ValueError("patient_overrides: one mapping per patient, no pk block, and no overrides")
        per_patient = [typical_model(p, cohort.max_lesions, patient_overrides[i]) for i in order]
        models = cohort_model(stack_models(per_patient), cohort, stacked=True)
    else:
        models = cohort_model(typical_model(p, cohort.max_lesions, overrides), cohort, (overrides or {}).get("pk"))
    draws = cohort_draws(p, cohort, plan)
    inputs = patient_inputs(cohort)
    if solver.dtype == "float32":
        models, plan, draws, inputs = _as_float32((models, plan, draws, inputs))
    if n_dev > 1:
        out = _run_on_devices(models, plan, draws, inputs, solver, detail, jax.local_devices()[:n_dev])
    else:
        out = _run(models, plan, draws, inputs, solver, detail)
    row = np.empty(n, dtype=int)
    row[order] = np.arange(len(order))  # each patient's row in the solved axis (a padding copy is the same)
    return jax.tree_util.tree_map(lambda v: np.asarray(v)[row], out)


def lockstep_order(cost: Float[np.ndarray, " n"], n_devices: int) -> np.ndarray:
    """A permutation of the patient axis that puts patients of similar ``cost`` side by side.

    A micro-batch is solved in lockstep: each of its solves (the shared TKI course, each
    course's Tsit5 part and RKC tail, every RKC step's stages) runs until its slowest
    patient is done, so a batch of similar patients wastes less. Patients are ranked by
    ``cost`` (any increasing measure; NaN ranks last) and dealt round-robin over the
    ``n_devices`` contiguous device shares, so the devices get the same mix and finish
    together. ``len(cost)`` must be a multiple of ``n_devices``.
    """
    ranked = np.argsort(np.asarray(cost, dtype=float), kind="stable")
    return np.concatenate([ranked[d::n_devices] for d in range(n_devices)])


def _as_float32(tree):
    """Every float64 array of ``tree`` as float32 (Python floats, integers and booleans unchanged)."""

    def cast(x):
        return x.astype(jnp.float32) if eqx.is_array(x) and x.dtype == jnp.float64 else x

    return jax.tree_util.tree_map(cast, tree)


def outcome_frame(out: dict[str, np.ndarray], months: list[float], scan_names: list[str]) -> pd.DataFrame:
    """One row per patient: flat, typed columns (RECIST as categories CR/PR/SD/PD).

    ``out``: :func:`run_cohort`'s arrays (units there); ``months``: assessment times, months
    after the anchor (columns ``<name>_<m>m``); ``progressed_12m`` is 0/1 (NaN when the
    follow-up is shorter than 12 months).
    """
    cols: dict[str, np.ndarray] = {}
    for k, v in out.items():
        if k in ("recist", "sum_change_pct", "tg_change_pct"):
            for a, m in enumerate(months):
                name = f"{k}_{m:g}m"
                if k == "recist":
                    ok = out["ok"]
                    cols[name] = pd.Categorical(
                        np.where(ok, np.asarray(RECIST_CODES)[np.clip(v[:, a], 0, 3)], None), categories=RECIST_CODES
                    )
                else:
                    cols[name] = v[:, a]
        elif k in ("p_scan", "scan_success"):
            for j, s in enumerate(scan_names):
                cols[f"{'p' if k == 'p_scan' else 'success'}_{s}"] = v[:, j]
        else:
            cols[k] = v
    frame = pd.DataFrame(cols)
    followed_12m = max(months) >= 12.0  # a shorter follow-up cannot say who progressed by 12 months
    progressed = (frame["pfs_months"] <= 12.0 + 1e-9).astype(float)
    frame["progressed_12m"] = np.where(frame["ok"] & followed_12m, progressed, np.nan)
    return frame


def scan_names(p: Protocol) -> list[str]:
    """Scan names in the engine's scan positions (:func:`raisim.plan.scan_positions`)."""
    return [s.name for s in scan_positions(p)]


def simulate_cohort(
    p: Protocol,
    cohort: Cohort,
    *,
    overrides: dict[str, dict] | None = None,
    solver: SolverSettings | None = None,
) -> pd.DataFrame:
    """Outcome table of ``cohort`` through ``p``: covariates, readouts, RAI, doses, RECIST, PFS, Tg, AEs.

    Units as in :func:`run_cohort` and :meth:`raisim.cohort.Cohort.covariates` (activity GBq, dose
    Gy, PFS months, % changes, probabilities in [0, 1]).
    """
    out = run_cohort(p, cohort, overrides=overrides, solver=solver)
    frame = outcome_frame(out, list(p.followup.months), scan_names(p))
    cov = pd.DataFrame(cohort.covariates())
    return pd.concat([cov, frame], axis=1)


__all__ = [
    "PatientInputs",
    "patient_inputs",
    "RECIST_CODES",
    "SUMMARY_KEYS",
    "course_cut",
    "course_outcome",
    "follow_course",
    "SolverSettings",
    "lockstep_order",
    "outcome_frame",
    "run_cohort",
    "simulate_cohort",
    "typical_model",
]
