"""Block 7 — grade ≥ 3 adverse events and discontinuation.

A constant hazard per drug over the days on that drug (label long-term
rates); hazards of combined drugs add. Units: hazards 1/d, time d.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ..io.cards import card_values


class Toxicity(eqx.Module):
    """Grade ≥ 3 AE hazards of the protocol's drugs.

    ``hazard_per_day``: constant hazard per drug, 1/day; ``discontinuation_probability``:
    probability in [0, 1] of stopping the TKI after a grade ≥ 3 AE.
    """

    hazard_per_day: Float[Array, " d"]
    discontinuation_probability: Float[Array, ""]

    @classmethod
    def from_cards(cls, drugs: tuple[str, ...], overrides: dict[str, float] | None = None) -> Toxicity:
        """Typical hazards (1/day) of ``drugs`` from the toxicity card; ``overrides`` replace card values by name."""
        v = dict(card_values("biology/toxicity.yaml"))
        v.update(overrides or {})
        return cls(
            hazard_per_day=jnp.asarray([v[f"hazard_per_day_{d}"] for d in drugs], dtype=jnp.float64),
            discontinuation_probability=jnp.asarray(v["discontinuation_probability"]),
        )

    def with_drug_slots(self, slots: int) -> Toxicity:
        """These hazards followed by padding drug slots of zero hazard up to ``slots`` (the last axis)."""
        h = self.hazard_per_day
        extra = slots - h.shape[-1]
        if extra <= 0:
            return self
        fill = jnp.zeros((*h.shape[:-1], extra), h.dtype)
        return eqx.tree_at(lambda t: t.hazard_per_day, self, jnp.concatenate([h, fill], axis=-1))

    def p_grade3(self, days_on_drug: Float[Array, " d"]) -> Float[Array, ""]:
        """P(at least one grade ≥ 3 AE) over ``days_on_drug`` (days on each drug); a probability in [0, 1]."""
        return p_grade3(self.hazard_per_day, days_on_drug)

    def p_discontinuation(self, days_on_drug: Float[Array, " d"]) -> Float[Array, ""]:
        """P(discontinuing the TKI after a grade ≥ 3 AE) over ``days_on_drug`` (days); a probability in [0, 1]."""
        return self.discontinuation_probability * self.p_grade3(days_on_drug)

    def ae_day_on_tki(self, days_on_drug: Float[Array, " d"], u: Float[Array, ""]) -> Int[Array, ""]:
        """The day on TKI (1-based) of the patient's first grade ≥ 3 AE, or :data:`NO_DAY` for none.

        The event falls on the ``n``-th day on TKI, the first whole day at which the cumulative
        hazard Σ_d hazard_d · min(n, days_d) reaches −ln(u); none if that needs more days than the
        course has. The cumulative hazard is piecewise linear in n, so n is found exactly, for
        courses of any length. ``days_on_drug``: days on each drug; ``u``: a uniform on [0, 1).
        """
        days = jnp.asarray(days_on_drug)
        knots = jnp.sort(jnp.concatenate([jnp.zeros(1, days.dtype), days]))
        cum = jnp.sum(self.hazard_per_day[None, :] * jnp.minimum(knots[:, None], days[None, :]), axis=1)
        target = -jnp.log(jnp.maximum(u, 1e-300))
        n = jnp.clip(jnp.ceil(jnp.interp(target, cum, knots)), 1.0, knots[-1])
        return jnp.where((target <= cum[-1]) & (knots[-1] >= 1.0), n.astype(jnp.int64), NO_DAY)


#: "never": the AE day of a patient without an AE, the study day of padding events.
NO_DAY = 10**6


def p_grade3(hazard_per_day: Float[Array, " d"], days_on_drug: Float[Array, " d"]) -> Float[Array, ""]:
    """P(at least one grade ≥ 3 AE) with constant hazards (1/day) over days on each drug; in [0, 1].

    The one rule behind :meth:`Toxicity.p_grade3`, the engine and the calibration's AE rows.
    """
    return 1.0 - jnp.exp(-jnp.sum(hazard_per_day * days_on_drug))


def without_adverse_events(overrides: dict[str, dict] | None = None) -> dict[str, dict]:
    """``overrides`` (``{block: {name: value}}``, card units) with every grade ≥ 3 AE hazard of the
    toxicity card set to 0 /day: the patient completes the planned course whatever the seed draws.

    For questions about the TKI's biology under the full course (the facts' NIS curve, the cards'
    checks), where an AE drawn for a seed would cut the course short. Returns a new dict.
    """
    out = {block: dict(values) for block, values in (overrides or {}).items()}
    hazards = {k: 0.0 for k in card_values("biology/toxicity.yaml") if k.startswith("hazard_per_day_")}
    out.setdefault("toxicity", {}).update(hazards)
    return out
