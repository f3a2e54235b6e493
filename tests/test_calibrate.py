"""``raisim calibrate``: the files of the contract, determinism, leave-one-trial-out, bad input, recovery."""

import json

import numpy as np
import pytest
import yaml
from helpers import REPO, run_cli, synthetic_emulator

from raisim.calibration.fit import (
    CalibrationConfig,
    fit_posterior,
    load_posterior,
    posterior_params,
    predictive_table,
    thin,
)
from raisim.calibration.likelihood import TableLikelihood
from raisim.io.trials import TrialsTable, load_trials

DEFAULT = REPO / "configs" / "calibration" / "default.yaml"
TABLE = load_trials(REPO / "models" / "data" / "trials.csv")


def _config(tmp_path, emulator_path, **changes):
    cfg = yaml.safe_load(DEFAULT.read_text())
    cfg["trials"] = str(REPO / "models" / "data" / "trials.csv")
    cfg["emulator"]["file"] = str(emulator_path)
    cfg["svi"] = {"steps": 400, "learning_rate": 0.02, "samples": 200}
    cfg["nuts"] = {"chains": 2, "warmup": 60, "samples": 60, "thin_to": 120}
    cfg.update(changes)
    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def emulator_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("emu") / "emulator.npz"
    synthetic_emulator(TABLE).save(path)
    return path


def test_svi_run_writes_the_contract_files(tmp_path, emulator_file):
    cfg = _config(tmp_path, emulator_file, method="svi")
    proc = run_cli("calibrate", str(cfg), "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    for name in ("posterior.nc", "diagnostics.csv", "ppc.png", "prior_predictive.png", "manifest.json", "ppc.csv"):
        assert (out / name).stat().st_size > 0, name
    draws = load_posterior(out / "posterior.nc")
    assert len(draws) == 200 and "biology/nis.yaml:erk_half_max" in draws.columns
    assert "calibration/between_trial.yaml:logit_sd" in draws.columns and (draws > 0).all().all()
    diag = __import__("pandas").read_csv(out / "diagnostics.csv")
    assert {"r_hat", "ess_bulk", "ess_tail", "divergences", "wall_s", "gradient_evaluations_per_s"} <= set(diag)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "calibrate" and manifest["stats"]["method"] == "svi"
    assert "observed counts inside their 95 % posterior predictive interval" in proc.stdout


def test_nuts_gives_rhat_and_the_same_numbers_for_the_same_seed(tmp_path, emulator_file):
    from raisim.calibration.fit import load_calibration_config

    cfg = load_calibration_config(_config(tmp_path, emulator_file))
    emu = __import__("raisim.calibration.emulator", fromlist=["ArmEmulator"]).ArmEmulator.load(emulator_file)
    lik = TableLikelihood(TABLE, emu)
    a, stats = fit_posterior(cfg, lik, progress=False)
    b, _ = fit_posterior(cfg, lik, progress=False)
    var = "nis.erk_half_max"
    np.testing.assert_array_equal(a.posterior[var].values, b.posterior[var].values)
    assert a.posterior.sizes["chain"] == 2 and stats["gradient_evaluations"] > 0
    from raisim.calibration.fit import posterior_diagnostics

    diag = posterior_diagnostics(a, stats)
    assert diag["r_hat"].notna().all() and (diag["ess_bulk"] > 0).all()


def test_leave_one_trial_out_predicts_the_left_out_rows(tmp_path, emulator_file):
    cfg = _config(tmp_path, emulator_file, method="svi")
    out = tmp_path / "loo"
    proc = run_cli("calibrate", str(cfg), "--out", str(out), "--leave-out", "Ho2013", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    loo = __import__("pandas").read_csv(out / "loo.csv")
    assert set(loo["trial"]) == {"Ho2013"} and loo["observed"].notna().all()
    assert ((loo["lo95"] <= loo["mean"]) & (loo["mean"] <= loo["hi95"])).all()
    ppc = __import__("pandas").read_csv(out / "ppc.csv")
    assert "Ho2013" not in set(ppc["trial"])  # the fit did not see it


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"parameters": ["biology/nis.yaml:no_such"]}, ["parameters", "erk_half_max"]),
        ({"method": "mh"}, ["method"]),
        ({"parameters": ["biology/pathway.yaml:receptor_weight"]}, ["lognormal or normal"]),
    ],
)
def test_bad_config_stops_with_one_line(tmp_path, emulator_file, change, needles):
    cfg = _config(tmp_path, emulator_file, **change)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    proc = run_cli("calibrate", str(cfg), "--out", str(out), "--force")
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and str(cfg.name) in err
    for n in needles:
        assert n in err, (n, err)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_unknown_leave_out_trial_is_named(tmp_path, emulator_file):
    proc = run_cli(
        "calibrate", str(_config(tmp_path, emulator_file)), "--out", str(tmp_path / "o"), "--leave-out", "Nope"
    )
    assert proc.returncode == 2 and "--leave-out" in proc.stderr and "Ho2013" in proc.stderr
    assert not (tmp_path / "o").exists()


