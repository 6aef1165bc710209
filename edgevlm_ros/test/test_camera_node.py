# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""camera_node on bad input: one clear log line and a counter; it keeps serving, loses nothing."""

import time

from diagnostic_msgs.msg import DiagnosticArray
from edgevlm_msgs.msg import Step
from edgevlm_ros.core.images import encode_jpeg
from edgevlm_ros.ros.qos import LATCHED, RESULTS
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

pytestmark = pytest.mark.ros


def _image(encoding: str = 'rgb8', h: int = 48, w: int = 64) -> Image:
    msg = Image(height=h, width=w, encoding=encoding, step=w * 3)
    msg.data = np.full((h, w, 3), 120, np.uint8).tobytes()
    return msg


def _publish_until(probe, pub, make_msg, predicate, timeout_s: float = 30.0) -> bool:
    """Publish fresh messages (best-effort camera QoS) until the predicate holds."""
    import time

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        pub.publish(make_msg())
        if probe.until(predicate, 0.3):
            return True
    return False


def _stamped(msg, probe):
    msg.header.stamp = probe.node.get_clock().now().to_msg()
    return msg


def test_wrong_encoding_and_corrupt_jpeg_are_counted_and_the_camera_keeps_serving(graph, probe):
    steps = probe.listen(Step, 'edgevlm/step', RESULTS)
    probe.listen(DiagnosticArray, '/diagnostics', 10)
    graph.node('camera_node', 'camera', {'step_rate_hz': 100.0})
    pub = probe.node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    assert probe.until(lambda: pub.get_subscription_count() > 0, 30)

    assert _publish_until(probe, pub, lambda: _stamped(_image('yuv444_weird'), probe),
                          lambda: int(probe.diagnostics('camera').get('bad_image', 0)) >= 1)
    assert not steps, 'a frame that cannot be decoded must not become a step'
    assert 'yuv444_weird' in graph.log('camera')
    assert _publish_until(probe, pub, lambda: _stamped(_image('rgb8'), probe), lambda: steps)
    assert steps[0].image.encoding == 'rgb8'
    # Ids start at the camera's start time in ms (so a restarted camera goes on with larger ones).
    assert abs(steps[0].step_id - time.time() * 1000) < 600_000


def test_corrupt_compressed_frame_is_counted_and_the_next_good_one_is_used(graph, probe):
    steps = probe.listen(Step, 'edgevlm/step', RESULTS)
    probe.listen(DiagnosticArray, '/diagnostics', 10)
    graph.node('camera_node', 'camera', {'input_transport': 'compressed', 'step_rate_hz': 100.0})
    pub = probe.node.create_publisher(CompressedImage, 'camera/image_raw/compressed',
                                      qos_profile_sensor_data)
    assert probe.until(lambda: pub.get_subscription_count() > 0, 30)

    def corrupt():
        msg = CompressedImage(format='jpeg')
        msg.data = encode_jpeg(np.zeros((32, 32, 3), np.uint8))[:40] + b'\x00garbage'
        return _stamped(msg, probe)

    def good():
        msg = CompressedImage(format='jpeg')
        msg.data = encode_jpeg(np.full((32, 48, 3), 200, np.uint8))
        return _stamped(msg, probe)

    assert _publish_until(probe, pub, corrupt,
                          lambda: int(probe.diagnostics('camera').get('bad_image', 0)) >= 1)
    assert not steps
    assert _publish_until(probe, pub, good, lambda: steps)
    assert (steps[0].image.width, steps[0].image.height) == (48, 32)


def test_empty_question_is_ignored_and_the_previous_question_kept(graph, probe):
    steps = probe.listen(Step, 'edgevlm/step', RESULTS)
    probe.listen(DiagnosticArray, '/diagnostics', 10)
    graph.node('camera_node', 'camera', {'step_rate_hz': 100.0, 'question': 'Is the path clear?'})
    questions = probe.node.create_publisher(String, 'edgevlm/question', LATCHED)
    pub = probe.node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    assert probe.until(lambda: questions.get_subscription_count() > 0, 30)
    questions.publish(String(data='   '))
    assert probe.until(
        lambda: int(probe.diagnostics('camera').get('empty_question', 0)) >= 1, 30)
    assert _publish_until(probe, pub, lambda: _stamped(_image(), probe), lambda: steps)
    assert steps[-1].question == 'Is the path clear?'

    questions.publish(String(data='What is the person holding?'))
    assert _publish_until(probe, pub, lambda: _stamped(_image(), probe),
                          lambda: steps[-1].question == 'What is the person holding?')


def test_a_new_camera_holds_its_first_step_until_a_subscriber_has_matched(graph, probe):
    # A respawned camera's first Step would be lost to an edge that has not matched the new
    # publisher yet: frames are dropped (counted) until something subscribes to edgevlm/step.
    probe.listen(DiagnosticArray, '/diagnostics', 10)
    graph.node('camera_node', 'camera', {'step_rate_hz': 100.0, 'first_step_wait_s': 10.0})
    pub = probe.node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    assert probe.until(lambda: pub.get_subscription_count() > 0, 30)
    assert _publish_until(
        probe, pub, lambda: _stamped(_image(), probe),
        lambda: int(probe.diagnostics('camera').get('frames_before_subscriber', 0)) >= 3)
    first_id = int(probe.diagnostics('camera')['next_step_id'])
    assert 'steps_published' not in probe.diagnostics('camera')

    steps = probe.listen(Step, 'edgevlm/step', RESULTS)
    assert _publish_until(probe, pub, lambda: _stamped(_image(), probe), lambda: steps)
    assert steps[0].step_id == first_id, 'the first Step went out before anyone listened'


def _set(probe, node_name: str, name: str, value: ParameterValue):
    client = probe.node.create_client(SetParameters, f'/{node_name}/set_parameters')
    assert probe.until(lambda: client.service_is_ready(), 30)
    future = client.call_async(SetParameters.Request(
        parameters=[Parameter(name=name, value=value)]))
    assert probe.until(future.done, 30)
    return future.result().results[0]


def test_invalid_parameter_is_rejected_with_a_reason_and_the_node_keeps_running(graph, probe):
    steps = probe.listen(Step, 'edgevlm/step', RESULTS)
    graph.node('camera_node', 'camera', {'step_rate_hz': 100.0})
    result = _set(probe, 'camera', 'step_rate_hz',
                  ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=-1.0))
    assert not result.successful and 'step_rate_hz' in result.reason
    result = _set(probe, 'camera', 'question',
                  ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=''))
    assert not result.successful and 'empty' in result.reason
    pub = probe.node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    assert _publish_until(probe, pub, lambda: _stamped(_image(), probe), lambda: steps)
    assert graph.popen('camera').poll() is None


def test_invalid_parameter_at_start_fails_with_one_clear_line(graph):
    graph.node('camera_node', 'camera', {'max_side': 5})
    code = graph.popen('camera').wait(30)
    assert code == 2
    log = graph.log('camera')
    assert 'cannot start' in log and 'max_side' in log and 'Traceback' not in log
