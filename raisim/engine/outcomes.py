"""The outcome rules of one solved course, in jax, and the record of one patient's outcome.

Every rule that turns a solved course into what a trial reports is written
once, here, as a jax function of one patient (unbatched): the background and
whole-body activity, each scan readout, the RAI activity of each policy, the
therapy's lesion doses and BED, RECIST 1.1 and progression. The engine
(:mod:`raisim.engine.batch`) applies them to every patient, one or a million; the
scipy reference of the benchmarks applies them to its own solution.

:class:`PatientOutcome` is the record ``raisim simulate`` writes (outcome.json),
filled from the engine's detailed output of one patient.

Units: time h (reported also in days/months where named), activity MBq/GBq as
named, dose Gy, diameters mm, Tg ng/mL.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ..biology.dosimetry import Dosimetry
from ..biology.iodine import IodineState
from ..biology.response import Response, sphere_diameter_mm
from ..core.model import PatientModel
from ..io.vocab import RAI_POLICIES, READOUTS
from ..protocol.schema import DAYS_PER_MONTH
from .plan import RAINumbers


@dataclass
class ScanReadout:
    """A scan's readout: probability of success under measurement noise, and the drawn result.

    ``day``: study day of the tracer; ``imaging_time_h``: h (t = 0 at the first TKI dose);
    ``p_success``: probability in [0, 1]; ``lesion_metric``: per lesion, in the unit of
    ``metric_name`` (``tumour_to_background`` dimensionless, ``uptake_fold_over_baseline`` fold,
    ``projected_gy_per_gbq`` Gy/GBq, ``lesion_activity_mbq`` MBq); ``projected_gy_per_gbq``:
    I-131 dose per activity projected from this scan, per lesion, Gy/GBq (an ``i124_dosimetry``
    scan: the PET retention fit of its images at ``dosimetry_times_h``, h after the tracer);
    ``true_gy_per_gbq``: what I-131 given with the tracer would deliver, Gy/GBq (the model's truth,
    which no scan sees).
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
    true_gy_per_gbq: list[float] = field(default_factory=list)
    dosimetry_times_h: list[float] = field(default_factory=list)


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

    ``seed`` and ``patient``: the cohort seed and the patient's number in it (its random streams);

    ``rai``: activity in GBq, projected doses Gy/GBq, retention a fraction; ``progression_free_months``:
    months after RAI (after day 1 without RAI) to progression (``pfs_event`` true) or to the end of
    follow-up (``pfs_event`` false: censored, no progression seen); ``tg``: ng/mL, changes %, days study days;
    ``toxicity``: days on drug, probabilities in [0, 1], AE study day; see :class:`ScanReadout` and
    :class:`LesionOutcome` for the rest.
    """

    protocol: str
    genotype: str
    seed: int
    patient: int
    course: str
    scans: list[ScanReadout]
    rai: dict
    lesions: list[LesionOutcome]
    recist: list[dict]
    progression_free_months: float | None
    pfs_event: bool | None
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


#: Activity policies in the order of their codes (:func:`rai_activity`).
POLICIES = RAI_POLICIES
#: The limits of ``dosimetry_guided``, in the order of :func:`rai_activity`'s ``limits_gbq``.
GUIDED_LIMITS = ("blood", "retention_48h", "cap")


def background_per_g(
    model: PatientModel,
    io: IodineState,
    grid_h: Float[Array, " t"],
    admin_h: Float[Array, ""],
    decay: Float[Array, ""],
    i,
    c,
) -> Float[Array, ""]:
    """Mean non-lesion activity concentration at grid index ``i`` of channel ``c`` (administered at
    ``admin_h`` h, decaying at ``decay`` 1/h), MBq per g per MBq administered: gut, ECF, the slow
    compartment and the normal NIS tissues, over the body mass."""
    s = grid_h[i] - admin_h
    k = model.iodine.absorption_per_h + decay
    gut = jnp.where(s >= 0.0, jnp.exp(-k * jnp.maximum(s, 0.0)), 0.0)
    rest = gut + io.ecf[i, c] + io.slow[i, c] + io.nis_tissue[i, c]
    return rest / (model.iodine.body_mass_kg * 1000.0)


def whole_body(
    model: PatientModel,
    io: IodineState,
    grid_h: Float[Array, " t"],
    admin_h: Float[Array, ""],
    decay: Float[Array, ""],
    i,
    c,
) -> Float[Array, ""]:
    """Whole-body activity at grid index ``i`` of channel ``c``, per MBq administered (a fraction)."""
    bg = background_per_g(model, io, grid_h, admin_h, decay, i, c) * model.iodine.body_mass_kg * 1000.0
    return bg + jnp.sum(io.lesion[i, c, :])


def wbs_visibility(dos: Dosimetry, lesion_mbq: Float[Array, " l"], contrast: Float[Array, " l"]) -> Float[Array, " l"]:
    """Per-lesion probability of visible uptake on a planar whole-body scan: enough activity
    (``lesion_mbq`` MBq) and enough planar contrast over the background, each under log-normal
    measurement noise."""
    return dos.p_above(lesion_mbq, dos.wbs_min_lesion_mbq) * dos.p_above(contrast, dos.wbs_min_contrast)


class ScanContext(eqx.Module):
    """What one scan of one patient saw, per lesion: the inputs of every readout rule.

    ``lesion``: lesion activity at imaging per MBq administered (a fraction); ``ratio``: lesion
    over mean body (non-lesion) concentration at imaging (planar scans; dimensionless);
    ``ecf_per_g``: the ECF's iodide concentration at imaging, per g (per mL) per MBq administered
    (SPECT/CT's background and liver);
    ``correction``: the tracer's decay from administration to imaging, as a fold
    (``i124_increase`` compares decay-corrected uptake); ``baseline``: the baseline scan's
    decay-corrected lesion activity per MBq (``i124_increase``); ``projected_gy_per_gbq``: I-131
    lesion dose per activity projected from the scan (the PET retention fit of
    ``i124_dosimetry``), Gy/GBq; ``tracer_mbq``: administered tracer activity, MBq; ``countable``:
    lesions large enough for dosimetry criteria.
    """

    lesion: Float[Array, " l"]
    ratio: Float[Array, " l"]
    ecf_per_g: Float[Array, ""]
    correction: Float[Array, ""]
    baseline: Float[Array, " l"]
    projected_gy_per_gbq: Float[Array, " l"]
    tracer_mbq: Float[Array, ""]
    countable: Bool[Array, " l"]


def _readout_rules(model: PatientModel, scan: ScanContext) -> list[tuple[Float[Array, " l"], Float[Array, " l"]]]:
    """``(p_lesion, metric)`` of every readout, in the order of :data:`raisim.io.vocab.READOUTS`."""
    lesion, ratio, countable = scan.lesion, scan.ratio, scan.countable
    dos = model.dosimetry
    diam = sphere_diameter_mm(model.iodine.lesion_mass_g)
    rules = {}
    tbr, tlr = dos.spect_ratios(lesion / model.iodine.lesion_mass_g, scan.ecf_per_g, diam)
    rules["i123_tbr"] = dos.p_spect_success(tbr, tlr), tbr
    planar = dos.tumour_to_background(ratio, diam)
    liver = dos.tumour_to_liver(ratio, diam)
    rules["i123_planar_tbr"] = (
        dos.p_above(planar, dos.tbr_threshold) * dos.p_above(liver, dos.liver_ratio_threshold),
        planar,
    )
    fold = lesion * scan.correction / jnp.where(scan.baseline > 0, scan.baseline, 1.0)
    rules["i124_increase"] = dos.p_above(fold, dos.increase_threshold), fold
    gy = scan.projected_gy_per_gbq
    rules["i124_dosimetry"] = (
        jnp.where(countable, dos.p_above(gy, dos.target_gy_per_gbq_threshold, dos.pet_noise_sd_log), 0.0),
        gy,
    )
    mbq = lesion * scan.tracer_mbq
    rules["diagnostic_wbs"] = rules["post_therapy_wbs"] = wbs_visibility(dos, mbq, planar), mbq
    return [rules[name] for name in READOUTS]


def scan_readout(
    readout: Int[ArrayLike, ""], model: PatientModel, scan: ScanContext
) -> tuple[Float[Array, " l"], Float[Array, " l"]]:
    """Per-lesion P(success) of a scan and the metric it reads.

    **Arguments:**

    - `readout`: the readout's code (:func:`raisim.io.vocab.readout_code`; an integer array or int) of
      ``i123_tbr`` (tumour/background and tumour/liver on I-123 SPECT/CT, as ERRITI
      read them), ``i123_planar_tbr`` (the same criterion on a planar image), ``i124_increase``
      (uptake over the baseline scan's), ``i124_dosimetry`` (I-131 Gy/GBq projected from the PET
      retention fit ≥ the target per GBq), ``diagnostic_wbs`` or ``post_therapy_wbs`` (visible
      uptake on a planar whole-body scan); -1: no readout.
    - `model`: the patient's model (its dosimetry block and lesion masses).
    - `scan`: what the scan saw (:class:`ScanContext`).

    **Returns:**

    ``(p_lesion, metric)``: probabilities in [0, 1] and the metric in its unit
    (``tumour_to_background``, ``uptake_fold_over_baseline``, ``projected_gy_per_gbq`` Gy/GBq,
    ``lesion_activity_mbq`` MBq); zeros and NaNs for code -1.

    Every rule is evaluated and the code selects one (a few operations per lesion beside the solve).
    """
    rules = _readout_rules(model, scan)
    code = jnp.asarray(readout)
    p_all = jnp.stack([p for p, _ in rules])
    m_all = jnp.stack([m for _, m in rules])
    at = jnp.clip(code, 0, len(READOUTS) - 1)
    has = code >= 0
    return jnp.where(has, p_all[at], 0.0), jnp.where(has, m_all[at], jnp.nan)


METRIC_NAMES = {
    "i123_tbr": "tumour_to_background",
    "i123_planar_tbr": "tumour_to_background",
    "i124_increase": "uptake_fold_over_baseline",
    "i124_dosimetry": "projected_gy_per_gbq",
    "diagnostic_wbs": "lesion_activity_mbq",
    "post_therapy_wbs": "lesion_activity_mbq",
}


def rai_activity(
    policy: Int[ArrayLike, ""],
    numbers: RAINumbers,
    best_countable_gy_per_gbq: Float[Array, ""],
    blood_gy_per_gbq: Float[Array, ""],
    retention_48h_fraction: Float[Array, ""],
) -> tuple[Float[Array, ""], Bool[Array, ""], Float[Array, " 3"]]:
    """Therapy activity of an activity policy from the projected dosimetry per GBq.

    **Arguments:**

    - `policy`: the policy's code (:func:`raisim.io.vocab.policy_code`; an integer array or int) of ``fixed``,
      ``dosimetry_max_11.1``, ``dosimetry_guided``; -1: no RAI.
    - `numbers`: the RAI section's numbers (:class:`raisim.engine.plan.RAINumbers`; GBq, Gy).
    - `best_countable_gy_per_gbq`: projected dose per activity of the best lesion large enough
      for dosimetry, Gy/GBq (``dosimetry_max_11.1``: the target dose over it).
    - `blood_gy_per_gbq`: projected blood dose per activity, Gy/GBq (``dosimetry_guided``).
    - `retention_48h_fraction`: projected whole-body retention at 48 h, fraction (``dosimetry_guided``;
      the lung limit applies with diffuse lung metastases, through ``numbers``).

    **Returns:**

    ``(activity_gbq, allowed, limits_gbq)``: the activity (GBq; 0 when not allowed), whether the
    policy allows treatment (``dosimetry_max_11.1`` refuses above its maximum; never without RAI),
    and for ``dosimetry_guided`` the activity each limit of :data:`GUIDED_LIMITS` allows (GBq;
    NaN otherwise). Every policy is evaluated and the code selects one.
    """
    dtype = numbers.fixed_gbq.dtype
    nan3 = jnp.full(3, jnp.nan, dtype=dtype)
    best = best_countable_gy_per_gbq
    need = jnp.where(best > 0, numbers.target_dose_gy / jnp.where(best > 0, best, 1.0), jnp.inf)
    max_ok = need <= numbers.max_gbq
    limits = jnp.stack(
        [
            numbers.blood_limit_gy / jnp.maximum(blood_gy_per_gbq, 1e-12),
            numbers.retention_48h_limit_gbq / jnp.maximum(retention_48h_fraction, 1e-12),
            numbers.cap_gbq,
        ]
    )
    by_policy = [  # in the order of POLICIES, then no RAI
        (numbers.fixed_gbq, jnp.asarray(True), nan3),
        (jnp.where(max_ok, need, 0.0), max_ok, jnp.stack([need, jnp.nan, jnp.nan]).astype(dtype)),
        (jnp.min(limits), jnp.asarray(True), limits.astype(dtype)),
        (jnp.zeros((), dtype), jnp.asarray(False), nan3),
    ]
    code = jnp.asarray(policy)
    at = jnp.where(code >= 0, jnp.clip(code, 0, len(POLICIES) - 1), len(POLICIES))
    return tuple(jnp.stack(xs)[at] for xs in zip(*by_policy, strict=True))


def effective_decay_per_h(activity: Float[Array, "t l"], cumulated: Float[Array, "t l"]) -> Float[Array, " l"]:
    """Effective decay constant of each lesion's dose rate after its peak, 1/h: the peak activity over
    the activity cumulated after the peak (a mono-exponential with the same integral)."""
    peak = jnp.argmax(activity, axis=0)
    cols = jnp.arange(activity.shape[1])
    return activity[peak, cols] / jnp.maximum(cumulated[-1] - cumulated[peak, cols], 1e-30)


def recist(
    response: Response, diam_mm: Float[Array, "t l"], i0: Int[Array, ""], assess: Int[Array, " a"]
) -> tuple[Int[Array, " a"], Float[Array, " a"], Float[Array, " a"]]:
    """RECIST 1.1 at each assessment (grid indices ``assess``; baseline at grid index ``i0``).

    CR: every lesion below ``cr_diameter_mm``; PD: sum ≥ 1.2 × nadir and ≥ 5 mm above it (nadir over
    baseline and earlier assessments); PR: sum ≤ 0.7 × baseline; otherwise SD. The sum counts the
    lesions at or above ``cr_diameter_mm``.

    **Returns:**

    ``(code, change_pct, sum_mm)``: codes 0 CR, 1 PR, 2 SD, 3 PD (:data:`RECIST_CODES`); change
    of the sum from baseline, %; the sum of diameters, mm.
    """
    cr = response.cr_diameter_mm
    sums = jnp.sum(jnp.where(diam_mm >= cr, diam_mm, 0.0), axis=1)
    base = sums[i0]
    sa = sums[assess]
    running = jax.lax.cummin(sa)
    nadir = jnp.minimum(base, jnp.concatenate([jnp.asarray([base]), running[:-1]]))
    all_cr = jnp.all(diam_mm[assess] < cr, axis=1)
    pd_ = (sa >= 1.2 * nadir) & (sa - nadir >= 5.0)
    pr = sa <= 0.7 * base
    code = jnp.where(all_cr, 0, jnp.where(pd_, 3, jnp.where(pr, 1, 2)))
    return code, 100.0 * (sa - base) / base, sa


RECIST_CODES = ("CR", "PR", "SD", "PD")


def progression_months(
    grid_h: Float[Array, " t"], diam_mm: Float[Array, "t l"], anchor: Int[Array, ""]
) -> tuple[Float[Array, ""], Bool[Array, ""]]:
    """Progression-free time as survival data: time to event or to censoring, and the event flag.

    **Arguments:**

    - `grid_h`: the output grid, h (a padded grid repeats its last time).
    - `diam_mm`: lesion diameters on the grid, mm.
    - `anchor`: grid index of the follow-up anchor (RAI, else day 1).

    **Returns:**

    ``(months, progressed)``: months (of 365.25/12 days) from the anchor to the first time the sum
    of diameters is ≥ 20 % and ≥ 5 mm above its running nadir since the anchor (``progressed``
    true), or to the end of follow-up when it never is (``progressed`` false: censored).
    """
    sums = jnp.sum(diam_mm, axis=1)
    j = jnp.arange(sums.shape[0])
    after = j >= anchor
    running = jax.lax.cummin(jnp.where(after, sums, jnp.inf))
    nadir = jnp.concatenate([jnp.asarray([jnp.inf]), running[:-1]])
    hit = after & (sums >= 1.2 * nadir) & (sums - nadir >= 5.0)
    progressed = jnp.any(hit)
    t = jnp.where(progressed, grid_h[jnp.argmax(hit)], grid_h[-1])
    return (t - grid_h[anchor]) / 24.0 / DAYS_PER_MONTH, progressed
