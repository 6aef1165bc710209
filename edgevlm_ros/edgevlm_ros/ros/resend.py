# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Sending again what discovery can lose: a topic's newest state, an idempotent service request.

Discovery lists an endpoint before both of its sides have matched, and what is sent in between
is lost: a message to a reader that matched a moment later, a service's answer to a client whose
answer reader it has not matched yet.
"""

import time
from typing import Any

from rclpy.client import Client
from rclpy.event_handler import PublisherEventCallbacks, QoSPublisherMatchedInfo
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.task import Future


class ResendOnMatch:
    """
    Publishes like a plain publisher, and sends its newest message again when a reader matches.

    The camera's question reader is volatile, so that any publisher reaches it (a plain
    `ros2 topic pub` included): a volatile reader gets no history, so a restarted camera would
    ask its `question` parameter until the question is published again. Every reader matched
    at that moment gets the message again; a reader takes a repeat as no change. Driven by the
    publisher's matched event: it is sent from the node's executor, while the node spins.
    """

    def __init__(self, node: Node, msg_type: Any, topic: str, qos: QoSProfile) -> None:
        self._newest: Any = None
        self.publisher = node.create_publisher(
            msg_type, topic, qos, event_callbacks=PublisherEventCallbacks(matched=self._matched))

    def publish(self, msg: Any) -> None:
        self._newest = msg
        self.publisher.publish(msg)

    def _matched(self, info: QoSPublisherMatchedInfo) -> None:
        if info.current_count_change > 0 and self._newest is not None:
            self.publisher.publish(self._newest)


class ResendingCall:
    """
    One idempotent service request, sent again while it is unanswered.

    The first resend comes `first_wait_s` after the send, each later one `backoff` times as
    long after the one before it (a request that is merely slow costs at most a repeat or two).
    Poll `done()`; it resends when one is due. The node must be spun between polls (by another
    thread, or by the caller).
    """

    def __init__(self, client: Client, request: Any, first_wait_s: float,
                 backoff: float = 2.0) -> None:
        self._client, self._request, self._backoff = client, request, backoff
        self._wait_s = first_wait_s
        self.sent = 0
        self._send()

    def _send(self) -> None:
        self._future: Future = self._client.call_async(self._request)
        self._sent_at = time.monotonic()
        self.sent += 1

    def done(self) -> bool:
        if self._future.done():
            return True
        if time.monotonic() - self._sent_at > self._wait_s:
            self._client.remove_pending_request(self._future)
            self._wait_s *= self._backoff
            self._send()
        return False

    def result(self) -> Any:
        return self._future.result()

    def cancel(self) -> None:
        """Stop waiting (a late answer is dropped)."""
        self._client.remove_pending_request(self._future)
