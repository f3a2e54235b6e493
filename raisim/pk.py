"""Block 1 — TKI pharmacokinetics.

Oral dosing with first-order absorption after a lag, one- or two-compartment
disposition, optional CYP3A4 autoinduction (an enzyme state that scales
clearance). Parameters are apparent (CL/F, V/F). Repeated doses are exact: the
depot is linear first-order, so its absorption flux is the closed-form
superposition over doses and enters the central compartment as a forcing
term; its discontinuities (t_dose + t_lag) are passed to the step-size
controller as jump times.

Units: time h, amounts mg, volumes L, clearances L/h, concentrations ng/mL
(total) and nM (unbound).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .params import card_values, load_card

DRUG_CARD_DIR = "drugs"


class PK(eqx.Module):
    """Population-typical PK of the drugs of one protocol, stacked along a drug axis.

    Every field has shape ``(n_drugs,)``, in the protocol's drug order.
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
    induction_rate_per_h: Float[Array, " d"]
    names: tuple[str, ...] = eqx.field(static=True)

    @classmethod
    def from_cards(cls, drugs: tuple[str, ...], overrides: dict[str, dict[str, float]] | None = None) -> PK:
        """Stack the drug cards ``models/drugs/<drug>.yaml`` (typical values)."""
        rows = []
        for d in drugs:
            v = dict(card_values(f"{DRUG_CARD_DIR}/{d}.yaml"))
            v.update((overrides or {}).get(d, {}))
            rows.append(v)

        def col(key: str) -> jnp.ndarray:
            return jnp.asarray([r[key] for r in rows], dtype=jnp.float64)

        return cls(
            ka_per_h=col("ka_per_h"),
            tlag_h=col("tlag_h"),
            f_bio=col("f_bio"),
            cl_l_per_h=col("cl_l_per_h"),
            v1_l=col("v1_l"),
            q_l_per_h=col("q_l_per_h"),
            v2_l=col("v2_l"),
            fu=col("fu"),
            mw_g_per_mol=col("mw_g_per_mol"),
            induction_fold=col("induction_fold"),
            induction_rate_per_h=jnp.asarray(
                [math.log(2.0) / r["induction_t_half_h"] for r in rows], dtype=jnp.float64
            ),
            names=tuple(drugs),
        )

    # -- state ---------------------------------------------------------------

    def initial_state(self) -> dict[str, Float[Array, " d"]]:
        """Drug-free state: central and peripheral amounts (mg), enzyme fold (1 = uninduced)."""
        z = jnp.zeros_like(self.ka_per_h)
        return {"central_mg": z, "peripheral_mg": z, "enzyme_fold": jnp.ones_like(z)}

    def absorption_rate_mg_per_h(
        self, t: Float[Array, ""], dose_times_h: Float[Array, "d n"], dose_mg: Float[Array, "d n"]
    ) -> Float[Array, " d"]:
        """Absorption flux from the gut depot into the central compartment, mg/h.

        Closed-form superposition of first-order absorption after a lag; padded
        doses carry 0 mg.
        """
        ka = self.ka_per_h[:, None]
        s = t - dose_times_h - self.tlag_h[:, None]
        active = s >= 0.0
        term = jnp.where(active, jnp.exp(-ka * jnp.where(active, s, 0.0)), 0.0)
        return jnp.sum(self.f_bio[:, None] * dose_mg * ka * term, axis=1)

    def depot_mg(
        self, t: Float[Array, ""], dose_times_h: Float[Array, "d n"], dose_mg: Float[Array, "d n"]
    ) -> Float[Array, " d"]:
        """Amount still in the gut depot (bioavailable part), mg; lagged doses count in full."""
        ka = self.ka_per_h[:, None]
        given = t >= dose_times_h
        s = t - dose_times_h - self.tlag_h[:, None]
        frac = jnp.where(s > 0.0, jnp.exp(-ka * jnp.where(s > 0.0, s, 0.0)), 1.0)
        return jnp.sum(jnp.where(given, self.f_bio[:, None] * dose_mg * frac, 0.0), axis=1)

    def vector_field(self, state: dict, absorption_mg_per_h: Float[Array, " d"]) -> dict:
        """d(state)/dt given the absorption flux (mg/h)."""
        c1 = state["central_mg"] / self.v1_l  # mg/L
        c2 = state["peripheral_mg"] / self.v2_l
        enzyme = state["enzyme_fold"]
        elim = self.cl_l_per_h * enzyme * c1
        dist = self.q_l_per_h * (c1 - c2)
        # autoinduction: enzyme relaxes towards its induced level while drug is present
        # (saturating in total concentration, half-maximal at 1 ng/mL).
        conc_ng_ml = c1 * 1000.0
        target = 1.0 + (self.induction_fold - 1.0) * conc_ng_ml / (1.0 + conc_ng_ml)
        return {
            "central_mg": absorption_mg_per_h - elim - dist,
            "peripheral_mg": dist,
            "enzyme_fold": self.induction_rate_per_h * (target - enzyme),
        }

    # -- observables -----------------------------------------------------------

    def total_ng_per_ml(self, state: dict) -> Float[Array, "... d"]:
        """Total plasma concentration, ng/mL (mg/L × 1000)."""
        return state["central_mg"] / self.v1_l * 1000.0

    def unbound_nM(self, state: dict) -> Float[Array, "... d"]:
        """Unbound plasma concentration, nM (ng/mL × fu / MW × 1000)."""
        return self.total_ng_per_ml(state) * self.fu / self.mw_g_per_mol * 1000.0


def drug_targets(drug: str) -> tuple[str, ...]:
    """Molecular targets of a drug, from its card's metadata."""
    return tuple(load_card(f"{DRUG_CARD_DIR}/{drug}.yaml").metadata.get("targets", ()))


def one_compartment_oral_closed_form(
    t_h, dose_times_h, dose_mg, *, ka_per_h: float, cl_l_per_h: float, v_l: float, tlag_h: float = 0.0, f: float = 1.0
):
    """Closed-form concentration (mg/L) of a one-compartment oral model with repeated doses.

    The reference solution the ODE engine is tested against (Bateman function
    superposed over doses).
    """
    import numpy as np

    t = np.asarray(t_h, dtype=float)[:, None]
    s = t - np.asarray(dose_times_h, dtype=float)[None, :] - tlag_h
    ke = cl_l_per_h / v_l
    with np.errstate(over="ignore", invalid="ignore"):
        bateman = f * ka_per_h / (v_l * (ka_per_h - ke)) * (np.exp(-ke * s) - np.exp(-ka_per_h * s))
    return np.sum(np.where(s > 0, bateman * np.asarray(dose_mg)[None, :], 0.0), axis=1)
