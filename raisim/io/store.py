"""Writing results: output directories, atomic files, the run manifest, the lock and the completion marker.

Every file is written to a temporary name in the same directory and moved
into place with ``os.replace``, so an interrupted run never leaves a
half-written file, and a run refused for bad input writes nothing (commands
validate everything before their first write). Files get the permissions of
the user's umask, like any other file they create.

An output directory is written by one process at a time: :func:`out_dir_lock`
holds an exclusive ``flock`` on ``.raisim.lock`` in it for the whole command.
A command marks its directory complete with :data:`COMPLETE_MARKER`, written
last; a directory without it is an interrupted (or running) run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from .errors import InputError, OutputError
from .files import check_path

LIBRARIES = ("jax", "jaxlib", "diffrax", "equinox", "numpyro", "arviz", "numpy", "scipy", "pydantic", "pandas")


#: Written last by every command that writes a directory; its absence marks an incomplete run.
COMPLETE_MARKER = "complete.json"

#: The lock file of an output directory (hidden: it does not make a directory "non-empty").
LOCK_FILE = ".raisim.lock"

_HELD_LOCKS: dict[str, list] = {}


def dir_entries(p: Path) -> list[Path]:
    """What the directory ``p`` holds, its lock file aside (a directory with only that is empty)."""
    return [q for q in p.iterdir() if q.name != LOCK_FILE]


def check_out_dir(out: str | Path, *, force: bool = False, resume: bool = False, joining: bool = False) -> Path:
    """Refuse an output directory that does not fit (writes nothing).

    **Arguments:**

    - `out`: the directory (created later by :func:`make_out_dir` or :func:`out_dir_lock`).
    - `force`, `resume`: whether a non-empty directory is accepted.
    - `joining`: a process of a multi-process run joining the directory its process 0 holds (the
      lock is not checked).

    **Returns:**

    ``out`` as a path.

    **Raises:**

    - `InputError`: ``out`` is a path the system cannot take (:func:`raisim.io.files.check_path`),
      a file, lies under a file, is being written by another raisim process (named), or is
      non-empty without ``force``/``resume``.
    """
    p = check_path(out, field="--out")
    try:
        if p.exists() and not p.is_dir():
            raise InputError(p, "--out", "a directory path (a file of that name exists)")
        if not joining:
            check_not_locked(p)
        for q in (p, *p.absolute().parents):  # up to the first that exists (its parents exist too)
            if not q.exists():
                if os.path.lexists(q):
                    raise InputError(p, "--out", f"a directory path ({q} is a symbolic link to nothing, or a loop)")
                continue
            if q is not p and not q.is_dir():
                raise InputError(p, "--out", f"a directory path ({q} is a file)")
            break
        if p.is_dir() and dir_entries(p) and not (force or resume):
            raise InputError(p, "--out", "an empty or new directory; pass --force to overwrite")
    except OSError as exc:  # no permission to look, a symbolic-link loop, ...
        raise InputError(p, "--out", f"a directory path that can be used ({exc.strerror or exc})") from None
    return p


def _holder_refusal(p: Path, fd: int) -> InputError:
    """The refusal of a directory whose lock another process holds (``fd``: the open lock file)."""
    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
    return InputError(
        p, "--out", f"a directory no other raisim process is writing to (process {holder} is; wait or pick another)"
    )


def check_not_locked(out: str | Path) -> None:
    """Refuse ``out`` when another process holds its lock (:func:`out_dir_lock`), naming that process.

    Only looks: the lock file is opened read-only and nothing is created, so a dry run and a refused
    run write nothing. A lock this process holds is its own, not a refusal.

    **Raises:**

    - `InputError`: another raisim process is writing ``out``.
    """
    p = Path(out)
    lock = p / LOCK_FILE
    if not lock.is_file() or str(p.resolve()) in _HELD_LOCKS:
        return
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return  # unreadable: out_dir_lock reports it when the run takes the lock
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _holder_refusal(p, fd) from None
    finally:
        os.close(fd)  # releases the probe's shared lock


def make_out_dir(out: str | Path) -> Path:
    """Create ``out`` (and its parents); an ``OSError`` (no permission, read-only, ``/proc``) is an
    :class:`InputError` naming ``--out``."""
    p = Path(out)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(p, "--out", f"a directory that can be created ({exc.strerror or exc})") from None
    return p


@contextlib.contextmanager
def out_dir_lock(out: str | Path):
    """Hold the exclusive lock of the output directory ``out`` (created if needed) for a block.

    Re-entrant within a process (a command and the library function it calls may both take it).
    The lock is an ``flock`` on :data:`LOCK_FILE`: the system releases it when the process ends,
    however it ends, so a killed run never leaves a stale lock.

    **Raises:**

    - `InputError`: another process holds the lock (it names that process), or ``out`` cannot be
      created.
    """
    p = make_out_dir(out)
    key = str(p.resolve())
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key][1] += 1
        try:
            yield p
        finally:
            _HELD_LOCKS[key][1] -= 1
        return
    try:
        fd = os.open(p / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise InputError(p, "--out", f"a writable directory ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        refusal = _holder_refusal(p, fd)
        os.close(fd)
        raise refusal from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD_LOCKS[key] = [fd, 1]
    try:
        yield p
    finally:
        _HELD_LOCKS[key][1] -= 1
        if _HELD_LOCKS[key][1] == 0:
            del _HELD_LOCKS[key]
            os.close(fd)  # releases the flock


def clear_complete(out: str | Path) -> None:
    """Remove the completion marker: called before a command's first write into ``out``."""
    (Path(out) / COMPLETE_MARKER).unlink(missing_ok=True)


def mark_complete(out: str | Path, command: str, outputs: list[str], **extra) -> None:
    """Write the completion marker (the last write of a command): the command, its outputs, the time
    it finished and ``extra`` entries (the command line adds what the run compiled)."""
    write_json(
        Path(out) / COMPLETE_MARKER,
        {
            "command": command,
            "outputs": outputs,
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            **extra,
        },
    )


def _umask() -> int:
    try:  # Linux reports it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename), with the umask's permissions.

    **Raises:**

    - `OutputError`: the file system refused (no space left, no permission, read-only); nothing
      is left at ``path`` that was not there before, and no temporary file remains.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a result file follows the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise OutputError(path, exc) from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: str | None) -> None:
    if tmp is not None and os.path.exists(tmp):
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (temporary file + rename)."""
    atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, obj) -> None:
    """Deterministic JSON (sorted keys, fixed indentation), written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_csv(path: str | Path, frame) -> None:
    """A pandas DataFrame as CSV with full float precision, written atomically."""
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.10g"))


def atomic_savefig(fig, path: str | Path, **kwargs) -> None:
    """Save a matplotlib figure atomically."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", **kwargs)
    atomic_write_bytes(path, buf.getvalue())


def git_commit() -> str | None:
    """The commit of the source tree the package runs from, if it is a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def library_versions() -> dict[str, str | None]:
    """Installed version of each library in :data:`LIBRARIES` (None when not installed)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def config_hash(config: dict) -> str:
    """SHA-256 hex digest of ``config`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def manifest(command: str, config: dict, seed: int, config_path: str | Path | None = None, **extra) -> dict:
    """The run manifest: config and its hash, seed, versions, commit, machine."""
    from .._version import __version__

    return {
        "command": command,
        "config_path": str(config_path) if config_path is not None else None,
        "config": config,
        "config_sha256": config_hash(config),
        "seed": seed,
        "raisim_version": __version__,
        "git_commit": git_commit(),
        "libraries": library_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }
