"""The coupled patient model: its state, vector field and solve (diffrax), and the RKC solver.

Imports the biology blocks and the protocol's dose schedules; nothing above.
"""
