"""Input errors that stop a run with one line and exit code 2.

Every user-facing validation failure is raised as :class:`InputError`. Its
message names the file, the field (and the row, for CSV input) and what is
allowed, on one line, so that the CLI can print it without a traceback.
"""

from __future__ import annotations

from pathlib import Path

EXIT_BAD_INPUT = 2

#: Exit codes of a run ended by SIGINT (Ctrl-C) or SIGTERM: 128 + the signal number, as shells report.
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class InputError(ValueError):
    """Bad user input: unknown names, impossible values, malformed files.

    **Arguments:**

    - `file`: the file the bad value came from (``"<input>"`` when none).
    - `field`: the dotted field path inside the file, e.g. ``scans[0].day``.
    - `allowed`: what would have been accepted, in words.
    - `row`: 1-based data row for tabular input (the header is row 0).
    - `got`: the offending value, echoed back when short enough to help.
    """

    def __init__(
        self,
        file: str | Path | None,
        field: str,
        allowed: str,
        *,
        row: int | None = None,
        got: object = None,
    ):
        self.file = str(file) if file is not None else "<input>"
        self.field = field
        self.allowed = allowed
        self.row = row
        self.got = got
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message on one line: ``file[, row N]: field 'F' (got …): allowed``."""
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        got = ""
        if self.got is not None:
            text = repr(self.got)
            got = f" (got {text if len(text) <= 60 else text[:57] + '...'})"
        line = f"{where}: field '{self.field}'{got}: {self.allowed}"
        return " ".join(line.split())


class OutputError(InputError):
    """An output that cannot be written (no space left, no permission, a read-only file system).

    The same one-line contract as :class:`InputError` (``field`` is ``<write>``), so the command
    line ends with one line and exit code 2; what was already written stays whole (every file is
    written through a temporary file), and a sweep directory stays resumable.
    """

    def __init__(self, file: str | Path, exc: OSError):
        reason = exc.strerror or str(exc)
        super().__init__(file, "<write>", f"a writable location with free space (the system said: {reason})")
