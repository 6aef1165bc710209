# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Periodic node status on /diagnostics: every counter and gauge a node keeps, as key/values.

Besides the node's own values, each status says how many endpoints every one of the node's topics
has matched (``matched_publishers:<topic>`` for a subscription, ``matched_subscribers:<topic>``
for a publisher). The graph can list a node before its readers and writers are matched, and
messages sent in between are lost: these keys tell a supervisor (the replay evaluation, a launch
check) when a link really carries data.
"""

from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
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
        # Steady time, not the node's clock: a simulated clock that is paused (a replay before
        # its first frame) must not silence the node's health.
        self._timer = node.create_timer(period_s, self.publish,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))

    def publish(self) -> None:
        values = {k: str(v) for k, v in self._counters.as_dict().items()}
        if self._gauges is not None:
            values.update({k: str(v) for k, v in self._gauges().items()})
        values.update(matched_endpoints(self._node))
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


# Topics every node has; their matching says nothing about the node's own data flow.
_INFRASTRUCTURE = ('/diagnostics', '/rosout', '/parameter_events', '/clock')


def matched_endpoints(node: Node) -> dict[str, str]:
    """``matched_publishers:<topic>`` / ``matched_subscribers:<topic>`` for the node's topics.

    Topics are named relative to the node's namespace, as the node's code names them.
    """
    prefix = node.get_namespace().rstrip('/') + '/'
    values = {}
    for kind, endpoints, count in (
            ('matched_publishers', node.subscriptions, 'get_publisher_count'),
            ('matched_subscribers', node.publishers, 'get_subscription_count')):
        for endpoint in endpoints:
            topic = endpoint.topic_name
            if topic in _INFRASTRUCTURE:
                continue
            name = topic[len(prefix):] if topic.startswith(prefix) else topic
            values[f'{kind}:{name}'] = str(getattr(endpoint, count)())
    return values
