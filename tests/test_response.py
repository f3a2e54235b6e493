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
