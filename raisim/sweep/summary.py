"""Summaries of a sweep: per grid cell, outcome probabilities with credible bands and paired differences.

For each cell and parameter draw the virtual trial's outcome frequencies are
computed over the patients whose solve succeeded; the estimate is their mean
over draws and the band their 5–95 % quantiles over draws (the parameter
uncertainty). ``mcse`` is the Monte-Carlo standard error of a proportion from
the finite cohort (mean over draws), so a reader can tell cohort noise from
parameter uncertainty. Every cell is also compared with its reference cell
(same arm, genotype and other knobs; the ``compare`` knob at its reference
value): the difference is computed draw by draw on the same virtual patients
(paired), and for per-enrolled proportions its Monte-Carlo error uses the
per-patient differences.

``summary.csv`` is long: one row per cell × metric.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io.errors import InputError
from ..io.store import write_csv
from .config import Sweep
from .runner import incomplete_units, read_chunks

RESPONSE_MONTH = 6
PFS_MONTH = 12

#: metric → (what it is, population: enrolled/treated, kind: proportion/median/quartile)
METRICS: dict[str, tuple[str, str, str]] = {
    "p_readout_success": ("selection (or first) scan readout succeeds", "enrolled", "proportion"),
    "p_treated": ("receives I-131 therapy", "enrolled", "proportion"),
    "best_lesion_gy_median": ("absorbed dose of the best lesion, Gy: median", "treated", "median"),
    "best_lesion_gy_q25": ("absorbed dose of the best lesion, Gy: 25th percentile", "treated", "quantile"),
    "best_lesion_gy_q75": ("absorbed dose of the best lesion, Gy: 75th percentile", "treated", "quantile"),
    "p_cr_pr_6m_enrolled": ("RECIST CR or PR at 6 months after RAI, per enrolled patient", "enrolled", "proportion"),
    "p_cr_pr_6m_treated": ("RECIST CR or PR at 6 months after RAI, per treated patient", "treated", "proportion"),
    "p_pd_6m_enrolled": ("RECIST PD at 6 months, per enrolled patient", "enrolled", "proportion"),
    "p_pd_6m_treated": ("RECIST PD at 6 months, per treated patient", "treated", "proportion"),
    "pfs_12m": ("progression-free 12 months after the anchor (RAI, else day 1)", "enrolled", "proportion"),
    "p_grade3_ae": ("grade >= 3 adverse event on TKI", "enrolled", "proportion"),
    "p_discontinuation": ("TKI stopped for toxicity", "enrolled", "proportion"),
}


#: The chunk columns a summary reads (the rest of a chunk's ~40 columns stay on disk).
SUMMARY_COLUMNS = [
    "draw",
    "patient",
    "ok",
    "treated",
    "readout_success",
    f"recist_{RESPONSE_MONTH}m",
    "progressed_12m",
    "grade3_ae",
    "discontinued",
    "best_lesion_gy",
]


def patient_indicators(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-patient 0/1 (NaN = not in the metric's population) for every proportion metric."""
    ok = rows["ok"].astype(bool)
    treated = rows["treated"].astype(bool) & ok
    rec = rows.get(f"recist_{RESPONSE_MONTH}m")
    nan = pd.Series(np.nan, index=rows.index)
    out = pd.DataFrame(index=rows.index)
    f = lambda x: x.astype(float).where(ok)  # noqa: E731
    out["p_readout_success"] = f(rows["readout_success"])
    out["p_treated"] = f(rows["treated"])
    if rec is not None:
        rec = rec.astype(object)
        crpr = rec.isin(["CR", "PR"]).astype(float)
        pd_ = (rec == "PD").astype(float)
        out["p_cr_pr_6m_enrolled"] = crpr.where(ok)
        out["p_cr_pr_6m_treated"] = crpr.where(treated)
        out["p_pd_6m_enrolled"] = pd_.where(ok)
        out["p_pd_6m_treated"] = pd_.where(treated)
    else:
        for k in ("p_cr_pr_6m_enrolled", "p_cr_pr_6m_treated", "p_pd_6m_enrolled", "p_pd_6m_treated"):
            out[k] = nan
    out["pfs_12m"] = (1.0 - rows["progressed_12m"].astype(float)).where(ok)
    out["p_grade3_ae"] = f(rows["grade3_ae"])
    out["p_discontinuation"] = f(rows["discontinued"])
    return out


