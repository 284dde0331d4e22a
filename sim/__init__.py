"""Simulation of a single-arm phase II trial of VIP + blinatumomab followed by allo-HSCT in Ph- B-ALL.

Data flow, one way: scenario -> calibrate -> patient_draws -> model (SimPy) -> post_transplant ->
trial_data -> analysis -> operating characteristics -> report.
"""

__version__ = "0.1.0"
