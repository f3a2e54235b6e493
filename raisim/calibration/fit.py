"""``raisim calibrate``: the posterior of the population parameters given the published trial summaries.

Steps (each measured and written to the run directory):

1. the emulator of arm-level probabilities (:mod:`raisim.calibration.emulator`):
   trained here (``design_block*.npz``, ``emulator.npz``, ``emulator_validation.csv``)
   or read from the config's ``emulator.file`` (the shipped one by default
   when the trials table is the one it was trained on);
2. the prior predictive distribution of every observation
   (``prior_predictive.png``);
3. NUTS (default; chains run one after another, each with a progress bar) or
   SVI (a multivariate-normal guide) on :func:`raisim.calibration.likelihood.numpyro_model`;
4. ``posterior.nc`` (arviz InferenceData; the fitted parameters in natural
   units under their card names, made netCDF-safe, plus ``z``, hazards,
   shares and trial effects), ``diagnostics.csv`` (per parameter: mean, sd,
   5/50/95 %, R-hat, bulk and tail ESS; and the run's divergences, wall time
   and gradient evaluations per second), ``ppc.png``, ``ppc.csv`` and
   ``manifest.json``.

``--leave-out TRIAL`` drops one trial's rows before fitting, and writes
``loo.csv``: the left-out rows' observed counts against their predictive
distribution from the fit without them (a new trial: a fresh trial effect).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from pydantic import Field, ValidationError
from scipy.stats import binom

from ..io.cards import MODELS_DIR, load_card, read_yaml
from ..io.config import FrozenConfig, PathText
from ..io.errors import InputError
from ..io.limits import MAX_SEED
from ..io.model_identity import MANIFEST_KEY, manifest_beside, model_sha256
from ..io.parameter_draws import load_posterior
from ..io.trials import TrialsTable, load_trials
from .emulator import (
    ArmEmulator,
    fit_emulator,
    parameter_space,
    simulate_design,
    table_hash,
    validate,
)
from .facts import facts_signature, fit_facts, relevant_parameters, simulate_facts
from .likelihood import TableLikelihood, numpyro_model
from .predict import summarise_pmf

if TYPE_CHECKING:
    import arviz as az

_LOG = logging.getLogger("raisim")

SHIPPED = MODELS_DIR / "posterior"


class EmulatorSettings(FrozenConfig):
    """The emulator of arm-level probabilities (:mod:`raisim.calibration.emulator`)."""

    file: PathText | None = Field(None, description="a trained emulator (.npz); default: the shipped one if it fits")
    patients: int = Field(2048, ge=16, description="design size: virtual patients, each with its own draw")
    validation_draws: int = Field(
        6,
        ge=0,
        description="held-out parameter draws checked on the full model (first-fit posterior draws if refining)",
    )
    validation_patients: int = Field(96, ge=8, description="virtual patients per validation draw")
    refine_patients: int = Field(
        0,
        ge=0,
        description="refinement round: further virtual patients, each at a posterior draw of a first fit (0: none)",
    )


class NutsSettings(FrozenConfig):
    """numpyro NUTS (``method: nuts``)."""

    chains: int = Field(4, ge=1, description="chains (run one after another on CPU, each with its progress bar)")
    warmup: int = Field(1000, ge=10, description="warm-up iterations per chain (step size and mass matrix)")
    samples: int = Field(1000, ge=10, description="draws kept per chain after warm-up")
    target_accept: float = Field(0.9, gt=0.5, lt=1.0, description="target acceptance probability of the step size")
    max_tree_depth: int = Field(8, ge=2, le=12, description="at most 2^depth leapfrog steps per iteration")
    thin_to: int = Field(1000, ge=10, description="posterior draws kept in posterior.nc")


class SviSettings(FrozenConfig):
    """numpyro SVI with a multivariate-normal guide (``method: svi``)."""

    steps: int = Field(3000, ge=10, description="Adam steps on the ELBO")
    learning_rate: float = Field(0.01, gt=0, description="Adam learning rate")
    samples: int = Field(1000, ge=10, description="draws from the fitted guide kept in posterior.nc")


class CalibrationConfig(FrozenConfig):
    """A calibration config (``configs/calibration/*.yaml``): the trials, the method, the seed, the
    fitted ``card:parameter`` names, and emulator and sampler settings (counts; fields in the README)."""

    trials: PathText = Field("models/data/trials.csv", description="trials CSV (relative to the working directory)")
    method: Literal["nuts", "svi"] = Field("nuts", description="nuts (4 chains) or svi; the CLI --method replaces it")
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="seed of the design, the sampler and the predictive draws (CLI --seed replaces it)",
    )
    parameters: list[str] = Field(
        min_length=1,
        description="emulated parameters, `card:parameter` (e.g. `biology/nis.yaml:hill`); priors are the cards'",
    )
    emulator: EmulatorSettings = Field(EmulatorSettings(), description="emulator training and validation")
    nuts: NutsSettings = Field(NutsSettings(), description="NUTS settings")
    svi: SviSettings = Field(SviSettings(), description="SVI settings")


def load_calibration_config(path: str | Path) -> CalibrationConfig:
    """Read and validate a calibration YAML (InputError: file, field, allowed)."""
    data = read_yaml(path, "calibration YAML file")
    if not isinstance(data, dict):
        raise InputError(path, "<root>", "a mapping with parameters, method, emulator, nuts, svi")
    try:
        cfg = CalibrationConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(path, ".".join(str(x) for x in err["loc"]) or "<root>", err["msg"]) from None
    parameter_space(cfg.parameters, str(path))  # checks every name and prior
    return cfg


# ---------------------------------------------------------------------------
# Emulator
# ---------------------------------------------------------------------------


def usable_emulator(
    cfg: CalibrationConfig, table: TrialsTable, log: Callable[[str], None] | None = None
) -> tuple[Path, ArmEmulator] | None:
    """The config's emulator (``emulator.file``) or the shipped one, when it was trained on these
    parameters and on this model (:func:`trained_model`) and can emulate every row of ``table``;
    None when the shipped one does not fit (it is then trained; ``log`` receives why). Reads files
    only: :func:`get_emulator` and the command's checks share it.

    **Raises:**

    - `InputError`: ``emulator.file`` is missing, unreadable, or trained on other parameters, rows
      or another model.
    """
    names = [p.name for p in parameter_space(cfg.parameters)]
    path = Path(cfg.emulator.file) if cfg.emulator.file else SHIPPED / "emulator.npz"
    if not path.exists():
        if cfg.emulator.file:
            raise InputError(path, "emulator.file", "an existing emulator .npz (from raisim calibrate)")
        return None
    try:
        emu = ArmEmulator.load(path)
    except Exception:  # noqa: BLE001 - any unreadable file is the same one-line error
        raise InputError(path, "emulator.file", "a readable emulator .npz (from raisim calibrate)") from None
    fits = [p.name for p in emu.parameters] == names
    if fits:
        try:
            TableLikelihood(table, emu)
        except InputError:
            fits = False
    trained = trained_model(emu, path) if fits else None
    if fits and trained != model_sha256():
        if cfg.emulator.file:
            said = "it records no model" if trained is None else "it was trained on another"
            allowed = f"an emulator trained on this model ({said}; remove emulator.file to train one)"
            raise InputError(path, "emulator.file", allowed)
        if log is not None:
            log(f"emulator: {path} was trained on another model (cards, tables or code changed since); training one")
        return None
    if fits:
        return path, emu
    if cfg.emulator.file:
        raise InputError(path, "emulator.file", "an emulator trained on these parameters and trials rows")
    return None


def trained_model(emu: ArmEmulator, path: Path) -> str | None:
    """The :func:`~raisim.io.model_identity.model_sha256` of the model ``emu`` (read from ``path``)
    was trained on: its ``meta``, else the ``raisim calibrate`` manifest beside it (the shipped
    emulators predate the key and were shipped with the posterior that records it); None when
    neither says."""
    if MANIFEST_KEY in emu.meta:
        return emu.meta[MANIFEST_KEY]
    manifest = manifest_beside(path)
    value = manifest.get(MANIFEST_KEY)
    return value if manifest.get("command") == "calibrate" and isinstance(value, str) else None


def get_emulator(
    cfg: CalibrationConfig,
    table: TrialsTable,
    out: Path,
    *,
    retrain: bool = False,
    log: Callable[[str], None] | None = None,
    progress=None,
    facts: ArmEmulator | None = None,
    sampler_progress: bool = False,
) -> ArmEmulator:
    """The emulator for ``table``: the config's or shipped one if it fits (unless ``retrain``), else
    trained and validated here.

    Training: the Sobol design (``emulator.patients``), then, with ``emulator.refine_patients``,
    one refinement round: a fit on the first emulator (with ``facts``) gives posterior draws,
    each of ``refine_patients`` new virtual patients gets one of them, and the network is
    refitted on both designs, so it is most accurate where the posterior lies. The validation
    draws are then further posterior draws of that first fit (held out from the refinement);
    without refinement they are population draws from the prior (``z`` ~ N(0, 1), |z| ≤ 2).
    """
    log = log or _LOG.info
    space = parameter_space(cfg.parameters)
    found = None if retrain else usable_emulator(cfg, table, log)
    if found is not None:
        path, emu = found
        n = emu.meta.get("patients", 0) + emu.meta.get("refine_patients", 0)
        log(f"emulator: {path} ({len(emu.keys)} targets, trained on {n} virtual patients)")
        return emu
    log(f"emulator: {cfg.emulator.patients} virtual patients × every arm on the full model (saved blocks reused)")
    t0 = time.time()
    design = simulate_design(table, space, cfg.emulator.patients, cfg.seed, cache_dir=out, progress=progress)
    meta = {"patients": cfg.emulator.patients, "seed": cfg.seed, "trials_hash": table_hash(table)}
    meta[MANIFEST_KEY] = design.model
    meta["design_wall_s"] = round(time.time() - t0, 1)
    emu = fit_emulator(design, space, meta)
    n_ref, n_val = cfg.emulator.refine_patients, cfg.emulator.validation_draws
    if n_ref:
        log(f"refinement: a first fit, then {n_ref} more virtual patients at its posterior draws")
        z_post = _posterior_points(cfg, TableLikelihood(table, emu, facts), n_ref + n_val, sampler_progress)
        t0 = time.time()
        refine = simulate_design(
            table,
            space,
            n_ref,
            cfg.seed,
            cache_dir=out,
            progress=progress,
            points=z_post[:n_ref],
            first_patient=cfg.emulator.patients,
            block_name="refine_block",
        )
        meta |= {"refine_patients": n_ref, "refine_wall_s": round(time.time() - t0, 1)}
        emu = fit_emulator(design.concat(refine), space, meta)
        z = z_post[n_ref:]
    else:
        rng = np.random.default_rng([cfg.seed, 11])
        z = np.clip(rng.standard_normal((n_val, len(space))), -2.0, 2.0)
        if n_val:
            z[0] = 0.0  # the cards' typical values
        z = np.clip(z, [p.z_low for p in space], [p.z_high for p in space])
    emu.save(out / "emulator.npz")
    if n_val:
        frame = validate(emu, table, z, cfg.emulator.validation_patients, cfg.seed + 1, progress=progress)
        frame.to_csv(out / "emulator_validation.csv", index=False)
        ok = frame.dropna()
        log(
            f"emulator validation ({len(z)} held-out draws × {len(ok['target'].unique())} targets): "
            f"|error| median {ok['error'].abs().median():.3f}, 90% {ok['error'].abs().quantile(0.9):.3f}, "
            f"max {ok['error'].abs().max():.3f}; full-model Monte-Carlo SE median {ok['mc_se'].median():.3f}"
        )
    return emu


def _posterior_points(cfg: CalibrationConfig, lik: TableLikelihood, n: int, progress: bool) -> np.ndarray:
    """``n`` distinct posterior draws of ``z`` (normal scores) from a fit with ``cfg``'s sampler,
    in a seeded random order."""
    idata, _ = fit_posterior(cfg, lik, progress=progress)
    z = np.stack([d["z"] for d in posterior_params(idata, lik)])
    rng = np.random.default_rng([cfg.seed, 13])
    return z[rng.permutation(len(z))[:n]]


FACT_POINTS = 4096  # typical-patient simulations for the fact emulator (~0.2 s each)


def get_facts(
    cfg: CalibrationConfig, out: Path, *, retrain: bool = False, log: Callable[[str], None] | None = None
) -> ArmEmulator:
    """The emulator of the biology facts' constraints: the shipped one when it was fitted to
    the same parameters, facts, thresholds, SDs and design size (unless ``retrain``; fitted on
    another model, it is reused with a warning), else
    simulated (cached in ``out``, extended when it holds fewer points) and fitted here; saved
    as ``out/facts.npz``. ``log`` receives one line per step (default: the ``raisim`` logger)."""
    log = log or _LOG.info
    space = parameter_space(cfg.parameters)
    shipped = SHIPPED / "facts.npz"
    if not retrain and shipped.exists():
        fe = ArmEmulator.load(shipped)
        same = fe.meta.get("space") == [p.name for p in space] and fe.meta.get("facts") == facts_signature(FACT_POINTS)
        if same:
            trained = trained_model(fe, shipped)
            fe.meta[MANIFEST_KEY] = trained or "unknown"  # the copy says which model it emulates, not this one
            if trained != model_sha256():
                # the facts are the typical patient's NIS on a TKI alone: a readout or dosimetry change
                # leaves them as they are, and refitting them is 4096 solves, so they are reused, with a word
                _LOG.warning(
                    "warning: facts: %s was fitted on another model; reused (it emulates NIS on a "
                    "TKI alone: pass --retrain if the pathway, NIS or PK changed)",
                    shipped,
                )
            fe.save(out / "facts.npz")
            return fe
    log(f"facts: {FACT_POINTS} typical-patient simulations (raisim/calibration/facts.py)")
    z, values = simulate_facts(space, FACT_POINTS, cfg.seed, out / "facts_design.npz")
    columns = relevant_parameters(space)
    log("facts depend on: " + ", ".join(space[i].name.split(":")[-1] for i in columns))
    fe = fit_facts(z, values, space, columns)
    fe.save(out / "facts.npz")
    return fe


# ---------------------------------------------------------------------------
# Fit
# ---------------------------------------------------------------------------


def fit_posterior(
    cfg: CalibrationConfig, lik: TableLikelihood, *, progress: bool = True
) -> tuple[az.InferenceData, dict]:
    """NUTS or SVI; returns the InferenceData (posterior in each card's unit) and run statistics
    (``wall_s`` in s; gradient evaluations and divergences are counts)."""
    from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoMultivariateNormal

    key = jax.random.PRNGKey(cfg.seed)
    t0 = time.time()
    stats: dict = {"method": cfg.method}
    if cfg.method == "nuts":
        s = cfg.nuts
        kernel = NUTS(numpyro_model, target_accept_prob=s.target_accept, max_tree_depth=s.max_tree_depth)
        mcmc = MCMC(
            kernel,
            num_warmup=s.warmup,
            num_samples=s.samples,
            num_chains=s.chains,
            chain_method="sequential",
            progress_bar=progress,
        )
        mcmc.run(key, lik, extra_fields=("num_steps", "diverging"))
        stats["wall_s"] = time.time() - t0
        steps = np.asarray(mcmc.get_extra_fields()["num_steps"]).sum()
        # warm-up gradients are not kept: scale the sampling phase's by its share of iterations
        stats["gradient_evaluations"] = int(steps * (s.warmup + s.samples) / s.samples)
        stats["divergences"] = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
        samples = mcmc.get_samples(group_by_chain=True)
        stats["chains"], stats["draws_per_chain"] = s.chains, s.samples
    else:
        s = cfg.svi
        from numpyro.optim import Adam

        guide = AutoMultivariateNormal(numpyro_model)
        svi = SVI(numpyro_model, guide, Adam(s.learning_rate), Trace_ELBO())
        res = svi.run(key, s.steps, lik, progress_bar=progress)
        stats["wall_s"] = time.time() - t0
        stats["gradient_evaluations"] = s.steps
        stats["divergences"] = 0
        stats["final_elbo_loss"] = float(res.losses[-1])
        from numpyro.infer import Predictive

        draws = Predictive(guide, params=res.params, num_samples=s.samples)(jax.random.PRNGKey(cfg.seed + 1), lik)
        latent = Predictive(numpyro_model, posterior_samples=draws, return_sites=_sites(lik))(
            jax.random.PRNGKey(cfg.seed + 2), lik
        )
        samples = {k: np.asarray(v)[None] for k, v in latent.items()}
        stats["chains"], stats["draws_per_chain"] = 1, s.samples
    stats["gradient_evaluations_per_s"] = stats["gradient_evaluations"] / max(stats["wall_s"], 1e-9)
    return _inference_data(samples, lik), stats


def _sites(lik: TableLikelihood) -> list[str]:
    names = ["z", "log_hazard", "share_BRAF_V600E", "share_RAS", "logit_sd", "trial_effect"]
    names += [p.name for p in lik.emulator.parameters]
    names += [f"biology/toxicity.yaml:hazard_per_day_{d}" for d in lik.drugs]
    if lik.facts is not None:
        names += [f"fact:{n}" for n in lik.facts.keys]
    return names


def safe_name(card_parameter: str) -> str:
    """``biology/nis.yaml:erk_half_max`` → ``nis.erk_half_max`` (a netCDF-safe variable name)."""
    card, _, key = card_parameter.partition(":")
    return f"{Path(card).stem}.{key}"


def _inference_data(samples: dict, lik: TableLikelihood) -> az.InferenceData:
    """Posterior InferenceData: natural-unit parameters named ``<card>.<parameter>`` (attrs map back)."""
    names = {p.name: safe_name(p.name) for p in lik.emulator.parameters}
    names |= {f"biology/toxicity.yaml:hazard_per_day_{d}": f"toxicity.hazard_per_day_{d}" for d in lik.drugs}
    names |= {
        "share_BRAF_V600E": "population.share_BRAF_V600E",
        "share_RAS": "population.share_RAS",
        "logit_sd": "between_trial.logit_sd",
    }
    post = {new: np.asarray(samples[old]) for old, new in names.items()}
    post["z"] = np.asarray(samples["z"])
    post["trial_effect"] = np.asarray(samples["trial_effect"])
    for k, v in samples.items():
        if k.startswith("fact:"):
            post[k] = np.asarray(v)
    import arviz as az  # imported on use: arviz takes seconds to import

    idata = az.from_dict(
        posterior=post,
        coords={"parameter": [p.name for p in lik.emulator.parameters], "trial": lik.trials},
        dims={"z": ["parameter"], "trial_effect": ["trial"]},
    )
    card_of = {new: (old if ":" in old else _card_of_site(old)) for old, new in names.items()}
    idata.posterior.attrs["card_parameters"] = json.dumps(card_of)
    return idata


def _card_of_site(site: str) -> str:
    return {
        "share_BRAF_V600E": "biology/population.yaml:share_BRAF_V600E",
        "share_RAS": "biology/population.yaml:share_RAS",
        "logit_sd": "calibration/between_trial.yaml:logit_sd",
    }[site]


def fitted_variables(idata: az.InferenceData) -> list[str]:
    """The natural-unit parameter variables of a posterior (``<card>.<parameter>``)."""
    return list(json.loads(idata.posterior.attrs["card_parameters"]))


def thin(idata: az.InferenceData, keep: int) -> az.InferenceData:
    """Evenly thinned to about ``keep`` draws in total."""
    n = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    step = max(1, math.ceil(n / keep))
    return idata.isel(draw=slice(None, None, step))


def posterior_diagnostics(idata: az.InferenceData, stats: dict) -> pd.DataFrame:
    """Per-parameter summary (mean, sd, q05, q50, q95 in the card's unit; r_hat, ess_bulk, ess_tail
    dimensionless) plus run columns (``wall_s`` in s)."""
    var = fitted_variables(idata)
    import arviz as az

    summ = az.summary(idata, var_names=var, kind="all", hdi_prob=0.9, round_to="none")
    frame = pd.DataFrame(
        {
            "parameter": var,
            "card_parameter": [json.loads(idata.posterior.attrs["card_parameters"])[v] for v in var],
            "mean": summ["mean"].to_numpy(),
            "sd": summ["sd"].to_numpy(),
            "q05": [float(idata.posterior[v].quantile(0.05)) for v in var],
            "q50": [float(idata.posterior[v].quantile(0.5)) for v in var],
            "q95": [float(idata.posterior[v].quantile(0.95)) for v in var],
            "r_hat": summ["r_hat"].to_numpy() if stats["chains"] > 1 else np.nan,
            "ess_bulk": summ["ess_bulk"].to_numpy(),
            "ess_tail": summ["ess_tail"].to_numpy(),
        }
    )
    for k in ("method", "divergences", "wall_s", "gradient_evaluations", "gradient_evaluations_per_s"):
        frame[k] = stats[k]
    return frame


# ---------------------------------------------------------------------------
# Predictive distributions
# ---------------------------------------------------------------------------


def posterior_params(idata: az.InferenceData, lik: TableLikelihood) -> list[dict]:
    """The likelihood's parameters per posterior draw (chains stacked): ``z`` normal scores,
    ``log_hazard`` ln(1/day), shares in [0, 1], ``logit_sd`` in logit units."""
    post = idata.posterior.stack(sample=("chain", "draw"))
    z = post["z"].transpose("sample", "parameter").to_numpy()
    haz = np.log(np.stack([post[f"toxicity.hazard_per_day_{d}"].to_numpy() for d in lik.drugs], axis=-1))
    out = []
    for i in range(z.shape[0]):
        out.append(
            {
                "z": jnp.asarray(z[i]),
                "log_hazard": jnp.asarray(haz[i]),
                "log_hazard_by_drug": dict(zip(lik.drugs, map(float, haz[i]), strict=True)),
                "share_BRAF_V600E": float(post["population.share_BRAF_V600E"][i]),
                "share_RAS": float(post["population.share_RAS"][i]),
                "logit_sd": float(post["between_trial.logit_sd"][i]),
                "trial_effect": {
                    t: float(post["trial_effect"].sel(trial=t)[i]) for t in idata.posterior["trial"].values
                },
            }
        )
    return out


def predictive_table(lik: TableLikelihood, draws: list[dict], seed: int, *, new_trials: bool) -> pd.DataFrame:
    """Observed counts (patients) against their predictive distribution (exact pmfs mixed over draws;
    ``p_tail`` a probability).

    A trial the draws have no effect for (``new_trials``, or a left-out trial) gets a
    fresh effect per draw, N(0, logit_sd²). One row per observation and count.
    """
    rng = np.random.default_rng([seed, 13])
    pmfs: dict[tuple[str, int], np.ndarray] = {}
    probabilities = jax.jit(lik.probabilities)
    for d in draws:
        effects = {
            t: (
                d["trial_effect"][t] * d["logit_sd"]
                if (t in d["trial_effect"] and not new_trials)
                else d["logit_sd"] * rng.standard_normal()
            )
            for t in lik.trials
        }
        params = {k: d[k] for k in ("z", "share_BRAF_V600E", "share_RAS")}
        params["log_hazard"] = jnp.asarray([_log_hazard(d, drug, rng) for drug in lik.drugs])
        probs = probabilities(params, {t: jnp.asarray(v) for t, v in effects.items()})
        for ob in lik.observations:
            p = np.asarray(probs[ob.name])
            k = np.arange(ob.n + 1)
            for c in range(len(ob.labels)):
                pc = p[c] if ob.kind == "multinomial" else p[0]
                pmfs[(ob.name, c)] = pmfs.get((ob.name, c), 0.0) + binom.pmf(k, ob.n, pc)
    rows = []
    for ob in lik.observations:
        row = lik.rows[ob.lines[0]]
        for c, label in enumerate(ob.labels):
            obs = None if ob.counts is None else int(ob.counts[c])
            s = summarise_pmf(pmfs[(ob.name, c)], obs)
            lo, hi = predictive_interval(pmfs[(ob.name, c)], 0.95)
            rows.append(
                {
                    "observation": ob.name,
                    "trial": row.trial,
                    "arm": row.arm,
                    "endpoint": row.endpoint,
                    "criterion": row.criterion,
                    "count": label,
                    "n": ob.n,
                    "observed": obs,
                    "mean": s["mean"],
                    "q05": s["q05"],
                    "q50": s["q50"],
                    "q95": s["q95"],
                    "lo95": lo,
                    "hi95": hi,
                    "p_tail": s["p_tail"],
                    "inside95": None if obs is None else bool(lo <= obs <= hi),
                }
            )
    return pd.DataFrame(rows)


def _log_hazard(draw: dict, drug: str, rng: np.random.Generator) -> float:
    """A draw's log grade ≥ 3 hazard of ``drug``; a drug the fit did not see comes from its card prior."""
    by_drug = draw.get("log_hazard_by_drug", {})
    if drug in by_drug:
        return by_drug[drug]
    prior = load_card("biology/toxicity.yaml").parameters[f"hazard_per_day_{drug}"].prior
    return math.log(prior.median) + math.log(prior.gsd) * rng.standard_normal()


def predictive_interval(pmf: np.ndarray, mass: float) -> tuple[int, int]:
    """Equal-tailed interval of a count pmf holding ``mass`` (e.g. 0.95): (lower, upper) counts."""
    cdf = np.cumsum(pmf / pmf.sum())
    return int(np.searchsorted(cdf, (1 - mass) / 2 - 1e-12)), int(np.searchsorted(cdf, 1 - (1 - mass) / 2 - 1e-12))


def prior_params(lik: TableLikelihood, n: int, seed: int) -> list[dict]:
    """Draws of the likelihood's parameters from the prior (for the prior predictive); units as in
    :func:`posterior_params`."""
    from numpyro.infer import Predictive

    s = Predictive(numpyro_model, num_samples=n, return_sites=_sites(lik))(jax.random.PRNGKey(seed), lik, False)
    return [
        {
            "z": s["z"][i],
            "log_hazard": s["log_hazard"][i],
            "log_hazard_by_drug": dict(zip(lik.drugs, map(float, s["log_hazard"][i]), strict=True)),
            "share_BRAF_V600E": float(s["share_BRAF_V600E"][i]),
            "share_RAS": float(s["share_RAS"][i]),
            "logit_sd": float(s["logit_sd"][i]),
            "trial_effect": {t: float(s["trial_effect"][i, j]) for j, t in enumerate(lik.trials)},
        }
        for i in range(n)
    ]


def load_trials_for(
    cfg: CalibrationConfig, leave_out: str | None, source: str
) -> tuple[TrialsTable, TrialsTable | None]:
    """(the table fitted, the left-out rows or None); an unknown trial is an InputError."""
    table = load_trials(cfg.trials)
    if leave_out is None:
        return table, None
    trials = sorted({r.trial for r in table.rows})
    if leave_out not in trials:
        raise InputError(source, "--leave-out", f"a trial of {cfg.trials}: {', '.join(trials)}", got=leave_out)
    return table.subset(lambda r: r.trial != leave_out), table.subset(lambda r: r.trial == leave_out)


__all__ = [
    "CalibrationConfig",
    "posterior_diagnostics",
    "fit_posterior",
    "get_emulator",
    "load_calibration_config",
    "load_posterior",
    "predictive_interval",
    "predictive_table",
    "prior_params",
    "posterior_params",
    "safe_name",
    "thin",
]
