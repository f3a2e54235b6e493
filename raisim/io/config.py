"""The base of every configuration record: a frozen pydantic model that forbids unknown keys.

Protocols, sweeps, calibration settings, parameter cards and trials rows all derive
from :class:`FrozenConfig`, so a misspelt key is an error (one line, exit 2) and a
loaded configuration cannot change under a run, and no ``.inf`` or ``.nan`` reaches the
model (a float field says "Input should be a finite number"): a variant is a copy
(``config.model_copy(update={...})``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class FrozenConfig(BaseModel):
    """A frozen pydantic model that forbids extra keys and non-finite numbers (``.inf``, ``.nan``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _path_text(v: str) -> str:
    if "\x00" in v or not v.strip():
        raise ValueError("a file path (not blank, without a NUL character)")
    return v


#: A file path given in a config (a string the operating system can take as a path).
PathText = Annotated[str, AfterValidator(_path_text)]


__all__ = ["FrozenConfig", "PathText"]
