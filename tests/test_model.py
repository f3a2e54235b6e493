"""Wiring of the coupled chain: dose → ERK → NIS, through the whole engine."""

import numpy as np
import pytest
from helpers import protocol_dict

from raisim import protocol_from_dict, simulate


def _run(scale: float, stop_day: int = 21):
    p = protocol_from_dict(
        protocol_dict(
            treatment={
                "regimens": {
                    "BRAF_V600E": [
                        {"drug": "trametinib", "dose_mg": 2 * scale, "interval_h": 24},
                        {"drug": "dabrafenib", "dose_mg": 75 * scale, "interval_h": 12},
                    ]
                },
                "stop_day": stop_day,
            },
            scans=[],
            rai=None,
            followup={"months": [2]},
        )
    )
    tc = simulate(p, seed=0).timecourse

    def series(q, lesion=""):
        s = tc[(tc.quantity == q) & (tc.lesion == lesion)]
        return s.time_h.to_numpy(), s.value.to_numpy()

    return series


@pytest.fixture(scope="module")
def low_high():
    return _run(0.5), _run(1.0)


def test_higher_dose_lowers_erk_and_raises_nis(low_high):
    low, high = low_high
    t, erk_lo = low("erk_activity")
    _, erk_hi = high("erk_activity")
    on = (t > 24) & (t < 21 * 24)
    assert erk_hi[on].mean() < erk_lo[on].mean() - 0.02
    _, nis_lo = low("membrane_nis")
    _, nis_hi = high("membrane_nis")
    assert nis_hi.max() > nis_lo.max() * 1.05


def test_nis_on_treatment_exceeds_baseline_and_falls_back_after_last_dose(low_high):
    _, high = low_high
    t, nis = high("membrane_nis")
    baseline = nis[t <= 0].mean()
    peak_i = np.argmax(nis)
    assert nis[peak_i] > 1.5 * baseline
    assert 0 < t[peak_i] < 22 * 24  # the peak is on treatment
    last_dose_h = 21 * 24
    after = nis[t >= last_dose_h + 21 * 24][0]
    # three weeks after stopping, most of the gain is gone, and NIS is still falling
    assert after - baseline < 0.25 * (nis[peak_i] - baseline)
    late = t > last_dose_h + 24
    assert np.all(np.diff(nis[late][:200]) <= 1e-9)


def test_erk_is_inhibited_on_drug_and_recovers(low_high):
    _, high = low_high
    t, erk = high("erk_activity")
    assert erk[t <= 0].max() == pytest.approx(1.0, abs=1e-9)
    assert erk[(t > 48) & (t < 21 * 24)].max() < 0.7
    assert erk[-1] == pytest.approx(1.0, abs=0.05)
