"""The state of the coupled patient model: one typed record per block, and the patient's.

A solution (:class:`raisim.core.model.Solution`) holds the same records with a leading
time axis; a derivative holds the rates (per h) in the same records.
"""

from __future__ import annotations

import equinox as eqx
from jaxtyping import Array, Float

from ..biology.iodine import IodineState
from ..biology.nis import NISState
from ..biology.pathway import PathwayState
from ..biology.pk import PKState


class PatientState(eqx.Module):
    """Every block's state (units in each record) and the cumulated ERK inhibition, h."""

    # fields in alphabetical order: the solver's flat state vector keeps the order it had as a dict
    cum_erk_inhibition_h: Float[Array, ...]
    iodine: IodineState
    nis: NISState
    pathway: PathwayState
    pk: PKState


__all__ = ["IodineState", "NISState", "PKState", "PathwayState", "PatientState"]
