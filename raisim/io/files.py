"""Every path the program is given, checked in one place, and one bounded reader for input files.

A path a user gives (a config, a trials table, a posterior, a draws table, ``--out``) is checked
by :func:`check_path` before the operating system sees it: no NUL character, at most
:data:`NAME_MAX_BYTES` bytes per part and :data:`PATH_MAX_BYTES` in all (the system's limits,
which otherwise surface as ``File name too long`` tracebacks). An input file is read by
:func:`read_input_bytes` only: it must be a regular file (not a directory, a device such as
``/dev/zero``, a FIFO that would block forever, or a socket), reachable without a
symbolic-link loop, and no larger than the caller's limit, which is checked before a byte is
read and again while reading (a file that grows is cut off at the limit + 1 byte).
Every refusal is one :class:`~raisim.io.errors.InputError` line.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import InputError

#: The longest part of a path (a file or directory name), bytes: Linux's NAME_MAX.
NAME_MAX_BYTES = 255

#: The longest path, bytes: Linux's PATH_MAX less its terminating NUL.
PATH_MAX_BYTES = 4095


def _shown(text: str) -> str:
    """A path as a message shows it: at most 80 characters."""
    return text if len(text) <= 80 else text[:40] + "..." + text[-37:]


def check_path(path: str | os.PathLike, source: str | Path | None = None, field: str = "<file>") -> Path:
    """``path`` as a :class:`~pathlib.Path` once the operating system can take it.

    **Arguments:**

    - `path`: the path as given.
    - `source`, `field`: where it was given, for the message (default: the path itself, ``<file>``).

    **Returns:**

    The path (not resolved: it may not exist yet).

    **Raises:**

    - `InputError`: a NUL character or a blank path, a part over :data:`NAME_MAX_BYTES` bytes, or a
      path over :data:`PATH_MAX_BYTES` bytes.
    """
    text = os.fspath(path)
    where = _shown(str(text)) if source is None else source
    if not isinstance(text, str) or "\x00" in text or not text.strip():
        raise InputError(where, field, "a file path (not blank, without a NUL character)")
    size = len(os.fsencode(text))
    if size > PATH_MAX_BYTES:
        raise InputError(where, field, f"a path of at most {PATH_MAX_BYTES} bytes", got=f"{size} bytes")
    for part in Path(text).parts:
        if len(os.fsencode(part)) > NAME_MAX_BYTES:
            raise InputError(
                where, field, f"a path whose parts are at most {NAME_MAX_BYTES} bytes each", got=_shown(part)
            )
    return Path(text)


def check_input_file(
    path: str | os.PathLike, kind: str, max_bytes: int, source: str | Path | None = None, field: str = "<file>"
) -> Path:
    """Check that ``path`` is a regular file of at most ``max_bytes`` bytes, without reading it.

    **Arguments:**

    - `path`: the file.
    - `kind`: names it in messages, e.g. ``"protocol YAML file"``.
    - `max_bytes`: the largest file accepted, bytes.
    - `source`, `field`: where the path was given (default: the file itself, ``<file>``).

    **Returns:**

    The path.

    **Raises:**

    - `InputError`: see :func:`check_path`; a missing file, a symbolic-link loop, a directory, a
      file that is not regular (device, FIFO, socket), an unreadable or too large file.
    """
    p = check_path(path, source, field)
    where = p if source is None else source
    got = None if source is None else _shown(str(p))
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError(where, field, f"an existing {kind}", got=got) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(where, field, f"a {kind} reached without a symbolic-link loop", got=got) from None
        raise InputError(where, field, f"a readable {kind} ({exc.strerror or exc})", got=got) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(where, field, f"a {kind}, not a directory", got=got)
    if not stat.S_ISREG(st.st_mode):
        raise InputError(where, field, f"a regular file ({kind}), not a device, pipe or socket", got=got)
    if st.st_size > max_bytes:
        raise InputError(where, field, f"a {kind} of at most {_size(max_bytes)}", got=f"{st.st_size} bytes")
    return p


def read_input_bytes(
    path: str | os.PathLike, kind: str, max_bytes: int, source: str | Path | None = None, field: str = "<file>"
) -> bytes:
    """The bytes of an input file, read only once :func:`check_input_file` accepts it.

    At most ``max_bytes`` + 1 bytes are read, so a file that grows after the check is refused
    without being read to its end. Arguments and refusals as :func:`check_input_file`.
    """
    p = check_input_file(path, kind, max_bytes, source, field)
    where = p if source is None else source
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)  # a file swapped for a FIFO since the check: no wait
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise InputError(where, field, f"a regular file ({kind}), not a device, pipe or socket")
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(where, field, f"a readable {kind} ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise InputError(where, field, f"a {kind} of at most {_size(max_bytes)}", got=f"more than {max_bytes} bytes")
    return data


def _size(n: int) -> str:
    """A byte limit in words (KiB or MiB when exact)."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


__all__ = ["NAME_MAX_BYTES", "PATH_MAX_BYTES", "check_input_file", "check_path", "read_input_bytes"]
