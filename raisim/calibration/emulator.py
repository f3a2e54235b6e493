"""An emulator of the arm-level probabilities, so that NUTS can afford the likelihood.

The full chain costs ~1/20 s per virtual patient and protocol on the 2-core
CPU (BENCHMARKS.md); NUTS needs ~10⁵ likelihood gradients over ~30 arms. So
the likelihood reads every arm-level probability (:mod:`raisim.calibration.targets`)
from a regression fitted to simulations instead:

1. **Design.** Each of N virtual patients gets its own draw of the fitted
   population parameters, a scrambled Sobol point in the priors' normal-score
   space ``z`` (a lognormal parameter is ``median · gsd^z``), spread a little
   wider than the prior (sd 1.25) and truncated at ±3 (and at the card's
   bounds). Every patient goes through every arm (common random numbers
   across arms).
2. **Fit.** One small neural network for all targets (``z`` → 64 tanh units →
   one logit per target, plus a linear term in ``z``), trained by L-BFGS on
   the weighted cross-entropy of the per-patient ``y`` (soft labels: ``y`` may
   be a probability) with an L2 penalty chosen on held-out patients. Because
   each patient has its own ``z``, the regression averages over patient
   variability and parameters at once: its value at ``z`` estimates the cohort
   mean the full model gives for that population draw. (A quadratic logistic
   regression per target, tried first, missed the response arms by up to 0.8:
   the dose → control relation is exponential in the log-parameters.)
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

from ..engine.cohort import sample_cohort
from ..io.cards import load_card
from ..io.model_identity import model_sha256
from ..io.parameter_draws import check_parameter, overrides_from_values
from ..io.trials import TrialsTable
from .targets import arm_probabilities, patient_pairs, simulate_runs, table_targets

Z_LIMIT = 3.0  # the fit's priors and the design are truncated at ±3 prior sd
DESIGN_SD = 1.25  # design points spread this much wider than the prior


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
        """The parameter's value at normal score ``z`` (dimensionless), in its card's unit."""
        return jnp.exp(self.loc + self.scale * z) if self.log else self.loc + self.scale * z

    def z_of(self, value: float) -> float:
        """Normal score (dimensionless) of ``value``, given in the card's unit."""
        return ((math.log(value) if self.log else value) - self.loc) / self.scale


def parameter_space(names: list[str], source: str = "<calibration>") -> list[FittedParameter]:
    """The named ``card:parameter`` entries as :class:`FittedParameter` (lognormal or normal priors only)."""
    from ..io.errors import InputError

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
    """``{card:name: value}`` (each in its card's unit) of one point ``z`` (normal scores, shape (D,))."""
    return {p.name: float(p.value(z[i])) for i, p in enumerate(space)}


def design_points(space: list[FittedParameter], n: int, seed: int) -> np.ndarray:
    """``n`` scrambled Sobol points in ``z`` (shape (n, D)), normal with sd DESIGN_SD, truncated to the bounds."""
    u = qmc.Sobol(len(space), scramble=True, seed=seed).random(2 ** max(0, math.ceil(math.log2(max(n, 1)))))[:n]
    lo = np.array([norm.cdf(p.z_low / DESIGN_SD) for p in space])
    hi = np.array([norm.cdf(p.z_high / DESIGN_SD) for p in space])
    return DESIGN_SD * norm.ppf(lo + u * (hi - lo))


HIDDEN = 64  # tanh units
PENALTIES = (1e-3, 1e-2, 3e-2, 1e-1)  # L2 penalties tried (per unit of mean cross-entropy)
HOLDOUT = 0.2  # share of design patients held out to choose the penalty


