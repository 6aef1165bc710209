# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""core.stats: percentiles, latency windows, counters and the block bootstrap interval."""

import math

from edgevlm_ros.core.stats import Counters, LatencyWindow, bootstrap_ci, percentile
import numpy as np
import pytest


def test_percentile_interpolates_like_numpy():
    values = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0]
    for p in (0, 10, 50, 95, 99, 100):
        assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)))
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_latency_window_keeps_only_the_newest_samples_but_counts_all():
    w = LatencyWindow(capacity=3)
    assert math.isnan(w.percentile(50)) and math.isnan(w.mean)
    for ms in (100.0, 1.0, 2.0, 3.0):
        w.add(ms)
    assert w.count == 4
    assert w.percentile(100) == 3.0 and w.mean == pytest.approx(2.0)
    s = w.summary()
    assert (s['count'], s['p50'], s['max']) == (4, 2.0, 3.0)
    assert s['p95'] == pytest.approx(2.9)
    with pytest.raises(ValueError):
        w.add(math.nan)


def test_empty_summary_is_nan_not_an_error():
    s = LatencyWindow().summary()
    assert s['count'] == 0 and math.isnan(s['p50']) and math.isnan(s['max'])


def test_counters():
    c = Counters()
    assert c.get('x') == 0 and 'x' not in c
    assert c.inc('x') == 1 and c.inc('x', 4) == 5
    c.inc('y')
    assert c['x'] == 5 and c.as_dict() == {'x': 5, 'y': 1} and len(c) == 2
    assert dict(c) == {'x': 5, 'y': 1}
    with pytest.raises(ValueError):
        c.inc('x', -1)
    with pytest.raises(ValueError):
        c.inc('')


def test_counters_refuse_unbounded_names():
    c = Counters(max_names=2)
    c.inc('a')
    c.inc('b')
    with pytest.raises(ValueError, match='too many'):
        c.inc('c')
    assert c.inc('a') == 2


def test_block_bootstrap_interval_contains_the_mean_and_shrinks_with_more_blocks():
    rng = np.random.default_rng(0)
    small = list(rng.integers(0, 2, 60))
    big = list(rng.integers(0, 2, 6000))
    lo, hi = bootstrap_ci(small, [str(i // 10) for i in range(60)])
    assert lo <= np.mean(small) <= hi
    blo, bhi = bootstrap_ci(big, [str(i // 10) for i in range(6000)])
    assert bhi - blo < hi - lo
    assert bootstrap_ci([1] * 20, ['a'] * 10 + ['b'] * 10) == (1.0, 1.0)


def test_life_counters_add_up_each_nodes_lives_and_keep_a_bounded_number():
    from edgevlm_ros.core.stats import LifeCounters

    lives = LifeCounters(max_lives=2)
    lives.update('/r1/camera', {'pid': '1', 'steps_published': '40'})
    lives.update('/r1/camera', {'pid': '1', 'steps_published': '41'})  # newest beat of a life
    lives.update('/r1/camera', {'pid': '2', 'steps_published': '3'})
    lives.update('/r1/edge_svlm', {'pid': '5', 'answers_published': '7'})
    assert lives.total('camera', 'steps_published') == 44
    assert lives.total('camera', 'nothing') == 0
    assert lives.total('edge_svlm', 'steps_published') == 0
    lives.update('/r1/camera', {'pid': '3', 'steps_published': '1'})  # the oldest life goes
    assert lives.total('camera', 'steps_published') == 4
