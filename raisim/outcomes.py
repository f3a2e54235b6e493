"""Outcomes of one simulated course: readouts, activity, lesion doses, RECIST, Tg, toxicity.

Everything here reads a solved course (:class:`~raisim.model.Solution` on the
time grid) and applies the dosimetry, response and toxicity blocks. The
:class:`PatientOutcome` record is the single source for CLI output; later
stages (sweeps, calibration) read the same fields.

Units: time h (reported also in days/months where named), activity MBq/GBq as
named, dose Gy, diameters mm, Tg ng/mL.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import jax.numpy as jnp
import numpy as np

from .model import PatientModel
from .protocol import DAYS_PER_MONTH, RAI, Protocol
from .response import sphere_diameter_mm
from .schedule import Channel, Course, DoseSchedule, day_to_h


@dataclass
class ScanReadout:
    """A scan's readout: probability of success under measurement noise, and the drawn result.

    ``day``: study day of the tracer; ``imaging_time_h``: h (t = 0 at the first TKI dose);
    ``p_success``: probability in [0, 1]; ``lesion_metric``: per lesion, in the unit of
    ``metric_name`` (``tumour_to_background`` dimensionless, ``uptake_fold_over_baseline`` fold,
    ``projected_gy_per_gbq`` Gy/GBq, ``lesion_activity_mbq`` MBq); ``projected_gy_per_gbq``:
    I-131 dose per activity projected from this scan, per lesion, Gy/GBq.
    """

    name: str
    day: int
    isotope: str
    readout: str | None
    imaging_time_h: float
    p_success: float | None
    success: bool | None = None
    lesion_metric: list[float] = field(default_factory=list)
    metric_name: str = ""
    projected_gy_per_gbq: list[float] = field(default_factory=list)


@dataclass
class LesionOutcome:
    """One lesion's outcome on the followed course.

    ``mass_g`` g and ``diameter_mm`` mm at baseline; ``projected_gy_per_gbq`` (from the scan behind
    the therapy) and ``therapy_gy_per_gbq`` (from the therapy itself): Gy/GBq; ``absorbed_dose_gy``
    and ``bed_gy``: Gy; ``effective_half_life_h``: h; ``volume_change_pct_at_followup_end``: % of the
    baseline volume; ``p_sterilised``: probability in [0, 1].
    """

    name: str
    site: str
    mass_g: float
    diameter_mm: float
    projected_gy_per_gbq: float | None
    therapy_gy_per_gbq: float | None
    absorbed_dose_gy: float
    bed_gy: float
    effective_half_life_h: float | None
    volume_change_pct_at_followup_end: float
    p_sterilised: float | None = None


@dataclass
class PatientOutcome:
    """Everything a trial would report about one patient, plus solver status.

    ``rai``: activity in GBq, projected doses Gy/GBq, retention a fraction; ``progression_free_months``:
    months after RAI (after day 1 without RAI); ``tg``: ng/mL, changes %, days study days;
    ``toxicity``: days on drug, probabilities in [0, 1], AE study day; see :class:`ScanReadout` and
    :class:`LesionOutcome` for the rest.
    """

    protocol: str
    genotype: str
    seed: int
    course: str
    scans: list[ScanReadout]
    rai: dict
    lesions: list[LesionOutcome]
    recist: list[dict]
    progression_free_months: float | None
    tg: dict
    toxicity: dict
    solver: dict

    def to_dict(self) -> dict:
        """JSON-safe nested dict of the record (NaN/inf → None; units as in the fields)."""
        return _clean(asdict(self))


def _clean(x):
    """JSON-safe: NaN/inf → None, numpy scalars → Python, floats rounded to 10 significant digits."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.bool_ | bool):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        v = float(x)
        if not math.isfinite(v):
            return None
        return float(f"{v:.10g}")
    return x


def grid_index(ts: np.ndarray, t_h: float) -> int:
    """Index of time ``t_h`` (h) on an output grid; it must be a grid point (within 1e-6 h)."""
    i = int(np.argmin(np.abs(ts - t_h)))
    if abs(ts[i] - t_h) > 1e-6:
        raise ValueError(f"time {t_h} h is not on the output grid")
    return i


