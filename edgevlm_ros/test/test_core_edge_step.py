# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""core.edge_step and core.edge_runner: the edge step's rules, without ROS, in milliseconds."""

import threading

from edgevlm_ros.core import edge_step as es
from edgevlm_ros.core.edge_runner import EdgeRunner
from edgevlm_ros.core.images import ImageDecodeError
from edgevlm_ros.core.regions import Box
from edgevlm_ros.core.stats import Counters
import numpy as np
import pytest

Q = 'Where is the cup? (a) left (b) right'
BOX = Box(0.1, 0.2, 0.3, 0.5, 'cup', 0.9)


class _Svlm:
    """Answers 'left'; records what it was given."""

    focus_supported = True

    def __init__(self) -> None:
        self.calls = []

    def answer(self, image, question, history=(), **kw):
        self.calls.append((image.shape, list(history), list(kw.get('focus') or [])))
        return type('R', (), {'text': 'left', 'focus_applied': bool(kw.get('focus')),
                              'model_ms': 1.0, 'prompt': ''})()


def _cloud(step_id, stamp_s, answer='left', ok=True, rtt=0.5, question=Q):
    return es.CloudNote(step_id, stamp_s, question, answer, ok, rtt)


def test_each_strategy_plans_its_own_way():
    state = es.EdgeState(es.EdgeConfig())
    step = es.StepView(3, 10.0, Q)
    assert es.plan(step, state, es.EdgeConfig(strategy='cloud_only'), True) is None
    assert isinstance(es.plan(step, state, es.EdgeConfig(strategy='cloud_stale'), True),
                      es.RunEdge)  # nothing from the cloud yet: the edge answers
    state.on_cloud(_cloud(2, 9.5))
    stale = es.plan(step, state, es.EdgeConfig(strategy='cloud_stale'), True)
    assert isinstance(stale, es.FromCloud) and stale.note.step_id == 2
    wait = es.plan(step, state, es.EdgeConfig(strategy='offload'), True)
    assert wait == es.WaitForCloud(11.0)
    slow = es.EdgeConfig(strategy='offload', offload_deadline_s=0.3)
    assert isinstance(es.plan(step, state, slow, True), es.RunEdge)  # 0.5 s does not fit


def test_offload_after_its_wait_takes_its_own_answer_or_falls_back():
    cfg = es.EdgeConfig(strategy='offload')
    state = es.EdgeState(cfg)
    step = es.StepView(3, 10.0, Q)
    assert not es.cloud_landed(step, state)
    fallback = es.after_wait(step, state, cfg, True)
    assert isinstance(fallback, es.RunEdge) and fallback.offload_fallback
    state.on_cloud(_cloud(3, 10.0, ok=False, rtt=None))  # dropped: it lands, and fails
    assert es.cloud_landed(step, state) and es.after_wait(step, state, cfg, True).offload_fallback
    state.on_cloud(_cloud(3, 10.0))
    assert es.from_cloud(es.after_wait(step, state, cfg, True).note).text == 'left'


def test_focus_is_fresh_only_for_its_strategies_questions_and_age():
    cfg = es.EdgeConfig(focus_max_age_s=2.0)
    state = es.EdgeState(cfg)
    state.on_step(5, cfg)
    assert state.on_mask(es.MaskNote(4, 5, (BOX,), 9.0)) == 'kept'
    run = es.plan(es.StepView(5, 10.0, Q), state, cfg, focus_supported=True)
    assert (run.view, run.boxes, run.focus_age_s) == ('attention', (BOX,), 1.0)
    assert es.plan(es.StepView(5, 10.0, Q), state, cfg, focus_supported=False).view == 'crop'
    counting = es.plan(es.StepView(5, 10.0, 'How many cups?'), state, cfg, True)
    assert counting.focus_skipped and counting.view == 'none'
    old = es.plan(es.StepView(5, 11.5, Q), state, cfg, True)
    assert old.focus_too_old and old.view == 'none'
    replacement = es.EdgeConfig(strategy='replacement_only')
    assert es.plan(es.StepView(5, 10.0, Q), state, replacement, True).view == 'none'
    assert state.on_mask(es.MaskNote(3, 5, (BOX,), 9.0)) == 'older'
    assert state.on_mask(es.MaskNote(9, 9, (BOX,), 9.0)) == 'from_before_restart'


def test_an_answer_goes_only_into_the_history_it_was_asked_with():
    cfg = es.EdgeConfig()
    state = es.EdgeState(cfg)
    state.on_step(7, cfg)
    step = es.StepView(7, 10.0, Q)
    run = es.plan(step, state, cfg, True)
    assert state.on_step(2, cfg)  # the camera restarted while the model answered
    assert not es.record_edge(step, run, 'left', state)
    assert state.store.history() == []
    run = es.plan(es.StepView(2, 11.0, Q), state, cfg, True)
    assert es.record_edge(es.StepView(2, 11.0, Q), run, 'left', state)
    assert [t.step_id for t in state.store.history()] == [2]


