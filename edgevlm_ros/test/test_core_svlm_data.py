# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Training data of the micro SVLM: truths from the world, histories about earlier frames."""

from edgevlm_ros.core import svlm_data
from edgevlm_ros.core.synthworld import PALETTE, SHAPES, Layout, Question, SynthWorld
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
