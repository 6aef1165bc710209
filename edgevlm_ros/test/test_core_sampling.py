# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Which frames become steps: the configured step rate, from any frame rate, jitter included."""

import random

from edgevlm_ros.core.sampling import StepSampler
import pytest


def steps(stamps, rate_hz):
    sampler = StepSampler(rate_hz)
    return [t for t in stamps if sampler.due(t)]


def test_exact_frames_give_exactly_the_step_rate():
    ten_hz = [1767225600.0 + i / 10 for i in range(100)]  # real epoch stamps: float rounding
    picked = steps(ten_hz, 2.0)
    assert picked == ten_hz[::5]  # every fifth frame, none slips to the next one
    thirty_hz = [i / 30 for i in range(300)]
    assert len(steps(thirty_hz, 10.0)) == 100


def test_jittery_stamps_keep_the_rate_and_take_the_frame_nearest_each_tick():
    rng = random.Random(1)
    frames = [i / 10 + rng.uniform(-0.004, 0.004) for i in range(200)]  # 20 s at 10 Hz
    picked = steps(frames, 2.0)
    assert len(picked) == 40
    gaps = [b - a for a, b in zip(picked, picked[1:])]
    assert all(0.49 < g < 0.51 for g in gaps)


def test_slow_frames_all_become_steps():
    one_hz = [float(i) for i in range(10)]
    assert steps(one_hz, 2.0) == one_hz


def test_a_restart_or_a_pause_starts_a_new_grid():
    sampler = StepSampler(2.0)
    assert [sampler.due(t) for t in (10.0, 10.1, 10.5)] == [True, False, True]
    assert sampler.due(3.0)        # stamps went back: a restarted source
    assert not sampler.due(3.1)
    assert sampler.due(20.0)       # after a pause: at once, then every 0.5 s from there
    assert not sampler.due(20.4)
    assert sampler.due(20.5)


def test_the_rate_can_change_and_must_be_positive():
    sampler = StepSampler(2.0)
    assert sampler.due(0.0)
    sampler.rate_hz = 10.0
    assert sampler.due(0.5)  # the tick set at the old rate
    assert [sampler.due(0.5 + i / 10) for i in range(1, 4)] == [True, True, True]
    with pytest.raises(ValueError, match='step rate'):
        StepSampler(0.0)
