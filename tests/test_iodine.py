import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import protocol_dict

from raisim import IodineChannels, protocol_from_dict
from raisim.core.model import Schedule, solve
from raisim.engine.simulate import build_model, build_schedule
from raisim.io.vocab import ISOTOPE_HALF_LIFE_H, isotope_decay_per_h
from raisim.protocol.schedule import enumerate_courses

ISOTOPES = ("I-131", "I-123", "I-124")
ADMIN_H = (0.0, 30.0, 75.0)


def _model_and_schedule(no_uptake: bool):
    p = protocol_from_dict(protocol_dict(followup={"months": [1]}))
    model = build_model(p)
    if no_uptake:
        io = model.iodine
        zero = jnp.zeros(())
        io = eqx.tree_at(
            lambda m: (
                m.renal_clearance_l_per_h,
                m.slow_in_per_h,
                m.nis_tissue_clearance_l_per_h,
                m.lesion_uptake_l_per_h_per_g,
            ),
            io,
            (zero, zero, zero, zero),
        )
        model = eqx.tree_at(lambda m: m.iodine, model, io)
    sched, _, _ = build_schedule(p, enumerate_courses(p)[0], n_channels=3, dose_pad=64)
    f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
    channels = IodineChannels(
        admin_time_h=f(ADMIN_H),
        decay_per_h=f([isotope_decay_per_h(i) for i in ISOTOPES]),
        renal_factor=f([1.0, 1.0, 1.0]),
        uptake_factor=f([1.0, 1.0, 1.0]),
    )
    sched = Schedule(sched.dose_times_h, sched.dose_mg, sched.tsh, channels)
    return model, sched


def _body(model, sol, ts, channels):
    """Whole-body activity per channel (gut in closed form + every compartment)."""
    io = sol.ys.iodine
    gut = np.stack([np.asarray(model.iodine.gut(jnp.asarray(t), channels)) for t in ts])
    return gut + np.asarray(io.ecf) + np.asarray(io.slow) + np.asarray(io.nis_tissue) + np.asarray(io.lesion).sum(-1)


def test_isotopes_without_uptake_decay_with_physical_half_life():
    model, sched = _model_and_schedule(no_uptake=True)
    ts = jnp.linspace(0.0, 20 * 24.0, 481)
    sol = solve(model, sched, ts, rtol=1e-10, atol=1e-14)
    assert bool(sol.ok)
    body = _body(model, sol, np.asarray(ts), sched.channels)
    for c, iso in enumerate(ISOTOPES):
        t = np.asarray(ts)
        after = t >= ADMIN_H[c]
        expected = np.exp(-math.log(2) / ISOTOPE_HALF_LIFE_H[iso] * (t[after] - ADMIN_H[c]))
        rel = np.abs(body[after, c] - expected) / expected
        assert rel.max() < 1e-6, (iso, rel.max())
        assert np.all(body[~after, c] == 0.0)
    # the three half-lives differ, so a wrong isotope would fail
    assert ISOTOPE_HALF_LIFE_H["I-123"] < ISOTOPE_HALF_LIFE_H["I-124"] < ISOTOPE_HALF_LIFE_H["I-131"]


def test_mass_balance_with_default_kinetics():
    model, sched = _model_and_schedule(no_uptake=False)
    ts = jnp.linspace(-24.0, 30 * 24.0, 745)
    sol = solve(model, sched, ts, rtol=1e-9, atol=1e-13)
    assert bool(sol.ok)
    io = sol.ys.iodine
    body = _body(model, sol, np.asarray(ts), sched.channels)
    total = body + np.asarray(io.excreted) + np.asarray(io.decayed)
    t = np.asarray(ts)
    for c in range(3):
        after = t >= ADMIN_H[c]
        assert np.max(np.abs(total[after, c] - 1.0)) < 1e-6
        assert np.all(np.abs(total[~after, c]) < 1e-12)
        # there really is excretion, decay and lesion uptake going on
        assert np.asarray(io.excreted)[-1, c] > 0.3
        assert np.asarray(io.decayed)[-1, c] > 0.05
        assert np.asarray(io.lesion)[:, c, :].max() > 0


def test_lesion_uptake_scales_with_membrane_nis():
    model, _ = _model_and_schedule(no_uptake=False)
    low = model.iodine.lesion_uptake_per_h(jnp.asarray([1.0, 1.0]))
    high = model.iodine.lesion_uptake_per_h(jnp.asarray([3.0, 3.0]))
    assert np.allclose(np.asarray(high), 3.0 * np.asarray(low))


@pytest.mark.parametrize("org,longer", [(1.0, False), (5.0, True)])
def test_retention_improves_with_differentiation(org, longer):
    model, _ = _model_and_schedule(no_uptake=False)
    base = float(model.iodine.lesion_efflux_per_h(jnp.asarray([1.0]))[0])
    k = float(model.iodine.lesion_efflux_per_h(jnp.asarray([org]))[0])
    assert (k < base) == longer
