"""Block 7 — grade ≥ 3 adverse events and discontinuation.

A constant hazard per drug over the days on that drug (label long-term
rates); hazards of combined drugs add. Units: hazards 1/d, time d.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .params import card_values


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

    def p_grade3(self, days_on_drug: Float[Array, " d"]) -> Float[Array, ""]:
        """P(at least one grade ≥ 3 AE) over ``days_on_drug`` (days on each drug); a probability in [0, 1]."""
        return 1.0 - jnp.exp(-jnp.sum(self.hazard_per_day * days_on_drug))

    def p_discontinuation(self, days_on_drug: Float[Array, " d"]) -> Float[Array, ""]:
        """P(discontinuing the TKI after a grade ≥ 3 AE) over ``days_on_drug`` (days); a probability in [0, 1]."""
        return self.discontinuation_probability * self.p_grade3(days_on_drug)

    def draw_event(self, days_on_drug: np.ndarray, u_event: float, u_stop: float) -> dict:
        """One patient's grade ≥ 3 AE, from two uniforms on [0, 1) (seeded by the caller).

        ``days_on_drug``: days on each drug (hazards are 1/day).

        The event falls on the ``n``-th day on TKI, the first whole day at which the
        cumulative hazard Σ_d hazard_d · min(n, days_d) reaches −ln(u_event); none if
        that needs more days than the course has. The patient then stops the TKI if
        ``u_stop`` < the discontinuation probability.

        Returns ``grade3_ae``, ``ae_day_on_tki`` (n, 1-based, or None) and ``discontinued``.
        """
        days = np.asarray(days_on_drug, dtype=float)
        hazard = np.asarray(self.hazard_per_day, dtype=float)
        target = -math.log(max(u_event, 1e-300))
        n_max = int(days.max()) if days.size else 0
        n = np.arange(1, n_max + 1)
        cum = (hazard[None, :] * np.minimum(n[:, None], days[None, :])).sum(axis=1)
        hit = np.nonzero(cum >= target)[0]
        if hit.size == 0:
            return {"grade3_ae": False, "ae_day_on_tki": None, "discontinued": False}
        stop = bool(u_stop < float(self.discontinuation_probability))
        return {"grade3_ae": True, "ae_day_on_tki": int(n[hit[0]]), "discontinued": stop}
