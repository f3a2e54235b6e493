"""PK report: concentration–time of each drug of a protocol, typical patient and a 5–95 % band.

The band covers ``n`` virtual patients with the protocol patient's covariates
(sex, weight) and the cards' inter-individual variability. Linear drugs use
the closed-form path, drugs with autoinduction the ODE path.

Units: time h (reported also in days), concentrations ng/mL (total).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..biology.pk import PK
from ..biology.population_pk import closed_form_central_mg, concentration_ng_ml, sample_population, solve_pk
from ..protocol.schedule import DoseSchedule
from ..protocol.schema import Protocol


def pk_report(p: Protocol, doses: DoseSchedule, n: int, seed: int, end_day: float) -> pd.DataFrame:
    """Per drug and time: typical concentration and the 5/50/95 % quantiles over ``n`` patients.

    ``doses``: dose times (h) and amounts (mg); ``end_day``: length of the report, days from
    t = 0 h (the first dose), sampled hourly. Columns: ``time_h`` (h), ``drug``, and
    ``typical_ng_ml``, ``q05_ng_ml``, ``q50_ng_ml``, ``q95_ng_ml`` (total plasma, ng/mL).
    """
    ts = jnp.arange(0.0, end_day * 24.0 + 1e-9, 1.0)
    sex = np.full(n, p.patient.sex)
    weight = np.full(n, p.patient.weight_kg)
    frames = []
    for j, drug in enumerate(doses.drugs):
        T = jnp.asarray(doses.times_h[j : j + 1])
        A = jnp.asarray(doses.amounts_mg[j : j + 1])
        typical = PK.from_cards((drug,), sex=p.patient.sex, weight_kg=p.patient.weight_kg)
        pop = sample_population((drug,), n, seed=seed + 1000 * j, sex=sex, weight_kg=weight)

        linear = bool(typical.is_linear[0])

        def conc(pk: PK, T=T, A=A, linear=linear):
            if linear:
                central = closed_form_central_mg(pk, ts, T, A)
            else:
                central = solve_pk(pk, T, A, ts)[0].central_mg
            return concentration_ng_ml(pk, central)[:, 0]

        c_typ = np.asarray(conc(typical))
        c_pop = np.asarray(jax.vmap(conc)(pop))
        q05, q50, q95 = np.nanquantile(c_pop, [0.05, 0.5, 0.95], axis=0)
        frames.append(
            pd.DataFrame(
                {
                    "time_h": np.asarray(ts),
                    "drug": drug,
                    "typical_ng_ml": c_typ,
                    "q05_ng_ml": q05,
                    "q50_ng_ml": q50,
                    "q95_ng_ml": q95,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def pk_report_figure(report: pd.DataFrame, n: int, title: str):
    """One panel per drug: typical patient (line) and the 5–95 % band (shaded), days on x.

    ``report``: :func:`pk_report`'s table (ng/mL); x is the study day (day 1 = first TKI dose),
    y total plasma ng/mL; ``n`` (a count) only labels the band.
    """
    import matplotlib.pyplot as plt

    drugs = list(dict.fromkeys(report["drug"]))
    fig, axes = plt.subplots(len(drugs), 1, figsize=(9, 3.2 * len(drugs)), squeeze=False, constrained_layout=True)
    for ax, drug in zip(axes[:, 0], drugs, strict=True):
        r = report[report["drug"] == drug]
        day = r["time_h"] / 24.0 + 1.0
        ax.fill_between(day, r["q05_ng_ml"], r["q95_ng_ml"], alpha=0.3, label=f"5-95 % of {n} patients")
        ax.plot(day, r["typical_ng_ml"], lw=1.2, label="typical patient")
        ax.set_ylabel(f"{drug} total plasma (ng/mL)")
        ax.set_xlabel("day (day 1 = first TKI dose)")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig
