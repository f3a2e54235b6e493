"""Protocols: the schema of a protocol file, its courses and dose schedules, trial arms, scenarios.

Imports only :mod:`raisim.io` (the card reader and vocabularies); it knows no
biology and no solver.
"""
