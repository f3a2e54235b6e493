"""``raisim calibrate``: fit, check and write a posterior, with progress and a printed report."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def cmd_calibrate(args) -> int:
    """``raisim calibrate``: fit the population parameters (see :mod:`raisim.calibration.fit`); exit code."""

    from ..calibration.fit import (
        load_calibration_config,
        load_trials,
        load_trials_for,
        usable_emulator,
    )
    from ..io.store import check_out_dir
    from .outputs import dry_run_done, writing

    cfg = load_calibration_config(args.config)
    update: dict = {}
    if args.seed is not None:
        update["seed"] = args.seed
    if args.method:
        update["method"] = args.method
    if args.emulator:
        update["emulator"] = cfg.emulator.model_copy(update={"file": args.emulator})
    cfg = cfg.model_copy(update=update)
    full = load_trials(cfg.trials)
    table, left_out = load_trials_for(cfg, args.leave_out, "<command line>")
    if not args.retrain:
        usable_emulator(cfg, full)  # a given emulator.file that cannot serve stops here, before any write
    if args.out is not None:
        check_out_dir(args.out, force=args.force)
    if args.dry_run:
        return dry_run_done("calibrate", f"{args.config}: {len(table.rows)} trials rows, method {cfg.method}")
    with writing(args.out, force=args.force) as out:
        return _calibrate_into(out, args, cfg, full, table, left_out)


def _calibrate_into(out: Path, args, cfg, full, table, left_out) -> int:
    """Fit and write every output into the locked directory ``out``, the completion marker last."""
    from tqdm import tqdm

    from ..calibration.fit import (
        TableLikelihood,
        fit_posterior,
        get_emulator,
        get_facts,
        posterior_diagnostics,
        posterior_params,
        predictive_table,
        prior_params,
        thin,
    )
    from ..io.store import manifest, mark_complete, write_csv, write_json
    from .outputs import compilation_record
    from .plots import predictive_figure

    show = not args.no_progress

    def log(msg: str) -> None:
        print(f"raisim calibrate: {msg}", file=sys.stderr)

    bar = None

    def progress(run) -> None:
        nonlocal bar
        if show:
            if bar is None:
                bar = tqdm(desc="full-model simulations (arm × genotype runs)", unit="run", file=sys.stderr)
            bar.update(1)

    facts = get_facts(cfg, out, retrain=args.retrain, log=log)
    emu = get_emulator(
        cfg, full, out, retrain=args.retrain, log=log, progress=progress, facts=facts, sampler_progress=show
    )
    if bar is not None:
        bar.close()
    lik = TableLikelihood(table, emu, facts)
    log(
        f"{len(lik.observations)} observations of {len(table.rows)} rows, {len(lik.trials)} trials"
        + (f" (left out: {args.leave_out})" if args.leave_out else "")
        + f"; {len(emu.parameters)} emulated parameters; method {cfg.method}"
    )
    prior = predictive_table(lik, prior_params(lik, 400, cfg.seed + 3), cfg.seed, new_trials=False)
    write_csv(out / "prior_predictive.csv", prior)
    _save_figure(
        predictive_figure(prior, "prior predictive (emulator): observed vs prior"), out / "prior_predictive.png"
    )
    idata, stats = fit_posterior(cfg, lik, progress=show)
    keep = cfg.nuts.thin_to if cfg.method == "nuts" else cfg.svi.samples
    idata = thin(idata, keep)
    tmp = out / ".posterior.nc.tmp"
    try:  # through a temporary file, like every other output
        idata.to_netcdf(str(tmp))
        tmp.replace(out / "posterior.nc")
    finally:
        tmp.unlink(missing_ok=True)
    diag = posterior_diagnostics(idata, stats)
    write_csv(out / "diagnostics.csv", diag)
    draws = posterior_params(idata, lik)
    ppc = predictive_table(lik, draws, cfg.seed, new_trials=False)
    write_csv(out / "ppc.csv", ppc)
    _save_figure(
        predictive_figure(ppc, f"posterior predictive ({cfg.method}, emulator): observed vs fit"), out / "ppc.png"
    )
    from ..io.model_identity import MANIFEST_FILES_KEY, MANIFEST_KEY, model_digests, model_sha256

    # the model the posterior belongs to: every reader of it warns once the model has changed
    extra: dict = {"stats": stats, "emulator": emu.meta, "leave_out": args.leave_out, MANIFEST_KEY: model_sha256()}
    extra[MANIFEST_FILES_KEY] = model_digests()
    if left_out is not None:
        loo = predictive_table(TableLikelihood(left_out, emu, facts), draws, cfg.seed, new_trials=True)
        write_csv(out / "loo.csv", loo)
        extra["loo_inside95"] = f"{int(loo['inside95'].sum())}/{len(loo)}"
    for name in facts.keys:
        v = idata.posterior[f"fact:{name}"].values
        extra[f"fact:{name}"] = {
            "posterior_mean": float(v.mean()),
            "q05": float(np.quantile(v, 0.05)),
            "q95": float(np.quantile(v, 0.95)),
        }
    extra["ppc_inside95"] = f"{int(ppc['inside95'].sum())}/{int(ppc['inside95'].notna().sum())}"
    write_json(
        out / "manifest.json", manifest("calibrate", cfg.model_dump(mode="json"), cfg.seed, args.config, **extra)
    )
    mark_complete(
        out,
        "calibrate",
        sorted(p.name for p in out.iterdir() if not p.name.startswith(".")),
        compilation=compilation_record(),
    )
    _print_report(diag, stats, ppc, extra)
    return 0


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    from ..io.store import atomic_savefig

    atomic_savefig(fig, path, dpi=130)
    plt.close(fig)


def _print_report(diag: pd.DataFrame, stats: dict, ppc: pd.DataFrame, extra: dict) -> None:
    print(f"{'parameter':<40} {'median':>11} {'90% interval':>25} {'R-hat':>6} {'ESS bulk':>8} {'ESS tail':>8}")
    for _, r in diag.iterrows():
        interval = f"{r.q05:.4g} - {r.q95:.4g}"
        print(f"{r.parameter:<40} {r.q50:>11.4g} {interval:>25} {r.r_hat:>6.3f} {r.ess_bulk:>8.0f} {r.ess_tail:>8.0f}")
    print(
        f"{stats['method']}: {stats['chains']} chain(s) × {stats['draws_per_chain']} draws, "
        f"{stats['divergences']} divergences, {stats['wall_s']:.0f} s, "
        f"{stats['gradient_evaluations_per_s']:.0f} gradient evaluations/s"
    )
    print(f"observed counts inside their 95 % posterior predictive interval: {extra['ppc_inside95']}")
    if "loo_inside95" in extra:
        print(f"left-out trial {extra['leave_out']}: inside the 95 % predictive interval: {extra['loo_inside95']}")
