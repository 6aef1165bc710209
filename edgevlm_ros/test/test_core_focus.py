# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Visual Focus geometry: the frame ring and optical-flow box propagation on synthetic motion."""

import cv2
from edgevlm_ros.core.focus import BoxPropagator, Frame, FrameRing, Propagation
from edgevlm_ros.core.regions import Box
import numpy as np
import pytest

W, H = 160, 120
_rng = np.random.default_rng(7)
# Smoothed noise: corners everywhere, like a cluttered scene, and no repeating pattern.
CANVAS = cv2.normalize(cv2.GaussianBlur(_rng.integers(0, 256, (400, 700), dtype=np.uint8),
                                        (0, 0), 1.5), None, 0, 255, cv2.NORM_MINMAX)


def _view(dx: int = 0, dy: int = 0) -> np.ndarray:
    """The camera's view when the scene has moved dx px right and dy px down."""
    x0, y0 = 250 - dx, 140 - dy
    return np.ascontiguousarray(CANVAS[y0:y0 + H, x0:x0 + W])


def _px(b: Box) -> np.ndarray:
    return np.array([b.x_min * W, b.y_min * H, b.x_max * W, b.y_max * H])


def _exact(**kwargs) -> BoxPropagator:
    """A propagator without margins, to compare geometry with the truth."""
    return BoxPropagator(growth_per_s=0.0, weak_margin=0.0, **kwargs)


BOXES = [Box.from_pixels(40, 30, 80, 70, W, H, 'cup', 0.9),
         Box.from_pixels(100, 60, 130, 100, W, H, 'laptop'),
         Box.from_pixels(10, 80, 30, 110, W, H, 'bottle')]


# --- FrameRing -------------------------------------------------------------------------------

def test_ring_stores_small_grey_frames_and_evicts_the_oldest():
    ring = FrameRing(capacity=3, width=80)
    for i in range(5):
        assert ring.add(i, i * 0.1, np.zeros((240, 320, 3), np.uint8))
    assert len(ring) == 3 and ring.get(1) is None
    newest = ring.newest()
    assert newest.step_id == 4 and newest.grey.shape == (60, 80) and newest.grey.dtype == np.uint8
    assert [f.step_id for f in ring.span(0, 10)] == [2, 3, 4]
    assert [f.step_id for f in ring.span(3, 3)] == [3]
    assert ring.span(4, 2) == []


def test_ring_keeps_out_of_order_frames_sorted_and_rejects_duplicates():
    ring = FrameRing(capacity=4, width=32)
    grey = np.zeros((24, 32), np.uint8)
    for sid in (5, 2, 9):
        assert ring.add(sid, float(sid), grey)
    assert not ring.add(5, 5.0, grey)
    assert [f.step_id for f in ring.span(0, 100)] == [2, 5, 9]
    assert ring.add(7, 7.0, grey)  # 4 frames: full
    assert not ring.add(1, 1.0, grey)  # older than everything kept: would be evicted at once
    assert [f.step_id for f in ring.span(0, 100)] == [2, 5, 7, 9]


def test_ring_rejects_bad_configuration():
    with pytest.raises(ValueError):
        FrameRing(capacity=0)
    with pytest.raises(ValueError):
        FrameRing(width=4)


# --- propagation -----------------------------------------------------------------------------

def test_translation_is_followed_within_two_pixels():
    # Scene moves 6 px right per frame over 4 frames (18 px). Measured error: < 0.01 px.
    frames = [Frame(i, i * 0.1, _view(dx=6 * i)) for i in range(4)]
    result = _exact().propagate(BOXES, frames)
    assert len(result.boxes) == 3
    for before, after in zip(BOXES, result.boxes):
        truth = _px(before) + [18, 0, 18, 0]
        assert np.abs(_px(after) - truth).max() < 2.0
        assert (after.label, after.score) == (before.label, before.score)
    assert result.age_s == pytest.approx(0.3)
    assert result.tracked_points > 50


def test_diagonal_motion_is_followed_within_two_pixels():
    # 4 px right and 3 px up per frame. Measured error: < 0.01 px.
    frames = [Frame(i, i * 0.1, _view(dx=4 * i, dy=-3 * i)) for i in range(5)]
    result = _exact().propagate(BOXES[:1], frames)
    truth = _px(BOXES[0]) + [16, -12, 16, -12]
    assert np.abs(_px(result.boxes[0]) - truth).max() < 2.0


def test_zoom_scales_the_box_about_the_zoom_centre():
    # Zoom in by 5 % per frame about the image centre (x1.158 over 3 steps). Measured error:
    # about 0.1 px on each side.
    centre = (W / 2, H / 2)
    base = _view()
    frames = []
    for i in range(4):
        m = cv2.getRotationMatrix2D(centre, 0, 1.05 ** i)
        frames.append(Frame(i, i * 0.1, cv2.warpAffine(base, m, (W, H),
                                                       borderMode=cv2.BORDER_REFLECT)))
    m = cv2.getRotationMatrix2D(centre, 0, 1.05 ** 3)
    x1, y1, x2, y2 = _px(BOXES[0])
    truth = (np.array([[x1, y1, 1.0], [x2, y2, 1.0]]) @ m.T).ravel()
    result = _exact().propagate(BOXES[:1], frames)
    assert np.abs(_px(result.boxes[0]) - truth).max() < 2.0


