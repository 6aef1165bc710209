# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Boxes and the LVLM reply parser."""

import math

from edgevlm_ros.core.regions import BOX_FORMATS, Box, LvlmReply, parse_lvlm_reply
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

W, H = 640, 480


def _px(box: Box) -> tuple[float, float, float, float]:
    return (box.x_min * W, box.y_min * H, box.x_max * W, box.y_max * H)


def test_box_geometry():
    b = Box(0.1, 0.2, 0.5, 0.6, 'cup', 0.9)
    assert b.width == pytest.approx(0.4) and b.height == pytest.approx(0.4)
    assert b.area == pytest.approx(0.16)
    assert b.center() == pytest.approx((0.3, 0.4))
    assert not b.is_empty
    assert b.to_pixels(100, 50) == (10, 10, 50, 30)


def test_clipped_orders_and_clamps():
    b = Box(1.2, 0.8, -0.5, 0.1, 'x').clipped()
    assert (b.x_min, b.y_min, b.x_max, b.y_max) == (0.0, 0.1, 1.0, 0.8)
    assert b.label == 'x'


def test_nan_box_is_empty_and_clips_to_zero_area():
    b = Box(math.nan, 0.1, 0.5, 0.5)
    assert b.is_empty and b.area == 0.0 and b.iou(Box(0, 0, 1, 1)) == 0.0


def test_from_pixels_round_trips_through_to_pixels():
    b = Box.from_pixels(64, 48, 320, 240, W, H, 'a', 0.5)
    assert (b.x_min, b.y_min, b.x_max, b.y_max) == (0.1, 0.1, 0.5, 0.5)
    assert b.to_pixels(W, H) == (64, 48, 320, 240)
    with pytest.raises(ValueError):
        Box.from_pixels(0, 0, 1, 1, 0, 10)


def test_iou():
    a = Box(0.0, 0.0, 0.5, 0.5)
    assert a.iou(a) == pytest.approx(1.0)
    assert a.iou(Box(0.5, 0.5, 1.0, 1.0)) == 0.0
    assert a.iou(Box(0.25, 0.0, 0.75, 0.5)) == pytest.approx(1 / 3)


@given(st.lists(st.floats(-2, 2) | st.just(math.nan), min_size=4, max_size=4))
def test_clipped_box_is_always_inside_the_frame(coords):
    b = Box(*coords).clipped()
    assert 0.0 <= b.x_min <= b.x_max <= 1.0 and 0.0 <= b.y_min <= b.y_max <= 1.0


def test_qwen25_absolute_pixels_json_object():
    text = ('{"answer": "A red cup on the table.", "objects": '
            '[{"label": "cup", "bbox_2d": [64, 48, 320, 240]}]}')
    r = parse_lvlm_reply(text, (W, H))
    assert r == LvlmReply('A red cup on the table.', [Box(0.1, 0.1, 0.5, 0.5, 'cup')], True)


def test_fenced_bare_list_in_prose_uses_text_outside_as_answer():
    text = ('The cup is left of the laptop.\n```json\n[{"bbox_2d": [64, 48, 320, 240], '
            '"label": "cup"}, {"bbox_2d": [400, 100, 600, 300], "label": "laptop"}]\n```')
    r = parse_lvlm_reply(text, (W, H), 'pixels')
    assert r.structured
    assert r.answer == 'The cup is left of the laptop.'
    assert [b.label for b in r.boxes] == ['cup', 'laptop']
    assert _px(r.boxes[1]) == pytest.approx((400, 100, 600, 300))


def test_labels_become_the_answer_when_there_is_no_other_text():
    r = parse_lvlm_reply('[{"bbox_2d": [1, 2, 30, 40], "label": "cup"}, '
                         '{"bbox_2d": [5, 5, 50, 50], "label": "cup"}, '
                         '{"bbox_2d": [5, 5, 50, 50], "label": "dog"}]', (W, H))
    assert r.answer == 'cup, dog'


def test_json_inside_prose_without_fences():
    text = 'Sure. {"answer": "Two people.", "boxes": [{"box": [0.1, 0.1, 0.3, 0.9], ' \
           '"confidence": 0.7}]} Hope this helps.'
    r = parse_lvlm_reply(text, (W, H))
    assert r.answer == 'Two people.'
    assert r.boxes == [Box(0.1, 0.1, 0.3, 0.9, '', 0.7)]


@pytest.mark.parametrize('key', ['bbox_2d', 'bbox', 'box', 'box_2d'])
def test_alternative_box_keys(key):
    r = parse_lvlm_reply(f'[{{"label": "x", "{key}": [0.2, 0.2, 0.4, 0.4], "score": 0.3}}]',
                         (W, H))
    assert r.boxes == [Box(0.2, 0.2, 0.4, 0.4, 'x', 0.3)]


def test_plain_text_has_no_boxes():
    r = parse_lvlm_reply('  The path ahead is clear.\n', (W, H))
    assert r == LvlmReply('The path ahead is clear.', [], False)


