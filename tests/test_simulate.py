"""The protocol engine: branches, treatment regardless of scans, toxicity stops, every published protocol."""

import jax
import numpy as np
import pytest
import yaml
from helpers import PROTOCOLS, no_ae, protocol_dict

from raisim import (
    STANDARD_REGIMENS,
    build_doses,
    card_values,
    enumerate_courses,
    load_protocol,
    protocol_from_dict,
    simulate,
)
from raisim.protocol.schedule import day_to_h
from raisim.streams import patient_uniforms

DESIGN_TABLE = [
    "selumetinib_4wk.yaml",
    "dabrafenib_rothenberg.yaml",
    "vemurafenib_dunn.yaml",
    "erriti_21d.yaml",
    "short_10d.yaml",
    "meraiode_42d.yaml",
]


def _short(uptake_scale: float, seed: int = 0):
    p = load_protocol(PROTOCOLS / "short_10d.yaml")
    typical = card_values("biology/iodine.yaml")["lesion_uptake_l_per_h_per_g"]
    o = {"iodine": {"lesion_uptake_l_per_h_per_g": typical * uptake_scale}}
    return simulate(p, seed=seed, overrides=no_ae(o), parameters="typical")


def _last_dose_day(result) -> int:
    d = result.course.doses
    last_h = max(d.times_h[i, n - 1] for i, n in enumerate(d.n_doses))
    return int(last_h // 24.0) + 1


def test_10_plus_10_responder_is_treated_on_day_12_and_stops_tki_two_days_later():
    r = _short(20.0)  # strong uptake: the day-11 scan succeeds
    o = r.outcome
    assert o.scans[0].name == "selection" and o.scans[0].success
    assert o.rai["treated"] and o.rai["day"] == 12
    assert _last_dose_day(r) == 13  # no TKI from day 14, two days after RAI
    assert [s.name for s in o.scans] == ["selection"]


def test_10_plus_10_non_responder_continues_rescans_and_is_treated_only_if_the_rescan_succeeds():
    r = _short(0.01)  # no visible uptake: both scans fail
    o = r.outcome
    assert [s.name for s in o.scans] == ["selection", "rescan"]
    assert [s.day for s in o.scans] == [11, 21] and not any(s.success for s in o.scans)
    assert not o.rai["treated"] and _last_dose_day(r) == 20
    # a late responder: find a seed whose draws fail the first scan and pass the re-scan
    p = load_protocol(PROTOCOLS / "short_10d.yaml")
    probe = _short(0.045)  # SPECT/CT contrast: both scans in doubt at ~5 % of the cards' lesion uptake
    late = next(i for i, c in enumerate(enumerate_courses(p)) if ("rescan", True) in c.conditions)
    p_sel, p_re = probe.course_readouts[late]["selection"], probe.course_readouts[late]["rescan"]
    assert 0.02 < p_sel < 0.98 and 0.02 < p_re < 0.98, (p_sel, p_re)

    def u(seed, scan):  # the patient's readout-noise stream of that scan
        return patient_uniforms(seed, f"scan:{scan}", np.asarray([0]), 1)[0, 0]

    seed = next(s for s in range(200) if u(s, "selection") >= p_sel and u(s, "rescan") < p_re)
    late = _short(0.045, seed=seed)
    assert [(s.day, s.success) for s in late.outcome.scans] == [(11, False), (21, True)]
    assert late.outcome.rai["treated"] and late.outcome.rai["day"] == 22
    assert _last_dose_day(late) == 23


def test_meraiode_treats_everyone_on_day_35_regardless_of_the_day_28_scan():
    d = yaml.safe_load((PROTOCOLS / "meraiode_42d.yaml").read_text())
    o = {"iodine": {"lesion_uptake_l_per_h_per_g": 1e-7}}  # nothing visible on the diagnostic scan
    out = simulate(protocol_from_dict(d, "meraiode"), seed=0, overrides=no_ae(o), parameters="typical").outcome
    assert out.scans[0].day == 28 and out.scans[0].p_success < 0.01 and not out.scans[0].success
    assert out.rai["treated"] and out.rai["day"] == 35 and out.rai["activity_gbq"] == 5.55


@pytest.mark.parametrize(
    "regimen",
    ["dabrafenib75+trametinib", "dabrafenib+trametinib", "trametinib", "selumetinib", "vemurafenib", "dabrafenib"],
)
def test_discontinuation_probability_rises_with_course_length(regimen):
    from raisim import build_model

    p_disc = []
    for days in (10, 21, 42):
        d = protocol_dict(rai=None, scans=[])
        d["treatment"] = {"regimens": {"ALL": STANDARD_REGIMENS[regimen]}, "stop_day": days}
        p = protocol_from_dict(d)
        course = enumerate_courses(p)[0]
        doses = build_doses(p, course)
        tox = build_model(p).toxicity
        p_disc.append(float(tox.p_discontinuation(np.asarray(doses.days_on_drug))))
    assert 0.0 < p_disc[0] < p_disc[1] < p_disc[2] < 1.0


def test_toxicity_stop_ends_tki_and_skips_the_rest_of_the_protocol():
    p = load_protocol(PROTOCOLS / "erriti_21d.yaml")
    # a certain, early event that always leads to discontinuation
    o = {"toxicity": {"hazard_per_day_trametinib": 0.2, "discontinuation_probability": 1.0}}
    r = simulate(p, seed=0, overrides=o, parameters="typical")
    tox = r.outcome.toxicity
    assert tox["grade3_ae"] and tox["discontinued"] and 1 <= tox["ae_day"] < 21
    assert _last_dose_day(r) == tox["ae_day"]
    assert r.outcome.scans == [] and not r.outcome.rai["treated"]
    assert r.outcome.course.startswith("discontinued for toxicity: TKI to day")  # no scan done
    assert len(r.outcome.recist) == len(p.followup.months)  # still followed up
    # without an AE the same seed follows the planned course
    base = simulate(p, seed=0, overrides=no_ae(), parameters="typical").outcome
    assert not base.toxicity["discontinued"] and base.scans[0].day == 22


def test_ae_day_matches_the_hazard_and_has_no_day_cap():
    import jax.numpy as jnp

    from raisim import Toxicity
    from raisim.biology.toxicity import NO_DAY

    tox = Toxicity.from_cards(("trametinib",), {"hazard_per_day_trametinib": 0.05})
    us = jnp.linspace(0.001, 0.999, 999)
    days = jax.vmap(lambda u: tox.ae_day_on_tki(jnp.asarray([21.0]), u))(us)
    frac = float(jnp.mean(days < NO_DAY))
    assert frac == pytest.approx(1.0 - np.exp(-0.05 * 21.0), abs=0.01)
    # the day is the first whole day whose cumulative hazard reaches -ln(u), checked by counting
    for u in (0.9, 0.5, 0.4):
        n = next(n for n in range(1, 22) if 0.05 * n >= -np.log(u))
        assert int(tox.ae_day_on_tki(jnp.asarray([21.0]), jnp.asarray(u))) == n
    # two drugs of different lengths: the hazard of the shorter one stops with it
    hazards = {"hazard_per_day_trametinib": 0.0005, "hazard_per_day_dabrafenib": 0.02}
    two = Toxicity.from_cards(("trametinib", "dabrafenib"), hazards)
    u = 0.6
    n = next(n for n in range(1, 2000) if 0.0005 * min(n, 1500) + 0.02 * min(n, 10) >= -np.log(u))
    assert n > 400  # beyond the 399-day cap the batched rule had
    assert int(two.ae_day_on_tki(jnp.asarray([1500.0, 10.0]), jnp.asarray(u))) == n
    assert int(two.ae_day_on_tki(jnp.asarray([30.0, 10.0]), jnp.asarray(u))) == NO_DAY


@pytest.mark.parametrize("name", DESIGN_TABLE)
def test_every_published_protocol_has_a_config_that_runs(name):
    p = load_protocol(PROTOCOLS / name)
    out = simulate(p, seed=1, overrides=no_ae(), parameters="typical").outcome
    assert out.solver["ok"]
    assert all(r["category"] in {"CR", "PR", "SD", "PD"} for r in out.recist)
    assert out.scans and all(s.p_success is None or 0.0 <= s.p_success <= 1.0 for s in out.scans)
    assert day_to_h(p.treatment.stop_day) > 0


def test_protocols_of_similar_length_share_one_compiled_solve(caplog):
    """Scan days 4 and 8 give grids of 459 and 503 points: padded to one size, compiled once."""
    import logging

    from raisim import tki_only_protocol
    from raisim.engine.plan import GRID_PAD, padded_grid
    from raisim.engine.simulate import prepare

    def protocol(day):
        scan = {"name": "selection", "day": day, "isotope": "I-123", "readout": "i123_tbr"}
        return tki_only_protocol("RAS", "trametinib", day + 1, tsh="rhTSH", scans=(scan,))

    grids = [prepare(protocol(day)).grid for day in (4, 8)]
    assert len(grids[0]) != len(grids[1])
    padded = [padded_grid(g) for g in grids]
    assert len(padded[0]) == len(padded[1]) and len(padded[0]) % GRID_PAD == 0
    assert np.array_equal(padded[1][: len(grids[1])], grids[1]) and np.all(padded[1][len(grids[1]) :] == grids[1][-1])

    simulate(protocol(4), parameters="typical")
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING):
            result = simulate(protocol(8), parameters="typical")
    finally:
        jax.config.update("jax_log_compiles", False)
    assert not [r for r in caplog.records if "jit(_run)" in r.getMessage()]
    assert len(result.course.ts) == len(grids[1])  # the padding is dropped from every output
    assert all(len(v) == len(grids[1]) for v in jax.tree_util.tree_leaves(result.course.ys.nis))
    assert result.timecourse.time_h.max() == grids[1][-1]


def test_an_ae_falls_on_a_day_on_drug_not_in_a_hold():
    from raisim.engine.batch import run_cohort
    from raisim.engine.cohort import cohort_from_patient

    d = protocol_dict(scans=[], rai=None)
    d["treatment"]["holds"] = [{"from_day": 3, "to_day": 12}]
    p = protocol_from_dict(d)
    ov = {"toxicity": {"hazard_per_day_trametinib": 0.1, "discontinuation_probability": 0.0}}
    rows = run_cohort(p, cohort_from_patient(p, 32, 0), overrides=ov).columns()
    days = rows["ae_day"][rows["grade3_ae"]]
    assert len(days) > 10 and not ((days >= 3) & (days <= 12)).any(), days
    assert (days > 12).any()  # counted from the course start, these would have fallen in the hold
    assert (rows["days_on_tki"] == 21 - 10).all()  # no stop: every planned day off the hold taken
