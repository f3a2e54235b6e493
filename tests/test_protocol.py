import pytest
from helpers import PROTOCOLS, protocol_dict

from raisim import InputError, load_protocol, protocol_from_dict, protocol_json_schema


@pytest.mark.parametrize("name", ["erriti_21d.yaml", "short_10d.yaml", "meraiode_42d.yaml"])
def test_example_protocols_load(name):
    p = load_protocol(PROTOCOLS / name)
    assert p.patient.lesions and p.treatment.stop_day >= p.treatment.start_day
    assert p.followup_end_day() > p.treatment.stop_day


def test_example_protocol_days_match_design_table():
    erriti = load_protocol(PROTOCOLS / "erriti_21d.yaml")
    assert (erriti.treatment.stop_day, erriti.scans[0].day, erriti.scans[0].readout) == (21, 22, "i123_tbr")
    assert erriti.rai.policy == "dosimetry_guided" and erriti.rai.require == "selection"
    short = load_protocol(PROTOCOLS / "short_10d.yaml")
    b = short.branches[0]
    assert (short.treatment.stop_day, short.scans[0].day, short.rai.day) == (10, 11, 12)
    assert (b.extend_tki_to_day, b.rescan.day, b.rai_day) == (20, 21, 22)
    mer = load_protocol(PROTOCOLS / "meraiode_42d.yaml")
    assert (mer.treatment.stop_day, mer.rai.day, mer.rai.policy, mer.rai.activity_gbq) == (42, 35, "fixed", 5.55)
    assert mer.rai.require is None
    assert [d.drug for d in mer.treatment.regimen_for("RAS")] == ["trametinib"]


def _error(d) -> str:
    with pytest.raises(InputError) as exc:
        protocol_from_dict(d, "p.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("p.yaml: field '")
    return msg


def test_errors_name_the_field():
    d = protocol_dict()
    d["patient"]["genotype"] = "KRAS"
    assert "patient.genotype" in _error(d) and "BRAF_V600E" in _error(d)
    d = protocol_dict()
    d["patient"]["lesions"][0] = {"site": "lung"}
    assert "patient.lesions[0]" in _error(d)
    d = protocol_dict(rai={"day": 25, "policy": "fixed"})
    assert "rai.activity_gbq" in _error(d)
    d = protocol_dict(rai={"day": 25, "policy": "best_guess", "activity_gbq": 1})
    assert "rai.policy" in _error(d) and "dosimetry_guided" in _error(d)
    d = protocol_dict(rai={"day": 25, "policy": "fixed", "activity_gbq": 5.55, "require": "nope"})
    assert "rai.require" in _error(d)
    d = protocol_dict()
    d["treatment"]["holds"] = [{"from_day": 18, "to_day": 40}]
    assert "treatment.holds[0]" in _error(d)
    d = protocol_dict()
    d["scans"][0]["isotope"] = "I-124"
    assert "scans[0].isotope" in _error(d)
    d = protocol_dict()
    d["treatment"]["regimens"] = {"RAS": d["treatment"]["regimens"]["RAS"]}
    assert "treatment.regimens" in _error(d)
    d = protocol_dict(rai={"day": 25, "policy": "dosimetry_guided"}, scans=[])
    assert "rai.policy" in _error(d)
    d = protocol_dict()
    d["unexpected"] = 1
    assert "unexpected" in _error(d)


def test_dose_and_interval_must_be_positive():
    d = protocol_dict()
    d["treatment"]["regimens"]["BRAF_V600E"][0]["dose_mg"] = -2
    assert "dose_mg" in _error(d)
    d = protocol_dict()
    d["treatment"]["regimens"]["BRAF_V600E"][0]["interval_h"] = 0
    assert "interval_h" in _error(d)


def test_lesion_mass_from_diameter():
    p = protocol_from_dict(protocol_dict())
    # 12 mm sphere: 4/3 pi (0.6 cm)^3 = 0.905 mL = 0.905 g
    assert p.patient.lesions[0].mass == pytest.approx(0.9047786842)


def test_json_schema_documents_units():
    schema = protocol_json_schema()
    text = str(schema)
    for needle in ("dose per administration, mg", "dosing interval, hours", "GBq", "mm"):
        assert needle in text
