"""Trial rows as protocols: every shipped row maps to a valid protocol with the documented conventions."""

import pytest

from raisim.io.cards import card_values
from raisim.io.trials import load_trials
from raisim.protocol.arms import BASELINE_DAY, arm_protocol, genotype_weights

TABLE = load_trials()


@pytest.mark.parametrize("row", [r for r in TABLE.rows if r.endpoint != "grade3_ae"], ids=lambda r: f"row{r.line}")
def test_every_shipped_row_has_a_protocol_per_genotype(row):
    weights = genotype_weights(row)
    assert sum(weights.values()) == pytest.approx(row.n)
    for g in weights:
        p = arm_protocol(row, g)
        assert p.patient.genotype == g
        drugs = {d.drug for d in p.treatment.regimen_for(g)}
        assert drugs == {i.drug for i in row.regimen if i.applies_to(g)}
        if row.scan_day is not None and row.criterion not in ("none", "post_therapy_wbs"):
            sel = p.scan("selection")
            assert sel.day == row.scan_day and sel.readout == row.criterion
        if row.tki_stop_day is not None:
            assert p.treatment.stop_day == row.tki_stop_day
        if row.endpoint == "response":
            assert p.rai.day == row.rai_day and p.rai.policy == row.rai_policy
            assert (p.rai.require == "selection") == (row.criterion != "none")
            assert float(row.response_month) in p.followup.months


def test_conventions_baseline_blank_stop_and_post_therapy_scan():
    inc = next(r for r in TABLE.rows if r.criterion == "i124_increase")
    p = arm_protocol(inc, next(iter(genotype_weights(inc))))
    assert p.scan("baseline").day == BASELINE_DAY and p.scan("selection").baseline == "baseline"
    assert inc.tki_stop_day is None and p.treatment.stop_day == inc.scan_day + 1  # imaging 24 h after the tracer
    post = next(r for r in TABLE.rows if r.criterion == "post_therapy_wbs")
    q = arm_protocol(post, "BRAF_V600E")
    s = q.scan("post_therapy")
    assert s.day == post.rai_day and s.activity_mbq == pytest.approx(post.rai_gbq * 1000) and s.delay_h == 168.0


def test_braf_wild_type_and_any_split_by_the_population_card():
    pop = card_values("biology/population.yaml")
    wt = next(r for r in TABLE.rows if r.genotype == "BRAF_WT")
    w = genotype_weights(wt)
    assert w["RAS"] / wt.n == pytest.approx(pop["share_RAS"] / (1 - pop["share_BRAF_V600E"]))
    assert genotype_weights(wt, ras_share_of_braf_wt=0.25)["RAS"] == pytest.approx(0.25 * wt.n)
    anyrow = next(r for r in TABLE.rows if r.genotype == "ANY")
    assert genotype_weights(anyrow)["BRAF_V600E"] == pytest.approx(pop["share_BRAF_V600E"] * anyrow.n)