def test_box_without_texture_follows_the_global_motion():
    # A flat patch has no corners of its own; the rest of the scene moves 5 px right per frame.
    canvas = CANVAS.copy()
    canvas[150:190, 300:340] = 128
    frames = []
    for i in range(3):
        x0 = 250 - 5 * i
        frames.append(Frame(i, i * 0.1, np.ascontiguousarray(canvas[140:140 + H, x0:x0 + W])))
    flat = Box.from_pixels(52, 12, 88, 48, W, H, 'wall')
    result = _exact().propagate([flat], frames)
    assert np.abs(_px(result.boxes[0]) - (_px(flat) + [10, 0, 10, 0])).max() < 2.0
    strong = _exact().propagate([BOXES[0]], frames)
    assert result.confidence < strong.confidence


def test_lost_tracking_keeps_the_box_in_place_grown_with_low_confidence():
    other = np.random.default_rng(99).integers(0, 256, (H, W), dtype=np.uint8)
    frames = [Frame(0, 0.0, _view()), Frame(1, 0.1, other)]
    p = BoxPropagator(growth_per_s=0.0, weak_margin=0.02)
    result = p.propagate([BOXES[0]], frames)
    (box,) = result.boxes
    assert np.abs(_px(box) - (_px(BOXES[0]) + [-3.2, -2.4, 3.2, 2.4])).max() < 0.01
    assert result.confidence < 0.2


def test_boxes_grow_with_age():
    still = [Frame(0, 0.0, _view()), Frame(1, 2.0, _view())]
    result = BoxPropagator(growth_per_s=0.05, weak_margin=0.0).propagate([BOXES[0]], still)
    # 2 s * 0.05 = 10 % of the frame wider and taller, half on each side.
    assert _px(result.boxes[0]) == pytest.approx(_px(BOXES[0]) + [-8, -6, 8, 6], abs=0.5)
    assert result.confidence == pytest.approx(1.0 - 2.0 / 5.0, abs=0.05)


def test_confidence_falls_with_age():
    young = BoxPropagator().propagate(BOXES, [Frame(0, 0.0, _view()), Frame(1, 0.2, _view())])
    old = BoxPropagator().propagate(BOXES, [Frame(0, 0.0, _view()), Frame(1, 4.0, _view())])
    assert 0.0 <= old.confidence < young.confidence <= 1.0


def test_too_old_or_no_frames_gives_none():
    p = BoxPropagator(max_age_s=1.0)
    assert p.propagate(BOXES, []) is None
    assert p.propagate(BOXES, [Frame(0, 0.0, _view()), Frame(1, 1.5, _view())]) is None


def test_single_frame_returns_boxes_unchanged_with_age_zero():
    result = BoxPropagator().propagate(BOXES, [Frame(3, 1.0, _view())])
    assert result == Propagation(boxes=BOXES, confidence=1.0, age_s=0.0, tracked_points=0)


def test_box_leaving_the_frame_is_dropped_and_edge_box_is_clipped():
    frames = [Frame(i, i * 0.1, _view(dx=12 * i)) for i in range(4)]  # 36 px right
    leaving = Box.from_pixels(130, 40, 155, 70, W, H, 'leaving')
    edge = Box.from_pixels(100, 40, 140, 70, W, H, 'edge')
    result = _exact().propagate([leaving, edge, BOXES[0]], frames)
    assert [b.label for b in result.boxes] == ['edge', 'cup']
    assert result.boxes[0].x_max == 1.0
    assert result.boxes[0].x_min * W == pytest.approx(136, abs=2)


def test_frames_of_another_size_are_resized():
    frames = [Frame(0, 0.0, _view()), Frame(1, 0.1, cv2.resize(_view(dx=6), (2 * W, 2 * H)))]
    result = _exact().propagate([BOXES[0]], frames)
    assert np.abs(_px(result.boxes[0]) - (_px(BOXES[0]) + [6, 0, 6, 0])).max() < 2.0


def test_empty_and_degenerate_boxes_give_no_boxes():
    frames = [Frame(0, 0.0, _view()), Frame(1, 0.1, _view())]
    assert BoxPropagator().propagate([], frames).boxes == []
    assert BoxPropagator().propagate([Box(0.5, 0.5, 0.5, 0.7)], frames).boxes == []


@pytest.mark.parametrize('kwargs', [{'growth_per_s': -1}, {'max_age_s': 0}, {'min_points': 1},
                                    {'max_corners': 2}, {'weak_margin': 0.9}])
def test_bad_propagator_configuration_raises(kwargs):
    with pytest.raises(ValueError):
        BoxPropagator(**kwargs)


def test_carrying_frame_by_frame_grows_boxes_once_not_per_hop():
    # Flat frames: nothing to track, so every hop is "weak". Margins must come from the total
    # age and the weakest hop, not pile up hop after hop into a whole-frame mask.
    flat = np.full((90, 160), 128, np.uint8)
    frames = [Frame(i, 0.1 * i, flat) for i in range(21)]
    prop = BoxPropagator()
    boxes, quality = [Box(0.4, 0.4, 0.6, 0.6)], 1.0
    for a, b in zip(frames, frames[1:]):
        step = prop.propagate(boxes, [a, b])
        boxes, quality = step.tracked, min(quality, step.quality)
    carried = prop.grow(boxes[0], frames[-1].stamp_s, quality)
    at_once = prop.propagate([Box(0.4, 0.4, 0.6, 0.6)], frames).boxes[0]
    assert carried.width == pytest.approx(at_once.width, abs=1e-6)
    assert carried.width < 0.5
