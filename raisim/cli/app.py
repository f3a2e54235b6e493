"""Command line: ``raisim simulate | sweep | predict | calibrate | check | schema | trials | version``.

Exit codes: 0 success (per-patient solver failures are flagged in the output
and counted on stderr), 2 bad input or an output that cannot be written (one
line naming the file, the field and what is allowed; nothing half-written),
130 SIGINT (Ctrl-C) and 143 SIGTERM (one line; see :mod:`raisim.cli.interrupt`).
``--dry-run`` on a command, or ``raisim check FILE``, runs every check the
command makes before its first solve or write, and stops there.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import warnings

from ..io.errors import EXIT_BAD_INPUT, EXIT_SIGINT, EXIT_SIGTERM, InputError
from ..io.limits import MAX_DRAWS, MAX_PATIENTS_PER_CELL, MAX_PK_REPORT_PATIENTS, MAX_SEED
from ..runtime import configure
from .interrupt import Interrupted, interruptible

_NO_CACHE = (
    "compile without the persistent compilation cache (default: on, in $RAISIM_CACHE_DIR or the per-user "
    "cache folder; RAISIM_CACHE_DIR=off disables it too)"
)
_DRY_RUN = "run every check the command makes (inputs, output directory, the solve's plan), then stop: nothing written"


def _int_in(low: int, high: int | None = None):
    """An argparse type: an integer from ``low`` to ``high`` (inclusive; None: no upper bound),
    refused in one line naming the range, before anything runs."""
    words = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"

    def parse(text: str) -> int:
        text = text.strip()
        if not re.fullmatch(r"[+-]?[0-9]{1,20}", text):  # ASCII digits; no 4,300-digit parse
            raise argparse.ArgumentTypeError(f"{words} (got {text[:30]!r})")
        value = int(text)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{words} (got {value})")
        return value

    parse.__name__ = "integer"
    return parse


_SEED = _int_in(0, MAX_SEED)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"error: <command line>: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="raisim", description="TKI-induced redifferentiation and radioiodine therapy simulator.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("simulate", help="simulate one patient through a protocol")
    s.add_argument("config", help="protocol YAML (configs/protocols/*.yaml)")
    s.add_argument("--out", default=None, help="output directory (required unless --dry-run)")
    s.add_argument(
        "--seed",
        type=_SEED,
        default=0,
        help="cohort seed: missed doses, readout noise and AEs of the patient (default 0)",
    )
    s.add_argument(
        "--patient",
        type=_int_in(0, MAX_PATIENTS_PER_CELL - 1),
        default=0,
        help="the patient's number in the cohort of --seed (default 0)",
    )
    s.add_argument(
        "--parameters",
        choices=("posterior", "typical"),
        default="posterior",
        help="posterior: the shipped posterior's draw nearest its median, as sweep and predict use it "
        "(default); typical: the parameter cards' values",
    )
    s.add_argument(
        "--draw", type=_int_in(0), default=None, metavar="N", help="posterior draw N instead of the central one"
    )
    s.add_argument("--force", action="store_true", help="write into a non-empty --out directory")
    s.add_argument("--dry-run", action="store_true", help=_DRY_RUN)
    s.add_argument("--no-cache", action="store_true", help=_NO_CACHE)
    s.add_argument(
        "--pk-report",
        type=_int_in(0, MAX_PK_REPORT_PATIENTS),
        metavar="N",
        default=0,
        help="also write pk_report.csv/png: each drug's concentration on the planned doses of the followed course, "
        "typical and 5-95 %% band of N patients",
    )

    w = sub.add_parser("sweep", help="run a protocol grid over a virtual cohort (chunks, summary, figure)")
    w.add_argument("config", help="sweep YAML (configs/sweeps/*.yaml)")
    w.add_argument("--out", default=None, help="run directory (required unless --dry-run)")
    w.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (same config)")
    w.add_argument("--force", action="store_true", help="replace the results of an earlier run in --out")
    w.add_argument("--seed", type=_SEED, default=None, help="cohort and draw seed (default: the config's seed)")
    w.add_argument(
        "--patients",
        type=_int_in(1, MAX_PATIENTS_PER_CELL),
        default=None,
        help="virtual patients per cell (default: the config's)",
    )
    w.add_argument(
        "--devices", type=_int_in(1), default=None, help="local devices to split patients over (default: all)"
    )
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.add_argument("--dry-run", action="store_true", help=_DRY_RUN)
    w.add_argument("--no-cache", action="store_true", help=_NO_CACHE)
    w.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() (one process per host)",
    )
    w.add_argument(
        "--coordinator", default=None, help="with --distributed: coordinator HOST:PORT (default: from the cluster)"
    )
    w.add_argument("--num-processes", type=_int_in(1), default=None, help="with --distributed: number of processes")
    w.add_argument("--process-id", type=_int_in(0), default=None, help="with --distributed: this process's index")

    pr = sub.add_parser("predict", help="predictive distribution of each row of a trials table")
    pr.add_argument("--trials", required=True, help="CSV in the trials schema (k and RECIST counts optional)")
    pr.add_argument(
        "--posterior",
        default=None,
        help="parameter draws: a posterior.nc of raisim calibrate or a CSV with card:parameter columns "
        "(default: the shipped models/posterior/posterior.nc)",
    )
    pr.add_argument(
        "--prior-draws", type=_int_in(0, MAX_DRAWS), default=0, help="instead: this many draws from the card priors"
    )
    pr.add_argument(
        "--draws", type=_int_in(1, MAX_DRAWS), default=8, help="posterior draws used (evenly spaced; default 8)"
    )
    pr.add_argument(
        "--patients",
        type=_int_in(1, MAX_PATIENTS_PER_CELL),
        default=32,
        help="virtual patients per arm, genotype and draw (default 32)",
    )
    pr.add_argument("--json", action="store_true", help="print the JSON of the CLI contract")
    pr.add_argument("--seed", type=_SEED, default=0, help="virtual cohort and prior-draw seed")
    pr.add_argument("--dry-run", action="store_true", help=_DRY_RUN)
    pr.add_argument("--no-cache", action="store_true", help=_NO_CACHE)
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")

    ca = sub.add_parser("calibrate", help="fit the population parameters to the trials table (NUTS or SVI)")
    ca.add_argument("config", help="calibration YAML (configs/calibration/*.yaml)")
    ca.add_argument("--out", default=None, help="output directory (required unless --dry-run)")
    ca.add_argument(
        "--seed", type=_SEED, default=None, help="design, sampler and predictive seed (default: the config's)"
    )
    ca.add_argument("--method", choices=("nuts", "svi"), default=None, help="override the config's method")
    ca.add_argument("--leave-out", default=None, metavar="TRIAL", help="fit without this trial's rows and predict them")
    ca.add_argument("--emulator", default=None, help="a trained emulator .npz (default: the config's, else shipped)")
    ca.add_argument("--retrain", action="store_true", help="train the emulator on the full model even if one fits")
    ca.add_argument("--force", action="store_true", help="write into a non-empty --out directory")
    ca.add_argument("--no-progress", action="store_true", help="no progress bars")
    ca.add_argument("--dry-run", action="store_true", help=_DRY_RUN)
    ca.add_argument("--no-cache", action="store_true", help=_NO_CACHE)

    ch = sub.add_parser(
        "check", help="validate a protocol, sweep or calibration YAML or a trials CSV as its command would"
    )
    ch.add_argument("file", help="the file to check")
    ch.add_argument(
        "--kind",
        choices=("protocol", "sweep", "calibration", "trials"),
        default=None,
        help="what the file is (default: trials for .csv, else read from the YAML's keys)",
    )

    sc = sub.add_parser("schema", help="print the JSON schema of protocol, sweep or calibration files")
    sc.add_argument("--config", choices=("protocol", "sweep", "calibration"), default="protocol")
    sc.add_argument("--indent", type=_int_in(0, 16), default=2)
    sc.add_argument("--markdown", action="store_true", help="print the field reference table (README) instead")

    t = sub.add_parser("trials", help="validate a trials table and print a summary")
    t.add_argument("csv", nargs="?", default=None, help="trials CSV (default: the shipped models/data/trials.csv)")

    sub.add_parser("version", help="print the package and library versions")
    return p


class _CurrentStderr(logging.StreamHandler):
    """A stream handler on whatever ``sys.stderr`` is when a record comes (not when it was made)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _HeldWarnings(logging.Handler):
    """The ``raisim`` logger's stderr handler, holding warnings of :data:`HELD_LOGGERS` back.

    A held warning (the posterior was fitted to another model) is shown when the command shows it
    is running (its first progress message) or when it ends well; a command that stops on bad input
    prints its one line only, and the warning comes with the corrected run.
    """

    # (not release/acquire: logging.Handler's own lock methods have those names)

    def __init__(self, target: logging.Handler):
        super().__init__()
        self.target = target
        self.held: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name in HELD_LOGGERS and record.levelno >= logging.WARNING:
            self.held.append(record)
            return
        self.show_held()
        self.target.handle(record)

    def show_held(self) -> None:
        held, self.held = self.held, []
        for record in held:
            self.target.handle(record)

    def drop_held(self) -> None:
        self.held = []


