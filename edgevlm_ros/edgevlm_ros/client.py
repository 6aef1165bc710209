# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""EdgeVlmClient: the small Python API robot code uses to talk to a running edgevlm_ros graph.

    rclpy.init()
    node = rclpy.create_node('my_robot')
    vlm = EdgeVlmClient(node)                      # namespace='robot1' for a namespaced graph
    vlm.wait_until_active()                        # the edge node has loaded its model
    vlm.set_question('Is the path ahead clear?')   # every later step asks this
    answer = vlm.ask('What is the person holding?')                  # edge, newest frame
    answer = vlm.ask('Describe the table.', target='cloud')          # the LVLM, via the bridge
    stream = vlm.ask_stream('Describe the scene.', target='both')
    for text in stream:                            # the text so far, as it is generated
        print(text)                                # (stream.cancel() stops it at once)
    edge, cloud = stream.answers
    latest = vlm.latest_answer()                   # newest streamed Answer (or None)

`ask`, `ask_stream`, `wait_until_active` and `wait_for_answer` spin the given node (through its
executor, or a private one) until done, like nav2's BasicNavigator: call them from a script, not
from inside a callback of an executor that is spinning that node. Inside a spinning node use
`send_ask` (the action's goal future, feedback through a callback), `ask_async` (the service)
and the answer stream.
"""

from collections import deque
import time

from edgevlm_msgs.action import Ask as AskAction
from edgevlm_msgs.msg import Answer
from edgevlm_msgs.srv import Ask
from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import GetState
import numpy as np
from rclpy.action import ActionClient
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import Image
from std_msgs.msg import String

from edgevlm_ros.ros.conversions import rgb_to_image
from edgevlm_ros.ros.qos import QUESTION, RESULTS
from edgevlm_ros.ros.resend import ResendingCall, ResendOnMatch

# Answers kept for answers(): a bound, not a log.
RECENT_ANSWERS = 100

# An ask_stream's texts not yet read: a reader slower than the feedback loses the oldest ones
# (each holds the whole text so far, so the newest is all a reader needs).
STREAM_BACKLOG = 64

# wait_until_active: how long one lifecycle state request may go unanswered before the next;
# an Ask goal request, before it is sent again.
STATE_RETRY_S = 2.0
GOAL_RETRY_S = 3.0

_ERROR_NAMES = {getattr(AskAction.Result, n): n for n in dir(AskAction.Result)
                if n.isupper() and isinstance(getattr(AskAction.Result, n), int)}


class AskRejected(RuntimeError):
    """An ask the node refused before it reached a model; `code` names why (Ask result)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f'{code}: {reason}')
        self.code, self.reason = code, reason


class AskStream:
    """
    One ask's text as it is generated: iterate for the text so far, `cancel()` to stop it.

    The iteration ends when the goal has ended; then `answers` holds one Answer per target
    (edge first), `endings` how each ended ('done', 'cancelled', 'deadline', 'failed') and
    `status` the goal's end ('succeeded', 'canceled', 'aborted'). A goal the node refused
    raises AskRejected from the iteration.
    """

    def __init__(self, client: 'EdgeVlmClient', goal: AskAction.Goal, timeout_s: float) -> None:
        self._client = client
        self._texts: deque[str] = deque(maxlen=STREAM_BACKLOG)
        self.sources: list[int] = []
        self.answers: list[Answer] = []
        self.endings: list[str] = []
        self.status = ''
        self.message = ''
        self._end = time.monotonic() + timeout_s
        while True:
            # A goal request sent to a server that has just restarted can be lost (discovery
            # still lists the old one): one not answered within GOAL_RETRY_S goes again.
            sent = client.send_ask(goal, self._on_feedback)
            try:
                self._handle = client._until(sent, min(self._end, time.monotonic() +
                                                       GOAL_RETRY_S), '')
                break
            except TimeoutError:
                if time.monotonic() > self._end:
                    raise TimeoutError('the ask was not accepted in time') from None
        if not self._handle.accepted:
            raise AskRejected('REJECTED', 'the edge node refused the goal')
        self._result = self._handle.get_result_async()

    def _on_feedback(self, msg) -> None:
        self._texts.append(msg.feedback.text)
        self.sources.append(msg.feedback.source)

    def __iter__(self):
        while True:
            while self._texts:
                yield self._texts.popleft()
            if self._result.done():
                self._finish()
                return
            if time.monotonic() > self._end:
                self.cancel()
                raise TimeoutError('the ask did not end in time; cancelled')
            self._client._spin_once(0.05)

    def cancel(self) -> None:
        """Stop the answer now; the partial text is in `answers` once the goal has ended."""
        if self._result.done():
            return
        self._client._until(self._handle.cancel_goal_async(), time.monotonic() + 10.0,
                            'the cancel was not answered')
        self._client._until(self._result, time.monotonic() + 10.0, 'no result after cancel')
        self._finish()

    def _finish(self) -> None:
        response = self._result.result()
        result = response.result
        self.answers, self.endings = list(result.answers), list(result.endings)
        self.message = result.message
        self.status = {4: 'succeeded', 5: 'canceled', 6: 'aborted'}.get(response.status,
                                                                         str(response.status))
        if result.error_code != AskAction.Result.NONE:
            raise AskRejected(_ERROR_NAMES.get(result.error_code, str(result.error_code)),
                              result.message)


