"""Quantitative imaging: recovery coefficients, the retention fit, and a PET dosimetry readout that
does not read the model's future."""

from __future__ import annotations

import copy

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import no_ae, protocol_dict

from raisim.biology.dosimetry import Dosimetry
from raisim.biology.imaging import extrapolated_residence_h, recovery_coefficient, retention_fit
from raisim.engine.simulate import simulate
from raisim.io.errors import InputError
from raisim.protocol.schema import protocol_from_dict


def _monte_carlo_rc(diameter_mm: float, fwhm_mm: float, n: int = 200_000, seed: int = 0) -> float:
    """Fraction of a uniform sphere's activity that a Gaussian blur leaves inside the sphere."""
    rng = np.random.default_rng(seed)
    radius, sigma = diameter_mm / 2.0, fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1)[:, None]
    p = v * (radius * rng.random(n) ** (1.0 / 3.0))[:, None] + rng.normal(scale=sigma, size=(n, 3))
    return float(np.mean(np.linalg.norm(p, axis=1) < radius))


@pytest.mark.parametrize("diameter_mm", [3.0, 7.0, 12.0, 20.0, 40.0])
def test_recovery_coefficient_equals_a_monte_carlo_blur(diameter_mm):
    rc = float(recovery_coefficient(jnp.asarray([diameter_mm]), 10.0)[0])
    assert rc == pytest.approx(_monte_carlo_rc(diameter_mm, 10.0), abs=4e-3)  # MC SE ~1e-3


def test_recovery_rises_with_size_and_falls_with_blur():
    d = jnp.asarray([4.0, 8.0, 16.0, 32.0, 64.0])
    sharp, blurred = np.asarray(recovery_coefficient(d, 6.0)), np.asarray(recovery_coefficient(d, 12.0))
    assert np.all(np.diff(sharp) > 0) and np.all(sharp > blurred)
    assert 0.0 < blurred[0] < 0.1 and sharp[-1] > 0.9


def test_retention_fit_recovers_a_mono_exponential_and_its_i131_integral():
    lam124, lam131, lam_bio, u0 = np.log(2) / (4.18 * 24), np.log(2) / (8.02 * 24), np.log(2) / 60.0, 0.003
    t = jnp.asarray([24.0, 48.0, 96.0, 1.0])
    ok = jnp.asarray([True, True, True, False])  # the last slot is padding: it must not count
    a = u0 * np.exp(-(lam_bio + lam124) * np.asarray(t))
    a = jnp.asarray(np.where(np.asarray(ok), a, 123.0))[:, None]
    u1, bio = retention_fit(t, a, ok, lam124)
    assert float(bio[0]) == pytest.approx(lam_bio, rel=1e-9)
    assert float(u1[0]) == pytest.approx(u0 * np.exp(-lam_bio * 24.0), rel=1e-9)
    tau = float(extrapolated_residence_h(t, a, ok, lam124, lam131)[0])
    at24 = u0 * np.exp(-(lam_bio + lam131) * 24.0)
    assert tau == pytest.approx(at24 * 12.0 + at24 / (lam_bio + lam131), rel=1e-9)


def test_pet_projection_underestimates_small_lesions_by_their_recovery():
    dos = Dosimetry.from_cards()
    t = jnp.asarray([24.0, 48.0, 96.0, 1.0])
    ok = jnp.asarray([True, True, True, False])
    lam124, lam131 = np.log(2) / (4.18 * 24), np.log(2) / (8.02 * 24)
    a = jnp.asarray(0.001 * np.exp(-(lam124 + 0.01) * np.asarray(t)))[:, None] * jnp.ones((1, 3))
    diam = jnp.asarray([5.0, 15.0, 60.0])
    mass = jnp.pi / 6.0 * (diam / 10.0) ** 3
    gy = dos.pet_projected_gy_per_gbq(t, a, ok, lam124, lam131, mass, diam)
    full = extrapolated_residence_h(t, a, ok, lam124, lam131) * dos.s_value_gy_per_mbq_h(mass) * 1000.0
    np.testing.assert_allclose(np.asarray(gy / full), np.asarray(dos.pet_recovery(diam)), rtol=1e-9)


def _dosimetry_protocol(stop_day: int) -> dict:
    d = protocol_dict(
        scans=[{"name": "dosimetry", "day": 22, "isotope": "I-124", "readout": "i124_dosimetry"}],
        rai=None,
        followup={"months": [1]},
    )
    d.pop("rai")
    d["treatment"]["stop_day"] = stop_day
    d["patient"]["genotype"] = "RAS"
    return d


@pytest.mark.validation
def test_the_dosimetry_projection_does_not_read_nis_after_the_last_image():
    """The TKI runs to the last image (day 22 + 96 h = day 26) or 14 days past it: NIS after the last
    image differs, the truth (I-131 given with the tracer) moves, the PET projection does not."""

    def scan(stop_day):
        p = protocol_from_dict(_dosimetry_protocol(stop_day))
        return simulate(p, seed=0, overrides=no_ae(), parameters="typical").outcome.scans[0]

    short, long = scan(26), scan(40)
    assert short.dosimetry_times_h == [24.0, 48.0, 96.0]
    true_s, true_l = np.asarray(short.true_gy_per_gbq), np.asarray(long.true_gy_per_gbq)
    assert np.all(true_l > 1.02 * true_s), (true_s, true_l)  # the future NIS changes the truth
    np.testing.assert_allclose(short.projected_gy_per_gbq, long.projected_gy_per_gbq, rtol=1e-5)


def test_imaging_times_are_checked():
    base = _dosimetry_protocol(26)
    for times, needle in [([48.0, 24.0], "increasing"), ([24.0], "imaging_times_h"), ([-1.0, 24.0], "increasing")]:
        d = copy.deepcopy(base)
        d["scans"][0]["imaging_times_h"] = times
        with pytest.raises(InputError, match=needle):
            protocol_from_dict(d)
    d = copy.deepcopy(base)
    d["scans"][0]["imaging_times_h"] = [24.0, 48.0, 96.0]
    d["rai"] = {"day": 25, "policy": "dosimetry_max_11.1", "require": "dosimetry"}
    with pytest.raises(InputError, match="last image"):  # day 22 + 96 h is after a therapy on day 25
        protocol_from_dict(d)
