"""``raisim check FILE``: validate a file as the command that reads it would, and stop.

A protocol is checked as ``raisim simulate --dry-run``, a sweep as ``raisim sweep --dry-run``,
a calibration config as ``raisim calibrate --dry-run`` and a trials CSV as ``raisim predict
--dry-run``: the same code paths, stopped before the first solve or write.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io.errors import InputError

#: Top-level keys that say what a YAML file is (the first match wins).
_KIND_KEYS = (("sweep", ("grid",)), ("protocol", ("patient", "treatment")), ("calibration", ("nuts", "svi", "method")))


def file_kind(path: str | Path) -> str:
    """What ``path`` is: ``trials`` for a .csv, else read from the YAML's top-level keys.

    **Raises:**

    - `InputError`: unreadable or not a mapping, or no key that tells.
    """
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return "trials"
    from ..io.cards import read_yaml

    raw = read_yaml(p, "YAML file")
    if isinstance(raw, dict):
        for kind, keys in _KIND_KEYS:
            if any(k in raw for k in keys):
                return kind
    raise InputError(
        p,
        "<root>",
        "a protocol (patient, treatment), sweep (grid) or calibration (method, nuts, svi) mapping; or --kind",
    )


def cmd_check(args) -> int:
    """``raisim check``: the dry run of the command that reads ``args.file``; exit code 0 or 2."""
    kind = args.kind or file_kind(args.file)
    common = {"dry_run": True, "out": None, "force": False}
    if kind == "protocol":
        from .simulate import cmd_simulate

        ns = {"config": args.file, "seed": 0, "patient": 0, "parameters": "posterior", "draw": None, "pk_report": 0}
        return cmd_simulate(argparse.Namespace(**common, **ns))
    if kind == "sweep":
        from .sweep import cmd_sweep

        ns = {"config": args.file, "resume": False, "seed": None, "patients": None, "devices": None}
        ns |= {"no_progress": True, "distributed": False}
        return cmd_sweep(argparse.Namespace(**common, **ns))
    if kind == "calibration":
        from .calibrate import cmd_calibrate

        ns = {"config": args.file, "seed": None, "method": None, "leave_out": None, "emulator": None}
        ns |= {"retrain": False, "no_progress": True}
        return cmd_calibrate(argparse.Namespace(**common, **ns))
    from .predict import cmd_predict

    ns = {"trials": args.file, "posterior": None, "prior_draws": 0, "draws": 8, "patients": 32, "json": False}
    ns |= {"no_progress": True}
    return cmd_predict(argparse.Namespace(**common, **ns, seed=0))
