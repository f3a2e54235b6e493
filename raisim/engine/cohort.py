"""Virtual cohorts: who the virtual patients are, drawn reproducibly patient by patient.

Every random quantity of patient ``i`` comes from a key derived from
``(seed, stream, i)``, so a patient is the same whatever the cohort size, the
chunking, the device count or the protocol it goes through (common random
numbers: comparisons between durations are paired). PK random effects use one
stream per drug name, so adding a drug to a regimen leaves the other drugs'
draws unchanged; scan-readout noise uses one stream per scan name.

A cohort carries covariates and per-patient/per-lesion multipliers; the
parameter cards (``models/biology/population.yaml``, the drug cards' IIV)
say how large the variability is. :func:`cohort_model` turns a cohort and a
typical :class:`~raisim.core.model.PatientModel` into a batched model whose
leaves have a leading patient axis.

Units: mass g, weight kg, Tg ng/mL, SUV g/mL; multipliers are folds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..biology.pk import PK
from ..biology.population_pk import population_pk
from ..core.model import PatientModel
from ..io.cards import card_values
from ..io.vocab import GENOTYPES, LESION_SITES
from ..protocol.schema import Protocol
from ..streams import patient_normals, patient_uniforms

POPULATION_CARD = "biology/population.yaml"
#: Lesion sites, in the order of the site codes (sampled: lung, lymph node, bone, else soft tissue).
COHORT_SITES: tuple[str, ...] = LESION_SITES
_SAMPLED_SITES = np.asarray([LESION_SITES.index(s) for s in ("lung", "lymph_node", "bone", "soft_tissue")])
#: Mass of a padding lesion slot, g (never used: masked out and given no NIS).
PAD_MASS_G = 1.0


@dataclass
class Cohort:
    """Covariates and random effects of ``n`` virtual patients (numpy arrays, patient axis first).

    Lesion arrays have shape ``(n, max_lesions)``; ``lesion_mask`` marks the
    lesions a patient has (the rest are padding slots). Units: ``weight_kg`` kg,
    ``baseline_tg_ng_ml`` ng/mL, ``fdg_suv`` SUVpeak g/mL (NaN when not drawn),
    ``lesion_mass_g`` g, ``n_lesions`` a count; the ``*_scale``, ``nis_capacity`` and
    ``radiosensitivity`` multipliers are folds (dimensionless).
    """

    index: np.ndarray  # patient numbers in the cohort (identity for common random numbers)
    genotype: np.ndarray  # drawn from the genotype mix (a sweep may override it per grid cell)
    female: np.ndarray
    weight_kg: np.ndarray
    baseline_tg_ng_ml: np.ndarray
    fdg_suv: np.ndarray
    n_lesions: np.ndarray
    lesion_mask: np.ndarray
    lesion_mass_g: np.ndarray
    lesion_site: np.ndarray  # codes into COHORT_SITES
    nis_capacity: np.ndarray  # per lesion, fold (patient scale × lesion spread × FDG link)
    radiosensitivity: np.ndarray  # per lesion, fold of the typical alpha
    uptake_scale: np.ndarray  # per patient, fold of lesion uptake clearance
    retention_scale: np.ndarray  # per patient, fold of lesion biological retention half-life
    potency_scale: np.ndarray  # per patient, fold of every in-vivo IC50
    doubling_scale: np.ndarray  # per patient, fold of the volume doubling time
    seed: int = 0
    variability: bool = True

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def max_lesions(self) -> int:
        """Lesion slots per patient (a count; padding included)."""
        return int(self.lesion_mass_g.shape[1])

    def covariates(self) -> dict[str, np.ndarray]:
        """Patient-level columns for output tables.

        ``weight_kg`` kg, ``baseline_tg_ng_ml`` ng/mL, ``fdg_suv`` g/mL, ``n_lesions`` a count,
        ``largest_lesion_mm`` diameter in mm (sphere of density 1 g/mL), ``uptake_scale`` fold.
        """
        dmm = 10.0 * (6.0 * self.lesion_mass_g / math.pi) ** (1.0 / 3.0)
        return {
            "patient": self.index,
            "female": self.female,
            "weight_kg": self.weight_kg,
            "baseline_tg_ng_ml": self.baseline_tg_ng_ml,
            "fdg_suv": self.fdg_suv,
            "n_lesions": self.n_lesions,
            "largest_lesion_mm": np.max(np.where(self.lesion_mask, dmm, 0.0), axis=1),
            "uptake_scale": self.uptake_scale,
        }

    def take(self, rows: np.ndarray) -> Cohort:
        """The sub-cohort of the given row positions."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in kw.items():
            if isinstance(v, np.ndarray):
                kw[k] = v[rows]
        return Cohort(**kw)


