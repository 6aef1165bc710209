# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""ros/desk.py: the companion node that serves blocking goals and requests beside a node."""

from edgevlm_ros.ros.desk import Desk
import pytest
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
