"""The command line: outputs, determinism and one-line errors for bad input (exit 2)."""

import json
import shutil

import pytest
from helpers import PROTOCOLS, REPO, cli_process, protocol_dict, run_cli, write_yaml

from raisim.cli import main


def _assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["simulate", str(PROTOCOLS / "erriti_21d.yaml"), "--out", str(out), "--seed", "3"]) == 0
    return out


def test_simulate_writes_the_contract_files(demo_run):
    for name in ("timecourse.csv", "outcome.json", "timecourse.png", "manifest.json"):
        assert (demo_run / name).stat().st_size > 0, name
    import pandas as pd

    tc = pd.read_csv(demo_run / "timecourse.csv", keep_default_na=False)
    assert list(tc.columns) == ["time_h", "quantity", "lesion", "value"]
    q = set(tc.quantity)
    for needed in (
        "conc_unbound_nM:trametinib",
        "conc_total_ng_ml:dabrafenib",
        "erk_activity",
        "her3",
        "membrane_nis",
        "blood_activity_mbq:I-131",
        "lesion_activity_mbq:I-131",
        "lesion_dose_gy",
        "lesion_volume_ml",
        "tg_ng_ml",
    ):
        assert needed in q, needed
    assert set(tc[tc.quantity == "lesion_dose_gy"].lesion) == {"lung_1", "node_1", "lung_2"}
    outcome = json.loads((demo_run / "outcome.json").read_text())
    assert {"scans", "rai", "lesions", "recist", "toxicity", "solver"} <= set(outcome)
    assert outcome["solver"]["ok"] is True
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert manifest["seed"] == 3 and len(manifest["config_sha256"]) == 64
    assert manifest["libraries"]["diffrax"]


def test_same_config_and_seed_give_byte_identical_outcome(demo_run, tmp_path):
    out = tmp_path / "again"
    assert main(["simulate", str(PROTOCOLS / "erriti_21d.yaml"), "--out", str(out), "--seed", "3"]) == 0
    assert (out / "outcome.json").read_bytes() == (demo_run / "outcome.json").read_bytes()
    assert (out / "timecourse.csv").read_bytes() == (demo_run / "timecourse.csv").read_bytes()


def test_non_empty_out_is_refused_without_force(demo_run):
    before = (demo_run / "outcome.json").read_bytes()
    proc = run_cli("simulate", str(PROTOCOLS / "erriti_21d.yaml"), "--out", str(demo_run))
    _assert_one_line_error(proc, "--out", "--force")
    assert (demo_run / "outcome.json").read_bytes() == before


def _bad_protocol(tmp_path, data):
    return write_yaml(tmp_path / "bad.yaml", data)


def test_unknown_drug(tmp_path):
    d = protocol_dict()
    d["treatment"]["regimens"]["BRAF_V600E"][0]["drug"] = "aspirin"
    proc = cli_process("simulate", str(_bad_protocol(tmp_path, d)), "--out", str(tmp_path / "o"))
    _assert_one_line_error(proc, "bad.yaml", "treatment.regimens.BRAF_V600E[0].drug", "trametinib", "aspirin")
    assert not (tmp_path / "o").exists()


def test_negative_duration(tmp_path):
    d = protocol_dict()
    d["treatment"]["start_day"] = 10
    d["treatment"]["stop_day"] = 3
    proc = cli_process("simulate", str(_bad_protocol(tmp_path, d)), "--out", str(tmp_path / "o"))
    _assert_one_line_error(proc, "bad.yaml", "treatment.stop_day", ">= start_day")


def test_scan_beyond_the_last_study_day(tmp_path):
    """A scan after the follow-up runs (the simulation extends past its imaging); one after the last
    study day the model is valid for (730) is refused."""
    d = protocol_dict()
    d["scans"][0]["day"] = 900
    d["rai"] = None
    proc = cli_process("simulate", str(_bad_protocol(tmp_path, d)), "--out", str(tmp_path / "o"))
    _assert_one_line_error(proc, "bad.yaml", "scans[0].day", "730")


