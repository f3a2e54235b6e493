"""The stabilised explicit solver (RKC) of the tail, and the tail switch in :func:`raisim.core.model.solve`."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import chebyshev

from raisim.core.rkc import RKC, chebyshev_derivatives, spectral_radius, stages_for

RATES = np.array([1000.0, 1.0])  # 1/h: one stiff, one slow relaxation towards sin(t)


def _field(t, y, args):
    return -jnp.asarray(RATES) * (y - jnp.sin(t))


def _exact(t: float) -> np.ndarray:
    """y' = -k (y - sin t), y(0) = 0."""
    k = RATES
    return k / (1 + k**2) * (k * np.sin(t) - np.cos(t) + np.exp(-k * t))


def _fixed_step(n: int) -> np.ndarray:
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_field),
        RKC(jnp.asarray(RATES.max())),
        0.0,
        2.0,
        2.0 / n,
        jnp.zeros(2),
        stepsize_controller=diffrax.ConstantStepSize(),
        max_steps=10_000,
    )
    return np.abs(np.asarray(sol.ys[-1]) - _exact(2.0))


def test_chebyshev_derivatives_match_the_polynomials():
    for n in (2, 3, 7, 20, 64):
        x = 1.0 + (2.0 / 13.0) / n**2
        d1, d2 = chebyshev_derivatives(jnp.asarray(x), jnp.asarray(n))
        t = chebyshev.Chebyshev.basis(n)
        assert float(d1) == pytest.approx(t.deriv(1)(x), rel=1e-9)
        assert float(d2) == pytest.approx(t.deriv(2)(x), rel=1e-7)


def test_stages_cover_the_stability_interval():
    for h, rho in ((1.0, 1.0), (24.0, 1.5), (168.0, 2.0)):
        s = int(stages_for(jnp.asarray(h), jnp.asarray(rho), 64))
        assert 0.653 * s**2 >= h * rho
        assert s == 2 or 0.653 * (s - 1) ** 2 < 1.1 * h * rho + 0.653  # not more than needed


def test_second_order_on_the_slow_mode_and_stable_at_h_lambda_100():
    """Halving h divides the slow mode's error by ~4 while the stiff mode (h k up to 100) stays put."""
    errs = np.array([_fixed_step(n) for n in (20, 40, 80)])
    ratios = errs[:-1, 1] / errs[1:, 1]
    assert np.all((ratios > 3.5) & (ratios < 4.5)), ratios
    assert np.all(errs[:, 0] < 1e-4)  # bounded and accurate: an explicit RK4 step of h k = 100 would explode


def test_adaptive_solve_meets_its_tolerance():
    ts = jnp.linspace(0.0, 10.0, 11)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_field),
        RKC(jnp.asarray(RATES.max())),
        0.0,
        10.0,
        0.01,
        jnp.zeros(2),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-9),
        max_steps=20_000,
    )
    exact = np.stack([_exact(float(t)) for t in ts])
    assert np.max(np.abs(np.asarray(sol.ys) - exact)) < 1e-5


def test_spectral_radius_by_power_iteration():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    eig = -np.geomspace(1e-3, 1.4, 12)
    jac = q @ np.diag(eig) @ q.T
    assert float(spectral_radius(jnp.asarray(jac))) == pytest.approx(1.4, rel=1e-3)


def test_tail_solver_agrees_with_tsit5_on_a_two_course_protocol():
    """The switch changes the numerical method only: every state stays within the tolerance's reach."""
    from helpers import PROTOCOLS

    from raisim import load_protocol
    from raisim.core.model import solve
    from raisim.engine.simulate import prepare

    p = load_protocol(PROTOCOLS / "erriti_21d.yaml")
    prep = prepare(p)
    grid = jnp.asarray(prep.grid)
    sched = prep.schedules[0]
    tight = solve(prep.model, sched, grid, rtol=1e-10, atol=1e-13)
    plain = solve(prep.model, sched, grid, rtol=1e-6, atol=1e-9)
    tail = solve(prep.model, sched, grid, rtol=1e-6, atol=1e-9, tail_delay_h=168.0)
    assert bool(tail.ok)
    assert int(tail.num_steps) < 0.5 * int(plain.num_steps)

    def worst(sol):
        errs = jax.tree_util.tree_map(
            lambda a, b: float(jnp.max(jnp.abs(a - b)) / max(float(jnp.max(jnp.abs(b))), 1e-30)), sol.ys, tight.ys
        )
        return max(jax.tree_util.tree_leaves(errs))

    assert worst(tail) < 1e-4
    assert worst(tail) < 3.0 * worst(plain)
