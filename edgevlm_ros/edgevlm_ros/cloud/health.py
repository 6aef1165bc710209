# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The cloud's health as the bridge reports it: one state, so the log has one line per change.

ROS-free, I/O-free and lock-free (the bridge calls it under its one lock). It needs no clock:
recovery counts answers, and the cool-downs are the circuit breaker's (``cloud.resilience``).

States (``STATES``): 'unknown' (nothing has happened yet), 'ok', 'failing' (requests fail, the
breaker is still closed), 'open' (the breaker sends nothing), 'probing' (one probe request out).

Rules:

1. A change is returned once, as a ``HealthChange`` (old, new, detail); an event that leaves the
   state as it is returns None, so the caller logs and counts only what it is given.
2. While the breaker is closed, a failed request makes the state 'failing', and an answer makes
   it 'ok'.
3. Leaving 'failing' takes ``recover_after`` answers in a row: a cloud that fails every other
   request is one 'failing' line, not a line per frame.
4. While the breaker is not closed, a request's outcome changes no state (the breaker's own
   transitions say it all); an answer still counts towards the answers in a row.
5. The breaker's transitions set the state: open -> 'open', half_open -> 'probing',
   closed -> 'ok'.
6. 'failing' and 'open' are warnings; 'ok' and 'probing' are news.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgevlm_ros.cloud.resilience import Transition

if TYPE_CHECKING:
    from edgevlm_ros.cloud.openai_client import CloudResult

STATES = ('unknown', 'ok', 'failing', 'open', 'probing')
WARNING_STATES = frozenset({'failing', 'open'})
# Answers in a row that bring a failing cloud back to 'ok' (rule 3).
RECOVER_AFTER = 3


@dataclass(frozen=True)
class HealthChange:
    """One state change: one log line and one counter."""

    old: str
    new: str
    detail: str

    @property
    def is_warning(self) -> bool:
        """Rule 6."""
        return self.new in WARNING_STATES

    def __str__(self) -> str:
        return f'cloud {self.old} -> {self.new}: {self.detail}'


class CloudHealth:
    """The health state machine; see the module docstring."""

    def __init__(self, recover_after: int = RECOVER_AFTER) -> None:
        if isinstance(recover_after, bool) or not isinstance(recover_after, int) \
                or recover_after < 1:
            raise ValueError(f'recover_after must be an int >= 1, got {recover_after!r}')
        self.recover_after = recover_after
        self.state = 'unknown'
        self.ok_streak = 0  # answers in a row since the last failure

    def observe(self, result: CloudResult, step_id: int, breaker_state: str,
                failure_threshold: int) -> HealthChange | None:
        """
        Take the outcome of one request (rules 2-4).

        `breaker_state` is the circuit breaker's state after the request; `failure_threshold`
        only goes into the detail of a change to 'failing'.
        """
        self.ok_streak = self.ok_streak + 1 if result.ok else 0
        if breaker_state != 'closed':
            return None
        if not result.ok:
            return self._move('failing', f'{result.error} (step {step_id}; {failure_threshold} '
                                         'failures in a row open the circuit)')
        if self.state == 'failing' and self.ok_streak < self.recover_after:
            return None
        return self._move('ok', f'answering (model {result.model}, '
                                f'{result.round_trip_ms:.0f} ms, step {step_id})')

    def observe_breaker(self, transition: Transition, last_error: str) -> HealthChange | None:
        """Take one circuit-breaker transition (rule 5); `last_error` is the breaker's."""
        if transition.new == 'open':
            return self._move('open', f'{transition.reason}, last error: {last_error}; '
                                      f'sending nothing for {transition.cooldown_s:g} s')
        if transition.new == 'half_open':
            return self._move('probing', 'cool-down over, sending one probe request')
        return self._move('ok', 'probe answered, circuit closed')

    def _move(self, new: str, detail: str) -> HealthChange | None:
        if new == self.state:
            return None
        old, self.state = self.state, new
        return HealthChange(old, new, detail)
