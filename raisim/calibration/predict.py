"""Predicting trial outcomes: each row of a trials table → the predictive distribution of its counts.

For every row the arm's protocol (:mod:`raisim.protocol.arms`) runs a virtual cohort
through the full model (the batched engine), per genotype of the arm's
composition and per parameter draw (the shipped posterior by default; or
prior draws, or the cards' typical values). All draws run in one batch per
protocol: the same virtual patients (common random numbers) repeated once
per draw. Per draw the arm's probabilities are those of
:mod:`raisim.calibration.targets` (the same definitions calibration fits): the readout's
P(success), nested dosimetry given an increase, RECIST categories among the
treated (weighted by each patient's probability of being selected), and
P(grade ≥ 3 AE) over the planned days (closed-form). A posterior draw also
carries the genotype shares (which split ``BRAF_WT`` and ``ANY`` arms) and
the between-trial SD: a row of a trial is a new trial, so each draw adds a
fresh trial effect to the logit of its readout probabilities.

The count of ``n`` trial patients is binomial (or, per category, the binomial
marginal of the multinomial), one component per genotype group, mixed over
draws. Everything is exact arithmetic on probability mass functions: no
sampling noise beyond the virtual cohort's.

``p_tail`` is the two-sided predictive tail probability of the observed
count, 2·min(P(X ≤ obs), P(X ≥ obs)), capped at 1.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import binom

from ..biology.toxicity import Toxicity
from ..engine.batch import SolverSettings
from ..engine.cohort import sample_cohort
from ..io.parameter_draws import overrides_from_values
from ..io.trials import TrialRow, TrialsTable
from ..io.vocab import GENOTYPES
from ..protocol.arms import genotype_weights
from .targets import arm_probabilities, categories, nested_parent, simulate_runs, table_targets

RECIST_NAMES = ("n_cr", "n_pr", "n_sd", "n_pd")
LOGIT_SD = "calibration/between_trial.yaml:logit_sd"


def _component_pmf(parts: list[tuple[int | float, float]], n: int) -> np.ndarray:
    """pmf of a sum of binomials (integer group sizes) or of Binomial(n, mixed p) (fractional groups)."""
    if all(float(m).is_integer() for m, _ in parts):
        pmf = np.asarray([1.0])
        for m, p in parts:
            pmf = np.convolve(pmf, binom.pmf(np.arange(int(m) + 1), int(m), min(max(p, 0.0), 1.0)))
        return pmf[: n + 1]
    p = sum(m * q for m, q in parts) / max(sum(m for m, _ in parts), 1e-12)
    return binom.pmf(np.arange(n + 1), n, min(max(p, 0.0), 1.0))


def summarise_pmf(pmf: np.ndarray, observed: int | None) -> dict:
    """mean, 5/50/95 % quantiles, observed value and two-sided tail probability of a count pmf.

    ``pmf``: probabilities of 0..n patients (normalised here); ``observed``: a count of patients.
    Quantiles and mean are counts of patients; ``p_tail`` is a probability in [0, 1].
    """
    pmf = np.asarray(pmf, float)
    pmf = pmf / pmf.sum()
    k = np.arange(len(pmf))
    cdf = np.cumsum(pmf)
    q = lambda a: int(np.searchsorted(cdf, a - 1e-12))  # noqa: E731
    tail = None
    if observed is not None:
        lower = cdf[observed]
        upper = 1.0 - (cdf[observed - 1] if observed > 0 else 0.0)
        tail = float(min(1.0, 2.0 * min(lower, upper)))
    return {
        "mean": float(np.sum(k * pmf)),
        "q05": q(0.05),
        "q50": q(0.5),
        "q95": q(0.95),
        "observed": observed,
        "p_tail": tail,
    }


def _groups(row: TrialRow, shares: tuple[float, float]) -> list[tuple[float, dict[str, float]]]:
    """(patients, genotype weights within the group) per composition entry of a row."""
    out = []
    for key, m in row.composition.counts.items():
        if key in GENOTYPES:
            out.append((m, {key: 1.0}))
        else:
            one = row.model_copy(update={"composition": row.composition.model_copy(update={"counts": {key: 1}})})
            out.append((m, genotype_weights(one, shares=shares)))
    return out


def _mixed(groups, per_genotype: dict[str, float]) -> list[tuple[float, float]]:
    return [(m, sum(w * per_genotype[g] for g, w in weights.items())) for m, weights in groups]


def _draw_values(draws: pd.DataFrame) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in row.items() if pd.notna(v)} for row in draws.to_dict("records")] or [{}]


def predict_table(
    table: TrialsTable,
    draws: pd.DataFrame | None = None,
    *,
    patients: int = 64,
    seed: int = 0,
    max_lesions: int = 5,
    solver: SolverSettings | None = None,
    progress=None,
    keep_pmf: bool = False,
) -> list[dict]:
    """The predictive distribution of every row's outcome (DESIGN.md's JSON objects, in row order).

    **Arguments:**

    - `table`: the rows to predict (``k`` and counts may be blank).
    - `draws`: parameter draws, columns ``card:parameter`` (:func:`raisim.io.parameter_draws.read_draws`);
      None or empty: the cards' typical values.
    - `patients`: virtual patients per arm, genotype and draw (a count).
    - `seed`: virtual cohort seed (and the new-trial effects' seed).
    - `max_lesions`: lesion slots per virtual patient (a count).
    - `keep_pmf`: also return each outcome's pmf (key ``pmf``, a numpy array; not JSON).

    Each outcome is a count of the row's ``n`` patients: ``mean`` and ``q05``/``q50``/``q95`` in
    patients, ``p_tail`` a probability in [0, 1] (see :func:`summarise_pmf`).
    """
    values = _draw_values(draws if draws is not None else pd.DataFrame())
    n_draws = len(values)
    targets, runs = table_targets(table)
    parent = nested_parent(table)
    probs: list[dict[str, float]] = [{} for _ in range(n_draws)]
    if runs:
        base = sample_cohort(patients, seed, max_lesions=max_lesions)
        cohort = base.take(np.tile(np.arange(patients), n_draws))  # the same patients under every draw
        per_patient = [overrides_from_values(v) for v in values for _ in range(patients)]
        if all(not o for o in per_patient):
            outs = simulate_runs(runs, base, solver=solver, progress=progress)
            blocks = [outs]
        else:
            outs = simulate_runs(runs, cohort, patient_overrides=per_patient, solver=solver, progress=progress)
            blocks = [
                {
                    k: jax.tree_util.tree_map(lambda a, d=d: a[d * patients : (d + 1) * patients], o)
                    for k, o in outs.items()
                }
                for d in range(n_draws)
            ]
        for d, block in enumerate(blocks):
            probs[d] = arm_probabilities(table, block, targets)
        if len(blocks) == 1:
            probs = [probs[0]] * n_draws
    rng = np.random.default_rng([seed, 17])
    effects = [rng.standard_normal() * v.get(LOGIT_SD, 0.0) for v in values]
    results = []
    for row in table.rows:
        pmfs = _row_pmfs(row, values, probs, effects, parent)
        if row.endpoint == "response":
            obs = {name: getattr(row, name) for name in RECIST_NAMES}
        else:
            obs = {"k": row.k}
        outcomes = {name: summarise_pmf(pmfs[name], obs[name]) for name in obs}
        if keep_pmf:
            for name in obs:
                outcomes[name]["pmf"] = pmfs[name] / pmfs[name].sum()
        results.append(
            {
                "row": row.line,
                "study": row.study,
                "arm": row.arm,
                "genotype": row.genotype,
                "endpoint": row.endpoint,
                "criterion": row.criterion,
                "n": row.n,
                "outcomes": outcomes,
            }
        )
    return results


def _row_pmfs(row: TrialRow, values, probs, effects, parent) -> dict[str, np.ndarray]:
    names = RECIST_NAMES if row.endpoint == "response" else ("k",)
    pmfs = {name: np.zeros(row.n + 1) for name in names}
    for d, v in enumerate(values):
        shares = (
            v.get("biology/population.yaml:share_BRAF_V600E", None),
            v.get("biology/population.yaml:share_RAS", None),
        )
        groups = _groups(row, None if None in shares else shares)
        genos = sorted({g for _, w in groups for g in w})
        shift = lambda p, e=effects[d]: float(expit(logit(np.clip(p, 1e-12, 1 - 1e-12)) + e))  # noqa: E731
        if row.endpoint == "grade3_ae":
            per = {"k": {g: _p_grade3(row, g, overrides_from_values(v)) for g in genos}}
        elif row.endpoint == "uptake":
            if row.line in parent:  # nested dosimetry: P(increase) · P(threshold | increase)
                per = {
                    "k": {
                        g: shift(probs[d][f"{parent[row.line]}:{g}:readout"])
                        * shift(probs[d][f"{row.line}:{g}:dosimetry_given_increase"])
                        for g in genos
                    }
                }
            else:
                per = {"k": {g: shift(probs[d][f"{row.line}:{g}:readout"]) for g in genos}}
        else:
            cat = {
                g: np.asarray(
                    categories(
                        *[probs[d][f"{row.line}:{g}:{q}"] for q in ("pd", "sd_given_not_pd", "pr_given_cr_or_pr")]
                    )
                )
                for g in genos
            }
            per = {name: {g: float(np.nan_to_num(cat[g][c], nan=0.0)) for g in genos} for c, name in enumerate(names)}
        for name in names:
            pmfs[name] += _component_pmf(_mixed(groups, per[name]), row.n)
    return pmfs


def _p_grade3(row: TrialRow, genotype: str, overrides: dict) -> float:
    """P(grade ≥ 3 AE) over the arm's days on TKI (every drug given to the genotype, days 1..tki_stop_day)."""
    drugs = tuple(item.drug for item in row.regimen if item.applies_to(genotype))
    if not drugs:
        return 0.0
    days = float(row.tki_stop_day or 28)
    tox = Toxicity.from_cards(drugs, overrides.get("toxicity"))
    return float(tox.p_grade3(np.full(len(drugs), days)))


def table_lines(results: list[dict]) -> list[str]:
    """A readable table of predictions (one line per row and outcome; counts of patients, p_tail a probability)."""
    lines = [
        f"{'row':>3} {'study':<16} {'arm':<22} {'endpoint':<9} {'n':>3} {'outcome':<6} "
        f"{'mean':>6} {'90% interval':>13} {'observed':>8} {'p_tail':>7}"
    ]
    for r in results:
        for name, o in r["outcomes"].items():
            obs = "" if o["observed"] is None else str(o["observed"])
            tail = "" if o["p_tail"] is None else f"{o['p_tail']:.3f}"
            interval = f"{o['q05']}-{o['q95']}"
            lines.append(
                f"{r['row']:>3} {r['study'][:16]:<16} {r['arm'][:22]:<22} {r['endpoint']:<9} {r['n']:>3} {name:<6} "
                f"{o['mean']:>6.2f} {interval:>13} {obs:>8} {tail:>7}"
            )
    return lines


__all__ = ["predict_table", "summarise_pmf", "table_lines"]
