"""The engine: a protocol × a cohort → one outcome record per virtual patient.

There is one engine. The outcome rules of :mod:`raisim.engine.outcomes` (jax, one
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
from jaxtyping import Array, Float

from ..biology.dosimetry import Dosimetry
from ..biology.iodine import Iodine
from ..biology.nis import NIS
from ..biology.pathway import Pathway
from ..biology.pk import PK
from ..biology.response import Response
from ..biology.toxicity import Toxicity
from ..core.model import PatientModel, solve_branches
from ..protocol.schedule import protocol_drugs
from ..protocol.schema import TAIL_DELAY_H, Protocol
from ..runtime import require_x64
from .cohort import Cohort, cohort_model, stack_models
from .course import PatientInputs, PatientRow, course_cut, course_outcome, follow_course, patient_inputs
from .outcomes import RECIST_CODES
from .plan import CellPlan, Draws, Padding, cell_shapes, cohort_draws, plan_cell, scan_positions


class SolverSettings(eqx.Module):
    """Tolerances and step budget of the batched solve.

    ``rtol``: relative tolerance (dimensionless); ``atol``: absolute tolerance, in each state's
    own units (mg, fold, MBq per MBq, ...); ``max_steps``: solver step budget (a count);
    ``micro_batch``: patients solved in lockstep (a count); ``dtype``: ``"float64"`` or ``"float32"``;
    ``tail_delay_h``: from this long (h) after a course's last dose, TSH event or administration, the
    solve continues with the stabilised explicit method (:func:`raisim.core.model.solve`; None: Tsit5 to the end).

    The tolerances are data of the compiled kernel (runs that differ only in them share a
    program); the step budget, micro-batch, precision and whether there is a tail fix its shapes
    and are part of the program.
    """

    rtol: float | Float[Array, ""] = 1e-7
    atol: float | Float[Array, ""] = 1e-10
    max_steps: int = eqx.field(static=True, default=100_000)
    micro_batch: int = eqx.field(static=True, default=16)  # patients solved in lockstep (one vmapped kernel)
    dtype: str = eqx.field(static=True, default="float64")  # "float32": model, schedules and states in float32
    tail_delay_h: float | None = eqx.field(static=True, default=TAIL_DELAY_H)

    def as_data(self) -> SolverSettings:
        """These settings with the tolerances as arrays of ``dtype`` (what the kernel is given)."""
        f = lambda x: jnp.asarray(x, dtype=jnp.float32 if self.dtype == "float32" else jnp.float64)  # noqa: E731
        return eqx.tree_at(lambda s: (s.rtol, s.atol), self, (f(self.rtol), f(self.atol)))


def protocol_solver(p: Protocol, micro_batch: int = 16) -> SolverSettings:
    """The protocol's ``solver`` section (tolerances, step budget) as settings of the batched engine;
    ``micro_batch``: patients solved in lockstep (a count; 1 for one patient)."""
    return SolverSettings(
        p.solver.rtol, p.solver.atol, p.solver.max_steps, micro_batch, tail_delay_h=p.solver.tail_delay_h
    )


def typical_model(p: Protocol, max_lesions: int, overrides: dict[str, dict] | None = None) -> PatientModel:
    """Typical-value model of the protocol's genotype and regimen with ``max_lesions`` 1-g lesion slots
    (a count; a 70-kg woman; :func:`raisim.engine.cohort.cohort_model` applies each patient's covariates).
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


def _patient(
    model, plan: CellPlan, draws: Draws, inputs: PatientInputs, solver: SolverSettings, detail: bool
) -> PatientRow:
    """Every course of one patient, then the one its drawn readouts follow (or ``plan.forced_course``).

    The courses share the TKI course up to their first difference, solved once
    (:func:`raisim.core.model.solve_branches`).
    """
    cuts = [course_cut(plan, spec, model, draws) for spec in plan.courses]
    sols = solve_branches(
        model,
        [c.schedule for c in cuts],
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
    return follow_course(plan, recs, detail)


def _patients(
    models, plan: CellPlan, draws: Draws, inputs: PatientInputs, solver: SolverSettings, detail: bool
) -> PatientRow:
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
def _run(
    models, plan: CellPlan, draws: Draws, inputs: PatientInputs, solver: SolverSettings, detail: bool
) -> PatientRow:
    return _patients(models, plan, draws, inputs, solver, detail)


def _run_on_devices(
    models, plan: CellPlan, draws: Draws, inputs: PatientInputs, solver: SolverSettings, detail: bool, devices
) -> PatientRow:
    """The patient axis split into one contiguous share per device, each share running the same
    compiled kernel on its device (dispatched asynchronously, so the devices work in parallel).

    Data parallel with no communication: a patient's numbers are bit-identical to a
    one-device run. (``shard_map``/GSPMD compile a different program whose rounding
    differs at ~1e-9 relative and changes step counts, so they are not used.)
    """
    n = inputs.lesion_mask.shape[0]
    size = n // len(devices)

    def on_device(i: int) -> PatientRow:
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
    course: int | None = None,
) -> PatientRow:
    """Simulate every patient of ``cohort`` through protocol ``p`` (genotype ``p.patient.genotype``).

    **Arguments:**

    - `p`: the protocol (its ``patient`` section gives the genotype; lesions come from the cohort).
    - `cohort`: the virtual patients.
    - `overrides`: parameter-card values per block (as :func:`raisim.simulate`), e.g. a posterior draw.
    - `pad`: shapes shared with other cells (default: this protocol's own).
    - `solver`: tolerances (default: the protocol's ``solver`` section).
    - `devices`: split the patient axis over this many local devices (default: all local
      devices; the cohort is padded to a multiple and the padding dropped).
    - `patient_overrides`: instead of ``overrides``, one overrides mapping per patient
      (population parameters drawn per patient, as calibration's emulator design
      does); PK overrides are not allowed here.
    - `cost_hint`: an expected solver cost per patient (any increasing measure, e.g. the
      ``steps`` of an earlier run of the same patients): patients of similar cost are
      solved in the same micro-batch (:func:`lockstep_order`). It changes the speed only:
      every patient's numbers are bit-identical with or without it.
    - `course`: the index of the course every patient follows whatever its readouts (e.g. 0, the
      treated course of a response arm; None: the course its drawn readouts select).
    - `detail`: also return the rest of each patient's record (per scan and per lesion, the
      time course of the followed course): what :func:`raisim.simulate` reports. Failed
      patients' numbers are then left as computed (check ``ok``).

    **Returns:**

    A :class:`raisim.engine.course.PatientRow` of numpy arrays with a leading patient axis
    (its ``columns()`` are the outcome table, :func:`outcome_frame`): in ``summary``,
    ``activity_gbq`` (GBq), ``best_projected_gy_per_gbq`` (Gy/GBq), ``best_lesion_gy`` and
    ``best_lesion_bed_gy`` and ``lung_dose_gy`` (Gy), ``pfs_months`` (months after the anchor to
    progression, or to the end of follow-up when ``pfs_event`` is false: censored),
    ``ae_day`` (study day, −1 if none), ``days_on_tki`` (days the patient took a TKI on the
    followed course), ``sum_change_pct``/``tg_change_pct`` (% of baseline), ``p_*``
    (probabilities in [0, 1]), ``recist`` (codes 0 CR … 3 PD), ``steps`` (solver steps) and
    booleans; ``course``, ``readout_p``, ``readout_success``; with ``detail``, the rest.
    """
    require_x64("raisim.run_cohort")
    solver = solver or protocol_solver(p)
    pad = pad or cell_shapes(p)
    plan = plan_cell(p, pad, course)
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
        models = cohort_model(stack_models(per_patient), cohort, protocol_drugs(p), stacked=True)
    else:
        typical = typical_model(p, cohort.max_lesions, overrides)
        models = cohort_model(typical, cohort, protocol_drugs(p), (overrides or {}).get("pk"))
    models = models.with_drug_slots(pad.drugs)
    draws = cohort_draws(p, cohort, plan)
    inputs = patient_inputs(cohort)
    if solver.dtype == "float32":
        models, plan, draws, inputs = _as_float32((models, plan, draws, inputs))
    kernel_solver = solver.as_data()
    if n_dev > 1:
        out = _run_on_devices(models, plan, draws, inputs, kernel_solver, detail, jax.local_devices()[:n_dev])
    else:
        out = _run(models, plan, draws, inputs, kernel_solver, detail)
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


def outcome_frame(rows: PatientRow, months: list[float], scan_names: list[str]) -> pd.DataFrame:
    """One row per patient: flat, typed columns (RECIST as categories CR/PR/SD/PD).

    ``rows``: :func:`run_cohort`'s rows (units there); ``months``: assessment times, months
    after the anchor (columns ``<name>_<m>m``); ``progressed_12m`` is 0/1 (NaN when the
    follow-up is shorter than 12 months).
    """
    out = rows.columns()
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
    progressed = (frame["pfs_event"].astype(bool) & (frame["pfs_months"] <= 12.0 + 1e-9)).astype(float)
    frame["progressed_12m"] = np.where(frame["ok"] & followed_12m, progressed, np.nan)
    return frame


def scan_names(p: Protocol) -> list[str]:
    """Scan names in the engine's scan positions (:func:`raisim.engine.plan.scan_positions`)."""
    return [s.name for s in scan_positions(p)]


def simulate_cohort(
    p: Protocol,
    cohort: Cohort,
    *,
    overrides: dict[str, dict] | None = None,
    solver: SolverSettings | None = None,
) -> pd.DataFrame:
    """Outcome table of ``cohort`` through ``p``: covariates, readouts, RAI, doses, RECIST, PFS, Tg, AEs.

    Units as in :func:`run_cohort` and :meth:`raisim.engine.cohort.Cohort.covariates` (activity GBq, dose
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
