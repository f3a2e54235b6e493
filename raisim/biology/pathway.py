"""Block 2 — MAPK signalling: ERK activity, feedback and HER3 escape.

ERK activity ``erk`` is a fraction of the untreated level. It relaxes quickly
towards a target set by two routes:

- the oncogenic **monomer** route (BRAF V600E), feedback-insensitive, blocked
  by BRAF V600E inhibitors;
- the **dimer** route (HER2/HER3 → RAS → RAF dimers), feedback-sensitive
  (its flux rises as ERK falls), driven by receptor input, paradoxically
  activated by BRAF inhibitors binding wild-type RAF.

MEK inhibitors scale both routes. Escape has two timescales: ``her3`` is
de-repressed within hours when ERK falls; ``adaptive`` HER2/HER3 signalling
builds over weeks following HER3. HER-kinase blockers (lapatinib) and
anti-HER3 antibodies cut the receptor input. Potency acts on unbound molar
concentrations supplied by the caller.

Units: time h, concentrations nM (unbound), activities as folds/fractions of
the untreated state; :meth:`Pathway.erk_output` puts ERK on a scale common to
all genotypes (the untreated RAS-driven tumour = 1) for the differentiation block.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..io.cards import card_values, load_card
from ..io.vocab import TARGET_IC50_KEYS

#: Molecular targets, in the column order of :attr:`Pathway.ic50_nM`.
TARGETS: tuple[str, ...] = tuple(TARGET_IC50_KEYS)


def target_inhibition(conc_unbound_nM: Float[Array, " d"], ic50_nM: Float[Array, "d k"]) -> Float[Array, " k"]:
    """Fractional inhibition of each target by all drugs (Bliss independence across drugs).

    **Arguments:**

    - `conc_unbound_nM`: unbound plasma concentration of each drug, nM.
    - `ic50_nM`: in-vivo unbound IC50 per drug and target, nM (``inf`` = no action).

    Returns each target's fractional inhibition in [0, 1] (dimensionless).
    """
    c = jnp.maximum(conc_unbound_nM, 0.0)[:, None]
    occ = jnp.where(jnp.isfinite(ic50_nM), c / (jnp.where(jnp.isfinite(ic50_nM), ic50_nM, 1.0) + c), 0.0)
    return 1.0 - jnp.prod(1.0 - occ, axis=0)


class PathwayState(eqx.Module):
    """The pathway state, each a fold of untreated (per h in a derivative; leading time axis on a
    solution): ERK activity, HER3 expression, the slow adaptive receptor escape."""

    # fields in alphabetical order: the solver's flat state vector keeps the order it had as a dict
    adaptive: Float[Array, ...]
    erk: Float[Array, ...]
    her3: Float[Array, ...]


class Pathway(eqx.Module):
    """MAPK pathway of one patient's tumour genotype, with the potencies of the protocol's drugs.

    ``*_rate_per_h``: first-order rate constants, 1/h; ``ic50_nM``: in-vivo unbound IC50 per
    drug and target (columns :data:`TARGETS`), nM (``inf`` = no action). The rest are
    dimensionless: ``monomer_share`` a fraction of untreated ERK flux, ``receptor_weight`` a
    fraction of the untreated dimer-route flux, ``feedback_k`` a fraction of untreated ERK,
    ``output_scale`` untreated ERK output relative to an untreated RAS-driven tumour, and the
    ``*_gain``/``her3_hill`` folds and exponents.
    """

    monomer_share: Float[Array, ""]
    feedback_k: Float[Array, ""]
    output_scale: Float[Array, ""]
    erk_rate_per_h: Float[Array, ""]
    paradox_gain: Float[Array, ""]
    receptor_weight: Float[Array, ""]
    her3_gain: Float[Array, ""]
    her3_hill: Float[Array, ""]
    her3_rate_per_h: Float[Array, ""]
    adaptive_gain: Float[Array, ""]
    adaptive_rate_per_h: Float[Array, ""]
    ic50_nM: Float[Array, "d k"]

    @classmethod
    def from_cards(cls, genotype: str, drugs: tuple[str, ...], overrides: dict[str, float] | None = None) -> Pathway:
        """Typical parameters for ``genotype`` and the IC50s of ``drugs`` from their cards.

        ``overrides`` replaces pathway-card values by name, and a drug's IC50 with
        the key ``"<card key>:<drug>"`` (e.g. ``"ic50_mek_nM:trametinib"``); values in the card
        units (IC50s nM unbound, half-lives h).
        """
        v = dict(card_values("biology/pathway.yaml"))
        v.update(overrides or {})
        rows = []
        for d in drugs:
            dv = card_values(f"drugs/{d}.yaml")
            targets = set(load_card(f"drugs/{d}.yaml").metadata.get("targets", ()))
            # an override "ic50_mek_nM:trametinib" replaces that drug's card value
            ic50 = {k: v.get(f"{TARGET_IC50_KEYS[k]}:{d}", dv.get(TARGET_IC50_KEYS[k])) for k in TARGETS}
            rows.append([ic50[k] if k in targets else math.inf for k in TARGETS])
        f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
        return cls(
            monomer_share=f(v[f"monomer_share_{genotype}"]),
            feedback_k=f(v[f"feedback_k_{genotype}"]),
            output_scale=f(v[f"erk_output_scale_{genotype}"]),
            erk_rate_per_h=f(math.log(2.0) / v["erk_t_half_h"]),
            paradox_gain=f(v["paradox_gain"]),
            receptor_weight=f(v["receptor_weight"]),
            her3_gain=f(v["her3_derepression_gain"]),
            her3_hill=f(v["her3_derepression_hill"]),
            her3_rate_per_h=f(math.log(2.0) / v["her3_t_half_h"]),
            adaptive_gain=f(v["adaptive_gain"]),
            adaptive_rate_per_h=f(math.log(2.0) / v["adaptive_t_half_h"]),
            ic50_nM=f(rows).reshape(len(drugs), len(TARGETS)),
        )

    def with_drug_slots(self, slots: int) -> Pathway:
        """These IC50s followed by padding drug slots that act on no target (``inf``) up to ``slots``
        rows (the drug axis, second to last)."""
        extra = slots - self.ic50_nM.shape[-2]
        if extra <= 0:
            return self
        ic50 = self.ic50_nM
        fill = jnp.full((*ic50.shape[:-2], extra, ic50.shape[-1]), jnp.inf, ic50.dtype)
        return eqx.tree_at(lambda pw: pw.ic50_nM, self, jnp.concatenate([ic50, fill], axis=-2))

    def initial_state(self) -> PathwayState:
        """Untreated steady state: every quantity is 1 (fold of untreated)."""
        one = jnp.ones_like(self.erk_rate_per_h)  # the model's float type (float64 unless cast)
        return PathwayState(erk=one, her3=one, adaptive=one)

    def erk_output(self, erk: Float[Array, ...]) -> Float[Array, ...]:
        """ERK output on a common scale across genotypes (untreated RAS-driven tumour = 1).

        ``erk`` is a fraction of this tumour's own untreated activity; BRAF V600E
        tumours start from a higher output, so the same fractional inhibition
        leaves them further above the differentiation threshold. Dimensionless.
        """
        return erk * self.output_scale

    def erk_target(self, state: PathwayState, inhibition: Float[Array, " k"]) -> Float[Array, ""]:
        """Quasi-steady ERK activity given the current feedback and receptor state.

        ``inhibition``: fractional inhibition in [0, 1] of each target (:func:`target_inhibition`);
        returns a fraction of this tumour's untreated ERK activity (dimensionless).
        """
        mek, braf_mono, raf_wt, her_kinase, her3_ab = (inhibition[i] for i in range(len(TARGETS)))
        erk = jnp.maximum(state.erk, 1e-9)
        k = self.feedback_k
        feedback_relief = (1.0 + k) / (k + erk)
        w = self.receptor_weight
        receptor = (1.0 - w) + w * state.her3 * state.adaptive * (1.0 - her_kinase) * (1.0 - her3_ab)
        paradox = 1.0 + self.paradox_gain * raf_wt * (1.0 - braf_mono * (1.0 - self.monomer_share))
        monomer = self.monomer_share * (1.0 - braf_mono)
        dimer = (1.0 - self.monomer_share) * receptor * feedback_relief * paradox
        return (1.0 - mek) * (monomer + dimer)

    def vector_field(self, state: PathwayState, inhibition: Float[Array, " k"]) -> PathwayState:
        """d(state)/dt given the fractional inhibition (in [0, 1]) of each target.

        Returns fold of untreated per h for ``erk``, ``her3`` and ``adaptive``.
        """
        erk = state.erk
        # ERK output represses HER3 transcription: the drop in output (common scale)
        # de-represses it, so high-output (BRAF V600E) tumours de-repress the most.
        drop = self.output_scale * jnp.clip(1.0 - erk, 0.0, 1.0)
        her3_target = 1.0 + self.her3_gain * drop**self.her3_hill
        adaptive_target = 1.0 + self.adaptive_gain * (state.her3 - 1.0)
        return PathwayState(
            erk=self.erk_rate_per_h * (self.erk_target(state, inhibition) - erk),
            her3=self.her3_rate_per_h * (her3_target - state.her3),
            adaptive=self.adaptive_rate_per_h * (adaptive_target - state.adaptive),
        )
