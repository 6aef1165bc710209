# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Visual Focus failure cases, carried step by step as context_fusion does.

An object leaving the view, look-alikes crossing, a camera cut, an object behind a pillar: a
cloud answer is carried only while its track holds, so these must end or hold the track right.
"""

import cv2
from edgevlm_ros.core.focus import BoxPropagator, BoxTracker, Frame, FrameRing
from edgevlm_ros.core.regions import Box
from edgevlm_ros.sim.synthworld import WorldSpec
import numpy as np
import pytest
from test_core_focus import BOXES, H, W, _exact, _px, _view

S = 20  # object side, px
# A textured object: LK needs corners on it (flat-coloured ones: their looks, tests below).
OBJ = cv2.normalize(cv2.GaussianBlur(np.random.default_rng(5).integers(0, 256, (S, S),
                                                                       dtype=np.uint8),
                                     (0, 0), 0.8), None, 0, 255, cv2.NORM_MINMAX)
# Another place: coarser texture of its own.
_ELSEWHERE = cv2.normalize(cv2.GaussianBlur(np.random.default_rng(8).integers(
    0, 256, (H, W), dtype=np.uint8), (0, 0), 2.5), None, 0, 255, cv2.NORM_MINMAX)


def _paste(img: np.ndarray, x: int, y: int, patch) -> None:
    """Draw patch (an array, or one colour filling S x S) at x, y, clipped to the image."""
    if not isinstance(patch, np.ndarray):
        patch = np.full((S, S, img.shape[2]) if img.ndim == 3 else (S, S), patch, np.uint8)
    h, w = patch.shape[:2]
    x0, x1, y0, y1 = max(0, x), min(img.shape[1], x + w), max(0, y), min(img.shape[0], y + h)
    if x1 > x0 and y1 > y0:
        img[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]


def _carry(prop: BoxPropagator, boxes: list[Box], images, dt: float = 0.1):
    """
    Keep images in a FrameRing and carry boxes one step at a time, as context_fusion does.

    Each call spans the step the boxes are on to the new one (FrameRing.span), so propagate
    continues its track. Yields (step, result).
    """
    ring = FrameRing(64, W)
    for i, img in enumerate(images):
        ring.add(i, dt * i, img)
        if i:
            result = prop.propagate(boxes, ring.span(i - 1, i))
            boxes = result.tracked
            yield i, result


def _centre(b: Box) -> np.ndarray:
    x1, y1, x2, y2 = _px(b)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2])


def _by_label(boxes: list[Box]) -> dict[str, Box]:
    return {b.label: b for b in boxes}


# --- an object leaving the view ------------------------------------------------------------

@pytest.mark.parametrize('min_visible', [0.25, 0.5])
@pytest.mark.parametrize('mover', ['object', 'camera'])
def test_box_of_an_object_leaving_the_view_is_dropped_and_the_other_kept(mover, min_visible):
    # 'object': it moves 3 px right per step over a still scene; 'camera': the camera pans and
    # the whole scene moves 3 px right per step. The box is dropped once less than min_visible
    # of it is in view (measured: on the object within 0.1 px until then); the other stays.
    pan = 3 if mover == 'camera' else 0
    images, truth = [], []
    for i in range(26):
        img = _view(dx=pan * i).copy()
        x, other = 100 + 3 * i, 40 + pan * i
        _paste(img, x, 50, OBJ)
        _paste(img, other, 20, OBJ[::-1])
        images.append(img)
        truth.append((x, other))
    boxes = [Box.from_pixels(100, 50, 100 + S, 70, W, H, 'leaving'),
             Box.from_pixels(40, 20, 40 + S, 40, W, H, 'staying')]
    prop = BoxPropagator(growth_per_s=0.0, weak_margin=0.0, min_visible=min_visible)
    seen = {'in view': 0, 'gone': 0}
    for i, result in _carry(prop, boxes, images):
        x, other = truth[i]
        visible = min(1.0, max(0.0, (W - x) / S))
        tracked, grown = _by_label(result.tracked), _by_label(result.boxes)
        assert np.abs(_px(tracked['staying']) - [other, 20, other + S, 40]).max() < 1.0, i
        assert 'staying' in grown
        if visible >= min_visible + 0.1:
            seen['in view'] += 1
            assert 'leaving' in tracked and 'leaving' in grown, f'step {i}: dropped too early'
            assert np.abs(_px(tracked['leaving']) - [x, 50, min(W, x + S), 70]).max() < 1.0, i
        elif visible <= min_visible - 0.1:
            seen['gone'] += 1
            assert 'leaving' not in tracked and 'leaving' not in grown, f'step {i}: kept'
        assert not result.cut
    assert seen['in view'] >= 5 and seen['gone'] >= 5


# --- look-alikes crossing ------------------------------------------------------------------

def _crossing(dy: int, front: str, speed: int, patch, colour: bool = False):
    """A moves right from x=30, B left from x=110 in a lane dy px lower; `front` is drawn last."""
    images, truth = [], []
    for i in range(80 // speed + 1):
        img = np.dstack([_view()] * 3) if colour else _view().copy()
        a, b = (30 + speed * i, 40), (110 - speed * i, 40 + dy)
        for x, y in ([b, a] if front == 'a' else [a, b]):
            _paste(img, x, y, patch)
        images.append(img)
        truth.append({'A': np.array(a) + S / 2, 'B': np.array(b) + S / 2})
    boxes = [Box.from_pixels(30, 40, 30 + S, 40 + S, W, H, 'A'),
             Box.from_pixels(110, 40 + dy, 110 + S, 40 + dy + S, W, H, 'B')]
    return images, truth, boxes


@pytest.mark.parametrize('speed', [3, 5])
@pytest.mark.parametrize('front', ['a', 'b'])
@pytest.mark.parametrize('dy', [30, 12, 0])
def test_look_alikes_crossing_each_keep_their_box(dy, front, speed):
    # Two objects of one look (the same texture) cross in x: in lanes 30 px apart (no overlap),
    # 12 px apart (8 of 20 rows overlap) and in one lane (one passes right in front of the
    # other). Each box stays on its own object. Measured: <= 0.1 px off every step. (In lanes
    # 12 px apart at 5 px per step, the box of B lost its points on its second step, before any
    # crossing, and coasted at half its speed while the first velocity measurement was averaged
    # with the still prior: it ended 37 px behind.)
    images, truth, boxes = _crossing(dy, front, speed, OBJ)
    for i, result in _carry(_exact(), boxes, images):
        tracked = _by_label(result.tracked)
        assert set(tracked) == {'A', 'B'}, f'step {i}'
        for label, box in tracked.items():
            err = np.abs(_centre(box) - truth[i][label]).max()
            assert err < 2.0, f'step {i}: {label} is {err:.1f} px off'
    assert _centre(tracked['A'])[0] - _centre(tracked['B'])[0] > 60  # they did cross


@pytest.mark.parametrize('front', ['a', 'b'])
def test_flat_coloured_squares_crossing_keep_their_boxes(front):
    # Two red squares (flat, like the synthetic world's objects: no corners of their own)
    # crossing in lanes 12 px apart. Their boxes follow their looks (core.focus._Template);
    # while both are in the search window neither match is distinct and they coast, and the
    # one behind never takes the place of the one in front. Measured: <= 1 px off, quality
    # >= 0.88 every step. (Before the looks, both boxes stayed where they were drawn, with
    # quality 0.5: following the camera.)
    images, truth, boxes = _crossing(12, front, 3, (220, 30, 30), colour=True)
    for i, result in _carry(_exact(), boxes, images):
        tracked = _by_label(result.tracked)
        assert set(tracked) == {'A', 'B'}, f'step {i}'
        for label, box in tracked.items():
            err = np.abs(_centre(box) - truth[i][label]).max()
            assert err < 2.0, f'step {i}: {label} is {err:.1f} px off'
        assert min(result.qualities) >= 0.6, f'step {i}'
    assert _centre(tracked['A'])[0] - _centre(tracked['B'])[0] > 60  # they did cross


@pytest.mark.parametrize('speed', [3, 4])
def test_flat_coloured_object_behind_a_pillar_is_not_vouched_for_while_hidden(speed):
    # A flat red square moves right behind a flat grey pillar (22 px) while the camera drifts
    # 1 px left per step. Its box follows it by its look while it is seen (quality >= 0.6), and
    # coasts behind the pillar with quality at most 0.5 (_UNSEEN_QUALITY: background points
    # that join a box do not vouch for an object not seen there); once the square is out again
    # its look is found and the quality is back. Measured: <= 0.5 px off while wholly seen
    # (<= 2.9 px while coasting), quality 0.86-1 then, 0.5 from when it starts going behind.
    images, truth, visible = [], [], []
    for i in range(34):
        img = np.dstack([_view(dx=-i)] * 3)
        x, pillar = 30 + (speed - 1) * i, 80 - i
        _paste(img, x, 50, (220, 30, 30))
        img[:, max(0, pillar):pillar + 22] = 100
        images.append(img)
        truth.append(np.array([x + S / 2, 60.0]))
        visible.append(min(1.0, (max(0, pillar - x) + max(0, x + S - pillar - 22)) / S))
    quality, hidden, seen = {}, [], []
    for i, result in _carry(_exact(), [Box.from_pixels(30, 50, 30 + S, 70, W, H, 'sq')],
                            images):
        (box,) = result.tracked
        quality[i] = result.quality
        if all(v == 1.0 for v in visible[max(1, i - 1):i + 1]):
            seen.append(i)
            assert np.abs(_centre(box) - truth[i]).max() < 1.0, f'step {i}'
        elif visible[i] <= 0.25:
            hidden.append(i)
    assert len(hidden) >= 3 and len([i for i in seen if i > max(hidden)]) >= 3
    assert all(quality[i] >= 0.6 for i in seen), {i: quality[i] for i in seen}
    assert all(quality[i] <= 0.5 for i in hidden), {i: quality[i] for i in hidden}


# --- scene cuts ----------------------------------------------------------------------------

def _other_scene() -> np.ndarray:
    img = _ELSEWHERE.copy()
    img[10:40, 20:60] = 230  # other objects
    img[70:100, 100:150] = 30
    return img


@pytest.mark.parametrize('view', ['elsewhere', 'noise', 'lens covered'])
def test_scene_cut_ends_the_track_and_says_why(view):
    # The camera pans 2 px per step with a ball moving in it; at step 6 the view becomes
    # another place (other texture and objects), noise, or a flat grey (a covered lens).
    after = {'elsewhere': _other_scene(),
             'noise': np.random.default_rng(99).integers(0, 256, (H, W), dtype=np.uint8),
             'lens covered': np.full((H, W), 90, np.uint8)}[view]
    images = []
    for i in range(6):
        img = _view(dx=2 * i).copy()
        _paste(img, 40 + 4 * i, 60, OBJ)
        images.append(img)
    images += [after] * 3
    prop = _exact()
    results = dict(_carry(prop, BOXES[:2] + [Box.from_pixels(40, 60, 60, 80, W, H, 'ball')],
                          images))
    for i in range(1, 6):
        assert not results[i].cut and len(results[i].tracked) == 3, f'step {i}'
    cut = results[6]
    assert cut.cut
    assert (cut.tracked, cut.boxes, cut.qualities) == ([], [], [])
    assert cut.quality == 0.0 and cut.confidence == 0.0
    # A late answer carried over the cut at once is cut too.
    ring = FrameRing(64, W)
    for i, img in enumerate(images):
        ring.add(i, 0.1 * i, img)
    at_once = _exact().propagate(BOXES, ring.span(0, 7))
    assert at_once.cut and at_once.tracked == [] and at_once.boxes == []
    # A box drawn on the new view is carried as usual.
    if view == 'elsewhere':
        fresh = _exact().propagate([Box(0.1, 0.1, 0.4, 0.4)], ring.span(6, 7))
        assert not fresh.cut
        assert np.abs(_px(fresh.tracked[0]) - [16, 12, 64, 48]).max() < 0.01


def test_tracker_after_a_cut_carries_nothing():
    frames = [Frame(0, 0.0, _view()), Frame(1, 0.1, _other_scene()),
              Frame(2, 0.2, _other_scene())]
    tracker = BoxTracker(BOXES, frames[0], _exact())
    assert not tracker.cut
    tracker.step(frames[1])
    assert tracker.cut and tracker.boxes() == []
    tracker.step(frames[2])
    result = tracker.result()
    assert result.cut and result.tracked == [] and result.age_s == pytest.approx(0.2)


def test_normal_motion_is_not_a_cut():
    # 40 steps: the camera drifts (up to 6 px and 2 px), a ball passes behind a flat pillar,
    # another object leaves the view, a third stands still. No step is a cut and the boxes
    # do what they should.
    images, ball, leaving = [], [], []
    for i in range(40):
        cx, cy = round(6 * np.sin(i / 6)), round(2 * np.sin(i / 4))
        img = _view(dx=cx, dy=cy).copy()
        _paste(img, 20 + 3 * i + cx, 80 + cy, OBJ)          # passes behind the pillar
        _paste(img, 100 + 4 * i + cx, 15 + cy, OBJ[:, ::-1])  # leaves at about step 14
        _paste(img, 130 + cx, 80 + cy, OBJ.T)                 # stands still
        img[:, 70 + cx:92 + cx] = 100                         # the pillar, in the scene
        images.append(img)
        ball.append(np.array([20 + 3 * i + cx, 80 + cy]) + S / 2)
        leaving.append((W - 100 - 4 * i - cx) / S)  # share of it in view, when < 1
    boxes = [Box.from_pixels(20, 80, 40, 100, W, H, 'ball'),
             Box.from_pixels(100, 15, 120, 35, W, H, 'leaving'),
             Box.from_pixels(130, 80, 150, 100, W, H, 'still')]
    for i, result in _carry(_exact(), boxes, images):
        assert not result.cut, f'step {i}'
        tracked = _by_label(result.tracked)
        assert 'still' in tracked, f'step {i}'
        if leaving[i] >= 0.35 or leaving[i] <= 0.15:
            assert ('leaving' in tracked) == (leaving[i] >= 0.35), f'step {i}'
        assert np.abs(_centre(tracked['ball']) - ball[i]).max() < 1.0, f'step {i}'


@pytest.mark.parametrize('change', ['light', 'blur', 'wall'])
def test_a_changed_but_same_view_is_not_a_cut(change):
    # Light +20 grey levels, a blur (focus), or a flat wall covering 3/8 of the view at once
    # while the camera moves 3 px: not cuts. Next to the wall LK's backward flow fails (for 92 %
    # of the global points, though 38 % still find their patches beside it), so the global
    # motion is lost and the box, half under the wall, stays where it was with quality 0.
    before, view = _view(), _view(dx=3)
    wall = view.copy()
    wall[:, 60:120] = 100
    after = {'light': cv2.add(view, 20), 'blur': cv2.GaussianBlur(view, (0, 0), 1.5),
             'wall': wall}[change]
    result = _exact().propagate([BOXES[0]], [Frame(0, 0.0, before), Frame(1, 0.1, after)])
    assert not result.cut and len(result.tracked) == 1
    if change == 'wall':
        assert np.abs(_px(result.tracked[0]) - _px(BOXES[0])).max() < 0.01
        assert result.quality == 0.0
    else:
        assert np.abs(_px(result.tracked[0]) - (_px(BOXES[0]) + [3, 0, 3, 0])).max() < 0.5


@pytest.mark.parametrize('seed', [0, 11])
def test_synthetic_world_cuts_only_at_episode_switches(seed):
    # 40 s at 2 steps/s, 512 px frames kept at 160 px grey as context_fusion's ring does: the
    # episode switch at 20 s (new background, objects, pillars) is a cut, no other step is.
    # Measured over 8 seeds x 60 s: normal steps keep >= 0.65 of the global corners, switches
    # <= 0.18.
    spec = WorldSpec(seed=seed, duration=40, fps=2, width=512, height=384)
    samples = list(spec.generate())
    box = Box(0.3, 0.3, 0.7, 0.7)
    prop, boxes, cuts = BoxPropagator(), [box], []
    ring = FrameRing(64, 160)
    for i, s in enumerate(samples):
        ring.add(i, s.t_s, s.rgb)
        if i:
            result = prop.propagate(boxes, ring.span(i - 1, i))
            if result.cut:
                cuts.append(i)
            boxes = result.tracked or [box]  # a lost track: a new answer starts another
    switches = [i for i in range(1, len(samples))
                if samples[i].episode != samples[i - 1].episode]
    assert switches == [40] and cuts == switches
    assert ring.newest().grey.shape == (120, 160)


# --- an object behind a pillar -------------------------------------------------------------

@pytest.mark.parametrize('start, speed', [(40, 3), (66, 4)])
def test_object_behind_a_pillar_keeps_its_box_at_lower_quality(start, speed):
    # A ball moves right behind a flat grey pillar (22 px) while the camera drifts 1 px left
    # per step; (66, 4): hidden from its second step on. The box is never dropped and stays on
    # the ball (measured: <= 0.1 px), its quality falls from >= 0.9 to 0.5 while the ball is
    # mostly hidden: half the share of global corners agreeing on the camera's motion (all of
    # them here), what a box following the camera gets. It is >= 0.6 again once the ball is back.
    # (66, 4) was 10 px behind at the pillar's far side before the first velocity measurement
    # replaced the still prior, and ended 43 px off with quality 1 on the background.
    images, truth, visible = [], [], []
    for i in range(min(32, (W - S - start) // (speed - 1) + 1)):
        img = _view(dx=-i).copy()
        x, pillar = start + (speed - 1) * i, 90 - i
        _paste(img, x, 50, OBJ)
        img[:, pillar:pillar + 22] = 100
        images.append(img)
        truth.append(np.array([x, 50, x + S, 70.0]))
        visible.append(min(1.0, (max(0, pillar - x) + max(0, x + S - pillar - 22)) / S))
    quality = {}
    for i, result in _carry(_exact(), [Box.from_pixels(*truth[0], W, H, 'ball')], images):
        (box,) = result.tracked
        assert np.abs(_px(box) - truth[i]).max() < 1.0, f'step {i}'
        quality[i] = result.quality
    hidden = [i for i in quality if visible[i] <= 0.25]
    back = [i for i in quality if all(v == 1.0 for v in visible[i - 2:i + 1])
            and i > max(hidden)]
    assert len(hidden) >= 3 and len(back) >= 3
    assert quality[1] >= 0.9
    assert all(0.45 <= quality[i] <= 0.5 for i in hidden), [quality[i] for i in hidden]
    assert min(quality[i] for i in back) >= 0.6