def test_auto_reads_coordinates_beyond_the_image_as_grid1000():
    # 900 > 640 px wide but <= 1000: a Qwen2-VL / Qwen3-VL 0..1000 grid.
    r = parse_lvlm_reply('[{"bbox_2d": [500, 250, 900, 750], "label": "a"}]', (W, H))
    assert r.boxes == [Box(0.5, 0.25, 0.9, 0.75, 'a')]


def test_auto_reads_small_coordinates_as_pixels_and_large_ones_as_pixels_clipped():
    r = parse_lvlm_reply('[{"bbox_2d": [64, 48, 320, 240]}]', (W, H))
    assert _px(r.boxes[0]) == pytest.approx((64, 48, 320, 240))
    big = parse_lvlm_reply('[{"bbox_2d": [1000, 700, 1500, 1100]}]', (1600, 1200))
    assert _px(big.boxes[0]) == pytest.approx((1000 * 640 / 1600, 700 * 480 / 1200,
                                               1500 * 640 / 1600, 1100 * 480 / 1200))


def test_explicit_formats():
    text = '[{"bbox_2d": [100, 100, 500, 500]}]'
    assert parse_lvlm_reply(text, (W, H), 'grid1000').boxes[0] == Box(0.1, 0.1, 0.5, 0.5)
    assert parse_lvlm_reply(text, (1000, 1000), 'pixels').boxes[0] == Box(0.1, 0.1, 0.5, 0.5)
    r = parse_lvlm_reply('[{"bbox_2d": [0.1, 0.1, 0.5, 0.5]}]', (W, H), 'normalized')
    assert r.boxes[0] == Box(0.1, 0.1, 0.5, 0.5)


def test_boxes_are_clipped_to_the_image():
    r = parse_lvlm_reply('[{"bbox_2d": [-20, 100, 700, 500]}]', (W, H), 'pixels')
    assert r.boxes == [Box(0.0, 100 / H, 1.0, 1.0)]


def test_invalid_boxes_are_dropped_and_valid_ones_kept():
    text = ('{"answer": "ok", "objects": ['
            '{"label": "nan", "bbox_2d": [NaN, 1, 2, 3]},'
            '{"label": "text", "bbox_2d": ["a", 1, 2, 3]},'
            '{"label": "short", "bbox_2d": [1, 2, 3]},'
            '{"label": "flat", "bbox_2d": [10, 10, 10, 50]},'
            '{"label": "outside", "bbox_2d": [700, 500, 800, 600]},'
            '{"label": "bool", "bbox_2d": [true, 1, 20, 30]},'
            '{"label": "good", "bbox_2d": [10, 10, 50, 50]}]}')
    r = parse_lvlm_reply(text, (W, H), 'pixels')
    assert [b.label for b in r.boxes] == ['good']


def test_trailing_commas_are_tolerated():
    r = parse_lvlm_reply('```json\n{"answer": "x", "objects": [{"label": "a", '
                         '"bbox_2d": [1, 2, 30, 40],},]}\n```', (W, H))
    assert r.structured and r.answer == 'x' and len(r.boxes) == 1


def test_truncated_json_keeps_the_answer():
    r = parse_lvlm_reply('{"answer": "A \\"big\\" dog.", "objects": [{"label": "dog", "bb',
                         (W, H))
    assert r.answer == 'A "big" dog.' and r.boxes == [] and not r.structured


def test_qwen2_native_grounding_tokens():
    text = ('The <|object_ref_start|>dog<|object_ref_end|><|box_start|>(100,200),(400,800)'
            '<|box_end|> is asleep.')
    r = parse_lvlm_reply(text, (W, H))
    assert r.answer == 'The dog is asleep.'
    assert r.boxes == [Box(0.1, 0.2, 0.4, 0.8, 'dog')]


def test_unrelated_json_is_not_structured():
    r = parse_lvlm_reply('Use {"temperature": 0.1} for this.', (W, H))
    assert r == LvlmReply('Use {"temperature": 0.1} for this.', [], False)


def test_invalid_box_format_raises():
    assert BOX_FORMATS == ('auto', 'pixels', 'grid1000', 'normalized')
    with pytest.raises(ValueError, match='box_format'):
        parse_lvlm_reply('x', (W, H), 'xyxy')
    with pytest.raises(ValueError, match='image_size'):
        parse_lvlm_reply('x', (0, H))


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list('{}[]":,0123456789.-abox_2dlnswer ')), max_size=200))
def test_parser_never_raises_and_boxes_are_valid(text):
    r = parse_lvlm_reply(text, (W, H))
    assert isinstance(r.answer, str)
    for b in r.boxes:
        assert not b.is_empty and 0 <= b.x_min < b.x_max <= 1 and 0 <= b.y_min < b.y_max <= 1


def test_pathological_reply_is_bounded():
    text = '[' * 100_000 + '{"answer": "late"}'
    r = parse_lvlm_reply(text, (W, H))
    assert isinstance(r.answer, str)
