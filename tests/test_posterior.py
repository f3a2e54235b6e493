"""The shipped posterior (models/posterior/, made by `make calibrate`): quality bars and biology it must keep."""

import json

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, no_ae

from raisim import simulate
from raisim.calibration.fit import load_posterior
from raisim.io.parameter_draws import draws_as_overrides, evenly_spaced
from raisim.protocol.scenarios import tki_only_protocol

POST = REPO / "models" / "posterior"
DAY = 24.0


def test_shipped_posterior_meets_the_sampler_quality_bars():
    diag = pd.read_csv(POST / "diagnostics.csv")
    assert (diag["method"] == "nuts").all()
    assert diag["r_hat"].max() <= 1.01, diag.loc[diag["r_hat"].idxmax(), ["parameter", "r_hat"]].to_dict()
    assert diag["ess_bulk"].min() >= 400, diag.loc[diag["ess_bulk"].idxmin(), ["parameter", "ess_bulk"]].to_dict()
    assert int(diag["divergences"].iloc[0]) == 0
    manifest = json.loads((POST / "manifest.json").read_text())
    assert manifest["command"] == "calibrate" and manifest["leave_out"] is None


def test_shipped_posterior_is_small_and_complete():
    assert (POST / "posterior.nc").stat().st_size < 5e6
    draws = load_posterior(POST / "posterior.nc")
    assert len(draws) >= 400 and draws.notna().all().all()
    fitted = set(pd.read_csv(POST / "diagnostics.csv")["card_parameter"])
    assert fitted == set(draws.columns)


@pytest.mark.fact
def test_posterior_mean_membrane_nis_braf_on_dt_still_peaks_day_8_to_12():
    """Fact 2 under the calibrated parameters: the posterior-mean membrane NIS curve of a BRAF V600E
    patient on dabrafenib + trametinib peaks between day 8 and day 12 (16 evenly spaced draws)."""
    draws = evenly_spaced(load_posterior(POST / "posterior.nc"), 16)
    p = tki_only_protocol("BRAF_V600E", "dabrafenib+trametinib", 42, tsh="none")
    curves = []
    for ov in draws_as_overrides(draws):
        tc = simulate(p, seed=0, overrides=no_ae(ov), parameters="typical").timecourse
        nis = tc[(tc["quantity"] == "membrane_nis") & (tc["lesion"] == "")]
        curves.append(nis["value"].to_numpy())
        t = nis["time_h"].to_numpy()
    mean = np.mean(curves, axis=0)
    peak_day = t[int(np.argmax(mean))] / DAY + 1.0
    assert 8.0 <= peak_day <= 12.0, peak_day
