"""One engine: ``simulate`` is the cohort row of the same patient; failures are per patient."""

import numpy as np
import pytest
from helpers import PROTOCOLS, REPO, protocol_dict

import raisim
from raisim.engine.batch import (
    SolverSettings,
    lockstep_order,
    protocol_solver,
    run_cohort,
    simulate_cohort,
)
from raisim.engine.cohort import cohort_from_patient
from raisim.engine.course import ROW_COLUMNS
from raisim.engine.plan import patient_padding
from raisim.io.parameter_draws import merge_overrides, parameter_set
from raisim.protocol.schedule import protocol_drugs

ALL_PROTOCOLS = sorted(p.name for p in PROTOCOLS.glob("*.yaml"))
FAST_PROTOCOLS = ["erriti_21d.yaml"]  # two courses, a scan, a policy; the rest run in make test-all


def _no_toxicity(p):
    return {"toxicity": {f"hazard_per_day_{d}": 0.0 for d in protocol_drugs(p)}}


def _rows(p, n, seed, overrides=None, micro_batch=16):
    """The cohort rows of patients 0..n-1 of the protocol's patient, at the protocol's own padding."""
    cohort = cohort_from_patient(p, n, seed)
    solver = protocol_solver(p, micro_batch=micro_batch)
    return run_cohort(p, cohort, overrides=overrides, pad=patient_padding(p), solver=solver, devices=1)


def _assert_row(record, rows, i, *, exact):
    """Every outcome column of ``simulate``'s record equals patient ``i``'s cohort row."""
    record, rows = record.columns(), rows.columns()
    for key in ROW_COLUMNS:
        a, b = np.asarray(record[key]), np.asarray(rows[key][i])
        if exact:
            np.testing.assert_array_equal(a, b, err_msg=f"{key} of patient {i}")
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12, equal_nan=True, err_msg=f"{key} of patient {i}")


def _mixed_patients():
    """A protocol whose patients miss doses, have a lung lesion, and (some) an AE and a stop."""
    d = protocol_dict()
    d["treatment"]["missed_dose_probability"] = 0.2
    ov = {"toxicity": {"hazard_per_day_trametinib": 0.05, "discontinuation_probability": 0.5}}
    return raisim.protocol_from_dict(d, source="mixed"), ov


def _check_simulate_is_the_cohort_row(p, overrides, n, seed):
    rows = _rows(p, n, seed, overrides)
    assert rows.summary.ok.all(), rows.summary.ok
    for i in range(n):
        one = raisim.simulate(p, seed=seed, overrides=overrides, parameters="typical", patient=i, micro_batch=16)
        _assert_row(one.record, rows, i, exact=True)
    default = raisim.simulate(p, seed=seed, overrides=overrides, parameters="typical", patient=n - 1)
    _assert_row(default.record, rows, n - 1, exact=False)
    return rows.columns()


@pytest.mark.parametrize("name", FAST_PROTOCOLS)
def test_simulate_is_the_cohort_row_of_the_same_patient(name):
    p = raisim.load_protocol(PROTOCOLS / name)
    _check_simulate_is_the_cohort_row(p, None, 2, 5)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(ALL_PROTOCOLS) - set(FAST_PROTOCOLS)))
def test_simulate_is_the_cohort_row_for_every_protocol(name):
    p = raisim.load_protocol(PROTOCOLS / name)
    _check_simulate_is_the_cohort_row(p, None, 2, 5)


def test_missed_doses_lung_lesions_aes_and_stops_are_the_same_for_one_patient_and_a_cohort():
    p, ov = _mixed_patients()
    n, seed = 6, 2
    rows = _check_simulate_is_the_cohort_row(p, ov, n, seed)
    # the cases the check is about occur among these patients
    assert (rows["lung_dose_gy"][rows["treated"]] > 0).all() and rows["treated"].any()
    assert rows["discontinued"].any() and rows["grade3_ae"].any() and not rows["discontinued"].all()
    assert (rows["days_on_tki"][~rows["discontinued"]] < 21).any()  # a whole day of doses missed
    one = raisim.simulate(
        p, seed=seed, overrides=ov, parameters="typical", patient=int(np.argmax(rows["discontinued"]))
    )
    assert one.outcome.toxicity["discontinued"] and "discontinued for toxicity" in one.outcome.course


