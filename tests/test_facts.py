"""Biology facts as calibration constraints: the ratios, their emulator, their likelihood term."""

import jax
import numpy as np
import pytest
from helpers import REPO, synthetic_emulator

from raisim.calibration.emulator import ArmEmulator, design_points, parameter_space
from raisim.calibration.facts import fact_observations, fit_facts, nis_log_ratios
from raisim.calibration.likelihood import TableLikelihood, numpyro_model
from raisim.io.trials import load_trials


@pytest.mark.fact
def test_the_cards_typical_values_satisfy_every_fact():
    """NIS of BRAF V600E on dabrafenib + trametinib rises to day 8, falls after day 12, and is
    below 0.85 x its day-10 level by day 28 with the cards' values."""
    ratios = nis_log_ratios({})
    for (name, (threshold, _)), r in zip(fact_observations().items(), ratios, strict=True):
        assert r > threshold, (name, r, threshold)


def test_fact_emulator_learns_where_a_constraint_holds():
    space = parameter_space(["biology/nis.yaml:erk_half_max", "biology/pathway.yaml:adaptive_gain"])
    z = design_points(space, 512, 0)
    values = np.stack([z[:, 0] * 0.1, -z[:, 1] * 0.1, z[:, 0] * 0.1 + 0.1625], axis=1)  # known ratios
    fe = fit_facts(z, values, space)
    assert list(fe.keys) == list(fact_observations())
    p = np.asarray(fe.probabilities(np.array([[1.5, -1.5], [-1.5, 1.5]])))
    assert (p[0] > 0.9).all() and (p[1] < 0.1).all()


def test_only_the_pathway_and_nis_parameters_move_the_facts():
    """The typical patient's TKI-only NIS curve cannot depend on iodine, response or RAS-only
    parameters; the fact emulator takes as input only the parameters that move it."""
    from raisim.calibration.facts import relevant_parameters

    names = [
        "biology/pathway.yaml:erk_output_scale_BRAF_V600E",
        "biology/pathway.yaml:feedback_k_RAS",
        "biology/nis.yaml:erk_half_max",
        "biology/iodine.yaml:lesion_retention_t_half_h",
        "biology/response.yaml:alpha_per_gy",
    ]
    assert relevant_parameters(parameter_space(names)) == [0, 2]


def test_fact_emulator_records_what_it_was_fitted_to():
    from raisim.calibration.facts import facts_signature

    space = parameter_space(["biology/nis.yaml:erk_half_max", "biology/pathway.yaml:adaptive_gain"])
    z = design_points(space, 64, 0)
    values = np.stack([z[:, 0] * 0.1, -z[:, 0] * 0.1, z[:, 0] * 0.1 + 0.1625], axis=1)
    fe = fit_facts(z, values, space, columns=[0])
    assert [p.name for p in fe.parameters] == [space[0].name]
    assert fe.meta["space"] == [p.name for p in space] and fe.meta["facts"] == facts_signature(64)
    assert facts_signature(64) != facts_signature(128)


def test_facts_enter_the_log_density():
    from numpyro.infer.util import log_density

    table = load_trials(REPO / "models" / "data" / "trials.csv")
    emu = synthetic_emulator(table)
    facts = ArmEmulator.load(REPO / "models" / "posterior" / "facts.npz")
    params = {"z": jax.numpy.zeros(len(emu.parameters))}
    from numpyro.handlers import seed, substitute

    def density(lik):  # the other sites drawn with the same seed in both calls
        model = seed(substitute(numpyro_model, data=params), rng_seed=0)
        return log_density(model, (lik,), {}, {})[0]

    without = float(density(TableLikelihood(table, emu)))
    with_facts = float(density(TableLikelihood(table, emu, facts)))
    cols = [[p.name for p in emu.parameters].index(p.name) for p in facts.parameters]
    expected = float(np.sum(jax.nn.log_sigmoid(facts.logits(params["z"][np.array(cols)]))))
    assert with_facts == pytest.approx(without + expected, rel=1e-9, abs=1e-9)


def test_fact_cache_is_extended_not_recomputed(tmp_path, monkeypatch):
    """A cache of the first m Sobol points serves a run with n > m: only the new points are
    simulated, and the cached values come back unchanged."""
    import raisim.calibration.facts as facts

    calls = []

    def fake(overrides):
        calls.append(overrides)
        return [float(len(calls)), 0.0, 0.0]

    monkeypatch.setattr(facts, "nis_log_ratios", fake)
    space = parameter_space(["biology/nis.yaml:erk_half_max", "biology/pathway.yaml:adaptive_gain"])
    cache = tmp_path / "facts_design.npz"
    z4, v4 = facts.simulate_facts(space, 4, 0, cache)
    z8, v8 = facts.simulate_facts(space, 8, 0, cache)
    assert len(calls) == 8  # 4, then the 4 new ones
    np.testing.assert_array_equal(z8[:4], z4)
    np.testing.assert_array_equal(v8[:4], v4)
    facts.simulate_facts(space, 8, 0, cache)
    assert len(calls) == 8  # all cached
