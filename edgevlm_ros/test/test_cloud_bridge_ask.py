# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The cloud bridge's Ask action (edgevlm/ask_cloud) over DDS.

A real cloud_bridge process, a real action client in the test, real HTTP to the embedded LVLM
stand-in (the simulated LVLM, paced like a real one with embedded_service_ms) or to the fault
server.
"""

from __future__ import annotations

from collections.abc import Iterator
import time

from action_msgs.msg import GoalStatus
from conftest import Graph, Probe
from diagnostic_msgs.msg import DiagnosticArray
from edgevlm_msgs.action import Ask
from edgevlm_msgs.msg import Answer, CloudResponse, Step
from edgevlm_ros.ros.conversions import rgb_to_image
from edgevlm_ros.ros.qos import RESULTS, STEP_PUBLISHER
from edgevlm_ros.sim.synthworld import WorldSpec
from fault_server import FaultServer
import pytest
from rclpy.action import ActionClient
from sensor_msgs.msg import Image
from std_msgs.msg import Header

pytestmark = pytest.mark.ros

WORLD = 'synth:duration=1,fps=2'
QUESTION = 'Describe the scene'
MODEL = 'fault-vlm'
STEP_ID = 7
# The simulated LVLM's description of the first frame takes ~19 words, spread over this long.
SERVICE_MS = 2500.0
EMBEDDED = {'base_url': 'embedded', 'embedded_model': f'simulated:{WORLD},error=0',
            'embedded_service_ms': SERVICE_MS, 'strategy': 'edge_only',
            'ask.max_in_flight': 1, 'ask.max_queue': 0, 'ask.feedback_chunks': 4,
            'ask.feedback_ms': 300.0}


class Asker:
    """The test's side: an action client, the step publisher, the bridge's diagnostics."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.client = ActionClient(probe.node, Ask, 'edgevlm/ask_cloud')
        self.steps = probe.node.create_publisher(Step, 'edgevlm/step', STEP_PUBLISHER)
        self.cloud = probe.listen(CloudResponse, 'edgevlm/cloud_response', RESULTS)
        probe.listen(DiagnosticArray, '/diagnostics', 10)
        self.stamp = Header(frame_id='camera')
        self.stamp.stamp.sec, self.stamp.stamp.nanosec = 1234, 5678

    def ready(self) -> None:
        assert self.probe.until(lambda: self.client.server_is_ready(), 60)

    def counter(self, name: str) -> int:
        return int(self.probe.diagnostics('cloud_bridge').get(name, 0))

    def publish_step(self, step_id: int = STEP_ID) -> None:
        rgb = next(WorldSpec.parse(WORLD).generate()).rgb
        self.steps.publish(Step(header=self.stamp, step_id=step_id, question='What is ahead?',
                                image=rgb_to_image(rgb, self.stamp)))

    def ensure_step(self) -> None:
        """Publish the step until the bridge has counted it (its /diagnostics say so)."""
        assert self.probe.until(lambda: self.steps.get_subscription_count() > 0, 30)
        end = time.monotonic() + 30
        while self.counter('steps_received') == 0 and time.monotonic() < end:
            self.publish_step()
            self.probe.until(lambda: self.counter('steps_received') > 0, 1.5)
        assert self.counter('steps_received') > 0

    def send(self, goal: Ask.Goal, feedback: list | None = None):
        future = self.client.send_goal_async(
            goal, feedback_callback=(lambda m: feedback.append(m.feedback))
            if feedback is not None else None)
        assert self.probe.until(future.done, 30)
        handle = future.result()
        assert handle.accepted  # the desk accepts every goal and checks it in execute
        return handle

    def result(self, handle, timeout_s: float = 60.0):
        future = handle.get_result_async()
        assert self.probe.until(future.done, timeout_s)
        return future.result()

    def ask(self, **fields: object):
        return self.result(self.send(Ask.Goal(**{'question': QUESTION, 'target': 'cloud',
                                                 **fields})))


