# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Crop/zoom and overlay fallback of Visual Focus for edge backends without attention access."""

from edgevlm_ros.core.regions import Box
from edgevlm_ros.core.zoom import (
    SELECT_MODES,
    ZOOM_MODES,
    Crop,
    focus_crop,
    focus_view,
    overlay_focus,
)
from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

W, H = 640, 480
FRAME = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _rect(crop: Crop) -> tuple[int, int, int, int]:
    return crop.x0, crop.y0, crop.x1, crop.y1


def test_crop_is_the_box_with_context_margin():
    box = Box.from_pixels(200, 150, 360, 270, W, H, 'cup')  # 160 x 120
    crop = focus_crop(FRAME, [box], margin=0.25, min_side=0.0)
    # 25 % of the box's size on each side: 240 x 180 around the box centre (280, 210).
    assert crop.zoomed and crop.reason == 'zoom'
    assert _rect(crop) == (160, 120, 400, 300)
    assert np.array_equal(crop.image, FRAME[120:300, 160:400])
    assert not np.shares_memory(crop.image, FRAME)  # a copy


def test_small_boxes_give_at_least_min_side_of_the_frame():
    tiny = Box.from_pixels(300, 200, 310, 210, W, H)
    crop = focus_crop(FRAME, [tiny], min_side=0.3)
    assert crop.width == pytest.approx(0.3 * W, abs=1) and crop.height == pytest.approx(
        0.3 * H, abs=1)
    assert crop.x0 <= 300 and crop.x1 >= 310 and crop.y0 <= 200 and crop.y1 >= 210


def test_elongated_boxes_are_padded_to_the_aspect_limit():
    pole = Box.from_pixels(300, 40, 320, 440, W, H)  # 20 x 400
    crop = focus_crop(FRAME, [pole], margin=0.0, min_side=0.0, max_aspect=2.0)
    assert crop.height == 400 and crop.width == 200
    wide = focus_crop(FRAME, [Box.from_pixels(100, 200, 500, 210, W, H)], margin=0.0,
                      min_side=0.0, max_aspect=2.0)
    assert (wide.width, wide.height) == (400, 200)


def test_a_crop_at_the_edge_is_moved_inside_not_cut():
    corner = Box.from_pixels(600, 440, 640, 480, W, H)
    crop = focus_crop(FRAME, [corner], margin=0.5, min_side=0.25)
    assert (crop.x1, crop.y1) == (W, H)
    assert crop.width == 160 and crop.height == 120  # min_side: a quarter of the frame


def test_boxes_covering_most_of_the_frame_are_not_zoomed():
    big = Box(0.05, 0.05, 0.9, 0.9)
    crop = focus_crop(FRAME, [big])
    assert not crop.zoomed and crop.reason == 'covers_frame'
    assert _rect(crop) == (0, 0, W, H) and crop.image is FRAME


def test_far_apart_boxes_union_or_best_cluster():
    left = Box.from_pixels(20, 200, 100, 280, W, H, 'cup', 0.4)
    right_a = Box.from_pixels(480, 180, 560, 260, W, H, 'door', 0.5)
    right_b = Box.from_pixels(560, 200, 620, 280, W, H, 'handle', 0.5)
    union = focus_crop(FRAME, [left, right_a, right_b])
    assert not union.zoomed and union.reason == 'covers_frame'
    best = focus_crop(FRAME, [left, right_a, right_b], select='best')
    assert best.zoomed and best.x0 > 100 and best.x0 <= 480 and best.x1 >= 620


def test_no_boxes_or_all_below_min_score_give_the_whole_frame():
    assert focus_crop(FRAME, []).reason == 'no_boxes'
    weak = Box(0.4, 0.4, 0.5, 0.5, score=0.1)
    crop = focus_crop(FRAME, [weak, Box(0.5, 0.5, 0.5, 0.9)], min_score=0.5)
    assert not crop.zoomed and crop.reason == 'no_boxes'


def test_boxes_map_between_crop_and_frame():
    crop = focus_crop(FRAME, [Box.from_pixels(200, 150, 360, 270, W, H)], min_side=0.0)
    # The model answers 'the middle of what you saw' -> the middle of the crop in the frame.
    mid = crop.to_frame(Box(0.25, 0.25, 0.75, 0.75, 'cup', 0.7))
    assert mid.to_pixels(W, H) == (220, 165, 340, 255) and (mid.label, mid.score) == ('cup', 0.7)
    back = crop.to_crop(mid)
    assert (back.x_min, back.y_min, back.x_max, back.y_max) == pytest.approx(
        (0.25, 0.25, 0.75, 0.75))
    assert crop.to_crop(Box(0.0, 0.0, 0.1, 0.1)).is_empty  # outside the crop
    assert crop.rect.to_pixels(W, H) == _rect(crop)


def test_grey_and_rgba_frames_are_cropped_too():
    grey = FRAME[:, :, 0].copy()
    crop = focus_crop(grey, [Box(0.4, 0.4, 0.5, 0.5)])
    assert crop.image.ndim == 2 and crop.zoomed
    rgba = np.dstack([FRAME, np.full((H, W), 255, np.uint8)])
    assert focus_crop(rgba, [Box(0.4, 0.4, 0.5, 0.5)]).image.shape[2] == 4


