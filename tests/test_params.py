import pytest

from raisim import InputError, all_cards, load_card
from raisim.io.cards import MODELS_DIR, LogNormalPrior

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


@pytest.mark.parametrize(
    "prior,source,confidence,message",
    [
        ("{dist: lognormal, median: 1.0, gsd: 1.1}", "made up", "A", "wide prior"),
        ("{dist: fixed}", "''", "V", "parameters.k.source"),
        ("{dist: fixed}", "made up", "A", "cannot be fixed"),
        ("{dist: lognormal, median: 1.0, gsd: 2.0}", "label", "X", "parameters.k.confidence"),
    ],
    ids=["assumption-with-narrow-prior", "no-source", "fixed-assumption", "unknown-confidence-code"],
)
def test_bad_card_entries_are_rejected(tmp_path, prior, source, confidence, message):
    bad = tmp_path / "card.yaml"
    bad.write_text(
        "block: x\nname: x\nparameters:\n  k:\n    value: 1.0\n    unit: 1/h\n"
        f"    prior: {prior}\n    source: {source}\n    confidence: {confidence}\n"
    )
    with pytest.raises(InputError, match=message):
        load_card(bad)


def test_trials_data_is_shipped_in_models():
    assert (MODELS_DIR / "data" / "trials.csv").exists()
