# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
One-off questions (the Ask action): their checks, their token stream and how they end.

ROS-free and torch-free, shared by the edge node (answers on the model worker) and the bridge
(answers from the LVLM's stream):

1. `check_goal` rejects a goal before it reaches a model: an empty question, an unknown target,
   a token cap or deadline out of range. The error names are the Ask result's error_code
   constants.
2. `FeedbackGate` paces feedback, the edge's and the cloud's alike: the first text at once (the
   time to the first token is what a waiting robot feels), then when `every` tokens (the cloud:
   chunks) came since the last, or `every_s` passed and something new came, so that a 50-token
   answer does not become 50 messages. `TokenStream` carries an edge answer as it is generated
   from the model thread to the thread that publishes feedback: the model hands it the answer so
   far after every token (`on_token`, the backends' callback) and it keeps the text when the gate
   says so. `stop` (a cancel, a
   deadline) makes `on_token` return False: the model stops at its next token.
3. `ending`, `terminal` and `counter` name how an answer and a goal ended, and its
   /diagnostics counter.
4. `Admission` bounds the goals let in at once (the edge's queue, the bridge's slots and queue);
   `ClientWatch` says when a goal's client is gone: no action client has listened for
   `CLIENT_GONE_S` (not at the first look: a client that has just sent its goal may not be
   discovered yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math
import threading
import time
from typing import Any

TARGET_EDGE, TARGET_CLOUD, TARGET_BOTH = 'edge', 'cloud', 'both'
TARGETS = (TARGET_EDGE, TARGET_CLOUD, TARGET_BOTH)

DONE, CANCELLED, DEADLINE, FAILED = 'done', 'cancelled', 'deadline', 'failed'

# Feedback at most every this many tokens or this long (whichever comes first), and at the end.
FEEDBACK_TOKENS = 4
FEEDBACK_S = 0.1

# Bounds of a goal's own deadline_s, s.
MAX_DEADLINE_S = 3600.0

# A goal is cancelled once no action client has listened for this long, s (rule 4).
CLIENT_GONE_S = 0.5


@dataclass(frozen=True)
class Rejection:
    """Why a goal never ran: an Ask result error_code name and one line."""

    code: str
    reason: str


def parse_target(text: str) -> str | None:
    """'' -> edge; a known target (any case) -> itself; anything else -> None."""
    target = (text or '').strip().lower() or TARGET_EDGE
    return target if target in TARGETS else None


def check_goal(question: str, target: str, max_new_tokens: int, deadline_s: float,
               max_tokens_bound: int) -> Rejection | None:
    """The reason a goal must not run, or None (module docs, rule 1)."""
    if not question.strip():
        return Rejection('EMPTY_QUESTION', 'question is empty')
    if parse_target(target) is None:
        return Rejection('UNKNOWN_TARGET', f'target must be one of {", ".join(TARGETS)} '
                         f'(empty: edge), got {target!r}')
    if not 0 <= max_new_tokens <= max_tokens_bound:
        return Rejection('BAD_MAX_NEW_TOKENS', f'max_new_tokens must be 0 (the node cap) to '
                         f'{max_tokens_bound}, got {max_new_tokens}')
    if not (math.isfinite(deadline_s) and 0.0 <= deadline_s <= MAX_DEADLINE_S):
        return Rejection('BAD_DEADLINE', f'deadline_s must be 0 (the node default) to '
                         f'{MAX_DEADLINE_S:g} s, got {deadline_s}')
    return None


class FeedbackGate:
    """When the text so far is worth a feedback message (module docs, rule 2)."""

    def __init__(self, every: int, every_s: float) -> None:
        if every < 1 or not every_s >= 0:
            raise ValueError(f'every >= 1 and every_s >= 0, got {every}, {every_s}')
        self.every = every
        self.every_s = every_s
        self._count = 0
        self._at = -math.inf

    def due(self, count: int, now_s: float) -> bool:
        if count <= self._count:
            return False
        return count - self._count >= self.every or now_s - self._at >= self.every_s

    def wait_s(self, count: int, now_s: float) -> float | None:
        """How long until the text so far is due (None: nothing new to send)."""
        if count <= self._count:
            return None
        return max(0.0, self._at + self.every_s - now_s)

    def sent(self, count: int, now_s: float) -> None:
        self._count, self._at = count, now_s


@dataclass(frozen=True)
class Update:
    """What the consumer of a `TokenStream` sees: the newest text, and whether it is final."""

    text: str
    tokens: int
    finished: bool
    stopped_by: str            # '' or the reason passed to `stop`


class TokenStream:
    """An answer on its way from the thread generating it to the one publishing it (rule 2)."""

    def __init__(self, every_tokens: int = FEEDBACK_TOKENS, every_s: float = FEEDBACK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._gate = FeedbackGate(every_tokens, every_s)
        self._clock = clock
        self._cond = threading.Condition()
        self._text = ''
        self._tokens = 0
        self._seen = 0                 # the text version the consumer last saw
        self._version = 0
        self._finished = False
        self._stopped_by = ''

    # ------------------------------------------------------------------ producer
    def on_token(self, partial: Any) -> bool:
        """The backends' on_token: keep the text when due; False once stopped."""
        tokens, now = partial.tokens, self._clock()
        if self._gate.due(tokens, now):
            self._gate.sent(tokens, now)
            self.set_text(partial.text, tokens)
        return not self._stopped_by

    def set_text(self, text: str, tokens: int) -> None:
        with self._cond:
            self._text, self._tokens = text, tokens
            self._version += 1
            self._cond.notify_all()

    def finish(self, text: str | None = None, tokens: int | None = None) -> None:
        """The answer is complete (or ended early): its final text, when known."""
        with self._cond:
            if text is not None:
                self._text = text
            if tokens is not None:
                self._tokens = tokens
            self._finished = True
            self._version += 1
            self._cond.notify_all()

    # ------------------------------------------------------------------ consumer
    def stop(self, reason: str) -> None:
        """Stop generating at the next token (`reason`: CANCELLED or DEADLINE); first wins."""
        with self._cond:
            if not self._stopped_by:
                self._stopped_by = reason
            self._cond.notify_all()

    @property
    def stopped_by(self) -> str:
        return self._stopped_by

    def wait(self, timeout_s: float) -> Update | None:
        """The next new text or the end, waiting up to `timeout_s`; None if nothing new."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != self._seen, timeout=max(0.0,
                                                                                timeout_s))
            if self._version == self._seen:
                return None
            self._seen = self._version
            return Update(self._text, self._tokens, self._finished, self._stopped_by)

    def snapshot(self) -> Update:
        with self._cond:
            return Update(self._text, self._tokens, self._finished, self._stopped_by)


def ending(stopped_by: str, failed: bool) -> str:
    """How one answer ended: FAILED, the stop reason (CANCELLED, DEADLINE), else DONE."""
    if failed:
        return FAILED
    return stopped_by or DONE


def terminal(endings: list[str], cancel_requested: bool) -> str:
    """The goal's end: 'canceled' when cancelled, 'succeeded' when all DONE, else 'aborted'."""
    if cancel_requested or CANCELLED in endings:
        return 'canceled'
    if endings and all(e == DONE for e in endings):
        return 'succeeded'
    return 'aborted'


def counter(ending: str) -> str:
    """The /diagnostics counter of an answer's ending (edge and bridge alike)."""
    return 'ask_answered' if ending == DONE else f'ask_{ending}'


class Admission:
    """
    Goals let in at once: `max_in_flight` answering plus `max_queue` waiting (thread-safe).

    `enter` says at once whether one more may come in (the caller refuses it otherwise);
    `leave` when it ended.
    """

    def __init__(self, max_in_flight: int = 1, max_queue: int = 1) -> None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) \
                or max_in_flight < 1:
            raise ValueError(f'max_in_flight must be an int >= 1, got {max_in_flight!r}')
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 0:
            raise ValueError(f'max_queue must be an int >= 0, got {max_queue!r}')
        self.limit = max_in_flight + max_queue
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def enter(self) -> bool:
        with self._lock:
            if self._active >= self.limit:
                return False
            self._active += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)


class ClientWatch:
    """Whether one goal's client is gone (rule 4); `gone` takes the clients listening now."""

    def __init__(self, grace_s: float = CLIENT_GONE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._grace_s = grace_s
        self._clock = clock
        self._heard = clock()

    def gone(self, listening: int) -> bool:
        now = self._clock()
        if listening > 0:
            self._heard = now
        return now - self._heard >= self._grace_s
