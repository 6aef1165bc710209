# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""eval.strategy_replay: the graph's timing rules without ROS, scored by core.scoring."""

from dataclasses import dataclass

from edgevlm_ros.core.arbitration import ArbitrationParams
from edgevlm_ros.core.context import word_count
from edgevlm_ros.core.scoring import is_correct, timeline
from edgevlm_ros.eval import cells as sweep_cells
from edgevlm_ros.eval import replay_engine as eng
from edgevlm_ros.eval import strategy_replay as sr
from edgevlm_ros.sim.synthworld import WorldSpec
import numpy as np
import pytest

SPEC = WorldSpec(seed=3, duration=12, pace=0.4, question_every=6, width=160, height=120)


@dataclass
class _Result:
    text: str


class EchoSvlm:
    """A stand-in edge model: repeats the newest cloud turn for the question, else 'unknown'."""

    def __init__(self) -> None:
        self.calls = []

    def count_tokens(self, text: str) -> int:
        return word_count(text)

    def answer(self, image, question, history=(), focus=(), focus_alpha=0.0,
               history_sources=None):
        self.calls.append((question, list(history), list(focus)))
        cloud = [a for (q, a), c in zip(history, history_sources or []) if c and q == question]
        return _Result(cloud[-1] if cloud else 'unknown')


@pytest.fixture(scope='module')
def world():
    return eng.make_world(SPEC)


def _run(world, strategy, network='fixed:200', error=0.0, cfg=None, svlm=None):
    cfg = cfg or eng.EngineConfig()
    answers = eng.cloud_answers(world, error)
    events = eng.cloud_timeline(world.steps, network, 0, cfg.overhead_ms)
    masks = eng.focus_masks(world.steps, events, answers, cfg)
    cache = eng.SvlmCache(svlm or EchoSvlm())
    return eng.replay_strategy(strategy, world, events, answers, masks, cache, cfg, network)


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
        # one in flight: each request leaves when it arrives or when the previous one landed
        for prev, e in zip(ok, ok[1:]):
            sent = max(world.steps[e.step].stamp_ns, prev.at_ns)
            assert e.at_ns - sent == round(e.rtt_s * 1e9)


def test_jitter_draws_differ_but_repeat_for_the_same_seed(world):
    a = eng.cloud_timeline(world.steps, 'jitter:1000,500', 0)
    b = eng.cloud_timeline(world.steps, 'jitter:1000,500', 0)
    c = eng.cloud_timeline(world.steps, 'jitter:1000,500', 1)
    assert a == b and a != c


def test_cloud_only_publishes_each_answer_when_it_lands(world):
    res = _run(world, 'cloud_only', 'fixed:200')
    assert len(res.run.answers) == len(world.steps)
    for a in res.run.answers:
        assert a.source == 'cloud'
        assert a.latency_ms == pytest.approx(215.0, abs=0.01)
    # a perfect cloud: every answer right for its own frame
    truths = {s.index: s.truth for s in world.steps}
    assert all(is_correct(a.answer, truths[a.step_id]) for a in res.run.answers)


def test_edge_answers_land_after_the_model_time_and_a_busy_worker_skips_steps(world):
    res = _run(world, 'edge_only', cfg=eng.EngineConfig(edge_ms=80.0))
    assert [a.step_id for a in res.run.answers] == list(range(len(world.steps)))
    assert all(a.latency_ms == pytest.approx(80.0) for a in res.run.answers)
    slow = _run(world, 'edge_only', cfg=eng.EngineConfig(edge_ms=1200.0))
    ids = [a.step_id for a in slow.run.answers]
    # taken at 0, free at 1.2 s -> the newest arrived step 2, free at 2.4 -> 4, 3.6 -> 7
    assert ids[:4] == [0, 2, 4, 7]
    assert [a.latency_ms for a in slow.run.answers][:2] == pytest.approx([1200.0, 1400.0])


