"""Command line: ``raisim simulate | sweep | predict | schema | trials | version``.

Exit codes: 0 success (per-patient solver failures are flagged in the output
and counted on stderr), 2 bad input (one line naming the file, the field and
what is allowed; nothing is written).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from .devices import use_cpu_cores
from .errors import EXIT_BAD_INPUT, InputError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"error: <command line>: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="raisim", description="TKI-induced redifferentiation and radioiodine therapy simulator.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("simulate", help="simulate one patient through a protocol")
    s.add_argument("config", help="protocol YAML (configs/protocols/*.yaml)")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument(
        "--seed",
        type=int,
        default=0,
        help="cohort seed: missed doses, readout noise and AEs of the patient (default 0)",
    )
    s.add_argument("--patient", type=int, default=0, help="the patient's number in the cohort of --seed (default 0)")
    s.add_argument(
        "--parameters",
        choices=("posterior", "typical"),
        default="posterior",
        help="posterior: the shipped posterior's draw nearest its median, as sweep and predict use it "
        "(default); typical: the parameter cards' values",
    )
    s.add_argument("--draw", type=int, default=None, metavar="N", help="posterior draw N instead of the central one")
    s.add_argument("--force", action="store_true", help="write into a non-empty --out directory")
    s.add_argument(
        "--pk-report",
        type=int,
        metavar="N",
        default=0,
        help="also write pk_report.csv/png: each drug's concentration on the planned doses of the followed course, "
        "typical and 5-95 %% band of N patients",
    )

    w = sub.add_parser("sweep", help="run a protocol grid over a virtual cohort (chunks, summary, figure)")
    w.add_argument("config", help="sweep YAML (configs/sweeps/*.yaml)")
    w.add_argument("--out", required=True, help="run directory")
    w.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (same config)")
    w.add_argument("--force", action="store_true", help="replace the results of an earlier run in --out")
    w.add_argument("--seed", type=int, default=None, help="cohort and draw seed (default: the config's seed)")
    w.add_argument("--patients", type=int, default=None, help="virtual patients per cell (default: the config's)")
    w.add_argument("--devices", type=int, default=None, help="local devices to split patients over (default: all)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() (one process per host)",
    )
    w.add_argument(
        "--coordinator", default=None, help="with --distributed: coordinator HOST:PORT (default: from the cluster)"
    )
    w.add_argument("--num-processes", type=int, default=None, help="with --distributed: number of processes")
    w.add_argument("--process-id", type=int, default=None, help="with --distributed: this process's index")

    pr = sub.add_parser("predict", help="predictive distribution of each row of a trials table")
    pr.add_argument("--trials", required=True, help="CSV in the trials schema (k and RECIST counts optional)")
    pr.add_argument(
        "--posterior",
        default=None,
        help="parameter draws: a posterior.nc of raisim calibrate or a CSV with card:parameter columns "
        "(default: the shipped models/posterior/posterior.nc)",
    )
    pr.add_argument("--prior-draws", type=int, default=0, help="instead: this many draws from the card priors")
    pr.add_argument("--draws", type=int, default=8, help="posterior draws used (evenly spaced; default 8)")
    pr.add_argument("--patients", type=int, default=32, help="virtual patients per arm, genotype and draw (default 32)")
    pr.add_argument("--json", action="store_true", help="print the JSON of the CLI contract")
    pr.add_argument("--seed", type=int, default=0, help="virtual cohort and prior-draw seed")

    ca = sub.add_parser("calibrate", help="fit the population parameters to the trials table (NUTS or SVI)")
    ca.add_argument("config", help="calibration YAML (configs/calibration/*.yaml)")
    ca.add_argument("--out", required=True, help="output directory")
    ca.add_argument(
        "--seed", type=int, default=None, help="design, sampler and predictive seed (default: the config's)"
    )
    ca.add_argument("--method", choices=("nuts", "svi"), default=None, help="override the config's method")
    ca.add_argument("--leave-out", default=None, metavar="TRIAL", help="fit without this trial's rows and predict them")
    ca.add_argument("--emulator", default=None, help="a trained emulator .npz (default: the config's, else shipped)")
    ca.add_argument("--retrain", action="store_true", help="train the emulator on the full model even if one fits")
    ca.add_argument("--force", action="store_true", help="write into a non-empty --out directory")
    ca.add_argument("--no-progress", action="store_true", help="no progress bars")

    sc = sub.add_parser("schema", help="print the JSON schema of protocol, sweep or calibration files")
    sc.add_argument("--config", choices=("protocol", "sweep", "calibration"), default="protocol")
    sc.add_argument("--indent", type=int, default=2)
    sc.add_argument("--markdown", action="store_true", help="print the field reference table (README) instead")

    t = sub.add_parser("trials", help="validate a trials table and print a summary")
    t.add_argument("csv", nargs="?", default=None, help="trials CSV (default: the shipped models/data/trials.csv)")

    sub.add_parser("version", help="print the package and library versions")
    return p


def cmd_simulate(args) -> int:
    """``raisim simulate``: one patient → timecourse.csv, outcome.json, timecourse.png (and a PK report); exit code."""
    from .plots import timecourse_figure
    from .protocol import load_protocol
    from .simulate import simulate
    from .store import atomic_savefig, manifest, prepare_out_dir, write_csv, write_json

    protocol = load_protocol(args.config)  # validate before touching the output directory
    if args.pk_report < 0 or args.pk_report == 1:
        raise InputError(
            "<command line>", "--pk-report", "a number of virtual patients >= 2 (0 = no report)", got=args.pk_report
        )
    if args.patient < 0:
        raise InputError("<command line>", "--patient", "a patient number >= 0", got=args.patient)
    if args.draw is not None and args.parameters == "typical":
        raise InputError(
            "<command line>", "--draw", "a posterior draw, so not with --parameters typical", got=args.draw
        )
    from .uncertainty import parameter_set

    params = parameter_set(args.draw if args.draw is not None else args.parameters)
    out = prepare_out_dir(args.out, force=args.force)
    print(
        f"raisim simulate: {protocol.name} ({protocol.patient.genotype}, "
        f"{len(protocol.patient.lesions)} lesions), seed {args.seed}, patient {args.patient}; "
        f"parameters: {params.describe()}",
        file=sys.stderr,
    )
    result = simulate(
        protocol, seed=args.seed, parameters=params.draw if params.draw is not None else "typical", patient=args.patient
    )
    outcome = result.outcome.to_dict()
    write_csv(out / "timecourse.csv", result.timecourse)
    write_json(out / "outcome.json", outcome)
    import matplotlib.pyplot as plt

    course = result.course.course
    fig = timecourse_figure(
        result.timecourse,
        outcome,
        (protocol.treatment.start_day, course.tki_last_day),
        f"{protocol.name} — {protocol.patient.genotype} — {course.describe()}",
    )
    atomic_savefig(fig, out / "timecourse.png", dpi=110)
    plt.close(fig)
    outputs = ["timecourse.csv", "outcome.json", "timecourse.png", "manifest.json"]
    if args.pk_report:
        from .pkreport import pk_report, pk_report_figure
        from .schedule import build_doses, enumerate_courses

        # the exposure the protocol plans on the followed course (not this patient's missed doses or stop)
        planned = enumerate_courses(protocol)[int(result.record["course"])]
        doses = build_doses(protocol, planned)
        report = pk_report(protocol, doses, args.pk_report, args.seed, planned.tki_last_day + 7)
        write_csv(out / "pk_report.csv", report)
        title = f"{protocol.name}: PK, {protocol.patient.sex}, {protocol.patient.weight_kg:g} kg"
        fig = pk_report_figure(report, args.pk_report, title)
        atomic_savefig(fig, out / "pk_report.png", dpi=110)
        plt.close(fig)
        outputs += ["pk_report.csv", "pk_report.png"]
    write_json(
        out / "manifest.json",
        manifest(
            "simulate",
            protocol.model_dump(mode="json"),
            args.seed,
            args.config,
            outputs=outputs,
            pk_report_patients=args.pk_report,
            patient=args.patient,
            parameters={"source": params.source, "draw": params.draw, "posterior": params.path},
        ),
    )
    if outcome["solver"]["ok"]:
        _print_summary(outcome)
    else:
        print(
            f"warning: solver failed on {len(outcome['solver']['failed_courses'])} course(s) of 1 patient; "
            "see outcome.json 'solver'",
            file=sys.stderr,
        )
    print(f"wrote {out}/: {', '.join(outputs)}", file=sys.stderr)
    return 0


def _print_summary(o: dict) -> None:
    lines = [f"course: {o['course']}"]
    for s in o["scans"]:
        if s["p_success"] is not None:
            lines.append(
                f"scan {s['name']} (day {s['day']}, {s['isotope']}, {s['readout']}): "
                f"P(success) = {s['p_success']:.3f}, drawn: {'success' if s['success'] else 'failure'}"
            )
    r = o["rai"]
    if r["treated"]:
        lines.append(f"RAI day {r['day']}: {r['activity_gbq']:.2f} GBq ({r['policy']}; {r['reason']})")
    else:
        lines.append(f"no RAI ({r['reason']})")
    for les in o["lesions"]:
        lines.append(
            f"  {les['name']:<10} {les['mass_g']:.3g} g: {les['absorbed_dose_gy']:.1f} Gy, BED {les['bed_gy']:.1f} Gy"
        )
    lines.append(
        "RECIST: "
        + ", ".join(f"{r['month']:g} mo {r['category']} ({r['change_from_baseline_pct']:+.0f} %)" for r in o["recist"])
    )
    lines.append(f"P(grade >= 3 AE) = {o['toxicity']['p_grade3_ae']:.3f}")
    print("\n".join(lines))


def cmd_sweep(args) -> int:
    """``raisim sweep``: run a sweep grid into ``--out`` (chunks, summary.csv, figure); exit code."""
    import jax

    if args.distributed:
        given = {
            "coordinator_address": args.coordinator,
            "num_processes": args.num_processes,
            "process_id": args.process_id,
        }
        jax.distributed.initialize(**{k: v for k, v in given.items() if v is not None})
    import matplotlib.pyplot as plt

    from .plots import duration_response_figure
    from .runner import check_run_dir, parameter_draws, run_sweep
    from .store import atomic_savefig
    from .summary import dose_response_table, reference_label, summarise
    from .sweep import load_sweep

    sweep = load_sweep(args.config, seed=args.seed, patients=args.patients)  # validate before touching --out
    if args.devices is not None and not 1 <= args.devices <= len(jax.local_devices()):
        raise InputError(
            "<command line>", "--devices", f"1 to {len(jax.local_devices())} (local devices)", got=args.devices
        )
    if jax.process_index() == 0:  # the other processes join the directory process 0 prepares
        check_run_dir(args.out, sweep, resume=args.resume, force=args.force)
    cfg = sweep.config
    n_draws = len(parameter_draws(sweep))
    print(
        f"raisim sweep: {cfg.name}: {len(sweep.cells)} cells x {n_draws} draw(s) x {cfg.cohort.patients} patients "
        f"= {len(sweep.cells) * n_draws * cfg.cohort.patients} patient-protocols on "
        f"{args.devices or len(jax.local_devices())} {jax.default_backend()} device(s), seed {cfg.seed}",
        file=sys.stderr,
    )
    report = run_sweep(
        sweep,
        args.out,
        resume=args.resume,
        force=args.force,
        devices=args.devices,
        progress=not args.no_progress,
        config_path=args.config,
    )
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
    print(f"wrote {out}/: chunks/*.parquet, manifest.json, summary.csv, duration_response.png", file=sys.stderr)
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


def cmd_predict(args) -> int:
    """``raisim predict``: the predictive distribution of each trials row, as a table or JSON; exit code."""
    from .predict import predict_table, table_lines
    from .runner import SHIPPED_POSTERIOR
    from .trials import load_trials
    from .uncertainty import DEFAULT_PRIOR_PARAMETERS, evenly_spaced, prior_draws, read_draws, typical_draws

    table = load_trials(args.trials, observed=False)
    if args.patients < 1:
        raise InputError("<command line>", "--patients", "a number of virtual patients >= 1", got=args.patients)
    if args.prior_draws < 0 or args.draws < 1:
        raise InputError("<command line>", "--prior-draws/--draws", "--prior-draws >= 0 and --draws >= 1")
    posterior = args.posterior
    if posterior is None and args.prior_draws == 0 and SHIPPED_POSTERIOR.exists():
        posterior = SHIPPED_POSTERIOR
    if posterior is not None:
        draws = evenly_spaced(read_draws(posterior, "<command line>", "--posterior"), args.draws)
        source = f"{len(draws)} posterior draws from {posterior}"
    elif args.prior_draws:
        draws = prior_draws(list(DEFAULT_PRIOR_PARAMETERS), args.prior_draws, args.seed)
        source = f"{args.prior_draws} prior draws"
    else:
        draws = typical_draws()
        source = "the cards' typical values (no posterior shipped)"
    print(
        f"raisim predict: {len(table.rows)} rows of {table.path}; parameters: {source}; "
        f"{args.patients} virtual patients per arm, genotype and draw, seed {args.seed}",
        file=sys.stderr,
    )
    results = predict_table(table, draws, patients=args.patients, seed=args.seed)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print("\n".join(table_lines(results)))
    return 0


def cmd_calibrate(args) -> int:
    """``raisim calibrate``: see :func:`raisim.calibrate.run_calibration`; exit code."""
    from .calibrate import run_calibration

    return run_calibration(args)


def cmd_schema(args) -> int:
    """``raisim schema``: print the JSON schema (or the README field table) of a config kind; exit code."""
    from .report import config_model, config_reference_markdown

    if args.markdown:
        print(config_reference_markdown(args.config))
    else:
        model = config_model(args.config)
        print(json.dumps(model.model_json_schema(), indent=args.indent))
    return 0


def cmd_trials(args) -> int:
    """``raisim trials``: validate a trials table and print its rows per endpoint and trial; exit code."""
    from .trials import load_trials

    table = load_trials(args.csv)
    by_trial = table.by_trial()
    counts: dict[str, int] = {}
    for row in table.rows:
        counts[row.endpoint] = counts.get(row.endpoint, 0) + 1
    print(
        f"{table.path}: {len(table.rows)} rows, {len(by_trial)} trials; "
        + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    )
    for trial, rows in by_trial.items():
        print(f"  {trial:<16} {len(rows)} rows, n = {sum(r.n for r in rows)} patient-endpoints")
    return 0


def cmd_version(args) -> int:
    """``raisim version``: print the package and library versions; exit code."""
    from . import __version__
    from .store import library_versions

    print(f"raisim {__version__}")
    for k, v in library_versions().items():
        print(f"  {k} {v}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv``) and run the command; returns the exit code (0, 2 bad input, 130)."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    args = _parser().parse_args(argv)
    handler = {
        "simulate": cmd_simulate,
        "sweep": cmd_sweep,
        "predict": cmd_predict,
        "calibrate": cmd_calibrate,
        "schema": cmd_schema,
        "trials": cmd_trials,
        "version": cmd_version,
    }[args.command]
    try:
        use_cpu_cores()  # one jax CPU device per core: cohorts split over them (no effect once jax has started)
        return handler(args)
    except InputError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """Console-script entry point: :func:`main`, then exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
