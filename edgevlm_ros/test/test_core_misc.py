# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Statistics, cloud step selection, strategies, and core isolation."""

import math
from pathlib import Path
import subprocess
import sys

from edgevlm_ros.core.stats import Counters, LatencyWindow, percentile
from edgevlm_ros.core.strategy import Strategy
import numpy as np
import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


# --- stats -----------------------------------------------------------------------------------

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


# --- strategy --------------------------------------------------------------------------------

def test_strategy_properties():
    assert {s for s in Strategy if s.uses_replacement} == {
        Strategy.EDGEVLM, Strategy.REPLACEMENT_ONLY, Strategy.EDGEVLM_ARBITRATED}
    assert {s for s in Strategy if s.uses_focus} == {
        Strategy.EDGEVLM, Strategy.FOCUS_ONLY, Strategy.EDGEVLM_ARBITRATED}
    assert {s for s in Strategy if not s.runs_edge_model} == {Strategy.CLOUD_ONLY,
                                                               Strategy.CLOUD_STALE}
    assert {s for s in Strategy if not s.uses_cloud} == {Strategy.EDGE_ONLY}


def test_strategy_parse():
    assert Strategy.parse('EdgeVLM') is Strategy.EDGEVLM
    assert Strategy.parse('replacement-only') is Strategy.REPLACEMENT_ONLY
    assert Strategy.parse(Strategy.OFFLOAD) is Strategy.OFFLOAD
    assert Strategy.EDGE_ONLY == 'edge_only' and str(Strategy.CLOUD_STALE) == 'cloud_stale'
    with pytest.raises(ValueError, match='edge_only, cloud_only'):
        Strategy.parse('magic')


# --- isolation -------------------------------------------------------------------------------

def test_core_imports_neither_rclpy_nor_torch():
    code = (
        'import importlib, pkgutil, sys\n'
        'import edgevlm_ros.core as core\n'
        'names = [m.name for m in pkgutil.iter_modules(core.__path__)]\n'
        "assert len(names) >= 10, names\n"
        "for name in names: importlib.import_module('edgevlm_ros.core.' + name)\n"
        "assert 'rclpy' not in sys.modules, 'rclpy imported'\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, '-c', code], cwd=PACKAGE_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
