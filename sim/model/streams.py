"""Random streams: one numpy Generator per random quantity, addressed by (seed, replicate, name).

Each stream is `SeedSequence(seed, spawn_key=(replicate, crc32(name)))`, so a replicate's numbers
depend on nothing but the master seed, the replicate index and the quantity's name: not on chunking,
worker count, backend, or which other quantities a scenario uses. Two scenarios run with the same
seed therefore share their random numbers wherever they agree (common random numbers), and because
draws are taken one row per patient in enrollment order, the first n patients of a longer trial see
exactly the numbers of an n-patient trial.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, replicate: int, name: str) -> np.random.Generator:
    """The Generator for one random quantity of one replicate."""
    key = (int(replicate), zlib.crc32(name.encode("utf-8")))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=key)))


def uniforms(seed: int, replicate: int, name: str, n: int, k: int = 1) -> np.ndarray:
    """n rows (patients) of k uniforms on [0, 1) from the named stream; shape (n,) when k == 1."""
    rng = stream(seed, replicate, name)
    return rng.random(n) if k == 1 else rng.random((n, k))
