"""Limits on the numbers a user gives, shared by the config schemas and the command line.

One number, one place: a seed or a count is bounded the same whether it comes from a config
field or a command-line option, so a value that passes ``check`` or ``--dry-run`` also runs.
"""

from __future__ import annotations

#: The largest seed, inclusive (seeds are 0 .. 2**32 - 1: numpy's ``SeedSequence`` and jax's
#: ``PRNGKey`` take them, and derived seeds such as ``seed + 1000`` stay in 64 bits).
MAX_SEED = 2**32 - 1

#: Virtual patients per cell of a sweep (and per arm, genotype and draw of ``predict``), and so the
#: largest patient number + 1: sweeps exist for 1e6-1e7 patient-protocols; the bound sits 100x above.
MAX_PATIENTS_PER_CELL = 10_000_000

#: Parameter draws a sweep or ``predict`` uses (a count).
MAX_DRAWS = 10_000

#: Virtual patients of ``simulate --pk-report`` (each a PK solve for the exposure band).
MAX_PK_REPORT_PATIENTS = 10_000

#: Patients in one arm of a trials table (the largest RAIR trials enrolled a few hundred).
MAX_ARM_PATIENTS = 100_000

__all__ = ["MAX_ARM_PATIENTS", "MAX_DRAWS", "MAX_PATIENTS_PER_CELL", "MAX_PK_REPORT_PATIENTS", "MAX_SEED"]
