"""SIGINT and SIGTERM: a one-line message and exit 130/143, never a crash.

While a command runs, the first SIGINT (Ctrl-C) or SIGTERM raises :class:`Interrupted` in the
main thread, where Python next runs bytecode (a solve in progress finishes its XLA call first).
The command unwinds: a file being written is discarded (every file goes through a temporary
name), so the output directory keeps only whole files, and it lacks ``complete.json``; a sweep
continues with ``--resume``. A second signal while that happens ends the process at once
(``os._exit``), as a user pressing Ctrl-C twice expects, with one line saying so.

The console-script entry ends an interrupted process with ``os._exit`` after flushing its
streams: an ordinary interpreter exit tears jax down while its threads may still run, which
crashed (a segmentation fault, exit 139) on one of two tries before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error of the program
    """The process received SIGINT or SIGTERM (``signum``) while a command ran."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``SIGINT``."""
        return signal.Signals(self.signum).name


_RECEIVED: list[int] = []


def _exit_now(signum, frame) -> None:
    name = signal.Signals(signum).name
    line = (
        f"raisim: interrupted again by {name}; stopped at once "
        "(an output directory without complete.json is incomplete)\n"
    )
    with contextlib.suppress(OSError):
        os.write(2, line.encode())  # one line even now: a raw write, safe inside a signal handler
    os._exit(128 + signum)


def _interrupt(signum, frame) -> None:
    for s in HANDLED:  # a second signal while unwinding ends the process at once
        signal.signal(s, _exit_now)
    _RECEIVED.append(signum)
    raise Interrupted(signum)


def check_interrupted() -> None:
    """Raise :class:`Interrupted` if a signal arrived in this block but its exception was lost (raised
    inside a finaliser or a callback that swallows exceptions); called between units of work."""
    if _RECEIVED:
        raise Interrupted(_RECEIVED[0])


@contextlib.contextmanager
def interruptible():
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted`; the previous handlers come
    back after it. Outside the main thread (where Python cannot set handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HANDLED}
    _RECEIVED.clear()
    for s in HANDLED:
        signal.signal(s, _interrupt)
    try:
        yield
        check_interrupted()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _RECEIVED.clear()
