import pytest

from raisim import InputError, all_cards, load_card
from raisim.params import MODELS_DIR, LogNormalPrior

EXPECTED = {
    "drugs/trametinib.yaml",
    "drugs/dabrafenib.yaml",
    "biology/pathway.yaml",
    "biology/nis.yaml",
    "biology/tsh.yaml",
    "biology/iodine.yaml",
    "biology/dosimetry.yaml",
    "biology/response.yaml",
    "biology/toxicity.yaml",
}


def test_every_block_has_a_card():
    assert EXPECTED <= set(all_cards())


def test_every_parameter_has_source_confidence_and_prior():
    n = 0
    for path, card in all_cards().items():
        for name, p in card.parameters.items():
            n += 1
            assert p.source.strip(), (path, name)
            assert p.confidence in ("V", "D", "R", "A"), (path, name)
            assert p.unit.strip(), (path, name)
            if p.confidence == "A":
                assert not (isinstance(p.prior, LogNormalPrior) and p.prior.gsd < 1.5), (path, name)
    assert n > 60


def test_assumption_with_narrow_prior_is_rejected(tmp_path):
    bad = tmp_path / "card.yaml"
    bad.write_text(
        "block: x\nname: x\nparameters:\n  k:\n    value: 1.0\n    unit: 1/h\n"
        "    prior: {dist: lognormal, median: 1.0, gsd: 1.1}\n    source: made up\n    confidence: A\n"
    )
    with pytest.raises(InputError, match="wide prior"):
        load_card(bad)


def test_card_without_source_is_rejected(tmp_path):
    bad = tmp_path / "card.yaml"
    bad.write_text(
        "block: x\nname: x\nparameters:\n  k:\n    value: 1.0\n    unit: 1/h\n"
        "    prior: {dist: fixed}\n    source: ''\n    confidence: V\n"
    )
    with pytest.raises(InputError, match="parameters.k.source"):
        load_card(bad)


def test_trials_data_is_shipped_in_models():
    assert (MODELS_DIR / "data" / "trials.csv").exists()
