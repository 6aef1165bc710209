# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The cloud bridge's Ask action, ``edgevlm/ask_cloud``: one-off questions streamed from the LVLM.

The message side of ``cloud.asks`` (the rules) and ``cloud.ask_stream`` (the HTTP stream): each
goal runs on a thread of the bridge's ``Desk``, blocked on a threading event while the stream
runs on the bridge's asyncio loop; it wakes for each chunk, for a due feedback and every
``POLL_S`` to look for a cancel request or a client that went away (both cancel the stream's
task, which closes the HTTP connection).

Terminal states: done -> succeeded; cancelled on request -> canceled; everything else (deadline,
failure, a client that went away) -> aborted. Every goal that passed its checks has one Answer
(the text so far when it ended early); a rejected goal none, with its error code and message.
"""

from __future__ import annotations

from collections.abc import Callable
import concurrent.futures
import threading
import time
from typing import Any

from edgevlm_msgs.action import Ask
from edgevlm_msgs.msg import Answer
import numpy as np
from rclpy.node import Node

from edgevlm_ros.cloud.ask_stream import AskResult, StreamingAsker
from edgevlm_ros.cloud.asks import ask_counts, ask_message, check_goal
from edgevlm_ros.cloud.bridge_config import BridgeConfig
from edgevlm_ros.cloud.loop_thread import LoopThread
from edgevlm_ros.core import ask
from edgevlm_ros.core.ask import Admission, ClientWatch, FeedbackGate
from edgevlm_ros.core.images import ImageDecodeError
from edgevlm_ros.core.stats import Counters
from edgevlm_ros.ros.conversions import image_to_rgb
from edgevlm_ros.ros.desk import Desk

ACTION = 'edgevlm/ask_cloud'
STRATEGY = 'ask'
# How often a running goal looks for a cancel request or a client gone, s.
POLL_S = 0.05
# How long a failure's warning keeps later ones quiet, s.
LOG_THROTTLE_S = 5.0


class _Progress:
    """The text so far, written by the asyncio thread, read by the goal's thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.text = ''
        self.chunks = 0

    def on_text(self, text: str, chunks: int) -> None:
        with self.lock:
            self.text, self.chunks = text, chunks
        self.changed.set()

    def snapshot(self) -> tuple[str, int]:
        with self.lock:
            return self.text, self.chunks


