"""An emulator of the arm-level probabilities, so that NUTS can afford the likelihood.

The full chain costs ~1/20 s per virtual patient and protocol on the 2-core
CPU (BENCHMARKS.md); NUTS needs ~10⁵ likelihood gradients over ~30 arms. So
the likelihood reads every arm-level probability (:mod:`raisim.targets`)
from a regression fitted to simulations instead:

1. **Design.** Each of N virtual patients gets its own draw of the fitted
   population parameters, a scrambled Sobol point in the priors' normal-score
   space ``z`` (a lognormal parameter is ``median · gsd^z``), spread a little
   wider than the prior (sd 1.25) and truncated at ±3 (and at the card's
   bounds). Every patient goes through every arm (common random numbers
   across arms).
2. **Fit.** Per target, a logistic regression of the per-patient ``y`` on a
   full quadratic in ``z``, weighted by ``w`` (soft labels: ``y`` may be a
   probability). Because each patient has its own ``z``, the regression
   averages over patient variability and parameters at once: its value at
   ``z`` estimates the cohort mean the full model gives for that population
   draw.
3. **Validation** (:func:`validate`). For held-out population draws, the
   full model on a fixed cohort (the arm probabilities ``raisim predict``
   uses) against the emulator, with the Monte-Carlo standard error of the
   cohort mean beside each error.

The emulator is smooth and deterministic in ``z``, so the likelihood is too.
Units: none (probabilities); ``z`` is dimensionless.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float
from scipy.optimize import minimize
from scipy.stats import norm, qmc

from .cohort import sample_cohort
from .params import load_card
from .targets import arm_probabilities, patient_pairs, simulate_runs, table_targets
from .trials import TrialsTable
from .uncertainty import check_parameter, overrides_from_values

Z_LIMIT = 3.0  # the fit's priors and the design are truncated at ±3 prior sd
DESIGN_SD = 1.25  # design points spread this much wider than the prior
RIDGE = 1e-3  # L2 penalty on the non-intercept coefficients (per unit of mean log loss)


@dataclass(frozen=True)
class FittedParameter:
    """A parameter the calibration fits, in its prior's normal-score space.

    ``value(z) = exp(loc + scale·z)`` for a lognormal prior (loc = ln median,
    scale = ln gsd), ``loc + scale·z`` for a normal prior; ``z`` is bounded to
    ``[z_low, z_high]`` (±3 and the card's bounds).
    """

    name: str
    loc: float
    scale: float
    log: bool
    z_low: float
    z_high: float

    def value(self, z):
        return jnp.exp(self.loc + self.scale * z) if self.log else self.loc + self.scale * z

    def z_of(self, value: float) -> float:
        return ((math.log(value) if self.log else value) - self.loc) / self.scale


def parameter_space(names: list[str], source: str = "<calibration>") -> list[FittedParameter]:
    """The named ``card:parameter`` entries as :class:`FittedParameter` (lognormal or normal priors only)."""
    from .errors import InputError

    space = []
    for name in names:
        card, key = check_parameter(name, source, "parameters")
        prior = load_card(card).parameters[key].prior
        if prior.dist == "lognormal":
            loc, scale, log = math.log(prior.median), math.log(prior.gsd), True
        elif prior.dist == "normal":
            loc, scale, log = prior.mean, prior.sd, False
        else:
            raise InputError(source, "parameters", "parameters with a lognormal or normal prior", got=name)
        lo, hi = -Z_LIMIT, Z_LIMIT
        to_z = (lambda b, c=loc, k=scale: (math.log(b) - c) / k) if log else (lambda b, c=loc, k=scale: (b - c) / k)
        if prior.lower is not None:
            lo = max(lo, to_z(prior.lower))
        if prior.upper is not None:
            hi = min(hi, to_z(prior.upper))
        space.append(FittedParameter(name, loc, scale, log, lo, hi))
    return space


def values_of(space: list[FittedParameter], z: np.ndarray) -> dict[str, float]:
    """``{card:name: value}`` of one point ``z`` (shape (D,))."""
    return {p.name: float(p.value(z[i])) for i, p in enumerate(space)}


def design_points(space: list[FittedParameter], n: int, seed: int) -> np.ndarray:
    """``n`` scrambled Sobol points in ``z`` (shape (n, D)), normal with sd DESIGN_SD, truncated to the bounds."""
    u = qmc.Sobol(len(space), scramble=True, seed=seed).random(n)
    lo = np.array([norm.cdf(p.z_low / DESIGN_SD) for p in space])
    hi = np.array([norm.cdf(p.z_high / DESIGN_SD) for p in space])
    return DESIGN_SD * norm.ppf(lo + u * (hi - lo))


def quadratic_features(z: Float[Array, "... d"]) -> Float[Array, "... f"]:
    """[1, z_i, z_i·z_j (i ≤ j)]: 1 + D + D(D+1)/2 features."""
    d = z.shape[-1]
    i, j = np.triu_indices(d)
    return jnp.concatenate([jnp.ones((*z.shape[:-1], 1)), z, z[..., i] * z[..., j]], axis=-1)


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Coefficients of a weighted soft-label logistic regression (mean log loss + ridge on non-intercepts)."""
    w = w / max(w.sum(), 1e-300)
    pen = np.full(x.shape[1], ridge)
    pen[0] = 0.0
    mean = float(np.clip(np.sum(w * y), 1e-4, 1 - 1e-4))

    def loss(b):
        eta = x @ b
        # log(1+e^eta) − y·eta, stable
        value = np.sum(w * (np.logaddexp(0.0, eta) - y * eta)) + np.sum(pen * b * b)
        grad = x.T @ (w * (1.0 / (1.0 + np.exp(-eta)) - y)) + 2.0 * pen * b
        return value, grad

    b0 = np.zeros(x.shape[1])
    b0[0] = math.log(mean / (1 - mean))
    res = minimize(loss, b0, jac=True, method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-10})
    return res.x


