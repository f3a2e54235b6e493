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
import functools
import warnings

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float

from ..biology.dosimetry import Dosimetry
from ..biology.iodine import Iodine, IodineChannels
from ..biology.nis import NIS
from ..biology.pathway import Pathway, target_inhibition
from ..biology.pk import PK
from ..biology.response import Response
from ..biology.toxicity import Toxicity
from ..biology.tsh import TSHForcing
from ..protocol.schedule import FAR_FUTURE_H
from ..runtime import require_x64
from .rkc import RKC, spectral_radius
from .state import PatientState


class PatientModel(eqx.Module):
    """All seven blocks for one patient (typical or sampled parameters); units as in each block."""

    pk: PK
    pathway: Pathway
    nis: NIS
    iodine: Iodine
    dosimetry: Dosimetry
    response: Response
    toxicity: Toxicity

    def with_drug_slots(self, slots: int) -> PatientModel:
        """This model with its drug axis padded by inert drugs to ``slots`` (a count; the PK, the
        pathway's IC50s and the AE hazards): the same numbers, and one compiled program for
        protocols of one and of two drugs. The schedule's dose arrays must be padded alike
        (:mod:`raisim.engine.plan`); the step-size controller measures errors over the real
        states only (:func:`real_state_count`)."""
        return eqx.tree_at(
            lambda m: (m.pk, m.pathway, m.toxicity),
            self,
            (self.pk.with_drug_slots(slots), self.pathway.with_drug_slots(slots), self.toxicity.with_drug_slots(slots)),
        )


class Schedule(eqx.Module):
    """What happens when, as arrays: oral doses, TSH stimulation, radioiodine channels.

    ``dose_times_h``: dose times per drug, h (t = 0 at the first TKI dose); ``dose_mg``: amounts,
    mg; ``tsh``: TSH forcing (mU/L over h); ``channels``: administrations (h, 1/h, folds).
    """

    dose_times_h: Float[Array, "d n"]
    dose_mg: Float[Array, "d n"]
    tsh: TSHForcing
    channels: IodineChannels


def initial_state(model: PatientModel, schedule: Schedule, t0: Float[ArrayLike, ""]) -> PatientState:
    """Untreated steady state before the first dose, no radioiodine in the body.

    ``t0``: start time, h (unused: the untreated state does not depend on it). State units:
    ``pk`` mg and fold, ``pathway`` and ``nis`` folds of untreated, ``iodine`` MBq per MBq
    administered (``cum_*``: h), ``cum_erk_inhibition_h`` h.
    """
    return PatientState(
        pk=model.pk.initial_state(),
        pathway=model.pathway.initial_state(),
        nis=model.nis.initial_state(schedule.tsh.suppressed_mu_per_l, model.pathway.output_scale),
        iodine=model.iodine.initial_state(schedule.channels.admin_time_h.shape[0]),
        cum_erk_inhibition_h=jnp.zeros_like(model.pathway.erk_rate_per_h),
    )


def real_state_count(model: PatientModel, state: PatientState) -> Float[Array, ""]:
    """The number of components of the flat ``state`` that are not padding drug slots (a count,
    as a float): the PK states of an absent drug (``model.pk.present`` False) do not count."""
    size = sum(x.size for x in jax.tree_util.tree_leaves(state))
    per_drug = len(jax.tree_util.tree_leaves(state.pk))
    absent = jnp.sum(~model.pk.present)
    return (size - per_drug * absent).astype(state.pathway.erk.dtype)


class RealRMSNorm(eqx.Module):
    """The step-size controller's norm: the RMS over the real components (``count`` of them).

    diffrax's default (``optimistix.rms_norm``: the two-norm over √size) would count the
    padding drug slots' components, whose errors are exactly zero, and so loosen the tolerance of
    a padded model; this divides by √count instead, which is the default's value exactly when
    nothing is padded.
    """

    count: Float[Array, ""]

    def __call__(self, x) -> Float[Array, ""]:
        return optx.two_norm(x) / jnp.sqrt(self.count)


