# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Which steps go to the cloud, and when.

Every step is offered once (``offer``) and leaves exactly once: sent (``Decision.send``) or
dropped with a reason (``Decision.dropped``), so that whoever waits for its cloud answer can
stop waiting. Rules, checked in this order when a step is offered:

1. 'circuit_open': the caller's gate is shut (the circuit breaker is open): nothing is sent and
   nothing waits;
1b. a new question (the step's question differs from the last sent step's; only when the caller
   passes questions): sent at once, past the interval, the scene-change test and, by one, the
   in-flight limit; the pending step (of the old question) is dropped ('superseded'). Every
   cloud answer to the old question is stale for the new one, and waiting for the old
   question's request to come back would leave the new question without any cloud answer for
   up to two round trips (at 2 s, a third of a 6 s question window);
2. 'interval': less than the effective interval since the last send (see below);
3. 'no_change': with ``scene_change`` > 0, the frame differs from the last sent frame by no more
   than ``scene_change`` (mean absolute grey difference, 0..1), unless nothing was sent for
   the quiet limit (``quiet_limit_s``): ``max_quiet_s``, or (``follow_hold``) sooner where the
   edge says how long a standing cloud answer to the step's question holds in this scene
   (``set_hold``, the learned horizon of core/validity.py): the next answer is then sent
   ``hold - RTT`` after the last send, so that it arrives before the standing one expires (a
   hold no longer than the RTT changes nothing: such an answer lands already expired).
   A frame difference under the threshold does not mean the answer still holds (a small
   object changes colour, a person leaves the edge of the frame); the horizon is learned from
   what the answers did;
4. fewer than ``max_in_flight`` requests outstanding: send now;
5. otherwise the step waits in a single pending slot for a request to finish; a newer step
   takes the slot ('superseded'), and a step that has waited longer than ``max_age_s``
   ('max_age') is dropped instead of sent (``finished`` and ``expire`` check this).

