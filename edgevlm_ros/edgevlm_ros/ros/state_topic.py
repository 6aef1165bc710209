# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""A publisher of state (the current question) that a reader starting later still gets."""

from typing import Any

from rclpy.event_handler import PublisherEventCallbacks, QoSPublisherMatchedInfo
from rclpy.node import Node
from rclpy.qos import QoSProfile


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
