# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The synthetic world: seeded, and every truth agrees with what the frame's pixels show."""

import operator

from edgevlm_ros.sim.synthworld import (
    NOT_VISIBLE,
    PALETTE,
    VISIBLE_SHARE,
    WHERE_CHOICES,
    SynthWorld,
    WorldSpec,
    describe,
    frame_count,
    generate,
)
import numpy as np
import pytest

SMALL = {'width': 160, 'height': 120}


def _samples(seed=0, duration_s=12.0, fps=5.0, **kw):
    return list(generate(seed=seed, duration_s=duration_s, fps=fps, **{**SMALL, **kw}))


def _colour_pixels(rgb: np.ndarray, colour: str) -> np.ndarray:
    return np.all(rgb == np.array(PALETTE[colour], np.uint8), axis=-1)


def _measured_px(rgb: np.ndarray, view, size: int) -> int:
    """Pixels of the object's colour inside its patch (lanes never overlap, so they are its)."""
    h, w = rgb.shape[:2]
    x0, y0 = max(0, view.x), max(0, view.y)
    x1, y1 = min(w, view.x + size), min(h, view.y + size)
    if x1 <= x0 or y1 <= y0:
        return 0
    return int(_colour_pixels(rgb[y0:y1, x0:x1], view.colour).sum())


def test_same_seed_gives_identical_frames_and_truths():
    a, b = _samples(seed=7), _samples(seed=7)
    assert len(a) == len(b) == frame_count(12.0, 5.0) == 60
    for x, y in zip(a, b):
        assert np.array_equal(x.rgb, y.rgb)
        assert (x.t_s, x.episode, x.question_id, x.question, x.answer, x.accepted, x.choices,
                x.boxes) == (y.t_s, y.episode, y.question_id, y.question, y.answer,
                             y.accepted, y.choices, y.boxes)


def test_different_seeds_give_different_worlds():
    a, b = _samples(seed=1, duration_s=2), _samples(seed=2, duration_s=2)
    assert not np.array_equal(a[0].rgb, b[0].rgb)
    assert [s.question for s in a] != [s.question for s in b] or \
        [s.answer for s in a] != [s.answer for s in b]


def test_visible_pixels_and_counts_match_what_the_frame_shows():
    world = SynthWorld(seed=3, **SMALL)
    checked = 0
    for index in range(3):
        ep = world.episode(index)
        for t in np.arange(0.0, 20.0, 0.25):
            state = ep.state(float(t))
            rgb = ep.render(state)
            for view, thing in zip(state.objects, ep.things):
                measured = _measured_px(rgb, view, thing.mask.shape[0])
                assert measured == view.visible_px, (index, t, view.name)
                assert view.visible == (measured >= VISIBLE_SHARE * view.total_px)
            for q in ep.questions():
                if q.kind != 'count':
                    continue
                share = [_measured_px(rgb, v, th.mask.shape[0]) / v.total_px
                         for v, th in zip(state.objects, ep.things) if v.colour == q.colour]
                assert q.answer(state)[0] == str(sum(s >= VISIBLE_SHARE for s in share))
                checked += 1
    assert checked > 500


def test_an_object_behind_a_pillar_is_not_counted():
    world = SynthWorld(seed=0, **SMALL)
    found = 0
    for index in range(4):
        ep = world.episode(index)
        for t in np.arange(0.0, 20.0, 0.1):
            state = ep.state(float(t))
            for view, thing in zip(state.objects, ep.things):
                size = thing.mask.shape[0]
                in_frame = view.x >= 0 and view.x + size <= SMALL['width']
                if not in_frame or view.visible:
                    continue
                # Wholly inside the frame yet not visible: a pillar hides it.
                rgb = ep.render(state)
                assert _measured_px(rgb, view, size) < VISIBLE_SHARE * view.total_px
                assert any(x0 < view.x + size and view.x < x1 for x0, x1 in state.pillars)
                for q in ep.questions():
                    assert view not in q.relevant(state)
                    if q.kind == 'count' and q.colour == view.colour:
                        visible = sum(v.visible for v in state.objects if v.colour == q.colour)
                        assert q.answer(state)[0] == str(visible)
                found += 1
    assert found >= 5


def test_truth_boxes_cover_the_visible_objects_the_answer_depends_on():
    for s in _samples(seed=5, duration_s=30):
        for b in s.boxes:
            assert 0 <= b.x_min < b.x_max <= 1 and 0 <= b.y_min < b.y_max <= 1
            colour, shape = b.label.split()
            assert colour in PALETTE and shape in ('circle', 'square', 'triangle')
            h, w = s.rgb.shape[:2]
            crop = s.rgb[round(b.y_min * h):round(b.y_max * h),
                         round(b.x_min * w):round(b.x_max * w)]
            # Flat shapes fill at least ~45 % of their box (a triangle about half).
            assert _colour_pixels(crop, colour).mean() > 0.4, (s.t_s, b)
        kind = s.question_id.split('/')[0]
        if kind == 'count':
            assert s.answer == str(len(s.boxes))
        elif kind == 'exists':
            assert s.answer == ('yes' if s.boxes else 'no')
        elif kind == 'colour':
            assert s.answer == (s.boxes[0].label.split()[0] if s.boxes else 'none')
        else:
            assert len(s.boxes) == (0 if s.answer == NOT_VISIBLE else 1)


