"""Block 5 — dosimetry (MIRD), activity policies and the trial readouts.

Lesion absorbed dose = cumulated activity × S(mass), with a sphere electron
self-absorbed fraction and a small photon term (I-131). Blood absorbed dose
follows the EANM SOP from blood and whole-body residence times. Readouts are
observation models of what each trial's camera measured, with log-normal
measurement noise, so that P(success) is smooth in the parameters: planar
whole-body scans (dilution through the body), I-123 SPECT/CT (recovery
coefficients, soft-tissue background and liver) and I-124 PET/CT dosimetry
(recovery, a retention fit of a few images, MIRD), with the imaging physics in
:mod:`raisim.biology.imaging`.

Units: mass g, activity MBq or GBq as named, time h, dose Gy.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax.scipy.stats import norm
from jaxtyping import Array, Bool, Float

from ..io.cards import card_values
from .imaging import combined_fwhm_mm, extrapolated_residence_h, measured_concentration, recovery_coefficient

_MEV_TO_GY_G_PER_MBQ_H = 0.111 / 0.192  # Gy·g/(MBq·h) per MeV emitted per decay


class Dosimetry(eqx.Module):
    """S-values, blood dosimetry and readout observation models.

    Fields are the dosimetry card's values, in its units: ``electron_dose_constant``
    Gy·g/(MBq·h); ``electron_saf_coeff``, ``electron_saf_exponent`` dimensionless;
    ``photon_energy_mev`` MeV per decay; ``photon_af_coeff`` absorbed fraction per g^(1/3);
    ``blood_dose_coeff`` Gy·mL/(GBq·h); ``body_gamma_coeff`` Gy·kg^(2/3)/(GBq·h);
    ``lung_mass_g`` g; ``body_thickness_cm`` cm; ``min_dosimetry_diameter_mm`` mm;
    ``target_gy_per_gbq_threshold`` Gy/GBq; ``wbs_min_lesion_mbq`` MBq; the ratio thresholds
    (``tbr_threshold``, ``liver_ratio_threshold``, ``wbs_min_contrast``), the planar background
    ratio, the extracellular fractions (mL/mL) and ``increase_threshold`` (fold of baseline uptake)
    are dimensionless; the resolutions ``spect_fwhm_mm``, ``pet_fwhm_mm`` and
    ``i124_positron_fwhm_mm`` are FWHM in mm; ``*_noise_sd_log`` are SDs of the log measurement.
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
    spect_fwhm_mm: float
    pet_fwhm_mm: float
    i124_positron_fwhm_mm: float
    soft_tissue_extracellular_fraction: float
    liver_extracellular_fraction: float
    spect_noise_sd_log: float
    pet_noise_sd_log: float

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

    # -- quantitative SPECT/CT and PET/CT ----------------------------------------

    def spect_recovery(self, diameter_mm: Float[Array, " l"]) -> Float[Array, " l"]:
        """I-123 SPECT/CT recovery coefficient of each lesion (diameter mm), in (0, 1]."""
        return recovery_coefficient(diameter_mm, self.spect_fwhm_mm)

    def pet_recovery(self, diameter_mm: Float[Array, " l"]) -> Float[Array, " l"]:
        """I-124 PET/CT recovery coefficient of each lesion (diameter mm), in (0, 1]: the system's
        resolution and the positron range, combined in quadrature."""
        return recovery_coefficient(diameter_mm, combined_fwhm_mm(self.pet_fwhm_mm, self.i124_positron_fwhm_mm))

    def spect_ratios(
        self, lesion_per_g: Float[Array, " l"], ecf_per_g: Float[Array, ""], diameter_mm: Float[Array, " l"]
    ) -> tuple[Float[Array, " l"], Float[Array, " l"]]:
        """What I-123 SPECT/CT reads of each lesion: its tumour/background and tumour/liver ratios.

        The lesion's volume of interest reads the background soft tissue plus the recovered excess
        (:func:`raisim.biology.imaging.measured_concentration`); the background next to it and the
        liver hold the ECF's iodide concentration times their extracellular fractions (iodide
        stays extracellular outside NIS tissue; the liver is large, so it is read without loss).

        **Arguments:**

        - `lesion_per_g`: each lesion's activity concentration (per g, any activity unit).
        - `ecf_per_g`: the ECF's concentration, same unit.
        - `diameter_mm`: lesion diameters, mm.

        **Returns:**

        ``(tumour_to_background, tumour_to_liver)``, dimensionless.
        """
        background = self.soft_tissue_extracellular_fraction * ecf_per_g
        liver = self.liver_extracellular_fraction * ecf_per_g
        seen = measured_concentration(lesion_per_g, background, self.spect_recovery(diameter_mm))
        return seen / background, seen / liver

    def p_spect_success(self, tbr: Float[Array, " l"], tlr: Float[Array, " l"]) -> Float[Array, " l"]:
        """P(a lesion meets both parts of the I-123 criterion): tumour/background above
        ``tbr_threshold`` and tumour/liver above ``liver_ratio_threshold``, one log-normal noise
        (``spect_noise_sd_log``) on the lesion's measured concentration; in [0, 1]."""
        margin = jnp.minimum(tbr / self.tbr_threshold, tlr / self.liver_ratio_threshold)
        return self.p_above(margin, 1.0, self.spect_noise_sd_log)

    def pet_projected_gy_per_gbq(
        self,
        t_h: Float[Array, " m"],
        lesion: Float[Array, "m l"],
        valid: Bool[Array, " m"],
        tracer_decay_per_h: Float[Array, ""],
        therapy_decay_per_h: Float[Array, ""],
        mass_g: Float[Array, " l"],
        diameter_mm: Float[Array, " l"],
    ) -> Float[Array, " l"]:
        """I-131 lesion dose per activity projected from I-124 PET/CT, Gy/GBq, as the trials did it.

        Each image reads the lesion's activity times its PET recovery coefficient (volumes of
        interest on the CT outline, no partial-volume correction); the decay-corrected
        retention is fitted mono-exponentially and given I-131's decay
        (:func:`raisim.biology.imaging.extrapolated_residence_h`), and MIRD's sphere S-value of the
        CT mass turns the residence time into dose. Nothing after the last image enters.

        **Arguments:**

        - `t_h`: imaging times after the tracer, h; `valid`: which of them were taken.
        - `lesion`: lesion activity at those times, per MBq of tracer (not decay-corrected).
        - `tracer_decay_per_h`, `therapy_decay_per_h`: physical decay constants of I-124 and I-131, 1/h.
        - `mass_g`: lesion masses, g; `diameter_mm`: their diameters, mm.

        **Returns:**

        Projected Gy/GBq per lesion.
        """
        seen = lesion * self.pet_recovery(diameter_mm)[None, :]
        tau = extrapolated_residence_h(t_h, seen, valid, tracer_decay_per_h, therapy_decay_per_h)
        return tau * self.s_value_gy_per_mbq_h(mass_g) * 1000.0

    # -- observation models ---------------------------------------------------

    def p_above(self, metric: Float[Array, ...], threshold, noise_sd_log=None) -> Float[Array, ...]:
        """P(measured metric > threshold) under log-normal measurement noise, a probability in [0, 1].

        ``metric`` and ``threshold`` share a unit (any: MBq, Gy/GBq, a ratio, ...); ``noise_sd_log``:
        the SD of the log measurement (default ``readout_noise_sd_log``).
        """
        m = jnp.maximum(metric, 1e-300)
        sd = self.readout_noise_sd_log if noise_sd_log is None else noise_sd_log
        return norm.cdf(jnp.log(m / threshold) / sd)

    @staticmethod
    def p_any(p_lesion: Float[Array, " l"]) -> Float[Array, ""]:
        """P(at least one lesion succeeds) from per-lesion probabilities, independent noise per lesion; in [0, 1]."""
        return 1.0 - jnp.prod(1.0 - p_lesion)
