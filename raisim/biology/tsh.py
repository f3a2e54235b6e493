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
from jaxtyping import Array, Float, Int

from ..io.cards import card_values


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
    def from_events(
        cls,
        injection_times_h: Float[Array, " m"],
        withdrawal_start_h: Float[Array, " w"],
        withdrawal_end_h: Float[Array, " w"],
    ) -> TSHForcing:
        """TSH of the given stimulation events (h; padding events at a far-future time), with the
        card's rhTSH kinetics and TSH levels."""
        v = card_values("biology/tsh.yaml")
        ka = v["rhtsh_ka_per_h"]
        ke = math.log(2.0) / v["rhtsh_t_half_h"]
        tmax = math.log(ka / ke) / (ka - ke)
        peak_unit = math.exp(-ke * tmax) - math.exp(-ka * tmax)
        f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
        return cls(
            injection_times_h=f(injection_times_h),
            withdrawal_start_h=f(withdrawal_start_h),
            withdrawal_end_h=f(withdrawal_end_h),
            ka_per_h=f(ka),
            ke_per_h=f(ke),
            scale_mu_per_l=f(v["rhtsh_cmax_mu_per_l"] / peak_unit),
            withdrawal_mu_per_l=f(v["withdrawal_tsh_mu_per_l"]),
            suppressed_mu_per_l=f(v["suppressed_tsh_mu_per_l"]),
        )

    @classmethod
    def build(cls, method: str, administration_days, injection_days_before, n_slots: int | None = None) -> TSHForcing:
        """Stimulation before each radioiodine administration (:func:`stimulation_events`).

        **Arguments:**

        - `method`: ``"rhTSH"``, ``"withdrawal"`` or anything else for none (TSH stays suppressed).
        - `administration_days`: study days of the radioiodine administrations.
        - `injection_days_before`: rhTSH injections, days before each administration.
        - `n_slots`: pads the event arrays to a fixed number of administrations (a count) so
          that schedules with different numbers of scans share one compiled shape.
        """
        ev = stimulation_events(method, administration_days, injection_days_before, n_slots)
        return cls.from_events(ev.injection_h, ev.withdrawal_start_h, ev.withdrawal_end_h)

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


FAR_FUTURE_H = 1e12  # padding: an event that never happens (as raisim.protocol.schedule.FAR_FUTURE_H)
NO_DAY = 10**6  # the study day of a padding event


class StimulationEvents(eqx.Module):
    """TSH stimulation events before radioiodine administrations, padded to fixed sizes.

    Times in h (t = 0 at the first TKI dose; padding at a far-future time); ``*_day``: the study day
    of the administration each event belongs to (:data:`NO_DAY` for padding), so a schedule cut at
    a discontinuation drops the events of administrations that no longer happen.
    """

    injection_h: Float[Array, " m"]
    injection_day: Int[Array, " m"]
    withdrawal_start_h: Float[Array, " w"]
    withdrawal_end_h: Float[Array, " w"]
    withdrawal_day: Int[Array, " w"]


def stimulation_events(
    method: str, administration_days, injection_days_before, n_slots: int | None = None
) -> StimulationEvents:
    """The rhTSH injections or withdrawal windows before each administration (study days).

    ``method``: ``"rhTSH"`` (injections ``injection_days_before`` days before each administration),
    ``"withdrawal"`` (TSH raised from the card's ``withdrawal_days_before`` days before to 48 h
    after), anything else none; ``n_slots``: administrations to pad to (a count). The one rule
    behind every schedule of every engine entry point.
    """
    wd_days = card_values("biology/tsh.yaml")["withdrawal_days_before"]
    inj, inj_day, ws, we, wday = [], [], [], [], []
    for d in sorted(administration_days):
        t = 24.0 * (d - 1.0)
        if method == "rhTSH":
            inj += [t - 24.0 * b for b in injection_days_before]
            inj_day += [d] * len(injection_days_before)
        elif method == "withdrawal":
            ws.append(t - 24.0 * wd_days)
            we.append(t + 48.0)
            wday.append(d)
    n = max(n_slots or 0, len(administration_days), 1)
    n_inj = n * max(len(injection_days_before), 1)
    order = sorted(range(len(inj)), key=lambda k: inj[k])

    def pad(x, size, fill, dtype):
        return jnp.asarray(list(x) + [fill] * (size - len(x)), dtype=dtype)

    return StimulationEvents(
        injection_h=pad([inj[k] for k in order], n_inj, FAR_FUTURE_H, jnp.float64),
        injection_day=pad([inj_day[k] for k in order], n_inj, NO_DAY, jnp.int64),
        withdrawal_start_h=pad(ws, n, FAR_FUTURE_H, jnp.float64),
        withdrawal_end_h=pad(we, n, FAR_FUTURE_H + 1.0, jnp.float64),
        withdrawal_day=pad(wday, n, NO_DAY, jnp.int64),
    )