@pytest.mark.slow  # two more compiled kernels; the CLI tests run simulate on the default posterior in CI
def test_simulate_by_default_uses_the_posterior_that_sweeps_use():
    p = raisim.load_protocol(PROTOCOLS / "erriti_21d.yaml")
    posterior = parameter_set("posterior")
    rows = _rows(p, 1, 0, merge_overrides(posterior.overrides, None), micro_batch=1)
    one = raisim.simulate(p, seed=0)
    assert one.parameters.source == posterior.source and one.parameters.draw == posterior.draw
    _assert_row(one.record, rows, 0, exact=True)
    typical = raisim.simulate(p, seed=0, parameters="typical")
    # the posterior's hazards, not the cards'
    assert typical.record.summary.p_grade3_ae != one.record.summary.p_grade3_ae


def test_discontinuation_cuts_the_course_for_one_patient_and_a_cohort():
    # a hazard so high that every patient has an AE on day 1, and always stops
    p = raisim.load_protocol(PROTOCOLS / "erriti_21d.yaml")
    ov = {
        "toxicity": {
            **{f"hazard_per_day_{d}": 5.0 for d in protocol_drugs(p)},
            "discontinuation_probability": 1.0,
        }
    }
    frame = simulate_cohort(p, cohort_from_patient(p, 2), overrides=ov)
    single = raisim.simulate(p, seed=0, overrides=ov, parameters="typical").outcome
    assert single.toxicity["discontinued"] and single.toxicity["ae_day"] == 1
    assert frame["discontinued"].all() and (frame["ae_day"] == 1).all()
    assert not frame["treated"].any() and not single.rai["treated"]
    assert (frame["p_selection"] == 0).all()  # the scan after the stop never happens
    assert single.scans == [] and (frame["days_on_tki"] == 1).all()
    for r in single.recist:
        assert frame[f"sum_change_pct_{r['month']:g}m"].iloc[0] == pytest.approx(
            r["change_from_baseline_pct"], abs=1e-4
        )


def test_followed_course_agrees_with_the_drawn_readout():
    p = raisim.load_protocol(PROTOCOLS / "erriti_21d.yaml")
    frame = simulate_cohort(p, cohort_from_patient(p, 32))
    # course 0 = selection succeeds (RAI); course 1 = it fails (no RAI)
    assert ((frame["course"] == 0) == frame["success_selection"]).all()
    assert (frame["treated"] == (frame["course"] == 0) & ~frame["discontinued"]).all()
    assert 0 < frame["success_selection"].mean() < 1  # the typical patient's p is ~0.88: both courses occur


def test_solver_failure_is_flagged_per_patient_not_silent_nan():
    p = raisim.load_protocol(PROTOCOLS / "erriti_21d.yaml")
    frame = simulate_cohort(p, cohort_from_patient(p, 2), solver=SolverSettings(1e-7, 1e-10, 100))
    assert not frame["ok"].any()
    assert frame["activity_gbq"].isna().all() and frame["best_lesion_gy"].isna().all()
    assert frame["recist_12m"].isna().all()


def test_a_branching_protocol_runs_all_its_courses():
    p = raisim.load_protocol(PROTOCOLS / "short_10d.yaml")
    frame = simulate_cohort(p, cohort_from_patient(p, 8))
    assert frame["ok"].all()
    assert set(frame["course"]) <= {0, 1, 2}
    # courses: 0 selection succeeds; 1 it fails and the day-21 re-scan succeeds; 2 both fail
    assert (frame["success_selection"] == (frame["course"] == 0)).all()
    assert frame.loc[frame["course"] == 1, "success_rescan"].all()
    assert not frame.loc[frame["course"] == 2, "success_rescan"].any()
    assert (frame.loc[frame["course"] == 0, "p_rescan"] == 0).all()  # course 0 has no re-scan
    assert np.isfinite(frame["readout_p"]).all()


def test_protocol_dict_helper_is_still_valid():
    # the shared helper protocol runs through the batched engine too (fixed activity)
    p = raisim.protocol_from_dict(protocol_dict())
    frame = simulate_cohort(p, cohort_from_patient(p, 2), overrides=_no_toxicity(p))
    assert frame["treated"].sum() + (~frame["treated"]).sum() == 2
    assert (frame.loc[frame["treated"], "activity_gbq"] == 5.55).all()