class EdgeVlmClient:
    """Asks questions and reads answers of an edgevlm_ros graph through one rclpy node."""

    def __init__(self, node: Node, namespace: str = '') -> None:
        self._node = node
        prefix = f"/{namespace.strip('/')}/" if namespace.strip('/') else ''
        self._recent: deque[Answer] = deque(maxlen=RECENT_ANSWERS)
        self._sub = node.create_subscription(Answer, f'{prefix}edgevlm/answer',
                                             self._on_answer, RESULTS)
        # A camera that (re)starts later gets the question again, while the node spins.
        self._question_pub = ResendOnMatch(node, String, f'{prefix}edgevlm/question', QUESTION)
        self._ask = node.create_client(Ask, f'{prefix}edgevlm/ask')
        self._action = ActionClient(node, AskAction, f'{prefix}edgevlm/ask')
        self._edge_state = node.create_client(GetState, f'{prefix}edge_svlm/get_state')
        self._own_executor: Executor | None = None

    def _on_answer(self, msg: Answer) -> None:
        self._recent.append(msg)

    def _spin_once(self, timeout_s: float) -> None:
        executor = self._node.executor
        if executor is None:
            if self._own_executor is None:
                self._own_executor = SingleThreadedExecutor(context=self._node.context)
            self._own_executor.add_node(self._node)
            executor = self._own_executor
        executor.spin_once(timeout_sec=timeout_s)

    def _until(self, future: Future, end: float, what: str):
        """Spin until `future` is done; its result, or TimeoutError(what) at monotonic `end`."""
        while not future.done():
            if time.monotonic() > end:
                raise TimeoutError(what)
            self._spin_once(0.05)
        return future.result()

    def wait_until_active(self, timeout_s: float = 120.0) -> None:
        """Wait until the edge node is active (its model loaded), as nav2's waitUntilNav2Active."""
        end = time.monotonic() + timeout_s
        asked: ResendingCall | None = None
        while True:
            # A loading node answers only after its load, and an answer can be lost to
            # discovery: the request goes again every STATE_RETRY_S while unanswered.
            if asked is None and self._edge_state.service_is_ready():
                asked = ResendingCall(self._edge_state, GetState.Request(), STATE_RETRY_S,
                                      backoff=1.0)
            if asked is not None and asked.done():
                if asked.result().current_state.id == State.PRIMARY_STATE_ACTIVE:
                    return
                asked = None
            if time.monotonic() > end:
                if asked is not None:
                    asked.cancel()
                raise TimeoutError(f'edge_svlm is not active after {timeout_s:g} s')
            self._spin_once(0.1)

    def set_question(self, question: str) -> None:
        """Ask this question about every following step (camera_node pairs it with frames)."""
        if not question.strip():
            raise ValueError('question must not be empty')
        self._question_pub.publish(String(data=question.strip()))

    def latest_answer(self) -> Answer | None:
        return self._recent[-1] if self._recent else None

    def answers(self) -> list[Answer]:
        """The most recent streamed answers (at most RECENT_ANSWERS), oldest first."""
        return list(self._recent)

    def wait_for_answer(self, newer_than_step: int = -1, timeout_s: float = 10.0
                        ) -> Answer | None:
        """Spin until an answer about a step after newer_than_step arrives; None on timeout."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            latest = self.latest_answer()
            if latest is not None and latest.step_id > newer_than_step:
                return latest
            self._spin_once(0.05)
        return None

    def ask_async(self, question: str, image: np.ndarray | Image | None = None) -> Future:
        """Send a one-off question (about image, or the newest frame); future gets Ask.Response."""
        if not question.strip():
            raise ValueError('question must not be empty')
        request = Ask.Request(question=question)
        if isinstance(image, np.ndarray):
            request.image = rgb_to_image(image, request.image.header)
        elif image is not None:
            request.image = image
        return self._ask.call_async(request)

    @staticmethod
    def goal(question: str, image: np.ndarray | Image | None = None, *, target: str = 'edge',
             max_new_tokens: int = 0, use_context: bool = False,
             deadline_s: float = 0.0) -> AskAction.Goal:
        """An Ask goal (see edgevlm_msgs/action/Ask.action for each field)."""
        if not question.strip():
            raise ValueError('question must not be empty')
        goal = AskAction.Goal(question=question, target=target, max_new_tokens=max_new_tokens,
                              use_context=use_context, deadline_s=float(deadline_s))
        if isinstance(image, np.ndarray):
            goal.image = rgb_to_image(image, goal.image.header)
        elif image is not None:
            goal.image = image
        return goal

    def send_ask(self, goal: AskAction.Goal, feedback=None) -> Future:
        """Send an Ask goal without waiting (inside a spinning node); the goal handle future."""
        return self._action.send_goal_async(goal, feedback_callback=feedback)

    def ask_stream(self, question: str, image: np.ndarray | Image | None = None, *,
                   target: str = 'edge', max_new_tokens: int = 0, use_context: bool = False,
                   timeout_s: float = 60.0) -> AskStream:
        """Ask and iterate over the text as it is generated (AskStream); a script's call."""
        end = time.monotonic() + timeout_s
        while not self._action.server_is_ready():
            if time.monotonic() > end:
                raise TimeoutError('edgevlm/ask is not available (is edge_svlm_node running?)')
            self._spin_once(0.05)
        goal = self.goal(question, image, target=target, max_new_tokens=max_new_tokens,
                         use_context=use_context, deadline_s=max(0.1, end - time.monotonic()))
        return AskStream(self, goal, max(0.1, end - time.monotonic()) + 5.0)

    def ask(self, question: str, image: np.ndarray | Image | None = None, *,
            target: str = 'edge', max_new_tokens: int = 0, use_context: bool = False,
            timeout_s: float = 30.0) -> Answer:
        """
        Ask and wait for the whole answer; the node's deadline is `timeout_s`.

        Returns the Answer (target both: the cloud's when it ended done, else the edge's).
        Raises AskRejected (the node refused the goal: `code` says why), TimeoutError (the
        deadline passed; the partial text is lost to this call, ask_stream keeps it) or
        RuntimeError (the answer failed, with the node's reason).
        """
        stream = self.ask_stream(question, image, target=target, max_new_tokens=max_new_tokens,
                                 use_context=use_context, timeout_s=timeout_s)
        for _ in stream:
            pass
        done = [a for a, e in zip(stream.answers, stream.endings) if e == 'done']
        if done:
            return done[-1]
        if 'deadline' in stream.endings:
            raise TimeoutError(f'no answer to {question!r} within {timeout_s:g} s')
        raise RuntimeError(f'edgevlm could not answer: {stream.message or stream.status}')

    def destroy(self) -> None:
        self._node.destroy_subscription(self._sub)
        self._node.destroy_publisher(self._question_pub.publisher)
        self._node.destroy_client(self._ask)
        self._node.destroy_client(self._edge_state)
        self._action.destroy()
        if self._own_executor is not None:
            self._own_executor.shutdown()
