# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Frame recognition (lvlm/frame_match.py): what the simulated LVLM and the oracle answer by."""

import cv2
from edgevlm_ros.core.images import decode_compressed, encode_jpeg, resize_max_side
from edgevlm_ros.core.records import Truth
from edgevlm_ros.lvlm.frame_match import FrameIndex, ThumbnailIndex, question_matches
import numpy as np
import pytest


def texture(seed: int, h: int = 240, w: int = 320) -> np.ndarray:
    """A distinct random-texture frame (blocky noise, as unlike JPEG noise as a scene is)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def jpeg_copy(rgb: np.ndarray, quality: int = 85, max_side: int = 10_000) -> np.ndarray:
    return decode_compressed(encode_jpeg(resize_max_side(rgb, max_side), quality))


def test_question_matching_rule() -> None:
    assert question_matches('Is it red?', 'is  it RED?')
    assert question_matches('The image is 4x4 pixels.\nIs it red?', 'Is it red?')
    assert not question_matches('Is it reddish red?', 'red?')
    assert not question_matches('Is it red?', '')
    assert question_matches('Context.\n\nWhich?\n(a) red  (b) blue', 'which?\n(a) red (b) blue')


def test_frame_index_recognises_compressed_resized_frames() -> None:
    frames = [(1000 + i, texture(i)) for i in range(6)]
    truths = [Truth(1000 + i, 'ep', 'q1', 'What is it?', f'answer {i}') for i in range(5)]
    index = FrameIndex(frames, truths)  # the last frame has no truth
    for stamp, rgb in frames[:5]:
        found, truth = index.match(jpeg_copy(rgb, 50, 160), 'What is it?')
        assert found.reason == 'matched' and found.stamp_ns == stamp
        assert truth.answer == f'answer {stamp - 1000}'
        assert found.distance < 1.0 < 100.0 < found.nearest_other
    found, truth = index.match(jpeg_copy(frames[5][1]), 'What is it?')
    assert (found.reason, truth) == ('unknown_question', None)  # a frame, but no truth there
    found, truth = index.match(frames[0][1], 'Is it blue?')
    assert (found.reason, found.stamp_ns, truth) == ('unknown_question', 1000, None)
    found, truth = index.match(texture(99), 'What is it?')
    assert (found.reason, truth) == ('unknown_image', None)
    assert found.distance > index.max_distance
    with pytest.raises(ValueError, match='more than 3 frames'):
        FrameIndex(frames, truths, max_frames=3)
    with pytest.raises(ValueError, match='no camera frames'):
        FrameIndex([], truths)


def test_equal_distances_go_to_the_earliest_frame() -> None:
    same = texture(7)
    index = ThumbnailIndex([(5, texture(1)), (10, same), (20, same.copy())])
    found = index.nearest(same)
    assert (found.reason, found.stamp_ns, found.distance, found.nearest_other) == (
        'matched', 10, 0.0, 0.0)
