# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Each strategy of DESIGN §3 on the same graph: where its answers come from and what they use.

Named for the strategies, not a module: each runs through the whole launched graph (the rules
are core.edge_step's, unit-tested in test_core_edge_step.py).
"""

from edgevlm_msgs.msg import Answer, CloudResponse
from edgevlm_ros.ros.qos import RESULTS
import pytest

pytestmark = pytest.mark.ros


def _ok(cloud):
    return [c for c in cloud if c.status == CloudResponse.STATUS_OK]


def test_edge_only_never_asks_the_cloud_nor_uses_cloud_context(graph, probe):
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    cloud = probe.listen(CloudResponse, 'edgevlm/cloud_response', RESULTS)
    graph.launch(use_frame_source='true', strategy='edge_only')
    assert probe.until(lambda: len(answers) >= 5, 120), graph.log('edge_svlm')
    assert probe.until(lambda: len(cloud) >= 3, 30)
    assert all(c.status == CloudResponse.STATUS_DROPPED and 'strategy' in c.error for c in cloud)
    assert all(a.source == Answer.SOURCE_EDGE and a.replaced_turns == 0
               and not a.focus_applied and a.newest_cloud_step == -1 for a in answers)
    assert max(a.history_turns for a in answers) >= 2, 'the edge keeps its own history'


def _heard_since_first_response(answers, cloud, step_of=lambda a: a.step_id):
    """
    Answers about steps after the first OK CloudResponse the probe heard.

    The probe matches the bridge's (volatile) publisher some time after the graph starts, so it
    can miss the first responses that the edge did get; every later one reaches it (reliable,
    and with a fixed network delay responses go out in step order).
    """
    ok = _ok(cloud)
    if not ok:
        return []
    first = min(c.step_id for c in ok)
    return [a for a in answers if step_of(a) >= first]


def test_cloud_only_answers_exactly_when_the_cloud_does(graph, probe):
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    cloud = probe.listen(CloudResponse, 'edgevlm/cloud_response', RESULTS)
    graph.launch(use_frame_source='true', strategy='cloud_only', network_profile='fixed:200')
    assert probe.until(lambda: len(_heard_since_first_response(answers, cloud)) >= 3, 120), (
        graph.log('edge_svlm'))
    got = _heard_since_first_response(answers, cloud)
    # The Answer (from the edge) and its CloudResponse (from the bridge) reach the probe on two
    # topics in either order: wait for the responses of the answered steps.
    assert probe.until(lambda: {a.step_id for a in got} <= {c.step_id for c in _ok(cloud)}, 30)
    by_step = {c.step_id: c for c in _ok(cloud)}
    for a in got:
        assert a.source == Answer.SOURCE_CLOUD
        assert a.answer == by_step[a.step_id].answer
        assert a.latency_ms >= 200  # an answer is as late as its round trip


def test_cloud_stale_reuses_the_newest_cloud_answer_for_every_step(graph, probe):
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    cloud = probe.listen(CloudResponse, 'edgevlm/cloud_response', RESULTS)
    graph.launch(use_frame_source='true', strategy='cloud_stale', network_profile='fixed:1500')

    def stale():
        return _heard_since_first_response(
            [a for a in answers if a.source == Answer.SOURCE_CLOUD], cloud,
            step_of=lambda a: a.newest_cloud_step)

    assert probe.until(lambda: len(stale()) >= 3, 180), graph.log('edge_svlm')
    got = stale()
    assert probe.until(
        lambda: {a.newest_cloud_step for a in got} <= {c.step_id for c in _ok(cloud)}, 30)
    by_step = {c.step_id: c for c in _ok(cloud)}
    for a in got:
        assert a.newest_cloud_step < a.step_id, 'a stale answer is about an older frame'
        assert a.answer == by_step[a.newest_cloud_step].answer
    # Before the first cloud answer lands, the edge answers instead of leaving the robot with
    # none; from then on every step reuses the cloud.
    first_stale = min(a.step_id for a in answers if a.source == Answer.SOURCE_CLOUD)
    edge = [a.step_id for a in answers if a.source == Answer.SOURCE_EDGE]
    assert edge and max(edge) < first_stale


def test_offload_takes_the_cloud_answer_when_the_round_trip_fits_the_deadline(graph, probe):
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    graph.launch(use_frame_source='true', strategy='offload')
    assert probe.until(lambda: sum(a.source == Answer.SOURCE_CLOUD for a in answers) >= 2, 120), (
        graph.log('edge_svlm'))
    offloaded = [a for a in answers if a.source == Answer.SOURCE_CLOUD]
    assert all(a.newest_cloud_step == a.step_id for a in offloaded)
