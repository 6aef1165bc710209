# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""EdgeVlmClient: the small Python API robot code uses to talk to a running edgevlm_ros graph.

    rclpy.init()
    node = rclpy.create_node('my_robot')
    vlm = EdgeVlmClient(node)                      # namespace='robot1' for a namespaced graph
    vlm.set_question('Is the path ahead clear?')   # every later step asks this
    answer = vlm.ask('What is the person holding?', timeout_s=10.0)   # one-off, newest frame
    latest = vlm.latest_answer()                    # newest streamed Answer (or None)

`ask` and `wait_for_answer` spin the given node (through its executor, or a private one) until
done, like nav2's BasicNavigator: call them from a script, not from inside a callback of an
executor that is spinning that node. Inside a spinning node use `ask_async` and the answer stream.
"""

from collections import deque
import time

from edgevlm_msgs.msg import Answer
from edgevlm_msgs.srv import Ask
import numpy as np
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import Image
from std_msgs.msg import String

from edgevlm_ros.ros.conversions import rgb_to_image
from edgevlm_ros.ros.qos import QUESTION, RESULTS

# Answers kept for answers(): a bound, not a log.
RECENT_ANSWERS = 100


class EdgeVlmClient:
    """Asks questions and reads answers of an edgevlm_ros graph through one rclpy node."""

    def __init__(self, node: Node, namespace: str = '') -> None:
        self._node = node
        prefix = f"/{namespace.strip('/')}/" if namespace.strip('/') else ''
        self._recent: deque[Answer] = deque(maxlen=RECENT_ANSWERS)
        self._sub = node.create_subscription(Answer, f'{prefix}edgevlm/answer',
                                             self._on_answer, RESULTS)
        self._question_pub = node.create_publisher(String, f'{prefix}edgevlm/question', QUESTION)
        self._ask = node.create_client(Ask, f'{prefix}edgevlm/ask')
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

    def ask(self, question: str, image: np.ndarray | Image | None = None,
            timeout_s: float = 30.0) -> Answer:
        """Ask and wait; raises TimeoutError, or RuntimeError with the node's reason."""
        end = time.monotonic() + timeout_s
        while not self._ask.service_is_ready():
            if time.monotonic() > end:
                raise TimeoutError('edgevlm/ask is not available (is edge_svlm_node running?)')
            self._spin_once(0.05)
        future = self.ask_async(question, image)
        while not future.done() and time.monotonic() < end:
            self._spin_once(0.05)
        if not future.done():
            future.cancel()
            raise TimeoutError(f'no answer to {question!r} within {timeout_s} s')
        response = future.result()
        if not response.success:
            raise RuntimeError(f'edge_svlm could not answer: {response.message}')
        return response.answer

    def destroy(self) -> None:
        self._node.destroy_subscription(self._sub)
        self._node.destroy_publisher(self._question_pub)
        self._node.destroy_client(self._ask)
        if self._own_executor is not None:
            self._own_executor.shutdown()
