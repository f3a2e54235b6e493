import jax
import jax.numpy as jnp
import pytest

from raisim import NIS


def test_steep_erk_threshold_and_tsh_multiplies():
    nis = NIS.from_cards([1.0])
    low_tsh = jnp.asarray(0.1)
    one = jnp.asarray(1.0)
    d1 = float(nis.transcription_drive(one, one, low_tsh))
    d50 = float(nis.transcription_drive(jnp.asarray(0.5), one, low_tsh))
    d10 = float(nis.transcription_drive(jnp.asarray(0.1), one, low_tsh))
    assert d1 == pytest.approx(1.0, rel=0.01)
    assert (d10 - d1) > 3 * (d50 - d1)  # steep: 50 % -> 90 % inhibition gives far more
    assert float(nis.transcription_drive(one, one, jnp.asarray(100.0))) > 1.5 * d1


def test_higher_untreated_output_needs_deeper_inhibition():
    nis = NIS.from_cards([1.0])
    tsh = jnp.asarray(0.1)
    # the same 70 % inhibition: a RAS-like tumour (scale 1) gains more than a BRAF-like one (scale 2.5)
    ras = float(nis.transcription_drive(jnp.asarray(0.3), jnp.asarray(1.0), tsh))
    braf = float(nis.transcription_drive(jnp.asarray(0.3 * 2.5), jnp.asarray(2.5), tsh))
    assert ras > 2.0 * braf


def test_initial_state_is_steady_and_scaled_by_capacity():
    nis = NIS.from_cards([1.0, 0.5])
    s = nis.initial_state(jnp.asarray(0.1), jnp.asarray(2.5))
    d = nis.vector_field(s, jnp.asarray(2.5), jnp.asarray(2.5), jnp.asarray(0.1))
    assert all(float(jnp.max(jnp.abs(v))) < 1e-12 for v in jax.tree_util.tree_leaves(d))
    assert float(s.membrane[1]) == pytest.approx(0.5 * float(s.membrane[0]))
