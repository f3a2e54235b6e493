import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import protocol_dict

from raisim import PK, one_compartment_oral_closed_form, protocol_from_dict
from raisim.biology.pk import PKState
from raisim.core.model import solve
from raisim.engine.simulate import build_model, build_schedule
from raisim.protocol.schedule import enumerate_courses

KA, CL, V, TLAG = 1.3, 4.0, 120.0, 0.5


def _one_compartment_run(interval_h: float, dose_mg: float):
    p = protocol_from_dict(
        protocol_dict(
            patient={"genotype": "RAS", "lesions": [{"site": "lung", "mass_g": 1.0}]},
            treatment={
                "regimens": {"RAS": [{"drug": "trametinib", "dose_mg": dose_mg, "interval_h": interval_h}]},
                "stop_day": 21,
            },
            scans=[],
            rai=None,
            followup={"months": [1]},
        )
    )
    model = build_model(p)
    fields = ("ka_per_h", "cl_l_per_h", "v1_l", "q_l_per_h", "tlag_h", "f_bio", "induction_fold")
    values = (KA, CL, V, 0.0, TLAG, 1.0, 1.0)
    assert not bool(model.pk.present[1])  # trametinib alone, beside an inert padding slot
    pk = eqx.tree_at(
        lambda m: tuple(getattr(m, f) for f in fields),
        model.pk,
        tuple(getattr(model.pk, f).at[0].set(v) for f, v in zip(fields, values, strict=True)),
    )
    model = eqx.tree_at(lambda m: m.pk, model, pk)
    course = enumerate_courses(p)[0]
    sched, doses, _ = build_schedule(p, course, n_channels=1, dose_pad=64)
    ts = jnp.linspace(0.0, 21 * 24.0, 2017)
    sol = solve(model, sched, ts, rtol=1e-10, atol=1e-13)
    assert bool(sol.ok)
    conc = np.asarray(sol.ys.pk.central_mg)[:, 0] / V
    times = doses.times_h[0, : doses.n_doses[0]]
    exact = one_compartment_oral_closed_form(
        np.asarray(ts), times, np.full(len(times), dose_mg), ka_per_h=KA, cl_l_per_h=CL, v_l=V, tlag_h=TLAG
    )
    return np.asarray(ts), conc, exact, doses


@pytest.mark.parametrize("interval_h,n_expected", [(24.0, 21), (12.0, 42)])
def test_engine_matches_closed_form_one_compartment(interval_h, n_expected):
    ts, conc, exact, doses = _one_compartment_run(interval_h, 2.0)
    assert doses.n_doses[0] == n_expected
    mask = exact > 1e-6 * exact.max()
    rel = np.abs(conc[mask] - exact[mask]) / exact[mask]
    assert rel.max() < 1e-6, rel.max()
    # before the first dose has been absorbed there is no drug
    assert np.all(np.abs(conc[ts < TLAG]) < 1e-15)


def test_closed_form_is_not_trivially_matched():
    """The comparison can fail: a 10 % different clearance is far outside 1e-6."""
    ts, conc, exact, _ = _one_compartment_run(24.0, 2.0)
    wrong = one_compartment_oral_closed_form(
        ts, np.arange(21) * 24.0, np.full(21, 2.0), ka_per_h=KA, cl_l_per_h=CL * 1.1, v_l=V, tlag_h=TLAG
    )
    mask = exact > 1e-6 * exact.max()
    assert np.max(np.abs(conc[mask] - wrong[mask]) / wrong[mask]) > 1e-2


def test_unbound_concentration_units():
    pk = PK.from_cards(("trametinib",))
    v1 = float(pk.v1_l[0])
    state = PKState(central_mg=jnp.asarray([v1 / 100.0]), peripheral_mg=jnp.zeros(1), enzyme_fold=jnp.ones(1))
    total = float(pk.total_ng_per_ml(state)[0])
    assert total == pytest.approx(10.0)  # V1/100 mg in V1 L = 0.01 mg/L = 10 ng/mL
    assert float(pk.unbound_nM(state)[0]) == pytest.approx(10.0 * 0.026 / 615.4 * 1000.0)


def test_covariates_scale_clearance():
    women = PK.from_cards(("trametinib",), sex="female", weight_kg=70.0)
    men = PK.from_cards(("trametinib",), sex="male", weight_kg=70.0)
    heavy = PK.from_cards(("trametinib",), sex="male", weight_kg=140.0)
    assert float(men.cl_l_per_h[0] / women.cl_l_per_h[0]) == pytest.approx(1.26, rel=1e-3)
    assert float(heavy.cl_l_per_h[0]) > float(men.cl_l_per_h[0])
    assert float(heavy.v1_l[0]) == pytest.approx(2.0 * float(men.v1_l[0]))


def test_dabrafenib_autoinduction_raises_clearance():
    pk = PK.from_cards(("dabrafenib",))
    state = PKState(central_mg=jnp.asarray([70.0]), peripheral_mg=jnp.zeros(1), enzyme_fold=jnp.ones(1))
    d = pk.vector_field(state, jnp.zeros(1))
    assert float(d.enzyme_fold[0]) > 0.0
