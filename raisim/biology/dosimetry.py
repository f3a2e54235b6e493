"""Block 5 — dosimetry (MIRD), activity policies and the trial readouts.

Lesion absorbed dose = cumulated activity × S(mass), with a sphere electron
self-absorbed fraction and a small photon term (I-131). Blood absorbed dose
follows the EANM SOP from blood and whole-body residence times. Activity
policies turn the projected dosimetry of a tracer scan into the therapy
activity. Readouts are observation models with log-normal measurement noise,
so that P(success) is smooth in the parameters.

Units: mass g, activity MBq or GBq as named, time h, dose Gy.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax.scipy.stats import norm
from jaxtyping import Array, Float

from ..io.cards import card_values

_MEV_TO_GY_G_PER_MBQ_H = 0.111 / 0.192  # Gy·g/(MBq·h) per MeV emitted per decay


class Dosimetry(eqx.Module):
    """S-values, blood dosimetry and readout observation models.

    Fields are the dosimetry card's values, in its units: ``electron_dose_constant``
    Gy·g/(MBq·h); ``electron_saf_coeff``, ``electron_saf_exponent`` dimensionless;
    ``photon_energy_mev`` MeV per decay; ``photon_af_coeff`` absorbed fraction per g^(1/3);
    ``blood_dose_coeff`` Gy·mL/(GBq·h); ``body_gamma_coeff`` Gy·kg^(2/3)/(GBq·h);
    ``lung_mass_g`` g; ``body_thickness_cm`` cm; ``min_dosimetry_diameter_mm`` mm;
    ``target_gy_per_gbq_threshold`` Gy/GBq; ``wbs_min_lesion_mbq`` MBq; the ratio thresholds
    (``tbr_threshold``, ``liver_ratio_threshold``, ``wbs_min_contrast``), the background and
    liver concentration ratios and ``increase_threshold`` (fold of baseline uptake) are
    dimensionless; ``readout_noise_sd_log`` is an SD of the log measurement.
    """

    electron_dose_constant: float
    electron_saf_coeff: float
    electron_saf_exponent: float
    photon_energy_mev: float
    photon_af_coeff: float
    blood_dose_coeff: float
    body_gamma_coeff: float
    tbr_threshold: float
    liver_ratio_threshold: float
    background_to_body_mean: float
    liver_to_body_mean: float
    body_thickness_cm: float
    lung_mass_g: float
    increase_threshold: float
    target_gy_per_gbq_threshold: float
    min_dosimetry_diameter_mm: float
    wbs_min_lesion_mbq: float
    wbs_min_contrast: float
    readout_noise_sd_log: float

    @classmethod
    def from_cards(cls, overrides: dict[str, float] | None = None) -> Dosimetry:
        """Typical values of the dosimetry card (its units); ``overrides`` replace card values by name."""
        v = dict(card_values("biology/dosimetry.yaml"))
        v.update(overrides or {})
        return cls(**{k: float(x) for k, x in v.items()})

    # -- MIRD -------------------------------------------------------------------

    def electron_saf(self, mass_g: Float[Array, ...]) -> Float[Array, ...]:
        """Electron self-absorbed fraction of a sphere of ``mass_g`` grams (I-131), dimensionless in [0.05, 1]."""
        m = jnp.maximum(mass_g, 1e-6)
        return jnp.clip(1.0 - self.electron_saf_coeff * m ** (-self.electron_saf_exponent), 0.05, 1.0)

    def s_electron_gy_per_mbq_h(self, mass_g: Float[Array, ...]) -> Float[Array, ...]:
        """Electron self-dose S-value of a sphere of ``mass_g`` (g), Gy/(MBq·h)."""
        return self.electron_dose_constant * self.electron_saf(mass_g) / jnp.maximum(mass_g, 1e-6)

    def s_photon_gy_per_mbq_h(self, mass_g: Float[Array, ...]) -> Float[Array, ...]:
        """Photon self-dose S-value of a sphere of ``mass_g`` (g), Gy/(MBq·h) (absorbed fraction ∝ radius)."""
        m = jnp.maximum(mass_g, 1e-6)
        af = jnp.clip(self.photon_af_coeff * m ** (1.0 / 3.0), 0.0, 1.0)
        return _MEV_TO_GY_G_PER_MBQ_H * self.photon_energy_mev * af / m

    def s_value_gy_per_mbq_h(self, mass_g: Float[Array, ...]) -> Float[Array, ...]:
        """Total lesion self-dose S-value for I-131 of a lesion of ``mass_g`` (g), Gy/(MBq·h)."""
        return self.s_electron_gy_per_mbq_h(mass_g) + self.s_photon_gy_per_mbq_h(mass_g)

    def lung_s_value_gy_per_mbq_h(self) -> Float[Array, ""]:
        """Lung self-dose S-value for activity spread through both lungs, Gy/(MBq·h)."""
        return self.s_value_gy_per_mbq_h(jnp.asarray(self.lung_mass_g))

    def blood_gy_per_gbq(
        self, blood_residence_h: Float[Array, ...], body_residence_h: Float[Array, ...], blood_volume_ml, weight_kg
    ) -> Float[Array, ...]:
        """Blood absorbed dose per administered activity, Gy/GBq (EANM SOP, Lassmann 2008).

        ``blood_residence_h`` is the residence time of the whole blood volume, h;
        ``body_residence_h`` the whole-body residence time, h; ``blood_volume_ml`` the blood
        volume, mL; ``weight_kg`` the body weight, kg.
        """
        per_ml = blood_residence_h / blood_volume_ml
        return self.blood_dose_coeff * per_ml + self.body_gamma_coeff / weight_kg ** (2.0 / 3.0) * body_residence_h

    # -- planar imaging ---------------------------------------------------------

    def planar_pixel_over_body(
        self, concentration_ratio: Float[Array, " l"], diameter_mm: Float[Array, " l"]
    ) -> Float[Array, " l"]:
        """Count density over a lesion on a planar image, relative to a pixel over mean body tissue.

        A planar pixel integrates activity along the patient's thickness: over a lesion
        of diameter ``d`` it sees the lesion concentration over ``d`` and body tissue
        over the rest, so the ratio is ``1 + (C_lesion/C_body − 1) · d / thickness``.
        Small lesions are diluted by the tissue around them (partial volume).

        **Arguments:**

        - `concentration_ratio`: lesion / mean body (non-lesion) activity concentration (dimensionless).
        - `diameter_mm`: lesion diameter, mm.

        Returns the count-density ratio (dimensionless).
        """
        path = jnp.minimum(jnp.asarray(diameter_mm) / (10.0 * self.body_thickness_cm), 1.0)
        return 1.0 + (jnp.asarray(concentration_ratio) - 1.0) * path

    def tumour_to_background(self, concentration_ratio, diameter_mm) -> Float[Array, " l"]:
        """Planar tumour/background ratio of each lesion (background region of interest), dimensionless.

        ``concentration_ratio``: lesion / mean body concentration (dimensionless); ``diameter_mm``: mm.
        """
        return self.planar_pixel_over_body(concentration_ratio, diameter_mm) / self.background_to_body_mean

    def tumour_to_liver(self, concentration_ratio, diameter_mm) -> Float[Array, " l"]:
        """Planar tumour/liver ratio of each lesion, dimensionless (arguments as :meth:`tumour_to_background`)."""
        return self.planar_pixel_over_body(concentration_ratio, diameter_mm) / self.liver_to_body_mean

    # -- observation models ---------------------------------------------------

    def p_above(self, metric: Float[Array, ...], threshold) -> Float[Array, ...]:
        """P(measured metric > threshold) under log-normal measurement noise, a probability in [0, 1].

        ``metric`` and ``threshold`` share a unit (any: MBq, Gy/GBq, a ratio, ...).
        """
        m = jnp.maximum(metric, 1e-300)
        return norm.cdf(jnp.log(m / threshold) / self.readout_noise_sd_log)

    @staticmethod
    def p_any(p_lesion: Float[Array, " l"]) -> Float[Array, ""]:
        """P(at least one lesion succeeds) from per-lesion probabilities, independent noise per lesion; in [0, 1]."""
        return 1.0 - jnp.prod(1.0 - p_lesion)