@dataclass
class CourseArrays:
    """A solved course as numpy arrays, with its schedule.

    ``ts``: the output grid, h; ``ys``: the states on it (units as in
    :func:`raisim.model.initial_state`); ``num_steps``: solver steps (a count).
    """

    course: Course
    channels: list[Channel]
    doses: DoseSchedule
    ts: np.ndarray
    ys: dict
    ok: bool
    num_steps: int

    def index(self, t_h: float) -> int:
        """Index of time ``t_h`` (h) on the course's grid (see :func:`grid_index`)."""
        return grid_index(self.ts, t_h)

    def channel(self, kind: str, scan: str | None = None) -> int:
        """Index of the administration channel of ``kind`` (tracer, projection, therapy) for ``scan``."""
        for i, c in enumerate(self.channels):
            if c.kind == kind and c.scan == scan:
                return i
        raise KeyError((kind, scan))


def _decay(isotope_channel: Channel) -> float:
    from .protocol import isotope_decay_per_h

    return isotope_decay_per_h(isotope_channel.isotope)


def lesion_diameters_mm(model: PatientModel) -> np.ndarray:
    """Baseline diameter of each lesion, mm (sphere of the lesion mass)."""
    return np.asarray(sphere_diameter_mm(jnp.asarray(model.iodine.lesion_mass_g)))


def countable_for_dosimetry(model: PatientModel) -> np.ndarray:
    """Which lesions count for dosimetry criteria (diameter ≥ the card's minimum, 5 mm)."""
    return lesion_diameters_mm(model) >= model.dosimetry.min_dosimetry_diameter_mm


def scan_readouts(p: Protocol, model: PatientModel, ca: CourseArrays) -> dict[str, ScanReadout]:
    """P(success) of every scan of a course (no draws); probabilities in [0, 1], metrics as in :class:`ScanReadout`."""
    dos = model.dosimetry
    mass = np.asarray(model.iodine.lesion_mass_g)
    diam = lesion_diameters_mm(model)
    io = ca.ys["iodine"]
    out = {}
    for s in ca.course.scans:
        c = ca.channel("tracer", s.name)
        t_img = day_to_h(s.day) + s.delay_h
        i = ca.index(t_img)
        lesion = io["lesion"][i, c, :]
        body_conc = background_concentration(model, ca, i, c)
        lesion_conc = lesion / mass
        metric, name, p_l = [], "", None
        if s.readout == "i123_tbr":
            tbr = np.asarray(dos.tumour_to_background(lesion_conc / body_conc, diam))
            liver = np.asarray(dos.tumour_to_liver(lesion_conc / body_conc, diam))
            p_l = dos.p_above(tbr, dos.tbr_threshold) * dos.p_above(liver, dos.liver_ratio_threshold)
            metric, name = tbr, "tumour_to_background"
        elif s.readout == "i124_increase":
            b = p.scan(s.baseline)
            cb = ca.channel("tracer", b.name)
            ib = ca.index(day_to_h(b.day) + b.delay_h)
            ratio = (lesion * math.exp(_decay(ca.channels[c]) * s.delay_h)) / (
                io["lesion"][ib, cb, :] * math.exp(_decay(ca.channels[cb]) * b.delay_h)
            )
            p_l = dos.p_above(ratio, dos.increase_threshold)
            metric, name = ratio, "uptake_fold_over_baseline"
        elif s.readout == "i124_dosimetry":
            gy = projected_gy_per_gbq(model, ca, s.name)
            p_l = np.where(countable_for_dosimetry(model), dos.p_above(gy, dos.target_gy_per_gbq_threshold), 0.0)
            metric, name = gy, "projected_gy_per_gbq"
        elif s.readout in ("diagnostic_wbs", "post_therapy_wbs"):
            mbq, p_l = wbs_visibility(model, ca, i, c, s.tracer_mbq)
            metric, name = mbq, "lesion_activity_mbq"
        p_any = float(dos.p_any(jnp.asarray(p_l))) if p_l is not None else None
        out[s.name] = ScanReadout(
            name=s.name,
            day=s.day,
            isotope=s.isotope,
            readout=s.readout,
            imaging_time_h=t_img,
            p_success=p_any,
            lesion_metric=[float(x) for x in np.asarray(metric)],
            metric_name=name,
            projected_gy_per_gbq=[float(x) for x in projected_gy_per_gbq(model, ca, s.name)],
        )
    return out


