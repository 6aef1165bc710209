# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""EdgeVlmClient against real nodes: one-off questions, the answer stream, the question topic."""

from edgevlm_msgs.msg import Step
from edgevlm_ros.client import EdgeVlmClient
from edgevlm_ros.ros.conversions import rgb_to_image
from edgevlm_ros.ros.qos import RESULTS, STEP_PUBLISHER
import numpy as np
import pytest

pytestmark = pytest.mark.ros


def test_client_asks_reads_the_stream_and_sets_the_question(graph, probe):
    graph.node('edge_svlm_node', 'edge_svlm')
    graph.node('camera_node', 'camera', {'step_rate_hz': 100.0})
    steps = probe.listen(Step, 'edgevlm/step', RESULTS)
    vlm = EdgeVlmClient(probe.node)
    try:
        vlm.wait_until_active(timeout_s=60)
        answer = vlm.ask('Is the path clear?', np.full((48, 64, 3), 30, np.uint8), timeout_s=60)
        assert answer.answer.strip() and answer.question == 'Is the path clear?'
        with pytest.raises(RuntimeError, match='no frame'):
            vlm.ask('And now?', timeout_s=30)  # no step yet: the node says why
        with pytest.raises(ValueError):
            vlm.set_question('  ')

        # The stream: a Step reaches the edge, its Answer reaches the client.
        pub = probe.node.create_publisher(Step, 'edgevlm/step', STEP_PUBLISHER)
        assert probe.until(lambda: pub.get_subscription_count() >= 1, 30)
        got = None
        for step_id in range(5, 65):  # as a camera would: one may be missed just after matching
            msg = Step(step_id=step_id, question='What is ahead?')
            msg.header.stamp = probe.node.get_clock().now().to_msg()
            msg.image = rgb_to_image(np.full((48, 64, 3), 90, np.uint8), msg.header)
            pub.publish(msg)
            got = vlm.wait_for_answer(newer_than_step=4, timeout_s=1.0)
            if got is not None:
                break
        assert got is not None and got.step_id >= 5 and vlm.answers()[-1] == got

        # The question reaches camera_node: its next Step asks it.
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        cam = probe.node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
        assert probe.until(lambda: cam.get_subscription_count() > 0, 30)
        vlm.set_question('Where is the door?')

        def frame():
            m = rgb_to_image(np.full((24, 32, 3), 50, np.uint8), msg.header)
            m.header.stamp = probe.node.get_clock().now().to_msg()
            return m
        for _ in range(200):
            cam.publish(frame())
            if probe.until(lambda: any(s.question == 'Where is the door?' for s in steps), 0.2):
                break
        assert any(s.question == 'Where is the door?' for s in steps)
    finally:
        vlm.destroy()


def test_a_camera_that_starts_after_the_question_was_set_is_told_it(graph, probe):
    # The camera's question reader is volatile: a camera that (re)starts after the client set
    # the question gets it because the client sends it again when the camera matches.
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    steps = probe.listen(Step, 'edgevlm/step', RESULTS)
    vlm = EdgeVlmClient(probe.node)
    try:
        vlm.set_question('Where is the door?')  # no camera yet: nobody gets it now
        graph.node('camera_node', 'camera', {'step_rate_hz': 100.0,
                                             'question': 'Nobody asked this'})
        cam = probe.node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
        assert probe.until(lambda: cam.get_subscription_count() > 0, 30)
        for _ in range(200):
            header = Step().header
            header.stamp = probe.node.get_clock().now().to_msg()
            cam.publish(rgb_to_image(np.full((24, 32, 3), 50, np.uint8), header))
            if probe.until(lambda: any(s.question == 'Where is the door?' for s in steps), 0.2):
                break
        assert any(s.question == 'Where is the door?' for s in steps)
        assert graph.log('camera').count('question is now') == 1
    finally:
        vlm.destroy()
