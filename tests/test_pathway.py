import jax
import jax.numpy as jnp
import pytest

from raisim import TARGETS, Pathway, target_inhibition
from raisim.biology.pathway import PathwayState


def test_target_inhibition_bliss_and_no_action():
    ic50 = jnp.asarray([[1.0, jnp.inf], [jnp.inf, 2.0], [1.0, jnp.inf]])
    inh = target_inhibition(jnp.asarray([1.0, 2.0, 1.0]), ic50)
    assert float(inh[0]) == pytest.approx(1 - 0.5 * 0.5)
    assert float(inh[1]) == pytest.approx(0.5)


@pytest.mark.parametrize("genotype", ["BRAF_V600E", "RAS", "OTHER"])
def test_untreated_is_steady(genotype):
    pw = Pathway.from_cards(genotype, ("trametinib",))
    s = pw.initial_state()
    d = pw.vector_field(s, jnp.zeros(len(TARGETS)))
    assert all(abs(float(v)) < 1e-12 for v in jax.tree_util.tree_leaves(d))


def test_braf_inhibitor_lowers_erk_in_braf_but_not_in_ras():
    inh = jnp.zeros(len(TARGETS)).at[TARGETS.index("BRAF_V600E")].set(0.9).at[TARGETS.index("RAF_WT")].set(0.3)
    braf = Pathway.from_cards("BRAF_V600E", ("dabrafenib",))
    ras = Pathway.from_cards("RAS", ("dabrafenib",))
    assert float(braf.erk_target(braf.initial_state(), inh)) < 0.5
    assert float(ras.erk_target(ras.initial_state(), inh)) >= 1.0


def test_mek_inhibition_lowers_erk_and_derepresses_her3():
    pw = Pathway.from_cards("RAS", ("trametinib",))
    inh = jnp.zeros(len(TARGETS)).at[0].set(0.7)
    s = pw.initial_state()
    assert float(pw.erk_target(s, inh)) < 0.5
    low = PathwayState(erk=jnp.asarray(0.3), her3=jnp.asarray(1.0), adaptive=jnp.asarray(1.0))
    assert float(pw.vector_field(low, inh).her3) > 0.0