def wbs_visibility(
    model: PatientModel, ca: CourseArrays, i: int, c: int, administered_mbq: float
) -> tuple[np.ndarray, np.ndarray]:
    """Whole-body-scan visibility of each lesion at grid index ``i`` for channel ``c``.

    Returns the lesion activities (MBq, for ``administered_mbq`` MBq given) and the
    per-lesion probability of visible uptake (in [0, 1]): enough activity and enough planar
    contrast over the background, each under log-normal measurement noise.
    """
    dos = model.dosimetry
    lesion = ca.ys["iodine"]["lesion"][i, c, :]
    mbq = lesion * administered_mbq
    mass = np.asarray(model.iodine.lesion_mass_g)
    ratio = (lesion / mass) / background_concentration(model, ca, i, c)
    contrast = np.asarray(dos.tumour_to_background(ratio, lesion_diameters_mm(model)))
    return mbq, np.asarray(dos.p_above(mbq, dos.wbs_min_lesion_mbq) * dos.p_above(contrast, dos.wbs_min_contrast))


def background_concentration(model: PatientModel, ca: CourseArrays, i: int, c: int) -> float:
    """Mean whole-body concentration of non-lesion activity at grid index ``i`` (channel ``c``),
    MBq per g per MBq administered."""
    lesions = float(ca.ys["iodine"]["lesion"][i, c, :].sum())
    return (_whole_body(model, ca, i, c) - lesions) / (float(model.iodine.body_mass_kg) * 1000.0)


def projected_gy_per_gbq(model: PatientModel, ca: CourseArrays, scan: str) -> np.ndarray:
    """I-131 lesion dose per activity projected from a scan's tracer kinetics, Gy/GBq (one per lesion)."""
    c = ca.channel("projection", scan)
    cum = ca.ys["iodine"]["cum_lesion"][-1, c, :]  # MBq·h per MBq administered
    s = np.asarray(model.dosimetry.s_value_gy_per_mbq_h(model.iodine.lesion_mass_g))
    return cum * s * 1000.0


def _projection_scan(ca: CourseArrays) -> str | None:
    rai_day = ca.course.rai_day
    before = [s for s in ca.course.scans if rai_day is not None and s.day <= rai_day]
    return before[-1].name if before else None


def _whole_body(model: PatientModel, ca: CourseArrays, i: int, c: int) -> float:
    io = ca.ys["iodine"]
    ch = ca.channels[c]
    s = ca.ts[i] - ch.time_h
    gut = math.exp(-(float(model.iodine.absorption_per_h) + _decay(ch)) * s) if s >= 0 else 0.0
    return float(gut + io["ecf"][i, c] + io["slow"][i, c] + io["nis_tissue"][i, c] + io["lesion"][i, c, :].sum())


