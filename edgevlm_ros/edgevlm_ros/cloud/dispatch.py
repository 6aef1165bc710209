# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The cloud bridge's decisions: which steps go, which are dropped and why, and the cloud's state.

ROS-free and thread-safe. The bridge's executor offers steps and expires the waiting one, its
HTTP thread frees slots and reports results, and the circuit breaker reports its transitions
from either; one lock keeps the ``core.selection.CloudSelector`` and the ``cloud.health``
state together. The node only carries out the ``Orders`` it is given: it sends each job and
publishes each ``Drop``. Rules:

1. Every offered step leaves once: in ``Orders.send``, or in ``Orders.dropped`` with its reason
   and the error its CloudResponse carries (``cloud.outcomes.drop_error``).
2. A step goes only while the circuit breaker would let a request through (the selector's gate).
3. A finished request frees its slot whatever its result; only an answer's round trip feeds the
   selector's adaptive interval and the round-trip window.
4. A step is not sent after its deadline: ``max_age_s`` after it was offered.
5. A result the client dropped changes no cloud state (it never reached the cloud).
6. Lock order: this lock, then the breaker's. The breaker calls back outside its own lock, so a
   transition may come in on any thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
import threading
from typing import Any, NamedTuple

import numpy as np

from edgevlm_ros.cloud.bridge_config import SELECTION_PARAMS, BridgeConfig
from edgevlm_ros.cloud.health import CloudHealth, HealthChange
from edgevlm_ros.cloud.openai_client import CloudResult
from edgevlm_ros.cloud.outcomes import drop_error
from edgevlm_ros.cloud.resilience import CircuitBreaker, Transition
from edgevlm_ros.core.selection import CloudSelector, Decision
from edgevlm_ros.core.stats import LatencyWindow

# Round trips kept for the p50/p95 gauges.
ROUND_TRIP_WINDOW = 1000


@dataclass(frozen=True)
class Job:
    """One step on its way to the cloud."""

    step: Any  # what the answer is about (the node's Step message); never looked into here
    rgb: np.ndarray
    offered_s: float  # the bridge's clock when it arrived; max_age_s counts from here


class Drop(NamedTuple):
    """A step not sent: the reason it is counted under and the error its response carries."""

    job: Job
    reason: str
    error: str


@dataclass
class Orders:
    """What the node does now: send these jobs, publish these drops."""

    send: list[Job] = field(default_factory=list)
    dropped: list[Drop] = field(default_factory=list)


class CloudDispatch:
    """The selector, the cloud health and the round trips under one lock; see the module."""

    def __init__(self, selector: CloudSelector, breaker: CircuitBreaker,
                 health: CloudHealth | None = None) -> None:
        self.breaker = breaker
        self._selector = selector
        self._health = health if health is not None else CloudHealth()
        self.round_trip = LatencyWindow(ROUND_TRIP_WINDOW)
        self._lock = threading.Lock()

    def configure(self, config: BridgeConfig, changed: Iterable[str]) -> None:
        """Apply changed parameters to the selector and the breaker (the rest is not theirs)."""
        changed = set(changed)
        if SELECTION_PARAMS & changed:
            with self._lock:
                self._selector.configure(**config.selection())
        if any(k.startswith('breaker.') for k in changed):
            self.breaker.configure(*config.breaker_limits())

    # ------------------------------------------------------------------ steps

    def offer(self, now_s: float, step: Any, rgb: np.ndarray) -> Orders:
        """A new step (rules 1, 2); the selector thumbnails the frame only if the step may go."""
        with self._lock:
            decision = self._selector.offer(now_s, Job(step, rgb, now_s), rgb,
                                            gate=self.breaker.ready(),
                                            question=getattr(step, 'question', None))
        return self._orders(decision)

    def set_hold(self, question: str, hold_s: float) -> None:
        """The edge's estimate of how long a cloud answer to `question` holds (rule 3)."""
        with self._lock:
            self._selector.set_hold(question, hold_s)

    def expire(self, now_s: float) -> Orders:
        """Drop the waiting step if it is too old (call periodically)."""
        with self._lock:
            decision = self._selector.expire(now_s)
        return self._orders(decision)

    def deadline_s(self, job: Job) -> float:
        """Rule 4."""
        return job.offered_s + self._selector.max_age_s

    def finished(self, now_s: float, result: CloudResult | None) -> Orders:
        """A request ended (`result` None: it was cancelled); the step waiting may go (rule 3)."""
        rtt_s = result.round_trip_ms / 1000.0 if result is not None and result.ok else None
        busy = result is not None and result.busy_tries > 0
        with self._lock:
            decision = self._selector.finished(now_s, rtt_s, gate=self.breaker.ready(),
                                               busy=busy)
        return self._orders(decision)

    def drop_error(self, reason: str, error: str = '') -> str:
        """The error of a dropped step's response (cloud.outcomes rule 5)."""
        wait = self.breaker.next_probe_in() if reason == 'circuit_open' and not error else 0.0
        return drop_error(reason, wait, error)

    def _orders(self, decision: Decision) -> Orders:
        # Outside the lock: the error of a circuit_open drop asks the breaker.
        return Orders(list(decision.send), [Drop(job, reason, self.drop_error(reason))
                                            for job, reason in decision.dropped])

    # ------------------------------------------------------------------ cloud state

    def report(self, result: CloudResult, step_id: int) -> HealthChange | None:
        """A published result: its round trip, and the cloud state change it makes (rule 5)."""
        if result.status == 'dropped':
            return None
        if result.ok:
            self.round_trip.add(result.round_trip_ms)
        with self._lock:
            return self._health.observe(result, step_id, self.breaker.state,
                                        self.breaker.failure_threshold)

    def on_breaker(self, transition: Transition) -> HealthChange | None:
        """A circuit-breaker transition: the cloud state change it makes."""
        with self._lock:
            return self._health.observe_breaker(transition, self.breaker.last_error)

    @property
    def cloud_state(self) -> str:
        with self._lock:
            return self._health.state

    def gauges(self, now_s: float) -> dict[str, object]:
        """The cloud's side of the bridge's /diagnostics values (a snapshot; never waits long)."""
        rt = self.round_trip.summary()
        with self._lock:
            in_flight, pending = self._selector.in_flight, self._selector.pending
            interval, ewma = self._selector.interval_at(now_s), self._selector.rtt_ewma_s
            quiet = self._selector.quiet_limit_s(now_s, self._selector.last_question)
            busy = self._selector.busy_refusals
            cloud_state = self._health.state
        return {'cloud_state': cloud_state, 'breaker_state': self.breaker.state,
                'next_probe_in_s': f'{self.breaker.next_probe_in():.2f}',
                'in_flight': in_flight, 'pending': pending, 'interval_s': f'{interval:.3f}',
                'quiet_limit_s': f'{quiet:.2f}',
                'busy_refusals': busy,
                'rtt_ewma_ms': 'nan' if ewma is None else f'{ewma * 1000:.1f}',
                'round_trip_p50_ms': f"{rt['p50']:.1f}", 'round_trip_p95_ms': f"{rt['p95']:.1f}"}