def test_replacement_puts_cloud_turns_into_the_history(world):
    svlm = EchoSvlm()
    res = _run(world, 'replacement_only', 'fixed:200', svlm=svlm)
    assert any(a.replaced_turns for a in res.run.answers)
    # the echoing edge repeats the cloud answer of the previous step: never 'unknown' once
    # the first cloud answer is in (same question)
    later = [a for a in res.run.answers if a.step_id >= 2]
    assert sum(a.answer != 'unknown' for a in later) >= len(later) - 2
    assert not any(a.replaced_turns for a in _run(world, 'edge_only', svlm=EchoSvlm()).run.answers)


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
    res = _run(world, 'cloud_stale', 'fixed:200')
    by = {a.step_id: a for a in res.run.answers}
    assert by[0].source == 'edge'        # nothing from the cloud yet
    for k in range(1, len(world.steps)):
        assert by[k].source == 'cloud' and by[k].newest_cloud_step == k - 1
        assert by[k].latency_ms == pytest.approx(10.0)


def test_offload_waits_for_its_own_cloud_answer_when_it_fits(world):
    res = _run(world, 'offload', 'fixed:200')
    sources = [a.source for a in res.run.answers]
    assert sources[0] == 'edge'  # no round trip known yet
    assert sources[2:] == ['cloud'] * (len(sources) - 2)
    slow = _run(world, 'offload', 'fixed:2000')
    assert all(a.source == 'edge' for a in slow.run.answers)


def test_arbitrated_uses_fresh_cloud_answers_and_says_why(world):
    cfg = eng.EngineConfig(arbitration=ArbitrationParams(max_age_s=2.0,
                                                         require_edge_agreement=False))
    res = _run(world, sweep_cells.ARBITRATED, 'fixed:200', cfg=cfg)
    assert len(res.decisions) == len(world.steps)
    assert res.decisions[0][1] == 'edge' and 'no cloud answer' in res.decisions[0][2]
    assert sum(src == 'cloud' for _, src, _ in res.decisions) >= len(world.steps) - 4
    old = _run(world, sweep_cells.ARBITRATED, 'fixed:4000', cfg=cfg)
    assert all(src == 'edge' for _, src, _ in old.decisions)
    # at edge latency either way
    assert max(a.latency_ms for a in res.run.answers) == pytest.approx(80.0)


def test_scores_are_core_scoring_of_the_replayed_answers(world):
    cells = sweep_cells.run_cell([world], 'fixed:200', 0.0, ['edge_only', 'cloud_stale'],
                        eng.SvlmCache(EchoSvlm()), eng.EngineConfig())
    res = _run(world, 'cloud_stale', 'fixed:200')
    rows = [r for r in timeline(res.run, 1.0) if r.correct is not None]
    assert cells['cloud_stale'].correct == [int(r.correct) for r in rows]
    assert cells['edge_only'].accuracy < cells['cloud_stale'].accuracy


def test_block_bootstrap_interval_contains_the_mean_and_shrinks_with_more_blocks():
    rng = np.random.default_rng(0)
    small = list(rng.integers(0, 2, 60))
    big = list(rng.integers(0, 2, 6000))
    lo, hi = sweep_cells.bootstrap_ci(small, [str(i // 10) for i in range(60)])
    assert lo <= np.mean(small) <= hi
    blo, bhi = sweep_cells.bootstrap_ci(big, [str(i // 10) for i in range(6000)])
    assert bhi - blo < hi - lo
    assert sweep_cells.bootstrap_ci([1] * 20, ['a'] * 10 + ['b'] * 10) == (1.0, 1.0)


def test_cell_names_and_network_specs():
    assert sweep_cells.network_spec(0.2, 0) == 'fixed:200'
    assert sweep_cells.network_spec(2, 0.5) == 'jitter:2000,1000'
    assert sweep_cells.cell_name(2, 0.5, 0.1) == '2 s f0.5'
    assert sweep_cells.cell_name(0.5, 0, 0.3) == '0.5 s e30%'


def test_the_cli_writes_results_a_table_and_a_plot(tmp_path, monkeypatch, world):
    monkeypatch.setattr(sr, 'load_model', lambda spec, threads=1: EchoSvlm())
    out = tmp_path / 'run'
    assert sr.main(['sweep', str(out), '--seeds', '3', '--duration', '6', '--latencies',
                    '0.2,2', '--fluctuations', '0', '--extra-errors', '',
                    '--strategies',
                    'edge_only,cloud_stale,offload,cloud_only,' + sweep_cells.ARBITRATED,
                    '--mix', 'rotation']) == 0
    assert (out / 'results.json').exists()
    assert (out / 'accuracy_vs_latency.png').stat().st_size > 1000
    text = (out / 'table.md').read_text()
    assert '| edgevlm_arbitrated |' in text and '0.2 s' in text
