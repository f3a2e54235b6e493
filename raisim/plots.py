"""Figures: the multi-panel time course of one simulated patient.

Every axis is labelled with its unit; the TKI period is shaded and scan and
RAI days are marked, in clinical days (day 1 = first TKI dose).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _series(tc: pd.DataFrame, quantity: str, lesion: str = "") -> tuple[np.ndarray, np.ndarray]:
    sel = tc[(tc["quantity"] == quantity) & (tc["lesion"] == lesion)]
    return sel["time_h"].to_numpy() / 24.0 + 1.0, sel["value"].to_numpy()


def timecourse_figure(tc: pd.DataFrame, outcome: dict, tki_days: tuple[int, int], title: str):
    """Six panels: drugs, pathway, NIS, lesion I-131 activity, lesion dose, lesion volume and Tg."""
    lesions = [x for x in tc["lesion"].unique() if x]
    scan_days = [s["day"] for s in outcome["scans"]]
    rai_day = outcome["rai"].get("day") if outcome["rai"].get("treated") else None
    day_max = (rai_day or tki_days[1]) + 45
    fig, axes = plt.subplots(3, 2, figsize=(12, 10), constrained_layout=True)
    ax = axes.ravel()

    def mark(a, full=False):
        a.axvspan(tki_days[0], tki_days[1] + 1, color="tab:orange", alpha=0.12, label="on TKI")
        for d in scan_days:
            a.axvline(d, color="tab:purple", ls=":", lw=1)
        if rai_day is not None:
            a.axvline(rai_day, color="tab:red", ls="--", lw=1.2, label="RAI")
        if not full:
            a.set_xlim(min(0, min(scan_days, default=0)) - 1, day_max)
        a.set_xlabel("day (day 1 = first TKI dose)")

    for q in sorted(x for x in tc["quantity"].unique() if x.startswith("conc_total_ng_ml:")):
        t, v = _series(tc, q)
        ax[0].plot(t, np.maximum(v, 1e-3), label=q.split(":")[1])
    ax[0].set_yscale("log")
    ax[0].set_ylabel("total plasma concentration (ng/mL)")
    ax[0].set_ylim(bottom=0.1)
    mark(ax[0])
    ax[0].legend(fontsize=8)

    for q, lab in (
        ("erk_activity", "ERK (fraction of untreated)"),
        ("her3", "HER3 (fold)"),
        ("her_adaptive", "adaptive HER2/3 (fold)"),
    ):
        t, v = _series(tc, q)
        ax[1].plot(t, v, label=lab)
    ax[1].set_ylabel("pathway activity (fold of untreated)")
    mark(ax[1])
    ax[1].legend(fontsize=8)

    for les in lesions:
        t, v = _series(tc, "membrane_nis", les)
        ax[2].plot(t, v, label=les)
    ax[2].set_ylabel("membrane NIS (fold of untreated)")
    mark(ax[2])
    ax[2].legend(fontsize=8)

    for les in lesions:
        t, v = _series(tc, "lesion_activity_mbq:I-131", les)
        if len(t):
            ax[3].plot(t, v, label=les)
    ax[3].set_ylabel("lesion I-131 activity (MBq)")
    mark(ax[3])
    ax[3].legend(fontsize=8)

    for les in lesions:
        t, v = _series(tc, "lesion_dose_gy", les)
        ax[4].plot(t, v, label=les)
    ax[4].set_ylabel("cumulative absorbed dose (Gy)")
    mark(ax[4])
    ax[4].legend(fontsize=8)

    for les in lesions:
        t, v = _series(tc, "lesion_volume_ml", les)
        ax[5].plot(t, v, label=les)
    ax[5].set_ylabel("lesion volume (mL)")
    ax[5].set_yscale("log")
    mark(ax[5], full=True)
    tg_ax = ax[5].twinx()
    t, v = _series(tc, "tg_ng_ml")
    tg_ax.plot(t, v, color="k", lw=1, label="Tg")
    tg_ax.set_ylabel("serum Tg (ng/mL), black")
    ax[5].legend(fontsize=8, loc="lower left")
    fig.suptitle(title)
    return fig
