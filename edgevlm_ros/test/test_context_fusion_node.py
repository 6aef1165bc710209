# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""context_fusion_node alone: what a cloud answer becomes (ContextUpdate and FocusMask)."""

import time

from edgevlm_msgs.msg import CloudResponse, ContextUpdate, FocusMask, Region, Step
from edgevlm_ros.ros_conversions import rgb_to_image
from edgevlm_ros.ros_qos import RESULTS
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters

pytestmark = pytest.mark.ros

LONG_ANSWER = ('Sure! The path ahead is clear. A person stands near the door on the right. '
               'Further back there is a shelf with boxes, and a red cup lies on the floor.')


def _frame(step_id: int) -> np.ndarray:
    """A textured scene moving 4 px right per step, so the boxes have something to follow."""
    rng = np.random.default_rng(7)
    scene = rng.integers(0, 255, (120, 400, 3), dtype=np.uint8)
    x = 100 - 4 * step_id
    return np.ascontiguousarray(scene[:, x:x + 160])


def _step(probe, step_id: int) -> Step:
    msg = Step(step_id=step_id, question='What is ahead?')
    msg.header.stamp = probe.node.get_clock().now().to_msg()
    msg.header.frame_id = 'camera'
    msg.image = rgb_to_image(_frame(step_id), msg.header)
    return msg


def _set(probe, name: str, value: str) -> bool:
    client = probe.node.create_client(SetParameters, '/context_fusion/set_parameters')
    assert probe.until(client.service_is_ready, 30)
    future = client.call_async(SetParameters.Request(parameters=[Parameter(
        name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING,
                                        string_value=value))]))
    assert probe.until(future.done, 30)
    return future.result().results[0].successful


def test_cloud_answer_becomes_a_compressed_update_naming_the_grounded_objects_and_a_mask(
        graph, probe):
    updates = probe.listen(ContextUpdate, 'edgevlm/context_update', RESULTS)
    masks = probe.listen(FocusMask, 'edgevlm/focus_mask', RESULTS)
    graph.node('context_fusion_node', 'context_fusion', {'replacement.max_tokens': 12})
    steps = probe.node.create_publisher(Step, 'edgevlm/step', RESULTS)
    cloud = probe.node.create_publisher(CloudResponse, 'edgevlm/cloud_response', RESULTS)
    assert probe.until(lambda: steps.get_subscription_count() > 0
                       and cloud.get_subscription_count() > 0, 30)
    for i in range(3):
        steps.publish(_step(probe, i))
    response = CloudResponse(step_id=0, question='What is ahead?', answer=LONG_ANSWER,
                             status=CloudResponse.STATUS_OK, regions=[
                                 Region(label='red cup', score=0.9, x_min=0.4, y_min=0.4,
                                        x_max=0.6, y_max=0.7)])
    response.header.stamp = probe.node.get_clock().now().to_msg()
    # The fusion node may still be taking the first frames: resend until its update comes.
    end = time.monotonic() + 30
    while not updates and time.monotonic() < end:
        cloud.publish(response)
        probe.until(lambda: updates, 1.0)
    assert updates, 'no ContextUpdate'
    text = updates[0].text
    assert updates[0].step_id == 0 and updates[0].question == 'What is ahead?'
    assert not text.startswith('Sure')  # filler is dropped
    assert 'path ahead is clear' in text and 'red cup' in text  # the answer and its object
    assert len(text.split()) <= 12

    # The box drawn on frame 0 is carried to the newest frame, moved with the scene.
    steps.publish(_step(probe, 3))
    assert probe.until(lambda: any(m.target_step_id == 3 for m in masks), 30)
    mask = next(m for m in masks if m.target_step_id == 3)
    assert mask.source_step_id == 0 and len(mask.regions) == 1
    centre = (mask.regions[0].x_min + mask.regions[0].x_max) / 2
    assert centre == pytest.approx(0.5 + 3 * 4 / 160, abs=0.03)

    # Plain truncation, chosen at run time, keeps the filler and loses the object.
    assert _set(probe, 'replacement.compression', 'truncate')
    assert not _set(probe, 'replacement.compression', 'summarise')
    updates.clear()
    end = time.monotonic() + 30
    while not updates and time.monotonic() < end:
        cloud.publish(response)
        probe.until(lambda: updates, 1.0)
    assert updates and updates[0].text.startswith('Sure!') and 'red cup' not in updates[0].text