def policy_activity(
    rai: RAI,
    *,
    best_countable_gy_per_gbq: float | None = None,
    blood_gy_per_gbq: float | None = None,
    retention_48h_fraction: float | None = None,
    diffuse_lung_metastases: bool = False,
) -> dict:
    """Therapy activity (GBq) of an activity policy from projected dosimetry per GBq.

    Args:
        rai: the protocol's RAI section (policy, target dose, caps and limits).
        best_countable_gy_per_gbq: projected dose per activity of the best lesion ≥ 5 mm, Gy/GBq
            (``dosimetry_max_11.1``).
        blood_gy_per_gbq: projected blood absorbed dose per activity, Gy/GBq (``dosimetry_guided``).
        retention_48h_fraction: projected whole-body retention at 48 h, fraction of administered
            (``dosimetry_guided``).
        diffuse_lung_metastases: the lower 48-h retention limit applies.

    Returns ``treated``, ``activity_gbq`` (GBq), ``reason`` and, for ``dosimetry_guided``,
    ``limits_gbq`` (the activity each limit allows, GBq) and ``binding`` (the one that binds).
    """
    if rai.policy == "fixed":
        return {"treated": True, "activity_gbq": rai.activity_gbq, "reason": "fixed activity"}
    if rai.policy == "dosimetry_max_11.1":
        best = best_countable_gy_per_gbq or 0.0
        need = rai.target_dose_gy / best if best > 0 else math.inf
        if need <= rai.max_gbq:
            return {"treated": True, "activity_gbq": need, "reason": f"{rai.target_dose_gy:g} Gy to the best lesion"}
        return {
            "treated": False,
            "activity_gbq": 0.0,
            "reason": f"would need {need:.3g} GBq > {rai.max_gbq:g} GBq",
        }
    limit_ret = rai.lung_retention_48h_limit_gbq if diffuse_lung_metastases else rai.retention_48h_limit_gbq
    limits = {
        "blood": rai.blood_limit_gy / max(blood_gy_per_gbq, 1e-12),
        "lung_retention_48h" if diffuse_lung_metastases else "retention_48h": limit_ret
        / max(retention_48h_fraction, 1e-12),
    }
    if rai.cap_gbq is not None:
        limits["cap"] = rai.cap_gbq
    binding = min(limits, key=limits.get)
    return {
        "treated": True,
        "activity_gbq": limits[binding],
        "limits_gbq": limits,
        "binding": binding,
        "reason": f"limited by {binding}",
    }


def lung_gy_per_gbq(model: PatientModel, ca: CourseArrays, c: int, lung: np.ndarray) -> float:
    """Mean lung absorbed dose per activity from the lung lesions' cumulated activity, Gy/GBq.

    Diffuse lung metastases deposit their energy in the lungs: cumulated activity of
    the lesions at site ``lung`` (channel ``c``) × the lung self-dose S-value.
    """
    cum = float(np.sum(ca.ys["iodine"]["cum_lesion"][-1, c, :][lung]))
    return cum * float(model.dosimetry.lung_s_value_gy_per_mbq_h()) * 1000.0


def choose_activity(p: Protocol, model: PatientModel, ca: CourseArrays) -> dict:
    """Therapy activity from the protocol's policy (GBq), with the projections and limits behind it.

    Adds ``day`` (study day), ``projected_*_gy_per_gbq`` (Gy/GBq), ``projected_retention_48h_fraction``
    (fraction of administered) and ``lung_dose_gy`` (Gy) where they apply.
    """
    r = p.rai
    if ca.course.rai_day is None or r is None:
        return {
            "treated": False,
            "day": None,
            "policy": r.policy if r else None,
            "activity_gbq": 0.0,
            "reason": "not treated on this course",
        }
    info: dict = {"treated": True, "day": ca.course.rai_day, "policy": r.policy}
    lung = np.asarray([les.site == "lung" for les in p.patient.lesions])
    scan = _projection_scan(ca)
    best = None
    if scan is not None:
        c = ca.channel("projection", scan)
        end = ca.ys["iodine"]
        blood_ml = float(model.iodine.blood_volume_l) * 1000.0
        blood_gy = float(
            model.dosimetry.blood_gy_per_gbq(
                end["cum_blood"][-1, c], end["cum_body"][-1, c], blood_ml, p.patient.weight_kg
            )
        )
        r48 = _whole_body(model, ca, ca.index(ca.channels[c].time_h + 48.0), c)
        gy = projected_gy_per_gbq(model, ca, scan)
        best = float(np.max(np.where(countable_for_dosimetry(model), gy, 0.0)))
        info.update(
            projection_scan=scan,
            projected_blood_gy_per_gbq=blood_gy,
            projected_retention_48h_fraction=r48,
            projected_best_lesion_gy_per_gbq=float(np.max(gy)),
        )
        if lung.any():
            info["projected_lung_gy_per_gbq"] = lung_gy_per_gbq(model, ca, c, lung)
    info.update(
        policy_activity(
            r,
            best_countable_gy_per_gbq=best,
            blood_gy_per_gbq=info.get("projected_blood_gy_per_gbq"),
            retention_48h_fraction=info.get("projected_retention_48h_fraction"),
            diffuse_lung_metastases=p.patient.diffuse_lung_metastases,
        )
    )
    if info["treated"] and lung.any():
        info["lung_dose_gy"] = info["activity_gbq"] * lung_gy_per_gbq(model, ca, ca.channel("therapy"), lung)
    return info


