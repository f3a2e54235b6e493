"""The likelihood of the trials table: probability vectors, genotype mixing, closed-form AE, priors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import REPO, synthetic_emulator

from raisim.biology.toxicity import Toxicity
from raisim.calibration.likelihood import TableLikelihood, numpyro_model
from raisim.io.trials import load_trials

TABLE = load_trials(REPO / "models" / "data" / "trials.csv")
LIK = TableLikelihood(TABLE, synthetic_emulator(TABLE))


def _params(z=None):
    loc, _ = LIK.hazard_prior()
    return {
        "z": jnp.zeros(len(LIK.emulator.parameters)) if z is None else z,
        "log_hazard": jnp.asarray(loc),
        "share_BRAF_V600E": 0.46,
        "share_RAS": 0.28,
    }


def test_observations_cover_every_row_once_with_nested_pairs_joined():
    lines = [line for ob in LIK.observations for line in ob.lines]
    assert sorted(lines) == [r.line for r in TABLE.rows]
    nested = [ob for ob in LIK.observations if ob.kind == "multinomial" and len(ob.lines) == 2]
    assert [ob.lines for ob in nested] == [(1, 2), (3, 4), (5, 6), (12, 13)]
    ho_ras = nested[0]
    assert ho_ras.counts == (0, 0, 5) and ho_ras.labels == ("none", "below", "reached")


def test_probabilities_are_valid_and_move_with_the_trial_effect():
    effects = {t: 0.0 for t in LIK.trials}
    probs = LIK.probabilities(_params(), effects)
    for ob in LIK.observations:
        p = np.asarray(probs[ob.name])
        assert ((p > 0) & (p < 1)).all()
        if ob.kind == "multinomial":
            assert p.sum() == pytest.approx(1.0, abs=1e-6)
    up = LIK.probabilities(_params(), effects | {"Weber2022": 1.0})
    row = next(ob.name for ob in LIK.observations if LIK.rows[ob.lines[0]].arm == "ERRITI_BRAF")
    assert float(up[row][0]) > float(probs[row][0])  # a readout: shifted on the logit scale
    resp = next(ob.name for ob in LIK.observations if LIK.rows[ob.lines[0]].arm == "ERRITI_treated")
    np.testing.assert_allclose(up[resp], probs[resp])  # response among the treated: no trial effect


def test_grade3_rows_are_the_closed_form_of_the_toxicity_block():
    probs = LIK.probabilities(_params(), {t: 0.0 for t in LIK.trials})
    row = next(r for r in TABLE.rows if r.arm == "MERAIODE_RAS_all")  # trametinib 42 d
    want = float(Toxicity.from_cards(("trametinib",)).p_grade3(jnp.array([42.0])))
    assert float(probs[f"row{row.line}"][0]) == pytest.approx(want, rel=1e-9)


def test_braf_wt_arms_split_by_the_genotype_shares():
    row = next(r for r in TABLE.rows if r.genotype == "BRAF_WT")
    w = np.asarray(LIK.genotype_weights(row, 0.5, 0.3))
    np.testing.assert_allclose(w, [0.0, 0.6, 0.4])
    any_row = next(r for r in TABLE.rows if r.genotype == "ANY")
    np.testing.assert_allclose(np.asarray(LIK.genotype_weights(any_row, 0.5, 0.3)), [0.5, 0.3, 0.2])


def test_log_density_is_finite_and_differentiable():
    from numpyro.infer.util import initialize_model

    info = initialize_model(jax.random.PRNGKey(0), numpyro_model, model_args=(LIK,))
    pe, grad = jax.value_and_grad(info.potential_fn)(info.param_info.z)
    assert np.isfinite(float(pe))
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grad))


def test_rows_the_emulator_does_not_know_are_refused(tmp_path):
    from raisim.io.errors import InputError

    header = (REPO / "models" / "data" / "trials.csv").read_text().splitlines()[0]
    path = tmp_path / "t.csv"
    same = "T,S,2024,a,RAS,trametinib:2mg:q24h,,22,,uptake,i123_tbr,10,4,,,,,,,,"  # the ERRITI_WT design
    path.write_text(f"{header}\n{same}\n")
    TableLikelihood(load_trials(path), LIK.emulator)  # known design under another row number: accepted
    path.write_text(f"{header}\n{same.replace(',22,', ',15,')}\n")  # scan on day 15: a design never simulated
    with pytest.raises(InputError, match="row 1"):
        TableLikelihood(load_trials(path), LIK.emulator)
