from helpers import REPO

from raisim.protocol import field_reference_markdown


def test_readme_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert text.split("```")[1].strip().splitlines() == ["make demo", "make test"]


def test_readme_field_table_is_the_generated_one():
    text = (REPO / "README.md").read_text()
    start = text.index("<!-- BEGIN protocol-fields -->") + len("<!-- BEGIN protocol-fields -->")
    end = text.index("<!-- END protocol-fields -->")
    assert text[start:end].strip() == field_reference_markdown().strip()


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
