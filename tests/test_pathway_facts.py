"""Biology facts the signalling and differentiation blocks must reproduce (typical patient).

Each test is tagged ``fact`` so that the validation table can be generated from them.
Day d starts at t = 24·(d − 1) h; "day 28" below is t = 27·24 h.
"""

from functools import cache

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import typical_course

from raisim import NIS

pytestmark = pytest.mark.fact
DAY = 24.0


@cache
def course(genotype, regimen, stop_day=42, tsh="none", scan_day=None):
    scans = () if scan_day is None else ({"name": "s", "day": scan_day, "isotope": "I-123", "readout": "i123_tbr"},)
    return typical_course(genotype, regimen, stop_day, tsh, scans)


def test_fact1_braf_selumetinib_nadir_within_24_h():
    c = course("BRAF_V600E", "selumetinib")
    first3 = (c.t >= 0) & (c.t <= 72)
    i = int(np.argmin(np.where(first3, c.erk, np.inf)))
    assert c.t[i] <= 24.0


def test_fact1_braf_selumetinib_partial_rebound_and_smaller_gain_than_dt():
    c = course("BRAF_V600E", "selumetinib")
    first3 = (c.t >= 0) & (c.t <= 72)
    i = int(np.argmin(np.where(first3, c.erk, np.inf)))
    nadir = c.erk[i]
    rebound = c.erk[(c.t >= 60) & (c.t <= 72)].mean()
    assert nadir + 0.1 * (1 - nadir) < rebound < 1.0  # partial rebound within 72 h
    dt = course("BRAF_V600E", "dabrafenib+trametinib")
    assert c.at(c.nis, 27 * DAY) - 1.0 < dt.at(dt.nis, 27 * DAY) - 1.0


def test_fact2_braf_dt_nis_peaks_day_8_to_12_then_declines():
    c = course("BRAF_V600E", "dabrafenib+trametinib")
    i = int(np.argmax(c.nis))
    peak_day = c.t[i] / DAY + 1.0
    assert 8.0 <= peak_day <= 12.0
    assert c.at(c.nis, 27 * DAY) < 0.85 * c.nis[i]


@pytest.mark.parametrize("blocker", ["lapatinib", "anti_her3"])
def test_fact3_her_blocker_raises_and_sustains_the_peak(blocker):
    dt = course("BRAF_V600E", "dabrafenib+trametinib")
    c = course("BRAF_V600E", f"dabrafenib+trametinib+{blocker}")
    assert c.nis.max() > dt.nis.max()
    assert c.at(c.nis, 20 * DAY) >= 0.90 * c.nis.max()


def test_fact4_ras_gains_more_on_mek_inhibitor_and_nothing_on_braf_inhibitor():
    ras_t = course("RAS", "trametinib")
    braf_t = course("BRAF_V600E", "trametinib")
    assert ras_t.nis.max() - 1.0 > braf_t.nis.max() - 1.0
    ras_d = course("RAS", "dabrafenib")
    baseline = ras_d.nis[ras_d.t <= 0][-1]
    assert ras_d.nis.max() <= baseline * (1.0 + 1e-6)
    assert ras_d.erk[ras_d.t > 0].min() >= 1.0 - 1e-6  # paradoxical activation, no inhibition


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_fact5_from_50_to_90_percent_erk_inhibition_at_least_triples_the_nis_gain(scale):
    nis = NIS.from_cards([1.0])
    tsh = jnp.asarray(0.1)
    e0 = jnp.asarray(scale)

    def steady_gain(inhibition):  # steady-state membrane NIS = transcription drive
        return float(nis.transcription_drive(e0 * (1.0 - inhibition), e0, tsh)) - 1.0

    assert steady_gain(0.9) >= 3.0 * steady_gain(0.5)


def test_fact6_nis_fades_within_two_weeks_of_stopping():
    c = course("BRAF_V600E", "dabrafenib+trametinib", stop_day=21)
    last_dose = 20 * DAY + 12.0
    excess = c.at(c.nis, last_dose) - 1.0
    assert excess > 0.5
    assert c.at(c.nis, last_dose + 7 * DAY) - 1.0 <= 0.60 * excess
    assert c.at(c.nis, last_dose + 14 * DAY) - 1.0 <= 0.20 * excess


def test_fact7_rhtsh_raises_membrane_nis_within_24_to_72_h():
    c = course("RAS", "trametinib", tsh="rhTSH", scan_day=12)
    without = course("RAS", "trametinib")
    injection = (12 - 1 - 2) * DAY  # first of the two injections, 2 days before the scan
    for dt_h in (24.0, 48.0, 72.0):
        assert c.at(c.nis, injection + dt_h) > without.at(without.nis, injection + dt_h)
    assert c.at(c.nis, injection + 72.0) > 1.2 * without.at(without.nis, injection + 72.0)


@pytest.mark.parametrize("genotype", ["BRAF_V600E", "RAS", "OTHER"])
def test_fact8_steady_state_trametinib_inhibits_erk_50_to_85_percent(genotype):
    c = course(genotype, "trametinib")
    day15 = (c.t >= 14 * DAY) & (c.t < 15 * DAY)
    inhibition = 1.0 - c.erk[day15].mean()
    assert 0.50 <= inhibition <= 0.85
