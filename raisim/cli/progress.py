"""Progress bars on stderr for the library's ``progress(done, total)`` callbacks."""

from __future__ import annotations

import sys


class ProgressBar:
    """A tqdm bar driven by ``bar(done, total)`` calls (counts); created on the first call.

    **Arguments:**

    - `unit`: what is counted, for the bar's label (e.g. ``" patient-protocols"``).
    - `enabled`: False for no bar (``--no-progress``).
    """

    def __init__(self, unit: str, *, enabled: bool = True):
        self.unit = unit
        self.enabled = enabled
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                unit=self.unit,
                unit_scale=True,
                file=sys.stderr,
                mininterval=1.0,
                smoothing=0.1,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]",
            )
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        """Close the bar (if one was drawn)."""
        if self._bar is not None:
            self._bar.close()
