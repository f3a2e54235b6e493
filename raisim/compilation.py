"""Compilation: what jax compiled in this process, and the persistent cache that keeps it for the next.

Compilation is most of what a first run waits for, so raisim counts it rather than guessing. jax
reports each step of a compile through :mod:`jax.monitoring`; :func:`start_counting` listens
(once per process, idempotent) and :func:`compile_stats` returns the totals since then as a
:class:`CompileStats` record. Each backend compile is also logged at debug level on the
``raisim.compilation`` logger (its function name and seconds), so ``logging.DEBUG`` shows what
compiles and when.

A *program* here is one backend compile request: XLA compiled it, or the persistent cache (when
one is configured) handed it back, which counts as a cache hit. On a CPU split into several
devices jax compiles a program once per device it runs on, so the same kernel on a 2-device CLI
is two programs here; :attr:`CompileStats.distinct` counts the distinct function names.

**The persistent cache.** jax can keep each compiled program on disk and load it in the next
process instead of compiling again: :func:`enable_cache` turns that on in a per-user cache
directory (``platformdirs``: ``~/.cache/raisim/jax`` on Linux; ``$RAISIM_CACHE_DIR`` chooses
another, ``RAISIM_CACHE_DIR=off`` disables it), keeping every program (no minimum compile time or
size) up to :data:`CACHE_MAX_BYTES`, beyond which jax evicts the least recently used. The bound
also makes jax take its file lock around reads and writes, so processes that compile one program
at once (xdist workers, a multi-process sweep) do not write one entry together. Only XLA's
backend compile is saved: tracing and lowering run again in every process. jax never caches a
program with a host callback, so the engine's kernel has none (diffrax's argument checks are
traced as its ``ok`` flag instead, :func:`raisim.core.model._checks_as_flags`). On a
CPU split into devices the entries are per device, so a 2-device command line and a 1-device
script share only device 0's. A directory that cannot be written (a read-only home, a full disk)
leaves the cache off with one warning.

Nothing happens at import: :func:`raisim.configure` calls :func:`start_counting` and
:func:`enable_cache`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.monitoring

#: jax's events (``jax._src.dispatch`` and ``jax._src.compiler``, jax 0.10).
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"
BACKEND_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
CACHE_MISS_EVENT = "/jax/compilation_cache/cache_misses"
CACHE_LOAD_EVENT = "/jax/compilation_cache/cache_retrieval_time_sec"

_LOG = logging.getLogger("raisim.compilation")


@dataclass
class CompileStats:
    """Compilation totals of this process since counting started.

    ``programs``: backend compile requests (compiled, or loaded from the persistent cache), a
    count; ``trace_s``, ``lower_s``, ``backend_s``: seconds spent tracing to jaxprs, lowering to
    MLIR and in the backend (XLA compile or cache load); ``load_s``: the part of ``backend_s``
    spent loading programs from the persistent cache (jax times a cache hit as a backend compile;
    ``backend_s - load_s`` is what XLA compiled); ``cache_hits``, ``cache_misses``: persistent-cache
    lookups that found or missed the program (both 0 without a cache); ``by_name``: programs per
    function name.
    """

    programs: int = 0
    trace_s: float = 0.0
    lower_s: float = 0.0
    backend_s: float = 0.0
    load_s: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    by_name: Counter = field(default_factory=Counter)

    @property
    def distinct(self) -> int:
        """Distinct function names among the programs (a kernel compiled for 2 devices counts once)."""
        return len(self.by_name)

    def minus(self, earlier: CompileStats) -> CompileStats:
        """What was compiled since ``earlier`` (a snapshot of the same process)."""
        return CompileStats(
            programs=self.programs - earlier.programs,
            trace_s=self.trace_s - earlier.trace_s,
            lower_s=self.lower_s - earlier.lower_s,
            backend_s=self.backend_s - earlier.backend_s,
            load_s=self.load_s - earlier.load_s,
            cache_hits=self.cache_hits - earlier.cache_hits,
            cache_misses=self.cache_misses - earlier.cache_misses,
            by_name=self.by_name - earlier.by_name,
        )

    @property
    def xla_compile_s(self) -> float:
        """Seconds XLA spent compiling (``backend_s`` less what loading from the cache took)."""
        return self.backend_s - self.load_s

    def to_dict(self) -> dict:
        """The totals as plain JSON values (seconds rounded to ms; ``by_name`` as a mapping)."""
        return {
            "programs": self.programs,
            "distinct": self.distinct,
            "trace_s": round(self.trace_s, 3),
            "lower_s": round(self.lower_s, 3),
            "backend_s": round(self.backend_s, 3),
            "load_s": round(self.load_s, 3),
            "xla_compile_s": round(self.xla_compile_s, 3),
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "by_name": dict(sorted(self.by_name.items())),
        }

    def describe(self) -> str:
        """One line: programs (distinct), trace / lower / backend seconds, cache hits and misses."""
        return (
            f"{self.programs} programs ({self.distinct} distinct): trace {self.trace_s:.1f} s, "
            f"lower {self.lower_s:.1f} s, backend {self.backend_s:.1f} s (of which {self.load_s:.1f} s "
            "loading from the cache); "
            f"cache {self.cache_hits} hits, {self.cache_misses} misses"
        )


_TOTALS = CompileStats()
_LOCK = threading.Lock()
_STARTED = False


def _on_duration(event: str, seconds: float, **kwargs) -> None:
    if event not in (TRACE_EVENT, LOWER_EVENT, BACKEND_EVENT, CACHE_LOAD_EVENT):
        return
    with _LOCK:
        if event == CACHE_LOAD_EVENT:
            _TOTALS.load_s += seconds
        elif event == TRACE_EVENT:
            _TOTALS.trace_s += seconds
        elif event == LOWER_EVENT:
            _TOTALS.lower_s += seconds
        else:
            _TOTALS.backend_s += seconds
            _TOTALS.programs += 1
            _TOTALS.by_name[str(kwargs.get("fun_name", "?"))] += 1
    if event == BACKEND_EVENT:
        _LOG.debug("compiled %s in %.2f s", kwargs.get("fun_name", "?"), seconds)


def _on_event(event: str, **kwargs) -> None:
    if event == CACHE_HIT_EVENT:
        with _LOCK:
            _TOTALS.cache_hits += 1
    elif event == CACHE_MISS_EVENT:
        with _LOCK:
            _TOTALS.cache_misses += 1


def start_counting() -> None:
    """Listen to jax's compile events from now on (once per process; later calls do nothing)."""
    global _STARTED
    with _LOCK:
        if _STARTED:
            return
        _STARTED = True
    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    jax.monitoring.register_event_listener(_on_event)


