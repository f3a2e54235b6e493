"""The README's validation status: the tagged tests (`fact`, `validation`) run now, and the
calibration's full-model posterior predictive check.

Runs `pytest -m "fact or validation"` with a JUnit report, writes docs/validation.csv (test,
what it checks, outcome) and regenerates the README block `validation-status`.
Usage: python scripts/validation_table.py
"""

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from raisim.cli.report import replace_block, validation_markdown

REPO = Path(__file__).resolve().parents[1]


def _docstrings() -> dict[str, str]:
    """First docstring line (or the name in words) of every test function, by 'file::name'."""
    out = {}
    for path in sorted((REPO / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                doc = ast.get_docstring(node)
                text = doc.splitlines()[0] if doc else node.name.removeprefix("test_").replace("_", " ")
                out[f"{path.stem}::{node.name}"] = text
    return out


def main() -> None:
    xml = REPO / "results" / "validation.xml"
    xml.parent.mkdir(exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "fact or validation",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={xml}",
        ],
        cwd=REPO,
        check=False,
    )
    docs = _docstrings()
    rows = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")[-1]
        name = case.get("name", "")
        base = name.split("[")[0]
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif skipped is not None:
            outcome = "not met (expected failure)" if "xfail" in (skipped.get("type") or "") else "skipped"
        else:
            outcome = "passed"
        rows.append({"test": f"{module}::{name}", "checks": docs.get(f"{module}::{base}", base), "outcome": outcome})
    frame = pd.DataFrame(rows).sort_values("test").reset_index(drop=True)
    frame.to_csv(REPO / "docs" / "validation.csv", index=False)
    readme = REPO / "README.md"
    ppc = pd.read_csv(REPO / "models" / "posterior" / "ppc_full_model.csv")
    readme.write_text(replace_block(readme.read_text(), "validation-status", validation_markdown(frame, ppc)))
    print(f"{(frame.outcome == 'passed').sum()}/{len(frame)} tagged tests passed; README validation table regenerated")


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    main()
