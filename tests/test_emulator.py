"""The emulator of arm-level probabilities: design, regression, file round trip, per-patient parameters."""

import numpy as np
import pytest
from helpers import REPO, synthetic_emulator

from raisim.calibration.emulator import (
    ArmEmulator,
    design_points,
    parameter_space,
    values_of,
)
from raisim.engine.batch import SolverSettings, run_cohort
from raisim.engine.cohort import sample_cohort
from raisim.io.trials import load_trials
from raisim.protocol.arms import arm_protocol

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


def test_network_fit_recovers_a_known_arm_probability_surface():
    """Per-patient Bernoulli outcomes around a known surface (exponential in z, as dose → control
    is): the fitted emulator's probability is close to the truth where the design has patients."""
    from raisim.calibration.emulator import Design, fit_emulator

    space = parameter_space(["biology/nis.yaml:erk_half_max", "biology/response.yaml:alpha_per_gy"])
    rng = np.random.default_rng(0)
    z = design_points(space, 3000, 1)
    truth = lambda z: 1 / (1 + np.exp(-(1.5 - np.exp(0.8 * z[:, 1]) + 0.7 * z[:, 0])))  # noqa: E731
    p = truth(z)
    y = np.stack([(rng.uniform(size=len(p)) < p).astype(float), p])  # hard labels; soft labels
    w = np.stack([np.ones(len(p)), (z[:, 0] > 0).astype(float)])  # the second counts z0 > 0 patients only
    emu = fit_emulator(Design(z, ["hard", "soft"], y, w), space)
    grid = np.array([[a, b] for a in (-1.0, 0.0, 1.0) for b in (-1.5, 0.0, 1.5)])
    got = np.asarray(emu.probabilities(grid))
    assert np.abs(got[:, 0] - truth(grid)).max() < 0.08
    pos = grid[:, 0] > 0
    assert np.abs(got[pos, 1] - truth(grid)[pos]).max() < 0.03
    assert emu.meta["penalty"] in (1e-3, 1e-2, 3e-2, 1e-1)


def test_emulator_file_round_trip(tmp_path):
    emu = synthetic_emulator()
    emu.save(tmp_path / "e.npz")
    back = ArmEmulator.load(tmp_path / "e.npz")
    assert back.keys == emu.keys and back.parameters == emu.parameters and back.meta == emu.meta
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    from raisim.io.errors import InputError

    with pytest.raises(InputError, match="emulator"):
        ArmEmulator.load(tmp_path / "bad.npz")
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
    from raisim.io.parameter_draws import overrides_from_values

    ov = overrides_from_values(values_of(space, np.array([0.7, -0.4])))
    pop = run_cohort(p, cohort, overrides=ov, solver=s)
    typical = run_cohort(p, cohort, solver=s)
    mixed = run_cohort(p, cohort, patient_overrides=[ov] * 8 + [{}] * 8, solver=s)
    np.testing.assert_array_equal(mixed.readout_p[:8], pop.readout_p[:8])
    np.testing.assert_array_equal(mixed.readout_p[8:], typical.readout_p[8:])
    assert not np.allclose(pop.readout_p, typical.readout_p)


def test_design_at_given_points_numbers_its_patients_after_the_sobol_design():
    """A refinement block (explicit design points, patients numbered from ``first_patient``) holds
    exactly what the batched engine gives those patients at those draws, and new patients."""
    from raisim.calibration.emulator import simulate_design
    from raisim.calibration.targets import patient_pairs, simulate_runs, table_targets

    row = next(r for r in TABLE.rows if r.criterion == "i123_tbr" and r.endpoint == "uptake")
    table = TABLE.subset(lambda r: r.line == row.line)
    space = parameter_space(["biology/nis.yaml:erk_half_max", "biology/iodine.yaml:lesion_uptake_l_per_h_per_g"])
    points = np.array([[0.5, -0.5], [-1.0, 1.0], [0.0, 0.0]])
    d = simulate_design(table, space, 3, 0, points=points, first_patient=100)
    np.testing.assert_array_equal(d.z, points)
    from raisim.io.parameter_draws import overrides_from_values

    targets, runs = table_targets(table)
    per = [overrides_from_values(values_of(space, z)) for z in points]
    outs = simulate_runs(runs, sample_cohort(np.arange(100, 103), 0), patient_overrides=per)
    y, w = patient_pairs(targets[0], outs, table)
    np.testing.assert_array_equal(d.y[0], y)
    first = simulate_design(table, space, 3, 0, points=points)  # patients 0-2: other patients
    assert not np.array_equal(first.y, d.y)
    both = first.concat(d)
    assert both.z.shape == (6, 2) and both.y.shape == (1, 6)


def test_a_saved_design_block_is_reused_only_by_the_model_that_simulated_it(tmp_path):
    from raisim.calibration.emulator import Design, _cached_block

    z = np.arange(6.0).reshape(3, 2)
    block = Design(z, ["a", "b"], np.full((2, 3), 0.5), np.ones((2, 3)), "1" * 64)
    block.save(tmp_path / "design_block000.npz")
    back = _cached_block(tmp_path / "design_block000.npz", ["a", "b"], z, "1" * 64)
    assert back is not None and back.model == "1" * 64
    np.testing.assert_array_equal(back.y, block.y)
    assert _cached_block(tmp_path / "design_block000.npz", ["a", "b"], z, "2" * 64) is None  # another model
    legacy = tmp_path / "legacy.npz"  # saved before blocks recorded their model
    np.savez_compressed(legacy, z=z, keys=np.array(["a", "b"]), y=block.y, w=block.w)
    assert _cached_block(legacy, ["a", "b"], z, "1" * 64) is None
