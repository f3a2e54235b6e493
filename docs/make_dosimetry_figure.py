"""Generate docs/figures/dosimetry_measured_vs_true.png: what I-124 PET/CT dosimetry reads of a lesion
against the dose it would truly receive, by lesion size.

One virtual patient at the cards' values (``parameters="typical"``) on the Ho 2013 protocol
(``configs/protocols/selumetinib_4wk.yaml``: selumetinib from day 1, I-124 dosimetry on day 29), with ten
lung lesions of 4-40 mm and the same NIS capacity, so that every difference between them is the
measurement's. For each lesion the engine reports ``projected_gy_per_gbq`` (the PET retention fit:
recovery-limited readings at the imaging times, mono-exponential tail, MIRD sphere S-value) and
``true_gy_per_gbq`` (an I-131 activity given with the tracer, integrated over the model's whole future),
for three imaging schedules. The dotted line is the PET recovery coefficient alone; the dashed one the true
dose (the same for every schedule: the truth does not depend on when the images are taken).

    .venv/bin/python docs/make_dosimetry_figure.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

import raisim  # noqa: E402
from raisim.protocol.schema import protocol_from_dict  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "figures"
PROTOCOL = HERE.parent / "configs" / "protocols" / "selumetinib_4wk.yaml"
DIAMETERS_MM = (4, 6, 8, 10, 12, 15, 20, 25, 30, 40)
SCHEDULES_H = {"24, 48, 96 h (default)": None, "24, 48 h": [24.0, 48.0], "24, 48, 72, 96 h": [24.0, 48.0, 72.0, 96.0]}


def dosimetry_scan(times_h: list[float] | None, patient: int = 1):
    """The dosimetry scan's readout and the patient's model for one imaging schedule."""
    d = yaml.safe_load(PROTOCOL.read_text(encoding="utf-8"))
    d["patient"]["lesions"] = [
        {"name": f"lung_{x}mm", "site": "lung", "diameter_mm": x, "nis_capacity": 1.0} for x in DIAMETERS_MM
    ]
    scan = next(s for s in d["scans"] if s.get("readout") == "i124_dosimetry")
    if times_h is not None:
        scan["imaging_times_h"] = times_h
    result = raisim.simulate(protocol_from_dict(d, str(PROTOCOL)), parameters="typical", patient=patient)
    read = next(s for s in result.outcome.scans if s.readout == "i124_dosimetry")
    if not read.dosimetry_times_h:
        raise RuntimeError(f"patient {patient} did not reach the dosimetry scan ({result.outcome.course})")
    return read, result.model


def figure() -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
    diam = np.asarray(DIAMETERS_MM, float)
    model = None
    for label, times in SCHEDULES_H.items():
        read, model = dosimetry_scan(times)
        projected, true = np.asarray(read.projected_gy_per_gbq), np.asarray(read.true_gy_per_gbq)
        left.plot(diam, projected, "o-", label=f"PET projection, images at {label}")
        right.plot(diam, projected / true, "o-", label=label)
    left.plot(diam, true, "k^--", label="true (I-131 with the tracer, whole future)")
    rc = np.asarray(model.dosimetry.pet_recovery(jnp.asarray(diam)))
    right.plot(diam, rc, "k:", label="PET recovery coefficient alone")
    right.axhline(1.0, color="grey", lw=0.8)
    left.set_xlabel("lesion diameter (mm)")
    left.set_ylabel("I-131 lesion dose per activity (Gy/GBq)")
    left.legend(fontsize=8)
    right.set_xlabel("lesion diameter (mm)")
    right.set_ylabel("projected / true")
    right.legend(fontsize=8)
    fig.suptitle(
        "I-124 PET/CT dosimetry as Ho 2013 measured it: one patient at the cards' values, lesions of equal NIS capacity"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "dosimetry_measured_vs_true.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> int:
    raisim.configure()
    print(figure())
    return 0


if __name__ == "__main__":
    sys.exit(main())
