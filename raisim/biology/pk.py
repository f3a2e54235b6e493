"""Block 1 — TKI pharmacokinetics.

Oral dosing with first-order absorption after a lag (or a zero-order IV
infusion, for antibodies), one- or two-compartment disposition, optional
CYP3A4 autoinduction (an enzyme state that scales clearance). Parameters are
apparent (CL/F, V/F) and may carry covariates (sex, weight). Repeated doses
are exact: the depot is linear first-order (or an infusion window), so its
input flux is the closed-form superposition over doses and enters the
central compartment as a forcing term; its discontinuities (t_dose + t_lag,
infusion start and end) are jump times of the step-size controller.

Units: time h, amounts mg, volumes L, clearances L/h, concentrations ng/mL
(total) and nM (unbound).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ..io.cards import card_values

DRUG_CARD_DIR = "drugs"

#: Card keys of the structural PK parameters, in the order of :class:`PK`'s fields.
PK_KEYS = (
    "ka_per_h",
    "tlag_h",
    "f_bio",
    "cl_l_per_h",
    "v1_l",
    "q_l_per_h",
    "v2_l",
    "fu",
    "mw_g_per_mol",
    "induction_fold",
    "induction_ec50_ng_ml",
    "infusion_h",
)

REFERENCE_WEIGHT_KG = 70.0

#: The PK values of a padding drug slot (:meth:`PK.with_drug_slots`): no clearance, distribution,
#: induction or unbound fraction (so no effect anywhere), unit volumes and molar mass (no division
#: by zero). Its doses are padding (never given).
INERT_DRUG: dict[str, float] = {
    "ka_per_h": 1.0,
    "tlag_h": 0.0,
    "f_bio": 0.0,
    "cl_l_per_h": 0.0,
    "v1_l": 1.0,
    "q_l_per_h": 0.0,
    "v2_l": 1.0,
    "fu": 0.0,
    "mw_g_per_mol": 1.0,
    "induction_fold": 1.0,
    "induction_ec50_ng_ml": 1.0,
    "infusion_h": 0.0,
    "induction_rate_per_h": 0.0,
}


def drug_values(drug: str, sex: str | None = None, weight_kg: float | None = None) -> dict[str, float]:
    """Typical PK values of a drug card, with the sex and weight covariates applied when given.

    ``cov_cl_female``/``cov_cl_male`` multiply CL/F; ``cov_cl_weight_exp`` and
    ``cov_v_weight_exp`` scale CL/F and V/F by (weight / 70 kg)^exponent.
    Without covariates the card's population-typical values are returned.
    ``sex``: ``"female"``/``"male"``; ``weight_kg``: body weight, kg. Values in the card's
    units (CL/F and Q L/h, V1/F and V2/F L, ka 1/h, lag h, MW g/mol, EC50 ng/mL).
    """
    v = dict(card_values(f"{DRUG_CARD_DIR}/{drug}.yaml"))
    if sex is not None and f"cov_cl_{sex}" in v:
        v["cl_l_per_h"] *= v[f"cov_cl_{sex}"]
    if weight_kg is not None:
        w = weight_kg / REFERENCE_WEIGHT_KG
        v["cl_l_per_h"] *= w ** v.get("cov_cl_weight_exp", 0.0)
        scale_v = w ** v.get("cov_v_weight_exp", 0.0)
        v["v1_l"] *= scale_v
        v["v2_l"] *= scale_v
    return v


class DoseTable(eqx.Module):
    """A dosing history prepared for O(log n) input evaluation (see :meth:`PK.dose_table`).

    ``start_h``: absorption (or infusion) start of each dose, h; ``running_mg``:
    running sum of the still-absorbing amounts at each start, mg; ``dose_mg``:
    the dose amounts, mg. Shapes ``(n_drugs, n_doses)``.
    """

    start_h: Float[Array, "d n"]
    running_mg: Float[Array, "d n"]
    dose_mg: Float[Array, "d n"]


class PKState(eqx.Module):
    """The PK state per drug ``d`` (leading time axis ``...`` on a solution): central and
    peripheral amounts, mg; the CYP3A4 enzyme fold (1 = uninduced; its rate per h in a derivative)."""

    # fields in alphabetical order: the solver's flat state vector keeps the order it had as a dict
    central_mg: Float[Array, "... d"]
    enzyme_fold: Float[Array, "... d"]
    peripheral_mg: Float[Array, "... d"]


class PK(eqx.Module):
    """PK of the drugs of one protocol, stacked along a drug axis.

    Every field has shape ``(n_drugs,)`` (one patient) or ``(n, n_drugs)`` for a
    batch of patients sampled by :mod:`raisim.biology.population_pk` (vmap over the first axis).
    Units follow the field names: ``ka_per_h`` and ``induction_rate_per_h`` 1/h, ``tlag_h``
    and ``infusion_h`` h (``infusion_h`` 0 = oral), ``cl_l_per_h``/``q_l_per_h`` L/h (apparent,
    CL/F), ``v1_l``/``v2_l`` L (apparent), ``mw_g_per_mol`` g/mol, ``induction_ec50_ng_ml``
    ng/mL; ``f_bio`` and ``fu`` are fractions in [0, 1], ``induction_fold`` a fold of CL;
    ``present``: False for a padding slot (:meth:`with_drug_slots`).

    The drugs are data, not part of a compiled program: a drug slot is a row of these arrays,
    and a padding slot (an inert drug that is never given, :data:`INERT_DRUG`) lets protocols of
    one and of two drugs share one program (issue 38).
    """

    ka_per_h: Float[Array, " d"]
    tlag_h: Float[Array, " d"]
    f_bio: Float[Array, " d"]
    cl_l_per_h: Float[Array, " d"]
    v1_l: Float[Array, " d"]
    q_l_per_h: Float[Array, " d"]
    v2_l: Float[Array, " d"]
    fu: Float[Array, " d"]
    mw_g_per_mol: Float[Array, " d"]
    induction_fold: Float[Array, " d"]
    induction_ec50_ng_ml: Float[Array, " d"]
    infusion_h: Float[Array, " d"]
    induction_rate_per_h: Float[Array, " d"]
    present: Bool[Array, " d"]

    @classmethod
    def from_cards(
        cls,
        drugs: tuple[str, ...],
        overrides: dict[str, dict[str, float]] | None = None,
        *,
        sex: str | None = None,
        weight_kg: float | None = None,
    ) -> PK:
        """Stack the drug cards ``models/drugs/<drug>.yaml`` (typical values, covariates applied).

        ``overrides``: card values per drug (``{drug: {key: value}}``, card units); ``sex``:
        ``"female"``/``"male"``; ``weight_kg``: body weight, kg (see :func:`drug_values`).
        """
        rows = []
        for d in drugs:
            v = drug_values(d, sex, weight_kg)
            v.update((overrides or {}).get(d, {}))
            rows.append(v)
        cols = {k: jnp.asarray([r[k] for r in rows], dtype=jnp.float64) for k in PK_KEYS}
        rate = jnp.asarray([math.log(2.0) / r["induction_t_half_h"] for r in rows], dtype=jnp.float64)
        return cls(**cols, induction_rate_per_h=rate, present=jnp.ones(len(drugs), bool))

    def with_drug_slots(self, slots: int) -> PK:
        """These drugs followed by inert padding slots (:data:`INERT_DRUG`, ``present`` False) up to
        ``slots`` along the last (drug) axis; unchanged when there are that many already.

        An inert slot never absorbs anything (its doses are padding), eliminates and distributes
        nothing and has no unbound fraction: its states stay at the drug-free state with zero
        derivatives and zero Jacobian, so it adds nothing to any other block.
        """
        extra = slots - self.present.shape[-1]
        if extra < 0:
            raise ValueError(f"{self.present.shape[-1]} drugs do not fit {slots} drug slots")
        if extra == 0:
            return self

        def pad(x, value):
            fill = jnp.full((*x.shape[:-1], extra), value, x.dtype)
            return jnp.concatenate([x, fill], axis=-1)

        return PK(
            **{k: pad(getattr(self, k), v) for k, v in INERT_DRUG.items()},
            present=pad(self.present, False),
        )

    @property
    def is_linear(self) -> Array:
        """True per drug when no autoinduction acts (closed-form superposition applies)."""
        return self.induction_fold == 1.0

    # -- state ---------------------------------------------------------------

    def initial_state(self) -> PKState:
        """Drug-free state: central and peripheral amounts (mg), enzyme fold (1 = uninduced)."""
        z = jnp.zeros_like(self.ka_per_h)
        return PKState(central_mg=z, peripheral_mg=z, enzyme_fold=jnp.ones_like(z))

    def dose_table(self, dose_times_h: Float[Array, "d n"], dose_mg: Float[Array, "d n"]) -> DoseTable:
        """Precompute the input of a dosing history so that one evaluation costs O(log n).

        ``dose_times_h``: dose times per drug, h; ``dose_mg``: amounts, mg (shape ``(n_drugs, n)``).
        For first-order absorption the superposition Σ_i A_i e^{−ka (t − t_i − t_lag)}
        over doses already absorbing equals e^{−ka (t − τ_k)} S_k, with τ_k the
        last absorption start ≤ t and S_k = S_{k−1} e^{−ka (τ_k − τ_{k−1})} + A_k
        a running sum computed once — the same closed form, not an approximation.
        Dose times must be sorted per drug (padding at the end), as the schedule
        builder produces them.
        """
        start = dose_times_h + jnp.where(self.infusion_h > 0, 0.0, self.tlag_h)[:, None]

        def running(ka, starts, amounts):
            def step(carry, x):
                s_prev, t_prev = carry
                t_i, a_i = x
                gap = jnp.where(jnp.isfinite(t_i - t_prev), t_i - t_prev, 0.0)
                s_new = s_prev * jnp.exp(-ka * gap) + a_i
                return (s_new, t_i), s_new

            _, out = jax.lax.scan(step, (jnp.zeros_like(amounts[0]), starts[0]), (starts, amounts))
            return out

        prefix = jax.vmap(running)(self.ka_per_h, start, dose_mg)
        return DoseTable(start_h=start, running_mg=prefix, dose_mg=dose_mg)

    def input_rate_mg_per_h(self, t: Float[Array, ""], table: DoseTable) -> Float[Array, " d"]:
        """Drug input into the central compartment at time ``t`` (h), mg/h.

        Oral: first-order absorption after a lag, superposed over every dose
        (exactly, through the running sum of :meth:`dose_table`). IV infusion
        (``infusion_h`` > 0): dose / duration while the latest infusion runs
        (infusions must not overlap: the duration is shorter than the interval).
        """

        def per_drug(ka, f, dur, starts, running, amounts):
            k = jnp.searchsorted(starts, t, side="right") - 1
            kk = jnp.maximum(k, 0)
            since = t - starts[kk]
            oral = f * ka * running[kk] * jnp.exp(-ka * jnp.maximum(since, 0.0))
            iv = jnp.where(since < dur, amounts[kk] / jnp.where(dur > 0, dur, 1.0), 0.0)
            return jnp.where(k >= 0, jnp.where(dur > 0, iv, oral), 0.0)

        return jax.vmap(per_drug)(
            self.ka_per_h, self.f_bio, self.infusion_h, table.start_h, table.running_mg, table.dose_mg
        )

    def jump_times_h(self, dose_times_h: Float[Array, "d n"]) -> Float[Array, " j"]:
        """Discontinuities of the input, h: dose times (``dose_times_h``, h), + lag (oral), + duration (infusion)."""
        end = jnp.where(self.infusion_h[:, None] > 0, self.infusion_h[:, None], self.tlag_h[:, None])
        return jnp.concatenate([jnp.ravel(dose_times_h), jnp.ravel(dose_times_h + end)])

    def vector_field(self, state: PKState, input_mg_per_h: Float[Array, " d"]) -> PKState:
        """d(state)/dt given the input flux into the central compartment (mg/h).

        Returns mg/h for ``central_mg`` and ``peripheral_mg`` and fold/h for ``enzyme_fold``.
        """
        c1 = state.central_mg / self.v1_l  # mg/L
        c2 = state.peripheral_mg / self.v2_l
        enzyme = state.enzyme_fold
        elim = self.cl_l_per_h * enzyme * c1
        dist = self.q_l_per_h * (c1 - c2)
        conc_ng_ml = jnp.maximum(c1, 0.0) * 1000.0
        target = 1.0 + (self.induction_fold - 1.0) * conc_ng_ml / (self.induction_ec50_ng_ml + conc_ng_ml)
        return PKState(
            central_mg=input_mg_per_h - elim - dist,
            peripheral_mg=dist,
            enzyme_fold=self.induction_rate_per_h * (target - enzyme),
        )

    # -- observables -----------------------------------------------------------

    def total_ng_per_ml(self, state: PKState) -> Float[Array, "... d"]:
        """Total plasma concentration, ng/mL (mg/L × 1000), from the state's ``central_mg`` (mg)."""
        return state.central_mg / self.v1_l * 1000.0

    def unbound_nM(self, state: PKState) -> Float[Array, "... d"]:
        """Unbound plasma concentration, nM (ng/mL × fu / MW × 1000)."""
        return self.total_ng_per_ml(state) * self.fu / self.mw_g_per_mol * 1000.0