@pytest.fixture(scope='class')
def embedded(tmp_path_factory, model_cache) -> Iterator[tuple[Graph, Asker]]:
    """One bridge with the embedded simulated LVLM for a class of tests (gone after them)."""
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    graph = Graph(tmp_path_factory.mktemp('logs'))
    probe = Probe(ctx, 'ask_probe')
    try:
        graph.node('cloud_bridge_node', 'cloud_bridge', EMBEDDED)
        asker = Asker(probe)
        asker.ready()
        yield graph, asker
    finally:
        graph.close()
        probe.close()
        rclpy.try_shutdown(context=ctx)


class TestAskOnTheEmbeddedLvlm:
    """The embedded stand-in streams; its tests share one bridge (it is gone before the next)."""

    def test_bad_goals_are_refused_at_once_with_their_error_code(self, embedded):
        graph, asker = embedded
        R = Ask.Result  # noqa: N806 - the message's constants
        cases = [({'target': 'edge'}, R.UNKNOWN_TARGET), ({'question': '  '}, R.EMPTY_QUESTION),
                 ({'image': Image(width=4, height=2, encoding='rgb8', step=12)}, R.BAD_IMAGE),
                 ({'deadline_s': -1.0}, R.BAD_DEADLINE),
                 ({'max_new_tokens': 100000}, R.BAD_MAX_NEW_TOKENS)]
        for fields, code in cases:
            reply = asker.ask(**fields)
            assert reply.status == GoalStatus.STATUS_ABORTED, fields
            assert (reply.result.error_code, len(reply.result.answers)) == (code, 0), fields
            assert reply.result.message, fields
        assert asker.probe.until(lambda: asker.counter('ask_rejected_unknown_target') == 1, 10)


    def test_an_ask_streams_feedback_and_answers_about_the_newest_step(self, embedded):
        graph, asker = embedded
        asker.ensure_step()
        feedback: list = []
        t0 = time.monotonic()
        # target '' means the answering node: the cloud.
        reply = asker.result(asker.send(Ask.Goal(question=QUESTION), feedback))
        result = reply.result
        assert reply.status == GoalStatus.STATUS_SUCCEEDED, graph.log('cloud_bridge')
        assert (result.error_code, result.endings, result.message) == (Ask.Result.NONE,
                                                                       ['done'], '')
        (answer,) = result.answers
        assert len(answer.answer.split()) >= 5
        assert (answer.step_id, answer.strategy, answer.source) == (STEP_ID, 'ask',
                                                                    Answer.SOURCE_CLOUD)
        assert (answer.header.stamp.sec, answer.header.stamp.nanosec) == (1234, 5678)
        assert 0 < answer.model_ms <= answer.latency_ms <= (time.monotonic() - t0) * 1000.0
        # The text grew in several feedback messages, paced (not one per word), ending in the
        # answer.
        assert 2 <= len(feedback) < len(answer.answer.split()), [f.text for f in feedback]
        assert all(f.source == Answer.SOURCE_CLOUD for f in feedback)
        assert all(b.text.startswith(a.text) and b.tokens > a.tokens
                   for a, b in zip(feedback, feedback[1:]))
        assert feedback[-1].text == answer.answer
        assert asker.probe.until(lambda: asker.counter('ask_answered') >= 1, 10)


    def test_a_cancel_mid_stream_returns_the_partial_marked_cancelled(self, embedded):
        graph, asker = embedded
        asker.ensure_step()
        feedback: list = []
        handle = asker.send(Ask.Goal(question=QUESTION, target='cloud'), feedback)
        assert asker.probe.until(lambda: len(feedback) >= 1, 30), graph.log('cloud_bridge')
        cancel = handle.cancel_goal_async()
        assert asker.probe.until(cancel.done, 10)
        reply = asker.result(handle, 10)
        assert reply.status == GoalStatus.STATUS_CANCELED
        (answer,) = reply.result.answers
        assert reply.result.endings == ['cancelled'] and 'cancel' in reply.result.message
        assert answer.answer and answer.answer.startswith(feedback[0].text)
        assert asker.probe.until(lambda: asker.counter('ask_cancelled') >= 1, 10)
        # The stream was closed: the stand-in's model is free for the next ask at once.
        assert asker.ask().result.endings == ['done']


    def test_a_goal_beyond_the_queue_is_refused_with_queue_full(self, embedded):
        graph, asker = embedded
        asker.ensure_step()
        feedback: list = []
        first = asker.send(Ask.Goal(question=QUESTION), feedback)
        assert asker.probe.until(lambda: len(feedback) >= 1, 30)
        second = asker.ask()  # ask.max_in_flight 1, ask.max_queue 0
        assert second.result.error_code == Ask.Result.QUEUE_FULL, second.result.message
        assert asker.result(first).result.endings == ['done']
        assert asker.probe.until(lambda: asker.counter('ask_rejected_queue_full') == 1, 10)


    def test_a_goal_whose_client_went_away_is_cancelled(self, embedded):
        graph, asker = embedded
        asker.ensure_step()
        cancelled = asker.counter('ask_cancelled')
        other = ActionClient(asker.probe.node, Ask, 'edgevlm/ask_cloud')
        future = other.send_goal_async(Ask.Goal(question=QUESTION),
                                       feedback_callback=lambda m: None)
        assert asker.probe.until(future.done, 30) and future.result().accepted
        # The test's other client has to go too: no one listens to the action's feedback any more.
        asker.client.destroy()
        other.destroy()
        try:
            assert asker.probe.until(lambda: asker.counter('ask_cancelled') > cancelled, 30), \
                graph.log('cloud_bridge')
        finally:
            asker.client = ActionClient(asker.probe.node, Ask, 'edgevlm/ask_cloud')
            asker.ready()


