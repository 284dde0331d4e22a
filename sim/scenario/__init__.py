"""Scenarios: the TOML schema and its validation, the generated reference, calibration of hazards."""
