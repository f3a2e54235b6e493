"""Trial arms as protocols: a row of the trials table → the protocol each of its genotypes follows.

A row says what an arm did (regimen, last TKI day, selection scan and
criterion, RAI day and policy) and what it measured (an ``uptake`` count, a
``response`` count among the treated, a ``grade3_ae`` count). This module
writes the protocol a patient of one genotype followed in that arm, so the
engines can simulate it, and the composition weights that mix genotypes.

Conventions where the table is silent (documented in the README):

- a blank ``tki_stop_day`` (the TKI continued past the scan; the outcome does
  not depend on when it stopped) ends the TKI the day after imaging;
- ``i124_increase`` needs a baseline I-124 scan: on day −6, as in Ho 2013;
- ``post_therapy_wbs`` is read on the therapy itself: an I-131 scan of the
  therapy activity on the RAI day, imaged 7 days later;
- ``dosimetry_guided`` uses the standard limits (no protocol cap);
- a ``response`` row's RAI requires its selection scan (criterion other than
  ``none``), so its outcome is counted among the treated, as the table does;
- a row without RAI is followed for one month (its outcome is read by the scan),
  so its solve stops there; a ``response`` row is followed to its response month.

Units: days, mg, hours as in the protocol schema; activities GBq (RAI) and MBq (tracers).
"""

from __future__ import annotations

import math

from ..io.cards import card_values
from ..io.errors import InputError
from ..io.trials import TrialRow
from ..io.vocab import GENOTYPES
from .schema import DEFAULT_IMAGING_DELAY_H, Protocol, protocol_from_dict

_ISOTOPE = {
    "i124_increase": "I-124",
    "i124_dosimetry": "I-124",
    "i123_tbr": "I-123",
    "i123_planar_tbr": "I-123",
    "diagnostic_wbs": "I-131",
    "post_therapy_wbs": "I-131",
}
BASELINE_DAY = -6


def genotype_weights(
    row: TrialRow, ras_share_of_braf_wt: float | None = None, shares: tuple[float, float] | None = None
) -> dict[str, float]:
    """Patients of each genotype in the arm (expected numbers of patients; exact for counts).

    ``shares`` = (BRAF V600E, RAS) fractions of all patients, each in [0, 1] (default: the
    population card's; a posterior draw has its own). ``ANY`` splits by them; ``BRAF_WT`` into
    RAS and OTHER by ``ras_share_of_braf_wt`` (fraction in [0, 1]; default: RAS / (1 − BRAF V600E)).
    """
    if shares is None:
        pop = card_values("biology/population.yaml")
        shares = (pop["share_BRAF_V600E"], pop["share_RAS"])
    braf, ras = shares
    share = ras / (1.0 - braf) if ras_share_of_braf_wt is None else ras_share_of_braf_wt
    out = dict.fromkeys(GENOTYPES, 0.0)
    for key, n in row.composition.counts.items():
        if key in GENOTYPES:
            out[key] += n
        elif key == "BRAF_WT":
            out["RAS"] += n * share
            out["OTHER"] += n * (1.0 - share)
        else:  # ANY
            out["BRAF_V600E"] += n * braf
            out["RAS"] += n * ras
            out["OTHER"] += n * (1.0 - braf - ras)
    return {g: w for g, w in out.items() if w > 0}


def arm_protocol(row: TrialRow, genotype: str, source: str = "<trials>") -> Protocol:
    """The protocol a patient of ``genotype`` followed in the arm of ``row`` (see the module conventions).

    Units as in the protocol schema: days are study days, doses mg, intervals h, the RAI
    activity GBq (``row.rai_gbq``) and a post-therapy scan's activity MBq.
    """
    drugs = [
        {"drug": item.drug, "dose_mg": item.dose_mg, "interval_h": item.interval_h}
        for item in row.regimen
        if item.applies_to(genotype)
    ]
    if not drugs:
        raise InputError(source, "regimen", f"at least one drug given to {genotype} patients", row=row.line)
    scans: list[dict] = []
    selection = None
    crit = row.criterion
    if crit in _ISOTOPE and crit != "post_therapy_wbs" and row.scan_day is not None:
        selection = {"name": "selection", "day": row.scan_day, "isotope": _ISOTOPE[crit], "readout": crit}
        if crit == "i124_increase":
            scans.append({"name": "baseline", "day": BASELINE_DAY, "isotope": "I-124"})
            selection["baseline"] = "baseline"
        scans.append(selection)
    if crit == "post_therapy_wbs":
        if row.rai_day is None or row.rai_gbq is None:
            raise InputError(source, "rai_day", "post_therapy_wbs rows need rai_day and rai_gbq", row=row.line)
        scans.append(
            {
                "name": "post_therapy",
                "day": row.rai_day,
                "isotope": "I-131",
                "readout": "post_therapy_wbs",
                "activity_mbq": row.rai_gbq * 1000.0,
            }
        )
    stop = row.tki_stop_day
    if stop is None:
        last_scan = max((s["day"] for s in scans), default=28)
        delay = DEFAULT_IMAGING_DELAY_H.get(crit, 24.0)
        stop = last_scan + max(1, math.ceil(delay / 24.0))
    d: dict = {
        "name": f"{row.study} {row.arm} ({genotype})",
        "patient": {"genotype": genotype, "lesions": [{"site": "lung", "mass_g": 1.0}]},
        "treatment": {"regimens": {genotype: drugs}, "start_day": 1, "stop_day": stop},
        "scans": scans,
        "tsh": {"method": "rhTSH"},
    }
    if row.endpoint == "response" or crit == "post_therapy_wbs":
        if row.rai_day is None or row.rai_policy is None:
            raise InputError(source, "rai_day", f"{row.endpoint} rows need rai_day and rai_policy", row=row.line)
        rai: dict = {"day": row.rai_day, "policy": row.rai_policy}
        if row.rai_policy == "fixed":
            rai["activity_gbq"] = row.rai_gbq
        if selection is not None and row.endpoint == "response":
            rai["require"] = "selection"
        d["rai"] = rai
        d["followup"] = {"months": [float(row.response_month or 6)]}
    else:  # no RAI: the outcome is read by the selection scan; follow-up to one month is enough
        d["followup"] = {"months": [1.0]}
    try:
        return protocol_from_dict(d, f"{source} row {row.line}")
    except InputError as exc:
        raise InputError(source, exc.field, exc.allowed, row=row.line, got=exc.got) from None
