"""Figures: the multi-panel time course of one simulated patient.

Every axis is labelled with its unit; the TKI period is shaded and scan and
RAI days are marked, in clinical days (day 1 = first TKI dose).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _series(tc: pd.DataFrame, quantity: str, lesion: str = "") -> tuple[np.ndarray, np.ndarray]:
    sel = tc[(tc["quantity"] == quantity) & (tc["lesion"] == lesion)]
    return sel["time_h"].to_numpy() / 24.0 + 1.0, sel["value"].to_numpy()


def timecourse_figure(tc: pd.DataFrame, outcome: dict, tki_days: tuple[int, int], title: str):
    """Six panels: drugs, pathway, NIS, lesion I-131 activity, lesion dose, lesion volume and Tg.

    ``tc``: :func:`raisim.engine.simulate.timecourse_frame` (time_h in h, each quantity in the unit of its
    name); ``outcome``: the outcome dict; ``tki_days``: first and last study day on TKI. The x axis is
    the study day (day 1 = first TKI dose).
    """
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


#: Panels of the sweep figure: (metric, y-axis label).
SWEEP_PANELS = (
    ("p_readout_success", "P(selection readout succeeds)"),
    ("p_treated", "P(treated with I-131)"),
    ("best_lesion_gy_median", "best-lesion absorbed dose, Gy\n(median among treated)"),
    ("p_cr_pr_6m_enrolled", "P(CR or PR at 6 months)\nper enrolled patient"),
    ("pfs_12m", "P(progression-free at 12 months)"),
    ("p_grade3_ae", "P(grade >= 3 adverse event)"),
)


def duration_response_figure(summary: pd.DataFrame, knob: str, dose_response: pd.DataFrame, title: str):
    """Outcomes vs the first grid knob (e.g. TKI duration, days), one line per arm × genotype,
    bands over parameter draws (or ±1.96 Monte-Carlo SE with a single draw); last panel:
    P(CR/PR at 6 months) vs best-lesion absorbed dose (Gy), treated patients pooled over cells.

    ``summary``: ``summary.csv`` rows (probabilities in [0, 1], doses Gy); ``knob``: the grid column
    on x, in its config unit; ``dose_response``: :func:`raisim.sweep.summary.dose_response_table`."""
    fig, axes = plt.subplots(2, 4, figsize=(17, 8), constrained_layout=True)
    ax = axes.ravel()
    groups = list(summary.groupby(["arm", "genotype"], sort=False))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    x_label = "TKI course, days" if knob == "treatment.stop_day" else knob
    for i, (metric, label) in enumerate(SWEEP_PANELS):
        a = ax[i]
        for j, ((arm, geno), g) in enumerate(groups):
            s = g[g["metric"] == metric].sort_values(knob)
            x = s[knob].to_numpy()
            y = s["estimate"].to_numpy(float)
            lo, hi = s["q05"].to_numpy(float), s["q95"].to_numpy(float)
            if not np.isfinite(lo).any():  # one draw: Monte-Carlo band
                se = s["mcse"].to_numpy(float)
                lo, hi = y - 1.96 * se, y + 1.96 * se
            c = colors[j % len(colors)]
            style = ("-", "--", ":", "-.")[j % 4]  # overlapping groups stay visible
            a.plot(x, y, marker="osd^v"[j % 5], linestyle=style, color=c, label=f"{geno} — {arm}", markersize=5)
            if np.isfinite(lo).any():
                a.fill_between(x, lo, hi, color=c, alpha=0.15, linewidth=0)
        a.set_xlabel(x_label)
        a.set_ylabel(label)
        if metric.startswith("p_") or metric.startswith("pfs"):
            a.set_ylim(-0.02, 1.02)
        a.grid(alpha=0.3)
    ax[0].legend(fontsize=8, loc="best")
    a = ax[6]
    for j, (geno, g) in enumerate(dose_response.groupby("genotype", sort=False)):
        a.plot(g["dose_mid_gy"], g["p_cr_pr"], "s-", color=colors[j % len(colors)], label=geno)
    a.set_xscale("log")
    ticks = [10, 20, 40, 80, 160, 320, 640]
    a.set_xticks(ticks, [str(t) for t in ticks])
    a.minorticks_off()
    a.set_xlabel("best-lesion absorbed dose, Gy (bin centre)")
    a.set_ylabel("P(CR or PR at 6 months)\namong treated")
    a.set_ylim(-0.02, 1.02)
    a.grid(alpha=0.3)
    if len(dose_response):
        a.legend(fontsize=8)
    a.set_title("dose–response (pooled over cells)", fontsize=10)
    ax[7].axis("off")
    ax[7].text(
        0.0,
        0.95,
        "bands: 5–95 % over parameter draws\n(one draw: ±1.96 Monte-Carlo SE)\n\n"
        "same virtual patients in every cell\n(differences are paired; see summary.csv)",
        va="top",
        fontsize=9,
    )
    fig.suptitle(title)
    return fig


def predictive_figure(table: pd.DataFrame, title: str):
    """Observed count fractions against their predictive 90 % and 95 % intervals, one line per count.

    ``table``: the rows of :func:`raisim.calibration.fit.predictive_table` (n, observed, q05, q95,
    lo95, hi95, mean). Counts are shown as fractions of each observation's n.
    """
    t = table.reset_index(drop=True)
    labels = [f"{r.trial} {r.arm} · {r['count']} (n={r.n})" for _, r in t.iterrows()]
    y = np.arange(len(t))[::-1]
    fig, ax = plt.subplots(figsize=(8.5, 0.22 * len(t) + 1.4))
    n = t["n"].to_numpy(float)
    ax.hlines(y, t["lo95"] / n, t["hi95"] / n, color="#9ecae1", lw=5, label="95 % predictive interval")
    ax.hlines(y, t["q05"] / n, t["q95"] / n, color="#3182bd", lw=2.2, label="90 % predictive interval")
    ax.plot(t["mean"] / n, y, "|", color="#08519c", ms=9, label="predictive mean")
    obs = t["observed"].astype(float)
    inside = t["inside95"].fillna(True).astype(bool)
    ax.plot((obs / n)[inside], y[inside.to_numpy()], "o", color="black", ms=4, label="observed")
    ax.plot((obs / n)[~inside], y[~inside.to_numpy()], "o", color="#d62728", ms=5, label="observed, outside 95 %")
    ax.set_yticks(y, labels, fontsize=6.5)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("fraction of the arm's patients (count / n)")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=6.5, loc="lower right", framealpha=0.9)
    fig.tight_layout()
    return fig