def vector_field(t: Float[Array, ""], y: PatientState, args: tuple) -> PatientState:
    """d(state)/dt of the coupled system at time ``t`` (h); ``args`` = (model, schedule, the schedule's dose table).

    Every derivative is per h, in the state's units (see :func:`initial_state`).
    """
    model, sched, doses = args
    absorption = model.pk.input_rate_mg_per_h(t, doses)
    conc = model.pk.unbound_nM(y.pk)
    inhibition = target_inhibition(conc, model.pathway.ic50_nM)
    erk = y.pathway.erk
    tsh = sched.tsh(t)
    erk_output = model.pathway.erk_output(erk)
    return PatientState(
        pk=model.pk.vector_field(y.pk, absorption),
        pathway=model.pathway.vector_field(y.pathway, inhibition),
        nis=model.nis.vector_field(y.nis, erk_output, model.pathway.output_scale, tsh),
        iodine=model.iodine.vector_field(t, y.iodine, sched.channels, y.nis.membrane, y.nis.organification),
        cum_erk_inhibition_h=jnp.where(t >= 0.0, jnp.maximum(1.0 - erk, 0.0), 0.0),
    )


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


#: diffrax versions whose private ``vector_tree_dot`` (in ``diffrax._solver.runge_kutta`` and
#: ``.tsit5``) :func:`_fused_stage_sums` replaces: the ones it was written and measured for
#: (BENCHMARKS.md). diffrax has no public hook for the stage sums of its Runge-Kutta solvers.
FUSED_STAGE_SUM_DIFFRAX = ("0.7.2",)


@functools.cache
def _diffrax_version() -> str:
    """The installed diffrax's version (read once: the trace-time patches below check it)."""
    from importlib.metadata import version

    return version("diffrax")


