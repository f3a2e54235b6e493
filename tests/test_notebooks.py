"""Notebooks execute top to bottom with the public API (nbclient, in the notebooks/ folder)."""

import nbformat
import pytest
from helpers import REPO
from nbclient import NotebookClient

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: What each notebook must print (computed numbers with their units or labels)
EXPECTED = {
    "00_quickstart.ipynb": ("P(success)", "Gy"),
    "01_genotype_scenarios.ipynb": ("NIS peak on day", "P(success) =", "best-lesion dose among treated"),
    "02_protocol_design.ipynb": ("paired difference", "best scan day", "median activity", "assurance of at least"),
    "03_calibration.ipynb": ("inside the 95 % prior predictive", "SVI:", "predicted successes of 20"),
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    for needle in EXPECTED[path.name]:
        assert needle in outputs, (path.name, needle)
    figures = sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert figures >= (1 if path.name.startswith("00") else 3), figures


def test_every_notebook_is_checked():
    assert {p.name for p in NOTEBOOKS} == set(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_uses_only_the_public_api(path):
    """Every raisim name a notebook uses is in ``raisim.__all__`` (no module-internal imports)."""
    import re

    import raisim

    nb = nbformat.read(path, as_version=4)
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    imported = {n.strip() for g in re.findall(r"from raisim[.\w]* import ([\w, ]+)", src) for n in g.split(",")}
    used = set(re.findall(r"\braisim\.(\w+)", src)) | imported
    assert used, "a notebook that uses no raisim API"
    assert used <= set(raisim.__all__), sorted(used - set(raisim.__all__))
