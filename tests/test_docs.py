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
