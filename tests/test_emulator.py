"""The emulator of arm-level probabilities: design, regression, file round trip, per-patient parameters."""

import numpy as np
import pytest
from helpers import REPO, synthetic_emulator

from raisim.arms import arm_protocol
from raisim.batch import SolverSettings, run_cohort
from raisim.cohort import sample_cohort
from raisim.emulator import (
    ArmEmulator,
    design_points,
    fit_logistic,
    parameter_space,
    quadratic_features,
    values_of,
)
from raisim.trials import load_trials

TABLE = load_trials(REPO / "models" / "data" / "trials.csv")


def test_parameter_space_maps_the_card_prior_and_its_bounds():
    space = parameter_space(["biology/nis.yaml:hill", "biology/nis.yaml:erk_half_max"])
    hill, half = space
    assert hill.value(0.0) == pytest.approx(4.0) and hill.value(1.0) == pytest.approx(4.0 * 1.4)
    assert hill.z_low == pytest.approx(np.log(2.0 / 4.0) / np.log(1.4)) and hill.z_high == 3.0
    assert half.z_low == -3.0 and half.z_of(0.3 * 1.5**2) == pytest.approx(2.0)


def test_design_points_are_deterministic_and_inside_the_bounds():
    space = parameter_space(["biology/nis.yaml:hill", "biology/iodine.yaml:lesion_uptake_l_per_h_per_g"])
    a, b = design_points(space, 256, 3), design_points(space, 256, 3)
    np.testing.assert_array_equal(a, b)
    assert (a[:, 0] >= space[0].z_low - 1e-12).all() and (np.abs(a) <= 3.0 + 1e-12).all()
    assert 1.0 < a[:, 1].std() < 1.4  # spread a little wider than the prior
    assert not np.allclose(a, design_points(space, 256, 4))


def test_quadratic_features_and_logistic_fit_recover_a_known_surface():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4000, 3))
    x = np.asarray(quadratic_features(z))
    assert x.shape == (4000, 1 + 3 + 6)
    truth = np.zeros(x.shape[1])
    truth[[0, 1, 3, 5]] = [-0.5, 1.2, -0.8, 0.4]
    p = 1 / (1 + np.exp(-x @ truth))
    coef = fit_logistic(x, p, np.ones(len(p)), ridge=0.0)  # soft labels: exact probabilities
    np.testing.assert_allclose(coef, truth, atol=1e-3)
    y = (rng.uniform(size=len(p)) < p).astype(float)  # hard labels: noisy but unbiased
    coef_hard = fit_logistic(x, y, np.ones(len(p)))
    np.testing.assert_allclose(coef_hard, truth, atol=0.25)


def test_weights_select_the_patients_a_quantity_is_averaged_over():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2000, 1))
    x = np.asarray(quadratic_features(z))
    y = np.where(z[:, 0] > 0, 0.9, 0.1)
    w = (z[:, 0] > 0).astype(float)  # only the z > 0 patients count
    coef = fit_logistic(x, y, w, ridge=0.0)
    assert 1 / (1 + np.exp(-x[z[:, 0] > 0.5] @ coef)).mean() == pytest.approx(0.9, abs=0.02)


def test_emulator_file_round_trip(tmp_path):
    emu = synthetic_emulator()
    emu.save(tmp_path / "e.npz")
    back = ArmEmulator.load(tmp_path / "e.npz")
    assert back.keys == emu.keys and back.parameters == emu.parameters and back.meta == emu.meta
    z = np.linspace(-1, 1, len(emu.parameters))
    np.testing.assert_array_equal(np.asarray(back.logits(z)), np.asarray(emu.logits(z)))


def test_per_patient_parameters_equal_the_population_override_patient_by_patient():
    """The emulator design gives each virtual patient its own population draw; a patient with
    draw θ must be the patient a population override θ gives (bit for bit)."""
    row = next(r for r in TABLE.rows if r.criterion == "i123_tbr" and r.endpoint == "uptake")
    p = arm_protocol(row, "RAS")
    cohort = sample_cohort(16, 0, max_lesions=3)
    s = SolverSettings(1e-6, 1e-9, 100_000)
    space = parameter_space(["biology/nis.yaml:erk_half_max", "biology/iodine.yaml:lesion_uptake_l_per_h_per_g"])
    from raisim.uncertainty import overrides_from_values

    ov = overrides_from_values(values_of(space, np.array([0.7, -0.4])))
    pop = run_cohort(p, cohort, overrides=ov, solver=s)
    typical = run_cohort(p, cohort, solver=s)
    mixed = run_cohort(p, cohort, patient_overrides=[ov] * 8 + [{}] * 8, solver=s)
    np.testing.assert_array_equal(mixed["readout_p"][:8], pop["readout_p"][:8])
    np.testing.assert_array_equal(mixed["readout_p"][8:], typical["readout_p"][8:])
    assert not np.allclose(pop["readout_p"], typical["readout_p"])
