import jax.numpy as jnp
import pytest

from raisim import NIS


def test_steep_erk_threshold_and_tsh_multiplies():
    nis = NIS.from_cards([1.0])
    low_tsh = jnp.asarray(0.1)
    d1 = float(nis.transcription_drive(jnp.asarray(1.0), low_tsh))
    d50 = float(nis.transcription_drive(jnp.asarray(0.5), low_tsh))
    d10 = float(nis.transcription_drive(jnp.asarray(0.1), low_tsh))
    assert d1 == pytest.approx(1.0, rel=0.01)
    assert (d10 - d1) > 3 * (d50 - d1)  # steep: 50 % -> 90 % inhibition gives far more
    assert float(nis.transcription_drive(jnp.asarray(1.0), jnp.asarray(100.0))) > 1.5 * d1


def test_initial_state_is_steady_and_scaled_by_capacity():
    nis = NIS.from_cards([1.0, 0.5])
    s = nis.initial_state(jnp.asarray(0.1))
    d = nis.vector_field(s, jnp.asarray(1.0), jnp.asarray(0.1))
    assert all(float(jnp.max(jnp.abs(v))) < 1e-12 for v in d.values())
    assert float(s["membrane"][1]) == pytest.approx(0.5 * float(s["membrane"][0]))