def sample_cohort(
    index: np.ndarray | int, seed: int, *, max_lesions: int = 5, variability: bool = True, overrides: dict | None = None
) -> Cohort:
    """Draw the virtual patients numbered ``index`` (or ``range(index)``).

    **Arguments:**

    - `index`: patient numbers, or a count ``n`` for patients ``0..n-1``.
    - `seed`: cohort seed.
    - `max_lesions`: lesion slots per patient (a count; the drawn lesion count is truncated here).
    - `variability`: False gives every patient the typical values (one 1-g lung
      lesion, 70 kg woman, no IIV) — a check that the batch engine matches
      the single-patient engine.
    - `overrides`: population-card values to replace, by name (in the card's units).

    Returns the :class:`Cohort` (units there: kg, g, ng/mL, g/mL, folds).
    """
    idx = np.arange(index) if np.isscalar(index) else np.asarray(index)
    n = len(idx)
    v = dict(card_values(POPULATION_CARD))
    v.update(overrides or {})
    L = int(max_lesions)
    if L < 1:
        raise ValueError("max_lesions must be >= 1")
    z = patient_normals(seed, "patient", idx, 10)
    u = patient_uniforms(seed, "patient", idx, 4)
    zl = patient_normals(seed, "lesions", idx, 3 * L).reshape(n, 3, L)
    ul = patient_uniforms(seed, "lesions", idx, L)
    ln = np.log
    shares = np.asarray([v["share_BRAF_V600E"], v["share_RAS"]])
    geno = np.where(u[:, 0] < shares[0], 0, np.where(u[:, 0] < shares.sum(), 1, 2))
    extra = _poisson_from_uniform(u[:, 1], v["lesions_extra_mean"])
    n_les = np.minimum(1 + extra, L)
    mask = np.arange(L)[None, :] < n_les[:, None]
    mass = v["lesion_mass_median_g"] * np.exp(ln(v["lesion_mass_gsd"]) * zl[:, 0])
    p_site = np.asarray([v["site_lung"], v["site_lymph_node"], v["site_bone"]])
    site = _SAMPLED_SITES[np.searchsorted(np.cumsum(p_site), ul, side="right").clip(0, 3)]
    dediff = z[:, 0]  # latent dedifferentiation score behind SUVpeak and NIS capacity
    suv = v["fdg_suv_median"] * np.exp(ln(v["fdg_suv_gsd"]) * dediff)
    uptake = np.exp(ln(v["uptake_iiv_gsd"]) * z[:, 1])
    cap = np.exp(ln(v["nis_capacity_lesion_gsd"]) * zl[:, 1] - v["fdg_nis_link"] * dediff[:, None])
    radio_gsd = card_values("biology/response.yaml")["radiosensitivity_lesion_gsd"]
    radio = np.exp(ln(radio_gsd) * zl[:, 2])
    weight = np.clip(v["weight_median_kg"] * np.exp(ln(v["weight_gsd"]) * z[:, 2]), 40.0, 150.0)
    female = u[:, 2] < v["female_fraction"]
    tg = v["baseline_tg_median_ng_ml"] * np.exp(ln(v["baseline_tg_gsd"]) * z[:, 3])
    retention = np.exp(ln(v["retention_iiv_gsd"]) * z[:, 4])
    potency = np.exp(ln(v["potency_iiv_gsd"]) * z[:, 5])
    doubling = np.exp(ln(v["doubling_time_iiv_gsd"]) * z[:, 6])
    if not variability:
        one = np.ones(n)
        mass, cap, radio = np.full((n, L), 1.0), np.ones((n, L)), np.ones((n, L))
        mask = np.arange(L)[None, :] < 1
        mask = np.broadcast_to(mask, (n, L)).copy()
        n_les, site = np.ones(n, dtype=int), np.zeros((n, L), dtype=int)
        weight, female, tg, suv = np.full(n, 70.0), np.ones(n, bool), np.full(n, 50.0), np.full(n, v["fdg_suv_median"])
        uptake = retention = potency = doubling = one
    mass = np.where(mask, mass, PAD_MASS_G)
    cap = np.where(mask, cap, 0.0)
    return Cohort(
        index=idx,
        genotype=np.asarray(GENOTYPES)[geno],
        female=np.asarray(female, bool),
        weight_kg=weight,
        baseline_tg_ng_ml=tg,
        fdg_suv=suv,
        n_lesions=np.asarray(n_les, int),
        lesion_mask=mask,
        lesion_mass_g=mass,
        lesion_site=np.asarray(site, int),
        nis_capacity=cap,
        radiosensitivity=np.where(mask, radio, 1.0),
        uptake_scale=uptake,
        retention_scale=retention,
        potency_scale=potency,
        doubling_scale=doubling,
        seed=seed,
        variability=variability,
    )


