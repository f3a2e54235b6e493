"""The batched engine: a protocol × a cohort → one outcome row per virtual patient.

The single-patient engine (:mod:`raisim.simulate`) reads a solved course with
numpy. Here the same outcome rules are written in jax for one patient, fused
with the ODE solve and ``vmap``-ped over the patient axis in one compiled
call, so a chunk's time courses never leave the device: only its outcome rows
do. ``tests/test_batch.py`` checks that a cohort without variability
reproduces :func:`raisim.simulate` course by course.

Each patient solves every course of the protocol (each cut at the patient's
AE day if the patient discontinues), computes every course's readouts, and
follows the first course whose conditions its drawn readouts meet — the rule
of the single-patient engine. Solver failures are per patient: ``ok`` is
False and every derived number of that row is NaN.

The patient axis can be split over local devices (one share per device, each
placed with a ``jax.sharding.SingleDeviceSharding``): results are identical to
one device, patient by patient.

Units: time h, activity GBq, dose Gy, diameters mm, Tg ng/mL, months of
365.25/12 days.
"""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Bool, Float

from .cohort import Cohort, cohort_model, stack_models
from .dosimetry import Dosimetry
from .iodine import Iodine
from .model import PatientModel, Solution, solve_branches
from .nis import NIS
from .pathway import Pathway
from .pk import PK
from .plan import (
    NO_DAY,
    CellPlan,
    CourseSpec,
    Draws,
    Padding,
    ae_day_on_tki,
    cohort_draws,
    cut_schedule,
    plan_cell,
    scan_positions,
)
from .protocol import DAYS_PER_MONTH, TAIL_DELAY_H, Protocol
from .response import Response, sphere_diameter_mm
from .schedule import protocol_drugs
from .toxicity import Toxicity

if TYPE_CHECKING:
    from .sweep import SolverSettingsConfig

RECIST_CODES = ("CR", "PR", "SD", "PD")


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


def protocol_solver(p: Protocol, course: int | None = None) -> SolverSettings:
    """The protocol's ``solver`` section (tolerances, step budget) as settings of the batched engine."""
    return SolverSettings(p.solver.rtol, p.solver.atol, p.solver.max_steps, course, tail_delay_h=p.solver.tail_delay_h)