def test_multiple_choice_answers_are_options_matching_the_box_position():
    where = [s for s in _samples(seed=2, duration_s=60, fps=2) if s.choices]
    assert where, 'no location question in 60 s'
    for s in where:
        assert s.choices == WHERE_CHOICES and s.answer in s.choices
        assert all(f'({chr(97 + i)}) {c}' in s.question for i, c in enumerate(s.choices))
        if s.answer != NOT_VISIBLE:
            centre = (s.boxes[0].x_min + s.boxes[0].x_max) / 2
            assert s.answer == ('left', 'centre', 'right')[min(2, int(centre * 3))]
    assert len({s.answer for s in where}) >= 3


def test_questions_switch_every_window_and_answers_change_within_windows():
    samples = _samples(seed=4, duration_s=60, fps=5, episode_s=20, question_every_s=5)
    windows = {}
    for s in samples:
        windows.setdefault((s.episode, int(s.t_s % 20 // 5)), set()).add(s.question_id)
    assert len(windows) == 12 and all(len(ids) == 1 for ids in windows.values())
    ids = [next(iter(windows[k])) for k in sorted(windows)]
    assert all(a != b for a, b in zip(ids, ids[1:]))
    stats = describe(samples)
    assert stats['episodes'] == 3 and stats['windows'] == 12
    assert stats['windows_with_change'] >= 0.75
    assert stats['changes_per_window'] >= 1.5
    assert len(stats['questions_per_type']) >= 3


def test_episodes_have_their_own_layouts():
    samples = _samples(seed=0, duration_s=3, fps=2, episode_s=1)
    assert [s.episode for s in samples] == ['ep000', 'ep000', 'ep001', 'ep001', 'ep002', 'ep002']
    world = SynthWorld(seed=0, **SMALL)
    layouts = [[(t.colour, t.shape) for t in world.episode(i).things] for i in range(4)]
    assert len({tuple(x) for x in layouts}) > 1


def test_progress_and_length_hint_count_frames():
    calls = []
    stream = generate(seed=0, duration_s=1.0, fps=4.0, progress=lambda d, n: calls.append((d, n)),
                      **SMALL)
    assert operator.length_hint(stream) == 4
    next(stream)
    assert operator.length_hint(stream) == 3
    assert len(list(stream)) == 3
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize('kw, match', [
    ({'seed': -1}, 'seed'), ({'fps': 0}, 'fps'), ({'duration_s': float('nan')}, 'duration_s'),
    ({'width': 40}, 'at least'), ({'question_every_s': -5}, 'question_every_s'),
    ({'episode_s': 0}, 'episode_s'),
])
def test_bad_arguments_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        generate(**kw)


def test_pace_plays_the_same_scene_in_slow_motion():
    normal = list(generate(seed=3, duration_s=4.0, fps=5.0, episode_s=20.0))
    slow = list(generate(seed=3, duration_s=8.0, fps=5.0, episode_s=20.0, pace=0.5))
    # At half pace, dataset time 2t shows what normal pace shows at t.
    for i, sample in enumerate(normal):
        assert np.array_equal(slow[2 * i].rgb, sample.rgb)
    with pytest.raises(ValueError, match='pace'):
        generate(pace=1.5)
    fast = describe(generate(seed=3, duration_s=60.0))
    calm = describe(generate(seed=3, duration_s=60.0, pace=0.3))
    assert calm['mean_answer_run_s'] > fast['mean_answer_run_s']


def test_the_focus_mix_asks_about_visible_objects_and_changes_no_frame():
    kw = dict(seed=5, duration_s=80.0, fps=2.0, pace=0.4, question_every_s=8.0, **SMALL)
    default = list(generate(**kw))
    assert [s.question for s in default] == [s.question for s in generate(mix='rotation', **kw)]
    focus = list(generate(mix='focus', **kw))
    for a, b in zip(default, focus):
        assert np.array_equal(a.rgb, b.rgb)
    def visible_where_or_colour(samples):
        return sum(1 for s in samples if s.question_id.split('/')[0] in ('where', 'colour')
                   and s.boxes) / len(samples)
    assert visible_where_or_colour(focus) >= 0.25
    assert visible_where_or_colour(focus) > visible_where_or_colour(default)
    with pytest.raises(ValueError, match='mix'):
        generate(mix='counts', **kw)


def test_world_spec_writes_the_mix_only_when_it_is_not_the_default():
    assert 'mix' not in str(WorldSpec(seed=1))
    spec = WorldSpec.parse('synth:seed=1,mix=focus')
    assert spec.mix == 'focus' and str(spec).endswith(',mix=focus')
    assert WorldSpec.parse(str(spec)) == spec
    # `edgevlm synth` records every field as its repr in the bag
    assert WorldSpec.parse("synth:seed=1,mix='focus'") == spec
    with pytest.raises(ValueError, match='mix'):
        WorldSpec.parse('synth:mix=bad').check()
