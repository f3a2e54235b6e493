import pytest
from helpers import REPO

from raisim.cli.report import CONFIG_KINDS, block, config_reference_markdown


def test_readme_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert text.split("```")[1].strip().splitlines() == ["make demo", "make test"]


@pytest.mark.parametrize("kind", CONFIG_KINDS)
def test_readme_config_reference_is_the_generated_one(kind):
    """The README's protocol, sweep and calibration field tables are generated from the
    pydantic models (`make readme-tables`), so a new or renamed field shows up here."""
    assert block((REPO / "README.md").read_text(), f"{kind}-fields") == config_reference_markdown(kind).strip()


@pytest.mark.parametrize("kind", CONFIG_KINDS)
def test_every_config_field_is_described(kind):
    rows = [r for r in config_reference_markdown(kind).splitlines()[2:]]
    assert len(rows) >= 10
    for r in rows:
        assert r.rstrip(" |").split("|")[-1].strip(), r


def test_schema_cli_prints_each_reference(capsys):
    from raisim.cli import main

    for kind in CONFIG_KINDS:
        assert main(["schema", "--config", kind, "--markdown"]) == 0
        assert capsys.readouterr().out.strip() == config_reference_markdown(kind).strip()
    assert main(["schema", "--config", "sweep"]) == 0
    assert '"grid"' in capsys.readouterr().out


def test_readme_python_examples_run():
    import re

    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    import os

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        for code in blocks:
            exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)


def test_model_doc_parameter_tables_match_the_cards():
    """Every `| \\`name\\` | value | ...` row of docs/model.md is a card parameter with that typical value."""
    import re

    from raisim import all_cards

    values: dict[str, list[float]] = {}
    for card in all_cards().values():
        for name, entry in card.parameters.items():
            values.setdefault(name, []).append(entry.value)
    rows = re.findall(r"^\| `([A-Za-z0-9_]+)` \| ([-+0-9.eE]+) \|", (REPO / "docs" / "model.md").read_text(), re.M)
    assert len(rows) > 100
    for name, text in rows:
        assert name in values, name
        shown = float(text)
        assert any(abs(v - shown) <= 5e-3 * max(abs(v), 1e-12) + 1e-12 for v in values[name]), (name, text)


def _own_docstring(obj) -> str | None:
    """The docstring ``obj`` itself defines, or None (missing, inherited or auto-generated).

    A class's doc must be in its own ``__dict__`` and differ from every base's (equinox
    Module, pydantic BaseModel, Exception, ...); a dataclass or equinox Module without a
    docstring gets its signature ``Name(field: type, ...)`` as ``__doc__``, which does not
    count. A wrapped function (``eqx.filter_jit``) is judged by the function it wraps.
    """
    import inspect

    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        inherited = {getattr(base, "__doc__", None) for base in obj.__mro__[1:]}
        if not doc or doc in inherited or doc.startswith(f"{obj.__name__}("):
            return None
        return doc.strip() or None
    fn = inspect.unwrap(obj)
    doc = getattr(fn, "__doc__", None)
    if not inspect.isfunction(fn) and doc == getattr(type(fn), "__doc__", None):
        return None  # a callable instance showing its class's doc
    return (doc or "").strip() or None


def test_every_public_name_has_a_docstring():
    """Every function and class in ``raisim.__all__`` documents itself (constants, modules and
    type aliases are skipped); the helper is first checked to catch what it must catch."""
    import dataclasses
    import inspect
    import typing

    import equinox as eqx
    from pydantic import BaseModel

    import raisim

    @dataclasses.dataclass
    class _Bare:
        x: int

    class _BareModule(eqx.Module):
        x: int

    class _BareModel(BaseModel):
        x: int

    class _BareError(ValueError):
        pass

    def _bare_function():
        pass

    for bare in (_Bare, _BareModule, _BareModel, _BareError, _bare_function, eqx.filter_jit(_bare_function)):
        assert _own_docstring(bare) is None, bare

    def _documented():
        """Documented."""

    assert _own_docstring(_documented) == "Documented."

    checked, missing = [], []
    for name in raisim.__all__:
        obj = getattr(raisim, name)
        if inspect.ismodule(obj) or typing.get_origin(obj) is not None or not callable(obj):
            continue  # constants (STANDARD_REGIMENS, TARGETS), modules, type aliases
        checked.append(name)
        if _own_docstring(obj) is None:
            missing.append(name)
    assert len(checked) >= 70, checked
    assert not missing, f"public names without a docstring of their own: {missing}"
