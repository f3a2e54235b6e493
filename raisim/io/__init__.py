"""Inputs and outputs: parameter cards, parameter draws, the trials table, the results store.

The bottom layer: it imports nothing else from raisim. Every user-facing
validation failure is an :class:`~raisim.io.errors.InputError` (one line, exit 2).
"""