def sweep_solver(solver: SolverSettingsConfig, micro_batch: int = 16) -> SolverSettings:
    """A sweep config's ``solver`` section (tolerances, step budget, precision, tail) as settings of the
    batched engine; ``micro_batch``: patients solved in lockstep (a count)."""
    return SolverSettings(
        solver.rtol,
        solver.atol,
        solver.max_steps,
        None,
        micro_batch,
        dtype=solver.dtype,
        tail_delay_h=solver.tail_delay_h,
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


def _background_per_g(model: PatientModel, io: dict, grid: Array, spec: CourseSpec, i: Array, c: Array) -> Array:
    """Mean non-lesion activity concentration at grid index i, channel c, per g (outcomes.background_concentration)."""
    s = grid[i] - spec.channel_time_h[c]
    k = model.iodine.absorption_per_h + spec.channel_decay[c]
    gut = jnp.where(s >= 0.0, jnp.exp(-k * jnp.maximum(s, 0.0)), 0.0)
    rest = gut + io["ecf"][i, c] + io["slow"][i, c] + io["nis_tissue"][i, c]
    return rest / (model.iodine.body_mass_kg * 1000.0)


def _whole_body(model: PatientModel, io: dict, grid: Array, spec: CourseSpec, i: Array, c: Array) -> Array:
    """Whole-body activity per MBq administered (outcomes._whole_body)."""
    bg = _background_per_g(model, io, grid, spec, i, c) * model.iodine.body_mass_kg * 1000.0
    return bg + jnp.sum(io["lesion"][i, c, :])


def _scan_p_lesion(
    readout: str, model: PatientModel, io: dict, grid: Array, spec: CourseSpec, j: int, mask, countable, s_val
) -> Array:
    """Per-lesion P(success) of scan position ``j`` (outcomes.scan_readouts, same formulas)."""
    dos = model.dosimetry
    mass = model.iodine.lesion_mass_g
    diam = sphere_diameter_mm(mass)
    c, i = spec.scan_tracer[j], spec.scan_img[j]
    lesion = io["lesion"][i, c, :]
    ratio = (lesion / mass) / _background_per_g(model, io, grid, spec, i, c)
    if readout == "i123_tbr":
        tbr = dos.tumour_to_background(ratio, diam)
        liver = dos.tumour_to_liver(ratio, diam)
        p = dos.p_above(tbr, dos.tbr_threshold) * dos.p_above(liver, dos.liver_ratio_threshold)
    elif readout == "i124_increase":
        b = jnp.maximum(spec.scan_baseline[j], 0)
        cb, ib = spec.scan_tracer[b], spec.scan_img[b]
        now = lesion * jnp.exp(spec.channel_decay[c] * spec.scan_delay_h[j])
        base = io["lesion"][ib, cb, :] * jnp.exp(spec.channel_decay[cb] * spec.scan_delay_h[b])
        p = dos.p_above(now / jnp.where(mask, base, 1.0), dos.increase_threshold)
    elif readout == "i124_dosimetry":
        gy = io["cum_lesion"][-1, spec.scan_projection[j], :] * s_val * 1000.0
        p = jnp.where(countable, dos.p_above(gy, dos.target_gy_per_gbq_threshold), 0.0)
    elif readout in ("diagnostic_wbs", "post_therapy_wbs"):
        mbq = lesion * spec.scan_tracer_mbq[j]
        contrast = dos.tumour_to_background(ratio, diam)
        p = dos.p_above(mbq, dos.wbs_min_lesion_mbq) * dos.p_above(contrast, dos.wbs_min_contrast)
    else:
        raise ValueError(f"unknown readout {readout!r}")
    return jnp.where(mask, p, 0.0)


def _activity(plan: CellPlan, model: PatientModel, io: dict, spec: CourseSpec, countable, s_val):
    """(activity GBq, policy allows treatment, best countable projected Gy/GBq) — outcomes.choose_activity."""
    n = plan.rai_numbers
    ps = jnp.maximum(spec.proj_scan, 0)
    c = spec.scan_projection[ps]
    gy = io["cum_lesion"][-1, c, :] * s_val * 1000.0
    best = jnp.max(jnp.where(countable, gy, 0.0))
    if plan.policy == "fixed":
        return n[0], jnp.asarray(True), best
    if plan.policy == "dosimetry_max_11.1":
        need = jnp.where(best > 0, n[1] / jnp.where(best > 0, best, 1.0), jnp.inf)
        ok = need <= n[2]
        return jnp.where(ok, need, 0.0), ok, best
    if plan.policy == "dosimetry_guided":
        blood_ml = model.iodine.blood_volume_l * 1000.0
        blood = model.dosimetry.blood_gy_per_gbq(
            io["cum_blood"][-1, c], io["cum_body"][-1, c], blood_ml, model.iodine.body_mass_kg
        )
        r48 = _whole_body(model, io, plan.grid_h, spec, spec.proj_i48, c)
        a = jnp.minimum(jnp.minimum(n[4] / jnp.maximum(blood, 1e-12), n[5] / jnp.maximum(r48, 1e-12)), n[3])
        return a, jnp.asarray(True), best
    return jnp.asarray(0.0), jnp.asarray(False), best


def _course_schedule(plan: CellPlan, spec: CourseSpec, model: PatientModel, draws: Draws) -> dict:
    """The course's toxicity draws and its schedule, cut at the AE day if the patient discontinues."""
    tox = model.toxicity
    n_ae = ae_day_on_tki(tox.hazard_per_day, spec.days_on_drug, draws.ae_u)
    grade3 = n_ae < NO_DAY
    disc = grade3 & (draws.stop_u < tox.discontinuation_probability)
    ae_day = jnp.where(grade3, plan.start_day + n_ae - 1, NO_DAY)
    last_day = jnp.where(disc, ae_day, NO_DAY)
    sched = cut_schedule(spec, plan, model, last_day)
    return {"grade3": grade3, "disc": disc, "ae_day": ae_day, "last_day": last_day, "sched": sched}


def _course(
    plan: CellPlan,
    spec: CourseSpec,
    model: PatientModel,
    draws: Draws,
    mask: Bool[Array, " l"],
    tg0: Float[Array, ""],
    cut: dict,
    sol: Solution,
) -> dict:
    """One solved course's readouts, activity, doses, volumes, RECIST, PFS, Tg and toxicity."""
    tox = model.toxicity
    grade3, disc, ae_day, last_day = cut["grade3"], cut["disc"], cut["ae_day"], cut["last_day"]
    grid = plan.grid_h
    io = sol.ys["iodine"]
    mass = model.iodine.lesion_mass_g
    s_val = model.dosimetry.s_value_gy_per_mbq_h(mass)
    countable = mask & (sphere_diameter_mm(mass) >= model.dosimetry.min_dosimetry_diameter_mm)
    p_scan, success = [], []
    for j, readout in enumerate(plan.readouts):
        done = (spec.scan_day[j] < NO_DAY) & (spec.scan_day[j] <= last_day)
        if readout is None:
            p_scan.append(jnp.asarray(jnp.nan))
            success.append(jnp.asarray(False))
            continue
        p_l = _scan_p_lesion(readout, model, io, grid, spec, j, mask, countable, s_val)
        p = jnp.where(done, model.dosimetry.p_any(p_l), 0.0)
        p_scan.append(p)
        success.append(done & (draws.scan_u[j] < p))
    p_scan, success = jnp.stack(p_scan), jnp.stack(success)
    activity, allowed, best_proj = _activity(plan, model, io, spec, countable, s_val)
    treated = (spec.rai_day < NO_DAY) & (spec.rai_day <= last_day) & allowed
    if plan.policy is None:
        treated = jnp.asarray(False)
    gbq = jnp.where(treated, activity, 0.0)
    # therapy dose, BED, volumes (outcomes.lesion_course)
    c = spec.therapy
    cum = io["cum_lesion"][:, c, :]
    dose_t = gbq * 1000.0 * cum * s_val[None, :]
    total = dose_t[-1]
    frac = jnp.where(total > 0, dose_t / jnp.where(total > 0, total, 1.0), 0.0)
    act = io["lesion"][:, c, :]
    peak = jnp.argmax(act, axis=0)
    cols = jnp.arange(act.shape[1])
    lam = act[peak, cols] / jnp.maximum(cum[-1] - cum[peak, cols], 1e-30)
    bed = jnp.where(treated & mask, model.response.bed_gy(total, lam), 0.0)
    total = jnp.where(treated & mask, total, 0.0)
    viable, dead = model.response.volumes_ml(grid, mass, sol.ys["cum_erk_inhibition_h"], frac, bed)
    viable = viable * mask
    volume = viable + dead * mask
    diam = sphere_diameter_mm(volume)
    recist, change = _recist(model.response, diam, plan.i0, spec.assess)
    pfs = _progression_months(grid, diam, spec.anchor)
    tg = model.response.thyroglobulin_ng_ml(grid, viable, sol.ys["nis"]["organification"], tg0)
    return {
        "ok": sol.ok,
        "steps": sol.num_steps,
        "p_scan": p_scan,
        "scan_success": success,
        "treated": treated,
        "activity_gbq": gbq,
        "best_projected_gy_per_gbq": best_proj,
        "best_lesion_gy": jnp.max(total),
        "best_lesion_bed_gy": jnp.max(bed),
        "recist": recist,
        "sum_change_pct": change,
        "pfs_months": pfs,
        "tg_change_pct": 100.0 * (tg[spec.assess] / jnp.maximum(tg0, 1e-12) - 1.0),
        "grade3_ae": grade3,
        "discontinued": disc,
        "ae_day": jnp.where(grade3, ae_day, -1),
        "p_grade3_ae": tox.p_grade3(spec.days_on_drug),
        "p_discontinuation": tox.p_discontinuation(spec.days_on_drug),
        "days_on_tki": jnp.max(spec.days_on_drug),
    }


def _recist(response: Response, diam: Float[Array, "t l"], i0, assess):
    """RECIST 1.1 codes (0 CR, 1 PR, 2 SD, 3 PD) and % change of the sum at each assessment (Response.recist)."""
    cr = response.cr_diameter_mm
    sums = jnp.sum(jnp.where(diam >= cr, diam, 0.0), axis=1)
    base = sums[i0]
    sa = sums[assess]
    running = jax.lax.cummin(sa)
    nadir = jnp.minimum(base, jnp.concatenate([jnp.asarray([base]), running[:-1]]))
    all_cr = jnp.all(diam[assess] < cr, axis=1)
    pd_ = (sa >= 1.2 * nadir) & (sa - nadir >= 5.0)
    pr = sa <= 0.7 * base
    code = jnp.where(all_cr, 0, jnp.where(pd_, 3, jnp.where(pr, 1, 2)))
    return code, 100.0 * (sa - base) / base


def _progression_months(grid, diam, anchor) -> Array:
    """Months from the anchor to the first sum ≥ 20 % and ≥ 5 mm above its running nadir (NaN: none)."""
    sums = jnp.sum(diam, axis=1)
    j = jnp.arange(sums.shape[0])
    after = j >= anchor
    running = jax.lax.cummin(jnp.where(after, sums, jnp.inf))
    nadir = jnp.concatenate([jnp.asarray([jnp.inf]), running[:-1]])
    hit = after & (sums >= 1.2 * nadir) & (sums - nadir >= 5.0)
    t = jnp.where(jnp.any(hit), grid[jnp.argmax(hit)], jnp.nan)
    return (t - grid[anchor]) / 24.0 / DAYS_PER_MONTH


def _patient(model, plan: CellPlan, draws: Draws, mask, tg0, solver: SolverSettings) -> dict:
    """Every course of one patient, then the one its drawn readouts follow (or ``solver.course``).

    The courses share the TKI course up to their first difference, solved once
    (:func:`raisim.model.solve_branches`).
    """
    cuts = [_course_schedule(plan, spec, model, draws) for spec in plan.courses]
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
        _course(plan, spec, model, draws, mask, tg0, cut, sol)
        for spec, cut, sol in zip(plan.courses, cuts, sols, strict=True)
    ]
    match = []
    for spec, rec in zip(plan.courses, recs, strict=True):
        got = rec["scan_success"][spec.cond_scan]
        match.append(jnp.all(~spec.cond_valid | (got == spec.cond_ok)))
    match = jnp.stack(match)
    chosen = jnp.where(jnp.any(match), jnp.argmax(match), 0)
    if solver.course is not None:
        chosen = jnp.asarray(solver.course)
    out = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs)[chosen], *recs)
    ok = jnp.all(jnp.stack([r["ok"] for r in recs]))
    out["ok"] = ok
    out["steps"] = jnp.sum(jnp.stack([r["steps"] for r in recs]))
    out["course"] = chosen
    out["readout_p"] = jnp.where(plan.readout_scan >= 0, out["p_scan"][jnp.maximum(plan.readout_scan, 0)], jnp.nan)
    out["readout_success"] = (plan.readout_scan >= 0) & out["scan_success"][jnp.maximum(plan.readout_scan, 0)]
    return jax.tree_util.tree_map(lambda x: _fail(x, ok), out)