def draw_metrics(rows: pd.DataFrame, ind: pd.DataFrame | None = None) -> dict[str, float]:
    """Every metric of one cell and one draw (``ind``: its :func:`patient_indicators`, if already computed).

    Proportions are probabilities in [0, 1]; ``best_lesion_gy_*`` are absorbed doses in Gy.
    """
    ind = patient_indicators(rows) if ind is None else ind
    out = {k: float(ind[k].mean()) if ind[k].notna().any() else np.nan for k in ind}
    treated = rows["treated"].astype(bool) & rows["ok"].astype(bool)
    dose = rows.loc[treated, "best_lesion_gy"].to_numpy(float)
    q = np.quantile(dose, [0.25, 0.5, 0.75]) if dose.size else [np.nan] * 3
    out.update(best_lesion_gy_q25=q[0], best_lesion_gy_median=q[1], best_lesion_gy_q75=q[2])
    return out


def _band(x: np.ndarray) -> tuple[float, float, float]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.nan, np.nan, np.nan
    if x.size == 1:
        return float(x[0]), np.nan, np.nan
    return float(x.mean()), float(np.quantile(x, 0.05)), float(np.quantile(x, 0.95))


def _finite_mean(values) -> float:
    """Mean of the finite values (NaN, without numpy's empty-slice warning, when there are none)."""
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else np.nan


def _mcse(ind: pd.Series) -> float:
    x = ind.dropna().to_numpy(float)
    return float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else np.nan


def reference_cells(sweep: Sweep) -> dict[int, int | None]:
    """The reference cell of every cell (None where the sweep compares nothing)."""
    cfg = sweep.config
    compare = cfg.compare or {next(iter(cfg.grid)): next(iter(cfg.grid.values()))[0]}
    key = lambda c, knobs: (c.arm, c.genotype, tuple(sorted((k, repr(v)) for k, v in knobs.items())))  # noqa: E731
    index = {key(c, c.knobs): c.index for c in sweep.cells}
    return {c.index: index.get(key(c, {**c.knobs, **compare})) for c in sweep.cells}


def reference_label(sweep: Sweep) -> str:
    """The reference knob values in words, e.g. ``treatment.stop_day=14`` (values in their config units)."""
    cfg = sweep.config
    compare = cfg.compare or {next(iter(cfg.grid)): next(iter(cfg.grid.values()))[0]}
    return ", ".join(f"{k}={v}" for k, v in compare.items())