def assessment_times_h(p: Protocol, course: Course) -> list[float]:
    """Follow-up assessment times of a course, h: months after RAI (after day 1 without RAI)."""
    anchor = day_to_h(course.rai_day) if course.rai_day is not None else 0.0
    return [anchor + m * DAYS_PER_MONTH * 24.0 for m in p.followup.months]


def lesion_course(p: Protocol, model: PatientModel, ca: CourseArrays, activity_gbq: float) -> dict:
    """Per-lesion therapy dose and BED, volumes, diameters and Tg on the time grid.

    ``activity_gbq``: therapy activity, GBq. Returns ``dose_t`` and ``total_gy`` (Gy), ``bed_gy`` (Gy),
    ``decay_per_h`` (effective decay of the dose rate, 1/h), ``gy_per_gbq`` (Gy/GBq), ``viable_ml`` and
    ``volume_ml`` (mL), ``p_sterilised`` (probability), ``diameter_mm`` (mm) and ``tg`` (ng/mL).
    """
    io = ca.ys["iodine"]
    mass = np.asarray(model.iodine.lesion_mass_g)
    s_val = np.asarray(model.dosimetry.s_value_gy_per_mbq_h(model.iodine.lesion_mass_g))
    n_l = len(mass)
    if ca.course.rai_day is not None and activity_gbq > 0:
        c = ca.channel("therapy")
        cum = io["cum_lesion"][:, c, :]
        dose_t = activity_gbq * 1000.0 * cum * s_val[None, :]  # Gy on the grid
        total = dose_t[-1]
        frac = np.where(total > 0, dose_t / np.where(total > 0, total, 1.0), 0.0)
        act = io["lesion"][:, c, :]
        peak = np.argmax(act, axis=0)
        lam = np.asarray([act[peak[l], l] / max(cum[-1, l] - cum[peak[l], l], 1e-30) for l in range(n_l)])
        bed = np.asarray(model.response.bed_gy(jnp.asarray(total), jnp.asarray(lam)))
        gy_per_gbq = cum[-1] * s_val * 1000.0
    else:
        dose_t = np.zeros((len(ca.ts), n_l))
        total, frac, bed = np.zeros(n_l), np.zeros((len(ca.ts), n_l)), np.zeros(n_l)
        lam = np.full(n_l, np.nan)
        gy_per_gbq = np.full(n_l, np.nan)
    viable, dead = model.response.volumes_ml(
        jnp.asarray(ca.ts),
        jnp.asarray(mass),
        jnp.asarray(ca.ys["cum_erk_inhibition_h"]),
        jnp.asarray(frac),
        jnp.asarray(bed),
    )
    viable, dead = np.asarray(viable), np.asarray(dead)
    volume = viable + dead
    if ca.course.rai_day is not None and activity_gbq > 0:
        v_rai = viable[ca.index(day_to_h(ca.course.rai_day))]
        p_sterilised = np.asarray(model.response.sterilisation_probability(jnp.asarray(v_rai), jnp.asarray(bed)))
    else:
        p_sterilised = np.zeros(n_l)
    diam = np.asarray(sphere_diameter_mm(jnp.asarray(volume)))
    tg = np.asarray(
        model.response.thyroglobulin_ng_ml(
            jnp.asarray(ca.ts),
            jnp.asarray(viable),
            jnp.asarray(ca.ys["nis"]["organification"]),
            p.patient.baseline_tg_ng_ml,
        )
    )
    return {
        "dose_t": dose_t,
        "total_gy": total,
        "bed_gy": bed,
        "decay_per_h": lam,
        "gy_per_gbq": gy_per_gbq,
        "viable_ml": viable,
        "volume_ml": volume,
        "p_sterilised": p_sterilised,
        "diameter_mm": diam,
        "tg": tg,
    }