@pytest.mark.parametrize('kwargs', [{'margin': -0.1}, {'min_side': 1.5}, {'max_aspect': 0.5},
                                    {'max_cover': 0.0}, {'select': 'largest'}])
def test_bad_crop_settings_raise(kwargs):
    with pytest.raises(ValueError):
        focus_crop(FRAME, [Box(0.4, 0.4, 0.5, 0.5)], **kwargs)


@pytest.mark.parametrize('image', [np.zeros((0, 5, 3), np.uint8), np.zeros((4, 4, 3), float),
                                   np.zeros((4, 4, 2), np.uint8), [[0]]])
def test_bad_images_raise(image):
    with pytest.raises(ValueError, match='image'):
        focus_crop(image, [])


_boxes = st.lists(st.builds(lambda x, y, bw, bh, s: Box(x, y, x + bw, y + bh, score=s),
                            st.floats(-0.1, 1.0), st.floats(-0.1, 1.0), st.floats(-0.05, 0.4),
                            st.floats(-0.05, 0.4), st.floats(0, 1)), max_size=4)


@settings(max_examples=400, deadline=None)
@given(_boxes, st.integers(8, 700), st.integers(8, 500), st.floats(0, 1), st.floats(0, 0.6),
       st.floats(1, 4), st.floats(0.3, 1), st.sampled_from(SELECT_MODES))
def test_crop_properties(boxes, w, h, margin, min_side, max_aspect, max_cover, select):
    image = np.zeros((h, w), np.uint8)
    crop = focus_crop(image, boxes, margin=margin, min_side=min_side, max_aspect=max_aspect,
                      max_cover=max_cover, select=select)
    assert 0 <= crop.x0 < crop.x1 <= w and 0 <= crop.y0 < crop.y1 <= h
    assert crop.image.shape == (crop.height, crop.width)
    if not crop.zoomed:
        assert _rect(crop) == (0, 0, w, h)
        return
    assert crop.width * crop.height < max_cover * w * h + w + h  # rounding adds < 1 px a side
    assert crop.width >= min_side * w - 1 and crop.height >= min_side * h - 1
    valid = [b.clipped() for b in boxes if not b.clipped().is_empty]
    if select == 'union':  # every box is inside, unless the frame itself is too small
        for b in valid:
            x1, y1, x2, y2 = b.x_min * w, b.y_min * h, b.x_max * w, b.y_max * h
            assert crop.x0 <= x1 + 1e-6 and x2 <= crop.x1 + 1e-6
            assert crop.y0 <= y1 + 1e-6 and y2 <= crop.y1 + 1e-6
    long, short = max(crop.width, crop.height), min(crop.width, crop.height)
    assert long <= max_aspect * short + 2 or crop.width == w or crop.height == h


# --- overlay ---------------------------------------------------------------------------------

def test_overlay_dims_outside_outlines_boxes_and_leaves_the_input_alone():
    frame = np.full((H, W, 3), 200, np.uint8)
    box = Box.from_pixels(100, 100, 300, 200, W, H)
    out = overlay_focus(frame, [box], dim=0.5, colour=(255, 0, 0), thickness=2)
    assert (frame == 200).all()  # a copy
    assert (out[150, 200] == 200).all()            # inside: unchanged
    assert (out[10, 10] == 100).all()              # outside: half as bright
    assert (out[100, 200] == (255, 0, 0)).all() and (out[101, 200] == (255, 0, 0)).all()
    assert (out[102, 200] == 200).all()            # 2 px outline
    assert (out[150, 299] == (255, 0, 0)).all()    # right edge, inside the box


def test_overlay_on_grey_uses_the_colour_brightness_and_no_boxes_change_nothing():
    grey = np.full((H, W), 200, np.uint8)
    out = overlay_focus(grey, [Box(0.1, 0.1, 0.5, 0.5)], colour=(30, 60, 90), thickness=1)
    assert out[int(0.1 * H), int(0.3 * W)] == 60 and out[H - 1, W - 1] == 100
    assert np.array_equal(overlay_focus(grey, []), grey)


def test_overlay_bad_settings_raise():
    with pytest.raises(ValueError):
        overlay_focus(FRAME, [], dim=1.5)
    with pytest.raises(ValueError):
        overlay_focus(FRAME, [], thickness=-1)


def test_focus_view_modes():
    box = Box(0.4, 0.4, 0.5, 0.5)
    assert ZOOM_MODES == ('off', 'crop', 'overlay')
    image, crop = focus_view(FRAME, [box], 'off')
    assert image is FRAME and not crop.zoomed and crop.reason == 'off'
    image, crop = focus_view(FRAME, [box], 'crop', min_side=0.2)
    assert crop.zoomed and image.shape == (crop.height, crop.width, 3)
    image, crop = focus_view(FRAME, [box], 'overlay', dim=0.3)
    assert image.shape == FRAME.shape and not np.array_equal(image, FRAME)
    assert crop.reason == 'overlay' and crop.image is image
    with pytest.raises(ValueError, match='mode'):
        focus_view(FRAME, [box], 'blur')
