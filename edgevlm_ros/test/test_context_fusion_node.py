# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""context_fusion_node alone: what a cloud answer becomes (ContextUpdate and FocusMask)."""

import time

from diagnostic_msgs.msg import DiagnosticArray
from edgevlm_msgs.msg import CloudResponse, ContextUpdate, FocusMask, Region, Step
from edgevlm_ros.ros.conversions import rgb_to_image, s_to_stamp
from edgevlm_ros.ros.qos import RESULTS
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter as NodeParameter

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
    # A reliable publisher that has just matched can still lose its first messages (discovery
    # completes on the two sides at different times): repeat frame 0 until the node has it.
    probe.listen(DiagnosticArray, '/diagnostics', 10)

    def has_frame() -> bool:
        return int(probe.diagnostics('context_fusion').get('frames_received', 0)) >= 1

    end = time.monotonic() + 30
    while not has_frame() and time.monotonic() < end:
        steps.publish(_step(probe, 0))
        probe.until(has_frame, 1.5)
    assert has_frame(), 'the fusion node never took a frame'
    for i in (1, 2):
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


@pytest.fixture
def fusion():
    """The fusion node in this process, its callbacks called directly; a probe hears its output."""
    from conftest import Probe
    from edgevlm_ros.context_fusion_node import ContextFusionNode
    import rclpy

    rclpy.init()
    node = probe = None
    try:
        node = ContextFusionNode()
        probe = Probe(rclpy.utilities.get_default_context(), 'fusion_probe')
        yield node, probe
    finally:
        if probe is not None:
            probe.close()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def _step_at(step_id: int, stamp_s: float) -> Step:
    msg = Step(step_id=step_id, question='What is ahead?')
    msg.header.stamp = s_to_stamp(stamp_s)
    msg.image = rgb_to_image(_frame(step_id), msg.header)
    return msg


def _answer(step_id: int, stamp_s: float) -> CloudResponse:
    msg = CloudResponse(step_id=step_id, question='What is ahead?', answer=LONG_ANSWER,
                        status=CloudResponse.STATUS_OK, regions=[
                            Region(label='red cup', score=0.9, x_min=0.4, y_min=0.4, x_max=0.6,
                                   y_max=0.7)])
    msg.header.stamp = s_to_stamp(stamp_s)
    return msg


def test_masks_never_get_younger_than_their_source_and_restarts_and_flags_stop_them(fusion):
    node, probe = fusion
    masks = probe.listen(FocusMask, 'edgevlm/focus_mask', RESULTS)
    for i in range(3):
        node._on_step(_step_at(i, 100.0 + 0.1 * i))
    # The answer's stamp is later than the frames' (a clock that stepped back): age 0, not < 0.
    node._on_cloud(_answer(0, 100.5))
    assert probe.until(lambda: masks, 30)
    (region,) = masks[0].regions
    assert masks[0].target_step_id == 2 and masks[0].age_s >= 0.0
    assert region.x_max - region.x_min >= 0.2 and region.y_max - region.y_min >= 0.3  # not shrunk

    # The camera restarts: frames and boxes of the old run are forgotten.
    node._on_step(_step_at(0, 101.0))
    assert node.counters.get('step_id_resets') == 1
    published = node.counters.get('focus_masks_published')
    node._on_step(_step_at(1, 101.1))
    assert node.counters.get('focus_masks_published') == published  # nothing left to carry

    # Each module has its own switch.
    node.set_parameters([NodeParameter('focus.enabled', value=False),
                         NodeParameter('replacement.enabled', value=False)])
    updates = node.counters.get('context_updates_published')
    node._on_cloud(_answer(1, 101.1))
    assert node.counters.get('context_updates_published') == updates
    assert node.counters.get('boxes_received') == 1  # only the first answer's
    node.set_parameters([NodeParameter('focus.enabled', value=True)])
    node._on_cloud(_answer(1, 101.1))
    assert node.counters.get('boxes_received') == 2
    assert node.counters.get('context_updates_published') == updates


def test_a_newer_answer_without_boxes_clears_the_focus(fusion):
    node, probe = fusion
    masks = probe.listen(FocusMask, 'edgevlm/focus_mask', RESULTS)
    for i in range(3):
        node._on_step(_step_at(i, 100.0 + 0.1 * i))
    node._on_cloud(_answer(1, 100.1))
    assert probe.until(lambda: masks, 30) and masks[-1].regions
    # Step 2's answer grounds nothing (the object left): the edge is told to stop focusing.
    empty = _answer(2, 100.2)
    empty.answer, empty.regions = '0', []
    node._on_cloud(empty)
    assert probe.until(lambda: not masks[-1].regions, 30)
    assert masks[-1].source_step_id == 2 and node.counters.get('focus_cleared') == 1
    published = node.counters.get('focus_masks_published')
    node._on_step(_step_at(3, 100.3))
    assert node.counters.get('focus_masks_published') == published  # nothing carried any more
    # An older answer without boxes changes nothing; the next one with boxes focuses again.
    node._on_cloud(_answer(3, 100.3))
    stale = _answer(1, 100.1)
    stale.regions = []
    node._on_cloud(stale)
    assert node.counters.get('focus_cleared') == 1
    assert node.counters.get('stale_boxes_ignored') == 1


def test_a_response_with_hundreds_of_boxes_carries_only_the_best_scoring_ones(fusion):
    from edgevlm_ros.context_fusion_node import MAX_TRACKED_BOXES

    node, probe = fusion
    masks = probe.listen(FocusMask, 'edgevlm/focus_mask', RESULTS)
    for i in range(2):
        node._on_step(_step_at(i, 100.0 + 0.1 * i))
    msg = _answer(0, 100.0)
    msg.regions = [Region(label=f'thing {k}', score=k / 500, x_min=0.3, y_min=0.3, x_max=0.5,
                          y_max=0.5) for k in range(500)]
    node._on_cloud(msg)
    assert probe.until(lambda: masks, 30)
    labels = {r.label for r in masks[0].regions}
    assert len(labels) == MAX_TRACKED_BOXES and 'thing 499' in labels and 'thing 0' not in labels
    assert node.counters.get('boxes_over_cap') == 500 - MAX_TRACKED_BOXES
