# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""ros/desk.py: the companion node that serves blocking goals and requests beside a node."""

from edgevlm_ros.ros.desk import Desk
import pytest
from rcl_interfaces.msg import ParameterType, ParameterValue
import rclpy

pytestmark = pytest.mark.ros


def test_the_companion_node_keeps_its_own_name_under_a_launch_node_name_rule():
    # A launch file names a node with a global `__node:=` rule. It must not rename the desk's
    # node too: two nodes of one name in the graph, and rosout's "Publisher already registered"
    # warning at every start of the edge and bridge nodes.
    ctx = rclpy.Context()
    rclpy.init(args=['node', '--ros-args', '-r', '__node:=edge_left', '-r', '__ns:=/robot1',
                     '-r', 'edgevlm/ask:=edgevlm/ask_left'], context=ctx)
    try:
        node = rclpy.create_node('edge_svlm', context=ctx)
        desk = Desk(node, 'ask')
        try:
            assert node.get_fully_qualified_name() == '/robot1/edge_left'
            assert desk.node.get_fully_qualified_name() == '/robot1/edge_left_ask'
            # The launch file's other rules still reach what the desk serves.
            assert desk.node.resolve_service_name('edgevlm/ask') == '/robot1/edgevlm/ask_left'
        finally:
            desk.close()
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_a_request_that_raises_is_answered_logged_and_counted_and_the_desk_goes_on(probe):
    # rclpy re-raises a callback's exception in the thread that spins the executor: once, that
    # ended the desk's spin quietly, and every service on it stayed silent from then on.
    from edgevlm_ros.core.stats import Counters
    from rcl_interfaces.srv import GetParameters

    calls = []

    def serve(request, response):
        calls.append(request.names[0])
        if request.names[0] == 'boom':
            raise KeyError('boom')
        response.values = [ParameterValue(type=ParameterType.PARAMETER_STRING,
                                          string_value='fine')]
        return response

    counters = Counters()
    desk = Desk(probe.node, 'ask', counters=counters)
    try:
        desk.add_service(GetParameters, 'desk_test', serve)
        client = probe.node.create_client(GetParameters, 'desk_test')
        assert probe.until(client.service_is_ready, 30)
        failed = client.call_async(GetParameters.Request(names=['boom']))
        assert probe.until(failed.done, 30)
        assert failed.result().values == []  # the default response, not silence
        assert counters.get('desk_errors') == 1
        answered = client.call_async(GetParameters.Request(names=['fine']))
        assert probe.until(answered.done, 30)
        assert [v.string_value for v in answered.result().values] == ['fine']
        assert calls == ['boom', 'fine'] and counters.get('desk_errors') == 1
    finally:
        desk.close()
