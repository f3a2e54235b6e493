"""Generate docs/figures/pathway_<genotype>.png: ERK, HER3 and membrane NIS over 42 days.

For each genotype, four regimens: a MEK inhibitor (trametinib 2 mg q24h), a BRAF
inhibitor (dabrafenib 150 mg q12h), BRAF + MEK (both), and BRAF + MEK + a HER
blocker (lapatinib 1250 mg q24h). Typical patient, one lesion, no TSH
stimulation or radioiodine, so the curves show the TKI effect alone.

    .venv/bin/python docs/make_pathway_figures.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import raisim  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures"
REGIMENS = {
    "MEK inhibitor (trametinib)": "trametinib",
    "BRAF inhibitor (dabrafenib)": "dabrafenib",
    "BRAF + MEK": "dabrafenib+trametinib",
    "BRAF + MEK + HER blocker (lapatinib)": "dabrafenib+trametinib+lapatinib",
}
QUANTITIES = (
    ("erk_activity", "ERK activity (fraction of untreated)"),
    ("her3", "HER3 (fold of untreated)"),
    ("membrane_nis", "membrane NIS (fold of untreated)"),
)


def course(genotype: str, regimen: str):
    return raisim.simulate(raisim.tki_only_protocol(genotype, regimen), seed=0).timecourse


def figure(genotype: str) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    for label, regimen in REGIMENS.items():
        tc = course(genotype, regimen)
        for ax, (q, ylabel) in zip(axes, QUANTITIES, strict=True):
            s = tc[(tc.quantity == q) & (tc.lesion == "")]
            day = s.time_h / 24.0 + 1.0
            keep = (day >= 0) & (day <= 43)
            ax.plot(day[keep], s.value[keep], label=label)
            ax.set_xlabel("day (day 1 = first TKI dose; TKI days 1-42)")
            ax.set_ylabel(ylabel)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{genotype}: typical patient, TKI alone (no TSH stimulation)")
    path = OUT / f"pathway_{genotype}.png"
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> int:
    for g in ("BRAF_V600E", "RAS", "OTHER"):
        print(figure(g), file=sys.stderr)
    return 0


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    raise SystemExit(main())