def summarise(sweep: Sweep, out: str | Path) -> pd.DataFrame:
    """``summary.csv`` of a finished run (read cell by cell: memory stays bounded).

    An incomplete directory (a unit's chunk missing, or one failing its checksum, which is then
    quarantined) is an :class:`InputError` naming a missing unit: ``--resume`` completes it.

    One row per cell × metric: ``estimate``, ``q05``/``q95``, ``mcse`` and the ``diff_*`` columns
    in the metric's unit (probability in [0, 1] for proportions, Gy for ``best_lesion_gy_*``);
    ``patients``, ``solver_failures`` and ``draws`` are counts.
    """
    missing = incomplete_units(sweep, out)
    if missing:
        raise InputError(
            Path(out),
            "chunks",
            f"every work unit's chunk before the summary ({len(missing)} missing or damaged, e.g. {missing[0]}); "
            "run the sweep again with --resume",
        )
    refs = reference_cells(sweep)
    ref_label = reference_label(sweep)
    cache: dict[int, pd.DataFrame] = {}

    def rows_of(cell: int) -> pd.DataFrame:
        if cell not in cache:
            if len(cache) > 2:
                cache.clear()
            cache[cell] = read_chunks(out, [cell], SUMMARY_COLUMNS)
        return cache[cell]

    records = []
    for cell in sweep.cells:
        rows = rows_of(cell.index)
        if rows.empty:
            continue
        ref = refs[cell.index]
        ref_rows = rows_of(ref) if ref is not None else None
        per_draw, diffs, mc, mc_diff = {}, {}, {}, {}
        for d, g in rows.groupby("draw"):
            ind = patient_indicators(g)
            m = draw_metrics(g, ind)
            per_draw[d] = m
            mc[d] = {k: _mcse(ind[k]) for k in ind}
            if ref_rows is not None and not ref_rows.empty:
                rg = ref_rows[ref_rows["draw"] == d]
                rind = patient_indicators(rg)
                rm = draw_metrics(rg, rind)
                diffs[d] = {k: m[k] - rm[k] for k in m}
                a = ind.set_index(g["patient"].to_numpy())
                b = rind.set_index(rg["patient"].to_numpy())
                paired = (a - b).loc[:, [k for k in METRICS if k in a and METRICS[k][1] == "enrolled"]]
                mc_diff[d] = {k: _mcse(paired[k]) for k in paired}
        n_draws = len(per_draw)
        for metric, (_, population, kind) in METRICS.items():
            est, lo, hi = _band(np.asarray([per_draw[d][metric] for d in per_draw]))
            rec = {
                **cell.labels(),
                "metric": metric,
                "population": population,
                "estimate": est,
                "q05": lo,
                "q95": hi,
                "mcse": _finite_mean([mc[d].get(metric, np.nan) for d in mc]) if kind == "proportion" else np.nan,
                "patients": int(len(rows) / max(n_draws, 1)),
                "solver_failures": int((~rows["ok"].astype(bool)).sum()),
                "draws": n_draws,
                "reference": ref_label if ref is not None else "",
            }
            if diffs:
                de, dlo, dhi = _band(np.asarray([diffs[d][metric] for d in diffs]))
                dmc = [mc_diff[d].get(metric, np.nan) for d in mc_diff]
                rec.update(
                    diff_vs_reference=de,
                    diff_q05=dlo,
                    diff_q95=dhi,
                    diff_mcse=_finite_mean(dmc),
                )
            else:
                rec.update(diff_vs_reference=np.nan, diff_q05=np.nan, diff_q95=np.nan, diff_mcse=np.nan)
            records.append(rec)
    frame = pd.DataFrame(records)
    write_csv(Path(out) / "summary.csv", frame)
    return frame


def dose_response_table(out: str | Path, bins: np.ndarray | None = None) -> pd.DataFrame:
    """Treated patients pooled over cells: P(CR/PR at 6 months) by best-lesion absorbed dose bin, per genotype.

    ``bins``: bin edges, Gy. Columns ``dose_mid_gy`` (geometric bin centre, Gy), ``p_cr_pr``
    (probability in [0, 1]) and ``n`` (patients).
    """
    bins = bins if bins is not None else np.array([0, 10, 20, 40, 80, 160, 320, np.inf])
    col = f"recist_{RESPONSE_MONTH}m"
    parts = []
    for f in sorted((Path(out) / "chunks").glob("*.parquet")):
        try:
            parts.append(pd.read_parquet(f, columns=["genotype", "treated", "ok", "best_lesion_gy", col]))
        except (KeyError, ValueError):
            continue
    if not parts:
        return pd.DataFrame(columns=["genotype", "dose_bin", "dose_mid_gy", "p_cr_pr", "n"])
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[rows["treated"].astype(bool) & rows["ok"].astype(bool)]
    rows = rows.assign(
        dose_bin=pd.cut(rows["best_lesion_gy"], bins, right=False),
        resp=rows[col].astype(object).isin(["CR", "PR"]).astype(float),
    )
    t = rows.groupby(["genotype", "dose_bin"], observed=True).agg(p_cr_pr=("resp", "mean"), n=("resp", "size"))
    t = t.reset_index()
    t["dose_mid_gy"] = [
        np.sqrt(max(iv.left, 5.0) * (iv.right if np.isfinite(iv.right) else iv.left * 2)) for iv in t["dose_bin"]
    ]
    return t
