# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Which camera frames become Steps: the frame nearest each tick of a fixed-rate grid.

Sampling by "at least one period since the last step" loses ticks: with 10 Hz frames and 2 Hz
steps a frame stamped a hair before the half second waits for the next frame, so steps come
every 0.6 s (1.67 Hz). Here ticks are a grid anchored at the first step; a frame is due when it
is closer to the next tick than the frame after it will be (within half a frame interval, the
interval measured from the stream itself), so the step rate is the configured one on average.
Works on the camera's own stamps (seconds), so a replay at any speed samples the same frames.
"""

from __future__ import annotations


class StepSampler:
    """Picks the frames that become steps at `rate_hz` of camera time."""

    def __init__(self, rate_hz: float) -> None:
        self.rate_hz = rate_hz
        self._next: float | None = None  # the next tick
        self._last: float | None = None  # the newest frame seen
        self._interval: float | None = None  # frame interval estimate (EWMA)

    @property
    def rate_hz(self) -> float:
        return self._rate

    @rate_hz.setter
    def rate_hz(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f'step rate must be > 0 Hz, got {value}')
        self._rate = float(value)

    def due(self, t: float) -> bool:
        """Whether the frame stamped `t` becomes a step (call once per frame, in order)."""
        last, self._last = self._last, t
        period = 1.0 / self._rate
        if last is not None and 0 < t - last < 4 * period:  # a pause says nothing of the rate
            dt = t - last
            self._interval = dt if self._interval is None else 0.8 * self._interval + 0.2 * dt
        if self._next is None or last is None or t < last:
            # First frame, or the stamps went back (a restarted source, a looped bag).
            self._next = t + period
            return True
        tolerance = 0.5 * min(self._interval or 0.0, period)
        if t < self._next - tolerance:
            return False
        # On the grid; a source that paused for more than a period starts a new grid.
        self._next = self._next + period if t - self._next < period else t + period
        return True