def cohort_from_patient(
    p: Protocol, n: int, seed: int = 0, max_lesions: int | None = None, *, first: int = 0
) -> Cohort:
    """``n`` copies of the protocol's own patient (its lesions, covariates and typical parameters),
    numbered ``first``, ``first + 1``, …

    They differ only in their draws (missed doses, readout noise, AEs), which depend on the seed
    and the patient's number alone: :func:`raisim.simulate` with ``patient=i`` is the row of
    patient ``i``. ``n`` and ``max_lesions`` are counts; units of the result as in :class:`Cohort`.
    """
    pt = p.patient
    L = max_lesions or len(pt.lesions)
    if L < len(pt.lesions):
        raise ValueError("max_lesions is smaller than the patient's lesion count")
    k = len(pt.lesions)
    row = lambda vals, fill: np.broadcast_to(np.asarray(list(vals) + [fill] * (L - k)), (n, L)).copy()  # noqa: E731
    mask = row([True] * k, False)
    one = np.ones(n)
    return Cohort(
        index=np.arange(first, first + n),
        genotype=np.full(n, pt.genotype),
        female=np.full(n, pt.sex == "female"),
        weight_kg=np.full(n, pt.weight_kg),
        baseline_tg_ng_ml=np.full(n, pt.baseline_tg_ng_ml),
        fdg_suv=np.full(n, np.nan),
        n_lesions=np.full(n, k),
        lesion_mask=mask,
        lesion_mass_g=row([les.mass for les in pt.lesions], PAD_MASS_G),
        lesion_site=row([LESION_SITES.index(les.site) for les in pt.lesions], 0).astype(int),
        nis_capacity=row([les.nis_capacity for les in pt.lesions], 0.0),
        radiosensitivity=row([les.radiosensitivity for les in pt.lesions], 1.0),
        uptake_scale=one,
        retention_scale=one,
        potency_scale=one,
        doubling_scale=one,
        seed=seed,
        variability=False,
    )


def _poisson_from_uniform(u: np.ndarray, mean: float) -> np.ndarray:
    """Poisson(mean) by inversion of a uniform (deterministic given u)."""
    from scipy.stats import poisson

    return poisson.ppf(u, mean).astype(int)


def cohort_pk(drugs: tuple[str, ...], cohort: Cohort, overrides: dict[str, dict[str, float]] | None = None) -> PK:
    """PK parameters of the cohort's patients, fields ``(n, n_drugs)``: covariates and IIV
    (:func:`raisim.biology.population_pk.population_pk`, the one rule; units as in :class:`raisim.biology.pk.PK`).

    ``overrides`` replace card values per drug (``{drug: {key: value}}``, card units).
    """
    return population_pk(
        drugs,
        cohort.female,
        cohort.weight_kg,
        seed=cohort.seed,
        index=cohort.index,
        variability=cohort.variability,
        overrides=overrides,
    )


def _batch(x: Array, n: int) -> Array:
    return jnp.broadcast_to(x, (n, *jnp.shape(x)))


