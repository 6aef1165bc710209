# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""eval.replay_engine: the graph's timing rules without ROS (steps, cloud, fusion, the worker)."""

from edgevlm_ros.core.arbitration import ArbitrationParams
from edgevlm_ros.core.scoring import is_correct
from edgevlm_ros.eval import replay_engine as eng
import numpy as np
import pytest
from replay_helpers import SPEC, EchoSvlm, replay


@pytest.fixture(scope='module')
def world():
    return eng.make_world(SPEC)


def test_steps_are_the_camera_steps_of_the_world(world):
    assert len(world.steps) == 24  # 12 s at 2 steps/s
    gaps = np.diff([s.stamp_ns for s in world.steps])
    assert np.all(gaps == 500_000_000)
    assert max(world.steps[0].rgb.shape[:2]) == 160  # never enlarged


def test_every_step_gets_one_cloud_response_and_one_request_flies_at_a_time(world):
    for network, sent_every in (('fixed:200', 1), ('fixed:1000', 3)):
        events = eng.cloud_timeline(world.steps, network, 0, overhead_ms=15.0)
        assert sorted(e.step for e in events) == list(range(len(world.steps)))
        ok = sorted((e for e in events if e.status == 'ok'), key=lambda e: e.step)
        if sent_every == 1:
            assert len(ok) == len(world.steps)
            for e in ok:
                assert e.at_ns - world.steps[e.step].stamp_ns == 215_000_000
        else:
            # Step 1 waits in the pending slot and step 2 replaces it; step 2 goes when step 0's
            # answer lands; later steps closer than the adaptive interval (1.015 s) to the last
            # send are dropped, the next one waits for the slot.
            assert [e.step for e in ok][:4] == [0, 2, 5, 8]
        # One in flight: each request leaves when it arrives or when the previous one landed;
        # only the first step of a new question leaves at once, next to the old one's request.
        for prev, e in zip(ok, ok[1:]):
            step = world.steps[e.step]
            new_question = step.truth.question != world.steps[prev.step].truth.question
            sent = step.stamp_ns if new_question else max(step.stamp_ns, prev.at_ns)
            assert e.at_ns - sent == round(e.rtt_s * 1e9)
        firsts = [s.index for s, before in zip(world.steps[1:], world.steps)
                  if s.truth.question != before.truth.question]
        if sent_every != 1:
            assert firsts and all(i in {e.step for e in ok} for i in firsts)


def test_jitter_draws_differ_but_repeat_for_the_same_seed(world):
    a = eng.cloud_timeline(world.steps, 'jitter:1000,500', 0)
    b = eng.cloud_timeline(world.steps, 'jitter:1000,500', 0)
    c = eng.cloud_timeline(world.steps, 'jitter:1000,500', 1)
    assert a == b and a != c


def test_cloud_only_publishes_each_answer_when_it_lands(world):
    res = replay(world, 'cloud_only', 'fixed:200')
    assert len(res.run.answers) == len(world.steps)
    for a in res.run.answers:
        assert a.source == 'cloud'
        assert a.latency_ms == pytest.approx(215.0, abs=0.01)
    # a perfect cloud: every answer right for its own frame
    truths = {s.index: s.truth for s in world.steps}
    assert all(is_correct(a.answer, truths[a.step_id]) for a in res.run.answers)


def test_edge_answers_land_after_the_model_time_and_a_busy_worker_skips_steps(world):
    res = replay(world, 'edge_only', cfg=eng.EngineConfig(edge_ms=80.0))
    assert [a.step_id for a in res.run.answers] == list(range(len(world.steps)))
    assert all(a.latency_ms == pytest.approx(80.0) for a in res.run.answers)
    slow = replay(world, 'edge_only', cfg=eng.EngineConfig(edge_ms=1200.0))
    ids = [a.step_id for a in slow.run.answers]
    # taken at 0, free at 1.2 s -> the newest arrived step 2, free at 2.4 -> 4, 3.6 -> 7
    assert ids[:4] == [0, 2, 4, 7]
    assert [a.latency_ms for a in slow.run.answers][:2] == pytest.approx([1200.0, 1400.0])


def test_replacement_puts_cloud_turns_into_the_history(world):
    svlm = EchoSvlm()
    res = replay(world, 'replacement_only', 'fixed:200', svlm=svlm)
    assert any(a.replaced_turns for a in res.run.answers)
    # the echoing edge repeats the cloud answer of the previous step: never 'unknown' once
    # the first cloud answer is in (same question)
    later = [a for a in res.run.answers if a.step_id >= 2]
    assert sum(a.answer != 'unknown' for a in later) >= len(later) - 2
    plain = replay(world, 'edge_only', svlm=EchoSvlm())
    assert not any(a.replaced_turns for a in plain.run.answers)


def test_focus_masks_carry_cloud_boxes_to_newer_steps(world):
    answers = eng.cloud_answers(world, 0.0)
    events = eng.cloud_timeline(world.steps, 'fixed:200', 0)
    masks = eng.focus_masks(world.steps, events, answers, eng.EngineConfig())
    with_boxes = [m for m in masks if m.boxes]
    assert with_boxes
    assert all(m.target >= m.source for m in masks)
    # published when the answer lands (on its own frame, the newest then), then carried on
    assert any(m.target == m.source for m in with_boxes)
    assert any(m.target > m.source for m in with_boxes)
    for m in with_boxes:
        assert m.at_ns >= world.steps[m.target].stamp_ns


def test_cloud_stale_repeats_the_newest_cloud_answer(world):
    res = replay(world, 'cloud_stale', 'fixed:200')
    by = {a.step_id: a for a in res.run.answers}
    assert by[0].source == 'edge'        # nothing from the cloud yet
    for k in range(1, len(world.steps)):
        assert by[k].source == 'cloud' and by[k].newest_cloud_step == k - 1
        assert by[k].latency_ms == pytest.approx(10.0)


def test_offload_waits_for_its_own_cloud_answer_when_it_fits(world):
    res = replay(world, 'offload', 'fixed:200')
    sources = [a.source for a in res.run.answers]
    assert sources[0] == 'edge'  # no round trip known yet
    assert sources[2:] == ['cloud'] * (len(sources) - 2)
    slow = replay(world, 'offload', 'fixed:2000')
    assert all(a.source == 'edge' for a in slow.run.answers)


def test_arbitrated_uses_fresh_cloud_answers_and_says_why(world):
    cfg = eng.EngineConfig(arbitration=ArbitrationParams(max_age_s=2.0,
                                                         require_edge_agreement=False))
    res = replay(world, 'edgevlm_arbitrated', 'fixed:200', cfg=cfg)
    assert len(res.decisions) == len(world.steps)
    assert res.decisions[0][1] == 'edge' and 'no cloud answer' in res.decisions[0][2]
    assert sum(src == 'cloud' for _, src, _ in res.decisions) >= len(world.steps) - 4
    old = replay(world, 'edgevlm_arbitrated', 'fixed:4000', cfg=cfg)
    assert all(src == 'edge' for _, src, _ in old.decisions)
    # at edge latency either way
    assert max(a.latency_ms for a in res.run.answers) == pytest.approx(80.0)