Adaptive rate: with ``adaptive`` on, the effective interval is
``max(min_interval_s, rtt_ewma / max_in_flight)``, where ``rtt_ewma`` is an exponentially
weighted mean (weight ``rtt_alpha``) of the round trips of successful requests. A server that
answers one request per RTT on each of ``max_in_flight`` connections completes
``max_in_flight / RTT`` requests a second; offering more only makes them wait (in the pending
slot or the server's queue) and arrive older. Failed requests do not feed the mean (a timeout
says nothing about the server's pace; the circuit breaker handles failing servers).

Busy server: a request the server refused as busy (``finished(..., busy=True)``: a 429, or a 503
with Retry-After) halves the send rate: the effective interval becomes at least twice what it
was (``BUSY_FIRST_INTERVAL_S`` at least, ``BUSY_MAX_INTERVAL_S`` at most), and the rate then
grows back by ``BUSY_RECOVERY_HZ_PER_S`` every second without another refusal (AIMD, TCP's
rule). The offered load then settles near what the server completes instead of retrying into
it, and a per-robot rate limit (a 429 per key) settles each robot at its own limit. It shares a
server fairly only if each robot is refused in proportion to what it sends: a server that
admits whoever comes first after a slot frees may never refuse the robot whose step clock lands
there, so nothing slows that one (fairness 0.47-0.54 in docs/robustness.md; such a server must
queue instead). A step
waiting in the pending slot when its slot comes back busy is dropped ('interval'): it would meet
the same refusal. A server that refuses every request gets one about every
``(2 * BUSY_RECOVERY_HZ_PER_S) ** -0.5`` s (1.4 s), where halving and regrowth meet.

Bounds: at most ``max_in_flight`` requests (one more right after a question change) and one
pending step. Time is whatever clock the
caller uses (seconds); if it steps backwards (a looping bag, a sim clock reset) the selector
forgets the last send instead of waiting for the old time to return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any

import cv2
import numpy as np

from .images import to_grey

REASONS = ('circuit_open', 'interval', 'no_change', 'superseded', 'max_age')
BUSY_FIRST_INTERVAL_S = 0.25   # the interval after a busy refusal when there was none
BUSY_MAX_INTERVAL_S = 4.0      # the slowest a busy server makes the bridge send
BUSY_RECOVERY_HZ_PER_S = 0.25  # send rate regained per second without a busy refusal
_THUMB_WIDTH = 64  # frames are compared as 64 px wide grey thumbnails (cheap, noise-tolerant)


@dataclass
class Decision:
    """What to do now: items to send, and items dropped with their reason (one of REASONS)."""

    send: list[Any] = field(default_factory=list)
    dropped: list[tuple[Any, str]] = field(default_factory=list)


@dataclass
class _Pending:
    item: Any
    offered_s: float
    thumb: np.ndarray | None
    question: str | None = None


class CloudSelector:
    """Decides per step whether and when to send it to the cloud; see the module docstring."""

    def __init__(self, max_in_flight: int = 1, min_interval_s: float = 0.0,
                 scene_change: float = 0.0, max_quiet_s: float = 5.0, max_age_s: float = 3.0,
                 adaptive: bool = True, rtt_alpha: float = 0.3,
                 follow_hold: bool = False) -> None:
        self.configure(max_in_flight=max_in_flight, min_interval_s=min_interval_s,
                       scene_change=scene_change, max_quiet_s=max_quiet_s, max_age_s=max_age_s,
                       adaptive=adaptive, rtt_alpha=rtt_alpha, follow_hold=follow_hold)
        self.in_flight = 0
        self.rtt_ewma_s: float | None = None
        self.busy_refusals = 0
        self._busy_rate_hz: float | None = None  # the rate a busy server allowed, when it did
        self._busy_s = 0.0                       # and when
        self._pending: _Pending | None = None
        self._last_sent_s: float | None = None
        self._last_thumb: np.ndarray | None = None
        self._last_question: str | None = None
        self._hold: tuple[str, float] | None = None  # (question, s a standing answer holds)

    def configure(self, *, max_in_flight: int, min_interval_s: float, scene_change: float,
                  max_quiet_s: float, max_age_s: float, adaptive: bool,
                  rtt_alpha: float, follow_hold: bool) -> None:
        """Set the limits; requests in flight, the pending step and the RTT mean are kept."""
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) \
                or max_in_flight < 1:
            raise ValueError(f'max_in_flight must be an int >= 1, got {max_in_flight!r}')
        if not (math.isfinite(min_interval_s) and min_interval_s >= 0):
            raise ValueError(f'min_interval_s must be >= 0, got {min_interval_s}')
        if not 0.0 <= scene_change <= 1.0:
            raise ValueError(f'scene_change must be in [0, 1] (0 = off), got {scene_change}')
        if not (math.isfinite(max_quiet_s) and max_quiet_s > 0):
            raise ValueError(f'max_quiet_s must be > 0, got {max_quiet_s}')
        if not (math.isfinite(max_age_s) and max_age_s > 0):
            raise ValueError(f'max_age_s must be > 0, got {max_age_s}')
        if not 0.0 < rtt_alpha <= 1.0:
            raise ValueError(f'rtt_alpha must be in (0, 1], got {rtt_alpha}')
        self.max_in_flight = max_in_flight
        self.min_interval_s = float(min_interval_s)
        self.scene_change = float(scene_change)
        self.max_quiet_s = float(max_quiet_s)
        self.max_age_s = float(max_age_s)
        self.adaptive = bool(adaptive)
        self.rtt_alpha = float(rtt_alpha)
        self.follow_hold = bool(follow_hold)

    # ---------------------------------------------------------------------------- queries

    @property
    def base_interval_s(self) -> float:
        """The minimum interval between two sends by the limits and the adaptive rule."""
        if self.adaptive and self.rtt_ewma_s is not None:
            return max(self.min_interval_s, self.rtt_ewma_s / self.max_in_flight)
        return self.min_interval_s

    def interval_at(self, now_s: float) -> float:
        """The effective minimum interval at `now_s`: the base one, or longer while busy."""
        base = self.base_interval_s
        if self._busy_rate_hz is None:
            return base
        rate = self._busy_rate_hz + BUSY_RECOVERY_HZ_PER_S * max(0.0, now_s - self._busy_s)
        if 1.0 / rate <= max(base, BUSY_FIRST_INTERVAL_S / 2.0):
            self._busy_rate_hz = None  # recovered
            return base
        return 1.0 / rate

    def set_hold(self, question: str, hold_s: float) -> None:
        """How long a standing cloud answer to `question` holds (0 or inf: no sooner send)."""
        if not (hold_s >= 0):  # NaN or negative: ignore it
            raise ValueError(f'hold_s must be >= 0, got {hold_s}')
        self._hold = (question.strip(), float(hold_s))

    @property
    def last_question(self) -> str | None:
        """The question of the last step sent (None: none yet, or questions not passed)."""
        return self._last_question

    def quiet_limit_s(self, now_s: float, question: str | None = None) -> float:
        """How long rule 3 lets an unchanged scene go without a send, for `question`."""
        if not self.follow_hold or self._hold is None or question is None \
                or question.strip() != self._hold[0]:
            return self.max_quiet_s
        hold, rtt = self._hold[1], self.rtt_ewma_s or 0.0
        # An answer that lands after its own hold cannot keep one standing: no sooner send.
        if hold <= rtt or not math.isfinite(hold):
            return self.max_quiet_s
        return min(self.max_quiet_s, max(self.interval_at(now_s), hold - rtt))

    @property
    def pending(self) -> int:
        """Steps waiting for a free slot (0 or 1)."""
        return 0 if self._pending is None else 1

    # ---------------------------------------------------------------------------- events

    def offer(self, now_s: float, item: Any, frame: np.ndarray | None = None,
              gate: bool = True, question: str | None = None) -> Decision:
        """
        A new step: send it, keep it pending, or drop it (see the module docstring).

        `frame` is the step's image (RGB, RGBA or grey, any size; None: cannot judge change). It
        is thumbnailed here, and only for a step that passes the gate and the interval.
        `question` is the step's question (None: questions are not looked at, rule 1b is off).
        """
        out = Decision()
        if not gate:
            self._drop_pending(out, 'circuit_open')
            out.dropped.append((item, 'circuit_open'))
            return out
        if question is not None and self._last_question is not None \
                and question.strip() != self._last_question \
                and self.in_flight <= self.max_in_flight:
            self._drop_pending(out, 'superseded')
            self._send(out, item, now_s, _thumb(frame) if frame is not None else None,
                       question)
            return out
        if self._last_sent_s is not None and now_s < self._last_sent_s:
            self._last_sent_s = None  # the clock went backwards
            self._last_thumb = None
        elapsed = None if self._last_sent_s is None else now_s - self._last_sent_s
        if elapsed is not None and elapsed < self.interval_at(now_s):
            out.dropped.append((item, 'interval'))
            return out
        thumb = _thumb(frame) if frame is not None else None
        if elapsed is not None and self.scene_change > 0 and thumb is not None \
                and self._last_thumb is not None \
                and elapsed < self.quiet_limit_s(now_s, question) \
                and _difference(thumb, self._last_thumb) <= self.scene_change:
            out.dropped.append((item, 'no_change'))
            return out
        if self.in_flight < self.max_in_flight:
            self._send(out, item, now_s, thumb, question)
        else:
            self._drop_pending(out, 'superseded')
            self._pending = _Pending(item, now_s, thumb, question)
        return out

    def finished(self, now_s: float, rtt_s: float | None = None, gate: bool = True,
                 busy: bool = False) -> Decision:
        """
        A request ended (rtt_s: its round trip if it succeeded; busy: refused as busy).

        `rtt_s` feeds the adaptive rate, `busy` the busy rate (module docstring). Frees its
        slot, and sends the pending step if it is still young enough, the gate is open and the
        server was not busy.
        """
        if self.in_flight <= 0:
            raise RuntimeError('finished() without a request in flight')
        self.in_flight -= 1
        if rtt_s is not None and math.isfinite(rtt_s) and rtt_s >= 0:
            self.rtt_ewma_s = rtt_s if self.rtt_ewma_s is None else (
                self.rtt_alpha * rtt_s + (1.0 - self.rtt_alpha) * self.rtt_ewma_s)
        if busy:
            self.busy_refusals += 1
            interval = max(BUSY_FIRST_INTERVAL_S / 2.0, self.interval_at(now_s))
            self._busy_rate_hz = 1.0 / min(BUSY_MAX_INTERVAL_S, 2.0 * interval)
            self._busy_s = float(now_s)
        out = self.expire(now_s)
        if self._pending is not None and self.in_flight < self.max_in_flight:
            if not gate:
                self._drop_pending(out, 'circuit_open')
            elif busy:
                self._drop_pending(out, 'interval')
            else:
                p, self._pending = self._pending, None
                self._send(out, p.item, now_s, p.thumb, p.question)
        return out

    def expire(self, now_s: float) -> Decision:
        """Drop the pending step if it has waited longer than max_age_s (call periodically)."""
        out = Decision()
        if self._pending is not None and now_s - self._pending.offered_s > self.max_age_s:
            self._drop_pending(out, 'max_age')
        return out

    def reset(self) -> None:
        """Forget the last send, its question, the RTT mean, a busy rate and the hold."""
        self._hold = None
        self._last_sent_s = None
        self._last_thumb = None
        self._last_question = None
        self.rtt_ewma_s = None
        self._busy_rate_hz = None

    # ---------------------------------------------------------------------------- internals

    def _send(self, out: Decision, item: Any, now_s: float, thumb: np.ndarray | None,
              question: str | None = None) -> None:
        self.in_flight += 1
        self._last_sent_s = float(now_s)
        if question is not None:
            self._last_question = question.strip()
        if thumb is not None:
            self._last_thumb = thumb
        out.send.append(item)

    def _drop_pending(self, out: Decision, reason: str) -> None:
        if self._pending is not None:
            out.dropped.append((self._pending.item, reason))
            self._pending = None


def _thumb(image: np.ndarray) -> np.ndarray:
    """Grey thumbnail in 0..1 (uint8 images are scaled by 1/255, float ones taken as 0..1)."""
    if image.dtype != np.uint8:
        image = np.clip(np.nan_to_num(image.astype(np.float32)) * 255.0, 0, 255).astype(np.uint8)
    return to_grey(image, _THUMB_WIDTH).astype(np.float32) / 255.0


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:  # the camera changed resolution or aspect
        a = cv2.resize(a, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_AREA)
    return float(np.mean(np.abs(a - b)))
