"""Tables the README shows, generated from calibration outputs (never typed by hand).

``scripts/update_readme.py`` writes them between ``<!-- BEGIN name -->`` and
``<!-- END name -->`` markers; ``tests/test_report.py`` checks that the README
holds exactly what these functions make from the shipped files.
"""

from __future__ import annotations

import pandas as pd


def predictive_markdown(table: pd.DataFrame) -> str:
    """Observed counts against predictive intervals, one line per count (``predictive_table`` rows).

    Counts, means and intervals are numbers of patients; ``p_tail`` is a probability.
    """
    lines = [
        "| trial | arm | endpoint | count | n | observed | predicted mean | 90 % interval | 95 % interval | p_tail |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        obs = "" if pd.isna(r["observed"]) else int(r["observed"])
        flag = "" if pd.isna(r["inside95"]) or bool(r["inside95"]) else " **outside**"
        tail = "" if pd.isna(r["p_tail"]) else f"{r['p_tail']:.2f}"
        lines.append(
            f"| {r['trial']} | {r['arm']} | {r['endpoint']} | {r['count']} | {r['n']} | {obs}{flag} | "
            f"{r['mean']:.1f} | {int(r['q05'])}–{int(r['q95'])} | {int(r['lo95'])}–{int(r['hi95'])} | {tail} |"
        )
    known = table["inside95"].dropna().astype(bool)
    lines.append("")
    lines.append(f"{int(known.sum())} of {len(known)} observed counts lie inside their 95 % predictive interval.")
    return "\n".join(lines)


def diagnostics_markdown(diag: pd.DataFrame) -> str:
    """Posterior summary and sampler diagnostics of the shipped fit.

    Medians and intervals are in each parameter's card unit; R-hat and ESS are dimensionless; wall
    time in min.
    """
    lines = [
        "| parameter (card) | posterior median | 90 % interval | R-hat | bulk ESS | tail ESS |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in diag.iterrows():
        lines.append(
            f"| `{r['card_parameter']}` | {r['q50']:.4g} | {r['q05']:.4g} – {r['q95']:.4g} | "
            f"{r['r_hat']:.3f} | {r['ess_bulk']:.0f} | {r['ess_tail']:.0f} |"
        )
    r = diag.iloc[0]
    lines.append("")
    lines.append(
        f"{r['method'].upper()}: {int(r['divergences'])} divergences after warm-up; "
        f"{r['wall_s'] / 60:.1f} min wall time; {r['gradient_evaluations_per_s']:.0f} gradient evaluations/s "
        f"(max R-hat {diag['r_hat'].max():.3f}, min bulk ESS {diag['ess_bulk'].min():.0f})."
    )
    return "\n".join(lines)


def emulator_markdown(validation: pd.DataFrame) -> str:
    """How far the emulator is from the full model on held-out parameter draws (probability scale),
    with the three largest differences named."""
    v = validation.dropna(subset=["full", "emulator"])
    err = v["error"].abs()
    within = (err <= 2 * v["mc_se"] + 0.02).mean()
    worst = v.assign(abs_error=err).nlargest(3, "abs_error")
    named = "; ".join(f"`{r.target}` {r.emulator:.2f} vs {r.full:.2f} (SE {r.mc_se:.2f})" for r in worst.itertuples())
    return (
        f"{v['draw'].nunique()} held-out parameter draws × {v['target'].nunique()} arm-level probabilities: "
        f"|emulator − full model| median {err.median():.3f}, 90th percentile {err.quantile(0.9):.3f}, "
        f"max {err.max():.3f} (probability scale); the full model's own Monte-Carlo SE on its "
        f"fixed cohort has median {v['mc_se'].median():.3f}; {100 * within:.0f} % of the differences are "
        f"within 2 SE + 0.02. Largest (emulator vs full model): {named}."
    )


CONFIG_KINDS = ("protocol", "sweep", "calibration")


def config_model(kind: str = "protocol"):
    """The pydantic model of one config kind: protocol, sweep or calibration."""
    if kind == "sweep":
        from ..sweep.config import SweepConfig

        return SweepConfig
    if kind == "calibration":
        from ..calibration.fit import CalibrationConfig

        return CalibrationConfig
    if kind == "protocol":
        from ..protocol.schema import Protocol

        return Protocol
    raise ValueError(f"config kind {kind!r}: one of {', '.join(CONFIG_KINDS)}")


def config_reference_markdown(kind: str = "protocol") -> str:
    """The field reference table of one config kind (protocol, sweep or calibration): the
    README's config reference, generated from the pydantic models."""
    from ..protocol.schema import field_reference_markdown

    return field_reference_markdown(config_model(kind))


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the block between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` replaced."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    i, j = text.index(begin) + len(begin), text.index(end)
    return text[:i] + "\n" + body.strip() + "\n" + text[j:]


def block(text: str, name: str) -> str:
    """The text between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` (stripped)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    return text[text.index(begin) + len(begin) : text.index(end)].strip()


def validation_markdown(tests: pd.DataFrame, ppc_full: pd.DataFrame) -> str:
    """Validation status: tagged tests (``docs/validation.csv``) and the trials' full-model PPC."""
    lines = ["| area | what the model reproduces | result |", "|---|---|---|"]
    for _, r in tests.iterrows():
        area = r["test"].split("::")[0].removeprefix("test_")
        lines.append(f"| {area} | {r['checks']} | {r['outcome']} |")
    for (trial, arm), g in ppc_full.groupby(["trial", "arm"], sort=False):
        known = g["inside95"].dropna().astype(bool)
        if known.empty:
            continue
        counts = ", ".join(
            f"{c} {int(o)} (95 %: {int(lo)}–{int(hi)})"
            for c, o, lo, hi in zip(g["count"], g["observed"], g["lo95"], g["hi95"], strict=True)
        )
        result = "inside" if known.all() else f"{int((~known).sum())} outside"
        lines.append(f"| trials | {trial} {arm}: observed vs full-model posterior predictive: {counts} | {result} |")
    passed = int((tests["outcome"] == "passed").sum())
    lines.append("")
    lines.append(f"{passed} of {len(tests)} tagged tests passed when the table was generated.")
    return "\n".join(lines)


__all__ = [
    "CONFIG_KINDS",
    "config_model",
    "config_reference_markdown",
    "block",
    "diagnostics_markdown",
    "emulator_markdown",
    "predictive_markdown",
    "replace_block",
    "validation_markdown",
]
