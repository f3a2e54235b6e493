"""Iodine block against published human kinetics (athyreotic patients, the normal thyroid).

Targets: whole-body residence time 14.3 h (rhTSH) and 22.0 h (withdrawal) ± 30 %,
48-h whole-body retention 5-15 % with rhTSH and higher after withdrawal, blood
0.05-0.15 mGy/MBq with rhTSH (published dosimetry cohort, reference/parameters.md);
the normal thyroid: 24-h uptake 10-30 %, effective half-life 6-8 days.
"""

from functools import cache

import numpy as np
import pytest

from raisim import Dosimetry, Iodine
from raisim.biology.biokinetics import iodine_kinetics

pytestmark = pytest.mark.validation


@cache
def athyreotic(withdrawal: bool):
    io = Iodine.from_cards([], 70.0)
    return io, iodine_kinetics(io, withdrawal=withdrawal)


@pytest.mark.parametrize("withdrawal,target_h", [(False, 14.3), (True, 22.0)])
def test_whole_body_residence_time(withdrawal, target_h):
    _, k = athyreotic(withdrawal)
    assert 0.7 * target_h <= k.residence_whole_body_h <= 1.3 * target_h


def test_48_h_retention_bi_exponential_and_higher_after_withdrawal():
    _, rh = athyreotic(False)
    _, wd = athyreotic(True)
    r48 = rh.whole_body_retention(48.0)
    assert 0.05 <= r48 <= 0.15
    assert wd.whole_body_retention(48.0) > r48

    # at least bi-exponential: the log-slope flattens (a single exponential has a constant slope)
    def slope(t0, t1):
        return np.log(rh.whole_body_retention(t1) / rh.whole_body_retention(t0)) / (t1 - t0)

    assert slope(72.0, 96.0) > 0.5 * slope(6.0, 12.0)  # clearance slows by more than half


def test_blood_dose_per_activity_with_rhtsh():
    io, k = athyreotic(False)
    mgy_per_mbq = k.blood_gy_per_gbq(Dosimetry.from_cards(), io)  # Gy/GBq = mGy/MBq
    assert 0.05 <= mgy_per_mbq <= 0.15
    _, wd = athyreotic(True)
    assert wd.blood_gy_per_gbq(Dosimetry.from_cards(), io) > mgy_per_mbq


def test_normal_thyroid_uptake_and_effective_half_life():
    k = iodine_kinetics(Iodine.normal_thyroid())
    uptake_24h = float(k.lesion_uptake(24.0)[0])
    assert 0.10 <= uptake_24h <= 0.30
    t_eff_days = float(k.lesion_effective_half_life_h(4 * 24.0, 20 * 24.0)[0]) / 24.0
    assert 6.0 <= t_eff_days <= 8.0


def test_withdrawal_only_slows_renal_clearance():
    io = Iodine.from_cards([], 70.0)
    assert 0.0 < io.withdrawal_renal_factor < 1.0
    _, rh = athyreotic(False)
    _, wd = athyreotic(True)
    assert wd.residence_whole_body_h > rh.residence_whole_body_h
