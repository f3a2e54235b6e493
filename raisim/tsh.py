"""Serum TSH as a forcing term: rhTSH injections or thyroid-hormone withdrawal.

rhTSH (0.9 mg IM) follows a one-compartment model with first-order absorption,
scaled so one injection peaks at the label's Cmax; withdrawal holds TSH at a
plateau in a window before each administration. Between stimulations TSH is
suppressed by levothyroxine. Units: time h, TSH mU/L.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .params import card_values


class TSHForcing(eqx.Module):
    """Serum TSH over time for one schedule of stimulations.

    Event times (rhTSH injections, withdrawal windows) in h; rate constants ``ka_per_h``
    and ``ke_per_h`` in 1/h; TSH levels in mU/L. Call it with a time (h) to get TSH (mU/L).
    """

    injection_times_h: Float[Array, " m"]
    withdrawal_start_h: Float[Array, " w"]
    withdrawal_end_h: Float[Array, " w"]
    ka_per_h: Float[Array, ""]
    ke_per_h: Float[Array, ""]
    scale_mu_per_l: Float[Array, ""]
    withdrawal_mu_per_l: Float[Array, ""]
    suppressed_mu_per_l: Float[Array, ""]

    @classmethod
    def build(
        cls, method: str, administration_times_h, injection_days_before, n_slots: int | None = None
    ) -> TSHForcing:
        """Stimulation before each administration time (hours).

        Args:
            method: ``"rhTSH"``, ``"withdrawal"`` or anything else for none (TSH stays suppressed).
            administration_times_h: radioiodine administration times, h.
            injection_days_before: rhTSH injections, days before each administration.
            n_slots: pads the event arrays to a fixed number of administrations (a count) so
                that schedules with different numbers of scans share one compiled shape.
        """
        v = card_values("biology/tsh.yaml")
        ka = v["rhtsh_ka_per_h"]
        ke = math.log(2.0) / v["rhtsh_t_half_h"]
        tmax = math.log(ka / ke) / (ka - ke)
        peak_unit = math.exp(-ke * tmax) - math.exp(-ka * tmax)
        inj, ws, we = [], [], []
        for t in administration_times_h:
            if method == "rhTSH":
                inj += [t - 24.0 * d for d in injection_days_before]
            elif method == "withdrawal":
                ws.append(t - 24.0 * v["withdrawal_days_before"])
                we.append(t + 48.0)
        far = 1e12  # padding: an event that never happens
        n = max(n_slots or 0, len(administration_times_h), 1)

        def pad(x: list[float], size: int, fill: float) -> jnp.ndarray:
            return jnp.asarray(sorted(x) + [fill] * (size - len(x)), dtype=jnp.float64)

        return cls(
            injection_times_h=pad(inj, n * max(len(injection_days_before), 1), far),
            withdrawal_start_h=pad(ws, n, far),
            withdrawal_end_h=pad(we, n, far + 1.0),
            ka_per_h=jnp.asarray(ka),
            ke_per_h=jnp.asarray(ke),
            scale_mu_per_l=jnp.asarray(v["rhtsh_cmax_mu_per_l"] / peak_unit),
            withdrawal_mu_per_l=jnp.asarray(v["withdrawal_tsh_mu_per_l"]),
            suppressed_mu_per_l=jnp.asarray(v["suppressed_tsh_mu_per_l"]),
        )

    def jump_times_h(self) -> Float[Array, " j"]:
        """Times (h) where TSH has a kink or a step (for the step-size controller)."""
        return jnp.concatenate([self.injection_times_h, self.withdrawal_start_h, self.withdrawal_end_h])

    def __call__(self, t: Float[Array, ""]) -> Float[Array, ""]:
        """Serum TSH at time ``t`` (h), mU/L."""
        s = t - self.injection_times_h
        on = s > 0.0
        ss = jnp.where(on, s, 0.0)
        rh = jnp.sum(jnp.where(on, jnp.exp(-self.ke_per_h * ss) - jnp.exp(-self.ka_per_h * ss), 0.0))
        inside = (t >= self.withdrawal_start_h) & (t < self.withdrawal_end_h)
        wd = jnp.where(jnp.any(inside), self.withdrawal_mu_per_l, 0.0)
        return self.suppressed_mu_per_l + self.scale_mu_per_l * rh + wd
