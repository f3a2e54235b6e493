"""Parameter draws: reproducible prior draws, mapped onto the model builders' overrides."""

import numpy as np
import pytest
from helpers import PROTOCOLS

from raisim import load_card
from raisim.engine.batch import typical_model
from raisim.io.errors import InputError
from raisim.io.parameter_draws import (
    DEFAULT_PRIOR_PARAMETERS,
    check_parameter,
    draws_as_overrides,
    overrides_from_values,
    prior_draws,
)
from raisim.protocol.schedule import protocol_drugs
from raisim.protocol.schema import load_protocol


def test_prior_draws_are_reproducible_and_follow_the_card_prior():
    a = prior_draws(list(DEFAULT_PRIOR_PARAMETERS), 400, seed=3)
    b = prior_draws(list(DEFAULT_PRIOR_PARAMETERS), 400, seed=3)
    assert a.equals(b)
    name = "biology/response.yaml:alpha_per_gy"
    prior = load_card("biology/response.yaml").parameters["alpha_per_gy"].prior
    x = np.log(a[name].to_numpy())
    assert np.exp(np.median(x)) == pytest.approx(prior.median, rel=0.15)
    assert np.exp(x.std()) == pytest.approx(prior.gsd, rel=0.1)
    hill = load_card("biology/nis.yaml").parameters["hill"].prior
    if hill.lower is not None:
        assert (a["biology/nis.yaml:hill"] >= hill.lower).all()


def test_overrides_reach_the_right_block():
    ov = overrides_from_values(
        {
            "drugs/trametinib.yaml:ic50_mek_nM": 0.5,
            "drugs/trametinib.yaml:cl_l_per_h": 6.0,
            "biology/nis.yaml:erk_half_max": 0.2,
        }
    )
    assert ov == {
        "pathway": {"ic50_mek_nM:trametinib": 0.5},
        "pk": {"trametinib": {"cl_l_per_h": 6.0}},
        "nis": {"erk_half_max": 0.2},
    }
    p = load_protocol(PROTOCOLS / "erriti_21d.yaml")
    m = typical_model(p, 2, ov)
    assert float(m.nis.erk_half_max) == pytest.approx(0.2)
    j = list(protocol_drugs(p)).index("trametinib")
    assert float(m.pathway.ic50_nM[j, 0]) == pytest.approx(0.5)


def test_unknown_parameter_names_are_input_errors():
    with pytest.raises(InputError, match="card:parameter"):
        check_parameter("erk_half_max")
    with pytest.raises(InputError, match="a parameter of biology/nis.yaml"):
        check_parameter("biology/nis.yaml:erk_half")
    assert draws_as_overrides(prior_draws([], 2, 0)) == [{}, {}]
