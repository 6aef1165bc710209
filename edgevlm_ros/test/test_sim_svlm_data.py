# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Training data of the micro SVLM: truths from the world, histories about earlier frames."""

from edgevlm_ros.sim import svlm_data
from edgevlm_ros.sim.synthworld import PALETTE, SHAPES, Layout, Question, SynthWorld
import numpy as np
import pytest

WORLD = svlm_data.CURRICULUM[-1]


def _question(text: str) -> Question:
    for kind, colour, shape in [(k, c, s) for k in ('count', 'exists', 'colour', 'where')
                                for c in ('', *PALETTE) for s in ('', *SHAPES)]:
        q = Question(kind, colour=colour, shape=shape)
        if q.text == text:
            return q
    raise AssertionError(f'not a world question: {text!r}')


def test_examples_are_deterministic_per_rng_seed() -> None:
    a = svlm_data.make_example(np.random.default_rng(3), 10_001, WORLD, aux_grid=6)
    b = svlm_data.make_example(np.random.default_rng(3), 10_001, WORLD, aux_grid=6)
    assert np.array_equal(a.rgb, b.rgb)
    assert [(t.question, t.answer, t.history) for t in a.turns] == [
        (t.question, t.answer, t.history) for t in b.turns]
    assert np.array_equal(a.aux, b.aux)


def test_frame_is_camera_sized_and_questions_cover_every_kind() -> None:
    ex = svlm_data.make_example(np.random.default_rng(0), 10_000, WORLD, questions=4)
    assert ex.rgb.shape == (384, 512, 3)  # 640x480 resized to the camera's 512 px long side
    assert sorted(t.kind for t in ex.turns) == ['colour', 'count', 'exists', 'where']
    assert len({t.question for t in ex.turns}) == 4


def test_answers_and_error_free_histories_are_the_world_truth() -> None:
    rng = np.random.default_rng(1)
    for i in range(20):
        ex = svlm_data.make_example(rng, 10_000 + i, WORLD, error=0.0, history_turns=3)
        for turn in ex.turns:
            q = _question(turn.question)
            assert turn.answer in svlm_data.answer_space(q)
            assert len(turn.history) == 3 and turn.history_correct
            for hq, ha in turn.history:
                assert ha in svlm_data.answer_space(_question(hq))


def test_answer_matches_the_state_it_was_rendered_from() -> None:
    # Re-derive the example's episode and time from the same draws and compare truths.
    seed, rng_seed = 10_042, 5
    ex = svlm_data.make_example(np.random.default_rng(rng_seed), seed, WORLD, questions=4)
    rng = np.random.default_rng(rng_seed)
    episode = SynthWorld(seed).episode(int(rng.integers(0, 1_000_000)))
    state = episode.state(float(rng.uniform(0, svlm_data.EPISODE_S)))
    for turn in ex.turns:
        assert _question(turn.question).answer(state)[0] == turn.answer


def test_wrong_histories_change_every_answer_and_none_drops_them() -> None:
    rng = np.random.default_rng(2)
    ex = svlm_data.make_example(rng, 10_003, WORLD, error=0.0, history_turns=4)
    for turn in ex.turns:
        wrong = turn.with_history('wrong', rng)
        assert [q for q, _ in wrong.history] == [q for q, _ in turn.history]
        assert all(a != b for (_, a), (_, b) in zip(wrong.history, turn.history))
        assert not wrong.history_correct
        assert turn.with_history('none').history == []
    with pytest.raises(ValueError, match='history kind'):
        ex.turns[0].with_history('sometimes')


def test_error_one_makes_every_history_answer_wrong() -> None:
    rng = np.random.default_rng(4)
    ex = svlm_data.make_example(rng, 10_004, WORLD, error=1.0, history_turns=2)
    assert all(not t.history_correct for t in ex.turns)


def test_curriculum_starts_with_one_large_object_and_ends_in_the_evaluation_world() -> None:
    assert svlm_data.stage_at(0.0).name == 'one-large'
    assert svlm_data.stage_at(0.5).name == 'world'
    assert svlm_data.stage_at(1.0).layout == Layout()
    rng = np.random.default_rng(0)
    ex = svlm_data.make_example(rng, 10_005, svlm_data.stage_at(0.0), aux_grid=6)
    colours = ex.aux[..., :len(PALETTE)].sum(axis=(0, 1))
    assert (colours > 0).sum() <= 1  # one object, so at most one colour anywhere


def test_aux_labels_mark_the_cells_of_visible_objects_only() -> None:
    world = SynthWorld(10_006)
    episode = world.episode(0)
    for t in np.linspace(0, 19, 12):
        state = episode.state(float(t))
        aux = svlm_data.aux_labels(state, 6)
        visible = {o.colour for o in state.visible()}
        for k, colour in enumerate(PALETTE):
            assert bool(aux[..., k].any()) == (colour in visible)


