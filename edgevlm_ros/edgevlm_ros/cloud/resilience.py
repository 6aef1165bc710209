# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
How the cloud bridge survives a failing server: fault classes, a retry schedule, a circuit breaker.

ROS-free and I/O-free; time comes from an injected clock, so every rule is unit-tested in
milliseconds.

Faults (``FAULTS``) are a fixed set of short names, so they can name counters. Only transient
ones are retried (``RETRYABLE``): the connection could not be made or broke ('connect'), the
server said 429 ('rate_limited') or 500/502/503/504 ('server_error'). A timeout is not retried
(the request already used its whole budget), nor a TLS failure, a 4xx or a reply that does not
parse: sending the same request again would fail the same way.

Retry rule (``RetryPolicy.delay``): retry k (k = 1..max_retries) waits
``d/2 + uniform(0, d/2)`` with ``d = min(max_s, base_s * 2**(k-1))`` (jittered so that many
clients do not retry in step), or the server's Retry-After if that is longer, plus a jitter of
up to half of it (at most ``max_s``): robots refused together by a shared server must not come
back together, nor at the same phase of their step clocks (Retry-After is whole seconds, a
multiple of a 2 Hz step period: the same robots would meet a full server again). A retry whose
start would fall after the request's deadline is not made: no try starts once the request is
older than its maximum age (a try started just before may still take up to its timeout).

Busy refusals (``refused_busy``): a 429, or a 503 with Retry-After, is a server that is up and
shedding load, not a failing one. It is retried like any transient fault but is no failure for
the breaker (nor a success): the send rate answers it instead (``core.selection``, AIMD). Counted
as failures, a fleet sharing one server that sheds load opened its robots' breakers at random,
and the unlucky ones, probing into a full server, stayed out for growing cool-downs (fairness
0.58, docs/robustness.md). A bare 503 (a proxy in front of a dead backend) stays a failure.

Breaker rule (``CircuitBreaker``): 'closed' lets every request through and counts consecutive
failed attempts; ``failure_threshold`` of them in a row open it. 'open' lets nothing through for
a cool-down; then the next request is let through as the single probe ('half_open'). The probe's
success closes the breaker (and resets the cool-down); its failure reopens it with the cool-down
multiplied by ``backoff`` (at most ``max_cooldown_s``), so a long outage costs one request per
``max_cooldown_s``, not one per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math
import random
import threading
import time

FAULTS = ('connect', 'tls', 'timeout', 'rate_limited', 'server_error', 'unauthorized',
          'not_found', 'bad_request', 'http_other', 'malformed', 'too_large')
RETRYABLE = frozenset({'connect', 'rate_limited', 'server_error'})
STATES = ('closed', 'open', 'half_open')


def fault_for_status(status: int) -> str:
    """Return the fault name of a non-2xx HTTP status."""
    if status == 429:
        return 'rate_limited'
    if status in (500, 502, 503, 504):
        return 'server_error'
    if status in (401, 403):
        return 'unauthorized'
    if status == 404:
        return 'not_found'
    if status in (400, 413, 422):
        return 'bad_request'
    return 'http_other'


def refused_busy(status: int, retry_after_s: float | None) -> bool:
    """A busy refusal: 429, or 503 with a Retry-After (module docstring)."""
    return status == 429 or (status == 503 and retry_after_s is not None)


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not (math.isfinite(value) and value > 0):
        raise ValueError(f'{name} must be a finite number > 0, got {value!r}')
    return float(value)


class RetryPolicy:
    """The retry schedule; see the module docstring."""

    def __init__(self, max_retries: int = 2, base_s: float = 0.25, max_s: float = 2.0,
                 rng: random.Random | None = None) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) \
                or not 0 <= max_retries <= 10:
            raise ValueError(f'max_retries must be an int in 0..10, got {max_retries!r}')
        self.max_retries = max_retries
        self.base_s = _positive('base_s', base_s)
        self.max_s = _positive('max_s', max_s)
        if self.max_s < self.base_s:
            raise ValueError(f'max_s ({max_s}) must be >= base_s ({base_s})')
        self._rng = rng or random.Random()

    def backoff_s(self, retry: int) -> float:
        """The jittered wait before retry number `retry` (1-based), without Retry-After."""
        d = min(self.max_s, self.base_s * 2.0 ** (retry - 1))
        return d / 2.0 + self._rng.uniform(0.0, d / 2.0)

    def delay(self, retry: int, fault: str, now: float, deadline: float | None = None,
              retry_after_s: float | None = None) -> float | None:
        """
        Return how long to wait before retry number `retry`, or None to give up.

        Gives up for a fault that is not retryable, after max_retries, or when the retry would
        start after `deadline` (same clock as `now`).
        """
        if fault not in RETRYABLE or retry > self.max_retries:
            return None
        wait = self.backoff_s(retry)
        if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s > wait:
            wait = retry_after_s + self._rng.uniform(0.0, min(retry_after_s / 2.0, self.max_s))
        if deadline is not None and now + wait > deadline:
            return None
        return wait


