"""Every outcome column of a few virtual patients through each protocol of ``configs/protocols/``
(and two single-drug RAS variants), as the raisim on the path computes them: the reference that
``tests/test_batch.py`` compares the engine against after a change that should move nothing.

Issue 38 made the drugs data (single-drug protocols solve with an inert padding drug): the
reference of ``tests/data/engine_outcomes_d40981c.npz`` was computed by this script at commit
``d40981c``, before that change, in a git worktree::

    git worktree add /tmp/raisim-d40981c d40981c
    PYTHONPATH=/tmp/raisim-d40981c python scripts/engine_outcomes.py --out tests/data/engine_outcomes_d40981c.npz

Each case: 8 patients of ``sample_cohort(8, 0, max_lesions=3)``, the protocol's own solver
settings and padding, one device. Keys ``<protocol file>:<genotype or ->:<column>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: (protocol file under configs/protocols, genotype override or None)
CASES = (
    *((name, None) for name in sorted(p.name for p in (REPO / "configs" / "protocols").glob("*.yaml"))),
    ("erriti_21d.yaml", "RAS"),
    ("short_10d.yaml", "RAS"),
)


def case_protocol(name: str, genotype: str | None):
    """The protocol of a case (the file, its patient's genotype replaced when given)."""
    import raisim

    p = raisim.load_protocol(REPO / "configs" / "protocols" / name)
    if genotype is None:
        return p
    d = p.model_dump(mode="json")
    d["patient"]["genotype"] = genotype
    return raisim.protocol_from_dict(d, source=f"{name} ({genotype})")


def case_outcomes(name: str, genotype: str | None) -> dict[str, np.ndarray]:
    """The outcome columns of one case (numpy arrays, one row per patient)."""
    from raisim.engine.batch import protocol_solver, run_cohort
    from raisim.engine.cohort import sample_cohort

    p = case_protocol(name, genotype)
    rows = run_cohort(p, sample_cohort(8, 0, max_lesions=3), solver=protocol_solver(p, micro_batch=8), devices=1)
    return {k: np.asarray(v) for k, v in rows.columns().items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import raisim

    raisim.configure()
    out = {}
    for name, genotype in CASES:
        for k, v in case_outcomes(name, genotype).items():
            out[f"{name}:{genotype or '-'}:{k}"] = v
    np.savez_compressed(args.out, **out)
    print(f"{len(CASES)} cases, {len(out)} arrays -> {args.out}")


if __name__ == "__main__":
    main()