# ----------------------------------------------------------------------------- a fault server


@pytest.fixture
def faulty(graph, probe) -> Iterator[tuple[Graph, Asker, FaultServer]]:
    with FaultServer(served_model=MODEL) as server:
        server.set('ok', stream_mode='sse', stream_delay_s=0.4)
        graph.node('cloud_bridge_node', 'cloud_bridge', {
            'base_url': server.url, 'model': MODEL, 'timeout_s': 5.0,
            'breaker.failure_threshold': 1, 'breaker.cooldown_s': 60.0,
            'breaker.max_cooldown_s': 60.0, 'retry.max_retries': 0})
        asker = Asker(probe)
        asker.ready()
        yield graph, asker, server


def test_step_answers_keep_flowing_while_an_ask_streams(faulty):
    graph, asker, server = faulty
    assert asker.ask().result.error_code == Ask.Result.NO_FRAME  # no step yet
    asker.ensure_step()
    feedback: list = []
    handle = asker.send(Ask.Goal(question=QUESTION), feedback)
    assert asker.probe.until(lambda: len(feedback) >= 1, 30)
    ok_before = sum(c.status == CloudResponse.STATUS_OK for c in asker.cloud)
    step = [100]

    def steps_answered() -> bool:
        step[0] += 1
        asker.publish_step(step[0])
        return sum(c.status == CloudResponse.STATUS_OK for c in asker.cloud) >= ok_before + 2
    # Steps go out and come back answered while the ask's stream (~2.4 s) still runs.
    assert asker.probe.until(steps_answered, 30)
    result_future = handle.get_result_async()
    assert not result_future.done()
    assert asker.probe.until(result_future.done, 30)
    assert result_future.result().result.endings == ['done']
    assert result_future.result().result.answers[0].answer == server.answer


def test_a_stream_broken_half_way_keeps_the_partial_and_an_open_circuit_refuses_asks(faulty):
    graph, asker, server = faulty
    asker.ensure_step()
    server.set('ok', stream_mode='sse_broken', break_after=3)
    reply = asker.ask()
    assert reply.status == GoalStatus.STATUS_ABORTED
    assert reply.result.endings == ['failed'] and 'mid-stream' in reply.result.message
    assert reply.result.answers[0].answer == 'a red box'
    assert asker.probe.until(lambda: asker.counter('ask_failures_stream_broken') == 1, 10)
    # One failure opened the circuit (failure_threshold 1): the next ask is not sent.
    n = server.count
    reply = asker.ask()
    assert reply.result.error_code == Ask.Result.CLOUD_UNAVAILABLE
    assert 'circuit open' in reply.result.message and server.count == n
