"""Reference radioiodine biokinetics: the iodine block solved alone, at fixed NIS.

The coupled model drives lesion uptake with a time-varying membrane NIS. For
checking the iodine and dosimetry blocks against published human kinetics
(athyreotic patients after rhTSH or withdrawal, the normal thyroid) the block
is solved on its own here, one oral administration at t = 0 and each lesion's
membrane NIS and organification held constant. Nuclear-medicine physicists
can use it the same way to look at a parameter set before a full simulation.

Units: time h, activities as fractions of the administered activity
(MBq per MBq), residence times h, doses Gy/GBq (= mGy/MBq).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..io.vocab import isotope_decay_per_h
from .dosimetry import Dosimetry
from .iodine import Iodine, IodineChannels


@dataclass(frozen=True)
class IodineKinetics:
    """Kinetics of one oral administration (t = 0 h), as fractions of the administered activity.

    ``t_h``: saved times, h. ``whole_body``, ``blood`` (whole blood volume) and ``lesion``
    (per lesion): activity as a fraction of the administered activity (MBq per MBq,
    dimensionless), physical decay included. ``residence_*_h``: residence times
    (time-integrated activity per unit administered activity) to the solve's horizon, h.
    """

    isotope: str
    withdrawal: bool
    t_h: np.ndarray
    whole_body: np.ndarray  # (t,)
    blood: np.ndarray  # (t,) whole blood volume
    lesion: np.ndarray  # (t, l)
    residence_whole_body_h: float
    residence_blood_h: float
    residence_lesion_h: np.ndarray  # (l,)

    def at(self, x: np.ndarray, t_h: float) -> np.ndarray:
        """Linear interpolation of a saved series ``x`` at ``t_h`` (h), in ``x``'s units (per lesion for 2-D ``x``)."""
        x = np.asarray(x)
        if x.ndim == 1:
            return np.asarray(np.interp(t_h, self.t_h, x))
        return np.asarray([np.interp(t_h, self.t_h, x[:, j]) for j in range(x.shape[1])])

    def whole_body_retention(self, t_h: float) -> float:
        """Whole-body retained fraction at ``t_h`` (h), physical decay included (dimensionless)."""
        return float(self.at(self.whole_body, t_h))

    def lesion_uptake(self, t_h: float) -> np.ndarray:
        """Fraction of the administered activity in each lesion at ``t_h`` (h), decay included (dimensionless)."""
        return self.at(self.lesion, t_h)

    def lesion_effective_half_life_h(self, from_h: float, to_h: float) -> np.ndarray:
        """Effective half-life of each lesion, h, from the log-slope of its activity from ``from_h`` to ``to_h`` (h)."""
        a0, a1 = self.lesion_uptake(from_h), self.lesion_uptake(to_h)
        slope = np.log(a0 / a1) / (to_h - from_h)
        return math.log(2.0) / slope

    def blood_gy_per_gbq(self, dosimetry: Dosimetry, iodine: Iodine) -> float:
        """Blood absorbed dose per administered I-131 activity, Gy/GBq (EANM SOP)."""
        return float(
            dosimetry.blood_gy_per_gbq(
                self.residence_blood_h,
                self.residence_whole_body_h,
                float(iodine.blood_volume_l) * 1000.0,
                float(iodine.body_mass_kg),
            )
        )


@eqx.filter_jit
def _solve(iodine: Iodine, channels: IodineChannels, nis, org, ts):
    y0 = iodine.initial_state(1)

    def field(t, y, args):
        return iodine.vector_field(t, y, channels, nis, org)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5(),
        ts[0],
        ts[-1],
        dt0=0.01,
        y0=y0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-13),
        max_steps=100_000,
    )
    return sol.ys


def iodine_kinetics(
    iodine: Iodine,
    *,
    isotope: str = "I-131",
    withdrawal: bool = False,
    membrane_nis: Float[Array, " l"] | None = None,
    organification: Float[Array, " l"] | None = None,
    horizon_h: float = 60 * 24.0,
    n_points: int = 2881,
) -> IodineKinetics:
    """Solve the iodine block alone for one oral administration of ``isotope`` at t = 0.

    **Arguments:**

    - `iodine`: the block (e.g. ``Iodine.from_cards`` or ``Iodine.normal_thyroid``).
    - `withdrawal`: thyroid-hormone withdrawal (slower renal clearance) instead of rhTSH.
    - `membrane_nis`, `organification`: each lesion's constant fold of untreated (default 1).
    - `horizon_h`: end of the solve, h; residence times integrate to it.
    - `n_points`: number of saved time points (uniform from 0 to ``horizon_h``).

    Returns the kinetics as fractions of the administered activity (see :class:`IodineKinetics`).
    """
    n_l = int(iodine.lesion_mass_g.shape[0])
    ones = jnp.ones((n_l,))
    nis = ones if membrane_nis is None else jnp.asarray(membrane_nis, dtype=jnp.float64)
    org = ones if organification is None else jnp.asarray(organification, dtype=jnp.float64)
    f = lambda x: jnp.asarray([x], dtype=jnp.float64)  # noqa: E731
    channels = IodineChannels(
        admin_time_h=f(0.0),
        decay_per_h=f(isotope_decay_per_h(isotope)),
        renal_factor=f(iodine.withdrawal_renal_factor if withdrawal else 1.0),
        uptake_factor=f(1.0),
    )
    ts = jnp.linspace(0.0, horizon_h, n_points)
    ys = _solve(iodine, channels, nis, org, ts)
    gut = jax.vmap(lambda t: iodine.gut(t, channels))(ts)
    body = np.asarray(jax.vmap(iodine.body)(ys, gut))[:, 0]
    return IodineKinetics(
        isotope=isotope,
        withdrawal=withdrawal,
        t_h=np.asarray(ts),
        whole_body=body,
        blood=np.asarray(ys.ecf)[:, 0] * float(iodine.blood_fraction_of_ecf),
        lesion=np.asarray(ys.lesion)[:, 0, :],
        residence_whole_body_h=float(ys.cum_body[-1, 0]),
        residence_blood_h=float(ys.cum_blood[-1, 0]),
        residence_lesion_h=np.asarray(ys.cum_lesion[-1, 0, :]),
    )
