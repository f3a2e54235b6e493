"""Block 5b — quantitative imaging: partial-volume recovery and the retention fit of tracer dosimetry.

What a SPECT or PET scanner reports of a small lesion is not its activity: the image is the
activity blurred by the system's point-spread function (and, for I-124 PET, by the positron's
range), so a volume of interest drawn on the lesion's CT outline holds only a fraction of it —
the recovery coefficient. And what a dosimetry protocol knows of a lesion's retention is a few
measurements, fitted and extrapolated, not the lesion's future. Both are here as pure functions
of arrays; the card values (resolutions, noise) live in :class:`raisim.biology.dosimetry.Dosimetry`.

Units: lengths mm, time h, activity per MBq administered (fractions), rates 1/h.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf
from jaxtyping import Array, Bool, Float

_SQRT2 = math.sqrt(2.0)
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
# Gauss-Legendre nodes on [0, 1] for the radial mean over the sphere (24 points: < 1e-6 error
# for spheres down to 0.3 FWHM against adaptive quadrature, see tests/test_imaging.py)
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(24)
_U = 0.5 * (_NODES + 1.0)
_W = 0.5 * _WEIGHTS


def combined_fwhm_mm(*fwhm_mm: Float[Array, ...] | float) -> Float[Array, ...]:
    """Resolution of Gaussian blurs applied in turn (system, positron range), FWHM in mm: the
    quadrature sum ``sqrt(sum fwhm²)``."""
    return jnp.sqrt(sum(jnp.square(jnp.asarray(f)) for f in fwhm_mm))


def blurred_sphere_profile(r_over_radius: Float[Array, ...], radius_over_sigma: Float[Array, ...]) -> Float[Array, ...]:
    """Image of a uniform sphere (concentration 1) blurred by an isotropic 3-D Gaussian, at distance
    ``r`` from its centre (dimensionless, 0 to 1 at the surface; both arguments as ratios).

    The closed form ``½[erf((R−r)/√2σ) + erf((R+r)/√2σ)] − σ/(r√2π)[e^{−(R−r)²/2σ²} − e^{−(R+r)²/2σ²}]``
    with its limit at r = 0.
    """
    a = jnp.asarray(radius_over_sigma)
    x = jnp.asarray(r_over_radius) * a  # r / sigma
    lo, hi = (a - x) / _SQRT2, (a + x) / _SQRT2
    safe_x = jnp.where(x > 1e-6, x, 1.0)
    tail = (jnp.exp(-(lo**2)) - jnp.exp(-(hi**2))) / (safe_x * math.sqrt(2.0 * math.pi))
    centre = erf(a / _SQRT2) - math.sqrt(2.0 / math.pi) * a * jnp.exp(-(a**2) / 2.0)
    return jnp.where(x > 1e-6, 0.5 * (erf(lo) + erf(hi)) - tail, centre)


def recovery_coefficient(diameter_mm: Float[Array, " l"], fwhm_mm: Float[Array, ""] | float) -> Float[Array, " l"]:
    """Recovery coefficient of a lesion's mean in a volume of interest on its own outline, in (0, 1].

    The lesion is a uniform sphere of ``diameter_mm`` (mm) imaged with a Gaussian resolution of
    ``fwhm_mm`` (mm); the coefficient is the blurred image's mean over the sphere over the true
    concentration (a cold surround; in a warm one the measured mean is
    ``background + RC · (lesion − background)``). Tends to 1 for large lesions, to 0 for small ones;
    RC ≈ 0.5 at a diameter of 2 × FWHM (the mean over the outline, not the peak).
    """
    radius = 0.5 * jnp.maximum(jnp.asarray(diameter_mm), 1e-3)
    a = radius / (jnp.asarray(fwhm_mm) / _FWHM_PER_SIGMA)
    u = jnp.asarray(_U, a.dtype)  # the quadrature in the lesions' precision (float32 runs stay float32)
    prof = blurred_sphere_profile(u[:, None], a[None, :])
    return jnp.sum(3.0 * (u**2 * jnp.asarray(_W, a.dtype))[:, None] * prof, axis=0)


def measured_concentration(
    lesion_per_g: Float[Array, " l"], background_per_g: Float[Array, ""], rc: Float[Array, " l"]
) -> Float[Array, " l"]:
    """Mean concentration read in a lesion's volume of interest: ``background + RC · (lesion − background)``
    (spill-out of the lesion, spill-in of its surround; any concentration unit, shared by the arguments)."""
    return background_per_g + rc * (lesion_per_g - background_per_g)


def retention_fit(
    t_h: Float[Array, " m"], activity: Float[Array, "m l"], valid: Bool[Array, " m"], decay_per_h: Float[Array, ""]
) -> tuple[Float[Array, " l"], Float[Array, " l"]]:
    """Mono-exponential fit of each lesion's decay-corrected activity at the imaging times.

    **Arguments:**

    - `t_h`: imaging times after the tracer, h (``valid`` marks the ones taken; at least two).
    - `activity`: lesion activity measured at those times (any unit, not decay-corrected).
    - `valid`: which imaging times count (padding is False).
    - `decay_per_h`: the tracer's physical decay constant, 1/h.

    **Returns:**

    ``(uptake_at_first, biological_per_h)``: the fitted decay-corrected activity at the first valid
    imaging time (the unit of ``activity``) and the biological clearance rate, 1/h (least squares on
    the log, floored at 0: a lesion cannot retain beyond physical decay).
    """
    w = valid.astype(t_h.dtype)
    corrected = activity * jnp.exp(decay_per_h * t_h)[:, None]
    y = jnp.log(jnp.maximum(corrected, 1e-300))
    n = jnp.maximum(jnp.sum(w), 1.0)
    t_mean = jnp.sum(w * t_h) / n
    y_mean = jnp.sum(w[:, None] * y, axis=0) / n
    dt = (t_h - t_mean) * w
    sxx = jnp.maximum(jnp.sum(dt * dt), 1e-12)
    slope = jnp.sum(dt[:, None] * (y - y_mean), axis=0) / sxx
    lam_bio = jnp.maximum(-slope, 0.0)
    t1 = jnp.min(jnp.where(valid, t_h, jnp.inf))
    return jnp.exp(y_mean - lam_bio * (t1 - t_mean)), lam_bio


def extrapolated_residence_h(
    t_h: Float[Array, " m"],
    activity: Float[Array, "m l"],
    valid: Bool[Array, " m"],
    tracer_decay_per_h: Float[Array, ""],
    therapy_decay_per_h: Float[Array, ""] | float,
) -> Float[Array, " l"]:
    """Residence time of the therapy isotope projected from tracer measurements, h per unit activity.

    The decay-corrected retention is fitted (:func:`retention_fit`) and given the therapy isotope's
    physical decay; the uptake phase before the first image rises linearly from zero (a triangle),
    the tail after it is the fitted exponential integrated to infinity. ``activity`` per MBq of
    tracer gives MBq·h per MBq of therapy; arguments otherwise as :func:`retention_fit`.
    """
    u1, lam_bio = retention_fit(t_h, activity, valid, tracer_decay_per_h)
    t1 = jnp.min(jnp.where(valid, t_h, jnp.inf))
    at_t1 = u1 * jnp.exp(-therapy_decay_per_h * t1)
    return at_t1 * (0.5 * t1 + 1.0 / (lam_bio + therapy_decay_per_h))
