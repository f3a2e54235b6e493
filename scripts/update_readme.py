"""Regenerate the README's generated tables: calibration results (models/posterior/) and the config references."""

from pathlib import Path

import pandas as pd

from raisim.cli.report import (
    CONFIG_KINDS,
    config_reference_markdown,
    diagnostics_markdown,
    emulator_markdown,
    predictive_markdown,
    replace_block,
)

REPO = Path(__file__).resolve().parents[1]
POST = REPO / "models" / "posterior"


def blocks() -> dict[str, str]:
    out = {
        "calibration-diagnostics": diagnostics_markdown(pd.read_csv(POST / "diagnostics.csv")),
        "calibration-emulator": emulator_markdown(pd.read_csv(POST / "emulator_validation.csv")),
        "calibration-ppc": predictive_markdown(pd.read_csv(POST / "ppc.csv")),
    }
    if (POST / "ppc_full_model.csv").exists():
        out["calibration-ppc-full"] = predictive_markdown(pd.read_csv(POST / "ppc_full_model.csv"))
    if (POST / "loo.csv").exists():
        out["calibration-loo"] = predictive_markdown(pd.read_csv(POST / "loo.csv"))
    for kind in CONFIG_KINDS:
        out[f"{kind}-fields"] = config_reference_markdown(kind)
    return out


def main() -> None:
    path = REPO / "README.md"
    text = path.read_text()
    for name, body in blocks().items():
        text = replace_block(text, name, body)
    path.write_text(text)
    print("README.md tables regenerated")


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    main()