class CloudAskAction:
    """Serves ``edgevlm/ask_cloud`` on `desk`; see the module docstring."""

    def __init__(self, node: Node, desk: Desk, asker: StreamingAsker, admission: Admission,
                 loop: LoopThread, counters: Counters, config: Callable[[], BridgeConfig],
                 newest: Callable[[], tuple[Any, np.ndarray] | None]) -> None:
        self._node = node
        self._desk = desk
        self._asker = asker
        self._admission = admission
        self._loop = loop
        self._counters = counters
        self._config = config
        self._newest = newest
        desk.add_action(Ask, ACTION, self.execute)

    # ------------------------------------------------------------------ one goal

    def execute(self, goal_handle: Any) -> Ask.Result:
        accepted = time.monotonic()
        goal = goal_handle.request
        c = self._config()
        check = check_goal(goal.target, goal.question, goal.max_new_tokens, goal.deadline_s,
                           c.max_tokens, c.ask_deadline_s)
        if check.rejection:
            return self._reject(goal_handle, check.rejection, check.message)
        frame = self._frame(goal)
        if isinstance(frame, tuple) and isinstance(frame[0], str):
            return self._reject(goal_handle, *frame)
        header, step_id, rgb = frame
        breaker = self._asker.client.breaker
        if breaker is not None and not breaker.ready():
            return self._reject(goal_handle, 'cloud_unavailable', self._asker.client.open_text())
        if not self._admission.enter():
            return self._reject(goal_handle, 'queue_full', (
                f'{self._admission.limit} asks already running or waiting (ask.max_in_flight + '
                'ask.max_queue)'))
        try:
            ending, result, text = self._stream(goal_handle, rgb, goal.question, check, c)
        finally:
            self._admission.leave()
        error = result.error if result is not None else ''
        for name, n in ask_counts(ending, result):
            self._counters.inc(name, n)
        if ending in ('failed', 'deadline'):
            self._node.get_logger().warning(f'ask {ending}: {error}',
                                            throttle_duration_sec=LOG_THROTTLE_S)
        answer = Answer(header=header, step_id=step_id, question=goal.question,
                        answer=text.strip(), strategy=STRATEGY, source=Answer.SOURCE_CLOUD,
                        latency_ms=(time.monotonic() - accepted) * 1000.0,
                        model_ms=result.round_trip_ms if result is not None else 0.0,
                        newest_cloud_step=-1)
        out = Ask.Result(answers=[answer], endings=[ending],
                         message=ask_message(ending, error))
        if result is not None and not result.sent and result.fault == 'circuit_open':
            out.error_code = Ask.Result.CLOUD_UNAVAILABLE
        self._finish(goal_handle, ending)
        return out

    def _frame(self, goal: Any) -> tuple:
        """(header, step_id, rgb) of the frame to ask about, or (rejection, message)."""
        if goal.image.width == 0:
            newest = self._newest()
            if newest is None:
                return 'no_frame', 'no frame yet: no step has reached the bridge'
            step, rgb = newest
            return step.header, step.step_id, rgb
        try:
            return goal.image.header, 0, image_to_rgb(goal.image)
        except ImageDecodeError as e:
            return 'bad_image', f'the goal image cannot be used: {e}'

    def _stream(self, goal_handle: Any, rgb: np.ndarray, question: str, check: Any,
                c: BridgeConfig) -> tuple[str, AskResult | None, str]:
        """Run the ask until it ends or is cancelled: (ending, result or None, text)."""
        progress = _Progress()
        deadline = time.monotonic() + check.deadline_s
        future = self._loop.submit(self._asker.ask(
            rgb, question, max_tokens=check.max_tokens, deadline=deadline,
            on_text=progress.on_text))
        future.add_done_callback(lambda _f: progress.changed.set())
        gate = FeedbackGate(c.ask_feedback_chunks, c.ask_feedback_ms / 1000.0)
        client = ClientWatch()
        sent = ''
        while not future.done():
            progress.changed.clear()
            now = time.monotonic()
            if goal_handle.is_cancel_requested or client.gone(
                    self._desk.clients_listening(ACTION)):
                future.cancel()  # cancels the task: the HTTP stream closes
                text, _ = progress.snapshot()
                why = 'cancel requested' if goal_handle.is_cancel_requested \
                    else 'the action client went away'
                return 'cancelled', AskResult('cancelled', text=text, error=why), text
            text, chunks = progress.snapshot()
            if gate.due(chunks, now):
                sent = self._feedback(goal_handle, text, chunks)
                gate.sent(chunks, now)
            wait = gate.wait_s(chunks, now)
            progress.changed.wait(POLL_S if wait is None else min(POLL_S, wait))
        try:
            result = future.result()
        except (concurrent.futures.CancelledError, Exception) as e:  # noqa: BLE001 - last guard
            text, chunks = progress.snapshot()
            self._counters.inc('bridge_errors')
            return 'failed', AskResult('failed', text=text, chunks=chunks, fault='bridge',
                                       error=f'bridge error: {type(e).__name__}: {e}'), text
        if result.text and result.text != sent:
            self._feedback(goal_handle, result.text, result.chunks)
        return result.ending, result, result.text

    # ------------------------------------------------------------------ replies

    @staticmethod
    def _feedback(goal_handle: Any, text: str, chunks: int) -> str:
        goal_handle.publish_feedback(Ask.Feedback(text=text.lstrip(), tokens=chunks,
                                                  source=Answer.SOURCE_CLOUD))
        return text

    def _reject(self, goal_handle: Any, reason: str, message: str) -> Ask.Result:
        self._counters.inc(f'ask_rejected_{reason}')
        self._desk.end(goal_handle, 'aborted')
        return Ask.Result(error_code=getattr(Ask.Result, reason.upper()), message=message)

    def _finish(self, goal_handle: Any, ending: str) -> None:
        self._desk.end(goal_handle, ask.terminal([ending], goal_handle.is_cancel_requested))
