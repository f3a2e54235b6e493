"""Predictive distributions of trial counts: exact pmf arithmetic, the JSON contract, bad input."""

import json

import numpy as np
import pytest
from helpers import REPO, run_cli
from scipy.stats import binom

from raisim.calibration.predict import _component_pmf, summarise_pmf

HEADER = (REPO / "models" / "data" / "trials.csv").read_text().splitlines()[0]


def test_summary_of_a_binomial_pmf_is_exact():
    n, p = 20, 0.3
    s = summarise_pmf(binom.pmf(np.arange(n + 1), n, p), observed=2)
    assert s["mean"] == pytest.approx(n * p)
    assert s["q05"] == binom.ppf(0.05, n, p) and s["q50"] == binom.ppf(0.5, n, p) and s["q95"] == binom.ppf(0.95, n, p)
    assert s["p_tail"] == pytest.approx(2 * binom.cdf(2, n, p))
    assert summarise_pmf(binom.pmf(np.arange(n + 1), n, p), observed=None)["p_tail"] is None


def test_groups_of_patients_add_as_a_convolution():
    pmf = _component_pmf([(3, 0.2), (5, 0.7)], 8)
    want = np.convolve(binom.pmf(np.arange(4), 3, 0.2), binom.pmf(np.arange(6), 5, 0.7))
    np.testing.assert_allclose(pmf, want)
    mixed = _component_pmf([(2.5, 0.2), (2.5, 0.6)], 5)  # fractional groups: each patient a mixture
    np.testing.assert_allclose(mixed, binom.pmf(np.arange(6), 5, 0.4))


def _csv(tmp_path, *rows):
    path = tmp_path / "trials.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_predict_json_follows_the_contract(tmp_path):
    path = _csv(
        tmp_path,
        "T,Study,2024,ras_uptake,RAS,trametinib:2mg:q24h,,22,,uptake,i123_tbr,10,,,,,,,,,no k: a trial to predict",
        "T,Study,2024,all,ANY,trametinib:2mg:q24h,21,,,grade3_ae,none,20,3,,,,,,,,",
    )
    proc = run_cli("predict", "--trials", str(path), "--json", "--patients", "16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert [r["row"] for r in out] == [1, 2]
    first, second = out
    assert {k: first[k] for k in ("study", "arm", "genotype", "endpoint", "criterion", "n")} == {
        "study": "Study",
        "arm": "ras_uptake",
        "genotype": "RAS",
        "endpoint": "uptake",
        "criterion": "i123_tbr",
        "n": 10,
    }
    k = first["outcomes"]["k"]
    assert set(k) == {"mean", "q05", "q50", "q95", "observed", "p_tail"}
    assert k["observed"] is None and k["p_tail"] is None and 0 <= k["q05"] <= k["q50"] <= k["q95"] <= 10
    k2 = second["outcomes"]["k"]
    assert k2["observed"] == 3 and 0 < k2["p_tail"] <= 1 and 0 < k2["mean"] < 20


@pytest.mark.parametrize(
    ("row", "needles"),
    [
        ("T,S,2024,a,RAS,trametinib:2mg:q24h,21,,,grade3_ae,none,5,7,,,,,,,,", ["row 1", "field 'k'"]),
        ("T,S,2024,a,KRAS,trametinib:2mg:q24h,21,,,grade3_ae,none,5,1,,,,,,,,", ["row 1", "field 'genotype'"]),
        ("T,S,2024,a,RAS,trametinib-2mg,21,,,grade3_ae,none,5,1,,,,,,,,", ["row 1", "field 'regimen'"]),
        ("T,S,2024,a,RAS,trametinib:2mg:q24h,21,,,uptake,magic,5,1,,,,,,,,", ["row 1", "field 'criterion'"]),
    ],
)
def test_bad_trials_rows_stop_with_the_row_number(tmp_path, row, needles):
    proc = run_cli("predict", "--trials", str(_csv(tmp_path, row)))
    assert proc.returncode == 2, proc.stderr[-1500:]
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER.replace(",note", "") + "\n")
    proc = run_cli("predict", "--trials", str(path))
    assert proc.returncode == 2 and "note" in proc.stderr and "row 0" in proc.stderr


_ONE_KERNEL = """
import json
import raisim
raisim.configure(cache=False)
from raisim.calibration.predict import predict_table
from raisim.compilation import compile_stats
from raisim.io.parameter_draws import evenly_spaced, read_draws, shipped_posterior
from raisim.io.trials import load_trials
table = load_trials("models/data/trials.csv", observed=False)
draws = evenly_spaced(read_draws(shipped_posterior(), "<test>", "posterior"), 1)
predict_table(table, draws, patients=2, seed=0)
print(json.dumps(compile_stats().to_dict()))
"""


def test_the_whole_trials_table_is_predicted_by_one_compiled_kernel():
    """Every arm of the trials table (6 drug sets, 5 readouts, 3 policies, forced and drawn
    courses) runs the engine's one kernel, compiled once in a fresh process (issue 38)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, RAISIM_CPU_DEVICES="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-c", _ONE_KERNEL], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["by_name"]["jit(_run)"] == 1, stats["by_name"]
