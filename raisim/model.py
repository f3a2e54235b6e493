"""The coupled patient model: wires the blocks into one vector field and solves it.

Blocks never import each other; this module passes each block what it needs
from upstream: unbound drug concentrations → target inhibition → ERK →
membrane NIS and organification → iodide kinetics. Doses, TSH and iodine
administrations enter as closed-form forcing terms whose discontinuities are
given to the step-size controller as jump times, so repeated dosing is exact.

Units: time h (t = 0 at the first TKI dose), float64 throughout.
"""

from __future__ import annotations

import contextlib

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from diffrax._solver import runge_kutta as _diffrax_rk
from diffrax._solver import tsit5 as _diffrax_tsit5
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .dosimetry import Dosimetry
from .iodine import Iodine, IodineChannels
from .nis import NIS
from .pathway import Pathway, target_inhibition
from .pk import PK
from .response import Response
from .toxicity import Toxicity
from .tsh import TSHForcing

jax.config.update("jax_enable_x64", True)


class PatientModel(eqx.Module):
    """All seven blocks for one patient (typical or sampled parameters); units as in each block."""

    pk: PK
    pathway: Pathway
    nis: NIS
    iodine: Iodine
    dosimetry: Dosimetry
    response: Response
    toxicity: Toxicity


class Schedule(eqx.Module):
    """What happens when, as arrays: oral doses, TSH stimulation, radioiodine channels.

    ``dose_times_h``: dose times per drug, h (t = 0 at the first TKI dose); ``dose_mg``: amounts,
    mg; ``tsh``: TSH forcing (mU/L over h); ``channels``: administrations (h, 1/h, folds).
    """

    dose_times_h: Float[Array, "d n"]
    dose_mg: Float[Array, "d n"]
    tsh: TSHForcing
    channels: IodineChannels


def initial_state(model: PatientModel, schedule: Schedule, t0: float) -> dict:
    """Untreated steady state before the first dose, no radioiodine in the body.

    ``t0``: start time, h (unused: the untreated state does not depend on it). State units:
    ``pk`` mg and fold, ``pathway`` and ``nis`` folds of untreated, ``iodine`` MBq per MBq
    administered (``cum_*``: h), ``cum_erk_inhibition_h`` h.
    """
    return {
        "pk": model.pk.initial_state(),
        "pathway": model.pathway.initial_state(),
        "nis": model.nis.initial_state(schedule.tsh.suppressed_mu_per_l, model.pathway.output_scale),
        "iodine": model.iodine.initial_state(schedule.channels.admin_time_h.shape[0]),
        "cum_erk_inhibition_h": jnp.zeros_like(model.pathway.erk_rate_per_h),
    }


def vector_field(t: Float[Array, ""], y: dict, args: tuple) -> dict:
    """d(state)/dt of the coupled system at time ``t`` (h); ``args`` = (model, schedule, the schedule's dose table).

    Every derivative is per h, in the state's units (see :func:`initial_state`).
    """
    model, sched, doses = args
    absorption = model.pk.input_rate_mg_per_h(t, doses)
    conc = model.pk.unbound_nM(y["pk"])
    inhibition = target_inhibition(conc, model.pathway.ic50_nM)
    erk = y["pathway"]["erk"]
    tsh = sched.tsh(t)
    erk_output = model.pathway.erk_output(erk)
    return {
        "pk": model.pk.vector_field(y["pk"], absorption),
        "pathway": model.pathway.vector_field(y["pathway"], inhibition),
        "nis": model.nis.vector_field(y["nis"], erk_output, model.pathway.output_scale, tsh),
        "iodine": model.iodine.vector_field(
            t, y["iodine"], sched.channels, y["nis"]["membrane"], y["nis"]["organification"]
        ),
        "cum_erk_inhibition_h": jnp.where(t >= 0.0, jnp.maximum(1.0 - erk, 0.0), 0.0),
    }