def _fail(x: Array, ok: Array) -> Array:
    if jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.where(ok, x, jnp.nan)
    return x


def _patients(models, plan: CellPlan, draws: Draws, mask, tg0, solver: SolverSettings) -> dict:
    """Patients in micro-batches of ``solver.micro_batch`` (a multiple of it), one vmapped kernel each.

    The kernel's shape never depends on the chunk size or the device count, so a
    patient's numbers are bit-identical however the cohort is cut or sharded.
    """
    dyn, static = eqx.partition(models, eqx.is_array)

    def one_patient(args):  # lax.map vmaps it over each micro-batch
        dm, d, mk, t = args
        return _patient(eqx.combine(dm, static), plan, d, mk, t, solver)

    return jax.lax.map(one_patient, (dyn, draws, mask, tg0), batch_size=solver.micro_batch)


@eqx.filter_jit
def _run(models, plan: CellPlan, draws: Draws, mask, tg0, solver: SolverSettings) -> dict:
    return _patients(models, plan, draws, mask, tg0, solver)


def _run_on_devices(models, plan: CellPlan, draws: Draws, mask, tg0, solver: SolverSettings, devices) -> dict:
    """The patient axis split into one contiguous share per device, each share running the same
    compiled kernel on its device (dispatched asynchronously, so the devices work in parallel).

    Data parallel with no communication: a patient's numbers are bit-identical to a
    one-device run. (``shard_map``/GSPMD compile a different program whose rounding
    differs at ~1e-9 relative and changes step counts, so they are not used.)
    """
    n = mask.shape[0]
    size = n // len(devices)

    def on_device(i: int) -> dict:
        where = jax.sharding.SingleDeviceSharding(devices[i])

        def share(x):
            return jax.device_put(x[i * size : (i + 1) * size], where) if eqx.is_array(x) else x

        parts = [jax.tree_util.tree_map(share, a) for a in (models, draws, mask, tg0)]
        plan_d = jax.tree_util.tree_map(lambda x: jax.device_put(x, where) if eqx.is_array(x) else x, plan)
        return _run(parts[0], plan_d, parts[1], parts[2], parts[3], solver)

    if len(devices) == 1:
        pending = [on_device(0)]
    else:  # jax compiles the kernel once per device: from one thread each, the compilations overlap
        with concurrent.futures.ThreadPoolExecutor(len(devices)) as pool:
            pending = list(pool.map(on_device, range(len(devices))))
    return {k: np.concatenate([np.asarray(o[k]) for o in pending]) for k in pending[0]}


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

    Returns a dict of numpy arrays with a leading patient axis (see :func:`outcome_frame`):
    ``activity_gbq`` (GBq), ``best_projected_gy_per_gbq`` (Gy/GBq), ``best_lesion_gy`` and
    ``best_lesion_bed_gy`` (Gy), ``pfs_months`` (months after the anchor), ``ae_day`` (study
    day, −1 if none), ``days_on_tki`` (days), ``sum_change_pct``/``tg_change_pct`` (% of
    baseline), ``p_*`` (probabilities in [0, 1]), ``recist`` (codes 0 CR … 3 PD), ``steps``
    (solver steps) and booleans.
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
    draws = cohort_draws(p, cohort, len(plan.readouts))
    mask = jnp.asarray(cohort.lesion_mask)
    tg0 = jnp.asarray(cohort.baseline_tg_ng_ml)
    if solver.dtype == "float32":
        models, plan, draws, tg0 = _as_float32((models, plan, draws, tg0))
    if n_dev > 1:
        out = _run_on_devices(models, plan, draws, mask, tg0, solver, jax.local_devices()[:n_dev])
    else:
        out = _run(models, plan, draws, mask, tg0, solver)
    row = np.empty(n, dtype=int)
    row[order] = np.arange(len(order))  # each patient's row in the solved axis (a padding copy is the same)
    return {k: np.asarray(v)[row] for k, v in out.items()}


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
    "RECIST_CODES",
    "SolverSettings",
    "lockstep_order",
    "outcome_frame",
    "run_cohort",
    "simulate_cohort",
    "typical_model",
]
