"""The likelihood of a trials table: the numpyro model that calibration samples.

Parameters (priors from the cards, one place per parameter):

- ``z``: the emulated population parameters in their priors' normal-score
  space (:class:`raisim.calibration.emulator.FittedParameter`), standard normal
  truncated at ±3 sd and at the cards' bounds;
- ``log_hazard``: the grade ≥ 3 AE hazard of each drug in the table
  (``biology/toxicity.yaml``), lognormal;
- ``share_BRAF_V600E``, ``share_RAS``: genotype shares (``biology/population.yaml``),
  which split ``BRAF_WT`` arms (RAS share = share_RAS / (1 − share_BRAF_V600E))
  and ``ANY`` arms;
- ``logit_sd`` and one standard-normal ``trial_effect`` per trial
  (``calibration/between_trial.yaml``): the between-trial random effect on the
  logit of every readout probability of that trial's rows (non-centred).

Biology facts (:mod:`raisim.calibration.facts`, ``calibration/facts.yaml``) enter as soft
constraints on emulated typical-patient quantities (factor ``fact_<name>``).

Observations (one numpyro site per observation, ``row<line>``):

- ``uptake`` rows: binomial; a nested pair (``i124_increase`` and
  ``i124_dosimetry`` on the same patients) is one multinomial over
  (no increase, increase below the dosimetry threshold, threshold reached),
  site ``row<l1>_<l2>``;
- ``response`` rows: multinomial over (CR, PR, SD, PD) among the treated;
- ``grade3_ae`` rows: binomial with P = 1 − exp(−Σ hazard_d · days on drug d).

A row's patients are a mix of genotypes (its composition): its probabilities
are the composition-weighted means of the per-genotype ones (a patient's
genotype is a draw from the arm's mix, so the count is binomial/multinomial
in the mixed probabilities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ..biology.toxicity import p_grade3
from ..io.cards import load_card
from ..io.errors import InputError
from ..io.trials import TrialRow, TrialsTable
from ..io.vocab import GENOTYPES
from .emulator import ArmEmulator
from .targets import categories, nested_parent, target_keys

EPS = 1e-9


@dataclass(frozen=True)
class Observation:
    """One observation site: ``name``, its rows, kind (binomial/multinomial), n and observed counts
    (patients)."""

    name: str
    lines: tuple[int, ...]
    kind: str
    n: int
    counts: tuple[int, ...] | None  # None where the table has no outcome (prediction only)
    labels: tuple[str, ...]  # one per count: "k", ("none", "below", "reached"), ("n_cr", ...)


def _composition(row: TrialRow) -> tuple[np.ndarray, float, float]:
    """(patients of each genotype, BRAF_WT patients, ANY patients) of a row."""
    fixed = np.array([float(row.composition.counts.get(g, 0.0)) for g in GENOTYPES])
    return fixed, float(row.composition.counts.get("BRAF_WT", 0.0)), float(row.composition.counts.get("ANY", 0.0))


class TableLikelihood:
    """Everything the numpyro model needs about a table, precomputed (static structure)."""

    def __init__(self, table: TrialsTable, emulator: ArmEmulator, facts: ArmEmulator | None = None):
        self.table = table
        self.emulator = emulator
        self.facts = facts
        if facts is not None:  # the facts' inputs: a subset of the emulated parameters, by name
            names = [p.name for p in emulator.parameters]
            missing = [p.name for p in facts.parameters if p.name not in names]
            if missing:
                raise InputError("facts.npz", "parameters", f"parameters of the arm emulator (not {missing})")
            self.fact_columns = np.array([names.index(p.name) for p in facts.parameters])
        self.trials = sorted({r.trial for r in table.rows})
        self.drugs = sorted({item.drug for r in table.rows for item in r.regimen})
        parent = nested_parent(table)
        children = {v: k for k, v in parent.items()}
        rows = {r.line: r for r in table.rows}
        self.observations: list[Observation] = []
        for r in table.rows:
            if r.line in parent:
                continue  # part of its parent's multinomial
            if r.line in children:
                child = rows[children[r.line]]
                counts = None if r.k is None or child.k is None else (r.n - r.k, r.k - child.k, child.k)
                self.observations.append(
                    Observation(
                        f"row{r.line}_{child.line}",
                        (r.line, child.line),
                        "multinomial",
                        r.n,
                        counts,
                        ("none", "below", "reached"),
                    )
                )
            elif r.endpoint == "response":
                cells = (r.n_cr, r.n_pr, r.n_sd, r.n_pd)
                counts = None if any(c is None for c in cells) else tuple(int(c) for c in cells)
                self.observations.append(
                    Observation(f"row{r.line}", (r.line,), "multinomial", r.n, counts, ("n_cr", "n_pr", "n_sd", "n_pd"))
                )
            else:
                self.observations.append(
                    Observation(f"row{r.line}", (r.line,), "binomial", r.n, None if r.k is None else (r.k,), ("k",))
                )
        self.rows = rows
        self._check_targets()

    def _target(self, line: int, genotype: str, quantity: str) -> int:
        """Index of a target in the emulator (ValueError if the row has no such genotype or quantity)."""
        key = self._keys.get((line, genotype, quantity))
        if key is None:
            raise ValueError((line, genotype, quantity))
        return self.emulator.index(key)

    def _check_targets(self) -> None:
        self._keys = target_keys(self.table)
        known = set(self.emulator.keys)
        for (line, genotype, quantity), key in self._keys.items():
            if key not in known:
                raise InputError(
                    self.table.path,
                    "rows",
                    "arms the emulator was trained on (train it again with this table: raisim calibrate)",
                    row=line,
                    got=f"{genotype} {quantity}",
                )

    # -- probabilities -------------------------------------------------------

    def genotype_weights(self, row: TrialRow, share_braf, share_ras):
        """Fraction of the row's patients of each genotype (jax, differentiable in the shares)."""
        fixed, wt, any_ = _composition(row)
        ras_of_wt = jnp.clip(share_ras / (1.0 - share_braf), EPS, 1.0 - EPS)
        w = (
            jnp.asarray(fixed)
            + wt * jnp.stack([0.0, ras_of_wt, 1.0 - ras_of_wt])
            + any_ * jnp.stack([share_braf, share_ras, jnp.maximum(1.0 - share_braf - share_ras, EPS)])
        )
        return w / jnp.sum(w)

    def probabilities(self, params: dict, trial_effect: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Probability vector, in [0, 1], of every observation (``row…`` name → probs over its counts).

        ``params`` as in :func:`raisim.calibration.fit.posterior_params`; ``trial_effect``: logit units."""
        logits = self.emulator.logits(params["z"])
        hazard = jnp.exp(params["log_hazard"])
        out = {}
        for ob in self.observations:
            row = self.rows[ob.lines[0]]
            w = self.genotype_weights(row, params["share_BRAF_V600E"], params["share_RAS"])
            b = trial_effect[row.trial]
            if row.endpoint == "grade3_ae":
                p = self._p_grade3(row, hazard)
                out[ob.name] = jnp.stack([jnp.sum(w * p)])
                continue
            per_g = []
            for g in GENOTYPES:
                if row.endpoint == "response":
                    try:
                        lp = [
                            logits[self._target(row.line, g, q)] for q in ("pd", "sd_given_not_pd", "pr_given_cr_or_pr")
                        ]
                    except ValueError:
                        per_g.append(jnp.full(4, 0.25))  # genotype absent from the row (weight 0)
                        continue
                    per_g.append(categories(*[jax.nn.sigmoid(x) for x in lp]))
                elif ob.kind == "multinomial":  # nested uptake pair
                    try:
                        inc = jax.nn.sigmoid(logits[self._target(row.line, g, "readout")] + b)
                        q = jax.nn.sigmoid(logits[self._target(ob.lines[1], g, "dosimetry_given_increase")] + b)
                    except ValueError:
                        per_g.append(jnp.full(3, 1.0 / 3.0))
                        continue
                    per_g.append(jnp.stack([1.0 - inc, inc * (1.0 - q), inc * q]))
                else:
                    try:
                        p = jax.nn.sigmoid(logits[self._target(row.line, g, "readout")] + b)
                    except ValueError:
                        per_g.append(jnp.full(1, 0.5))
                        continue
                    per_g.append(jnp.stack([p]))
            probs = jnp.sum(w[:, None] * jnp.stack(per_g), axis=0)
            out[ob.name] = jnp.clip(probs, EPS, 1.0 - EPS)
        return out

    def _p_grade3(self, row: TrialRow, hazard) -> jax.Array:
        """P(grade ≥ 3 AE) per genotype over the arm's days on TKI (days 1..tki_stop_day, default 28)."""
        days = float(row.tki_stop_day or 28)
        out = []
        for g in GENOTYPES:
            mask = jnp.asarray(
                [any(it.drug == d and it.applies_to(g) for it in row.regimen) for d in self.drugs], float
            )
            out.append(p_grade3(hazard, mask * days))
        return jnp.clip(jnp.stack(out), EPS, 1.0 - EPS)

    # -- priors ----------------------------------------------------------------

    def hazard_prior(self) -> tuple[np.ndarray, np.ndarray]:
        """(ln median, ln gsd) of each drug's grade ≥ 3 hazard prior (toxicity card; median in 1/day)."""
        card = load_card("biology/toxicity.yaml").parameters
        pri = [card[f"hazard_per_day_{d}"].prior for d in self.drugs]
        return np.array([math.log(p.median) for p in pri]), np.array([math.log(p.gsd) for p in pri])


def numpyro_model(lik: TableLikelihood, observed: bool = True) -> None:
    """The calibration model (see the module docstring); ``observed=False`` samples every count."""
    space = lik.emulator.parameters
    z = numpyro.sample(
        "z",
        dist.TruncatedNormal(
            jnp.zeros(len(space)),
            1.0,
            low=jnp.asarray([p.z_low for p in space]),
            high=jnp.asarray([p.z_high for p in space]),
        ).to_event(1),
    )
    loc, scale = lik.hazard_prior()
    log_hazard = numpyro.sample("log_hazard", dist.Normal(jnp.asarray(loc), jnp.asarray(scale)).to_event(1))
    pop = load_card("biology/population.yaml").parameters
    share_braf = numpyro.sample(
        "share_BRAF_V600E", dist.Beta(pop["share_BRAF_V600E"].prior.a, pop["share_BRAF_V600E"].prior.b)
    )
    share_ras = numpyro.sample("share_RAS", dist.Beta(pop["share_RAS"].prior.a, pop["share_RAS"].prior.b))
    tau_prior = load_card("calibration/between_trial.yaml").parameters["logit_sd"].prior
    tau = numpyro.sample("logit_sd", dist.LogNormal(math.log(tau_prior.median), math.log(tau_prior.gsd)))
    u = numpyro.sample("trial_effect", dist.Normal(jnp.zeros(len(lik.trials)), 1.0).to_event(1))
    for i, p in enumerate(space):
        numpyro.deterministic(p.name, p.value(z[i]))
    for i, d in enumerate(lik.drugs):
        numpyro.deterministic(f"biology/toxicity.yaml:hazard_per_day_{d}", jnp.exp(log_hazard[i]))
    params = {"z": z, "log_hazard": log_hazard, "share_BRAF_V600E": share_braf, "share_RAS": share_ras}
    probs = lik.probabilities(params, {t: tau * u[i] for i, t in enumerate(lik.trials)})
    if lik.facts is not None:  # biology facts as soft constraints (raisim.calibration.facts)
        logit = lik.facts.logits(z[lik.fact_columns])
        for i, name in enumerate(lik.facts.keys):
            numpyro.deterministic(f"fact:{name}", jax.nn.sigmoid(logit[i]))  # P(constraint satisfied)
            if observed:
                numpyro.factor(f"fact_{name}", jax.nn.log_sigmoid(logit[i]))
    for ob in lik.observations:
        obs = (
            None
            if (not observed or ob.counts is None)
            else jnp.asarray(ob.counts if ob.kind == "multinomial" else ob.counts[0])
        )
        if ob.kind == "binomial":
            numpyro.sample(ob.name, dist.Binomial(ob.n, probs[ob.name][0]), obs=obs)
        else:
            numpyro.sample(ob.name, dist.Multinomial(ob.n, probs[ob.name]), obs=obs)


__all__ = ["Observation", "TableLikelihood", "numpyro_model"]
