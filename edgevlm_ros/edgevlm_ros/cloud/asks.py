# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The cloud bridge's Ask action rules (``edgevlm/ask_cloud``), without ROS.

The node turns a goal into plain values, asks ``check_goal``, runs the ask
(``cloud.ask_stream``), paces its feedback with ``core.ask.FeedbackGate`` (the edge's rule) and
counts and words its end with ``ask_counts`` / ``ask_message``. Rules:

1. A goal is checked before it reaches the cloud, in this order, and rejected with the first
   reason (``REJECTIONS``, the lower-case names of Ask.Result's error codes): a target other than
   'cloud' or empty ('unknown_target'; empty means the answering node, here the cloud), then the
   edge's checks (``core.ask.check_goal``: an empty question, ``max_new_tokens`` over
   ``MAX_NEW_TOKENS`` (0 = the bridge's ``max_tokens``), a deadline that is negative, not finite
   or over ``core.ask.MAX_DEADLINE_S`` (0 = ``ask.deadline_s``)).
   The node then checks the frame ('bad_image'; 'no_frame' when it has no step yet), the circuit
   breaker ('cloud_unavailable') and the admission ('queue_full').
2. Feedback goes out as ``core.ask.FeedbackGate`` says, counting chunks; the final text always
   goes in the result.
3. Every accepted ask ends once, as ``ask_answered`` (done), ``ask_cancelled``, ``ask_deadline``
   or ``ask_failed``; a failure also counts ``ask_failures_<fault>``; a server that did not stream
   ``ask_stream_unsupported``; every ask its chunks, attempts and retries. A rejected goal counts
   ``ask_rejected_<reason>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgevlm_ros.cloud.ask_stream import AskResult
from edgevlm_ros.core import ask

TARGETS = ('', 'cloud')
REJECTIONS = ('empty_question', 'bad_image', 'unknown_target', 'bad_max_new_tokens',
              'queue_full', 'no_frame', 'bad_deadline', 'cloud_unavailable')
# The largest answer cap a goal may ask for: the max_tokens parameter's bound.
MAX_NEW_TOKENS = 8192


@dataclass(frozen=True)
class GoalCheck:
    """A goal's scalar fields checked (rule 1): a rejection, or what the ask runs with."""

    rejection: str = ''   # one of REJECTIONS; '' = accepted so far
    message: str = ''
    max_tokens: int = 0
    deadline_s: float = 0.0


def check_goal(target: str, question: str, max_new_tokens: int, deadline_s: float,
               default_max_tokens: int, default_deadline_s: float) -> GoalCheck:
    """Rule 1, the fields that need no frame."""
    if target not in TARGETS:
        return GoalCheck('unknown_target', f'target {target!r}: this is the cloud bridge, it '
                         "answers target 'cloud' (or empty); 'edge' and 'both' go to edgevlm/ask")
    rejection = ask.check_goal(question, ask.TARGET_CLOUD, max_new_tokens, deadline_s,
                               MAX_NEW_TOKENS)
    if rejection is not None:
        return GoalCheck(rejection.code.lower(), rejection.reason)
    return GoalCheck(max_tokens=max_new_tokens or default_max_tokens,
                     deadline_s=deadline_s or default_deadline_s)


def ask_counts(ending: str, result: AskResult | None) -> list[tuple[str, int]]:
    """Rule 3 (`result` None: cancelled before the ask returned anything)."""
    counts = [(ask.counter(ending), 1)]
    if result is None:
        return counts
    if ending == 'failed':
        counts.append((f'ask_failures_{result.fault or "other"}', 1))
    if not result.streamed:
        counts.append(('ask_stream_unsupported', 1))
    counts += [('ask_chunks', result.chunks), ('ask_attempts', result.attempts),
               ('ask_retries', max(0, result.attempts - 1))]
    return counts


def ask_message(ending: str, error: str) -> str:
    """The result's message: empty when done, else one line saying why it ended."""
    if ending == 'done':
        return ''
    if ending == 'cancelled':
        return 'cloud: cancelled' + (f' ({error})' if error else '')
    return f'cloud: {ending}: {error}' if error else f'cloud: {ending}'
