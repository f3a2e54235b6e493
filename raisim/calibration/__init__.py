"""Calibration: arm-level targets, the emulator, biology facts, the likelihood, the fit, predictive checks."""
