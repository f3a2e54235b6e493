"""Block 7 — grade ≥ 3 adverse events and discontinuation.

A constant hazard per drug over the days on that drug (label long-term
rates); hazards of combined drugs add. Units: hazards 1/d, time d.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .params import card_values


class Toxicity(eqx.Module):
    """Grade ≥ 3 AE hazards of the protocol's drugs."""

    hazard_per_day: Float[Array, " d"]
    discontinuation_probability: Float[Array, ""]

    @classmethod
    def from_cards(cls, drugs: tuple[str, ...], overrides: dict[str, float] | None = None) -> Toxicity:
        v = dict(card_values("biology/toxicity.yaml"))
        v.update(overrides or {})
        return cls(
            hazard_per_day=jnp.asarray([v[f"hazard_per_day_{d}"] for d in drugs], dtype=jnp.float64),
            discontinuation_probability=jnp.asarray(v["discontinuation_probability"]),
        )

    def p_grade3(self, days_on_drug: Float[Array, " d"]) -> Float[Array, ""]:
        """P(at least one grade ≥ 3 AE) over the given days on each drug."""
        return 1.0 - jnp.exp(-jnp.sum(self.hazard_per_day * days_on_drug))

    def p_discontinuation(self, days_on_drug: Float[Array, " d"]) -> Float[Array, ""]:
        """P(discontinuing the TKI after a grade ≥ 3 AE)."""
        return self.discontinuation_probability * self.p_grade3(days_on_drug)
