"""Biology facts as calibration pseudo-observations (``models/calibration/facts.yaml``).

Trial counts alone can move the pathway parameters to places that contradict what is
known of the biology: fitted to the counts only, the posterior put the membrane-NIS peak
of BRAF V600E on dabrafenib + trametinib at day ~5 with barely any induction. So each
fact of the card enters the likelihood as a soft constraint, P(ratio > value) =
Φ((ratio − value) / sd), on a log ratio of the typical BRAF V600E patient's membrane NIS
on dabrafenib + trametinib (days 1–42, no TSH stimulation): rising from day 6 to day 8,
falling from day 12 to day 14 (the peak lies in days 8–12) and, by day 28, below 0.85 ×
the day-10 level (the escape). Log ratios are smooth in the parameters where the peak
day is not (it jumps between an early, a mid-course and an end-of-course peak).

Each constraint's probability is emulated like the arm probabilities: typical-patient
simulations at Sobol points of the fitted parameters (:func:`simulate_facts`), each
point's soft label Φ((ratio − value) / sd), and the same network as the arm emulator
(:func:`raisim.calibration.emulator.fit_emulator`), so the likelihood term is log P(satisfied | z).
(A quadratic regression of the ratios themselves, tried first, had held-out errors of
0.04–0.19 against thresholds of 0–0.16, too loose to constrain anything.)
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from scipy.stats import norm

from ..io.cards import load_card
from ..io.model_identity import MANIFEST_KEY, model_sha256
from ..io.parameter_draws import overrides_from_values
from ..io.store import atomic_write_bytes
from ..protocol.scenarios import tki_only_protocol
from .emulator import ArmEmulator, Design, FittedParameter, design_points, fit_emulator, values_of

FACTS_CARD = "calibration/facts.yaml"
DAY = 24.0


#: (numerator day, denominator day) of each fact's log ratio, by card name
RATIO_DAYS = {
    "nis_log_ratio_day8_over_day6": (8.0, 6.0),
    "nis_log_ratio_day12_over_day14": (12.0, 14.0),
    "nis_log_ratio_day10_over_day28": (10.0, 28.0),
}


def nis_curve(overrides: dict) -> tuple[np.ndarray, np.ndarray]:
    """(study day, membrane NIS fold) of the typical BRAF V600E patient on dabrafenib + trametinib, days 1–42.

    The patient takes the whole course (no grade ≥ 3 AE): the facts are about the pathway's time
    course on drug, not about who stops early.
    """
    from ..biology.toxicity import without_adverse_events
    from ..engine.simulate import simulate

    p = tki_only_protocol("BRAF_V600E", "dabrafenib+trametinib", 42, tsh="none")
    tc = simulate(p, seed=0, overrides=without_adverse_events(overrides), parameters="typical").timecourse
    nis = tc[(tc["quantity"] == "membrane_nis") & (tc["lesion"] == "")]
    return nis["time_h"].to_numpy() / DAY + 1.0, nis["value"].to_numpy()


def nis_log_ratios(overrides: dict) -> list[float]:
    """The facts' log ratios ln(NIS day a / NIS day b), dimensionless, in card order, for one set of
    overrides (card units)."""
    day, nis = nis_curve(overrides)
    at = lambda d: float(np.interp(d, day, nis))  # noqa: E731
    return [float(np.log(at(a) / at(b))) for a, b in (RATIO_DAYS[n] for n in fact_observations())]


def fact_observations() -> dict[str, tuple[float, float]]:
    """``{fact: (threshold, softness SD)}`` from the facts card, both in ln-ratio units (dimensionless)."""
    card = load_card(FACTS_CARD).parameters
    return {k: (e.prior.mean, e.prior.sd) for k, e in card.items()}


def simulate_facts(space: list[FittedParameter], n: int, seed: int, cache: Path | None = None, progress=None):
    """(z, values) of every fact at ``n`` Sobol points (seed offset from the arm design's); ``z`` normal
    scores, ``values`` ln ratios (both dimensionless); cached in ``cache``.

    A cache made with fewer points of the same sequence is extended, not recomputed (Sobol
    prefixes agree: the first m of n points are the m points); one made by another model
    (:func:`~raisim.io.model_identity.model_sha256`) is recomputed."""
    z = design_points(space, n, seed + 1000)
    model = model_sha256()
    done = np.zeros((0, len(fact_observations())))
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as f:
            m = min(len(f["z"]), n)
            if (
                f["z"].shape[1] == z.shape[1]
                and np.array_equal(f["z"][:m], z[:m])
                and f["values"].shape[1] == done.shape[1]
                and "model" in f.files
                and str(f["model"]) == model
            ):
                done = f["values"][:m]
    values = list(done)
    for i, zi in enumerate(z[len(done) :]):
        values.append(nis_log_ratios(overrides_from_values(values_of(space, zi))))
        if progress is not None:
            progress()
        if cache is not None and (i + 1) % 256 == 0:  # an interrupted run keeps what it simulated
            _save_cache(cache, z[: len(values)], np.asarray(values), model)
    values = np.asarray(values)
    if cache is not None and len(values) > len(done):
        _save_cache(cache, z, values, model)
    return z, values


def _save_cache(cache: Path, z: np.ndarray, values: np.ndarray, model: str) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, z=z, values=values, model=np.asarray(model))
    atomic_write_bytes(cache, buf.getvalue())


def facts_signature(points: int) -> dict:
    """What a fitted fact emulator depends on besides the parameter space: the design size and
    each fact's threshold and softness SD (stored in its metadata; a change forces a refit)."""
    return {"points": int(points), "constraints": {k: list(v) for k, v in fact_observations().items()}}


def relevant_parameters(space: list[FittedParameter], step: float = 1.0) -> list[int]:
    """Indices of the parameters that move the facts' ratios at all (one-at-a-time steps of
    ±``step`` in z from the cards' values). The typical patient's TKI-only NIS curve does not
    depend on, e.g., iodine retention or radiosensitivity, and an emulator fed only the
    parameters that matter learns the constraint boundary from far fewer simulations."""
    base = np.asarray(nis_log_ratios({}))
    keep = []
    for i in range(len(space)):
        for s in (-step, step):
            zi = np.zeros(len(space))
            zi[i] = float(np.clip(s, space[i].z_low, space[i].z_high))
            if np.max(np.abs(np.asarray(nis_log_ratios(overrides_from_values(values_of(space, zi)))) - base)) > 1e-9:
                keep.append(i)
                break
    return keep


def fit_facts(
    z: np.ndarray, values: np.ndarray, space: list[FittedParameter], columns: list[int] | None = None
) -> ArmEmulator:
    """P(fact satisfied), in [0, 1], as an :class:`ArmEmulator` (one output per fact, card order).

    ``columns``: the parameters (indices into ``space``) the emulator takes as input, default
    all; the emulator's ``parameters`` are those, so the likelihood selects them by name."""
    cols = list(range(len(space))) if columns is None else list(columns)
    obs = fact_observations()
    thr = np.array([obs[n][0] for n in obs])
    sd = np.array([obs[n][1] for n in obs])
    y = norm.cdf((values - thr) / sd).T  # (facts, points): soft labels
    sub = [space[i] for i in cols]
    # held-out check: fit on 80 % of the points, classify the other 20 % (satisfied or not)
    held = np.random.default_rng(7).random(len(z)) < 0.2
    trial = fit_emulator(Design(z[~held][:, cols], list(obs), y[:, ~held], np.ones_like(y[:, ~held])), sub)
    p = np.asarray(trial.probabilities(z[held][:, cols])).T
    accuracy = ((p > 0.5) == (values[held] > thr).T).mean(axis=1)
    meta = {
        "space": [p.name for p in space],
        "facts": facts_signature(len(z)),
        MANIFEST_KEY: model_sha256(),
        "holdout_points": int(held.sum()),
        "holdout_accuracy": {n: float(a) for n, a in zip(obs, accuracy, strict=True)},
        "holdout_mean_abs_error": {n: float(e) for n, e in zip(obs, np.abs(p - y[:, held]).mean(axis=1), strict=True)},
    }
    return fit_emulator(Design(z[:, cols], list(obs), y, np.ones_like(y)), sub, meta)


__all__ = [
    "fact_observations",
    "facts_signature",
    "fit_facts",
    "relevant_parameters",
    "nis_curve",
    "nis_log_ratios",
    "simulate_facts",
]