class ArmEmulator(eqx.Module):
    """Logit of every target's arm-level probability as a quadratic in ``z`` (see the module).

    Attributes:
        keys: target keys (:attr:`raisim.targets.Target.key`), one per row of ``coef``.
        parameters: the fitted parameters, in the order of ``z``.
        coef: (targets, features) coefficients of :func:`quadratic_features`.
    """

    keys: tuple[str, ...] = eqx.field(static=True)
    parameters: tuple[FittedParameter, ...] = eqx.field(static=True)
    coef: Float[Array, "targets features"]
    meta: dict = eqx.field(static=True, default_factory=dict)

    def logits(self, z: Float[Array, " d"]) -> Float[Array, " targets"]:
        return self.coef @ quadratic_features(z)

    def probabilities(self, z: Float[Array, " d"]) -> Float[Array, " targets"]:
        return jax.nn.sigmoid(self.logits(z))

    def index(self, key: str) -> int:
        return self.keys.index(key)

    def save(self, path: str | Path) -> None:
        """``.npz`` with the coefficients, target keys, parameter space and metadata."""
        space = [p.__dict__ for p in self.parameters]
        np.savez_compressed(
            path,
            coef=np.asarray(self.coef),
            keys=np.array(self.keys),
            space=json.dumps(space),
            meta=json.dumps(self.meta),
        )

    @classmethod
    def load(cls, path: str | Path) -> ArmEmulator:
        from .errors import InputError

        try:
            with np.load(path, allow_pickle=False) as f:
                coef, keys = f["coef"], tuple(str(k) for k in f["keys"])
                space = tuple(FittedParameter(**p) for p in json.loads(str(f["space"])))
                meta = json.loads(str(f["meta"]))
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(path, "emulator", f"an emulator .npz written by raisim calibrate ({exc})") from None
        return cls(keys, space, jnp.asarray(coef), meta)


