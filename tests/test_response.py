import math

import jax.numpy as jnp
import numpy as np
import pytest

from raisim import Response, dale_bed_gy, sphere_diameter_mm


@pytest.fixture(scope="module")
def resp():
    return Response.from_cards()


def test_bed_closed_form():
    # D = 80 Gy, T_eff = 3 d, repair t1/2 = 1 h, alpha/beta = 10 Gy
    lam, mu = math.log(2) / 72.0, math.log(2) / 1.0
    expected = 80.0 * (1 + 80.0 * lam / ((mu + lam) * 10.0))
    assert dale_bed_gy(80.0, lam, mu, 10.0) == pytest.approx(expected)
    assert dale_bed_gy(0.0, lam, mu, 10.0) == 0.0


def test_untreated_growth_follows_doubling_time(resp):
    t = jnp.linspace(0.0, 270 * 24.0, 100)
    viable, dead = resp.volumes_ml(t, jnp.asarray([1.0]), jnp.zeros(100), jnp.zeros((100, 1)), jnp.zeros(1))
    assert float(viable[-1, 0]) == pytest.approx(2.0, rel=1e-9)
    assert float(jnp.max(dead)) == 0.0


def test_more_dose_more_shrinkage(resp):
    t = jnp.linspace(0.0, 180 * 24.0, 2000)
    frac = jnp.clip(t / (14 * 24.0), 0.0, 1.0)[:, None]
    final = []
    for bed in (10.0, 40.0, 90.0):
        v, d = resp.volumes_ml(t, jnp.asarray([1.0]), jnp.zeros(2000), frac, jnp.asarray([bed]))
        final.append(float(v[-1, 0] + d[-1, 0]))
    assert final[0] > final[1] > final[2]


def test_recist_categories(resp):
    base = np.array([[20.0, 10.0]])
    seq = np.vstack([base, [[12.0, 8.0]], [[1.0, 1.0]], [[30.0, 12.0]]])
    cats = [r["category"] for r in resp.recist(seq, 0, [1, 2, 3])]
    assert cats == ["PR", "CR", "PD"]
    assert resp.recist(np.vstack([base, [[21.0, 10.0]]]), 0, [1])[0]["category"] == "SD"


def test_sphere_diameter():
    assert float(sphere_diameter_mm(jnp.asarray(4 / 3 * math.pi))) == pytest.approx(20.0)


def test_tg_follows_viable_mass(resp):
    t = jnp.linspace(0.0, 60 * 24.0, 600)
    viable = jnp.where(t < 10 * 24.0, 1.0, 0.5)[:, None]
    tg = resp.thyroglobulin_ng_ml(t, viable, jnp.ones((600, 1)), 40.0)
    assert float(tg[0]) == 40.0
    assert float(tg[-1]) == pytest.approx(20.0, rel=1e-3)


@pytest.mark.validation
@pytest.mark.parametrize(
    "dose,t_eff_h,repair_h,ab,expected",
    [
        # BED = D [1 + D λ / ((μ + λ) α/β)], by hand:
        # 80 Gy, Teff 72 h, repair 1 h, α/β 10: λ = 0.009627, μ = 0.693147 -> 80 (1 + 80·0.009627/(0.702774·10))
        (80.0, 72.0, 1.0, 10.0, 88.7671),
        # 20 Gy, Teff 48 h, repair 1.5 h, α/β 3: λ = 0.014441, μ = 0.462098 -> 20 (1 + 20·0.014441/(0.476539·3))
        (20.0, 48.0, 1.5, 3.0, 24.0404),
        # 50 Gy, Teff 120 h, repair 0.5 h, α/β 10: λ = 0.005776, μ = 1.386294 -> 50 (1 + 50·0.005776/(1.392070·10))
        (50.0, 120.0, 0.5, 10.0, 51.0373),
    ],
)
def test_bed_equals_hand_computed_closed_form(dose, t_eff_h, repair_h, ab, expected):
    got = dale_bed_gy(dose, math.log(2) / t_eff_h, math.log(2) / repair_h, ab)
    assert got == pytest.approx(expected, abs=1e-3)


def _volume_after_dose(resp, dose_gy, t_eff_h=72.0, months=6.0, v0=1.0):
    """Total lesion volume (mL) ``months`` after an exponentially delivered dose (effective half-life)."""
    n = 4000
    t = jnp.linspace(0.0, months * 30.4375 * 24.0, n)
    lam = math.log(2) / t_eff_h
    frac = (1.0 - jnp.exp(-lam * t))[:, None]
    bed = resp.bed_gy(jnp.asarray([dose_gy]), jnp.asarray([lam]))
    v, d = resp.volumes_ml(t, jnp.asarray([v0]), jnp.zeros(n), frac, bed)
    return float(v[-1, 0] + d[-1, 0])


@pytest.mark.validation
def test_volume_reduction_at_6_months_increases_with_dose(resp):
    reductions = [1.0 - _volume_after_dose(resp, d) for d in (10.0, 20.0, 40.0, 80.0, 160.0)]
    assert reductions == sorted(reductions)
    assert 1.0 - _volume_after_dose(resp, 80.0) >= 0.50
    assert 1.0 - _volume_after_dose(resp, 20.0) < 0.30


@pytest.mark.validation
def test_untreated_progressive_patient_reaches_pd_by_12_months_at_the_doubling_time(resp):
    months = np.arange(0, 13)
    t = jnp.asarray(months * 30.4375 * 24.0)
    v0 = jnp.asarray([1.5, 0.8, 3.0])
    viable, dead = resp.volumes_ml(t, v0, jnp.zeros(13), jnp.zeros((13, 3)), jnp.zeros(3))
    diam = np.asarray(sphere_diameter_mm(viable + dead))
    cats = [r["category"] for r in resp.recist(diam, 0, list(range(1, 13)))]
    assert "PD" in cats and cats.index("PD") <= 11
    # sum of diameters follows the configured volume doubling time: d ∝ 2^(t / (3 Td))
    td_h = math.log(2) / float(resp.growth_per_h)
    expected = diam[0] * 2.0 ** (np.asarray(t)[:, None] / (3.0 * td_h))
    assert np.allclose(diam, expected, rtol=1e-9)
    assert td_h / 24.0 <= 365.25  # default doubling time <= 12 months


@pytest.mark.validation
def test_tki_alone_shrinks_a_lesion_about_12_percent_in_3_weeks(resp):
    t = jnp.linspace(0.0, 21 * 24.0, 200)
    cum_inhibition = 0.7 * t  # ~70 % ERK inhibition on genotype-directed therapy
    v, _ = resp.volumes_ml(t, jnp.asarray([1.0]), cum_inhibition, jnp.zeros((200, 1)), jnp.zeros(1))
    assert 0.06 <= 1.0 - float(v[-1, 0]) <= 0.18


def test_lesion_radiosensitivity_scales_alpha_and_sterilisation():
    resp = Response.from_cards([1.0, 2.0])
    assert float(resp.alpha_per_gy[1]) == pytest.approx(2.0 * float(resp.alpha_per_gy[0]))
    p = resp.sterilisation_probability(jnp.asarray([1e-6, 1e-6]), jnp.asarray([100.0, 100.0]))
    assert 0.0 < float(p[0]) < float(p[1]) <= 1.0
    assert float(resp.sterilisation_probability(jnp.asarray([1.0]), jnp.asarray([0.0]))[0]) == pytest.approx(0.0)