class ArmEmulator(eqx.Module):
    """Logit of every target's arm-level probability as a function of ``z`` (see the module).

    ``logits(z) = w2 · tanh(w1 · z + b1) + b2 + lin · z``.

    Attributes:
        keys: target keys (:attr:`raisim.calibration.targets.Target.key`), one per output.
        parameters: the fitted parameters, in the order of ``z``.
    """

    keys: tuple[str, ...] = eqx.field(static=True)
    parameters: tuple[FittedParameter, ...] = eqx.field(static=True)
    w1: Float[Array, "hidden d"]
    b1: Float[Array, " hidden"]
    w2: Float[Array, "targets hidden"]
    b2: Float[Array, " targets"]
    lin: Float[Array, "targets d"]
    meta: dict = eqx.field(static=True, default_factory=dict)

    def logits(self, z: Float[Array, "... d"]) -> Float[Array, "... targets"]:
        """Logit of each target's arm-level probability at ``z`` (normal scores, dimensionless)."""
        h = jnp.tanh(z @ self.w1.T + self.b1)
        return h @ self.w2.T + self.b2 + z @ self.lin.T

    def probabilities(self, z: Float[Array, "... d"]) -> Float[Array, "... targets"]:
        """Each target's arm-level probability, in [0, 1], at ``z``."""
        return jax.nn.sigmoid(self.logits(z))

    def index(self, key: str) -> int:
        """Output position of target ``key``."""
        return self.keys.index(key)

    def save(self, path: str | Path) -> None:
        """``.npz`` with the weights, target keys, parameter space and metadata."""
        space = [p.__dict__ for p in self.parameters]
        arrays = {k: np.asarray(getattr(self, k)) for k in ("w1", "b1", "w2", "b2", "lin")}
        np.savez_compressed(
            path, keys=np.array(self.keys), space=json.dumps(space), meta=json.dumps(self.meta), **arrays
        )

    @classmethod
    def load(cls, path: str | Path) -> ArmEmulator:
        """Read an emulator ``.npz`` written by :meth:`save` (one-line InputError if unreadable)."""
        from ..io.errors import InputError

        try:
            with np.load(path, allow_pickle=False) as f:
                keys = tuple(str(k) for k in f["keys"])
                space = tuple(FittedParameter(**p) for p in json.loads(str(f["space"])))
                meta = json.loads(str(f["meta"]))
                arrays = {k: jnp.asarray(f[k]) for k in ("w1", "b1", "w2", "b2", "lin")}
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise InputError(path, "emulator", f"an emulator .npz written by raisim calibrate ({exc})") from None
        return cls(keys, space, meta=meta, **arrays)


def _unflatten(theta, d: int, t: int, hidden: int) -> dict:
    sizes = {"w1": (hidden, d), "b1": (hidden,), "w2": (t, hidden), "b2": (t,), "lin": (t, d)}
    out, i = {}, 0
    for k, shape in sizes.items():
        n = int(np.prod(shape))
        out[k] = theta[i : i + n].reshape(shape)
        i += n
    return out


def _train(z, y, w, penalty: float, seed: int, hidden: int = HIDDEN, init=None) -> tuple[np.ndarray, float]:
    """L-BFGS on the weighted mean cross-entropy per target (+ L2 on w1, w2, lin); returns (theta, loss)."""
    d, t = z.shape[1], y.shape[0]
    wsum = np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    wn = jnp.asarray(w / wsum)  # each target's weights sum to 1: every target counts the same
    zj, yj = jnp.asarray(z), jnp.asarray(y)

    def loss(theta):
        p = _unflatten(theta, d, t, hidden)
        h = jnp.tanh(zj @ p["w1"].T + p["b1"])
        eta = (h @ p["w2"].T + p["b2"] + zj @ p["lin"].T).T  # (targets, patients)
        ce = jnp.sum(wn * (jnp.logaddexp(0.0, eta) - yj * eta)) / t
        reg = jnp.sum(p["w1"] ** 2) + jnp.sum(p["w2"] ** 2) + jnp.sum(p["lin"] ** 2)
        return ce + penalty * reg / t

    value_grad = jax.jit(jax.value_and_grad(loss))
    if init is None:
        rng = np.random.default_rng(seed)
        mean = np.clip((w * y).sum(axis=1) / wsum[:, 0], 1e-3, 1 - 1e-3)
        init = np.concatenate(
            [
                rng.normal(0.0, 1.0 / math.sqrt(d), hidden * d),
                rng.normal(0.0, 0.5, hidden),
                rng.normal(0.0, 0.1, t * hidden),
                np.log(mean / (1 - mean)),
                np.zeros(t * d),
            ]
        )

    def f(theta):
        v, g = value_grad(jnp.asarray(theta))
        return float(v), np.asarray(g, dtype=float)

    res = minimize(f, init, jac=True, method="L-BFGS-B", options={"maxiter": 4000, "gtol": 1e-9})
    return res.x, float(res.fun)


