"""Controlled vocabularies shared by protocols, trials and outputs.

One place for every name a user may write, so that error messages and
validation agree across the protocol schema and the trials table.
"""

from __future__ import annotations

#: Patient genotypes (one per patient).
GENOTYPES: tuple[str, ...] = ("BRAF_V600E", "RAS", "OTHER")

#: Arm compositions that are not a single genotype: ``BRAF_WT`` is RAS + OTHER
#: in a calibrated proportion; ``ANY`` means the composition was not reported.
ARM_COMPOSITIONS: tuple[str, ...] = ("BRAF_WT", "ANY")

#: Drug names, as the names of the drug cards in ``models/drugs/``.
#: Cards exist for the drugs in :data:`CARDED_DRUGS`; the others are names
#: the trials table may use and whose cards arrive with the PK library.
DRUG_NAMES: tuple[str, ...] = (
    "trametinib",
    "dabrafenib",
    "selumetinib",
    "vemurafenib",
    "lapatinib",
    "anti_her3",
)

#: Molecular targets a drug card may name in ``metadata.targets``, each with the card
#: key of its in-vivo unbound IC50 (nM).
TARGET_IC50_KEYS: dict[str, str] = {
    "MEK": "ic50_mek_nM",
    "BRAF_V600E": "ic50_braf_v600e_nM",
    "RAF_WT": "ic50_raf_wt_nM",
    "HER_KINASE": "ic50_her_kinase_nM",
    "HER3": "ic50_her3_nM",
}

#: Trial endpoints.
ENDPOINTS: tuple[str, ...] = ("uptake", "response", "grade3_ae")

#: Scan readouts (criteria) that decide success or treatment.
READOUTS: tuple[str, ...] = (
    "i124_increase",
    "i124_dosimetry",
    "i123_tbr",
    "i123_planar_tbr",
    "diagnostic_wbs",
    "post_therapy_wbs",
)

#: Criteria in the trials table: a readout, or ``none``.
CRITERIA: tuple[str, ...] = (*READOUTS, "none")

#: RAI activity policies.
RAI_POLICIES: tuple[str, ...] = ("fixed", "dosimetry_max_11.1", "dosimetry_guided")


def readout_code(readout: str | None) -> int:
    """The engine's code of a readout: its position in :data:`READOUTS`, -1 for None (a scan without
    a readout). Readouts are data in the engine's kernel, selected by code, so every readout mix
    shares one compiled program."""
    return -1 if readout is None else READOUTS.index(readout)


def policy_code(policy: str | None) -> int:
    """The engine's code of an activity policy: its position in :data:`RAI_POLICIES`, -1 for None (no RAI)."""
    return -1 if policy is None else RAI_POLICIES.index(policy)


#: Isotopes with their physical half-lives in hours (nuclear data; I-131
#: 8.02 d, I-123 13.22 h, I-124 4.18 d; reference/parameters.md, V/R).
ISOTOPE_HALF_LIFE_H: dict[str, float] = {
    "I-131": 8.02 * 24.0,
    "I-123": 13.22,
    "I-124": 4.18 * 24.0,
}


def isotope_decay_per_h(isotope: str) -> float:
    """Physical decay constant of ``isotope`` (``"I-123"``, ``"I-124"``, ``"I-131"``), 1/h."""
    import math

    return math.log(2.0) / ISOTOPE_HALF_LIFE_H[isotope]


#: TSH stimulation methods.
TSH_METHODS: tuple[str, ...] = ("rhTSH", "withdrawal", "none")

#: Lesion sites.
LESION_SITES: tuple[str, ...] = ("lung", "lymph_node", "bone", "thyroid_bed", "soft_tissue", "liver", "other")


def allowed(values) -> str:
    """Render a vocabulary as the 'allowed' part of a one-line error."""
    return "one of " + ", ".join(str(v) for v in values)
