"""Independent reference solution of the coupled patient model: numpy + scipy.

The same ODE as :func:`raisim.core.model.vector_field`, written again from the
equations of the blocks (PK, pathway, NIS, iodine, TSH forcing) in plain
numpy. Nothing jax runs inside the right-hand side: the parameters are read
out of the ``PatientModel`` / ``Schedule`` equinox modules once, up front, as
numpy floats and arrays.

Integration is piecewise between the sorted discontinuity times of the
forcing (dose times, dose times + absorption lag, TSH events, radioiodine
administrations, and t = 0 where the ERK-inhibition accumulator switches on)
that fall inside ``[t0, t1]``. The solver is restarted at each one, and on
each segment every on/off switch of the forcing is frozen at its value
inside the segment, so the right-hand side is smooth on the closed segment
and the reference is exact at the kinks (the standard hand-written scipy
approach). Within a segment the closed-form sums over past doses and rhTSH
injections are referred to the segment start (``sum_k a_k exp(-k (t - t_k))
= exp(-k (t - a)) · sum_k a_k exp(-k (a - t_k))``), which is the same function
and saves re-summing every past dose at every evaluation.

Saved values at ``save_ts`` come from each method's own dense output
(LSODA: Nordsieck interpolation; RK45: 4th order; DOP853: 7th order).

Usage::

    from benchmarks.reference_scipy import solve_reference   # or put benchmarks/ on sys.path
    ys = solve_reference(model, schedule, save_ts, rtol=1e-10, atol=1e-14, method="DOP853")
    ys.pathway.erk  # shape (len(save_ts),), same layout as raisim.core.model.solve(...).ys

Units: time h, float64 (as in raisim).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import DOP853, LSODA, RK45

METHODS = {"LSODA": LSODA, "RK45": RK45, "DOP853": DOP853}

LN2 = math.log(2.0)


def _a(x) -> np.ndarray:
    return np.array(x, dtype=np.float64)


def _f(x) -> float:
    return float(np.asarray(x, dtype=np.float64))


# ---------------------------------------------------------------------------
# Parameters, read once out of the equinox modules
# ---------------------------------------------------------------------------


@dataclass
class Params:
    """Every number the vector field needs, as numpy floats/arrays (no jax)."""

    # PK, shape (d,)
    ka: np.ndarray
    tlag: np.ndarray
    f_bio: np.ndarray
    cl: np.ndarray
    v1: np.ndarray
    q: np.ndarray
    v2: np.ndarray
    fu: np.ndarray
    mw: np.ndarray
    ind_fold: np.ndarray
    ind_ec50: np.ndarray
    infusion: np.ndarray  # (d,) infusion duration, h; 0 = oral
    ind_rate: np.ndarray
    # doses, shape (d, n)
    dose_t: np.ndarray
    dose_mg: np.ndarray
    # pathway (scalars) and potencies (d, k)
    monomer_share: float
    output_scale: float
    feedback_k: float
    erk_rate: float
    paradox_gain: float
    receptor_weight: float
    her3_gain: float
    her3_hill: float
    her3_rate: float
    adaptive_gain: float
    adaptive_rate: float
    ic50: np.ndarray
    # NIS (scalars) and capacity (l,)
    erk_half_max: float
    hill: float
    max_gain: float
    mrna_rate: float
    protein_rate: float
    membrane_rate: float
    org_rate: float
    tsh_gain: float
    tsh_ec50: float
    capacity: np.ndarray
    # TSH forcing
    inj_t: np.ndarray
    wd_start: np.ndarray
    wd_end: np.ndarray
    tsh_ka: float
    tsh_ke: float
    tsh_scale: float
    tsh_withdrawal: float
    tsh_suppressed: float
    # iodine (scalars), lesion masses (l,), channels (c,)
    i_abs: float
    ecf_v: float
    renal_cl: float
    slow_in: float
    slow_out: float
    nis_cl: float
    nis_ret: float
    uptake_per_g: float
    ret_t_half: float
    ret_gain: float
    blood_frac: float
    mass: np.ndarray
    admin_t: np.ndarray
    lam: np.ndarray
    renal_factor: np.ndarray
    uptake_factor: np.ndarray

    @classmethod
    def from_model(cls, model, schedule) -> Params:
        pk, pw, nis, io = model.pk, model.pathway, model.nis, model.iodine
        tsh, ch = schedule.tsh, schedule.channels
        return cls(
            ka=_a(pk.ka_per_h),
            tlag=_a(pk.tlag_h),
            f_bio=_a(pk.f_bio),
            cl=_a(pk.cl_l_per_h),
            v1=_a(pk.v1_l),
            q=_a(pk.q_l_per_h),
            v2=_a(pk.v2_l),
            fu=_a(pk.fu),
            mw=_a(pk.mw_g_per_mol),
            ind_fold=_a(pk.induction_fold),
            ind_ec50=_a(pk.induction_ec50_ng_ml),
            infusion=_a(pk.infusion_h),
            ind_rate=_a(pk.induction_rate_per_h),
            dose_t=_a(schedule.dose_times_h),
            dose_mg=_a(schedule.dose_mg),
            monomer_share=_f(pw.monomer_share),
            output_scale=_f(pw.output_scale),
            feedback_k=_f(pw.feedback_k),
            erk_rate=_f(pw.erk_rate_per_h),
            paradox_gain=_f(pw.paradox_gain),
            receptor_weight=_f(pw.receptor_weight),
            her3_gain=_f(pw.her3_gain),
            her3_hill=_f(pw.her3_hill),
            her3_rate=_f(pw.her3_rate_per_h),
            adaptive_gain=_f(pw.adaptive_gain),
            adaptive_rate=_f(pw.adaptive_rate_per_h),
            ic50=_a(pw.ic50_nM),
            erk_half_max=_f(nis.erk_half_max),
            hill=_f(nis.hill),
            max_gain=_f(nis.max_gain),
            mrna_rate=_f(nis.mrna_rate_per_h),
            protein_rate=_f(nis.protein_rate_per_h),
            membrane_rate=_f(nis.membrane_rate_per_h),
            org_rate=_f(nis.organification_rate_per_h),
            tsh_gain=_f(nis.tsh_gain),
            tsh_ec50=_f(nis.tsh_ec50_mu_per_l),
            capacity=_a(nis.capacity),
            inj_t=_a(tsh.injection_times_h),
            wd_start=_a(tsh.withdrawal_start_h),
            wd_end=_a(tsh.withdrawal_end_h),
            tsh_ka=_f(tsh.ka_per_h),
            tsh_ke=_f(tsh.ke_per_h),
            tsh_scale=_f(tsh.scale_mu_per_l),
            tsh_withdrawal=_f(tsh.withdrawal_mu_per_l),
            tsh_suppressed=_f(tsh.suppressed_mu_per_l),
            i_abs=_f(io.absorption_per_h),
            ecf_v=_f(io.ecf_volume_l),
            renal_cl=_f(io.renal_clearance_l_per_h),
            slow_in=_f(io.slow_in_per_h),
            slow_out=_f(io.slow_out_per_h),
            nis_cl=_f(io.nis_tissue_clearance_l_per_h),
            nis_ret=_f(io.nis_tissue_return_per_h),
            uptake_per_g=_f(io.lesion_uptake_l_per_h_per_g),
            ret_t_half=_f(io.lesion_retention_t_half_h),
            ret_gain=_f(io.retention_gain),
            blood_frac=_f(io.blood_fraction_of_ecf),
            mass=_a(io.lesion_mass_g),
            admin_t=_a(ch.admin_time_h),
            lam=_a(ch.decay_per_h),
            renal_factor=_a(ch.renal_factor),
            uptake_factor=_a(ch.uptake_factor),
        )

    @property
    def n_drugs(self) -> int:
        return self.ka.shape[0]

    @property
    def n_lesions(self) -> int:
        return self.mass.shape[0]

    @property
    def n_channels(self) -> int:
        return self.admin_t.shape[0]

    def discontinuities(self) -> np.ndarray:
        """Every time where the forcing has a step or a kink (unsorted, may hold far-future padding)."""
        return np.concatenate(
            [
                self.dose_t.ravel(),
                (self.dose_t + np.where(self.infusion > 0, self.infusion, self.tlag)[:, None]).ravel(),
                self.inj_t,
                self.wd_start,
                self.wd_end,
                self.admin_t,
                [0.0],  # the ERK-inhibition accumulator switches on at t = 0
            ]
        )


# ---------------------------------------------------------------------------
# State layout: the pytree of raisim.core.model.initial_state, flattened
# ---------------------------------------------------------------------------


class Layout:
    """Flat-vector slices of each leaf of the state pytree, and back."""

    def __init__(self, d: int, n_l: int, n_c: int):
        shapes = [
            (("pk", "central_mg"), (d,)),
            (("pk", "peripheral_mg"), (d,)),
            (("pk", "enzyme_fold"), (d,)),
            (("pathway", "erk"), ()),
            (("pathway", "her3"), ()),
            (("pathway", "adaptive"), ()),
            (("nis", "mrna"), (n_l,)),
            (("nis", "protein"), (n_l,)),
            (("nis", "membrane"), (n_l,)),
            (("nis", "organification"), (n_l,)),
            (("iodine", "ecf"), (n_c,)),
            (("iodine", "slow"), (n_c,)),
            (("iodine", "nis_tissue"), (n_c,)),
            (("iodine", "lesion"), (n_c, n_l)),
            (("iodine", "excreted"), (n_c,)),
            (("iodine", "decayed"), (n_c,)),
            (("iodine", "cum_blood"), (n_c,)),
            (("iodine", "cum_body"), (n_c,)),
            (("iodine", "cum_lesion"), (n_c, n_l)),
            (("cum_erk_inhibition_h",), ()),
        ]
        self.leaves: list[tuple[tuple[str, ...], tuple[int, ...], slice]] = []
        i = 0
        for path, shape in shapes:
            n = int(np.prod(shape, dtype=int))
            self.leaves.append((path, shape, slice(i, i + n)))
            i += n
        self.size = i
        self.s = {"/".join(path): sl for path, _, sl in self.leaves}

    def unflatten(self, Y: np.ndarray):
        """(T, size) array → the model's state record (:class:`raisim.core.state.PatientState`) of
        numpy arrays with a leading time axis."""
        from raisim.core.state import IodineState, NISState, PathwayState, PatientState, PKState

        out: dict = {}
        for path, shape, sl in self.leaves:
            d = out
            for part in path[:-1]:
                d = d.setdefault(part, {})
            d[path[-1]] = Y[:, sl].reshape((Y.shape[0], *shape))
        return PatientState(
            pk=PKState(**out["pk"]),
            pathway=PathwayState(**out["pathway"]),
            nis=NISState(**out["nis"]),
            iodine=IodineState(**out["iodine"]),
            cum_erk_inhibition_h=out["cum_erk_inhibition_h"],
        )


# ---------------------------------------------------------------------------
# Equations
# ---------------------------------------------------------------------------


def _hill_inhibition(p: Params, erk: float) -> float:
    e = max(erk, 0.0)
    kn = p.erk_half_max**p.hill
    return kn / (kn + e**p.hill)


def _transcription_drive(p: Params, erk: float, tsh: float) -> float:
    """NIS transcription at ERK activity ``erk`` (fraction of untreated; output = erk × scale)."""
    basal = 1.0 + p.max_gain * _hill_inhibition(p, p.output_scale)
    erk_part = (1.0 + p.max_gain * _hill_inhibition(p, erk * p.output_scale)) / basal
    tsh = max(tsh, 0.0)
    return erk_part * (1.0 + p.tsh_gain * tsh / (p.tsh_ec50 + tsh))


def initial_vector(p: Params, layout: Layout) -> np.ndarray:
    """Untreated steady state, no drug and no radioiodine (TSH suppressed)."""
    y = np.zeros(layout.size)
    s = layout.s
    y[s["pk/enzyme_fold"]] = 1.0
    y[s["pathway/erk"]] = 1.0
    y[s["pathway/her3"]] = 1.0
    y[s["pathway/adaptive"]] = 1.0
    level = p.capacity * _transcription_drive(p, 1.0, p.tsh_suppressed)
    for k in ("mrna", "protein", "membrane", "organification"):
        y[s[f"nis/{k}"]] = level
    return y


@dataclass
class Segment:
    """The forcing on one open interval between discontinuities, frozen switches, referred to ``a``."""

    a: float
    abs_coef: np.ndarray  # (d,) absorption flux at t = a, mg/h, of the oral doses already absorbing
    iv_rate: np.ndarray  # (d,) infusion rate on the segment, mg/h
    rh_ke: float  # sum over injections already given of exp(-ke (a - t_i))
    rh_ka: float  # same with ka
    wd_on: bool  # inside a withdrawal window
    gut_on: np.ndarray  # (c,) administration already given
    after_zero: bool  # t >= 0 (ERK-inhibition accumulator on)

    @classmethod
    def build(cls, p: Params, a: float, b: float) -> Segment:
        mid = 0.5 * (a + b)
        s_dose = mid - p.dose_t - p.tlag[:, None]
        active = s_dose >= 0.0
        ka = p.ka[:, None]
        at_a = np.where(active, np.exp(-ka * np.where(active, a - p.dose_t - p.tlag[:, None], 0.0)), 0.0)
        oral = (p.infusion == 0.0)[:, None]
        abs_coef = np.sum(np.where(oral, p.f_bio[:, None] * p.dose_mg * ka * at_a, 0.0), axis=1)
        dur = p.infusion[:, None]
        infusing = (~oral) & (mid >= p.dose_t) & (mid < p.dose_t + dur)
        iv_rate = np.sum(np.where(infusing, p.dose_mg / np.where(oral, 1.0, dur), 0.0), axis=1)
        on = (mid - p.inj_t) > 0.0
        ds = np.where(on, a - p.inj_t, 0.0)
        rh_ke = float(np.sum(np.where(on, np.exp(-p.tsh_ke * ds), 0.0)))
        rh_ka = float(np.sum(np.where(on, np.exp(-p.tsh_ka * ds), 0.0)))
        wd_on = bool(np.any((mid >= p.wd_start) & (mid < p.wd_end)))
        gut_on = (mid - p.admin_t) >= 0.0
        return cls(a, abs_coef, iv_rate, rh_ke, rh_ka, wd_on, gut_on, mid >= 0.0)


def make_rhs(p: Params, layout: Layout, seg: Segment):
    """d(state)/dt on one segment, as a plain numpy function of (t, y)."""
    s = layout.s
    sl_c, sl_p, sl_e = s["pk/central_mg"], s["pk/peripheral_mg"], s["pk/enzyme_fold"]
    i_erk, i_her3, i_adapt = s["pathway/erk"].start, s["pathway/her3"].start, s["pathway/adaptive"].start
    sl_mrna, sl_prot, sl_memb, sl_org = s["nis/mrna"], s["nis/protein"], s["nis/membrane"], s["nis/organification"]
    sl_ecf, sl_slow, sl_nist, sl_les = s["iodine/ecf"], s["iodine/slow"], s["iodine/nis_tissue"], s["iodine/lesion"]
    sl_exc, sl_dec, sl_cb, sl_cbody = (
        s["iodine/excreted"],
        s["iodine/decayed"],
        s["iodine/cum_blood"],
        s["iodine/cum_body"],
    )
    sl_cles, i_cum = s["iodine/cum_lesion"], s["cum_erk_inhibition_h"].start
    n_c, n_l = p.n_channels, p.n_lesions

    # constants of the segment
    a = seg.a
    finite = np.isfinite(p.ic50)
    ic50 = np.where(finite, p.ic50, 1.0)
    ms, fk, w = p.monomer_share, p.feedback_k, p.receptor_weight
    kn = p.erk_half_max**p.hill
    basal = 1.0 + p.max_gain * kn / (kn + p.output_scale**p.hill)
    k_renal = p.renal_cl * p.renal_factor / p.ecf_v  # (c,)
    k_nis = p.nis_cl / p.ecf_v
    uptake_unit = p.uptake_per_g * p.mass / p.ecf_v  # (l,) per unit membrane NIS
    k_gut = p.i_abs + p.lam  # (c,)
    lam = p.lam
    wd = p.tsh_withdrawal if seg.wd_on else 0.0
    gut_on = seg.gut_on
    any_gut = bool(np.any(gut_on))
    cum_on = seg.after_zero

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        dy = np.empty_like(y)
        dt = t - a
        # --- Block 1: PK ---------------------------------------------------
        absorption = seg.abs_coef * np.exp(-p.ka * dt) + seg.iv_rate
        c1 = y[sl_c] / p.v1
        c2 = y[sl_p] / p.v2
        enz = y[sl_e]
        elim = p.cl * enz * c1
        dist = p.q * (c1 - c2)
        conc_ng = c1 * 1000.0
        conc_pos = np.maximum(conc_ng, 0.0)
        target = 1.0 + (p.ind_fold - 1.0) * conc_pos / (p.ind_ec50 + conc_pos)
        dy[sl_c] = absorption - elim - dist
        dy[sl_p] = dist
        dy[sl_e] = p.ind_rate * (target - enz)
        # --- Block 2: pathway (Bliss independence across drugs) -------------
        cu = np.maximum(conc_ng * p.fu / p.mw * 1000.0, 0.0)[:, None]
        occ = np.where(finite, cu / (ic50 + cu), 0.0)
        inh = 1.0 - np.prod(1.0 - occ, axis=0)
        mek, braf_mono, raf_wt, her_kinase, her3_ab = (float(x) for x in inh)
        erk, her3, adapt = y[i_erk], y[i_her3], y[i_adapt]
        e = max(erk, 1e-9)
        relief = (1.0 + fk) / (fk + e)
        receptor = (1.0 - w) + w * her3 * adapt * (1.0 - her_kinase) * (1.0 - her3_ab)
        paradox = 1.0 + p.paradox_gain * raf_wt * (1.0 - braf_mono * (1.0 - ms))
        erk_target = (1.0 - mek) * (ms * (1.0 - braf_mono) + (1.0 - ms) * receptor * relief * paradox)
        dy[i_erk] = p.erk_rate * (erk_target - erk)
        drop = p.output_scale * min(max(1.0 - erk, 0.0), 1.0)
        dy[i_her3] = p.her3_rate * (1.0 + p.her3_gain * drop**p.her3_hill - her3)
        dy[i_adapt] = p.adaptive_rate * (1.0 + p.adaptive_gain * (her3 - 1.0) - adapt)
        # --- TSH forcing ----------------------------------------------------
        rh = seg.rh_ke * math.exp(-p.tsh_ke * dt) - seg.rh_ka * math.exp(-p.tsh_ka * dt)
        tsh = max(p.tsh_suppressed + p.tsh_scale * rh + wd, 0.0)
        # --- Block 3: NIS ---------------------------------------------------
        ep = (max(erk, 0.0) * p.output_scale) ** p.hill
        drive_scalar = (1.0 + p.max_gain * kn / (kn + ep)) / basal * (1.0 + p.tsh_gain * tsh / (p.tsh_ec50 + tsh))
        drive = p.capacity * drive_scalar
        mrna, prot, memb, org = y[sl_mrna], y[sl_prot], y[sl_memb], y[sl_org]
        dy[sl_mrna] = p.mrna_rate * (drive - mrna)
        dy[sl_prot] = p.protein_rate * (mrna - prot)
        dy[sl_memb] = p.membrane_rate * (prot - memb)
        dy[sl_org] = p.org_rate * (drive - org)
        # --- Block 4: iodine, per channel -----------------------------------
        gut = np.where(gut_on, np.exp(-k_gut * np.where(gut_on, t - p.admin_t, 0.0)), 0.0) if any_gut else 0.0
        ecf, slow, nist = y[sl_ecf], y[sl_slow], y[sl_nist]
        les = y[sl_les].reshape(n_c, n_l)
        up = p.uptake_factor[:, None] * (uptake_unit * np.maximum(memb, 0.0))[None, :]  # (c, l)
        eff = LN2 / (p.ret_t_half * (1.0 + p.ret_gain * np.maximum(org - 1.0, 0.0)))  # (l,)
        eff_les = eff[None, :] * les
        dy[sl_ecf] = (
            p.i_abs * gut
            - (k_renal + p.slow_in + k_nis + up.sum(axis=1)) * ecf
            + p.slow_out * slow
            + p.nis_ret * nist
            + eff_les.sum(axis=1)
            - lam * ecf
        )
        dy[sl_slow] = p.slow_in * ecf - (p.slow_out + lam) * slow
        dy[sl_nist] = k_nis * ecf - (p.nis_ret + lam) * nist
        dy[sl_les] = (up * ecf[:, None] - eff_les - lam[:, None] * les).ravel()
        dy[sl_exc] = k_renal * ecf
        body = gut + ecf + slow + nist + les.sum(axis=1)
        dy[sl_dec] = lam * body
        dy[sl_cb] = p.blood_frac * ecf
        dy[sl_cbody] = body
        dy[sl_cles] = y[sl_les]
        # --- ERK-inhibition accumulator -------------------------------------
        dy[i_cum] = max(1.0 - erk, 0.0) if cum_on else 0.0
        return dy

    return rhs


# ---------------------------------------------------------------------------
# Solve
# ---------------------------------------------------------------------------


def breakpoints(p: Params, t0: float, t1: float) -> np.ndarray:
    """Sorted segment boundaries: t0, the discontinuities strictly inside (t0, t1), t1."""
    d = p.discontinuities()
    d = d[(d > t0) & (d < t1)]
    return np.unique(np.concatenate([[t0], d, [t1]]))


def solve_reference_with_stats(
    model,
    schedule,
    save_ts,
    rtol: float = 1e-7,
    atol: float = 1e-10,
    method: str = "LSODA",
) -> tuple[dict, dict]:
    """As :func:`solve_reference`, also returning solver statistics.

    Stats: ``n_segments``, ``n_steps`` (accepted steps, all segments), ``nfev``, ``njev``, ``nlu``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    cls = METHODS[method]
    ts = np.asarray(save_ts, dtype=np.float64)
    if ts.ndim != 1 or ts.size < 1 or np.any(np.diff(ts) < 0):
        raise ValueError("save_ts must be a non-empty, non-decreasing 1-d array")
    p = Params.from_model(model, schedule)
    layout = Layout(p.n_drugs, p.n_lesions, p.n_channels)
    t0, t1 = float(ts[0]), float(ts[-1])
    Y = np.full((ts.size, layout.size), np.nan)
    y = initial_vector(p, layout)
    Y[ts == t0] = y
    stats = {"n_segments": 0, "n_steps": 0, "nfev": 0, "njev": 0, "nlu": 0}
    bps = breakpoints(p, t0, t1)
    for a, b in zip(bps[:-1], bps[1:], strict=True):
        a, b = float(a), float(b)
        rhs = make_rhs(p, layout, Segment.build(p, a, b))
        solver = cls(rhs, a, y, b, rtol=rtol, atol=atol)
        stats["n_segments"] += 1
        while solver.status == "running":
            t_prev = solver.t
            message = solver.step()
            if solver.status == "failed":
                raise RuntimeError(f"{method} failed on segment [{a}, {b}] at t = {solver.t}: {message}")
            stats["n_steps"] += 1
            t_new = solver.t
            sel = np.flatnonzero((ts > t_prev) & (ts <= t_new))
            if sel.size:
                if t_new == ts[sel[-1]] and sel.size == 1:
                    Y[sel] = solver.y
                else:
                    Y[sel] = solver.dense_output()(ts[sel]).T
                    Y[sel[ts[sel] == t_new]] = solver.y
        y = solver.y.copy()
        stats["nfev"] += int(solver.nfev)
        stats["njev"] += int(getattr(solver, "njev", 0))
        stats["nlu"] += int(getattr(solver, "nlu", 0))
    return layout.unflatten(Y), stats


