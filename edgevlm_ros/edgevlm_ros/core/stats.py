# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Latency windows and event counters for node statistics; interval estimates for evaluations.

Rule: memory is bounded. A LatencyWindow keeps only the newest `capacity` samples (percentiles
describe that window) while `count` is the total ever added; Counters hold at most `max_names`
names. Both are thread-safe, since nodes update them from several callback threads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
import math
import threading

import numpy as np


def percentile(values: Iterable[float], p: float) -> float:
    """Return the p-th percentile (0..100, linear interpolation like numpy); nan if empty."""
    if not 0.0 <= p <= 100.0:
        raise ValueError(f'percentile must be in [0, 100], got {p}')
    data = sorted(values)
    if not data:
        return math.nan
    rank = (len(data) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (rank - lo)


class LatencyWindow:
    """The newest `capacity` latency samples in milliseconds."""

    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self._samples: deque[float] = deque(maxlen=int(capacity))
        self._count = 0
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self._samples.maxlen or 0

    def add(self, ms: float) -> None:
        """Add one sample; non-finite values are a bug upstream and raise ValueError."""
        value = float(ms)
        if not math.isfinite(value):
            raise ValueError(f'latency must be finite, got {ms!r}')
        with self._lock:
            self._samples.append(value)
            self._count += 1

    def percentile(self, p: float) -> float:
        with self._lock:
            data = list(self._samples)
        return percentile(data, p)

    @property
    def count(self) -> int:
        """Samples ever added (not only those in the window)."""
        return self._count

    @property
    def mean(self) -> float:
        with self._lock:
            data = list(self._samples)
        return sum(data) / len(data) if data else math.nan

    @property
    def max(self) -> float:
        with self._lock:
            return max(self._samples) if self._samples else math.nan

    def summary(self) -> dict[str, float]:
        """Return count (ever), and p50, p95, p99, mean and max over the window (nan if empty)."""
        with self._lock:
            data = sorted(self._samples)
            count = self._count
        return {
            'count': count,
            'p50': percentile(data, 50),
            'p95': percentile(data, 95),
            'p99': percentile(data, 99),
            'mean': sum(data) / len(data) if data else math.nan,
            'max': data[-1] if data else math.nan,
        }

    def clear(self) -> None:
        """Empty the window (count is kept: it is a lifetime total)."""
        with self._lock:
            self._samples.clear()


class StepTimes:
    """
    An answering node's timings: answer latency, model time and model time per stage.

    `add` one answer; `gauges` gives the p50s (ms, as text) a diagnostics status shows. The
    model time counts only answers where the model ran (its answer may have been replaced).
    """

    def __init__(self, stages: Iterable[str], capacity: int = 1000) -> None:
        self.latency = LatencyWindow(capacity)
        self.model = LatencyWindow(capacity)
        self.stages = {stage: LatencyWindow(capacity) for stage in stages}

    def add(self, latency_ms: float, model_ms: float,
            stages: Mapping[str, float] | None = None) -> None:
        self.latency.add(latency_ms)
        if model_ms > 0:
            self.model.add(model_ms)
            for stage, ms in (stages or {}).items():
                if stage in self.stages:
                    self.stages[stage].add(ms)

    def gauges(self) -> dict[str, str]:
        lat = self.latency.summary()
        out = {'latency_p50_ms': f"{lat['p50']:.1f}", 'latency_p95_ms': f"{lat['p95']:.1f}",
               'model_p50_ms': f'{self.model.percentile(50):.1f}'}
        out.update({f'{stage}_p50_ms': f'{w.percentile(50):.1f}'
                    for stage, w in self.stages.items() if w.count})
        return out


class Counters(Mapping[str, int]):
    """Named, non-negative event counters (a read-only mapping plus inc)."""

    def __init__(self, max_names: int = 256) -> None:
        if max_names < 1:
            raise ValueError(f'max_names must be >= 1, got {max_names}')
        self._max_names = int(max_names)
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def inc(self, name: str, n: int = 1) -> int:
        """Add n (>= 0) to counter name and return its new value."""
        if not isinstance(name, str) or not name:
            raise ValueError(f'counter name must be a non-empty str, got {name!r}')
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f'counter increment must be an int >= 0, got {n!r}')
        with self._lock:
            if name not in self._values and len(self._values) >= self._max_names:
                raise ValueError(f'too many counter names (max {self._max_names}); '
                                 'counter names must come from a fixed set, not from data')
            value = self._values.get(name, 0) + n
            self._values[name] = value
            return value

    def get(self, name: str, default: int = 0) -> int:  # type: ignore[override]
        with self._lock:
            return self._values.get(name, default)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def reset(self) -> None:
        with self._lock:
            self._values.clear()

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)

    def __repr__(self) -> str:
        return f'Counters({self.as_dict()!r})'


class LifeCounters:
    """
    Nodes' counters as their heartbeats report them, added up over each node's lives.

    A respawned node counts from 0 again. `update(name, values)` takes one heartbeat's values
    (/diagnostics key/values; its `pid` tells the lives apart) and keeps the newest per life;
    `total(suffix, key)` adds a counter over every life of the nodes whose name ends with
    `/suffix`. At most `max_lives` lives a node are kept (the oldest dropped).
    """

    def __init__(self, max_lives: int = 64) -> None:
        self.max_lives = max_lives
        self._lives: dict[str, dict[str, Mapping[str, str]]] = {}

    def update(self, name: str, values: Mapping[str, str]) -> None:
        lives = self._lives.setdefault(name, {})
        lives.pop(values.get('pid', ''), None)  # re-inserted: the newest life last
        lives[values.get('pid', '')] = values
        while len(lives) > self.max_lives:
            del lives[next(iter(lives))]

    def total(self, suffix: str, key: str) -> int:
        return sum(int(float(values[key]))
                   for name, lives in self._lives.items() if name.endswith('/' + suffix)
                   for values in lives.values() if key in values)


def bootstrap_ci(correct: Sequence[int], blocks: Sequence[str], reps: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """95 % interval of the accuracy, resampling question windows (blocks of steps) whole."""
    if not correct:
        return math.nan, math.nan
    names = sorted(set(blocks))
    index = {b: i for i, b in enumerate(names)}
    ids = np.array([index[b] for b in blocks])
    sums = np.bincount(ids, weights=np.asarray(correct, float), minlength=len(names))
    counts = np.bincount(ids, minlength=len(names)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(reps, len(names)))
    acc = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    lo, hi = np.percentile(acc, [2.5, 97.5])
    return float(lo), float(hi)
