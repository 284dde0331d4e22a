"""Random streams: one numpy Generator per random quantity, addressed by (seed, replicate, name).

Each stream is `SeedSequence(seed, spawn_key=(replicate, crc32(name)))`, so a replicate's numbers
depend on nothing but the master seed, the replicate index and the quantity's name: not on chunking,
worker count, backend, or which other quantities a scenario uses. Two scenarios run with the same
seed therefore share their random numbers wherever they agree (common random numbers), and because
draws are taken one row per patient in enrollment order, the first n patients of a longer trial see
exactly the numbers of an n-patient trial.

A replicate needs about twenty streams, and seeding each through SeedSequence costs more than drawing
its numbers. `replicate_seeds` therefore hashes the streams of many replicates in one vectorised pass of
SeedSequence's hash (numpy/random/bit_generator.pyx: mix_entropy, generate_state) and hands each PCG64
its four state words; the generators are identical to `stream`'s (tests/test_streams.py compares their
states for seeds, replicates and names of every size the hash distinguishes).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.random.bit_generator import ISeedSequence

# SeedSequence's hash constants (numpy/random/bit_generator.pyx).
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R, _XSHIFT = 0xCA01F9DD, 0x4973F715, np.uint32(16)
_POOL_SIZE = 4
_MASK32 = 0xFFFFFFFF


def stream(seed: int, replicate: int, name: str) -> np.random.Generator:
    """The Generator for one random quantity of one replicate."""
    key = (int(replicate), zlib.crc32(name.encode("utf-8")))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=key)))


@dataclass(frozen=True)
class Seeds:
    """Where one replicate's streams start, hashed ahead (replicate_seeds): seeds.stream(name) is
    stream(seed, replicate, name), a fresh generator on every call; a name not hashed ahead is hashed then."""

    seed: int
    replicate: int
    words: dict[str, np.ndarray] = field(default_factory=dict)

    def stream(self, name: str) -> np.random.Generator:
        words = self.words.get(name)
        if words is None:
            return stream(self.seed, self.replicate, name)
        return np.random.Generator(np.random.PCG64(_Seeded(words)))


def replicate_seeds(seed: int, replicates: Sequence[int], names: Sequence[str]) -> list[Seeds]:
    """Seeds of the named streams of many replicates, hashed in one vectorised pass."""
    reps = np.asarray(replicates, dtype=np.int64)
    if reps.size == 0 or reps.min() < 0 or reps.max() > _MASK32:   # a second spawn word changes the hash's length
        return [Seeds(int(seed), int(r)) for r in reps]
    crc = np.array([zlib.crc32(name.encode("utf-8")) for name in names], dtype=np.uint32)
    words = _pcg64_seed_words(int(seed), np.repeat(reps.astype(np.uint32), crc.size), np.tile(crc, reps.size))
    words = words.reshape(reps.size, crc.size, 4)
    return [Seeds(int(seed), int(r), {name: words[i, j] for j, name in enumerate(names)})
            for i, r in enumerate(reps.tolist())]


def rows_of_uniforms(rng: np.random.Generator, n: int, k: int = 1) -> np.ndarray:
    """n rows of k uniforms on [0, 1) from rng; shape (n,) when k == 1."""
    return rng.random(n) if k == 1 else rng.random((n, k))


class _Seeded(ISeedSequence):
    """A seed sequence whose state words are already known (what PCG64 asks its seed sequence for)."""

    def __init__(self, words: np.ndarray) -> None:
        self.words = words

    def generate_state(self, n_words: int, dtype: type = np.uint32) -> np.ndarray:
        if n_words != self.words.size or np.dtype(dtype) != np.uint64:
            raise ValueError("a precomputed seed holds PCG64's four 64-bit state words only")
        return self.words


def _pcg64_seed_words(seed: int, replicate: np.ndarray, crc: np.ndarray) -> np.ndarray:
    """SeedSequence(seed, spawn_key=(replicate[i], crc[i])).generate_state(4, np.uint64) for every i: (i x 4)."""
    run = _uint32_words(seed)
    run += [0] * (_POOL_SIZE - len(run))            # SeedSequence pads the run entropy when there is a spawn key
    entropy = [np.full(crc.size, w, dtype=np.uint32) for w in run] + [replicate, crc]
    const = _HashConstant(_INIT_A, _MULT_A)
    pool = [_hashmix(entropy[i], const) for i in range(_POOL_SIZE)]
    for src in range(_POOL_SIZE):
        for dst in range(_POOL_SIZE):
            if src != dst:
                pool[dst] = _mix(pool[dst], _hashmix(pool[src], const))
    for src in range(_POOL_SIZE, len(entropy)):
        for dst in range(_POOL_SIZE):
            pool[dst] = _mix(pool[dst], _hashmix(entropy[src], const))
    const = _HashConstant(_INIT_B, _MULT_B)
    state = np.empty((crc.size, 2 * _POOL_SIZE), dtype=np.uint32)
    for i in range(2 * _POOL_SIZE):                 # generate_state's output hash is hashmix with its own constants
        state[:, i] = _hashmix(pool[i % _POOL_SIZE], const)
    return state.astype("<u4").view("<u8").astype(np.uint64)


def _uint32_words(value: int) -> list[int]:
    """A non-negative integer as little-endian 32-bit words, as SeedSequence reads it (0 is one word)."""
    if value < 0:
        raise ValueError(f"seed must be non-negative, got {value}")
    words = [value & _MASK32]
    value >>= 32
    while value:
        words.append(value & _MASK32)
        value >>= 32
    return words


class _HashConstant:
    """SeedSequence's running hash constant: each use reads it and advances it by one multiplication."""

    def __init__(self, init: int, mult: int) -> None:
        self.value, self.mult = init, mult

    def advance(self) -> tuple[np.uint32, np.uint32]:
        """(the constant before, the constant after) one step."""
        before = self.value
        self.value = (self.value * self.mult) & _MASK32
        return np.uint32(before), np.uint32(self.value)


def _hashmix(value: np.ndarray, const: _HashConstant) -> np.ndarray:
    before, after = const.advance()
    value = (value ^ before) * after
    return value ^ (value >> _XSHIFT)


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = np.uint32(_MIX_MULT_L) * x - np.uint32(_MIX_MULT_R) * y
    return result ^ (result >> _XSHIFT)