def test_yaml_syntax_error_and_existing_output_untouched(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\npatient: {genotype: RAS\n  lesions: [\n")
    out = tmp_path / "o"
    out.mkdir()
    (out / "outcome.json").write_text("keep me")
    proc = cli_process("simulate", str(bad), "--out", str(out), "--force")
    _assert_one_line_error(proc, "broken.yaml", "yaml line", "valid YAML")
    assert (out / "outcome.json").read_text() == "keep me"


def _bad_trials(tmp_path, row_index, column, value):
    src = (REPO / "models" / "data" / "trials.csv").read_text().splitlines()
    import csv
    import io

    rows = list(csv.reader(io.StringIO("\n".join(src))))
    rows[row_index][rows[0].index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path = tmp_path / "trials_bad.csv"
    path.write_text(buf.getvalue())
    return path


def test_trials_row_with_k_greater_than_n(tmp_path):
    path = _bad_trials(tmp_path, 3, "k", "99")
    proc = cli_process("trials", str(path))
    _assert_one_line_error(proc, "trials_bad.csv", "row 3", "'k'")


def test_trials_unparseable_regimen(tmp_path):
    path = _bad_trials(tmp_path, 5, "regimen", "selumetinib 75mg twice daily")
    proc = cli_process("trials", str(path))
    _assert_one_line_error(proc, "trials_bad.csv", "row 5", "'regimen'")


def test_trials_shipped_table_validates():
    proc = run_cli("trials")
    assert proc.returncode == 0, proc.stderr
    assert "rows" in proc.stdout and "Weber2022" in proc.stdout


def test_schema_prints_json_schema():
    proc = run_cli("schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert {"patient", "treatment", "scans", "rai", "branches", "followup"} <= set(schema["properties"])


def test_unknown_command_line_option_is_exit_2():
    proc = cli_process("simulate", "--bogus")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_manifest_records_commit_when_in_git(demo_run):
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert "git_commit" in manifest


@pytest.mark.parametrize(
    "name",
    [
        "short_10d.yaml",
        "meraiode_42d.yaml",
        "selumetinib_4wk.yaml",
        "dabrafenib_rothenberg.yaml",
        "vemurafenib_dunn.yaml",
    ],
)
def test_every_example_protocol_simulates(name, tmp_path):
    out = tmp_path / "o"
    assert main(["simulate", str(PROTOCOLS / name), "--out", str(out)]) == 0
    outcome = json.loads((out / "outcome.json").read_text())
    assert outcome["solver"]["ok"] is True
    assert len(outcome["recist"]) >= 1 and all(r["category"] in {"CR", "PR", "SD", "PD"} for r in outcome["recist"])


def test_solver_failure_is_flagged_not_reported_as_results(tmp_path):
    d = protocol_dict(solver={"max_steps": 100})
    proc = run_cli("simulate", str(write_yaml(tmp_path / "p.yaml", d)), "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert "solver failed" in proc.stderr
    outcome = json.loads((tmp_path / "o" / "outcome.json").read_text())
    assert outcome["solver"]["ok"] is False and outcome["solver"]["failed_courses"]
    assert outcome["recist"] == [] and outcome["lesions"] == [] and outcome["rai"]["activity_gbq"] is None


@pytest.mark.parametrize(
    "mutate,field,allowed",
    [
        (lambda d: d["treatment"]["regimens"]["BRAF_V600E"][1].update(dose_mg=0), "dose_mg", "greater than 0"),
        (
            lambda d: d["treatment"]["regimens"]["BRAF_V600E"][0].update(interval_h=-24),
            "interval_h",
            "greater than or equal to 1",
        ),
        (lambda d: d["treatment"].update(holds=[{"from_day": 15, "to_day": 30}]), "treatment.holds[0]", "outside"),
        (lambda d: d["treatment"].update(missed_dose_probability=1.5), "missed_dose_probability", "less than or equal"),
        (lambda d: d["treatment"].update(missed_dose_probability=-0.1), "missed_dose_probability", "greater than"),
        (lambda d: d["scans"][0].update(isotope="I-125"), "scans[0].isotope", "I-131"),
        (lambda d: d["scans"][0].update(readout="pet_suv"), "scans[0].readout", "i123_tbr"),
        (lambda d: d["rai"].update(activity_gbq=-5.55), "rai.activity_gbq", "greater than 0"),
        (lambda d: d["patient"]["lesions"][1].update(mass_g=0), "mass_g", "greater than 0"),
        (lambda d: d["rai"].update(policy="dosimetry_guided", cap_gbq=-1), "rai.cap_gbq", "greater than 0"),
        (
            lambda d: d.update(
                branches=[
                    {
                        "on_fail": "nope",
                        "extend_tki_to_day": 21,
                        "rai_day": 30,
                        "rescan": {"name": "re", "day": 29, "isotope": "I-123", "readout": "i123_tbr"},
                    }
                ]
            ),
            "branches[0].on_fail",
            "one of ['selection', 're']",
        ),
        (lambda d: d["followup"].update(months=[6, 24], horizon_months=18), "followup", "months <= 18"),
        (lambda d: d["rai"].update(day=30, tki_days_after_rai=-3), "rai.tki_days_after_rai", "greater than"),
        (lambda d: d["rai"].update(day=12, tki_days_after_rai=1), "rai.tki_days_after_rai", ">= 9"),
    ],
    ids=[
        "zero-dose",
        "negative-interval",
        "hold-outside-course",
        "adherence-above-1",
        "adherence-below-0",
        "unknown-isotope",
        "unknown-readout",
        "negative-activity",
        "zero-lesion-mass",
        "negative-cap",
        "branch-undefined-scan",
        "followup-beyond-horizon",
        "continuation-negative",
        "continuation-ends-before-course",
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, mutate, field, allowed):
    d = protocol_dict()
    mutate(d)
    proc = cli_process("simulate", str(_bad_protocol(tmp_path, d)), "--out", str(tmp_path / "o"))
    _assert_one_line_error(proc, "bad.yaml", field, allowed)
    assert not (tmp_path / "o").exists()


def test_pk_report_band_contains_typical_patient(tmp_path):
    out = tmp_path / "pk"
    assert main(["simulate", str(PROTOCOLS / "meraiode_42d.yaml"), "--out", str(out), "--pk-report", "200"]) == 0
    import pandas as pd

    rep = pd.read_csv(out / "pk_report.csv")
    assert set(rep.drug) == {"dabrafenib", "trametinib"}
    assert (out / "pk_report.png").stat().st_size > 0
    on = rep[(rep.time_h > 24 * 20) & (rep.drug == "trametinib")]
    assert (on.q05_ng_ml < on.q95_ng_ml).all()
    inside = (on.typical_ng_ml >= on.q05_ng_ml) & (on.typical_ng_ml <= on.q95_ng_ml)
    assert inside.mean() > 0.95
    assert "pk_report.csv" in json.loads((out / "manifest.json").read_text())["outputs"]


def test_drug_card_without_mechanism_entry_is_rejected(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    card = (models / "drugs" / "trametinib.yaml").read_text()
    card = card.replace("name: trametinib", "name: mystery_mek").replace("  targets: [MEK]\n", "")
    (models / "drugs" / "mystery_mek.yaml").write_text(card)
    tox = models / "biology" / "toxicity.yaml"
    tox.write_text(
        tox.read_text().replace(
            "  discontinuation_probability:",
            (
                "  hazard_per_day_mystery_mek:\n    value: 0.001\n    unit: 1/d\n"
                "    prior: {dist: lognormal, median: 0.001, gsd: 2.0}\n    source: test\n    confidence: A\n"
                "  discontinuation_probability:"
            ),
        )
    )
    d = protocol_dict()
    d["treatment"]["regimens"]["BRAF_V600E"][0]["drug"] = "mystery_mek"
    config = str(_bad_protocol(tmp_path, d))

    def simulate_with_cards(out):
        return run_cli("simulate", config, "--out", str(tmp_path / out), env={"RAISIM_MODELS_DIR": str(models)})

    proc = simulate_with_cards("o")
    _assert_one_line_error(proc, "bad.yaml", "treatment.regimens.BRAF_V600E[0].drug", "mechanism", "metadata.targets")
    # the same card with its mechanism entry is accepted
    (models / "drugs" / "mystery_mek.yaml").write_text(card.replace("metadata:\n", "metadata:\n  targets: [MEK]\n"))
    ok = simulate_with_cards("o2")
    assert ok.returncode == 0, ok.stderr[-2000:]
