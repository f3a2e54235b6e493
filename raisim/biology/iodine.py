"""Block 4 — radioiodine biokinetics, per administration channel.

Each administration (baseline tracer, selection tracer, its I-131 projection,
the therapy) is a *channel* with unit administered activity (1 MBq) at its own
time and isotope. Kinetics are linear in activity, so actual activities are
obtained by scaling a channel, and channels superpose.

Compartments: gut (closed form: the oral dose enters at the administration
time), blood/extracellular iodide (``ecf``), a slow exchanging pool, normal
NIS-expressing tissues (stomach, salivary glands), and each lesion. Renal
excretion leaves from the ECF. Physical decay acts everywhere. Accumulators
track excreted and decayed activity (mass balance) and cumulated activities
(residence times) for dosimetry.

Units: time h, activity MBq per MBq administered, volumes L, clearances L/h.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..io.cards import card_values


class IodineState(eqx.Module):
    """The radioiodine state per administration channel ``c`` (and lesion ``l``), MBq per MBq
    administered; the ``cum_*`` accumulators are residence times, h (leading time axis on a
    solution; per h in a derivative). ``excreted`` and ``decayed`` close the mass balance."""

    # fields in alphabetical order: the solver's flat state vector keeps the order it had as a dict
    cum_blood: Float[Array, "... c"]
    cum_body: Float[Array, "... c"]
    cum_lesion: Float[Array, "... c l"]
    decayed: Float[Array, "... c"]
    ecf: Float[Array, "... c"]
    excreted: Float[Array, "... c"]
    lesion: Float[Array, "... c l"]
    nis_tissue: Float[Array, "... c"]
    slow: Float[Array, "... c"]


class IodineChannels(eqx.Module):
    """The administrations of one schedule: time (h), decay constant (1/h) and modifiers.

    ``renal_factor``: fold of euthyroid renal clearance (e.g. slower after withdrawal);
    ``uptake_factor``: fold of lesion uptake (dimensionless). One entry per channel.
    """

    admin_time_h: Float[Array, " c"]
    decay_per_h: Float[Array, " c"]
    renal_factor: Float[Array, " c"]
    uptake_factor: Float[Array, " c"]


class Iodine(eqx.Module):
    """Iodide kinetics of one patient with its lesions.

    Units follow the field names: rate constants ``*_per_h`` 1/h; volumes ``*_volume_l`` L;
    clearances ``*_l_per_h`` L/h (``lesion_uptake_l_per_h_per_g`` L/h per g of lesion at
    untreated membrane NIS); ``lesion_retention_t_half_h`` h (biological, untreated);
    ``lesion_mass_g`` g; ``body_mass_kg`` kg; ``retention_gain`` (fold half-life per fold of
    organification), ``blood_fraction_of_ecf`` and ``withdrawal_renal_factor`` (fold of
    euthyroid renal clearance) are dimensionless.
    """

    absorption_per_h: Float[Array, ""]
    ecf_volume_l: Float[Array, ""]
    renal_clearance_l_per_h: Float[Array, ""]
    slow_in_per_h: Float[Array, ""]
    slow_out_per_h: Float[Array, ""]
    nis_tissue_clearance_l_per_h: Float[Array, ""]
    nis_tissue_return_per_h: Float[Array, ""]
    lesion_uptake_l_per_h_per_g: Float[Array, ""]
    lesion_retention_t_half_h: Float[Array, ""]
    retention_gain: Float[Array, ""]
    blood_fraction_of_ecf: Float[Array, ""]
    blood_volume_l: Float[Array, ""]
    lesion_mass_g: Float[Array, " l"]
    body_mass_kg: Float[Array, ""]
    withdrawal_renal_factor: Float[Array, ""]  # data, not part of a compiled program (issue 38)

    @classmethod
    def from_cards(cls, lesion_mass_g, weight_kg: float, overrides: dict[str, float] | None = None) -> Iodine:
        """Typical parameters for a patient of ``weight_kg`` (kg) with lesions of the given masses (g).

        ``overrides`` replace iodine-card values by name (card units: L/kg, L/h, 1/h, h).
        """
        v = dict(card_values("biology/iodine.yaml"))
        v.update(overrides or {})
        f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
        v_ecf = v["ecf_volume_l_per_kg"] * weight_kg
        v_blood = v["blood_volume_l_per_kg"] * weight_kg
        return cls(
            absorption_per_h=f(v["gut_absorption_per_h"]),
            ecf_volume_l=f(v_ecf),
            renal_clearance_l_per_h=f(v["renal_clearance_l_per_h"]),
            slow_in_per_h=f(v["slow_pool_in_per_h"]),
            slow_out_per_h=f(v["slow_pool_out_per_h"]),
            nis_tissue_clearance_l_per_h=f(v["nis_tissue_clearance_l_per_h"]),
            nis_tissue_return_per_h=f(math.log(2.0) / v["nis_tissue_return_t_half_h"]),
            lesion_uptake_l_per_h_per_g=f(v["lesion_uptake_l_per_h_per_g"]),
            lesion_retention_t_half_h=f(v["lesion_retention_t_half_h"]),
            retention_gain=f(v["retention_gain"]),
            blood_fraction_of_ecf=f(v_blood * v["blood_to_ecf_concentration"] / v_ecf),
            blood_volume_l=f(v_blood),
            lesion_mass_g=f(lesion_mass_g),
            body_mass_kg=f(weight_kg),
            withdrawal_renal_factor=f(v["withdrawal_renal_factor"]),
        )

    @classmethod
    def normal_thyroid(cls, weight_kg: float = 70.0, overrides: dict[str, float] | None = None) -> Iodine:
        """A euthyroid patient whose single "lesion" is a normal thyroid gland (card's normal-thyroid set).

        Uptake clearance and biological half-life come from the ``thyroid_*``
        entries of the iodine card; solve it with membrane NIS and
        organification at 1 (see :func:`raisim.biology.biokinetics.iodine_kinetics`).
        ``weight_kg``: body weight, kg; ``overrides``: iodine-card values by name (card units).
        """
        v = dict(card_values("biology/iodine.yaml"))
        v.update(overrides or {})
        mass = v["thyroid_mass_g"]
        thyroid = {
            "lesion_uptake_l_per_h_per_g": v["thyroid_uptake_clearance_l_per_h"] / mass,
            "lesion_retention_t_half_h": v["thyroid_biological_t_half_h"],
        }
        return cls.from_cards([mass], weight_kg, {**(overrides or {}), **thyroid})

    def initial_state(self, n_channels: int) -> IodineState:
        """No radioiodine in the body: every compartment and accumulator is zero.

        Shapes ``(n_channels,)`` (``(n_channels, n_lesions)`` for lesions). Compartments and
        ``excreted``/``decayed`` are MBq per MBq administered (dimensionless); the cumulated
        activities ``cum_*`` are MBq·h per MBq administered, i.e. residence times in h.
        """
        n_l = self.lesion_mass_g.shape[0]
        dtype = jnp.result_type(self.lesion_mass_g)  # float64 unless the model was cast
        z = jnp.zeros((n_channels,), dtype)
        zl = jnp.zeros((n_channels, n_l), dtype)
        return IodineState(
            ecf=z, slow=z, nis_tissue=z, lesion=zl, excreted=z, decayed=z, cum_blood=z, cum_body=z, cum_lesion=zl
        )

    def gut(self, t: Float[Array, ""], channels: IodineChannels) -> Float[Array, " c"]:
        """Activity still in the gut at time ``t`` (h) (closed form), MBq per MBq administered."""
        s = t - channels.admin_time_h
        on = s >= 0.0
        k = self.absorption_per_h + channels.decay_per_h
        return jnp.where(on, jnp.exp(-k * jnp.where(on, s, 0.0)), 0.0)

    def lesion_uptake_per_h(self, membrane_nis: Float[Array, " l"]) -> Float[Array, " l"]:
        """Lesion uptake rate constant from the ECF, 1/h (clearance / ECF volume); ``membrane_nis`` in folds."""
        return (
            self.lesion_uptake_l_per_h_per_g * self.lesion_mass_g * jnp.maximum(membrane_nis, 0.0) / self.ecf_volume_l
        )

    def lesion_efflux_per_h(self, organification: Float[Array, " l"]) -> Float[Array, " l"]:
        """Lesion biological efflux rate constant, 1/h; retention improves with organification (folds)."""
        t_half = self.lesion_retention_t_half_h * (1.0 + self.retention_gain * jnp.maximum(organification - 1.0, 0.0))
        return math.log(2.0) / t_half

    def body(self, state: IodineState, gut: Float[Array, " c"]) -> Float[Array, " c"]:
        """Whole-body activity per channel, MBq per MBq administered (``state`` and ``gut`` in the same unit)."""
        return gut + state.ecf + state.slow + state.nis_tissue + jnp.sum(state.lesion, axis=-1)

    def vector_field(
        self,
        t: Float[Array, ""],
        state: IodineState,
        channels: IodineChannels,
        membrane_nis: Float[Array, " l"],
        organification: Float[Array, " l"],
    ) -> IodineState:
        """d(state)/dt at time ``t`` (h) given each lesion's membrane NIS and organification (folds).

        Returns MBq per MBq administered per h for every compartment and accumulator
        (the ``cum_*`` accumulators grow by the activity itself, so they integrate to h).
        """
        lam = channels.decay_per_h
        gut = self.gut(t, channels)
        ecf = state.ecf
        k_renal = self.renal_clearance_l_per_h * channels.renal_factor / self.ecf_volume_l
        k_nis = self.nis_tissue_clearance_l_per_h / self.ecf_volume_l
        up = channels.uptake_factor[:, None] * self.lesion_uptake_per_h(membrane_nis)[None, :]
        eff = self.lesion_efflux_per_h(organification)[None, :]
        lesion = state.lesion
        d_ecf = (
            self.absorption_per_h * gut
            - (k_renal + self.slow_in_per_h + k_nis + jnp.sum(up, axis=1)) * ecf
            + self.slow_out_per_h * state.slow
            + self.nis_tissue_return_per_h * state.nis_tissue
            + jnp.sum(eff * lesion, axis=1)
            - lam * ecf
        )
        return IodineState(
            ecf=d_ecf,
            slow=self.slow_in_per_h * ecf - (self.slow_out_per_h + lam) * state.slow,
            nis_tissue=k_nis * ecf - (self.nis_tissue_return_per_h + lam) * state.nis_tissue,
            lesion=up * ecf[:, None] - (eff + lam[:, None]) * lesion,
            excreted=k_renal * ecf,
            decayed=lam * self.body(state, gut),
            cum_blood=self.blood_fraction_of_ecf * ecf,
            cum_body=self.body(state, gut),
            cum_lesion=lesion,
        )
