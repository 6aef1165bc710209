# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""frame_source_node playing the synthetic world: frames, its questions and truths over DDS."""

from edgevlm_msgs.msg import GroundTruth, Step
from edgevlm_ros.core.records import Truth
from edgevlm_ros.core.regions import Box
from edgevlm_ros.ros.conversions import msg_to_truth, stamp_to_ns, truth_to_msg
from edgevlm_ros.ros.qos import RESULTS
import pytest

# A new question every second (every 5 frames at 5 fps): a frame interval of 200 ms leaves the
# camera ample time to take each frame before the next question arrives.
WORLD = 'synth:seed=3,duration=60,fps=5,episode=4,question_every=1,width=128,height=96'
# One question all along: nothing but the node itself can tell a late camera what it is.
STEADY_WORLD = 'synth:seed=3,duration=60,fps=5,episode=60,question_every=60,width=128,height=96'
NOT_ASKED = 'not asked yet'


def test_ground_truth_message_round_trip():
    truth = Truth(stamp_ns=12_000_000_345, episode='ep001', question_id='where/red-circle',
                  question='Where is the red circle?', answer='left', accepted=('on the left',),
                  choices=('left', 'centre', 'right', 'not visible'),
                  boxes=(Box(0.1, 0.2, 0.3, 0.4, 'red circle', 1.0),))
    msg = truth_to_msg(truth)
    assert stamp_to_ns(msg.header.stamp) == truth.stamp_ns
    assert msg_to_truth(msg) == truth


@pytest.mark.ros
def test_a_camera_that_starts_late_is_told_the_current_question(graph, probe):
    truths = probe.listen(GroundTruth, 'edgevlm/ground_truth', RESULTS)
    steps = probe.listen(Step, 'edgevlm/step', RESULTS)
    graph.node('frame_source_node', 'frame_source', {'source': STEADY_WORLD, 'rate_hz': 5.0})
    # The world is playing, its one question sent long ago, before the camera starts.
    assert probe.until(lambda: len(truths) >= 3, 60), graph.log('frame_source')
    graph.node('camera_node', 'camera', {'step_rate_hz': 50.0, 'question': NOT_ASKED})
    assert probe.until(lambda: any(s.question != NOT_ASKED for s in steps), 60), (
        graph.log('camera'), graph.log('frame_source'))
    assert {s.question for s in steps} - {NOT_ASKED} == {truths[0].question}


@pytest.mark.ros
def test_the_camera_pairs_every_frame_with_the_question_of_that_frame(graph, probe):
    truths = probe.listen(GroundTruth, 'edgevlm/ground_truth', RESULTS)
    steps = probe.listen(Step, 'edgevlm/step', RESULTS)
    graph.node('camera_node', 'camera', {'step_rate_hz': 50.0, 'question': NOT_ASKED})
    graph.node('frame_source_node', 'frame_source', {'source': WORLD, 'rate_hz': 5.0})

    def world_questions() -> list[str]:
        seen = [s.question for s in steps if s.question != NOT_ASKED]
        return [q for i, q in enumerate(seen) if i == 0 or q != seen[i - 1]]

    def paired() -> list[tuple[str, str]]:
        # (the step's question, the question of its frame's truth) from the first question on
        told = next((i for i, s in enumerate(steps) if s.question != NOT_ASKED), len(steps))
        asked = {stamp_to_ns(t.header.stamp): t.question for t in truths}
        return [(s.question, asked[stamp_to_ns(s.header.stamp)]) for s in steps[told:]
                if stamp_to_ns(s.header.stamp) in asked]

    # Four question windows and ten frames with a known truth at least (this probe's truth
    # subscription may match after the first frames were sent).
    assert probe.until(lambda: len(world_questions()) >= 4 and len(paired()) >= 10, 60), (
        graph.log('camera'), graph.log('frame_source'))
    # Only the camera's first steps may precede the first question; from then on every step
    # carries the question of the very frame it was taken from, across each change.
    told = next(i for i, s in enumerate(steps) if s.question != NOT_ASKED)
    assert all(s.question == NOT_ASKED for s in steps[:told])
    pairs = paired()
    assert len({want for _, want in pairs}) >= 2  # across a question change
    assert [q for q, _ in pairs] == [want for _, want in pairs]


@pytest.mark.ros
def test_questions_and_truths_can_be_switched_off(graph, probe):
    frames = probe.listen(Step, 'edgevlm/step', RESULTS)
    graph.node('frame_source_node', 'frame_source', {
        'source': WORLD, 'rate_hz': 5.0, 'publish_questions': False,
        'publish_ground_truth': False})
    graph.node('camera_node', 'camera', {'step_rate_hz': 50.0, 'question': NOT_ASKED})
    assert probe.until(lambda: len(frames) >= 3, 60), graph.log('frame_source')
    node = probe.node
    assert node.count_publishers('/edgevlm/question') == 0
    assert node.count_publishers('/edgevlm/ground_truth') == 0
    assert {s.question for s in frames} == {NOT_ASKED}