def solve_reference(
    model,
    schedule,
    save_ts,
    rtol: float = 1e-7,
    atol: float = 1e-10,
    method: str = "LSODA",
) -> dict:
    """Solve the coupled model from ``save_ts[0]`` to ``save_ts[-1]`` with scipy, piecewise between kinks.

    Args:
        model: a ``raisim.core.model.PatientModel`` (read once, converted to numpy).
        schedule: a ``raisim.core.model.Schedule`` of the same patient.
        save_ts: output times, h, non-decreasing; the first is the initial time.
        rtol, atol: tolerances of the scipy method.
        method: ``"LSODA"`` (default), ``"RK45"`` or ``"DOP853"``.

    Returns:
        The state record of ``raisim.core.model.solve(...).ys``
        (:class:`raisim.core.state.PatientState`), numpy arrays of the same shapes (leading time axis).
    """
    return solve_reference_with_stats(model, schedule, save_ts, rtol=rtol, atol=atol, method=method)[0]


# ---------------------------------------------------------------------------
# A virtual cohort, patient by patient (the hand-written loop a sweep replaces)
# ---------------------------------------------------------------------------


def patient_model(models, i: int, n_lesions: int):
    """Patient ``i`` of a batched ``PatientModel`` (leading patient axis), its real lesions only."""
    import equinox as eqx
    import jax

    n = models.iodine.lesion_mass_g.shape[0]
    one = jax.tree_util.tree_map(lambda x: x[i] if eqx.is_array(x) and x.ndim and x.shape[0] == n else x, models)
    return eqx.tree_at(
        lambda m: (m.nis.capacity, m.iodine.lesion_mass_g, m.response.alpha_per_gy),
        one,
        (one.nis.capacity[:n_lesions], one.iodine.lesion_mass_g[:n_lesions], one.response.alpha_per_gy[:n_lesions]),
    )


