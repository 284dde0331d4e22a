"""The simulation model: random streams, per-patient draws, the SimPy pathway, post-transplant events."""
