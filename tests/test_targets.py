"""Calibration targets: which arm-level probabilities each trials row needs and how they are averaged."""

from types import SimpleNamespace

import numpy as np
import pytest
from helpers import REPO

from raisim.calibration.targets import (
    Target,
    arm_probabilities,
    categories,
    design_hash,
    nested_parent,
    patient_pairs,
    table_targets,
    target_keys,
)
from raisim.io.trials import load_trials

TABLE = load_trials(REPO / "models" / "data" / "trials.csv")


def test_every_simulated_row_has_its_targets():
    targets, runs = table_targets(TABLE)
    keys = {t.label for t in targets}
    rows = {r.line: r for r in TABLE.rows}
    for r in TABLE.rows:
        if r.endpoint == "grade3_ae":
            assert not any(t.line == r.line for t in targets)  # closed-form, no simulation
    assert nested_parent(TABLE) == {2: 1, 4: 3, 6: 5, 13: 12}
    assert "2:RAS:dosimetry_given_increase" in keys and "1:RAS:readout" in keys
    assert {"7:RAS:pd", "7:RAS:sd_given_not_pd", "7:RAS:pr_given_cr_or_pr"} <= keys
    wt = next(r for r in TABLE.rows if r.genotype == "BRAF_WT")  # split into RAS and OTHER
    assert {f"{wt.line}:RAS:readout", f"{wt.line}:OTHER:readout"} <= keys
    assert all(run.treated_course == (rows[run.line].endpoint == "response") for run in runs)
    assert len({(run.line, run.genotype) for run in runs}) == len(runs)


def test_target_keys_name_the_design_not_the_row_number():
    """The same arm in another table (another row number) has the same key; another arm has another."""
    keys = target_keys(TABLE)
    ho = TABLE.subset(lambda r: r.trial == "Ho2013")
    moved = TABLE.subset(lambda r: r.trial != "Ho2013")
    for (line, g, q), key in target_keys(moved).items():
        assert keys[(line, g, q)] == key
    assert len(set(target_keys(ho).values()) & set(target_keys(moved).values())) == 0
    dos = keys[(2, "RAS", "dosimetry_given_increase")]
    assert dos.startswith(keys[(2, "RAS", "dosimetry_given_increase")].split("+")[0])
    assert keys[(1, "RAS", "readout")].split(":")[0] in dos  # conditional on the parent's design


def test_design_hash_ignores_names_and_solver_options_but_not_the_protocol():
    """A new solver option (or tolerance) must not orphan a trained emulator; a protocol change must."""
    _, runs = table_targets(TABLE)
    p = runs[0].protocol
    h = design_hash(p)
    assert design_hash(p.model_copy(update={"name": "x", "description": "y"})) == h
    assert design_hash(p.model_copy(update={"solver": p.solver.model_copy(update={"rtol": 1e-4})})) == h
    later = p.treatment.model_copy(update={"stop_day": p.treatment.stop_day + 7})
    assert design_hash(p.model_copy(update={"treatment": later})) != h


def test_the_shipped_emulator_covers_the_shipped_trials_table():
    """Every target of ``models/data/trials.csv`` has an output of ``models/posterior/emulator.npz``."""
    from raisim import ArmEmulator

    emulator = ArmEmulator.load(REPO / "models" / "posterior" / "emulator.npz")
    assert set(target_keys(TABLE).values()) <= set(emulator.keys)


def test_categories_are_a_probability_vector_and_invert_the_ratios():
    pd_, sd, pr = np.array([0.2, 0.0, 1.0]), np.array([0.5, 0.3, 0.7]), np.array([0.9, 0.1, 0.5])
    c = np.asarray(categories(pd_, sd, pr))
    np.testing.assert_allclose(c.sum(axis=-1), 1.0)
    np.testing.assert_allclose(c[:, 3], pd_)
    np.testing.assert_allclose(c[:, 2] / (1 - pd_ + 1e-300), np.where(pd_ < 1, sd, 0.0))
    assert (c >= 0).all()


def _rows(ok, readout_p, recist=None):
    """Stand-in cohort rows (the fields of :class:`raisim.engine.course.PatientRow` the targets read)."""
    return SimpleNamespace(summary=SimpleNamespace(ok=ok, recist=recist), readout_p=readout_p)


def test_response_categories_are_weighted_by_the_chance_of_selection():
    out = {
        (7, "RAS"): _rows(
            ok=np.array([True, True, True, False]),
            readout_p=np.array([1.0, 0.5, 0.0, 1.0]),
            recist=np.array([[3], [1], [3], [3]]),
        )
    }
    y, w = patient_pairs(Target(7, "RAS", "pd"), out, TABLE)
    np.testing.assert_array_equal(w, [1.0, 0.5, 0.0, 0.0])  # the failed patient weighs nothing
    probs = arm_probabilities(TABLE, out, [Target(7, "RAS", "pd"), Target(7, "RAS", "pr_given_cr_or_pr")])
    assert probs["7:RAS:pd"] == pytest.approx(1.0 / 1.5)  # PD-patient weight 1, PR-patient weight 0.5
    assert probs["7:RAS:pr_given_cr_or_pr"] == pytest.approx(1.0)


def test_nested_dosimetry_is_conditional_on_the_same_patients_increase():
    out = {
        (1, "RAS"): _rows(ok=np.array([True, True]), readout_p=np.array([0.8, 0.2])),
        (2, "RAS"): _rows(ok=np.array([True, True]), readout_p=np.array([0.4, 0.9])),
    }
    y, w = patient_pairs(Target(2, "RAS", "dosimetry_given_increase"), out, TABLE)
    np.testing.assert_allclose(w, [0.8, 0.2])
    np.testing.assert_allclose(y, [0.5, 1.0])  # min(p_dos, p_inc) / p_inc
    p = arm_probabilities(TABLE, out, [Target(2, "RAS", "dosimetry_given_increase")])
    assert p["2:RAS:dosimetry_given_increase"] == pytest.approx((0.4 + 0.2) / (0.8 + 0.2))