def stack_models(models: list[PatientModel]) -> PatientModel:
    """Typical-value models of several patients (one per patient, e.g. one parameter draw each)
    as one model whose array leaves carry a leading patient axis.

    Raises ValueError if the models differ in anything but array values (structure,
    static fields), which one compiled kernel could not represent.
    """
    first = models[0]
    static = [leaf for leaf in jax.tree_util.tree_leaves(first) if not eqx.is_array(leaf)]
    for m in models[1:]:
        if jax.tree_util.tree_structure(m) != jax.tree_util.tree_structure(first) or static != [
            leaf for leaf in jax.tree_util.tree_leaves(m) if not eqx.is_array(leaf)
        ]:
            raise ValueError("per-patient models differ in structure or static fields; they cannot share a kernel")
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs) if eqx.is_array(xs[0]) else xs[0], *models)


def _scaled(x: Array, f: Array, divide: bool = False) -> Array:
    """x · f (or x / f) with x (patients, *s) and f (patients, *r): the lower-rank one gets trailing unit axes."""
    while x.ndim < f.ndim:
        x = x[..., None]
    while f.ndim < x.ndim:
        f = f[..., None]
    return x / f if divide else x * f


def cohort_model(
    typical: PatientModel,
    cohort: Cohort,
    drugs: tuple[str, ...],
    pk_overrides: dict[str, dict[str, float]] | None = None,
    *,
    stacked: bool = False,
) -> PatientModel:
    """The batched model of a cohort: ``typical`` (one patient, ``max_lesions`` lesion slots)
    with every leaf given a leading patient axis and the cohort's covariates and random
    effects applied; ``drugs``: the drug cards of ``typical``'s drug slots, in order.

    With ``stacked=True``, ``typical`` already has one typical-value model per patient
    (:func:`stack_models`): patient i's random effects apply to model i. That is how
    calibration gives every virtual patient its own population-parameter draw.
    """
    n = len(cohort)
    if stacked:
        m = typical
        lead = lambda x: jnp.asarray(x)  # noqa: E731
    else:
        m = jax.tree_util.tree_map(lambda x: _batch(x, n) if eqx.is_array(x) else x, typical)
        lead = lambda x: jnp.asarray(x)[None]  # noqa: E731
    io = typical.iodine
    w = jnp.asarray(cohort.weight_kg)
    f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
    per_kg = lambda x: _scaled(lead(x) / lead(io.body_mass_kg), w)  # noqa: E731
    m = eqx.tree_at(
        lambda t: (
            t.pk,
            t.pathway.ic50_nM,
            t.nis.capacity,
            t.iodine.lesion_mass_g,
            t.iodine.ecf_volume_l,
            t.iodine.blood_volume_l,
            t.iodine.body_mass_kg,
            t.iodine.lesion_uptake_l_per_h_per_g,
            t.iodine.lesion_retention_t_half_h,
            t.response.alpha_per_gy,
            t.response.growth_per_h,
        ),
        m,
        (
            cohort_pk(drugs, cohort, pk_overrides),
            _scaled(lead(typical.pathway.ic50_nM), f(cohort.potency_scale)),
            lead(typical.nis.capacity)[:, :1] * f(cohort.nis_capacity),
            f(cohort.lesion_mass_g),
            per_kg(io.ecf_volume_l),
            per_kg(io.blood_volume_l),
            w,
            _scaled(lead(io.lesion_uptake_l_per_h_per_g), f(cohort.uptake_scale)),
            _scaled(lead(io.lesion_retention_t_half_h), f(cohort.retention_scale)),
            lead(typical.response.alpha_per_gy)[:, :1] * f(cohort.radiosensitivity),
            _scaled(lead(typical.response.growth_per_h), f(cohort.doubling_scale), divide=True),
        ),
    )
    return m


def lesion_sites(cohort: Cohort) -> np.ndarray:
    """Site names of every lesion slot, shape ``(n, max_lesions)``."""
    return np.asarray(COHORT_SITES)[cohort.lesion_site]


__all__ = [
    "COHORT_SITES",
    "Cohort",
    "cohort_from_patient",
    "cohort_model",
    "stack_models",
    "cohort_pk",
    "lesion_sites",
    "patient_normals",
    "patient_uniforms",
    "sample_cohort",
]
