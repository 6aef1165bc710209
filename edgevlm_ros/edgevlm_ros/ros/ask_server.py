# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The edge node's one-off questions: the edgevlm/ask action, and the edgevlm/ask service over it.

A goal is checked before it reaches a model (core.ask.check_goal, the frame, the node being
active, the queue bound); a goal that fails a check is aborted at once with its error_code and
one line (nothing else is touched). Then:

* target edge: the question runs on the edge node's model worker (`run_edge`, between two steps
  as the worker's policy says); the tokens stream back as feedback through a
  core.ask.TokenStream; a cancel, a deadline or a client that is gone stops the model at its next
  token (or takes the ask out of the queue before it runs), and the partial text is the result.
* target cloud: the goal goes on to the bridge's edgevlm/ask_cloud action with the frame this
  node resolved (the newest step's, when the goal has none), and its feedback, cancel and result
  are relayed.
* target both: the cloud goal is sent first, the edge answers meanwhile, then the cloud's answer
  follows; the result holds both, edge first.

Each goal runs on a thread of the Desk, never on the node's executor.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
import threading
import time
from typing import Any

from edgevlm_msgs.action import Ask as AskAction
from edgevlm_msgs.msg import Answer, Step
from edgevlm_msgs.srv import Ask as AskService
import numpy as np
from rclpy.action import ActionClient
from rclpy.action.server import ServerGoalHandle
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from edgevlm_ros.core import ask
from edgevlm_ros.core.images import ImageDecodeError
from edgevlm_ros.core.model_worker import WorkerBusy
from edgevlm_ros.core.stats import Counters
from edgevlm_ros.ros.conversions import image_to_rgb
from edgevlm_ros.ros.desk import Desk

ACTION = 'edgevlm/ask'
CLOUD_ACTION = 'edgevlm/ask_cloud'

# How often a running goal looks at its deadline and at its client when no token comes (s).
POLL_S = 0.25
# How long a cloud goal may take to be accepted by the bridge, and a cancelled one to end (s).
CLOUD_HANDSHAKE_S = 5.0


class NotActive(RuntimeError):
    """Raised by `run_edge` when the edge model is not loaded and active."""


@dataclass(frozen=True)
class AskSettings:
    """The node's ask.* parameters (and its own token cap)."""

    max_queue: int
    deadline_s: float
    feedback_tokens: int
    feedback_ms: float
    max_new_tokens: int          # the node's cap: a goal's 0
    max_tokens_bound: int        # a goal's largest max_new_tokens


@dataclass(frozen=True)
class AskJob:
    """A checked goal: what the model needs."""

    question: str
    target: str
    rgb: np.ndarray
    image: Image                 # the frame as sent on to the cloud
    header: Header
    step_id: int                 # the step stream's id of the frame; 0 for a goal's own image
    max_new_tokens: int          # 0: the node's cap
    use_context: bool


@dataclass
class _Part:
    """One target's answer as it ends."""

    answer: Answer
    ending: str
    note: str = ''               # why it did not end done


class _Reject(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class AskServer:
    """edgevlm/ask (action and service) for the edge node (module docs)."""

    def __init__(self, node: Node, counters: Counters, *,
                 run_edge: Callable[[AskJob, ask.TokenStream], Future],
                 newest_step: Callable[[], Step | None],
                 settings: Callable[[], AskSettings], max_queue: int) -> None:
        self._node = node
        self._counters = counters
        self._run_edge = run_edge
        self._newest_step = newest_step
        self._settings = settings
        self._lock = threading.Lock()
        # Goals between acceptance and result, by whether they use the edge model: each bound
        # at ask.max_queue + 1 (the queue and the one answering), cloud-only goals apart.
        self._admitted = {edge: ask.Admission(1, max_queue) for edge in (True, False)}
        # The asks on their way to the edge model, by goal id (a service call: its stream's id).
        self._streams: dict[object, ask.TokenStream] = {}
        # A thread per goal the two bounds allow, one for a goal past them (to say so at once)
        # and one for the relayed cloud goals' callbacks.
        self._desk = Desk(node, 'ask', threads=2 * (max_queue + 1) + 2, counters=counters)
        self._desk.add_action(AskAction, ACTION, self._execute, on_cancel=self._on_cancel)
        self._desk.add_service(AskService, ACTION, self._serve)
        self._cloud = ActionClient(self._desk.node, AskAction, CLOUD_ACTION)

    def stop_all(self) -> None:
        """Stop every ask the model is answering or holds in its queue (the node stops)."""
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream.stop(ask.CANCELLED)

    def close(self) -> None:
        self.stop_all()
        self._cloud.destroy()
        self._desk.close()

    # ------------------------------------------------------------------ the action
    def _execute(self, handle: ServerGoalHandle) -> AskAction.Result:
        t0 = time.monotonic()
        goal = handle.request
        settings = self._settings()
        try:
            job = self._prepare(goal, settings)
        except _Reject as r:
            return self._abort(handle, r.code, r.reason)
        edge = job.target != ask.TARGET_CLOUD
        if not edge and not self._cloud.server_is_ready():
            return self._abort(handle, 'CLOUD_UNAVAILABLE', f'no cloud bridge serves '
                               f'{CLOUD_ACTION}')
        admitted = self._admitted[edge]
        if not admitted.enter():
            return self._abort(handle, 'QUEUE_FULL', f'{admitted.limit} asks are already '
                               'queued or running (ask.max_queue)')
        try:
            deadline = t0 + (goal.deadline_s or settings.deadline_s)
            cloud = answering = None
            if edge:
                answering = self._submit(handle, job, settings)
            if job.target != ask.TARGET_EDGE:
                try:
                    cloud = self._send_cloud(handle, job, deadline)
                except _Reject as r:
                    if job.target == ask.TARGET_CLOUD:
                        raise
                    cloud = r  # both: the edge answers, the cloud's part says why it could not
            parts = []
            if answering is not None:
                parts.append(self._finish_edge(handle, job, answering, deadline, t0))
            if cloud is not None:
                parts.append(self._finish_cloud(handle, job, cloud, deadline, t0))
        except _Reject as r:
            return self._abort(handle, r.code, r.reason)
        finally:
            admitted.leave()
            with self._lock:
                self._streams.pop(bytes(handle.goal_id.uuid), None)
        return self._result(handle, parts)

    def _on_cancel(self, handle: ServerGoalHandle) -> None:
        stream = self._streams.get(bytes(handle.goal_id.uuid))
        if stream is not None:
            stream.stop(ask.CANCELLED)  # the model stops at its next token

    def _abort(self, handle: ServerGoalHandle, code: str, reason: str) -> AskAction.Result:
        self._counters.inc(f'ask_rejected_{code.lower()}')
        self._node.get_logger().warning(f'ask rejected ({code}): {reason}',
                                        throttle_duration_sec=5.0)
        self._desk.end(handle, 'aborted')
        return AskAction.Result(error_code=getattr(AskAction.Result, code), message=reason)

    def _result(self, handle: ServerGoalHandle, parts: list[_Part]) -> AskAction.Result:
        endings = [p.ending for p in parts]
        end = ask.terminal(endings, handle.is_cancel_requested)
        for p in parts:
            self._counters.inc(ask.counter(p.ending))
        self._desk.end(handle, end)
        return AskAction.Result(answers=[p.answer for p in parts], endings=endings,
                                message='; '.join(p.note for p in parts if p.note))

    # ------------------------------------------------------------------ checks
    def _prepare(self, goal: Any, settings: AskSettings) -> AskJob:
        rejection = ask.check_goal(goal.question, goal.target, goal.max_new_tokens,
                                   goal.deadline_s, settings.max_tokens_bound)
        if rejection is not None:
            raise _Reject(rejection.code, rejection.reason)
        step_id = 0
        if goal.image.width == 0:
            step = self._newest_step()
            if step is None:
                raise _Reject('NO_FRAME', 'no frame received yet: send an image with the goal '
                              'or wait for the step stream')
            image, header, step_id = step.image, step.header, step.step_id
        else:
            image, header = goal.image, goal.image.header
        try:
            rgb = image_to_rgb(image)
        except ImageDecodeError as e:
            raise _Reject('BAD_IMAGE', str(e)) from None
        return AskJob(goal.question.strip(), ask.parse_target(goal.target), rgb, image, header,
                      step_id, int(goal.max_new_tokens), bool(goal.use_context))

    # ------------------------------------------------------------------ edge
    def _submit(self, handle: ServerGoalHandle | None, job: AskJob,
                settings: AskSettings) -> tuple[ask.TokenStream, Future]:
        stream = ask.TokenStream(settings.feedback_tokens, settings.feedback_ms / 1000.0)
        try:
            future = self._run_edge(job, stream)
        except NotActive as e:
            raise _Reject('NOT_ACTIVE', str(e)) from None
        except WorkerBusy as e:
            raise _Reject('QUEUE_FULL', f'edge model busy: {e}') from None
        with self._lock:
            self._streams[_key(handle, stream)] = stream
        if handle is not None and handle.is_cancel_requested:  # before the stream was there
            stream.stop(ask.CANCELLED)
        return stream, future

    def _finish_edge(self, handle: ServerGoalHandle | None, job: AskJob,
                     edge: tuple[ask.TokenStream, Future], deadline: float,
                     t0: float) -> _Part:
        stream, future = edge
        said, client = '', ask.ClientWatch()
        while not future.done():
            update = stream.wait(max(0.01, min(POLL_S, deadline - time.monotonic())))
            if update is not None and handle is not None and update.text not in ('', said):
                said = update.text
                self._feedback(handle, AskAction.Feedback(
                    text=update.text, tokens=update.tokens, source=Answer.SOURCE_EDGE))
            if update is not None and update.finished:
                break  # the future's result follows at once
            if not stream.stopped_by:
                stop = self._stop_reason(handle, deadline, client)
                if stop:
                    stream.stop(stop)
            if stream.stopped_by:
                future.cancel()  # still queued: it never runs (running: it stops at a token)
        text, model_ms, failure, done = stream.snapshot().text, 0.0, '', None
        try:
            done = future.result()  # an edge_runner.AskAnswered (None: it never ran)
        except CancelledError:
            pass
        except Exception as e:  # noqa: BLE001 - a model fault ends this answer, not the node
            failure = f'edge model failed: {e}'
            self._node.get_logger().error(f'ask: {failure}', throttle_duration_sec=5.0)
        if done is not None:
            text, model_ms = done.result.text, float(done.result.model_ms)
        ending = ask.ending(stream.stopped_by, bool(failure))
        answer = self._answer(job, text, Answer.SOURCE_EDGE, t0, model_ms)
        if done is not None and job.use_context:
            answer.history_turns, answer.replaced_turns = done.history_turns, \
                done.replaced_turns
            answer.reason = (f"with the step stream's context: {done.history_turns} history "
                             f'turns, {done.replaced_turns} of them from the cloud')
        note = failure or ('' if ending == ask.DONE else f'edge {ending}')
        return _Part(answer, ending, note)

    def _stop_reason(self, handle: ServerGoalHandle | None, deadline: float,
                     client: ask.ClientWatch) -> str:
        if time.monotonic() >= deadline:
            return ask.DEADLINE
        if handle is None:
            return ''
        if handle.is_cancel_requested or not self._node.context.ok():
            return ask.CANCELLED
        if client.gone(self._desk.clients_listening(ACTION)):
            self._counters.inc('ask_client_gone')
            return ask.CANCELLED
        return ''

    def _feedback(self, handle: ServerGoalHandle, feedback: Any) -> None:
        if self._node.context.ok():  # shutting down: nobody is left to hear it
            handle.publish_feedback(feedback)

    # ------------------------------------------------------------------ cloud
    def _send_cloud(self, handle: ServerGoalHandle, job: AskJob, deadline: float) -> Any:
        if not self._cloud.server_is_ready():
            raise _Reject('CLOUD_UNAVAILABLE', f'no cloud bridge serves {CLOUD_ACTION}')
        goal = AskAction.Goal(image=job.image, question=job.question, target=ask.TARGET_CLOUD,
                              max_new_tokens=job.max_new_tokens, use_context=job.use_context,
                              deadline_s=max(0.001, deadline - time.monotonic()))
        sent = self._cloud.send_goal_async(
            goal, feedback_callback=lambda fb: self._feedback(handle, fb.feedback))
        if not _done_within(sent, CLOUD_HANDSHAKE_S):
            raise _Reject('CLOUD_UNAVAILABLE', f'the cloud bridge did not answer the ask within '
                          f'{CLOUD_HANDSHAKE_S:g} s')
        return sent.result()

    def _finish_cloud(self, handle: ServerGoalHandle, job: AskJob, cloud_handle: Any,
                      deadline: float, t0: float) -> _Part:
        if isinstance(cloud_handle, _Reject) or not cloud_handle.accepted:
            note = cloud_handle.reason if isinstance(cloud_handle, _Reject) else \
                'the cloud bridge did not accept the ask'
            return _Part(self._answer(job, '', Answer.SOURCE_CLOUD, t0, 0.0), ask.FAILED, note)
        done = cloud_handle.get_result_async()
        stop, client = '', ask.ClientWatch()
        # The bridge keeps the deadline itself; this one only guards against a bridge that died.
        while not _done_within(done, POLL_S):
            stop = stop or self._stop_reason(handle, deadline + CLOUD_HANDSHAKE_S, client)
            if stop:
                _done_within(cloud_handle.cancel_goal_async(), CLOUD_HANDSHAKE_S)
                _done_within(done, CLOUD_HANDSHAKE_S)
                break
        result = done.result().result if done.done() else None
        if result is None or not result.answers:
            reason = result.message if result is not None and result.message else \
                'no answer from the cloud bridge'
            ending = stop or ask.FAILED
            return _Part(self._answer(job, '', Answer.SOURCE_CLOUD, t0, 0.0), ending, reason)
        answer = result.answers[0]
        # The bridge got the frame as a goal image: the step it belongs to is known here.
        answer.header, answer.step_id = job.header, job.step_id
        answer.latency_ms = float((time.monotonic() - t0) * 1000.0)
        ending = result.endings[0] if result.endings else ask.FAILED
        return _Part(answer, ending, '' if ending == ask.DONE else
                     (result.message or f'cloud {ending}'))

    # ------------------------------------------------------------------ the service
    def _serve(self, request: AskService.Request,
               response: AskService.Response) -> AskService.Response:
        """The service for simple callers: an edge ask without context, no feedback."""
        t0 = time.monotonic()
        settings = self._settings()
        goal = AskAction.Goal(image=request.image, question=request.question)
        try:
            job = self._prepare(goal, settings)
            submitted = self._submit(None, job, settings)
            try:
                part = self._finish_edge(None, job, submitted, t0 + settings.deadline_s, t0)
            finally:
                with self._lock:
                    self._streams.pop(_key(None, submitted[0]), None)
        except _Reject as r:
            self._counters.inc(f'ask_rejected_{r.code.lower()}')
            response.success, response.message = False, r.reason
            return response
        self._counters.inc(ask.counter(part.ending))
        response.answer = part.answer
        response.success, response.message = part.ending == ask.DONE, part.note
        return response

    # ------------------------------------------------------------------ answers
    def _answer(self, job: AskJob, text: str, source: int, t0: float,
                model_ms: float) -> Answer:
        return Answer(header=job.header, step_id=job.step_id, question=job.question,
                      answer=text, strategy='ask', source=source,
                      latency_ms=float((time.monotonic() - t0) * 1000.0),
                      model_ms=float(model_ms), newest_cloud_step=-1)


def _key(handle: ServerGoalHandle | None, stream: ask.TokenStream) -> object:
    return bytes(handle.goal_id.uuid) if handle is not None else id(stream)


def _done_within(future: Any, timeout_s: float) -> bool:
    """Block this desk thread until an rclpy future is done, at most `timeout_s`."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    return done.wait(max(0.0, timeout_s))

