"""Block 3 — differentiation: NIS expression and the retention machinery, per lesion.

Transcription rises steeply when ERK output falls below a threshold
(half-maximal ERK output ``erk_half_max`` on the common scale where the
untreated RAS-driven tumour is 1, Hill coefficient ``hill``), is
multiplied by TSH stimulation, and passes through mRNA → intracellular protein
→ membrane NIS with first-order delays. The retention machinery (TPO,
organification) follows the same transcriptional drive with its own turnover.
Each lesion scales its drive by its NIS capacity.

Units: time h, TSH mU/L; every state is a fold of the untreated,
TSH-suppressed level (1 at baseline).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..io.cards import card_values


class NISState(eqx.Module):
    """The NIS state per lesion ``l``, each a fold of untreated (per h in a derivative; leading time
    axis on a solution): mRNA, protein, membrane NIS, organification."""

    # fields in alphabetical order: the solver's flat state vector keeps the order it had as a dict
    membrane: Float[Array, "... l"]
    mrna: Float[Array, "... l"]
    organification: Float[Array, "... l"]
    protein: Float[Array, "... l"]


class NIS(eqx.Module):
    """NIS and organification dynamics for the lesions of one patient.

    ``erk_half_max``: ERK output on the common scale (untreated RAS-driven tumour = 1);
    ``hill``, ``max_gain`` (fold of basal transcription) and ``tsh_gain`` (fold) are
    dimensionless; ``*_rate_per_h``: first-order rate constants, 1/h; ``tsh_ec50_mu_per_l``:
    mU/L; ``capacity``: each lesion's NIS capacity, fold.
    """

    erk_half_max: Float[Array, ""]
    hill: Float[Array, ""]
    max_gain: Float[Array, ""]
    mrna_rate_per_h: Float[Array, ""]
    protein_rate_per_h: Float[Array, ""]
    membrane_rate_per_h: Float[Array, ""]
    organification_rate_per_h: Float[Array, ""]
    tsh_gain: Float[Array, ""]
    tsh_ec50_mu_per_l: Float[Array, ""]
    capacity: Float[Array, " l"]

    @classmethod
    def from_cards(cls, capacity, overrides: dict[str, float] | None = None) -> NIS:
        """Typical parameters; ``capacity`` is each lesion's NIS capacity (fold).

        ``overrides`` replace nis-card values by name (card units: half-lives h, TSH mU/L).
        """
        v = dict(card_values("biology/nis.yaml"))
        v.update(overrides or {})
        f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
        r = lambda key: f(math.log(2.0) / v[key])  # noqa: E731
        return cls(
            erk_half_max=f(v["erk_half_max"]),
            hill=f(v["hill"]),
            max_gain=f(v["max_transcription_gain"]),
            mrna_rate_per_h=r("mrna_t_half_h"),
            protein_rate_per_h=r("protein_t_half_h"),
            membrane_rate_per_h=r("membrane_t_half_h"),
            organification_rate_per_h=r("organification_t_half_h"),
            tsh_gain=f(v["tsh_gain"]),
            tsh_ec50_mu_per_l=f(v["tsh_ec50_mu_per_l"]),
            capacity=f(capacity),
        )

    def _hill_inhibition(self, erk: Float[Array, ""]) -> Float[Array, ""]:
        e = jnp.maximum(erk, 0.0)
        kn = self.erk_half_max**self.hill
        return kn / (kn + e**self.hill)

    def transcription_drive(
        self, erk_output: Float[Array, ""], erk_output_untreated: Float[Array, ""], tsh_mu_per_l: Float[Array, ""]
    ) -> Float[Array, ""]:
        """Transcription relative to the untreated tumour (suppressed TSH), before lesion capacity.

        **Arguments:**

        - `erk_output`: ERK output on the common scale (untreated RAS-driven tumour = 1).
        - `erk_output_untreated`: this tumour's untreated ERK output on that scale.
        - `tsh_mu_per_l`: serum TSH, mU/L.

        Returns a fold of the untreated, TSH-suppressed transcription (dimensionless).
        """
        basal = 1.0 + self.max_gain * self._hill_inhibition(erk_output_untreated)
        erk_part = (1.0 + self.max_gain * self._hill_inhibition(erk_output)) / basal
        tsh = jnp.maximum(tsh_mu_per_l, 0.0)
        tsh_part = 1.0 + self.tsh_gain * tsh / (self.tsh_ec50_mu_per_l + tsh)
        return erk_part * tsh_part

    def initial_state(self, tsh_mu_per_l: Float[Array, ""], erk_output_untreated: Float[Array, ""]) -> NISState:
        """Steady state at untreated ERK and the given TSH level (mU/L); every state a fold of untreated."""
        e0 = jnp.asarray(erk_output_untreated)
        level = self.capacity * self.transcription_drive(e0, e0, jnp.asarray(tsh_mu_per_l))
        return NISState(mrna=level, protein=level, membrane=level, organification=level)

    def vector_field(
        self,
        state: NISState,
        erk_output: Float[Array, ""],
        erk_output_untreated: Float[Array, ""],
        tsh_mu_per_l: Float[Array, ""],
    ) -> NISState:
        """d(state)/dt given ERK output (common scale, see ``transcription_drive``) and serum TSH (mU/L).

        Returns fold of untreated per h for every state.
        """
        drive = self.capacity * self.transcription_drive(erk_output, erk_output_untreated, tsh_mu_per_l)
        return NISState(
            mrna=self.mrna_rate_per_h * (drive - state.mrna),
            protein=self.protein_rate_per_h * (state.mrna - state.protein),
            membrane=self.membrane_rate_per_h * (state.protein - state.membrane),
            organification=self.organification_rate_per_h * (drive - state.organification),
        )
