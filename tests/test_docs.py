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
