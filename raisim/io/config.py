"""The base of every configuration record: a frozen pydantic model that forbids unknown keys.

Protocols, sweeps, calibration settings, parameter cards and trials rows all derive
from :class:`FrozenConfig`, so a misspelt key is an error (one line, exit 2) and a
loaded configuration cannot change under a run, and no ``.inf`` or ``.nan`` reaches the
model (a float field says "Input should be a finite number"): a variant is a copy
(``config.model_copy(update={...})``). A ``true``/``false`` is a number nowhere and a number or
word is ``true``/``false`` nowhere: pydantic's lax mode would read ``stop_day: true`` as day 1.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError


def _admits_bool(annotation) -> bool:
    """Whether a field of this type may hold ``True``/``False`` (anywhere among its alternatives)."""
    if annotation is bool or annotation is Any or annotation is object:
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _admits_bool(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_admits_bool(a) for a in typing.get_args(annotation))
    if origin is Literal:
        return any(isinstance(a, bool) for a in typing.get_args(annotation))
    return False


def _only_bool(annotation) -> bool:
    """Whether a field of this type holds ``True``/``False`` and nothing else (``None`` aside)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _only_bool(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_only_bool(a) for a in args)
    return annotation is bool


def _misplaced(annotation, value) -> str | None:
    """What is wrong with ``value`` for ``annotation`` when a boolean and a number are confused; else None."""
    if isinstance(value, BaseModel) or value is None:
        return None
    if isinstance(value, bool):
        return None if _admits_bool(annotation) else "a number, not true/false"
    if _only_bool(annotation):
        return "true or false"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _misplaced(args[0], value)
    if origin in (typing.Union, types.UnionType):
        found = [_misplaced(a, value) for a in args if a is not type(None)]
        return None if not found or None in found else found[0]
    if isinstance(value, list | tuple) and origin in (list, tuple) and args:
        items = args[:1] if origin is list or args[-1] is Ellipsis else args
        for i, item in enumerate(value):
            problem = _misplaced(items[min(i, len(items) - 1)], item)
            if problem:
                return problem
    if isinstance(value, dict) and origin is dict and len(args) == 2:
        for item in value.values():
            problem = _misplaced(args[1], item)
            if problem:
                return problem
    return None


class FrozenConfig(BaseModel):
    """A frozen pydantic model that forbids extra keys, non-finite numbers (``.inf``, ``.nan``) and a
    boolean where a number belongs (or a number where a boolean does)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_as_number(cls, data):
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                key = field.alias or name
                if key in data:
                    problem = _misplaced(field.annotation, data[key])
                    if problem:  # the error located at the field, as pydantic's own errors are
                        error = PydanticCustomError("bool_number", problem)
                        detail = InitErrorDetails(type=error, loc=(key,), input=data[key])
                        raise ValidationError.from_exception_data(cls.__name__, [detail])
        return data


def _path_text(v: str) -> str:
    if "\x00" in v or not v.strip():
        raise ValueError("a file path (not blank, without a NUL character)")
    return v


#: A file path given in a config (a string the operating system can take as a path).
PathText = Annotated[str, AfterValidator(_path_text)]


__all__ = ["FrozenConfig", "PathText"]