def one_compartment_oral_closed_form(
    t_h, dose_times_h, dose_mg, *, ka_per_h: float, cl_l_per_h: float, v_l: float, tlag_h: float = 0.0, f: float = 1.0
):
    """Closed-form concentration (mg/L) of a one-compartment oral model with repeated doses.

    ``t_h`` and ``dose_times_h``: times, h; ``dose_mg``: amounts, mg; ``ka_per_h``: 1/h;
    ``cl_l_per_h``: L/h; ``v_l``: L; ``tlag_h``: h; ``f``: bioavailability in [0, 1].

    A textbook reference (Bateman function superposed over doses) that the ODE
    engine is tested against, written in numpy independently of :mod:`raisim.biology.population_pk`.
    """
    import numpy as np

    t = np.asarray(t_h, dtype=float)[:, None]
    s = t - np.asarray(dose_times_h, dtype=float)[None, :] - tlag_h
    ke = cl_l_per_h / v_l
    with np.errstate(over="ignore", invalid="ignore"):
        bateman = f * ka_per_h / (v_l * (ka_per_h - ke)) * (np.exp(-ke * s) - np.exp(-ka_per_h * s))
    return np.sum(np.where(s > 0, bateman * np.asarray(dose_mg)[None, :], 0.0), axis=1)