def _synthetic_trials(lik: TableLikelihood, truth: dict, n: int, seed: int) -> TrialsTable:
    """The shipped table's rows with n patients each and counts drawn from ``truth``."""
    rng = np.random.default_rng(seed)
    effects = {t: 0.0 for t in lik.trials}
    probs = {k: np.asarray(v, float) for k, v in lik.probabilities(truth, effects).items()}
    rows = []
    for ob in lik.observations:
        p = probs[ob.name] / probs[ob.name].sum() if ob.kind == "multinomial" else probs[ob.name]
        counts = rng.multinomial(n, p) if ob.kind == "multinomial" else [rng.binomial(n, p[0])]
        for i, line in enumerate(ob.lines):
            row = lik.rows[line]
            comp = row.composition
            if row.endpoint == "response":
                upd = dict(zip(("n_cr", "n_pr", "n_sd", "n_pd"), map(int, counts), strict=True))
            elif len(ob.lines) == 2:  # nested: increase = below + reached; dosimetry = reached
                upd = {"k": int(counts[1] + counts[2]) if i == 0 else int(counts[2])}
            else:
                upd = {"k": int(counts[0])}
            if any(float(v).is_integer() and k not in ("BRAF_WT", "ANY") for k, v in comp.counts.items()):
                total = sum(comp.counts.values())
                comp = comp.model_copy(update={"counts": {k: v * n / total for k, v in comp.counts.items()}})
            rows.append(row.model_copy(update={"n": n, "composition": comp, **upd}))
    rows.sort(key=lambda r: r.line)
    return TrialsTable(tuple(rows), TABLE.path)


def _recovery(method: str, n: int, settings: dict) -> tuple[list[str], list[str], float]:
    """(identified parameters, those whose 90 % interval misses the truth, joint p-value).

    The joint check is the one that matters: posterior errors of correlated parameters are
    correlated, so one unlucky data set moves several marginal intervals off the truth at
    once. The squared Mahalanobis distance of the truth from the posterior mean (posterior
    covariance of the identified parameters) is chi-square with that many degrees of
    freedom when the posterior is calibrated; a biased or overconfident fit gives a tiny
    p-value."""
    from scipy.stats import chi2

    emu = synthetic_emulator(TABLE, seed=3, scale=0.8)
    lik = TableLikelihood(TABLE, emu)
    loc, _ = lik.hazard_prior()
    truth_z = np.resize([0.8, -0.6, 0.5, -0.9, 0.4, 0.7, -0.3, 0.6, -0.5, 0.3, -0.7, 0.2, -0.4], len(emu.parameters))
    truth = {"z": truth_z, "log_hazard": loc + 0.3, "share_BRAF_V600E": 0.46, "share_RAS": 0.28}
    table = _synthetic_trials(lik, truth, n, seed=1)
    cfg = CalibrationConfig.model_validate(
        {"parameters": [p.name for p in emu.parameters], "method": method, "seed": 2, **settings}
    )
    idata, _ = fit_posterior(cfg, TableLikelihood(table, emu), progress=False)
    z = idata.posterior["z"].stack(s=("chain", "draw")).values  # (parameter, draws)
    identified, missed, idx = [], [], []
    for i, p in enumerate(emu.parameters):
        lo, hi = np.quantile(z[i], [0.05, 0.95])
        if z[i].std() < 0.5:  # the design identifies it: the posterior is < half the prior's width
            identified.append(p.name)
            idx.append(i)
            if not lo <= truth_z[i] <= hi:
                missed.append(p.name)
    zi = z[idx]
    err = truth_z[idx] - zi.mean(axis=1)
    d2 = float(err @ np.linalg.solve(np.atleast_2d(np.cov(zi)), err))
    return identified, missed, float(chi2.sf(d2, len(idx)))


def test_parameter_recovery_small():
    """Counts simulated from known parameters (n = 400 per row): the posterior of the
    parameters the design identifies is consistent with the truth (SVI, a CI-sized check)."""
    identified, missed, p_joint = _recovery("svi", 400, {"svi": {"steps": 1500, "learning_rate": 0.02, "samples": 400}})
    assert len(identified) >= 4, identified
    assert p_joint > 0.01, (p_joint, missed)
    assert len(missed) <= len(identified) // 3, (missed, identified)  # gross failures only


@pytest.mark.slow
def test_parameter_recovery_nuts():
    identified, missed, p_joint = _recovery(
        "nuts", 1000, {"nuts": {"chains": 2, "warmup": 500, "samples": 500, "thin_to": 1000}}
    )
    assert len(identified) >= 6, identified
    assert p_joint > 0.01, (p_joint, missed)
    assert len(missed) <= len(identified) // 3, (missed, identified)


