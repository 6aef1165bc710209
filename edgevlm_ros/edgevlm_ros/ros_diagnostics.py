# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Periodic node status on /diagnostics: every counter and gauge a node keeps, as key/values."""

from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from edgevlm_ros.core.stats import Counters


class StatusReporter:
    """Publishes one DiagnosticStatus named after the node, with its counters and gauges."""

    def __init__(self, node: Node, counters: Counters, period_s: float = 1.0,
                 gauges: Callable[[], dict[str, object]] | None = None) -> None:
        self._node = node
        self._counters = counters
        self._gauges = gauges
        self._pub = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._timer = node.create_timer(period_s, self.publish)

    def publish(self) -> None:
        values = {k: str(v) for k, v in self._counters.as_dict().items()}
        if self._gauges is not None:
            values.update({k: str(v) for k, v in self._gauges().items()})
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK, name=self._node.get_fully_qualified_name(),
            message='running', hardware_id='edgevlm_ros',
            values=[KeyValue(key=k, value=v) for k, v in sorted(values.items())])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(msg)

    def destroy(self) -> None:
        self._timer.cancel()
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._pub)
