"""Population PK: inter-individual variability, covariates, and the two concentration paths.

- :func:`population_pk` gives virtual patients' PK parameters: log-normal
  IIV (with correlations where the card gives them) around the covariate-
  adjusted typical values (sex, weight), from each patient's own stream; every
  cohort and :func:`sample_population` use it.
- :func:`closed_form_central_mg` is the fast path for linear drugs: the exact
  superposition of one- or two-compartment responses to oral doses (first-
  order absorption after a lag) or IV infusions.
- :func:`solve_pk` is the ODE path (diffrax), exact for every drug including
  CYP3A4 autoinduction; both paths agree to < 1e-6 where both apply.

Units: time h, amounts mg, concentrations ng/mL (total).
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ..io.cards import card_values
from ..runtime import require_x64
from ..streams import patient_normals
from .pk import PK, PK_KEYS, PKState, drug_values

#: PK parameters that may carry inter-individual variability (card key suffix → PK field).
IIV_PARAMS = {"cl": "cl_l_per_h", "v1": "v1_l", "ka": "ka_per_h", "q": "q_l_per_h", "v2": "v2_l"}


def iiv_covariance(drug: str) -> tuple[list[str], np.ndarray]:
    """Names (PK fields) with IIV and the covariance matrix of their log-normal random effects.

    The covariance is on the log scale (dimensionless): ω² = ln(1 + CV²) from the card's CVs.
    """
    v = card_values(f"drugs/{drug}.yaml")
    names = [k for k in IIV_PARAMS if f"iiv_cv_{k}" in v]
    omega = np.asarray([math.sqrt(math.log1p(v[f"iiv_cv_{k}"] ** 2)) for k in names])
    corr = np.eye(len(names))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            r = v.get(f"iiv_corr_{a}_{b}", v.get(f"iiv_corr_{b}_{a}"))
            if i != j and r is not None:
                corr[i, j] = r
    return [IIV_PARAMS[k] for k in names], corr * np.outer(omega, omega)


#: PK random-effect slots per drug (the ``pk:<drug>`` stream draws this many normals per patient).
MAX_IIV = 8


def population_pk(
    drugs: tuple[str, ...],
    female: Bool[np.ndarray, " n"],
    weight_kg: Float[np.ndarray, " n"],
    *,
    seed: int,
    index: np.ndarray,
    variability: bool = True,
    overrides: dict[str, dict[str, float]] | None = None,
) -> PK:
    """PK parameters of virtual patients: covariate-adjusted typical values with log-normal IIV.

    The one rule behind :func:`sample_population` and every cohort
    (:func:`raisim.engine.cohort.cohort_pk`). Each drug's random effects come from its own stream
    ``pk:<drug>`` (:func:`raisim.streams.patient_normals`), so a patient's trametinib clearance is
    the same in every regimen containing it, and depends only on ``(seed, index[i])``.

    **Arguments:**

    - `drugs`: drug card names.
    - `female`: per patient, True for women (the cards' sex-specific values).
    - `weight_kg`: body weight per patient, kg (allometric exponents from the cards, 70 kg reference).
    - `seed`: the random effects' seed; index: the patients' numbers (their stream identity).
    - `variability`: False gives every patient its covariate-adjusted typical values.
    - `overrides`: card values per drug (``{drug: {key: value}}``, card units), applied before
      the covariates and random effects act on them.

    **Returns:**

    A :class:`raisim.biology.pk.PK` with fields of shape ``(n, n_drugs)`` (L/h, L, 1/h, h).

    **Raises:**

    - `ValueError`: a drug card with more than :data:`MAX_IIV` random effects.
    """
    female = np.asarray(female, dtype=bool)
    n = len(female)
    w = np.asarray(weight_kg, dtype=float) / 70.0
    cols: dict[str, np.ndarray] = {k: np.empty((n, len(drugs))) for k in (*PK_KEYS, "induction_rate_per_h")}
    for j, d in enumerate(drugs):
        by_sex = {s: drug_values(d, s) for s in ("female", "male")}
        base = {k: np.where(female, by_sex["female"][k], by_sex["male"][k]) for k in PK_KEYS}
        card = card_values(f"drugs/{d}.yaml")
        for k, val in (overrides or {}).get(d, {}).items():
            if k in base:
                base[k] = base[k] / card[k] * val if card[k] != 0 else np.full(n, float(val))
        base["cl_l_per_h"] = base["cl_l_per_h"] * w ** card.get("cov_cl_weight_exp", 0.0)
        for key in ("v1_l", "v2_l"):
            base[key] = base[key] * w ** card.get("cov_v_weight_exp", 0.0)
        names, cov = iiv_covariance(d)
        if names and variability:
            if len(names) > MAX_IIV:
                raise ValueError(f"{d}: more than {MAX_IIV} PK random effects")
            z = patient_normals(seed, f"pk:{d}", index, MAX_IIV)[:, : len(names)]
            eta = z @ np.linalg.cholesky(cov).T
            for i, name in enumerate(names):
                base[name] = base[name] * np.exp(eta[:, i])
        for k in PK_KEYS:
            cols[k][:, j] = base[k]
        cols["induction_rate_per_h"][:, j] = math.log(2.0) / card["induction_t_half_h"]
    return PK(**{k: jnp.asarray(x) for k, x in cols.items()}, present=jnp.ones((n, len(drugs)), bool))


def sample_population(
    drugs: tuple[str, ...],
    n: int,
    seed: int,
    *,
    sex: np.ndarray | None = None,
    weight_kg: np.ndarray | None = None,
) -> PK:
    """PK parameters of ``n`` virtual patients numbered 0..n−1, fields of shape ``(n, n_drugs)``
    (:func:`population_pk`: the same draws as patients 0..n−1 of a cohort of ``seed``).

    **Arguments:**

    - `drugs`: drug card names.
    - `n`: number of patients.
    - `seed`: seed of the random effects (one stream per drug, so adding a drug
      does not change the others' draws).
    - `sex`: ``"female"``/``"male"`` per patient (default: alternating, 50 % women).
    - `weight_kg`: body weight per patient, kg (default: 70 kg for everyone).

    **Returns:**

    A :class:`raisim.biology.pk.PK`; units of the fields as there (L/h, L, 1/h, h).
    """
    sex = np.asarray(sex if sex is not None else np.where(np.arange(n) % 2 == 0, "female", "male"))
    weight = np.asarray(weight_kg if weight_kg is not None else np.full(n, 70.0), dtype=float)
    return population_pk(drugs, sex == "female", weight, seed=seed, index=np.arange(n))


def _two_compartment_rates(cl, v1, q, v2):
    """Hybrid rate constants α ≥ β of a two-compartment model (β = 0 exactly when q = 0)."""
    k10, k12, k21 = cl / v1, q / v1, q / v2
    s = k10 + k12 + k21
    disc = jnp.sqrt(jnp.maximum(s * s - 4.0 * k10 * k21, 0.0))
    return (s + disc) / 2.0, (s - disc) / 2.0, k21


def closed_form_central_mg(
    pk: PK, t_h: Float[Array, " t"], dose_times_h: Float[Array, "d n"], dose_mg: Float[Array, "d n"]
) -> Float[Array, "t d"]:
    """Central-compartment amount (mg) by superposition, for linear drugs (no autoinduction).

    Oral doses: tri-exponential (α, β, ka) response after the lag; IV infusions:
    bi-exponential response integrated over the infusion. One patient (fields of
    shape ``(n_drugs,)``); vmap for a population. ``t_h`` and ``dose_times_h``: times, h;
    ``dose_mg``: amounts, mg; returns mg, shape ``(t, n_drugs)``.
    """
    alpha, beta, k21 = _two_compartment_rates(pk.cl_l_per_h, pk.v1_l, pk.q_l_per_h, pk.v2_l)
    ka = pk.ka_per_h

    def per_drug(al, be, k21_, ka_, tlag, f, dur, times, amounts):
        s = t_h[:, None] - times[None, :]  # (t, n)
        # oral: unit-dose response of the central amount
        so = s - tlag
        pos = so > 0.0
        so = jnp.where(pos, so, 0.0)
        c_a = (k21_ - al) / ((ka_ - al) * (be - al))
        c_b = (k21_ - be) / ((ka_ - be) * (al - be))
        c_k = (k21_ - ka_) / ((al - ka_) * (be - ka_))
        oral = jnp.where(
            pos, f * ka_ * (c_a * jnp.exp(-al * so) + c_b * jnp.exp(-be * so) + c_k * jnp.exp(-ka_ * so)), 0.0
        )
        # IV infusion of duration dur: rate 1/dur, response of the bolus coefficients integrated
        b_a, b_b = (k21_ - al) / (be - al), (k21_ - be) / (al - be)
        on = jnp.clip(s, 0.0, dur)
        after = jnp.maximum(s - dur, 0.0)
        safe_dur = jnp.where(dur > 0, dur, 1.0)

        def integ(coef, lam):
            lam_safe = jnp.where(lam > 0, lam, 1.0)
            grow = jnp.where(lam > 0, (1.0 - jnp.exp(-lam * on)) / lam_safe, on)
            return coef * grow * jnp.exp(-lam * after)

        iv = jnp.where(s > 0.0, (integ(b_a, al) + integ(b_b, be)) / safe_dur, 0.0)
        unit = jnp.where(dur > 0, iv, oral)
        return unit @ amounts

    out = jax.vmap(per_drug, in_axes=(0, 0, 0, 0, 0, 0, 0, 0, 0), out_axes=1)(
        alpha, beta, k21, ka, pk.tlag_h, pk.f_bio, pk.infusion_h, dose_times_h, dose_mg
    )
    return out


def _pk_field(t, y, args):
    pk, table = args
    return pk.vector_field(y, pk.input_rate_mg_per_h(t, table))


@eqx.filter_jit
def solve_pk(
    pk: PK,
    dose_times_h: Float[Array, "d n"],
    dose_mg: Float[Array, "d n"],
    ts: Float[Array, " t"],
    *,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 100_000,
) -> tuple[PKState, Array]:
    """The ODE path for PK alone (diffrax Tsit5, dose discontinuities as jump times).

    Integrates from min(0, ts[0]) (drug-free before the first dose at t ≥ 0) and
    saves at ``ts`` (h). ``dose_times_h``: h; ``dose_mg``: mg; ``rtol``/``atol``: solver
    tolerances (``atol`` in mg and fold). Returns the saved state (``central_mg`` and
    ``peripheral_mg`` in mg, ``enzyme_fold`` a fold of uninduced CL, each ``(t, n_drugs)``)
    and a success flag.
    """
    require_x64("raisim.solve_pk")
    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol, dtmax=24.0), jump_ts=jnp.sort(pk.jump_times_h(dose_times_h))
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_pk_field),
        diffrax.Tsit5(),
        jnp.minimum(ts[0], 0.0),
        ts[-1],
        dt0=0.05,
        y0=pk.initial_state(),
        args=(pk, pk.dose_table(dose_times_h, dose_mg)),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=False,
    )
    return sol.ys, sol.result == diffrax.RESULTS.successful


def concentration_ng_ml(pk: PK, central_mg: Float[Array, "t d"]) -> Float[Array, "t d"]:
    """Total plasma concentration from the central amount ``central_mg`` (mg), ng/mL."""
    return central_mg / pk.v1_l * 1000.0
