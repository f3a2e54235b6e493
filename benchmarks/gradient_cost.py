"""Cost of one gradient of an arm-level readout probability (the budget of NUTS on the full model).

The quantity calibration needs per trial arm: the mean P(readout success) over a fixed
set of virtual patients (common random numbers) as a function of population
parameters. Here: the ERRITI BRAF-wild-type uptake row as a RAS arm (trametinib 2 mg
q24h, I-123 tumour/background scan on day 22, the solve stops one month after day 1),
``--patients`` virtual patients, parameters = log multipliers of the ERK → NIS
half-maximal ERK level and of the lesion uptake clearance. Forward value and reverse-mode
gradient (diffrax's default RecursiveCheckpointAdjoint through the batched engine), timed
after compilation.

Usage: python benchmarks/gradient_cost.py --patients 16 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time

import equinox as eqx
import jax
import jax.numpy as jnp

from raisim.engine.batch import SolverSettings, _patients, typical_model
from raisim.engine.cohort import cohort_model, sample_cohort
from raisim.engine.course import patient_inputs
from raisim.engine.plan import cell_shapes, cohort_draws, plan_cell
from raisim.io.trials import load_trials
from raisim.protocol.arms import arm_protocol
from raisim.protocol.schedule import protocol_drugs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    row = next(r for r in load_trials().rows if r.arm == "ERRITI_WT")
    p = arm_protocol(row, "RAS")
    cohort = sample_cohort(args.patients, 0, max_lesions=3)
    plan = plan_cell(p)
    base = cohort_model(typical_model(p, cohort.max_lesions), cohort, protocol_drugs(p)).with_drug_slots(
        cell_shapes(p).drugs
    )
    draws = cohort_draws(p, cohort, plan)
    inputs = patient_inputs(cohort)
    # Tsit5 throughout: the stabilised tail's stage loop has a per-step trip count (no reverse mode)
    solver = SolverSettings(1e-6, 1e-9, 20_000, tail_delay_h=None)

    def arm_p(theta):
        m = eqx.tree_at(
            lambda t: (t.nis.erk_half_max, t.iodine.lesion_uptake_l_per_h_per_g),
            base,
            (base.nis.erk_half_max * jnp.exp(theta[0]), base.iodine.lesion_uptake_l_per_h_per_g * jnp.exp(theta[1])),
        )
        out = _patients(m, plan, draws, inputs, solver, False)
        return jnp.mean(out.readout_p)

    theta = jnp.zeros(2)
    f, g = jax.jit(arm_p), jax.jit(jax.grad(arm_p))
    res = {"patients": args.patients, "grid_points": int(plan.grid_h.shape[0])}
    for name, fn in (("value", f), ("gradient", g)):
        t = time.perf_counter()
        jax.block_until_ready(fn(theta))
        first = time.perf_counter() - t
        warm = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            val = jax.block_until_ready(fn(theta))
            warm.append(time.perf_counter() - t)
        res[name] = {"first_call_s": first, "warm_min_s": min(warm), "result": [float(x) for x in jnp.ravel(val)]}
    res["gradient_evaluations_per_s"] = 1.0 / res["gradient"]["warm_min_s"]
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    import raisim

    raisim.configure()  # float64, the XLA CPU flag, one CPU device per core (as the raisim command line)
    main()