def compile_stats() -> CompileStats:
    """A snapshot of this process's totals since :func:`start_counting` (zeros before it)."""
    with _LOCK:
        return CompileStats(
            programs=_TOTALS.programs,
            trace_s=_TOTALS.trace_s,
            lower_s=_TOTALS.lower_s,
            backend_s=_TOTALS.backend_s,
            load_s=_TOTALS.load_s,
            cache_hits=_TOTALS.cache_hits,
            cache_misses=_TOTALS.cache_misses,
            by_name=Counter(_TOTALS.by_name),
        )


#: The environment variable naming the cache directory (``off``: no cache).
CACHE_ENV = "RAISIM_CACHE_DIR"

#: The cache's size bound, bytes: beyond it jax evicts the least recently used programs. raisim's
#: programs are 1-20 MB each on a CPU, so this keeps a few hundred.
CACHE_MAX_BYTES = 2 << 30

_CACHE: list[Path | None] = []  # the directory enable_cache chose (once per process)


def default_cache_dir() -> Path | None:
    """The cache directory: ``$RAISIM_CACHE_DIR``, else the per-user cache folder's ``raisim/jax``;
    None when ``$RAISIM_CACHE_DIR`` is ``off`` (or ``0``, ``none``)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() in ("off", "0", "none", "false", "no"):
        return None
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("raisim")) / "jax"


def enable_cache(directory: str | Path | None = None, *, enabled: bool = True) -> Path | None:
    """Turn on jax's persistent compilation cache (once per process; later calls return the first answer).

    **Arguments:**

    - `directory`: where to keep programs (default: :func:`default_cache_dir`).
    - `enabled`: False leaves the cache off (the command line's ``--no-cache``).

    **Returns:**

    The cache directory, or None when the cache is off (disabled, or the directory cannot be
    written: then one warning is logged on the ``raisim.compilation`` logger).
    """
    if _CACHE:
        return _CACHE[0]
    d = (Path(directory) if directory is not None else default_cache_dir()) if enabled else None
    if d is not None:
        try:
            d.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=d, prefix=".probe-"):
                pass
        except OSError as exc:
            _LOG.warning(
                "warning: the compilation cache %s cannot be written (%s); compiling without it",
                d,
                exc.strerror or exc,
            )
            d = None
    if d is not None:
        jax.config.update("jax_compilation_cache_dir", str(d))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
        jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    _CACHE.append(d)
    return d


def cache_dir() -> Path | None:
    """The directory :func:`enable_cache` chose in this process (None: off, or not yet chosen)."""
    return _CACHE[0] if _CACHE else None


__all__ = [
    "CACHE_ENV",
    "CompileStats",
    "cache_dir",
    "compile_stats",
    "default_cache_dir",
    "enable_cache",
    "start_counting",
]