def reference_patient(p, cohort, models, i: int, rtol: float, atol: float, method: str = "LSODA", pad=None) -> dict:
    """One virtual patient through every course of ``p``, each course solved with scipy.

    The hand-written loop a sweep replaces: per course, the engine's cut (missed doses, the AE
    and a discontinuation: :func:`raisim.engine.course.course_cut`), a scipy solve of the patient's real
    lesions, then the engine's own outcome rules (:func:`raisim.engine.course.course_outcome` and
    :func:`raisim.engine.course.follow_course`, run unbatched) on that solution. Only the solver differs
    from the cohort row of the same patient, so the two are compared patient by patient.

    Arguments:
        p: the protocol; cohort: the virtual patients; models: their batched ``PatientModel``
            (``cohort_model``); i: the patient's row; rtol, atol: scipy's tolerances; method: a
            name of :data:`METHODS`; pad: the plan's padding (default: the protocol's own).

    Returns:
        The patient's record: the :data:`raisim.engine.course.SUMMARY_KEYS` and ``readout_p``,
        ``course`` (numpy scalars and arrays, units as :func:`raisim.engine.batch.run_cohort`).
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from raisim.core.model import Solution
    from raisim.engine.course import patient_inputs
    from raisim.engine.plan import cohort_draws, plan_cell

    plan = plan_cell(p, pad)
    take = lambda tree: jax.tree_util.tree_map(lambda x: x[i] if eqx.is_array(x) else x, tree)  # noqa: E731
    draws = take(cohort_draws(p, cohort, plan))
    inputs = take(patient_inputs(cohort))
    n = models.iodine.lesion_mass_g.shape[0]
    model = jax.tree_util.tree_map(lambda x: x[i] if eqx.is_array(x) and x.ndim and x.shape[0] == n else x, models)
    real = patient_model(models, i, int(cohort.n_lesions[i]))
    slots = model.iodine.lesion_mass_g.shape[0]
    grid = np.asarray(plan.grid_h)
    cut_rule, outcome_rule, follow_rule = _engine_rules()
    recs = []
    for spec in plan.courses:
        cut = cut_rule(plan, spec, model, draws)
        ys = solve_reference(real, cut.schedule, grid, rtol=rtol, atol=atol, method=method)
        ys = _pad_lesions(ys, slots)
        sol = Solution(jnp.asarray(grid), jax.tree_util.tree_map(jnp.asarray, ys), jnp.asarray(True), jnp.asarray(0))
        recs.append(outcome_rule(plan, spec, model, draws, inputs, cut, sol))
    return jax.tree_util.tree_map(np.asarray, follow_rule(plan, recs).columns())


@functools.cache
def _engine_rules():
    """The engine's cut, outcome and follow rules, compiled once per protocol (run eagerly, op by
    op, they would cost more than the scipy solve, which a loop around numpy rules would not)."""
    import equinox as eqx

    from raisim.engine.course import course_cut, course_outcome, follow_course

    return eqx.filter_jit(course_cut), eqx.filter_jit(course_outcome), eqx.filter_jit(follow_course)


def _pad_lesions(ys, slots: int):
    """Lesion-axis states of the real lesions padded to the cohort's lesion slots (copies of the
    first lesion: finite, and masked out by the outcome rules)."""

    import equinox as eqx
    import jax

    def pad(x):
        return np.concatenate([x, np.repeat(x[..., :1], slots - x.shape[-1], axis=-1)], axis=-1)

    ys = eqx.tree_at(lambda y: y.nis, ys, jax.tree_util.tree_map(pad, ys.nis))
    return eqx.tree_at(
        lambda y: (y.iodine.lesion, y.iodine.cum_lesion), ys, (pad(ys.iodine.lesion), pad(ys.iodine.cum_lesion))
    )


__all__ = [
    "METHODS",
    "Params",
    "Layout",
    "Segment",
    "breakpoints",
    "patient_model",
    "reference_patient",
    "solve_reference",
    "solve_reference_with_stats",
]
