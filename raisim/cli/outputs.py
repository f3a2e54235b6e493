"""Output directories of the commands: checked before any work, locked while written, marked when complete."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from ..io.store import check_out_dir, clear_complete, out_dir_lock


@contextlib.contextmanager
def writing(out: str | Path, *, force: bool = False, resume: bool = False):
    """Hold ``out`` for a command's writes: lock it (one writer at a time), check it again under the
    lock, and remove an earlier completion marker before the first write; yields the path.

    **Raises:**

    - `InputError`: another process writes ``out``, or it does not fit (see
      :func:`raisim.io.store.check_out_dir`).
    """
    with out_dir_lock(out) as p:
        check_out_dir(p, force=force, resume=resume)
        clear_complete(p)
        yield p


def compilation_record() -> dict:
    """What this process compiled (:func:`raisim.compilation.compile_stats`) and the persistent cache
    it used, for ``complete.json``: programs, trace / lower / backend seconds, cache hits and misses."""
    from ..compilation import cache_dir, compile_stats

    d = cache_dir()
    return {**compile_stats().to_dict(), "cache_dir": str(d) if d is not None else None}


def dry_run_done(command: str, what: str) -> int:
    """Report a dry run that passed every check (one line on stderr); exit code 0."""
    print(f"raisim {command}: ok: {what}; every check passed (dry run: nothing solved or written)", file=sys.stderr)
    return 0
