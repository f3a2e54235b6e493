"""``raisim predict``: the predictive distribution of each row of a trials table."""

from __future__ import annotations

import json
import sys

from ..io.errors import InputError


def cmd_predict(args) -> int:
    """``raisim predict``: the predictive distribution of each trials row, as a table or JSON; exit code."""
    from ..calibration.predict import predict_table, table_lines
    from ..io.parameter_draws import DEFAULT_PRIOR_PARAMETERS, evenly_spaced, prior_draws, read_draws, typical_draws
    from ..io.trials import load_trials
    from ..sweep.runner import SHIPPED_POSTERIOR

    table = load_trials(args.trials, observed=False)
    if args.patients < 1:
        raise InputError("<command line>", "--patients", "a number of virtual patients >= 1", got=args.patients)
    if args.prior_draws < 0 or args.draws < 1:
        raise InputError("<command line>", "--prior-draws/--draws", "--prior-draws >= 0 and --draws >= 1")
    if args.posterior is not None and args.prior_draws:
        raise InputError(
            "<command line>", "--posterior/--prior-draws", "one source of draws: --posterior or --prior-draws, not both"
        )
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
    from ..calibration.targets import table_targets
    from ..engine.plan import plan_cell

    runs = table_targets(table)[1]
    for run in runs:
        plan_cell(run.protocol)  # every arm's courses on its output grid: what the solve will need
    if args.dry_run:
        from .outputs import dry_run_done

        return dry_run_done("predict", f"{table.path}: {len(table.rows)} rows; parameters: {source}")
    print(
        f"raisim predict: {len(table.rows)} rows of {table.path}; parameters: {source}; "
        f"{args.patients} virtual patients per arm, genotype and draw, seed {args.seed}",
        file=sys.stderr,
    )
    from .interrupt import check_interrupted
    from .progress import ProgressBar

    per_run = args.patients * max(len(draws), 1)  # patient-protocols of one arm and genotype
    total = len(runs) * per_run
    bar = ProgressBar(" patient-protocols", enabled=not args.no_progress)
    done = 0

    def progress(_run) -> None:
        nonlocal done
        done += per_run
        check_interrupted()
        bar(done, total)

    bar(0, total)
    try:
        results = predict_table(table, draws, patients=args.patients, seed=args.seed, progress=progress)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print("\n".join(table_lines(results)))
    return 0
