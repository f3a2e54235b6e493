"""The jax/diffrax engine against an independent numpy + scipy implementation of the same ODE.

``benchmarks/reference_scipy.py`` re-implements ``raisim.core.model.vector_field``
from the equations and integrates it piecewise between the forcing's
discontinuities with scipy. Both are solved tightly on the ERRITI protocol's
first course (selection scan succeeds → I-131 on day 25) and must agree to
1e-5 of each quantity's maximum; a 1 % change of one parameter in the
reference must break that agreement, so the comparison can fail.
"""

from __future__ import annotations

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from raisim import load_protocol
from raisim.core.model import solve
from raisim.engine.simulate import prepare
from raisim.protocol.schedule import protocol_drugs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from reference_scipy import solve_reference, solve_reference_with_stats  # noqa: E402

PROTOCOL = REPO / "configs" / "protocols" / "erriti_21d.yaml"
T_CUT_H = 60 * 24.0  # the fast comparison: t <= 60 days
RAISIM_TOL = {"rtol": 1e-9, "atol": 1e-12}
REF_TOL = {"rtol": 1e-10, "atol": 1e-14}
AGREE = 1e-5  # max |raisim - reference| / max_t |reference|, per series


def _setup():
    """Model, schedules of every course and the shared grid, exactly as ``raisim.simulate`` builds them."""
    prep = prepare(load_protocol(PROTOCOL), seed=0)
    scheds = prep.schedules
    return prep.protocol, prep.model, prep.courses, scheds, prep.grid


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def _rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    """Max over time and series of |x - ref| / max_t |ref| (series that stay 0 must stay 0)."""
    x = x.reshape(x.shape[0], -1)
    ref = ref.reshape(ref.shape[0], -1)
    scale = np.abs(ref).max(axis=0)
    err = np.abs(x - ref).max(axis=0)
    return float(np.max(np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), err)))


def _checked(ys: dict) -> dict[str, np.ndarray]:
    """The four quantities the comparison is about."""
    return {
        "erk": ys.pathway.erk,
        "membrane_nis": ys.nis.membrane,
        "trametinib_central_mg": ys.pk.central_mg[:, 0],
        "lesion_iodine": ys.iodine.lesion,
    }


def _errors(ys: dict, ref: dict) -> dict[str, float]:
    a, b = _checked(ys), _checked(ref)
    return {k: _rel_err(a[k], b[k]) for k in a}


@pytest.fixture(scope="module")
def first_course():
    p, model, courses, scheds, grid = _setup()
    assert p.solver.output_step_h == 2.0
    assert protocol_drugs(p)[0] == "trametinib" and bool(model.pk.present[0])
    assert courses[0].rai_day == 25  # the main path: the selection scan succeeds
    ts = grid[grid <= T_CUT_H]
    sol = solve(model, scheds[0], jnp.asarray(ts), **RAISIM_TOL, max_steps=p.solver.max_steps)
    assert bool(sol.ok)
    return model, scheds[0], ts, _np(sol.ys)


@pytest.fixture(scope="module")
def reference_dop853(first_course):
    model, sched, ts, _ = first_course
    return solve_reference(model, sched, ts, method="DOP853", **REF_TOL)


def test_reference_has_the_layout_of_the_engine(first_course, reference_dop853):
    *_, ys = first_course
    flat_ref, tree_ref = jax.tree_util.tree_flatten(reference_dop853)
    flat, tree = jax.tree_util.tree_flatten(ys)
    assert tree_ref == tree
    for a, b in zip(flat, flat_ref, strict=True):
        assert a.shape == b.shape
        assert np.all(np.isfinite(b))


def test_engine_agrees_with_scipy_dop853_over_60_days(first_course, reference_dop853):
    model, sched, ts, ys = first_course
    ref = reference_dop853
    # the comparison is not vacuous: drug given, ERK inhibited, NIS induced, every channel taken up
    q = _checked(ref)
    assert q["trametinib_central_mg"].max() > 0.1
    assert q["erk"].min() < 0.5
    assert q["membrane_nis"].max(axis=0).min() > 1.2 * q["membrane_nis"][0].min()
    assert np.all(q["lesion_iodine"].max(axis=0) > 1e-7)
    errs = _errors(ys, ref)
    assert max(errs.values()) < AGREE, errs


def test_engine_agrees_with_scipy_lsoda_over_60_days(first_course):
    model, sched, ts, ys = first_course
    ref, stats = solve_reference_with_stats(model, sched, ts, method="LSODA", **REF_TOL)
    assert stats["n_segments"] > 100  # restarted at every dose, lag, TSH and iodine event
    errs = _errors(ys, ref)
    assert max(errs.values()) < AGREE, errs


def test_engine_agrees_with_scipy_rk45_over_10_days(first_course):
    model, sched, ts, ys = first_course
    keep = ts <= 10 * 24.0
    ref = solve_reference(model, sched, ts[keep], method="RK45", rtol=1e-10, atol=1e-14)
    short = jax.tree_util.tree_map(lambda x: x[keep], ys)
    errs = _errors(short, ref)
    errs.pop("lesion_iodine")  # no radioiodine before day 22
    assert max(errs.values()) < AGREE, errs


@pytest.mark.parametrize(
    "where, quantity",
    [
        (lambda m: m.iodine.renal_clearance_l_per_h, "lesion_iodine"),
        (lambda m: m.pk.cl_l_per_h, "trametinib_central_mg"),
    ],
    ids=["renal_clearance", "tki_clearance"],
)
def test_a_one_percent_parameter_change_breaks_the_agreement(first_course, reference_dop853, where, quantity):
    model, sched, ts, ys = first_course
    perturbed = eqx.tree_at(where, model, where(model) * 1.01)
    ref = solve_reference(perturbed, sched, ts, method="DOP853", **REF_TOL)
    errs = _errors(ys, ref)
    # the unperturbed reference agrees; the perturbed one is off by far more than the tolerance
    assert _errors(ys, reference_dop853)[quantity] < AGREE
    assert errs[quantity] > 100 * AGREE, errs


@pytest.mark.slow
def test_engine_agrees_with_scipy_on_every_course_over_the_whole_followup():
    p, model, courses, scheds, grid = _setup()
    ts = jnp.asarray(grid)
    for course, sched in zip(courses, scheds, strict=True):
        sol = solve(model, sched, ts, **RAISIM_TOL, max_steps=p.solver.max_steps)
        assert bool(sol.ok), course.describe()
        ref = solve_reference(model, sched, grid, method="LSODA", **REF_TOL)
        errs = _errors(_np(sol.ys), ref)
        assert max(errs.values()) < AGREE, (course.describe(), errs)