def test_history_plan_puts_own_turns_newest_and_cloud_turns_every_stride_below() -> None:
    plan = svlm_data.HistoryPlan(lag=2, stride=3, own_error=0.0, cloud_error=0.0)
    assert [plan.is_cloud(age) for age in range(1, 9)] == [
        False, False, True, False, False, True, False, False]
    assert all(svlm_data.ALL_CLOUD.is_cloud(age) for age in range(1, 9))
    rng = np.random.default_rng(8)
    ex = svlm_data.make_example(rng, 10_007, WORLD, history_turns=8, plan=plan)
    for turn in ex.turns:
        # history runs oldest first: ages 8 .. 1
        assert turn.history_sources == [plan.is_cloud(age) for age in range(8, 0, -1)]


def test_own_and_cloud_turns_are_wrong_at_their_own_rates() -> None:
    rng = np.random.default_rng(9)
    plan = svlm_data.HistoryPlan(lag=1, stride=2, own_error=1.0, cloud_error=0.0)
    truths = svlm_data.make_example(np.random.default_rng(9), 10_008, WORLD, history_turns=6,
                                    plan=svlm_data.HistoryPlan(1, 2, 0.0, 0.0))
    ex = svlm_data.make_example(rng, 10_008, WORLD, history_turns=6, plan=plan)
    for turn, right in zip(ex.turns, truths.turns):
        assert turn.history_sources == right.history_sources
        for (_, a), (_, t), cloud in zip(turn.history, right.history, turn.history_sources):
            assert (a == t) == cloud  # cloud turns right, own turns wrong
        assert not turn.history_correct


def test_drawn_plans_cover_no_cloud_late_cloud_and_every_step_cloud() -> None:
    rng = np.random.default_rng(10)
    plans = [svlm_data.HistoryPlan.draw(rng) for _ in range(400)]
    assert any(p.lag >= svlm_data.MAX_HISTORY for p in plans)   # edge only
    assert any(p.lag == 0 and p.stride == 1 for p in plans)      # cloud faster than a step
    assert any(2 <= p.lag < svlm_data.MAX_HISTORY for p in plans)  # cloud seconds late
    assert all(p.own_error is None for p in plans)  # own turns say nothing of the truth
    assert {p.cloud_error for p in plans} == set(svlm_data.CLOUD_ERRORS)
    fixed = svlm_data.HistoryPlan.draw(rng, error=0.0)
    assert fixed.own_error == fixed.cloud_error == 0.0


def test_history_kinds_for_the_held_out_conditions() -> None:
    rng = np.random.default_rng(11)
    ex = svlm_data.make_example(rng, 10_009, WORLD, history_turns=4, plan=svlm_data.ALL_CLOUD)
    turn = ex.turns[0]
    assert turn.history_correct and turn.history_sources == [True] * 4
    own_wrong = turn.with_history('own-wrong', rng)
    assert own_wrong.history_sources == [False] * 4
    assert all(a != b for (_, a), (_, b) in zip(own_wrong.history, turn.history))
    assert turn.with_history('wrong', rng).history_sources == [True] * 4
    late = turn.with_history('late-cloud', rng)
    assert late.history_sources == [True, True, False, False]  # older half cloud
    assert late.history[:2] == turn.history[:2]
    assert all(a != b for (_, a), (_, b) in zip(late.history[2:], turn.history[2:]))
    assert not late.history_correct


def test_own_turns_in_training_repeat_themselves_and_say_nothing_of_the_truth() -> None:
    own = svlm_data.HistoryPlan(lag=svlm_data.MAX_HISTORY, stride=1, own_error=None,
                                cloud_error=0.0)
    truth = svlm_data.HistoryPlan(lag=svlm_data.MAX_HISTORY, stride=1, own_error=0.0,
                                  cloud_error=0.0)
    agree, chance, repeats, pairs = [], [], 0, 0
    for i in range(60):
        # Same seed, plans differing only in the error rule: the turns pair up.
        ex = svlm_data.make_example(np.random.default_rng(i), 10_100 + i, WORLD,
                                    history_turns=8, plan=own)
        right = svlm_data.make_example(np.random.default_rng(i), 10_100 + i, WORLD,
                                       history_turns=8, plan=truth)
        for turn, ref in zip(ex.turns, right.turns):
            assert turn.history_sources == [False] * 8
            assert [q for q, _ in turn.history] == [q for q, _ in ref.history]
            for (_, a), (_, t), space in zip(turn.history, ref.history, turn.history_spaces):
                agree.append(a == t)
                chance.append(1 / len(space))
            for (q0, a0), (q1, a1) in zip(turn.history, turn.history[1:]):
                if q0 == q1:
                    pairs += 1
                    repeats += a0 == a1
    assert abs(np.mean(agree) - np.mean(chance)) < 0.08  # right only by chance
    assert 0.75 < repeats / pairs < 0.95  # OWN_REPEAT, plus chance
