"""The trials' selection readouts, old against new, on the same virtual patients (issue 24).

For every ``uptake`` row of ``models/data/trials.csv`` read by I-123 (``i123_tbr``) or by I-124 PET
dosimetry (``i124_dosimetry``), each of the row's genotypes is simulated through its arm protocol
(:func:`raisim.arm_protocol`) for one virtual cohort, at the cards' values and at the shipped
posterior's central draw, and the genotypes are mixed by :func:`raisim.genotype_weights`:

- I-123 rows: the mean P(success) of the selection scan read on a planar image (the old readout,
  ``i123_planar_tbr``) and on SPECT/CT (the new ``i123_tbr``), the same patients and draws, with
  the TKI as the trial gave it and with every dose held (what the scan reads of refractory lesions);
- I-124 dosimetry rows: the mean over patients of the best countable lesion's Gy/GBq as the engine
  reports it: ``true`` (the old readout, an I-131 channel over the model's whole future, which the
  projection used to be) and ``projected`` (the new PET retention fit), and the new P(success).

Prints a Markdown table (the one in docs/model.md section 7a) and writes ``docs/readout_comparison.csv``.
Every number is computed here; nothing is copied in.

    .venv/bin/python scripts/readout_comparison.py [--patients 32] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)

import numpy as np  # noqa: E402

import raisim  # noqa: E402
from raisim.calibration.targets import row_genotypes  # noqa: E402
from raisim.io.parameter_draws import parameter_set  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT_CSV = REPO / "docs" / "readout_comparison.csv"
READS = ("i123_tbr", "i124_dosimetry")


def with_readout(p: raisim.Protocol, readout: str) -> raisim.Protocol:
    """The protocol with its selection scan read by ``readout``."""
    scans = [s.model_copy(update={"readout": readout}) if s.readout is not None else s for s in p.scans]
    return p.model_copy(update={"scans": scans})


def untreated(p: raisim.Protocol) -> raisim.Protocol:
    """The protocol with every TKI dose held: what the same scan reads of the refractory lesions."""
    hold = {"from_day": p.treatment.start_day, "to_day": p.treatment.stop_day}
    d = p.model_dump(mode="json", exclude_none=True)
    d["treatment"]["holds"] = [hold]
    return raisim.protocol_from_dict(d, "untreated")


def best_countable(values: np.ndarray, cohort: raisim.Cohort, scan: int, min_mm: float) -> np.ndarray:
    """Per patient, the largest value over its lesions of at least ``min_mm`` (NaN if none)."""
    diam = raisim.sphere_diameter_mm(np.asarray(cohort.lesion_mass_g))
    keep = np.asarray(cohort.lesion_mask, bool) & (np.asarray(diam) >= min_mm)
    v = np.where(keep, values[:, scan, :], -np.inf)
    best = v.max(axis=1)
    return np.where(np.isfinite(best), best, np.nan)


def arm_numbers(row, cohort, overrides) -> dict[str, float]:
    """The old and new readouts of one row, mixed over its genotypes (see the module docstring)."""
    weights = raisim.genotype_weights(row)
    acc: dict[str, float] = {}
    total = 0.0
    for g in row_genotypes(row):
        w = weights.get(g, 0.0)
        if w <= 0:
            continue
        p = raisim.arm_protocol(row, g, "models/data/trials.csv")
        got: dict[str, float] = {}
        if row.criterion == "i123_tbr":
            held = untreated(p)
            for key, readout in (("old_p", "i123_planar_tbr"), ("new_p", "i123_tbr")):
                for suffix, q in (("", p), ("_untreated", held)):
                    out = raisim.run_cohort(with_readout(q, readout), cohort, overrides=overrides)
                    got[key + suffix] = float(np.nanmean(out.readout_p))
        else:
            out = raisim.run_cohort(p, cohort, overrides=overrides, detail=True)
            scan = next(i for i, s in enumerate(p.scans) if s.readout == "i124_dosimetry")
            min_mm = float(raisim.build_model(p, overrides).dosimetry.min_dosimetry_diameter_mm)
            true = best_countable(np.asarray(out.detail.scan_true_gy_per_gbq), cohort, scan, min_mm)
            proj = best_countable(np.asarray(out.detail.scan_projected_gy_per_gbq), cohort, scan, min_mm)
            got = {
                "old_gy_per_gbq": float(np.nanmean(true)),
                "new_gy_per_gbq": float(np.nanmean(proj)),
                "new_over_old": float(np.nanmedian(proj / true)),
                "new_p": float(np.nanmean(out.readout_p)),
            }
        for k, v in got.items():
            acc[k] = acc.get(k, 0.0) + w * v
        total += w
    return {k: v / total for k, v in acc.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    raisim.configure()
    table = raisim.load_trials()
    cohort = raisim.sample_cohort(args.patients, args.seed)
    posterior = parameter_set("posterior")
    sets = {"cards": None, f"posterior draw {posterior.draw}": posterior.overrides}
    rows = [r for r in table.rows if r.endpoint == "uptake" and r.criterion in READS]
    records = []
    for row in rows:
        for label, ov in sets.items():
            rec = {"trial": row.trial, "arm": row.arm, "criterion": row.criterion, "parameters": label}
            rec["observed"] = f"{row.k}/{row.n}" if row.k is not None else ""
            rec.update(arm_numbers(row, cohort, ov))
            records.append(rec)
            print(f"done: {row.arm} {row.criterion} at {label}", file=sys.stderr)
    keys = ["trial", "arm", "criterion", "parameters", "observed"]
    keys += ["old_p", "new_p", "old_p_untreated", "new_p_untreated"]
    keys += ["old_gy_per_gbq", "new_gy_per_gbq", "new_over_old"]
    with OUT_CSV.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys, restval="")
        w.writeheader()
        for rec in records:
            w.writerow({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in rec.items()})

    def cell(rec, k):
        return f"{rec[k]:.2f}" if k in rec else "–"

    print(
        "| arm | readout | parameters | observed k/n | P old | P new | P old, no TKI | P new, no TKI "
        "| Gy/GBq old | Gy/GBq new | new/old |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    numbers = ("old_p", "new_p", "old_p_untreated", "new_p_untreated", "old_gy_per_gbq", "new_gy_per_gbq")
    for rec in records:
        cells = [cell(rec, k) for k in (*numbers, "new_over_old")]
        print(
            f"| {rec['trial']} {rec['arm']} | `{rec['criterion']}` | {rec['parameters']} | {rec['observed']} | "
            + " | ".join(cells)
            + " |"
        )
    print(f"\n{args.patients} virtual patients (seed {args.seed}); wrote {OUT_CSV.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