def test_four_device_split_equals_one_device_exactly():
    """XLA_FLAGS=--xla_force_host_platform_device_count=4: the patient axis over 4 CPU devices."""
    import subprocess
    import sys

    from helpers import REPO

    code = """
import numpy as np, jax, raisim
raisim.configure()
from raisim.engine.cohort import sample_cohort
from raisim.engine.batch import run_cohort
assert len(jax.local_devices()) == 4
p = raisim.load_protocol("configs/protocols/erriti_21d.yaml")
co = sample_cohort(40, 3)  # not a multiple of 4 x 16: padded, padding dropped
a, b = run_cohort(p, co, devices=4).columns(), run_cohort(p, co, devices=1).columns()
bad = [k for k in a if not np.array_equal(a[k], b[k], equal_nan=True)]
assert a["ok"].shape == (40,) and a["ok"].all(), a["ok"]
print("differing:", bad)
# patients regrouped by a cost hint (here a shuffle): only the speed may change
c = run_cohort(p, co, devices=4, cost_hint=np.random.default_rng(0).permutation(40)).columns()
print("reordered differing:", [k for k in a if not np.array_equal(a[k], c[k], equal_nan=True)])
"""
    env = {**__import__("os").environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\ndiffering: []" in "\n" + proc.stdout, proc.stdout
    assert "reordered differing: []" in proc.stdout, proc.stdout


def test_lockstep_order_groups_similar_costs_and_deals_them_evenly():
    cost = np.random.default_rng(2).permutation(np.append(np.arange(63.0), np.nan))
    order = lockstep_order(cost, n_devices=2)
    assert sorted(order) == list(range(64))
    shares = cost[order].reshape(2, 32)  # the two contiguous device shares
    # ranks dealt round-robin: each device gets every other rank, so the same mix of costs,
    # and within a share consecutive patients (a micro-batch) have the closest costs
    np.testing.assert_array_equal(shares[0], np.arange(0.0, 63.0, 2.0))
    np.testing.assert_array_equal(shares[1, :-1], np.arange(1.0, 62.0, 2.0))
    assert np.isnan(shares[1, -1])  # NaN (unknown) ranks last


def test_cost_hint_of_the_wrong_length_is_refused():
    p = raisim.protocol_from_dict(protocol_dict())
    with pytest.raises(ValueError, match="cost_hint: one value per patient"):
        run_cohort(p, cohort_from_patient(p, 2), cost_hint=np.ones(3))


def test_float32_option_agrees_with_float64_to_its_documented_accuracy():
    from raisim.engine.cohort import sample_cohort

    p = raisim.load_protocol(PROTOCOLS / "erriti_21d.yaml")
    co = sample_cohort(16, 0, max_lesions=3)
    f64 = simulate_cohort(p, co, solver=SolverSettings(1e-6, 1e-9, 100_000))
    f32 = simulate_cohort(p, co, solver=SolverSettings(1e-5, 1e-8, 100_000, dtype="float32"))
    assert f32["ok"].all() and f32["best_lesion_gy"].dtype == np.float32
    assert np.max(np.abs(f32["readout_p"] - f64["readout_p"])) < 2e-3
    rel = np.abs(f32["best_lesion_gy"] - f64["best_lesion_gy"]) / np.maximum(f64["best_lesion_gy"], 1.0)
    assert rel.max() < 5e-3
    assert (f32["treated"] == f64["treated"]).all()


def _matches_the_engine_before_padding(cases):
    """Every outcome column of ``scripts/engine_outcomes.py``'s cases against the outcomes of commit
    d40981c (before drugs became data: single-drug protocols now solve with an inert padding drug,
    and the step-size controller's norm counts the real states only): the same to 1e-6 relative,
    integers and booleans exactly (issue 38)."""
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    from engine_outcomes import case_outcomes

    ref = np.load(REPO / "tests" / "data" / "engine_outcomes_d40981c.npz")
    for name, genotype in cases:
        got = case_outcomes(name, genotype)
        for col, now in got.items():
            before = ref[f"{name}:{genotype or '-'}:{col}"]
            where = f"{name} ({genotype or 'own genotype'}) {col}"
            if np.issubdtype(before.dtype, np.floating):
                np.testing.assert_allclose(now, before, rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=where)
            else:
                np.testing.assert_array_equal(now, before, err_msg=where)


def test_single_drug_cells_padded_to_two_drug_slots_move_at_most_1e_6():
    _matches_the_engine_before_padding([("erriti_21d.yaml", "RAS"), ("dabrafenib_rothenberg.yaml", None)])


@pytest.mark.slow
def test_every_protocol_moves_at_most_1e_6_against_the_engine_before_padding():
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    from engine_outcomes import CASES

    _matches_the_engine_before_padding(CASES)
