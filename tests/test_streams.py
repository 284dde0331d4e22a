"""Random streams hashed ahead (sim/model/streams.py) are numpy's own SeedSequence streams."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sim.model import streams
from sim.model.draws import DRAW_STREAMS, draw_patients
from sim.scenario.schema import load_scenario

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"
NAMES = ("accrual_gaps", "", "post_transplant", "x" * 100, "prior p_cr")
# Seeds and replicates of every word count SeedSequence distinguishes: one word, two, four, more than its pool.
SEEDS = (0, 1, 11, 2**32 - 1, 2**32, 2**64 + 5, 2**127, 2**130 + 3)
REPLICATES = (0, 1, 7, 99_999, 2**31, 2**32 - 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_streams_hashed_ahead_have_the_state_of_numpys_seed_sequence(seed):
    for group in (REPLICATES, (*REPLICATES, 2**32)):      # 2**32 needs a second spawn word: hashed one by one
        seeds = streams.replicate_seeds(seed, group, NAMES)
        assert [s.replicate for s in seeds] == list(group)
        for s in seeds:
            for name in (*NAMES, "not hashed ahead"):
                reference = streams.stream(seed, s.replicate, name)
                ahead = s.stream(name)
                assert ahead.bit_generator.state == reference.bit_generator.state, (seed, s.replicate, name)
                assert (ahead.random(3) == reference.random(3)).all()


def test_a_stream_hashed_ahead_starts_afresh_on_every_call():
    s = streams.replicate_seeds(5, [3], NAMES)[0]
    assert (s.stream("accrual_gaps").random(4) == s.stream("accrual_gaps").random(4)).all()


def test_the_draws_read_only_streams_hashed_ahead_and_equal_the_draws_without(monkeypatch):
    scenario = load_scenario(BASE)
    seeds = streams.replicate_seeds(9, [0, 4], DRAW_STREAMS)
    without = [draw_patients(scenario, 60, 9, r) for r in (0, 4)]

    def unexpected(seed, replicate, name):
        raise AssertionError(f"stream {name!r} is not in DRAW_STREAMS")

    monkeypatch.setattr(streams, "stream", unexpected)
    for ahead, plain in zip((draw_patients(scenario, 60, 9, s.replicate, s) for s in seeds), without, strict=True):
        for field in dataclasses.fields(plain):
            a, b = getattr(ahead, field.name), getattr(plain, field.name)
            assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True), field.name