def _cross_entropy(theta, z, y, w, hidden: int = HIDDEN) -> float:
    p = _unflatten(jnp.asarray(theta), z.shape[1], y.shape[0], hidden)
    eta = np.asarray((jnp.tanh(z @ p["w1"].T + p["b1"]) @ p["w2"].T + p["b2"] + z @ p["lin"].T).T)
    wn = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return float(np.sum(wn * (np.logaddexp(0.0, eta) - y * eta)) / y.shape[0])


@dataclass
class Design:
    """Per-patient training pairs: ``z`` (N, D), normal scores; ``y`` (targets, N), the patient's
    probability or 0/1 outcome; ``w`` (targets, N), its weight in [0, 1] (e.g. P(selected));
    ``model``: the :func:`~raisim.io.model_identity.model_sha256` of the model that simulated them
    (empty when unknown: a block saved before designs recorded it)."""

    z: np.ndarray
    keys: list[str]
    y: np.ndarray
    w: np.ndarray
    model: str = ""

    def save(self, path: str | Path) -> None:
        """Write ``z``, ``keys``, ``y``, ``w`` and ``model`` to an ``.npz``."""
        np.savez_compressed(path, z=self.z, keys=np.array(self.keys), y=self.y, w=self.w, model=np.asarray(self.model))

    @classmethod
    def load(cls, path: str | Path) -> Design:
        """Read a design ``.npz`` written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as f:
            model = str(f["model"]) if "model" in f.files else ""
            return cls(f["z"], [str(k) for k in f["keys"]], f["y"], f["w"], model)

    def concat(self, other: Design) -> Design:
        """This design's patients followed by ``other``'s (same targets, same model)."""
        if other.keys != self.keys or other.model != self.model:
            raise ValueError("designs with different targets or of different models")
        return Design(
            np.concatenate([self.z, other.z]),
            self.keys,
            np.concatenate([self.y, other.y], axis=1),
            np.concatenate([self.w, other.w], axis=1),
            self.model,
        )


DESIGN_BLOCK = 512  # patients per design block (each block is simulated, saved and reused on its own)


def simulate_design(
    table: TrialsTable,
    space: list[FittedParameter],
    patients: int,
    seed: int,
    *,
    max_lesions: int = 5,
    cache_dir: str | Path | None = None,
    progress=None,
    points: np.ndarray | None = None,
    first_patient: int = 0,
    block_name: str = "design_block",
) -> Design:
    """Run every arm of ``table`` for ``patients`` virtual patients, each with its own design point.

    Patients are simulated in blocks of :data:`DESIGN_BLOCK`; with ``cache_dir`` each block is
    saved (``<block_name><b>.npz``) and a later run reuses every block that is exactly the one
    it would simulate (same arms, design points, seed and model). Patient i and its design point are
    the same whatever ``patients`` is, so a larger design reuses a smaller one's blocks.

    ``points`` (shape (patients, D), normal scores) replaces the Sobol points, e.g. posterior
    draws for a refinement round; its virtual patients are numbered from ``first_patient``, so
    they are new patients, not the Sobol design's again.
    """
    targets, runs = table_targets(table)
    unique = list({t.key: t for t in targets}.values())  # rows with the same design share a target
    keys = [t.key for t in unique]
    z = design_points(space, patients, seed) if points is None else np.asarray(points, float)
    model = model_sha256()
    parts = []
    for start in range(0, patients, DESIGN_BLOCK):
        idx = np.arange(start, min(start + DESIGN_BLOCK, patients))
        path = Path(cache_dir) / f"{block_name}{start // DESIGN_BLOCK:03d}.npz" if cache_dir else None
        part = _cached_block(path, keys, z[idx], model)
        if part is None:
            cohort = sample_cohort(idx + first_patient, seed, max_lesions=max_lesions)
            per_patient = [overrides_from_values(values_of(space, zi)) for zi in z[idx]]
            outs = simulate_runs(runs, cohort, patient_overrides=per_patient, progress=progress)
            pairs = [patient_pairs(t, outs, table) for t in unique]
            part = Design(z[idx], keys, np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), model)
            if path is not None:
                part.save(path)
        parts.append(part)
    y = np.concatenate([p.y for p in parts], axis=1)
    return Design(z, keys, y, np.concatenate([p.w for p in parts], axis=1), model)


def _cached_block(path: Path | None, keys: list[str], z: np.ndarray, model: str) -> Design | None:
    if path is None or not path.exists():
        return None
    try:
        part = Design.load(path)
    except (OSError, KeyError, ValueError):
        return None
    same = part.keys == keys and part.model == model and part.z.shape == z.shape
    return part if same and np.array_equal(part.z, z) else None


def fit_emulator(design: Design, space: list[FittedParameter], meta: dict | None = None, seed: int = 0) -> ArmEmulator:
    """Train the network on the design (penalty chosen on held-out patients, then refit on all)."""
    n = design.z.shape[0]
    rng = np.random.default_rng([seed, 5])
    held = np.zeros(n, bool)
    held[rng.choice(n, int(round(HOLDOUT * n)), replace=False)] = True
    scores = {}
    for pen in PENALTIES:
        theta, _ = _train(design.z[~held], design.y[:, ~held], design.w[:, ~held], pen, seed)
        scores[pen] = _cross_entropy(theta, design.z[held], design.y[:, held], design.w[:, held])
    best = min(scores, key=scores.get)
    theta, _ = _train(design.z, design.y, design.w, best, seed)
    p = _unflatten(jnp.asarray(theta), design.z.shape[1], len(design.keys), HIDDEN)
    info = dict(meta or {}) | {"penalty": best, "holdout_cross_entropy": {str(k): v for k, v in scores.items()}}
    return ArmEmulator(tuple(design.keys), tuple(space), meta=info, **p)


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
    """Standard error of Σwy/Σw: the larger of the delta-method (ratio) SE and the binomial SE
    at the effective sample size (Σw)²/Σw², which stays honest when a few patients carry the weight."""
    if w.sum() <= 0:
        return math.nan
    m = np.sum(w * y) / np.sum(w)
    n = len(y)
    delta = math.sqrt(np.sum((w * (y - m)) ** 2)) / np.sum(w) * math.sqrt(n / max(n - 1, 1))
    n_eff = np.sum(w) ** 2 / np.sum(w**2)
    return float(max(delta, math.sqrt(max(m * (1 - m), 1.0 / (4 * n_eff)) / n_eff)))


def table_hash(table: TrialsTable) -> str:
    """Hash of a trials table's rows (what an emulator was trained on)."""
    return hashlib.sha256(table.to_frame().to_csv().encode()).hexdigest()[:16]


__all__ = [
    "ArmEmulator",
    "Design",
    "FittedParameter",
    "design_points",
    "fit_emulator",
    "parameter_space",
    "simulate_design",
    "table_hash",
    "validate",
    "values_of",
]
