"""Named standard regimens and TKI-only scenario protocols, for exploring genotype × drug effects.

A *scenario* is a protocol with one lesion, no radioiodine and (by default) no TSH
stimulation, so that a simulation shows the effect of the TKI alone on ERK,
HER3 and NIS. Used by the pathway figures, the biology-fact tests and notebooks.

Doses are mg per administration, intervals hours (label doses).
"""

from __future__ import annotations

from .schema import Protocol, protocol_from_dict

#: Label regimens by name; combinations list every drug.
STANDARD_REGIMENS: dict[str, list[dict]] = {
    "selumetinib": [{"drug": "selumetinib", "dose_mg": 75, "interval_h": 12}],
    "trametinib": [{"drug": "trametinib", "dose_mg": 2, "interval_h": 24}],
    "dabrafenib": [{"drug": "dabrafenib", "dose_mg": 150, "interval_h": 12}],
    "vemurafenib": [{"drug": "vemurafenib", "dose_mg": 960, "interval_h": 12}],
    "dabrafenib75+trametinib": [  # the ERRITI and 10-day regimen
        {"drug": "dabrafenib", "dose_mg": 75, "interval_h": 12},
        {"drug": "trametinib", "dose_mg": 2, "interval_h": 24},
    ],
    "dabrafenib+trametinib": [
        {"drug": "dabrafenib", "dose_mg": 150, "interval_h": 12},
        {"drug": "trametinib", "dose_mg": 2, "interval_h": 24},
    ],
    "dabrafenib+trametinib+lapatinib": [
        {"drug": "dabrafenib", "dose_mg": 150, "interval_h": 12},
        {"drug": "trametinib", "dose_mg": 2, "interval_h": 24},
        {"drug": "lapatinib", "dose_mg": 1250, "interval_h": 24},
    ],
    "dabrafenib+trametinib+anti_her3": [
        {"drug": "dabrafenib", "dose_mg": 150, "interval_h": 12},
        {"drug": "trametinib", "dose_mg": 2, "interval_h": 24},
        {"drug": "anti_her3", "dose_mg": 1000, "interval_h": 168},
    ],
}


def tki_only_protocol(
    genotype: str,
    regimen: str | list[dict],
    stop_day: int = 42,
    *,
    tsh: str = "none",
    scans: tuple[dict, ...] = (),
    followup_months: float = 2.0,
) -> Protocol:
    """A one-lesion protocol with the TKI course alone (days 1..``stop_day``), no radioiodine.

    **Arguments:**

    - `genotype`: BRAF_V600E, RAS or OTHER.
    - `regimen`: a name of :data:`STANDARD_REGIMENS` or a list of drug entries
      (``dose_mg`` mg per administration, ``interval_h`` hours).
    - `stop_day`: last study day on TKI (day 1 = first dose).
    - `tsh`: TSH stimulation method (``none`` isolates the TKI effect).
    - `scans`: tracer scans (they trigger rhTSH injections when ``tsh`` is rhTSH).
    - `followup_months`: simulated horizon after day 1, months.
    """
    items = STANDARD_REGIMENS[regimen] if isinstance(regimen, str) else regimen
    name = regimen if isinstance(regimen, str) else "+".join(d["drug"] for d in items)
    return protocol_from_dict(
        {
            "name": f"{genotype} on {name}",
            "patient": {"genotype": genotype, "lesions": [{"site": "lung", "mass_g": 1.0}]},
            "treatment": {"regimens": {genotype: items}, "stop_day": stop_day},
            "scans": list(scans),
            "tsh": {"method": tsh},
            "rai": None,
            "followup": {"months": [followup_months]},
        },
        source="<scenario>",
    )
