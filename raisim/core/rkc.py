"""A stabilised explicit solver for the stiff, slowly varying tail of a course.

After the last dose and the last radioiodine administration the model relaxes
slowly (weeks), but a few states relax fast towards quasi-steady values: ERK
(~1.3 /h), the drugs' central compartments (~0.5–0.8 /h) and the NIS tissue's
iodide (~0.5 /h). An explicit Runge–Kutta method such as Tsit5 must then keep
its step below ~2.5 h for stability alone, whatever the tolerance, for months
of follow-up. Implicit methods remove that limit but need a Jacobian and a
linear solve per step, which cost more than they save under ``vmap``.

:class:`RKC` is the damped Runge–Kutta–Chebyshev method of Sommeijer,
Shampine & Verwer (1998, *J. Comput. Appl. Math.* 88:315–326): second order,
explicit (vector-field evaluations only, so it vectorises and runs on a GPU
like Tsit5), with a stability interval along the negative real axis that
grows with the square of the number of stages, β(s) ≈ 0.653 s². Each step
chooses its number of stages from the step size and an upper bound on the
spectral radius of the Jacobian (``spectral_radius_per_h``), so a step of a
week costs ~20 evaluations instead of ~400. Its error estimate is the
published one, ``(12 (y_n − y_{n+1}) + 6 h (f_n + f_{n+1})) / 15``; dense
output is cubic Hermite. It suits eigenvalues near the negative real axis,
which is what the relaxations of this model have; it is not a general stiff
solver (oscillatory stiff modes would need an implicit method).

Units: whatever the ODE uses (raisim: time h, rates 1/h).
"""

from __future__ import annotations

from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

#: Damping of the Chebyshev polynomial (the published default): a strip of width ~ε around the real axis.
DAMPING = 2.0 / 13.0
#: Stability interval per stage², β(s) / s², of the damped method (≈ 2 − 4ε/3).
STABILITY_PER_STAGE2 = 0.653


def stages_for(h: Float[Array, ""], spectral_radius_per_h: Float[Array, ""], max_stages: int) -> Array:
    """Stages s ≥ 2 with β(s) ≥ h ρ (with a 10 % margin), at most ``max_stages`` (counts; h in h, ρ in 1/h)."""
    need = jnp.sqrt(1.0 + 1.1 * h * spectral_radius_per_h / STABILITY_PER_STAGE2)
    return jnp.clip(jnp.ceil(need), 2, max_stages).astype(jnp.int32)


def chebyshev_derivatives(x: Float[Array, ""], n: Array) -> tuple[Array, Array]:
    """T_n'(x) and T_n''(x) of the Chebyshev polynomial of degree n ≥ 2 at x > 1, in closed form.

    With x = cosh θ: T_n = cosh nθ, T_n' = n sinh nθ / sinh θ, and the Chebyshev equation
    (1 − x²) T'' − x T' + n² T = 0 gives T_n''. (A recurrence would cost a loop per step.)
    """
    n = n.astype(x.dtype)
    theta = jnp.arccosh(x)
    d1 = n * jnp.sinh(n * theta) / jnp.sinh(theta)
    d2 = (n * n * jnp.cosh(n * theta) - x * d1) / (x * x - 1.0)
    return d1, d2


def spectral_radius(jac: Float[Array, "n n"], iterations: int = 60) -> Float[Array, ""]:
    """Largest |eigenvalue| of ``jac`` by power iteration (units of ``jac``; the RKC codes' estimate).

    Starts from a vector with every component, so no mode is missed; converges as
    (|λ₂| / |λ₁|)^k, and a near-tie leaves the estimate between the two (hence the caller's margin).
    """
    v = jnp.ones(jac.shape[0], jac.dtype) + jnp.linspace(0.0, 0.5, jac.shape[0], dtype=jac.dtype)

    def body(_, c):
        v, _ = c
        w = jac @ v
        norm = jnp.linalg.norm(w)
        return w / jnp.maximum(norm, 1e-300), norm

    v = v / jnp.linalg.norm(v)
    return jax.lax.fori_loop(0, iterations, body, (v, jnp.zeros((), jac.dtype)))[1]


