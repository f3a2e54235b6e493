"""``raisim schema | trials | version``: what the files and the installation hold."""

from __future__ import annotations

import json


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
    from ..io.trials import load_trials

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
    from .._version import __version__
    from ..io.store import library_versions

    print(f"raisim {__version__}")
    for k, v in library_versions().items():
        print(f"  {k} {v}")
    return 0