@dataclass(frozen=True)
class Transition:
    """One breaker state change (for one log line and one counter)."""

    old: str
    new: str
    reason: str
    cooldown_s: float  # the cool-down now running (0 unless new == 'open')


class CircuitBreaker:
    """
    Stops requests to a server that keeps failing, and probes it until it is back.

    Thread-safe: the bridge asks it from the executor thread and reports outcomes from its HTTP
    thread. `on_transition` is called once per state change, outside the lock.
    """

    def __init__(self, failure_threshold: int = 5, cooldown_s: float = 2.0,
                 max_cooldown_s: float = 60.0, backoff: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_transition: Callable[[Transition], None] | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(failure_threshold, cooldown_s, max_cooldown_s, backoff)
        self._clock = clock
        self.on_transition = on_transition
        self._state = 'closed'
        self._failures = 0          # consecutive failed attempts while closed
        self._cooldown = self.cooldown_s
        self._open_until = 0.0
        self._probe_out = False     # half_open: the probe has been handed out
        self.last_error = ''

    def configure(self, failure_threshold: int, cooldown_s: float, max_cooldown_s: float,
                  backoff: float = 2.0) -> None:
        """Change the limits; the current state is kept (a new cool-down applies next time)."""
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) \
                or failure_threshold < 1:
            raise ValueError(f'failure_threshold must be an int >= 1, got {failure_threshold!r}')
        cooldown_s = _positive('cooldown_s', cooldown_s)
        max_cooldown_s = _positive('max_cooldown_s', max_cooldown_s)
        if max_cooldown_s < cooldown_s:
            raise ValueError(f'max_cooldown_s ({max_cooldown_s}) must be >= cooldown_s '
                             f'({cooldown_s})')
        if not (math.isfinite(backoff) and backoff >= 1.0):
            raise ValueError(f'backoff must be >= 1, got {backoff!r}')
        with self._lock:
            self.failure_threshold = failure_threshold
            self.cooldown_s = cooldown_s
            self.max_cooldown_s = max_cooldown_s
            self.backoff = float(backoff)

    # ---------------------------------------------------------------------------- queries

    @property
    def state(self) -> str:
        """The state as last changed (an elapsed cool-down shows as 'open' until acquired)."""
        return self._state

    def ready(self) -> bool:
        """Return whether a new request would be let through now (takes nothing: see acquire)."""
        with self._lock:
            if self._state == 'closed':
                return True
            if self._state == 'open':
                return self._clock() >= self._open_until
            return not self._probe_out

    def retry_allowed(self) -> bool:
        """May a request already under way try again? Only while closed."""
        return self._state == 'closed'

    def next_probe_in(self) -> float:
        """Seconds until the next probe may go (0 unless open)."""
        with self._lock:
            if self._state != 'open':
                return 0.0
            return max(0.0, self._open_until - self._clock())

    # ---------------------------------------------------------------------------- events

    def acquire(self) -> bool:
        """Take permission for a new request; False means: do not send it."""
        transition = None
        with self._lock:
            if self._state == 'closed':
                return True
            if self._state == 'open':
                if self._clock() < self._open_until:
                    return False
                transition = self._move('half_open', 'cool-down over; probing')
            elif self._probe_out:
                return False
            self._probe_out = True
        self._emit(transition)
        return True

    def record_success(self) -> None:
        transition = None
        with self._lock:
            self._failures = 0
            self._cooldown = self.cooldown_s
            if self._state != 'closed':
                transition = self._move('closed', 'request succeeded')
            self._probe_out = False
        self._emit(transition)

    def record_failure(self, error: str = '') -> None:
        transition = None
        with self._lock:
            self.last_error = error
            if self._state == 'closed':
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._cooldown = self.cooldown_s
                    transition = self._open(f'{self._failures} failures in a row')
            elif self._state == 'half_open':
                self._cooldown = min(self.max_cooldown_s, self._cooldown * self.backoff)
                transition = self._open('probe failed')
            # While open, a late failure of a request sent before opening changes nothing.
        self._emit(transition)

    def release(self) -> None:
        """A request let through ended without an outcome (never sent): free the probe."""
        with self._lock:
            self._probe_out = False

    # ---------------------------------------------------------------------------- internals

    def _open(self, reason: str) -> Transition:
        self._open_until = self._clock() + self._cooldown
        self._probe_out = False
        self._failures = 0
        return self._move('open', reason)

    def _move(self, new: str, reason: str) -> Transition:
        old, self._state = self._state, new
        return Transition(old, new, reason, self._cooldown if new == 'open' else 0.0)

    def _emit(self, transition: Transition | None) -> None:
        if transition is not None and self.on_transition is not None:
            self.on_transition(transition)
