import jax.numpy as jnp
import pytest

from raisim import Toxicity


def test_longer_courses_carry_more_risk():
    tox = Toxicity.from_cards(("trametinib", "dabrafenib"))
    p10 = float(tox.p_grade3(jnp.asarray([10.0, 10.0])))
    p42 = float(tox.p_grade3(jnp.asarray([42.0, 42.0])))
    assert 0.0 < p10 < p42 < 1.0
    h = float(jnp.sum(tox.hazard_per_day))
    assert p42 == pytest.approx(1 - jnp.exp(-42 * h))
    assert float(tox.p_discontinuation(jnp.asarray([42.0, 42.0]))) < p42
