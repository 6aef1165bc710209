# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Spectral-residual saliency boxes for the embedded cloud stand-in."""

from edgevlm_ros.core.regions import Box
from edgevlm_ros.core.saliency import LABEL, saliency_map, salient_boxes
import numpy as np
import pytest


def _scene(x0: int, y0: int, side: int, seed: int = 0) -> tuple[np.ndarray, Box]:
    """A bright square on a dark textured 640x480 background, and its true box."""
    img = np.random.default_rng(seed).integers(20, 60, (480, 640, 3), dtype=np.uint8)
    img[y0:y0 + side, x0:x0 + side] = 230
    return img, Box.from_pixels(x0, y0, x0 + side, y0 + side, 640, 480)


@pytest.mark.parametrize('x0,y0,side', [(200, 150, 80), (40, 40, 60), (500, 300, 100),
                                        (100, 100, 250)])
def test_bright_square_on_dark_texture_gets_a_box_around_it(x0, y0, side):
    img, truth = _scene(x0, y0, side)
    boxes = salient_boxes(img)
    assert boxes, 'the square must be found'
    top = boxes[0]
    # The 64 px working copy limits precision to a few percent of the frame; measured IoU
    # 0.56 .. 0.86 for these squares.
    assert top.iou(truth) > 0.5
    cx, cy = truth.center()
    assert top.x_min <= cx <= top.x_max and top.y_min <= cy <= top.y_max
    assert top.label == LABEL and 0.0 < top.score <= 1.0


def test_boxes_are_sorted_by_saliency_and_capped():
    img, _ = _scene(80, 80, 120)
    img[300:340, 480:520] = 160  # a second, dimmer and smaller object
    boxes = salient_boxes(img, max_boxes=5)
    assert len(boxes) >= 2
    assert boxes[0].iou(Box.from_pixels(80, 80, 200, 200, 640, 480)) > 0.5
    assert [b.score for b in boxes] == sorted((b.score for b in boxes), reverse=True)
    assert len(salient_boxes(img, max_boxes=1)) == 1
    assert salient_boxes(img, max_boxes=0) == []


def test_min_area_drops_small_regions():
    img, _ = _scene(300, 200, 30)
    assert salient_boxes(img, min_area=0.5) == []


def test_flat_frame_has_no_salient_region():
    assert salient_boxes(np.full((120, 160, 3), 90, np.uint8)) == []
    assert salient_boxes(np.zeros((4, 4, 3), np.uint8)) == []


def test_saliency_is_deterministic_and_accepts_grey():
    img, _ = _scene(200, 150, 80, seed=3)
    assert salient_boxes(img) == salient_boxes(img.copy())
    grey = img[..., 0].copy()
    assert salient_boxes(grey)[0].iou(salient_boxes(img)[0]) > 0.9
    sal = saliency_map(img)
    assert sal.shape == (48, 64) and float(sal.max()) == pytest.approx(1.0)


def test_bad_arguments_raise():
    img, _ = _scene(200, 150, 80)
    with pytest.raises(ValueError):
        salient_boxes(img, max_boxes=-1)
    with pytest.raises(ValueError):
        salient_boxes(img, min_area=2.0)