def _stage_sum(a, b):
    """Σ_i a[i] b[i] over the leading (stage) axis of every leaf of ``b``.

    The same weighted sum as diffrax's ``vector_tree_dot`` (a ``tensordot``),
    written as a broadcast multiply and a reduction: under ``vmap`` on CPU the
    tensordot lowers to a transposing copy of the stage buffer plus a small dot,
    which made up most of the cost of a Tsit5 step of a batch of patients.
    """
    a = jnp.asarray(a)
    if a.ndim != 1:  # never the case for Tsit5; keep diffrax's own form
        return jax.tree_util.tree_map(lambda bi: jnp.tensordot(a, bi, axes=1, precision=jax.lax.Precision.HIGHEST), b)
    return jax.tree_util.tree_map(lambda bi: jnp.sum(jnp.reshape(a, a.shape + (1,) * (bi.ndim - 1)) * bi, axis=0), b)


@contextlib.contextmanager
def _fused_stage_sums():
    """Trace diffrax's Runge-Kutta stages and Tsit5 interpolation with :func:`_stage_sum` (restored on exit)."""
    saved = _diffrax_rk.vector_tree_dot, _diffrax_tsit5.vector_tree_dot
    _diffrax_rk.vector_tree_dot = _diffrax_tsit5.vector_tree_dot = _stage_sum
    try:
        yield
    finally:
        _diffrax_rk.vector_tree_dot, _diffrax_tsit5.vector_tree_dot = saved


class Solution(eqx.Module):
    """Saved states on the time grid, with the solver status.

    ``ts``: the save times, h; ``ys``: the state on them (units as in :func:`initial_state`,
    leading time axis); ``ok``: True when the solve succeeded; ``num_steps``: solver steps (a count).
    """

    ts: Float[Array, " t"]
    ys: dict
    ok: Array
    num_steps: Array


@eqx.filter_jit
def solve(
    model: PatientModel,
    schedule: Schedule,
    save_ts: Float[Array, " t"],
    *,
    rtol: float = 1e-7,
    atol: float = 1e-10,
    max_steps: int = 100_000,
) -> Solution:
    """Solve the coupled model from ``save_ts[0]`` to ``save_ts[-1]`` (Tsit5, adaptive).

    Dose times (and their absorption lags), TSH events and iodine
    administrations are jump times of the controller. Failures do not raise:
    ``Solution.ok`` is False and the caller reports them. ``save_ts``: output times, h
    (t = 0 at the first TKI dose); ``rtol`` relative tolerance, ``atol`` absolute tolerance
    in each state's units; ``max_steps`` a count.
    """
    t0, t1 = save_ts[0], save_ts[-1]
    jumps = jnp.sort(
        jnp.concatenate(
            [
                model.pk.jump_times_h(schedule.dose_times_h),
                schedule.tsh.jump_times_h(),
                schedule.channels.admin_time_h,
            ]
        )
    )
    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol, dtmax=24.0 * 7.0), jump_ts=jumps
    )
    # The solver works on the state as one flat vector (one array per stage
    # instead of one per state leaf); the field and the saved states keep the dict form.
    y0, unravel = ravel_pytree(initial_state(model, schedule, t0))

    def flat_field(t, y, args):
        return ravel_pytree(vector_field(t, unravel(y), args))[0]

    with _fused_stage_sums():
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(flat_field),
            diffrax.Tsit5(),
            t0,
            t1,
            dt0=0.05,
            y0=y0,
            args=(model, schedule, model.pk.dose_table(schedule.dose_times_h, schedule.dose_mg)),
            saveat=diffrax.SaveAt(ts=save_ts),
            stepsize_controller=controller,
            max_steps=max_steps,
            throw=False,
        )
    ok = sol.result == diffrax.RESULTS.successful
    return Solution(ts=save_ts, ys=jax.vmap(unravel)(sol.ys), ok=ok, num_steps=sol.stats["num_steps"])