class RKC(diffrax.AbstractAdaptiveSolver):
    """Damped Runge–Kutta–Chebyshev (order 2, explicit, extended real stability), adaptive stages.

    ``spectral_radius_per_h``: an upper bound on the Jacobian's spectral radius over the solve
    (1/h in raisim; a per-patient array is fine under ``vmap``); ``max_stages``: cap on the
    stages of one step (a count; the step must satisfy 0.653 s² ≥ h ρ, so give the step-size
    controller a ``dtmax`` within it).
    """

    spectral_radius_per_h: Float[Array, ""]
    max_stages: int = eqx.field(static=True, default=64)

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = diffrax.ThirdOrderHermitePolynomialInterpolation

    def order(self, terms):
        return 2

    def error_order(self, terms):
        return 3  # the estimate is O(h³): a local error of the second-order method

    def init(self, terms, t0, t1, y0, args):
        return None

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        h = t1 - t0
        f = lambda t, y: terms.vf(t, y, args)  # noqa: E731
        s = stages_for(h, self.spectral_radius_per_h, self.max_stages)
        # the scalar coefficients in float64 whatever the state's precision (T_s'' divides by w0² − 1 ~ 0.3/s²)
        w0_64 = 1.0 + DAMPING / jnp.square(s.astype(jnp.float64))
        ds, es = chebyshev_derivatives(w0_64, s)
        w0, w1 = w0_64.astype(y0.dtype), (ds / es).astype(y0.dtype)  # w1 = T_s'(w0) / T_s''(w0)
        b2 = 1.0 / (4.0 * w0 * w0)  # T2''/T2'^2 = 4 / (4 w0)^2; b0 = b1 = b2
        f0 = f(t0, y0)
        # stage 1
        mu1 = b2 * w1
        y1 = y0 + mu1 * h * f0
        c1 = w1 * 4.0 / (4.0 * w0) / (4.0 * w0)  # c2 / T2'(w0), c2 = w1 T2''/T2'
        one, zero = jnp.ones_like(w0), jnp.zeros_like(w0)
        # Chebyshev values of the previous two stages: T_{j-1}, T_{j-2} and derivatives at w0
        # carry: Y_{j-2}, Y_{j-1}, c_{j-1}, b_{j-2}, b_{j-1}, then T, T', T'' at w0 of degrees j-1 and j-2
        carry = (y0, y1, c1, b2, b2, w0, one, one, zero, zero, zero)

        def body(j, c):
            ym2, ym1, cm1, bm2, bm1, tm1, tm2, dm1, dm2, em1, em2 = c
            tj = 2.0 * w0 * tm1 - tm2
            dj = 2.0 * tm1 + 2.0 * w0 * dm1 - dm2
            ej = 4.0 * dm1 + 2.0 * w0 * em1 - em2
            bj = ej / (dj * dj)
            a_prev = 1.0 - bm1 * tm1  # a_{j-1} = 1 - b_{j-1} T_{j-1}(w0)
            mu = 2.0 * w0 * bj / bm1
            nu = -bj / bm2
            mut = 2.0 * w1 * bj / bm1
            gam = -a_prev * mut
            yj = (1.0 - mu - nu) * y0 + mu * ym1 + nu * ym2 + mut * h * f(t0 + cm1 * h, ym1) + gam * h * f0
            cj = w1 * ej / dj
            return (ym1, yj, cj, bm1, bj, tj, tm1, dj, dm1, ej, em1)

        y_new = _while_stages(body, carry, s)[1]
        f_new = f(t1, y_new)
        y_error = (12.0 * (y0 - y_new) + 6.0 * h * (f0 + f_new)) / 15.0
        dense = dict(y0=y0, y1=y_new, k0=h * f0, k1=h * f_new)
        return y_new, y_error, dense, None, diffrax.RESULTS.successful


def _while_stages(body, carry, s):
    """Run ``body(j, carry)`` for j = 2 … s (s traced): a while loop, so a step costs only its own stages."""

    def cond(c):
        return c[0] <= s

    def step(c):
        return (c[0] + 1, body(c[0], c[1]))

    return jax.lax.while_loop(cond, step, (jnp.asarray(2, jnp.int32), carry))[1]


__all__ = ["RKC", "chebyshev_derivatives", "spectral_radius", "stages_for"]
