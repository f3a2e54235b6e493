import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import protocol_dict

from raisim import build_doses, enumerate_courses, protocol_from_dict
from raisim.biology.pk import PK
from raisim.biology.population_pk import closed_form_central_mg, iiv_covariance, sample_population, solve_pk

LINEAR = [
    ("trametinib", 2.0, 24.0),
    ("selumetinib", 75.0, 12.0),
    ("vemurafenib", 960.0, 12.0),
    ("lapatinib", 1250.0, 24.0),
    ("anti_her3", 1000.0, 504.0),
]


def _regimen_doses():
    """Doses of every linear drug over 42 days with a hold and a dose reduction (schedule engine)."""
    d = protocol_dict(
        patient={"genotype": "RAS", "lesions": [{"site": "lung", "mass_g": 1.0}]},
        treatment={
            "regimens": {"RAS": [{"drug": n, "dose_mg": dose, "interval_h": tau} for n, dose, tau in LINEAR]},
            "start_day": 3,
            "stop_day": 42,
            "holds": [{"from_day": 10, "to_day": 13, "drug": "trametinib"}],
            "dose_changes": [{"drug": "selumetinib", "from_day": 20, "dose_mg": 50.0}],
        },
        scans=[],
        rai=None,
    )
    p = protocol_from_dict(d)
    return build_doses(p, enumerate_courses(p)[0])


def test_closed_form_and_ode_agree_for_linear_drugs():
    doses = _regimen_doses()
    pk = PK.from_cards(tuple(n for n, _, _ in LINEAR))
    assert bool(jnp.all(pk.is_linear))
    ts = jnp.linspace(0.0, 45 * 24.0, 4321)
    T, A = jnp.asarray(doses.times_h), jnp.asarray(doses.amounts_mg)
    closed = np.asarray(closed_form_central_mg(pk, ts, T, A))
    ys, ok = solve_pk(pk, T, A, ts, rtol=1e-10, atol=1e-13)
    assert bool(ok)
    ode = np.asarray(ys.central_mg)
    rel = np.abs(closed - ode).max(axis=0) / np.abs(ode).max(axis=0)
    assert rel.max() < 1e-6, dict(zip([n for n, _, _ in LINEAR], rel, strict=True))
    # nothing before the first dose on day 3, and the hold shows up as a trough dip for trametinib
    assert np.all(closed[np.asarray(ts) < 48.0] == 0.0)


def test_closed_form_is_sensitive_to_the_regimen():
    doses = _regimen_doses()
    pk = PK.from_cards(tuple(n for n, _, _ in LINEAR))
    ts = jnp.linspace(0.0, 45 * 24.0, 541)
    a = closed_form_central_mg(pk, ts, jnp.asarray(doses.times_h), jnp.asarray(doses.amounts_mg))
    b = closed_form_central_mg(pk, ts, jnp.asarray(doses.times_h), jnp.asarray(doses.amounts_mg) * 1.01)
    on = a > 1e-9
    ratio = jnp.where(on, b / jnp.where(on, a, 1.0), 1.01)
    assert float(jnp.max(jnp.abs(ratio - 1.0))) == pytest.approx(0.01, rel=1e-6)
    # the trametinib hold (days 10-13) lowers the day-14 concentration below day 9's
    c = np.asarray(a)[:, 0]
    t = np.asarray(ts) / 24.0 + 1.0
    assert c[np.argmin(np.abs(t - 14.0))] < c[np.argmin(np.abs(t - 9.9))]


def test_population_sampling_is_seeded_and_has_the_card_variability():
    a = sample_population(("trametinib", "dabrafenib"), 4000, seed=3)
    b = sample_population(("trametinib", "dabrafenib"), 4000, seed=3)
    c = sample_population(("trametinib", "dabrafenib"), 4000, seed=4)
    assert np.array_equal(np.asarray(a.cl_l_per_h), np.asarray(b.cl_l_per_h))
    assert not np.array_equal(np.asarray(a.cl_l_per_h), np.asarray(c.cl_l_per_h))
    names, cov = iiv_covariance("trametinib")
    i_cl = names.index("cl_l_per_h")
    cl = np.log(np.asarray(a.cl_l_per_h)[:, 0])
    women = np.arange(4000) % 2 == 0
    assert np.std(cl[women]) == pytest.approx(np.sqrt(cov[i_cl, i_cl]), rel=0.06)
    # the correlation between CL and V1 given in the card is reproduced
    v1 = np.log(np.asarray(a.v1_l)[:, 0])
    assert np.corrcoef(cl[women], v1[women])[0, 1] == pytest.approx(0.3, abs=0.06)


def test_population_vmaps_through_both_paths():
    pop = sample_population(("trametinib",), 8, seed=0)
    T = jnp.asarray(np.where(np.arange(32) < 21, np.arange(32) * 24.0, 1e12)[None, :])
    A = jnp.asarray(np.where(np.arange(32) < 21, 2.0, 0.0)[None, :])
    ts = jnp.linspace(0.0, 30 * 24.0, 121)
    closed = jax.vmap(lambda pk: closed_form_central_mg(pk, ts, T, A))(pop)
    ode, ok = jax.vmap(lambda pk: solve_pk(pk, T, A, ts, rtol=1e-10, atol=1e-13))(pop)
    assert bool(jnp.all(ok))
    assert float(jnp.max(jnp.abs(closed - ode.central_mg))) < 1e-6 * float(jnp.max(closed))
    assert float(jnp.std(closed[:, 60, 0])) > 0.0