def test_posterior_predictive_intervals_are_exact_pmf_quantiles():
    emu = synthetic_emulator(TABLE)
    lik = TableLikelihood(TABLE, emu)
    loc, _ = lik.hazard_prior()
    draw = {
        "z": np.zeros(len(emu.parameters)),
        "log_hazard": loc,
        "log_hazard_by_drug": dict(zip(lik.drugs, loc, strict=True)),
        "share_BRAF_V600E": 0.46,
        "share_RAS": 0.28,
        "logit_sd": 0.5,
        "trial_effect": {t: 0.0 for t in lik.trials},
    }
    table = predictive_table(lik, [draw], 0, new_trials=False)
    ae = table[table["endpoint"] == "grade3_ae"].iloc[0]
    from scipy.stats import binom

    p = float(lik.probabilities(draw, {t: 0.0 for t in lik.trials})[ae["observation"]][0])
    assert ae["mean"] == pytest.approx(ae["n"] * p)
    assert ae["q95"] == binom.ppf(0.95, ae["n"], p)
    assert thin is not None and posterior_params is not None
    # a table with fewer drugs (a left-out trial) reads each drug's own hazard, not the fit's array order
    ras = TABLE.subset(lambda r: r.trial == "MERAIODE")
    sub = TableLikelihood(ras, emu)
    row = next(r for r in ras.rows if r.arm == "MERAIODE_RAS_all")  # trametinib alone, 42 d
    got = predictive_table(sub, [draw], 0, new_trials=True)
    ae = got[got["observation"] == f"row{row.line}"].iloc[0]
    want = 1 - np.exp(-np.exp(draw["log_hazard_by_drug"]["trametinib"]) * 42)
    assert ae["mean"] == pytest.approx(row.n * want)


def test_refinement_round_adds_new_patients_at_posterior_draws(tmp_path):
    """``emulator.refine_patients``: a first fit's posterior draws become the design points of new
    virtual patients, the network is refitted on both designs, and validation uses further
    posterior draws held out from the refinement."""
    import pandas as pd

    from raisim.calibration.emulator import Design, design_points, parameter_space
    from raisim.calibration.fit import get_emulator

    row = next(r for r in TABLE.rows if r.criterion == "i123_tbr" and r.endpoint == "uptake")
    table = TABLE.subset(lambda r: r.line == row.line)
    names = ["biology/nis.yaml:erk_half_max", "biology/iodine.yaml:lesion_uptake_l_per_h_per_g"]
    cfg = CalibrationConfig(
        parameters=names,
        emulator={"patients": 16, "refine_patients": 8, "validation_draws": 1, "validation_patients": 8},
        nuts={"chains": 1, "warmup": 40, "samples": 40, "thin_to": 40},
    )
    emu = get_emulator(cfg, table, tmp_path, retrain=True, log=lambda m: None)
    assert emu.meta["refine_patients"] == 8 and emu.meta["patients"] == 16
    refine = Design.load(tmp_path / "refine_block000.npz")
    sobol = design_points(parameter_space(names), 16, cfg.seed)
    assert refine.z.shape == (8, 2) and not any((sobol == z).all(axis=1).any() for z in refine.z)
    assert len({tuple(z) for z in refine.z}) > 1  # draws, not one point
    val = pd.read_csv(tmp_path / "emulator_validation.csv")
    assert val["draw"].nunique() == 1 and val["full"].between(0, 1).all()


def test_an_emulator_of_another_model_is_refused_or_retrained(tmp_path):
    """An emulator stands in for the model it was trained on: a given one of another model stops
    calibrate with one line, the shipped one is then retrained (its manifest says which model it is)."""
    from raisim.calibration.fit import load_calibration_config, trained_model, usable_emulator
    from raisim.io.errors import InputError
    from raisim.io.model_identity import MANIFEST_KEY, fitted_model_sha256, model_sha256

    base = load_calibration_config(DEFAULT)
    path = tmp_path / "emulator.npz"
    current = synthetic_emulator(TABLE)
    current.save(path)
    cfg = base.model_copy(update={"emulator": base.emulator.model_copy(update={"file": str(path)})})
    assert trained_model(current, path) == model_sha256()
    assert usable_emulator(cfg, TABLE)[0] == path
    stale = synthetic_emulator(TABLE)
    stale.meta[MANIFEST_KEY] = "0" * 64
    stale.save(path)
    with pytest.raises(InputError) as info:
        usable_emulator(cfg, TABLE)
    assert info.value.field == "emulator.file" and "trained on this model" in info.value.one_line()
    shipped = REPO / "models" / "posterior" / "posterior.nc"
    said: list[str] = []
    found = usable_emulator(base, TABLE, said.append)
    if fitted_model_sha256(shipped) == model_sha256():
        assert found is not None and said == []
    else:  # the shipped emulator was trained with the shipped posterior, on its model
        assert found is None and len(said) == 1 and "trained on another model" in said[0]
    del stale.meta[MANIFEST_KEY]  # a file that says nothing of its model, with no calibrate manifest beside it
    stale.save(path)
    with pytest.raises(InputError) as info:
        usable_emulator(cfg, TABLE)
    assert "records no model" in info.value.one_line()
