"""Virtual cohorts: reproducible patient by patient (common random numbers), variability as the cards say."""

import math

import numpy as np
import pytest

from raisim.biology.pk import drug_values
from raisim.engine.cohort import cohort_pk, sample_cohort
from raisim.io.cards import card_values


def test_a_patient_is_the_same_whatever_the_cohort_it_is_drawn_in():
    full = sample_cohort(200, seed=4)
    part = sample_cohort(np.arange(150, 160), seed=4)
    for name in ("lesion_mass_g", "nis_capacity", "weight_kg", "fdg_suv", "lesion_mask", "uptake_scale"):
        np.testing.assert_array_equal(getattr(full, name)[150:160], getattr(part, name), err_msg=name)
    other_seed = sample_cohort(np.arange(150, 160), seed=5)
    assert not np.allclose(other_seed.weight_kg, part.weight_kg)


def test_pk_random_effects_of_a_drug_do_not_depend_on_the_other_drugs():
    co = sample_cohort(50, seed=1)
    alone = cohort_pk(("trametinib",), co)
    both = cohort_pk(("dabrafenib", "trametinib"), co)
    np.testing.assert_array_equal(alone.cl_l_per_h[:, 0], both.cl_l_per_h[:, 1])


def test_pk_variability_matches_the_drug_card():
    co = sample_cohort(4000, seed=2)
    pk = cohort_pk(("trametinib",), co)
    cv = card_values("drugs/trametinib.yaml")["iiv_cv_cl"]
    # clearance / covariate-only typical value: log-SD is the card's omega
    typical = np.where(
        co.female, drug_values("trametinib", "female")["cl_l_per_h"], drug_values("trametinib", "male")["cl_l_per_h"]
    )
    w = (co.weight_kg / 70.0) ** card_values("drugs/trametinib.yaml").get("cov_cl_weight_exp", 0.0)
    eta = np.log(np.asarray(pk.cl_l_per_h[:, 0]) / (typical * w))
    assert eta.std() == pytest.approx(math.sqrt(math.log1p(cv**2)), rel=0.05)
    assert abs(eta.mean()) < 0.02


def test_population_matches_the_population_card():
    v = card_values("biology/population.yaml")
    co = sample_cohort(4000, seed=3, max_lesions=6)
    assert (co.genotype == "BRAF_V600E").mean() == pytest.approx(v["share_BRAF_V600E"], abs=0.025)
    assert (co.genotype == "RAS").mean() == pytest.approx(v["share_RAS"], abs=0.025)
    assert co.female.mean() == pytest.approx(v["female_fraction"], abs=0.025)
    assert (co.n_lesions - 1).mean() == pytest.approx(v["lesions_extra_mean"], rel=0.1)  # truncation at 6 is rare
    diam = 10.0 * (6.0 * co.lesion_mass_g[co.lesion_mask] / math.pi) ** (1 / 3)
    assert 0.005 < (diam < 5.0).mean() < 0.1  # some sub-5 mm lesions (excluded from dosimetry criteria)
    # FDG SUVpeak is linked to lower NIS capacity (dedifferentiation)
    cap = np.log(np.where(co.lesion_mask, co.nis_capacity, np.nan))
    r = np.corrcoef(np.log(co.fdg_suv), np.nanmean(cap, axis=1))[0, 1]
    assert r < -0.3
    assert not co.nis_capacity[~co.lesion_mask].any()  # padding slots take up nothing


def test_padding_slots_are_masked_and_counts_are_bounded():
    co = sample_cohort(300, seed=0, max_lesions=3)
    assert co.lesion_mask.shape == (300, 3)
    assert ((co.n_lesions >= 1) & (co.n_lesions <= 3)).all()
    assert (co.lesion_mask.sum(axis=1) == co.n_lesions).all()
