# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The replay evaluation end to end: a bag through the real graph, scored and reported.

Random-weight models answer noise, so these runs use the TEST DOUBLES of models/scripted.py: an
edge that always says "two" (and, with echo_cloud, repeats the cloud answer Context Replacement
put into its history) and an oracle cloud that answers each frame's ground truth, late by the
emulated network. What each strategy must then score is known from the bag alone.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from edgevlm_ros.core.records import Sample
from edgevlm_ros.core.scoring import is_correct, normalise, score_run
from edgevlm_ros.eval import bags
from edgevlm_ros.eval.replay import ReplayConfig, run_eval

FPS = 5.0
DURATION_S = 6.0
SWITCH_S = 3.0  # the true answer is "two" before, "three" after
QUESTION = 'How many red objects are there?'
NETWORK = 'fixed:300'


def _frames() -> list[Sample]:
    rng = np.random.default_rng(7)
    samples = []
    for i in range(int(DURATION_S * FPS)):
        t = i / FPS
        # Every frame its own texture, so the oracle tells them apart after JPEG.
        rgb = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
        rgb = np.repeat(np.repeat(rgb[::8, ::8], 8, axis=0), 8, axis=1)[:120, :160]
        samples.append(Sample(t_s=t, rgb=np.ascontiguousarray(rgb), episode='ep000',
                              question_id='count/red', question=QUESTION,
                              answer='2' if t < SWITCH_S else '3', accepted=()))
    return samples


@pytest.fixture(scope='module')
def bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('evalbag') / 'world'
    bags.write_eval_bag(path, _frames())
    return path


@pytest.fixture(scope='module')
def edge_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('script') / 'edge.json'
    path.write_text(json.dumps({'answer': 'two', 'echo_cloud': True, 'delay_ms': 20}))
    return path


def _config(bag: Path, out: Path, script: Path, strategies: list[str], **kw) -> ReplayConfig:
    return ReplayConfig(bag=bag, out=out, strategies=strategies, network_profile=NETWORK,
                        deadline_s=1.0, edge_model=f'scripted:{script}',
                        embedded_model=f'oracle:{bag}', step_rate_hz=2.0, progress=False,
                        **kw)


def _own_truth(run):
    truths = {t.stamp_ns: t for t in run.truths}
    return [(a, truths[a.stamp_ns]) for a in run.answers if a.stamp_ns in truths]


def test_each_strategy_scores_what_its_test_doubles_make_it_score(
        bag, edge_script, tmp_path, model_cache):
    strategies = ['edge_only', 'cloud_only', 'edgevlm']
    runs = {r.strategy: r for r in run_eval(_config(bag, tmp_path, edge_script, strategies))}
    assert set(runs) == set(strategies)
    frames = int(DURATION_S * FPS)
    for run in runs.values():
        # Every frame's truth was recorded, re-stamped like the frame the graph saw.
        assert len(run.truths) == frames
        assert run.meta['frames_played'] == frames
        assert (tmp_path / run.strategy / 'record' / 'metadata.yaml').exists()
        assert run.counters['camera']['steps_published'] == str(len({c.step_id
                                                                     for c in run.clouds}))

    edge = runs['edge_only']
    s = score_run(edge, 1.0)
    # The scripted edge says "two" at every step: right exactly where the truth is 2.
    pairs = _own_truth(edge)
    assert pairs and all(a.source == 'edge' and a.answer == 'two' for a, _ in pairs)
    expected = sum(t.answer == '2' for _, t in pairs) / len(pairs)
    assert 0 < expected < 1
    assert s.accuracy == pytest.approx(expected)
    assert s.cloud_requests == 0 and s.cloud_bytes_up == 0
    assert all(c.status == 'dropped' for c in edge.clouds)

    cloud = runs['cloud_only']
    s = score_run(cloud, 1.0)
    pairs = _own_truth(cloud)
    # The oracle answers each frame's truth: every cloud answer is right about its own frame,
    # and none comes back before the emulated 300 ms round trip.
    assert pairs and all(a.source == 'cloud' for a, _ in pairs)
    assert s.accuracy == 1.0
    assert all(a.latency_ms >= 300.0 for a, _ in pairs)
    assert s.cloud_requests == len([c for c in cloud.clouds if c.status != 'dropped']) > 0
    assert s.cloud_bytes_up > 0 and s.cloud_bytes_down > 0

    vlm = runs['edgevlm']
    s = score_run(vlm, 1.0)
    # With cloud text in its history the echoing edge repeats the oracle: after the switch
    # it says "3" (as fusion compressed it: "3.") once a cloud answer from after the switch
    # has replaced a slot.
    assert s.answers_with_replacement > 0
    assert any(a.source == 'edge' and normalise(a.answer) == '3' for a in vlm.answers)
    assert s.accuracy > score_run(edge, 1.0).accuracy
    # Judged by value: "two" and "2." are both right for 2, nothing but 3 is right for 3.
    for a, truth in _own_truth(vlm):
        assert is_correct(a.answer, truth) == (normalise(a.answer) == truth.answer)


def test_a_sped_up_replay_runs_on_bag_time(bag, edge_script, tmp_path, model_cache):
    run, = run_eval(_config(bag, tmp_path, edge_script, ['cloud_only'], speed=3.0))
    start = bags.read_eval_bag(bag).info.start_ns
    # Simulated time: frames keep their bag stamps, so truths line up with the bag exactly ...
    assert [t.stamp_ns for t in run.truths] == [start + round(i / FPS * 1e9)
                                                for i in range(int(DURATION_S * FPS))]
    assert run.meta['clock'] == 'simulated (/clock)'
    # ... and the emulated network waits in simulated time: no round trip under 300 ms of it.
    ok = [c for c in run.clouds if c.status == 'ok']
    assert ok and all(c.round_trip_ms >= 300.0 for c in ok)
    assert score_run(run, 1.0).accuracy == 1.0
