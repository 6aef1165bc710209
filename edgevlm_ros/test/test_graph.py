# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The whole graph, launched from the package's launch file as real processes on a test domain.

Named for the graph, not a module: what is tested is the nodes together (steps, cloud answers,
context and focus reaching the edge), as the launch file starts them.
"""

import socket
import sys

from edgevlm_msgs.msg import Answer, CloudResponse, ContextUpdate, FocusMask, Step
from edgevlm_ros.ros.conversions import stamp_to_s
from edgevlm_ros.ros.qos import RESULTS
import pytest

pytestmark = pytest.mark.ros

EVERY_STEP = RESULTS  # reliable, so the probe sees every Step the camera publishes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_answers_carry_step_ids_and_camera_stamps_and_cloud_context_reaches_the_edge(
        graph, probe):
    steps = probe.listen(Step, 'edgevlm/step', EVERY_STEP)
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    cloud = probe.listen(CloudResponse, 'edgevlm/cloud_response', RESULTS)
    updates = probe.listen(ContextUpdate, 'edgevlm/context_update', RESULTS)
    masks = probe.listen(FocusMask, 'edgevlm/focus_mask', RESULTS)
    graph.launch(use_frame_source='true', strategy='edgevlm', network_profile='fixed:300')

    # The edge answers steps, each about the frame its step id names.
    assert probe.until(lambda: len(answers) >= 3, 120), graph.log('edge_svlm')
    stamps = {s.step_id: stamp_to_s(s.header.stamp) for s in steps}
    for a in answers:
        assert a.source == Answer.SOURCE_EDGE
        assert a.strategy == 'edgevlm'
        assert a.answer.strip()
        assert a.step_id in stamps, f'answer for unknown step {a.step_id}'
        assert stamp_to_s(a.header.stamp) == pytest.approx(stamps[a.step_id], abs=1e-6)
        assert a.latency_ms > 0 and a.model_ms > 0
        assert a.latency_ms >= a.model_ms
    assert [s.step_id for s in steps] == list(range(steps[0].step_id, steps[-1].step_id + 1))

    # A cloud answer with boxes becomes a ContextUpdate for its slot and a FocusMask from its step.
    assert probe.until(lambda: any(c.status == CloudResponse.STATUS_OK and c.regions
                                   for c in cloud), 60), graph.log('cloud_bridge')
    first = next(c for c in cloud if c.status == CloudResponse.STATUS_OK and c.regions)
    assert first.round_trip_ms >= 300  # the emulated network is part of the round trip
    assert all(0.0 <= r.x_min < r.x_max <= 1.0 and 0.0 <= r.y_min < r.y_max <= 1.0
               for r in first.regions)
    assert probe.until(lambda: any(u.step_id == first.step_id for u in updates), 30)
    update = next(u for u in updates if u.step_id == first.step_id)
    assert update.text and update.question == first.question
    assert probe.until(lambda: any(m.source_step_id == first.step_id for m in masks), 30)
    mask = next(m for m in masks if m.source_step_id == first.step_id)
    assert mask.target_step_id >= first.step_id and mask.regions

    # A later edge answer reports that it used both.
    def uses_cloud(a: Answer) -> bool:
        return (a.step_id > first.step_id and a.replaced_turns >= 1
                and a.newest_cloud_step >= first.step_id and a.focus_applied
                and a.focus_source_step >= first.step_id)
    assert probe.until(lambda: any(uses_cloud(a) for a in answers), 60), (
        [(a.step_id, a.replaced_turns, a.newest_cloud_step, a.focus_applied)
         for a in answers[-5:]], graph.log('edge_svlm'))
    a = next(a for a in answers if uses_cloud(a))
    assert a.history_turns >= a.replaced_turns
    assert 0.0 <= a.focus_age_s <= 5.0


def test_edge_keeps_answering_when_the_cloud_server_dies(graph, probe):
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    cloud = probe.listen(CloudResponse, 'edgevlm/cloud_response', RESULTS)
    port = _free_port()
    from edgevlm_ros.tooling import launch_runner

    graph.start([launch_runner.Process(
        'lvlm_server',
        [sys.executable, '-m', 'edgevlm_ros.lvlm.server', '--model', 'tiny-cloud',
         '--port', str(port)], env=dict(__import__('os').environ))])
    graph.launch(use_frame_source='true', strategy='edgevlm',
                 cloud_url=f'http://127.0.0.1:{port}/v1')
    assert probe.until(lambda: any(c.status == CloudResponse.STATUS_OK for c in cloud), 120), (
        graph.log('cloud_bridge'), graph.log('lvlm_server'))

    graph.stop('lvlm_server')
    n_cloud = len(cloud)
    failures = (CloudResponse.STATUS_TIMEOUT, CloudResponse.STATUS_HTTP_ERROR)
    assert probe.until(lambda: any(c.status in failures for c in cloud[n_cloud:]), 60), (
        graph.log('cloud_bridge'))
    failed = next(c for c in cloud[n_cloud:] if c.status in failures)
    assert failed.error
    n_answers = len(answers)
    assert probe.until(lambda: len(answers) >= n_answers + 3, 60), graph.log('edge_svlm')
    assert all(a.source == Answer.SOURCE_EDGE for a in answers[n_answers:])
    assert graph.popen('cloud_bridge').poll() is None, 'the bridge must survive the cloud dying'
