"""The model a posterior was fitted to: the hash, what changes it, and the warning on use."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from helpers import cli_process

from raisim.io import model_identity as mi
from raisim.io.cards import MODELS_DIR
from raisim.io.parameter_draws import load_posterior, shipped_posterior

PACKAGE = Path(mi.__file__).resolve().parents[1]


@pytest.fixture
def tree_copy(tmp_path):
    """A copy of the model's files (package folders and models/) to edit."""
    pkg, models = tmp_path / "raisim", tmp_path / "models"
    for name in mi.MODEL_PACKAGES:
        shutil.copytree(PACKAGE / name, pkg / name)
    for name in mi.MODEL_MODULES:
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PACKAGE / name, pkg / name)
    for name in mi.MODEL_FOLDERS:
        shutil.copytree(MODELS_DIR / name, models / name)
    return pkg, models


def test_hash_of_a_copy_equals_the_running_model(tree_copy):
    assert mi.model_sha256(*tree_copy) == mi.model_sha256()
    assert len(mi.model_sha256()) == 64


def test_comments_docstrings_and_layout_do_not_change_the_hash(tree_copy):
    pkg, models = tree_copy
    before = mi.model_sha256(pkg, models)
    src = pkg / "biology" / "dosimetry.py"
    text = src.read_text()
    text = text.replace('"""Block 5', '"""A different docstring.\n\nBlock 5', 1) + "\n# a trailing comment\n"
    src.write_text(text)
    card = models / "biology" / "dosimetry.yaml"
    card.write_text("# a comment on top\n" + card.read_text())
    assert mi.model_sha256(pkg, models) == before


@pytest.mark.parametrize("edit", ["card", "code", "table"])
def test_a_number_in_a_card_the_code_or_the_table_changes_the_hash(tree_copy, edit):
    pkg, models = tree_copy
    before = mi.model_digests(pkg, models)
    if edit == "card":
        path = models / "biology" / "dosimetry.yaml"
        path.write_text(path.read_text().replace("value: 4.0", "value: 4.5", 1))
        name = "models/biology/dosimetry.yaml"
    elif edit == "code":
        path = pkg / "engine" / "outcomes.py"
        path.write_text(path.read_text().replace("1.2 * nadir", "1.25 * nadir", 1))
        name = "raisim/engine/outcomes.py"
    else:
        path = models / "data" / "trials.csv"
        path.write_text(path.read_text().replace(",5,5,", ",5,4,", 1))
        name = "models/data/trials.csv"
    after = mi.model_digests(pkg, models)
    assert mi.changed_files(before, after) == [name]
    assert mi._combine(after) != mi._combine(before)


def _posterior_copy(tmp_path: Path, manifest: dict | None) -> Path:
    d = tmp_path / "fit"
    d.mkdir()
    shutil.copy(shipped_posterior(), d / "posterior.nc")
    if manifest is not None:
        (d / "manifest.json").write_text(json.dumps(manifest))
    return d / "posterior.nc"


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == mi.__name__ and r.levelno == logging.WARNING]


def test_a_posterior_of_another_model_warns_once_and_names_the_changed_files(tmp_path, caplog):
    digests = mi.model_digests()
    name = "raisim/engine/outcomes.py"
    fitted = {**digests, name: "0" * 64}
    path = _posterior_copy(tmp_path, {mi.MANIFEST_KEY: mi._combine(fitted), mi.MANIFEST_FILES_KEY: fitted})
    with caplog.at_level(logging.WARNING, logger="raisim"):
        load_posterior(path)
        load_posterior(path)
    got = _warnings(caplog)
    assert len(got) == 1, got
    assert "fitted to another model" in got[0] and name in got[0] and "\n" not in got[0]


def test_a_posterior_of_this_model_does_not_warn(tmp_path, caplog):
    digests = mi.model_digests()
    path = _posterior_copy(tmp_path, {mi.MANIFEST_KEY: mi.model_sha256(), mi.MANIFEST_FILES_KEY: digests})
    with caplog.at_level(logging.WARNING, logger="raisim"):
        load_posterior(path)
    assert _warnings(caplog) == []


def test_a_posterior_without_a_model_hash_warns(tmp_path, caplog):
    path = _posterior_copy(tmp_path, None)
    with caplog.at_level(logging.WARNING, logger="raisim"):
        load_posterior(path)
    got = _warnings(caplog)
    assert len(got) == 1 and "no model hash" in got[0]


def test_the_shipped_posterior_carries_the_hash_of_the_model_it_was_fitted_to():
    manifest = json.loads(shipped_posterior().with_name("manifest.json").read_text())
    fitted = manifest[mi.MANIFEST_FILES_KEY]
    assert manifest[mi.MANIFEST_KEY] == mi._combine(fitted)
    # fitted before the readout models of issue 24: the running model differs, and the warning says so
    if manifest[mi.MANIFEST_KEY] != mi.model_sha256():
        assert "fitted to another model" in mi.model_change_warning(shipped_posterior())


def test_the_cli_prints_the_warning_once_as_one_line(tmp_path, monkeypatch):
    # the warning is once per posterior and process: another test in this worker may have shown it already
    monkeypatch.setattr(mi, "_WARNED", set())
    proc = cli_process("predict", "--trials", str(MODELS_DIR / "data" / "trials.csv"), "--dry-run")
    lines = [ln for ln in proc.stderr.splitlines() if "fitted to another model" in ln or "no model hash" in ln]
    if mi.model_change_warning(shipped_posterior()) is None:
        assert lines == []
    else:
        assert len(lines) == 1 and lines[0].startswith("raisim: warning: posterior "), proc.stderr


def test_a_command_stopped_by_bad_input_prints_its_one_line_only(monkeypatch):
    """The posterior is read before the draw number is checked: the warning waits, the error is alone."""
    monkeypatch.setattr(mi, "_WARNED", set())  # so the warning is due in this process
    from helpers import PROTOCOLS, assert_one_line_error

    proc = cli_process("simulate", str(PROTOCOLS / "short_10d.yaml"), "--draw", "999999", "--dry-run")
    assert_one_line_error(proc.returncode, proc.stderr, "--draw")
