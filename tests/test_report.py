"""The README's generated tables equal what raisim.cli.report makes from the shipped calibration files."""

import pandas as pd
import pytest
from helpers import REPO

from raisim.cli.report import block, predictive_markdown, replace_block

README = (REPO / "README.md").read_text()


@pytest.mark.parametrize(
    "name",
    ["calibration-diagnostics", "calibration-emulator", "calibration-ppc", "calibration-ppc-full", "calibration-loo"],
)
def test_readme_tables_are_the_generated_ones(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_readme", REPO / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert block(README, name) == module.blocks()[name].strip()


def test_readme_validation_table_is_generated_from_the_committed_results():
    from raisim.cli.report import validation_markdown

    tests = pd.read_csv(REPO / "docs" / "validation.csv")
    ppc = pd.read_csv(REPO / "models" / "posterior" / "ppc_full_model.csv")
    assert block(README, "validation-status") == validation_markdown(tests, ppc).strip()
    assert len(tests) >= 20 and set(tests["outcome"]) <= {"passed", "failed", "skipped", "not met (expected failure)"}


def test_predictive_table_flags_counts_outside_the_interval_and_counts_them():
    frame = pd.DataFrame(
        [
            {
                "trial": "T",
                "arm": "a",
                "endpoint": "uptake",
                "count": "k",
                "n": 10,
                "observed": 9,
                "mean": 3.0,
                "q05": 1,
                "q95": 5,
                "lo95": 0,
                "hi95": 6,
                "p_tail": 0.001,
                "inside95": False,
            },
            {
                "trial": "T",
                "arm": "b",
                "endpoint": "uptake",
                "count": "k",
                "n": 10,
                "observed": 4,
                "mean": 4.2,
                "q05": 2,
                "q95": 7,
                "lo95": 1,
                "hi95": 8,
                "p_tail": 0.9,
                "inside95": True,
            },
        ]
    )
    text = predictive_markdown(frame)
    assert "9 **outside**" in text and "| 4 |" in text
    assert text.endswith("1 of 2 observed counts lie inside their 95 % predictive interval.")
    assert (
        replace_block("a <!-- BEGIN x -->old<!-- END x --> b", "x", "new")
        == "a <!-- BEGIN x -->\nnew\n<!-- END x --> b"
    )


def test_emulator_summary_names_the_largest_differences():
    from raisim.cli.report import emulator_markdown

    v = pd.DataFrame(
        {
            "draw": [0, 0, 1, 1],
            "target": ["1:RAS:readout", "2:RAS:readout", "1:RAS:readout", "2:RAS:readout"],
            "full": [0.5, 0.2, 0.4, 0.9],
            "emulator": [0.52, 0.2, 0.4, 0.3],
            "mc_se": [0.05, 0.05, 0.05, 0.1],
        }
    )
    v["error"] = v["emulator"] - v["full"]
    text = emulator_markdown(v)
    assert "2 held-out parameter draws × 2 arm-level probabilities" in text
    assert "max 0.600" in text and text.index("`2:RAS:readout` 0.30 vs 0.90") < text.index("`1:RAS:readout` 0.52")
