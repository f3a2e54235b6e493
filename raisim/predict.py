"""Predicting trial outcomes: each row of a trials table → the predictive distribution of its counts.

For every row the arm's protocol (:mod:`raisim.arms`) runs a virtual cohort
through the batched engine, per genotype of the arm's composition and per
parameter draw (posterior draws once calibration has made them; until then
the cards' typical values or prior draws). Per draw the arm's outcome
probabilities are the cohort means of smooth per-patient quantities — the
readout's P(success), RECIST categories among the treated, P(grade ≥ 3 AE)
over the planned days — and the count of ``n`` trial patients is binomial
(or, per category, the binomial marginal of the multinomial), one component
per genotype group, mixed over draws. Everything is exact arithmetic on
probability mass functions: no sampling noise beyond the virtual cohort's.

``p_tail`` is the two-sided predictive tail probability of the observed
count, 2·min(P(X ≤ obs), P(X ≥ obs)), capped at 1.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom

from .arms import arm_protocol, genotype_weights
from .batch import SolverSettings, run_cohort
from .cohort import sample_cohort
from .plan import cell_shapes, merge_padding
from .toxicity import Toxicity
from .trials import TrialRow, TrialsTable
from .vocab import GENOTYPES

RECIST_NAMES = ("n_cr", "n_pr", "n_sd", "n_pd")
MIN_TREATED = 5  # fewer treated virtual patients than this: their response is read on the treated course


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
    """mean, 5/50/95 % quantiles, observed value and two-sided tail probability of a count pmf."""
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


def _groups(row: TrialRow, ras_share: float | None) -> list[tuple[str, float, dict[str, float]]]:
    """(composition key, patients, genotype weights within the key) of a row."""
    out = []
    for key, m in row.composition.counts.items():
        if key in GENOTYPES:
            out.append((key, m, {key: 1.0}))
        else:
            fake = row.model_copy(update={"composition": row.composition.model_copy(update={"counts": {key: 1}})})
            out.append((key, m, genotype_weights(fake, ras_share)))
    return out


def _mixed(groups, per_genotype: dict[str, float]) -> list[tuple[float, float]]:
    return [(m, sum(w * per_genotype[g] for g, w in weights.items())) for _, m, weights in groups]


def predict_table(
    table: TrialsTable,
    overrides_per_draw: list[dict],
    *,
    patients: int = 64,
    seed: int = 0,
    max_lesions: int = 5,
    solver: SolverSettings | None = None,
    ras_share_of_braf_wt: float | None = None,
    progress=None,
) -> list[dict]:
    """The predictive distribution of every row's outcome (DESIGN.md's JSON objects, in row order)."""
    solver = solver or SolverSettings(1e-6, 1e-9, 100_000)
    cohort = sample_cohort(patients, seed, max_lesions=max_lesions)
    needed = {}
    for row in table.rows:
        if row.endpoint == "grade3_ae":
            continue
        for g in {g for _, _, w in _groups(row, ras_share_of_braf_wt) for g in w}:
            needed[(row.line, g)] = arm_protocol(row, g, str(table.path))
    pad = merge_padding([cell_shapes(p) for p in needed.values()]) if needed else None
    cache: dict[tuple[str, int, bool], dict] = {}

    def cohort_run(p, d: int, forced: bool) -> dict:
        key = (p.content_hash(), d, forced)
        if key not in cache:
            s = SolverSettings(solver.rtol, solver.atol, solver.max_steps, 0 if forced else None, solver.micro_batch)
            cache[key] = run_cohort(p, cohort, overrides=overrides_per_draw[d], pad=pad, solver=s)
            if progress is not None:
                progress()
        return cache[key]

    results = []
    for row in table.rows:
        groups = _groups(row, ras_share_of_braf_wt)
        genos = sorted({g for _, _, w in groups for g in w})
        if row.endpoint in ("uptake", "grade3_ae"):
            pmf = np.zeros(row.n + 1)
            for d, ov in enumerate(overrides_per_draw):
                per_g = {}
                for g in genos:
                    if row.endpoint == "grade3_ae":
                        per_g[g] = _p_grade3(row, g, ov)
                    else:
                        out = cohort_run(needed[(row.line, g)], d, False)
                        per_g[g] = float(np.nanmean(np.where(out["ok"], out["readout_p"], np.nan)))
                pmf += _component_pmf(_mixed(groups, per_g), row.n)
            outcomes = {"k": summarise_pmf(pmf, row.k)}
        else:  # response: RECIST categories among the treated at response_month
            pmfs = {name: np.zeros(row.n + 1) for name in RECIST_NAMES}
            for d in range(len(overrides_per_draw)):
                cat = {g: _categories(needed[(row.line, g)], row, d, cohort_run) for g in genos}
                for c, name in enumerate(RECIST_NAMES):
                    pmfs[name] += _component_pmf(_mixed(groups, {g: cat[g][c] for g in genos}), row.n)
            outcomes = {name: summarise_pmf(pmfs[name], getattr(row, name)) for name in RECIST_NAMES}
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


def _categories(p, row: TrialRow, d: int, cohort_run) -> np.ndarray:
    """P(CR, PR, SD, PD) at the row's month among treated virtual patients of one genotype."""
    months = list(p.followup.months)
    a = months.index(float(row.response_month or 6))
    out = cohort_run(p, d, False)
    treated = out["ok"] & out["treated"]
    if treated.sum() < MIN_TREATED:  # too few selected: read the response on the treated course
        out = cohort_run(p, d, True)
        treated = out["ok"] & out["treated"]
    if not treated.any():
        return np.full(4, math.nan)
    codes = out["recist"][treated, a]
    return np.bincount(codes, minlength=4)[:4] / codes.size


def _p_grade3(row: TrialRow, genotype: str, overrides: dict) -> float:
    """P(grade ≥ 3 AE) over the arm's days on TKI (every drug given to the genotype, days 1..tki_stop_day)."""
    drugs = tuple(item.drug for item in row.regimen if item.applies_to(genotype))
    if not drugs:
        return 0.0
    days = float(row.tki_stop_day or 28)
    tox = Toxicity.from_cards(drugs, overrides.get("toxicity"))
    return float(tox.p_grade3(np.full(len(drugs), days)))


def table_lines(results: list[dict]) -> list[str]:
    """A readable table of predictions (one line per row and outcome)."""
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
