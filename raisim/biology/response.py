"""Block 6 — tumour response, RECIST 1.1 and serum thyroglobulin.

Each lesion's viable volume grows exponentially (volume doubling time),
shrinks under the cytostatic TKI effect (proportional to ERK inhibition while
on drug) and is killed by radiation with linear-quadratic survival at the
Dale BED of an exponentially decaying dose rate, delivered as the dose
accrues. Dead cells are cleared with first-order kinetics. Serum Tg is made
by viable tumour, scaled by differentiation, and cleared with t½ ~65 h.

Units: time h, volume mL, dose Gy, diameters mm, Tg ng/mL.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..io.cards import card_values

RECIST_CATEGORIES = ("CR", "PR", "SD", "PD")


def sphere_diameter_mm(volume_ml: Float[Array, ...]) -> Float[Array, ...]:
    """Diameter of a sphere of the given volume, mm (1 mL = 1 cm³)."""
    return 10.0 * (6.0 * jnp.maximum(volume_ml, 0.0) / math.pi) ** (1.0 / 3.0)


def dale_bed_gy(dose_gy, decay_per_h, repair_per_h, alpha_beta_gy):
    """BED of an exponentially decaying dose rate (Dale 1985), Gy.

    BED = D [1 + D λ / ((μ + λ)(α/β))], with D = ``dose_gy`` the total absorbed dose (Gy),
    λ = ``decay_per_h`` the effective decay constant of the dose rate and μ = ``repair_per_h``
    the repair rate constant (both 1/h), and α/β = ``alpha_beta_gy`` (Gy).
    """
    return dose_gy * (1.0 + dose_gy * decay_per_h / ((repair_per_h + decay_per_h) * alpha_beta_gy))


class Response(eqx.Module):
    """Growth, TKI and radiation effects on lesions, and thyroglobulin.

    Rate constants ``growth_per_h``, ``repair_per_h``, ``dead_clearance_per_h`` and
    ``tg_clearance_per_h``: 1/h; ``tki_kill_per_h``: 1/h per unit ERK inhibition;
    ``alpha_per_gy``: LQ α per lesion, 1/Gy; ``alpha_beta_gy``: Gy; ``clonogens_per_ml``:
    clonogenic cells per mL of viable tumour; ``cr_diameter_mm``: mm;
    ``tg_differentiation_exponent``: dimensionless.
    """

    growth_per_h: Float[Array, ""]
    tki_kill_per_h: Float[Array, ""]
    alpha_per_gy: Float[Array, " l"]
    clonogens_per_ml: Float[Array, ""]
    alpha_beta_gy: Float[Array, ""]
    repair_per_h: Float[Array, ""]
    dead_clearance_per_h: Float[Array, ""]
    cr_diameter_mm: Float[Array, ""]
    tg_clearance_per_h: Float[Array, ""]
    tg_differentiation_exponent: Float[Array, ""]

    @classmethod
    def from_cards(cls, radiosensitivity=(1.0,), overrides: dict[str, float] | None = None) -> Response:
        """Typical parameters; ``radiosensitivity`` is each lesion's α relative to the typical lesion (fold).

        ``overrides`` replace response-card values by name (card units: doubling and clearance
        times in days, other half-lives in h, α 1/Gy, α/β Gy).
        """
        v = dict(card_values("biology/response.yaml"))
        v.update(overrides or {})
        f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
        ln2 = math.log(2.0)
        return cls(
            growth_per_h=f(ln2 / (v["doubling_time_d"] * 24.0)),
            tki_kill_per_h=f(v["tki_kill_per_h"]),
            alpha_per_gy=f(v["alpha_per_gy"]) * f(radiosensitivity),
            clonogens_per_ml=f(v["clonogens_per_ml"]),
            alpha_beta_gy=f(v["alpha_beta_gy"]),
            repair_per_h=f(ln2 / v["repair_t_half_h"]),
            dead_clearance_per_h=f(ln2 / (v["dead_clearance_t_half_d"] * 24.0)),
            cr_diameter_mm=f(v["cr_diameter_mm"]),
            tg_clearance_per_h=f(ln2 / v["tg_t_half_h"]),
            tg_differentiation_exponent=f(v["tg_differentiation_exponent"]),
        )

    def bed_gy(self, dose_gy, decay_per_h):
        """Dale BED for this lesion's α/β and repair rate, Gy (``dose_gy``: Gy; ``decay_per_h``: 1/h)."""
        return dale_bed_gy(dose_gy, decay_per_h, self.repair_per_h, self.alpha_beta_gy)

    def volumes_ml(
        self,
        t_h: Float[Array, " t"],
        v0_ml: Float[Array, " l"],
        cum_erk_inhibition_h: Float[Array, " t"],
        dose_fraction: Float[Array, "t l"],
        bed_gy: Float[Array, " l"],
    ) -> tuple[Float[Array, "t l"], Float[Array, "t l"]]:
        """Viable and dead lesion volumes on the time grid, mL.

        **Arguments:**

        - `t_h`: time grid, h (t = 0 at the first dose; V = ``v0_ml`` there untreated).
        - `v0_ml`: lesion volumes at t = 0, mL.
        - `cum_erk_inhibition_h`: ∫ max(1 − ERK, 0) dt from t = 0, h.
        - `dose_fraction`: fraction of each lesion's total absorbed dose delivered by t (in [0, 1]).
        - `bed_gy`: total BED per lesion, Gy.

        Returns (viable, dead) volumes, mL, shape ``(t, l)``.
        """
        log_env = self.growth_per_h * t_h - self.tki_kill_per_h * cum_erk_inhibition_h
        envelope = v0_ml[None, :] * jnp.exp(log_env)[:, None]
        survival = jnp.exp(-self.alpha_per_gy[None, :] * bed_gy[None, :] * dose_fraction)
        viable = envelope * survival
        # dead cells: killed in each interval, then cleared (exponential integrator, midpoint)
        killed = envelope[1:] * (survival[:-1] - survival[1:])
        dt = jnp.diff(t_h)[:, None]
        decay = jnp.exp(-self.dead_clearance_per_h * dt)
        half = jnp.exp(-0.5 * self.dead_clearance_per_h * dt)

        def step(dead, inputs):
            k, d, h = inputs
            new = dead * d + k * h
            return new, new

        import jax

        _, dead_rest = jax.lax.scan(step, jnp.zeros_like(v0_ml), (killed, decay, half))
        dead = jnp.concatenate([jnp.zeros_like(v0_ml)[None, :], dead_rest], axis=0)
        return viable, dead

    def sterilisation_probability(self, v0_ml: Float[Array, " l"], bed_gy: Float[Array, " l"]) -> Float[Array, " l"]:
        """Probability that no clonogen of a lesion survives its BED (Poisson TCP), per lesion.

        Expected surviving clonogens = clonogen density × volume at RAI (``v0_ml``, mL) ×
        exp(−α·BED) with ``bed_gy`` in Gy; returns a probability in [0, 1] per lesion.
        """
        survivors = self.clonogens_per_ml * v0_ml * jnp.exp(-self.alpha_per_gy * bed_gy)
        return jnp.exp(-survivors)

    def thyroglobulin_ng_ml(
        self,
        t_h: Float[Array, " t"],
        viable_ml: Float[Array, "t l"],
        organification: Float[Array, "t l"],
        baseline_tg_ng_ml: float,
    ) -> Float[Array, " t"]:
        """Serum Tg on the grid, ng/mL; production ∝ Σ viable volume × organification^κ.

        ``t_h``: time grid, h; ``viable_ml``: viable lesion volumes, mL; ``organification``:
        fold of untreated; ``baseline_tg_ng_ml``: Tg at the first grid point, ng/mL.
        """
        prod = jnp.sum(viable_ml * jnp.maximum(organification, 0.0) ** self.tg_differentiation_exponent, axis=1)
        rel = prod / jnp.maximum(prod[0], 1e-30)
        k = self.tg_clearance_per_h
        dt = jnp.diff(t_h)
        decay = jnp.exp(-k * dt)
        mid = 0.5 * (rel[1:] + rel[:-1]) * baseline_tg_ng_ml

        import jax

        def step(tg, inputs):
            d, src = inputs
            new = tg * d + src * (1.0 - d)
            return new, new

        tg0 = jnp.asarray(baseline_tg_ng_ml, dtype=jnp.result_type(viable_ml))  # float64 unless cast
        _, rest = jax.lax.scan(step, tg0, (decay.astype(tg0.dtype), mid.astype(tg0.dtype)))
        return jnp.concatenate([tg0[None], rest])

    def recist(
        self, diam_mm: Float[Array, "t l"], baseline_index: int, assess_index: list[int]
    ) -> list[dict[str, float | str]]:
        """RECIST 1.1 category at each assessment (indices into the time grid).

        CR: every lesion below ``cr_diameter_mm``; PD: sum ≥ 1.2 × nadir and
        ≥ 5 mm above it (nadir over baseline and earlier assessments); PR: sum
        ≤ 0.7 × baseline; otherwise SD. ``diam_mm``: lesion diameters on the grid, mm.
        Returns per assessment ``sum_diameters_mm`` (mm), ``change_from_baseline_pct`` (%) and ``category``.
        """
        import numpy as np

        d = np.asarray(diam_mm)
        visible = np.where(d >= float(self.cr_diameter_mm), d, 0.0)
        sums = visible.sum(axis=1)
        base = float(sums[baseline_index])
        nadir = base
        out = []
        for i in assess_index:
            s = float(sums[i])
            if np.all(d[i] < float(self.cr_diameter_mm)):
                cat = "CR"
            elif s >= 1.2 * nadir and s - nadir >= 5.0:
                cat = "PD"
            elif s <= 0.7 * base:
                cat = "PR"
            else:
                cat = "SD"
            out.append({"sum_diameters_mm": s, "change_from_baseline_pct": 100.0 * (s - base) / base, "category": cat})
            nadir = min(nadir, s)
        return out

    @staticmethod
    def progression_time_h(t_h, diam_mm, baseline_index: int) -> float | None:
        """First time (h) the sum of diameters is ≥ 20 % and ≥ 5 mm above its running nadir.

        ``t_h``: time grid, h; ``diam_mm``: lesion diameters on it, mm; None if it never happens.
        """
        import numpy as np

        sums = np.asarray(diam_mm).sum(axis=1)
        t = np.asarray(t_h)
        nadir = sums[baseline_index]
        for i in range(baseline_index, len(t)):
            if sums[i] >= 1.2 * nadir and sums[i] - nadir >= 5.0:
                return float(t[i])
            nadir = min(nadir, sums[i])
        return None
