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
(:func:`raisim.emulator.fit_emulator`), so the likelihood term is log P(satisfied | z).
(A quadratic regression of the ratios themselves, tried first, had held-out errors of
0.04–0.19 against thresholds of 0–0.16, too loose to constrain anything.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import norm

from .emulator import ArmEmulator, Design, FittedParameter, design_points, fit_emulator, values_of
from .params import load_card
from .scenarios import tki_only_protocol
from .uncertainty import overrides_from_values

FACTS_CARD = "calibration/facts.yaml"
DAY = 24.0


#: (numerator day, denominator day) of each fact's log ratio, by card name
RATIO_DAYS = {
    "nis_log_ratio_day8_over_day6": (8.0, 6.0),
    "nis_log_ratio_day12_over_day14": (12.0, 14.0),
    "nis_log_ratio_day10_over_day28": (10.0, 28.0),
}


def nis_curve(overrides: dict) -> tuple[np.ndarray, np.ndarray]:
    """(study day, membrane NIS fold) of the typical BRAF V600E patient on dabrafenib + trametinib, days 1–42."""
    from .simulate import simulate

    p = tki_only_protocol("BRAF_V600E", "dabrafenib+trametinib", 42, tsh="none")
    tc = simulate(p, seed=0, overrides=overrides).timecourse
    nis = tc[(tc["quantity"] == "membrane_nis") & (tc["lesion"] == "")]
    return nis["time_h"].to_numpy() / DAY + 1.0, nis["value"].to_numpy()


def nis_log_ratios(overrides: dict) -> list[float]:
    """The facts' log ratios (card order) for one set of overrides."""
    day, nis = nis_curve(overrides)
    at = lambda d: float(np.interp(d, day, nis))  # noqa: E731
    return [float(np.log(at(a) / at(b))) for a, b in (RATIO_DAYS[n] for n in fact_observations())]


def fact_observations() -> dict[str, tuple[float, float]]:
    """``{fact: (threshold, softness SD)}`` from the facts card."""
    card = load_card(FACTS_CARD).parameters
    return {k: (e.prior.mean, e.prior.sd) for k, e in card.items()}


def simulate_facts(space: list[FittedParameter], n: int, seed: int, cache: Path | None = None, progress=None):
    """(z, values) of every fact at ``n`` Sobol points (seed offset from the arm design's); cached in ``cache``."""
    z = design_points(space, n, seed + 1000)
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as f:
            if (
                f["z"].shape == z.shape
                and np.array_equal(f["z"], z)
                and f["values"].shape[1] == len(fact_observations())
            ):
                return z, f["values"]
    values = []
    for zi in z:
        values.append(nis_log_ratios(overrides_from_values(values_of(space, zi))))
        if progress is not None:
            progress()
    values = np.asarray(values)
    if cache is not None:
        np.savez_compressed(cache, z=z, values=values)
    return z, values


def fit_facts(z: np.ndarray, values: np.ndarray, space: list[FittedParameter]) -> ArmEmulator:
    """The constraints' probabilities as an :class:`ArmEmulator` (one output per fact, card order)."""
    obs = fact_observations()
    thr = np.array([obs[n][0] for n in obs])
    sd = np.array([obs[n][1] for n in obs])
    y = norm.cdf((values - thr) / sd).T  # (facts, points): soft labels
    return fit_emulator(Design(z, list(obs), y, np.ones_like(y)), space, {"facts": True})


__all__ = ["fact_observations", "fit_facts", "nis_curve", "nis_log_ratios", "simulate_facts"]