@functools.cache
def _diffrax_stage_modules():
    """diffrax's Runge-Kutta and Tsit5 modules when its version is one of
    :data:`FUSED_STAGE_SUM_DIFFRAX`, else None (with a warning, once: the unfused stage sums are
    correct but ~1.5-2x slower in batched CPU solves)."""
    have = _diffrax_version()
    if have not in FUSED_STAGE_SUM_DIFFRAX:
        warnings.warn(
            f"raisim: diffrax {have} is not one of {', '.join(FUSED_STAGE_SUM_DIFFRAX)}; solving with diffrax's "
            "own Runge-Kutta stage sums (correct, slower on batched CPU solves)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    from diffrax._solver import runge_kutta, tsit5

    return runge_kutta, tsit5


@contextlib.contextmanager
def _fused_stage_sums():
    """Trace diffrax's Runge-Kutta stages and Tsit5 interpolation with :func:`_stage_sum` (restored on exit),
    for the diffrax versions of :data:`FUSED_STAGE_SUM_DIFFRAX`; unchanged for others."""
    mods = _diffrax_stage_modules()
    if mods is None:
        yield
        return
    rk, ts5 = mods
    saved = rk.vector_tree_dot, ts5.vector_tree_dot
    rk.vector_tree_dot = ts5.vector_tree_dot = _stage_sum
    try:
        yield
    finally:
        rk.vector_tree_dot, ts5.vector_tree_dot = saved


#: diffrax versions whose ``diffeqsolve`` argument checks :func:`_checks_as_flags` replaces (the
#: checks it makes are listed there and made by :func:`_solve_span` instead).
CHECKS_AS_FLAGS_DIFFRAX = ("0.7.2",)


class _UncheckedInternals:
    """``equinox.internal`` as ``diffrax._integrate`` sees it, with ``error_if`` returning its input unchanged."""

    def __init__(self, internals):
        self._internals = internals

    def __getattr__(self, name):
        return getattr(self._internals, name)

    @staticmethod
    def error_if(x, pred, msg):
        return x


@contextlib.contextmanager
def _checks_as_flags():
    """Trace ``diffeqsolve`` without its runtime argument checks (restored on exit), for the diffrax
    versions of :data:`CHECKS_AS_FLAGS_DIFFRAX`; unchanged for others.

    diffrax checks ``(t1 - t0) * dt0 >= 0`` and that ``saveat.ts`` increase and lie in
    ``[t0, t1]`` with ``equinox.error_if``, a host callback at run time; XLA never keeps a
    program with a host callback in the persistent compilation cache, so every process
    compiled the engine's kernel again (issue 38). :func:`_solve_span` makes the same checks
    and folds them into the solve's ``ok`` flag: a failure is reported per patient, as a
    solver failure is, never raised from inside the kernel nor left as silent NaNs.
    """
    if _diffrax_version() not in CHECKS_AS_FLAGS_DIFFRAX:
        yield
        return
    from diffrax import _integrate

    saved = _integrate.eqxi
    _integrate.eqxi = _UncheckedInternals(saved)
    try:
        yield
    finally:
        _integrate.eqxi = saved


class Solution(eqx.Module):
    """Saved states on the time grid, with the solver status.

    ``ts``: the save times, h; ``ys``: the state on them (units as in :func:`initial_state`,
    leading time axis); ``ok``: True when the solve succeeded; ``num_steps``: solver steps (a count).
    """

    ts: Float[Array, " t"]
    ys: PatientState
    ok: Array
    num_steps: Array


#: A span that meets a discontinuity stops this long before it, h (0.01 h: float32 resolves it to
#: ~10⁴ h), so the discontinuity is a jump time inside the next span, never at a span's end.
EVENT_GAP_H = 0.01


def _jump_times_h(model: PatientModel, schedule: Schedule) -> Float[Array, " j"]:
    """Sorted discontinuities of the forcing, h: doses and their absorption lags, TSH events, administrations."""
    return jnp.sort(
        jnp.concatenate(
            [
                model.pk.jump_times_h(schedule.dose_times_h),
                schedule.tsh.jump_times_h(),
                schedule.channels.admin_time_h,
            ]
        )
    )


def _last_event_h(model: PatientModel, schedule: Schedule, default: Float[Array, ""]) -> Float[Array, ""]:
    """The schedule's last discontinuity, h (``default`` when it has none)."""
    jumps = _jump_times_h(model, schedule)
    return jnp.max(jnp.where(jumps < 0.5 * FAR_FUTURE_H, jumps, default))


def _solve_span(
    model: PatientModel,
    schedule: Schedule,
    save_ts: Float[Array, " t"],
    t_start: Float[Array, ""],
    y_start: Float[Array, " n"],
    t_end: Float[Array, ""],
    unravel,
    *,
    rtol: Float[ArrayLike, ""],
    atol: Float[ArrayLike, ""],
    max_steps: int,
    tail_delay_h: float | None,
):
    """Flat states on ``clip(save_ts, t_start, t_end)`` from ``y_start`` at ``t_start`` (h); (ys, ok, steps).

    Tsit5 with the schedule's discontinuities as jump times, then (``tail_delay_h`` not None) RKC
    from ``tail_delay_h`` after the last discontinuity. See :func:`solve`.
    """
    # only discontinuities strictly inside the span are jump times: one at the start or the end
    # would give a zero-length step there (NaN dense output, a stalled controller in float32)
    jumps = _jump_times_h(model, schedule)
    jumps = jnp.sort(jnp.where((jumps > t_start) & (jumps < t_end), jumps, FAR_FUTURE_H))
    args = (model, schedule, model.pk.dose_table(schedule.dose_times_h, schedule.dose_mg))

    def flat_field(t, y, args):
        return ravel_pytree(vector_field(t, unravel(y), args))[0]

    def run(solver, t0, t1, y0, dt0, controller):
        with _checks_as_flags():
            return diffrax.diffeqsolve(
                diffrax.ODETerm(flat_field),
                solver,
                t0,
                t1,
                dt0=dt0,
                y0=y0,
                args=args,
                saveat=diffrax.SaveAt(ts=jnp.clip(save_ts, t0, t1)),
                stepsize_controller=controller,
                max_steps=max_steps,
                throw=False,
            )

    norm = RealRMSNorm(real_state_count(model, unravel(y_start)))

    def pid():
        return diffrax.PIDController(rtol=rtol, atol=atol, dtmax=24.0 * 7.0, norm=norm)

    def tsit5(t_stop):
        with _fused_stage_sums():
            return run(
                diffrax.Tsit5(), t_start, t_stop, y_start, 0.05, diffrax.ClipStepSizeController(pid(), jump_ts=jumps)
            )

    # diffrax's argument checks (see _checks_as_flags), as a flag: every span runs forwards with
    # dt0 > 0 from t_start to t_split <= t_end, and the clipped save times never decrease
    valid = (t_end >= t_start) & jnp.all(save_ts[1:] >= save_ts[:-1])
    if tail_delay_h is None:
        sol = tsit5(t_end)
        return sol.ys, valid & (sol.result == diffrax.RESULTS.successful), sol.stats["num_steps"]

    t_split = jnp.clip(_last_event_h(model, schedule, t_start) + max(tail_delay_h, EVENT_GAP_H), t_start, t_end)
    head = tsit5(t_split)
    y_split = head.ys[-1]  # the last clipped save time is t_split itself
    jac = jax.jacfwd(lambda y: flat_field(t_split, y, args))(y_split)
    tail = run(RKC(1.2 * spectral_radius(jac)), t_split, t_end, y_split, 1.0, pid())
    ys = jnp.where((save_ts <= t_split)[:, None], head.ys, tail.ys)
    ok = valid & (head.result == diffrax.RESULTS.successful) & (tail.result == diffrax.RESULTS.successful)
    return ys, ok, head.stats["num_steps"] + tail.stats["num_steps"]


@eqx.filter_jit
def solve(
    model: PatientModel,
    schedule: Schedule,
    save_ts: Float[Array, " t"],
    *,
    rtol: Float[ArrayLike, ""] = 1e-7,
    atol: Float[ArrayLike, ""] = 1e-10,
    max_steps: int = 100_000,
    tail_delay_h: float | None = None,
) -> Solution:
    """Solve the coupled model from ``save_ts[0]`` to ``save_ts[-1]`` (Tsit5, adaptive).

    Dose times (and their absorption lags), TSH events and iodine
    administrations are jump times of the controller. Failures do not raise:
    ``Solution.ok`` is False and the caller reports them. ``save_ts``: output times, h
    (t = 0 at the first TKI dose); ``rtol`` relative tolerance, ``atol`` absolute tolerance
    in each state's units; ``max_steps`` a count (per phase).

    ``tail_delay_h`` (h; None: Tsit5 throughout): from this long after the last
    discontinuity (dose, absorption lag, TSH event, administration) to the end, solve with
    the stabilised explicit method :class:`raisim.core.rkc.RKC` at the same tolerances.
    The tail is smooth and slow, but fast relaxations (ERK, the drugs' central
    compartments, tissue iodide) hold Tsit5 to ~2.5-h steps there for stability alone;
    RKC takes steps up to a week. The spectral radius it needs is estimated by power
    iteration on the Jacobian at the start of the tail, ×1.2 for margin (the tail's fast
    modes relax towards the untreated state, where they are no faster).
    """
    require_x64("raisim.solve")
    y0, unravel = ravel_pytree(initial_state(model, schedule, save_ts[0]))
    ys, ok, steps = _solve_span(
        model,
        schedule,
        save_ts,
        save_ts[0],
        y0,
        save_ts[-1],
        unravel,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        tail_delay_h=tail_delay_h,
    )
    return Solution(ts=save_ts, ys=jax.vmap(unravel)(ys), ok=ok, num_steps=steps)


def _by_time(times: Array, *attrs: Array) -> tuple[Array, ...]:
    """Events sorted by time along the last axis, their attributes carried along."""
    order = jnp.argsort(times, axis=-1)
    return tuple(jnp.take_along_axis(x, order, axis=-1) for x in (times, *attrs))


def divergence_time_h(schedules: list[Schedule]) -> Float[Array, ""]:
    """The first time (h) at which any schedule's forcing differs from the first one's.

    Every forcing term is causal (a dose, injection, withdrawal or administration acts
    from its own time on) and the forcing is a sum over events, so the schedules give the
    same vector field before the earliest event that one has and the other lacks. Events
    are compared in time order, whatever their padded slots; schedules whose TSH constants
    differ diverge from the start (``-FAR_FUTURE_H``). ``FAR_FUTURE_H`` when the schedules
    are identical; they must share their padded shapes (:mod:`raisim.engine.plan`).
    """

    def events(s: Schedule):
        c, tsh = s.channels, s.tsh
        return (
            _by_time(s.dose_times_h, s.dose_mg),
            _by_time(c.admin_time_h, c.decay_per_h, c.renal_factor, c.uptake_factor),
            _by_time(tsh.injection_times_h),
            _by_time(tsh.withdrawal_start_h, tsh.withdrawal_end_h),
        )

    def constants(s: Schedule):
        tsh = s.tsh
        return (tsh.ka_per_h, tsh.ke_per_h, tsh.scale_mu_per_l, tsh.withdrawal_mu_per_l, tsh.suppressed_mu_per_l)

    first = events(schedules[0])
    t = jnp.asarray(FAR_FUTURE_H, schedules[0].dose_times_h.dtype)
    for s in schedules[1:]:  # a different TSH constant acts from the start: nothing is shared
        for x, y in zip(constants(schedules[0]), constants(s), strict=True):
            t = jnp.where(x != y, -FAR_FUTURE_H, t)
    for other in map(events, schedules[1:]):
        for mine, theirs in zip(first, other, strict=True):
            differs = jnp.zeros(mine[0].shape, bool)
            for x, y in zip(mine, theirs, strict=True):
                differs = differs | (x != y)
            t = jnp.minimum(t, jnp.min(jnp.where(differs, jnp.minimum(mine[0], theirs[0]), FAR_FUTURE_H)))
    return t


def solve_branches(
    model: PatientModel,
    schedules: list[Schedule],
    save_ts: Float[Array, " t"],
    *,
    rtol: Float[ArrayLike, ""] = 1e-7,
    atol: Float[ArrayLike, ""] = 1e-10,
    max_steps: int = 100_000,
    tail_delay_h: float | None = None,
) -> list[Solution]:
    """:func:`solve` for several courses of one patient that share a beginning, solving it once.

    The courses of a protocol (selection succeeds → RAI, fails → no RAI, re-scan branches)
    share the TKI course up to the first event where their schedules differ
    (:func:`divergence_time_h`): that common part is solved once, and each course continues
    from its end state. Units and failure reporting as :func:`solve`: every branch's ``ok``
    includes the shared part's status; the first branch's ``num_steps`` includes its steps,
    so the counts add up to the work done.
    """
    require_x64("raisim.core.model.solve_branches")
    t0, t1 = save_ts[0], save_ts[-1]
    y0, unravel = ravel_pytree(initial_state(model, schedules[0], t0))
    kw = dict(rtol=rtol, atol=atol, max_steps=max_steps)
    # the shared part stops at the first difference, and never runs into a tail: courses that
    # differ in nothing (e.g. both cut before the scan) would otherwise share a Tsit5 tail
    last = jnp.min(jnp.stack([_last_event_h(model, s, t0) for s in schedules]))
    # (it stops EVENT_GAP_H before that event, so that the event is inside the branches' spans)
    t_div = jnp.clip(jnp.minimum(divergence_time_h(schedules), last) - EVENT_GAP_H, t0, t1)
    shared, shared_ok, shared_steps = _solve_span(
        model, schedules[0], save_ts, t0, y0, t_div, unravel, tail_delay_h=None, **kw
    )
    y_div = shared[-1]  # the last clipped save time is t_div
    shares = t_div > t0  # False: the courses differ from the start, each from its own initial state
    out = []
    for k, sched in enumerate(schedules):
        y_start = jnp.where(shares, y_div, ravel_pytree(initial_state(model, sched, t0))[0])
        ys, ok, steps = _solve_span(model, sched, save_ts, t_div, y_start, t1, unravel, tail_delay_h=tail_delay_h, **kw)
        ys = jnp.where(((save_ts <= t_div) & shares)[:, None], shared, ys)
        steps = steps + shared_steps if k == 0 else steps
        out.append(Solution(ts=save_ts, ys=jax.vmap(unravel)(ys), ok=ok & shared_ok, num_steps=steps))
    return out
