# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Emulated network latency for the embedded cloud stand-in and for replays.

A profile is written as a short spec string (a ROS parameter):

* ``none``                       no added delay;
* ``fixed:<ms>``                 a constant one-way-plus-back delay;
* ``jitter:<mean_ms>,<std_ms>``  lognormal delays with that mean and standard deviation
  (a heavy right tail, like real WAN round trips), drawn from a seeded RNG so that a replay is
  repeatable;
* any of the above with ``@<mbit_s>`` appended (e.g. ``fixed:80@20``) adds the upload time of
  the payload at that bandwidth.

A bad spec raises ValueError that says what was wrong and what is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import random
import threading

_FORMATS = ("'none', 'fixed:<ms>' or 'jitter:<mean_ms>,<std_ms>', optionally followed by "
            "'@<mbit_s>'")


@dataclass
class NetworkProfile:
    """A network delay model; build it with NetworkProfile.parse."""

    kind: str = 'none'          # none | fixed | jitter
    mean_ms: float = 0.0
    std_ms: float = 0.0
    bandwidth_mbit_s: float = 0.0  # 0 = payload size does not matter
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ('none', 'fixed', 'jitter'):
            raise ValueError(f'unknown network profile kind {self.kind!r}; use {_FORMATS}')
        for name in ('mean_ms', 'std_ms', 'bandwidth_mbit_s'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f'{name} must be a finite number >= 0, got {value}')
        if self.kind == 'jitter' and self.std_ms > 0 and self.mean_ms <= 0:
            raise ValueError('jitter needs mean_ms > 0 when std_ms > 0')
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        # Lognormal parameters that give the requested mean and standard deviation.
        if self.kind == 'jitter' and self.std_ms > 0:
            self._sigma = math.sqrt(math.log1p((self.std_ms / self.mean_ms) ** 2))
            self._mu = math.log(self.mean_ms) - 0.5 * self._sigma ** 2
        else:
            self._sigma = 0.0
            self._mu = 0.0

    @classmethod
    def parse(cls, spec: str, seed: int = 0) -> NetworkProfile:
        """Build a profile from a spec string (see the module docstring)."""
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f'empty network profile; use {_FORMATS}')
        text = spec.strip().lower()
        bandwidth = 0.0
        if '@' in text:
            text, _, bw = text.partition('@')
            bandwidth = _number(bw, 'bandwidth (Mbit/s)', spec)
            if bandwidth <= 0:
                raise ValueError(f'bandwidth must be > 0 Mbit/s in {spec!r}')
        kind, _, args = text.partition(':')
        kind = kind.strip()
        if kind == 'none':
            if args.strip():
                raise ValueError(f"'none' takes no arguments, got {spec!r}")
            return cls('none', bandwidth_mbit_s=bandwidth, seed=seed)
        if kind == 'fixed':
            ms = _number(args, 'fixed delay (ms)', spec)
            return cls('fixed', mean_ms=ms, bandwidth_mbit_s=bandwidth, seed=seed)
        if kind == 'jitter':
            parts = args.split(',')
            if len(parts) != 2:
                raise ValueError(f'jitter needs <mean_ms>,<std_ms>, got {spec!r}')
            mean = _number(parts[0], 'jitter mean (ms)', spec)
            std = _number(parts[1], 'jitter std (ms)', spec)
            return cls('jitter', mean_ms=mean, std_ms=std, bandwidth_mbit_s=bandwidth, seed=seed)
        raise ValueError(f'unknown network profile {spec!r}; use {_FORMATS}')

    def delay_s(self, payload_bytes: int = 0) -> float:
        """Draw one delay in seconds for a request carrying payload_bytes."""
        if payload_bytes < 0:
            raise ValueError(f'payload_bytes must be >= 0, got {payload_bytes}')
        if self.kind == 'jitter' and self._sigma > 0:
            with self._lock:
                ms = self._rng.lognormvariate(self._mu, self._sigma)
        else:
            ms = self.mean_ms
        return ms / 1000.0 + self._transfer_s(payload_bytes)

    def mean_delay_s(self, payload_bytes: int = 0) -> float:
        """Return the expected delay in seconds (to predict whether the cloud makes a deadline)."""
        return self.mean_ms / 1000.0 + self._transfer_s(payload_bytes)

    def describe(self) -> str:
        if self.kind == 'none':
            text = 'no added delay'
        elif self.kind == 'fixed':
            text = f'fixed {self.mean_ms:g} ms'
        else:
            text = f'lognormal jitter, mean {self.mean_ms:g} ms, std {self.std_ms:g} ms'
        if self.bandwidth_mbit_s > 0:
            text += f', {self.bandwidth_mbit_s:g} Mbit/s'
        return text

    def _transfer_s(self, payload_bytes: int) -> float:
        if self.bandwidth_mbit_s <= 0:
            return 0.0
        return payload_bytes * 8.0 / (self.bandwidth_mbit_s * 1e6)


def _number(text: str, what: str, spec: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f'{what} must be a number in {spec!r}; use {_FORMATS}') from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f'{what} must be a finite number >= 0 in {spec!r}')
    return value