@dataclass
class Design:
    """Per-patient training pairs: ``z`` (N, D); ``y`` and ``w`` (targets, N)."""

    z: np.ndarray
    keys: list[str]
    y: np.ndarray
    w: np.ndarray

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, z=self.z, keys=np.array(self.keys), y=self.y, w=self.w)

    @classmethod
    def load(cls, path: str | Path) -> Design:
        with np.load(path, allow_pickle=False) as f:
            return cls(f["z"], [str(k) for k in f["keys"]], f["y"], f["w"])


def simulate_design(
    table: TrialsTable,
    space: list[FittedParameter],
    patients: int,
    seed: int,
    *,
    max_lesions: int = 5,
    progress=None,
) -> Design:
    """Run every arm of ``table`` for ``patients`` virtual patients, each with its own design point."""
    targets, runs = table_targets(table)
    z = design_points(space, patients, seed)
    cohort = sample_cohort(patients, seed, max_lesions=max_lesions)
    per_patient = [overrides_from_values(values_of(space, zi)) for zi in z]
    outs = simulate_runs(runs, cohort, patient_overrides=per_patient, progress=progress)
    unique = list({t.key: t for t in targets}.values())  # rows with the same design share a target
    pairs = [patient_pairs(t, outs, table) for t in unique]
    return Design(z, [t.key for t in unique], np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))


def fit_emulator(design: Design, space: list[FittedParameter], meta: dict | None = None) -> ArmEmulator:
    """One weighted logistic regression per target (:func:`fit_logistic`)."""
    x = np.asarray(quadratic_features(jnp.asarray(design.z)))
    coef = np.stack([fit_logistic(x, design.y[t], design.w[t]) for t in range(len(design.keys))])
    return ArmEmulator(tuple(design.keys), tuple(space), jnp.asarray(coef), dict(meta or {}))


def validate(
    emulator: ArmEmulator,
    table: TrialsTable,
    z_draws: np.ndarray,
    patients: int,
    seed: int,
    *,
    max_lesions: int = 5,
    progress=None,
) -> pd.DataFrame:
    """Full model (fixed cohort, one population draw at a time) against the emulator, per draw and target.

    Columns: ``draw, target`` (row:genotype:quantity), ``key, full, emulator, error, mc_se`` (``mc_se``: the
    standard error of the full model's weighted cohort mean).
    """
    targets, runs = table_targets(table)
    targets = [t for t in targets if t.key in emulator.keys]
    cohort = sample_cohort(patients, seed, max_lesions=max_lesions)
    rows = []
    for d, z in enumerate(z_draws):
        ov = overrides_from_values(values_of(list(emulator.parameters), z))
        outs = simulate_runs(runs, cohort, overrides=ov, progress=progress)
        full = arm_probabilities(table, outs, targets)
        emu = np.asarray(emulator.probabilities(jnp.asarray(z)))
        for t in targets:
            y, w = patient_pairs(t, outs, table)
            rows.append(
                {
                    "draw": d,
                    "target": t.label,
                    "key": t.key,
                    "full": full[t.label],
                    "emulator": float(emu[emulator.index(t.key)]),
                    "mc_se": _weighted_se(y, w),
                }
            )
    frame = pd.DataFrame(rows)
    frame["error"] = frame["emulator"] - frame["full"]
    return frame


def _weighted_se(y: np.ndarray, w: np.ndarray) -> float:
    """Standard error of Σwy/Σw over patients (ratio estimator, delta method)."""
    if w.sum() <= 0:
        return math.nan
    m = np.sum(w * y) / np.sum(w)
    n = len(y)
    return float(math.sqrt(np.sum((w * (y - m)) ** 2)) / np.sum(w) * math.sqrt(n / max(n - 1, 1)))


def table_hash(table: TrialsTable) -> str:
    """Hash of a trials table's rows (what an emulator was trained on)."""
    return hashlib.sha256(table.to_frame().to_csv().encode()).hexdigest()[:16]


__all__ = [
    "ArmEmulator",
    "Design",
    "FittedParameter",
    "design_points",
    "fit_emulator",
    "fit_logistic",
    "parameter_space",
    "quadratic_features",
    "simulate_design",
    "table_hash",
    "validate",
    "values_of",
]
