"""``raisim sweep``: a sweep grid run into a directory, summarised and plotted."""

from __future__ import annotations

import sys

from ..io.errors import InputError
from .interrupt import check_interrupted
from .progress import ProgressBar


def cmd_sweep(args) -> int:
    """``raisim sweep``: run a sweep grid into ``--out`` (chunks, summary.csv, figure); exit code."""
    import jax

    if args.distributed and not args.dry_run:
        given = {
            "coordinator_address": args.coordinator,
            "num_processes": args.num_processes,
            "process_id": args.process_id,
        }
        jax.distributed.initialize(**{k: v for k, v in given.items() if v is not None})
    from ..engine.plan import plan_cell
    from ..sweep.config import load_sweep
    from ..sweep.runner import check_run_dir, parameter_draws
    from .outputs import dry_run_done

    sweep = load_sweep(args.config, seed=args.seed, patients=args.patients)  # validate before touching --out
    if args.devices is not None and not 1 <= args.devices <= len(jax.local_devices()):
        raise InputError(
            "<command line>", "--devices", f"1 to {len(jax.local_devices())} (local devices)", got=args.devices
        )
    if args.out is not None and jax.process_index() == 0:  # the others join the directory process 0 prepares
        check_run_dir(args.out, sweep, resume=args.resume, force=args.force)
    n_draws = len(parameter_draws(sweep))
    for cell in sweep.cells:
        plan_cell(cell.protocol)  # every cell's courses on its output grid: what the solve will need
    cfg = sweep.config
    total = len(sweep.cells) * n_draws * cfg.cohort.patients
    if args.dry_run:
        return dry_run_done(
            "sweep", f"{args.config}: {len(sweep.cells)} cells x {n_draws} draw(s) x {cfg.cohort.patients} patients"
        )
    print(
        f"raisim sweep: {cfg.name}: {len(sweep.cells)} cells x {n_draws} draw(s) x {cfg.cohort.patients} patients "
        f"= {total} patient-protocols on "
        f"{args.devices or len(jax.local_devices())} {jax.default_backend()} device(s), seed {cfg.seed}",
        file=sys.stderr,
    )
    if jax.process_index() != 0:  # a joining process writes only its own chunks
        return _run(args, sweep)
    from .outputs import writing

    with writing(args.out, force=args.force, resume=args.resume):
        return _run(args, sweep)


def _run(args, sweep) -> int:
    """Run the missing work units, then (process 0) summarise, plot and mark the directory complete."""
    import jax
    import matplotlib.pyplot as plt

    from ..io.store import atomic_savefig, mark_complete
    from ..sweep.runner import run_sweep
    from ..sweep.summary import dose_response_table, reference_label, summarise
    from .outputs import compilation_record
    from .plots import duration_response_figure

    cfg = sweep.config
    bar = ProgressBar(" patient-protocols", enabled=not args.no_progress)
    try:
        report = run_sweep(
            sweep,
            args.out,
            resume=args.resume,
            force=args.force,
            devices=args.devices,
            progress=lambda done, total: (check_interrupted(), bar(done, total)),
            config_path=args.config,
        )
    finally:
        bar.close()
    print(
        f"{report.units_done_now} chunk(s) computed, {report.units_skipped} already on disk; "
        f"{report.patient_protocols} patient-protocols in {report.wall_s:.1f} s "
        f"({report.rate:.1f}/s incl. compilation)",
        file=sys.stderr,
    )
    if report.failures:
        print(
            f"warning: solver failed for {report.failures} patient-protocol(s); flagged rows (ok = false)",
            file=sys.stderr,
        )
    if jax.process_index() != 0:
        return 0
    from pathlib import Path

    out = Path(args.out)
    summary = summarise(sweep, out)
    knob = sweep.knob_names[0]
    fig = duration_response_figure(
        summary, knob, dose_response_table(out), f"{cfg.name}: {cfg.cohort.patients} virtual patients per cell"
    )
    atomic_savefig(fig, out / "duration_response.png", dpi=110)
    plt.close(fig)
    _print_sweep(summary, sweep.knob_names, reference_label(sweep))
    mark_complete(
        out,
        "sweep",
        ["manifest.json", "chunks/", "summary.csv", "duration_response.png"],
        compilation=compilation_record(),
    )
    print(
        f"wrote {out}/: chunks/*.parquet, manifest.json, summary.csv, duration_response.png, complete.json",
        file=sys.stderr,
    )
    return 0


def _print_sweep(summary, knobs: list[str], ref: str) -> None:
    metrics = {
        "p_readout_success": "P(readout)",
        "p_treated": "P(treated)",
        "best_lesion_gy_median": "dose Gy",
        "p_cr_pr_6m_enrolled": "P(CR+PR 6m)",
        "pfs_12m": "PFS 12m",
        "p_grade3_ae": "P(AE>=3)",
    }
    wide = summary[summary["metric"].isin(metrics)].pivot_table(
        index=["arm", "genotype", *knobs], columns="metric", values="estimate", sort=False
    )
    diff = summary[summary["metric"] == "p_cr_pr_6m_enrolled"].set_index(["arm", "genotype", *knobs])[
        "diff_vs_reference"
    ]
    head = f"{'arm':<12} {'genotype':<11} " + " ".join(f"{k.split('.')[-1]:>9}" for k in knobs)
    head += "".join(f"{v:>13}" for v in metrics.values()) + f"{'d(CR+PR)':>10}"
    lines = [head]
    for key, row in wide.iterrows():
        arm, geno, *vals = key
        line = f"{str(arm)[:12]:<12} {geno:<11} " + " ".join(f"{v!s:>9}" for v in vals)
        line += "".join(f"{row.get(m, float('nan')):>13.3g}" for m in metrics)
        line += f"{diff.get(key, float('nan')):>+10.3f}"
        lines.append(line)
    lines.append(f"d(CR+PR): paired difference in P(CR+PR at 6 months) vs {ref} (same virtual patients)")
    print("\n".join(lines))