#: Loggers whose warnings wait for the command to run (:class:`_HeldWarnings`).
HELD_LOGGERS = ("raisim.io.model_identity",)


def _log_to_stderr() -> _HeldWarnings:
    """The library's ``raisim`` logger (progress messages of long runs) on stderr, once; other
    libraries' loggers are left alone. Returns its handler (:class:`_HeldWarnings`)."""
    log = logging.getLogger("raisim")
    held = next((h for h in log.handlers if isinstance(h, _HeldWarnings)), None)
    if held is None:
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("raisim: %(message)s"))
        held = _HeldWarnings(handler)
        log.addHandler(held)
        log.setLevel(logging.INFO)
        log.propagate = False
    held.drop_held()
    return held


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv``) and run the command.

    **Returns:**

    The exit code: 0, 2 (bad input or an unwritable output: one line on stderr), 130 (SIGINT) or
    143 (SIGTERM).
    """
    try:
        with interruptible():
            return _main(argv)
    except (Interrupted, KeyboardInterrupt) as exc:
        code = exc.exit_code if isinstance(exc, Interrupted) else EXIT_SIGINT
        name = exc.name if isinstance(exc, Interrupted) else "SIGINT"
        print(
            f"raisim: interrupted by {name}; files already written are whole, and an output directory "
            "without complete.json is incomplete (a sweep continues with --resume)",
            file=sys.stderr,
        )
        return code


def _main(argv: list[str] | None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    held = _log_to_stderr()
    import matplotlib

    matplotlib.use("Agg")  # figures go to files
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad command line (2, its one line already printed)
        return exc.code if isinstance(exc.code, int) else 0
    from .calibrate import cmd_calibrate
    from .check import cmd_check
    from .info import cmd_schema, cmd_trials, cmd_version
    from .predict import cmd_predict
    from .simulate import cmd_simulate
    from .sweep import cmd_sweep

    handler = {
        "simulate": cmd_simulate,
        "sweep": cmd_sweep,
        "predict": cmd_predict,
        "calibrate": cmd_calibrate,
        "check": cmd_check,
        "schema": cmd_schema,
        "trials": cmd_trials,
        "version": cmd_version,
    }[args.command]
    try:
        # float64, the XLA CPU flag, one jax CPU device per core (before jax starts), the compile cache
        configure(cache=not getattr(args, "no_cache", False))
        if getattr(args, "out", "") is None and not args.dry_run:
            raise InputError("<command line>", "--out", "an output directory (required unless --dry-run)")
        code = handler(args)
    except InputError as exc:
        held.drop_held()
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if code == EXIT_BAD_INPUT:  # a command that reports its own bad input (its one line is printed)
        held.drop_held()
    held.show_held()
    return code


def entry() -> None:
    """Console-script entry point: :func:`main`, then exit with its code.

    An interrupted run ends with ``os._exit`` once its streams are flushed: the ordinary interpreter
    exit tears jax down while its threads may still run (it crashed with a segmentation fault).
    """
    code = main()
    if code in (EXIT_SIGINT, EXIT_SIGTERM):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
