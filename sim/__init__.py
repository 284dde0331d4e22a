"""Simulation of a single-arm phase II trial of VIP + blinatumomab followed by allo-HSCT in Ph- B-ALL.

Sub-packages by stage, data flowing one way (each imports only those listed before it):
stats -> scenario -> model -> analysis -> study -> report -> cli.

- stats: pure estimators and tests (Kaplan-Meier, Aalen-Johansen, landmark tests)
- scenario: TOML schema, validation, reference; calibration of post-transplant hazards
- model: random streams, per-patient draws, the SimPy pathway, post-transplant events
- analysis: data cutoff, observed data, every endpoint, analysis datasets
- study: replicates and executors, truths, operating characteristics, what-ifs, resources
- report: figures and HTML reports
- cli: the command line
"""

__version__ = "0.1.0"