def test_arbitration_lets_a_fresh_cloud_answer_stand_and_says_why():
    cfg = es.EdgeConfig(strategy='edgevlm_arbitrated')
    state = es.EdgeState(cfg)
    step = es.StepView(4, 10.0, Q)
    run = es.plan(step, state, cfg, True)
    first = es.finish(step, run, 'left', 'none', state, cfg)
    assert (first.source, first.reason, first.arbitration) == (
        'edge', 'no cloud answer yet', 'edge')
    state.on_cloud(_cloud(4, 10.0, answer='right'))
    step = es.StepView(5, 10.5, Q)
    answer = es.finish(step, es.plan(step, state, cfg, True), 'left', 'none', state, cfg)
    assert (answer.text, answer.source, answer.newest_cloud_step) == ('right', 'cloud', 4)
    assert 'cloud answer of step 4, 0.5 s old' in answer.reason


def test_context_and_cloud_inputs_are_kept_by_the_rules():
    cfg = es.EdgeConfig(history_turns=2, history_evict_block=1)
    state = es.EdgeState(cfg)
    for i in range(4):
        state.on_step(i, cfg)
        es.record_edge(es.StepView(i, i, Q), es.plan(es.StepView(i, i, Q), state, cfg, True),
                       'left', state)
    assert state.on_context(3, Q, 'right', cfg) == 'applied'
    assert state.on_context(0, Q, 'right', cfg) == 'dropped'  # its slot was evicted
    assert state.on_context(9, Q, 'right', cfg) == 'from_before_restart'
    assert state.on_context(3, Q, 'right', es.EdgeConfig(strategy='edge_only')) == 'unused'
    for i in range(es.MAX_CLOUD_RESPONSES + 5):
        state.on_cloud(_cloud(i, i, rtt=1.0))
    assert len(state.cloud) == es.MAX_CLOUD_RESPONSES and state.rtt_ewma_s == pytest.approx(1.0)
    assert es.answer_on_arrival(_cloud(1, 1.0), es.EdgeConfig(strategy='cloud_only')).text \
        == 'left'
    assert es.answer_on_arrival(_cloud(1, 1.0), cfg) is None


def test_a_bad_skip_pattern_or_focus_mode_is_refused_with_a_reason():
    assert 'regular expression' in es.check_skip_pattern('(unclosed')
    assert es.check_skip_pattern(r'^\s*how many\b') is None
    with pytest.raises(ValueError, match='focus mode'):
        es.EdgeConfig(focus_mode='squint')


def test_the_runner_waits_for_offload_on_its_clock_and_wakes_on_the_cloud():
    counters = Counters()
    runner = EdgeRunner(es.EdgeConfig(strategy='offload'), counters)
    runner.configure(None)
    runner.on_step(1)
    runner.on_cloud(_cloud(0, 9.0))  # a 0.5 s round trip: offload waits from now on
    svlm, now = _Svlm(), [10.0]
    image = lambda: np.zeros((8, 8, 3), np.uint8)  # noqa: E731
    result = {}
    waiter = threading.Thread(target=lambda: result.setdefault('a', runner.answer(
        es.StepView(1, 10.0, Q), image, svlm, lambda: now[0])))
    waiter.start()
    runner.on_cloud(_cloud(1, 10.0, answer='right'))
    waiter.join(5)
    assert result['a'].answer.text == 'right' and result['a'].result is None
    now[0] = 12.0  # past the next step's deadline: no wait, the edge answers
    runner.on_step(2)
    fell_back = runner.answer(es.StepView(2, 11.0, Q), image, svlm, lambda: now[0])
    assert fell_back.answer.source == 'edge' and counters.get('offload_fallbacks') == 1
    assert counters.get('cloud_responses_received') == 2


def test_the_runner_passes_a_bad_frame_on_and_counts_what_became_of_inputs():
    counters = Counters()
    runner = EdgeRunner(es.EdgeConfig(), counters)
    runner.configure(None)
    runner.on_step(3)

    def bad():
        raise ImageDecodeError('corrupt JPEG')

    with pytest.raises(ImageDecodeError):
        runner.answer(es.StepView(3, 1.0, Q), bad, _Svlm(), lambda: 1.0)
    runner.on_mask(es.MaskNote(9, 9, (BOX,), 1.0))
    assert counters.get('focus_masks_from_before_restart') == 1
    assert runner.on_step(1) and counters.get('step_id_resets') == 1
    assert runner.on_context(2, Q, 'x') == 'from_before_restart'
    assert counters.get('context_updates_from_before_restart') == 1


def test_warm_up_answers_once_with_the_longest_history_the_caps_allow() -> None:
    calls = []

    class Svlm:
        def count_tokens(self, text: str) -> int:
            return len(text.split())

        def answer(self, image, question, history=(), focus=(), focus_alpha=0.0, *,
                   max_new_tokens=None, history_sources=None):
            calls.append((image.shape, list(history), list(history_sources)))

    runner = EdgeRunner(es.EdgeConfig(history_turns=8, history_tokens=512), Counters())
    runner.configure(Svlm().count_tokens)
    runner.warm_up(Svlm(), 512)
    (shape, history, sources), = calls
    assert shape == (384, 512, 3)
    assert len(history) == 8 and sources == [False] * 8
    tokens = sum(len(q.split()) + len(a.split()) for q, a in history)
    assert 512 - 8 <= tokens <= 512  # each turn within one word of its share
    assert runner.history_turns == 0  # the edge's own history is not touched

    calls.clear()
    EdgeRunner(es.EdgeConfig(history_turns=0), Counters()).warm_up(Svlm(), 256)
    assert calls == [((192, 256, 3), [], [])]
