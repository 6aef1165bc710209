# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Boxes and the LVLM reply parser."""

import json
import math

from edgevlm_ros.core.regions import (
    BOX_FORMATS,
    MAX_BOXES,
    Box,
    LvlmReply,
    SmartResize,
    coordinate_frame,
    parse_lvlm_reply,
    smart_resize,
)
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


def test_json_object_with_answer_and_pixel_boxes():
    text = ('{"answer": "A red cup on the table.", "objects": '
            '[{"label": "cup", "bbox_2d": [64, 48, 320, 240]}]}')
    r = parse_lvlm_reply(text, (W, H))
    assert r == LvlmReply('A red cup on the table.', [Box(0.1, 0.1, 0.5, 0.5, 'cup')], True,
                          boxes_found=1)


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
    assert (r.boxes_found, r.boxes_dropped) == (7, 6)
    assert r.drop_reasons == {'invalid': 4, 'empty': 1, 'outside': 1}


def test_trailing_commas_are_tolerated():
    r = parse_lvlm_reply('```json\n{"answer": "x", "objects": [{"label": "a", '
                         '"bbox_2d": [1, 2, 30, 40],},]}\n```', (W, H))
    assert r.structured and r.answer == 'x' and len(r.boxes) == 1


def test_truncated_json_keeps_the_answer():
    r = parse_lvlm_reply('{"answer": "A \\"big\\" dog.", "objects": [{"label": "dog", "bb',
                         (W, H))
    assert r.answer == 'A "big" dog.' and r.boxes == [] and not r.structured
    assert r.unparsed_boxes and r.boxes_found == 0


def test_qwen2_native_grounding_tokens():
    text = ('The <|object_ref_start|>dog<|object_ref_end|><|box_start|>(100,200),(400,800)'
            '<|box_end|> is asleep.')
    r = parse_lvlm_reply(text, (W, H))
    assert r.answer == 'The dog is asleep.'
    assert r.boxes == [Box(0.1, 0.2, 0.4, 0.8, 'dog')]


def test_unrelated_json_is_not_structured():
    r = parse_lvlm_reply('Use {"temperature": 0.1} for this.', (W, H))
    assert r == LvlmReply('Use {"temperature": 0.1} for this.', [], False)


def test_extreme_aspect_ratio_is_refused_for_qwen25_only():
    text = '[{"bbox_2d": [10, 1, 500, 3]}]'
    with pytest.raises(ValueError, match='aspect'):
        parse_lvlm_reply('no boxes at all', (4000, 10), 'qwen2.5-vl')
    (box,) = parse_lvlm_reply(text, (4000, 10)).boxes  # auto: pixels of the image sent
    assert box.to_pixels(4000, 10) == (10, 1, 500, 3)


def test_invalid_box_format_raises():
    assert BOX_FORMATS == ('auto', 'pixels', 'grid1000', 'normalized', 'qwen2.5-vl',
                           'qwen2-vl', 'qwen3-vl', 'gemini')
    with pytest.raises(ValueError, match='box_format'):
        parse_lvlm_reply('x', (W, H), 'xyxy')
    with pytest.raises(ValueError, match='image_size'):
        parse_lvlm_reply('x', (0, H))
    with pytest.raises(ValueError, match='resize'):
        parse_lvlm_reply('x', (W, H), resize=(3136, 1003520))


def _assert_valid(r: LvlmReply) -> None:
    assert isinstance(r.answer, str)
    for b in r.boxes:
        assert not b.is_empty and 0 <= b.x_min < b.x_max <= 1 and 0 <= b.y_min < b.y_max <= 1
        assert 0 <= b.score <= 1
    assert r.boxes_found == len(r.boxes) + r.boxes_dropped
    assert sum(r.drop_reasons.values()) == r.boxes_dropped
    assert len(r.boxes) <= MAX_BOXES


_ALPHABET = list('{}[]()":,0123456789.-e abox_2dlnswer') + [
    '<|box_start|>', '<|box_end|>', '<|object_ref_start|>', '<|object_ref_end|>', '<ref>',
    '</ref>', '<box>', '</box>', '```json\n', '```', '"bbox_2d": ', '"label": ', 'NaN',
    'Infinity', '1e400', '"answer": ']


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=80).map(''.join),
       st.sampled_from(BOX_FORMATS), st.integers(1, 4000), st.integers(1, 4000))
def test_parser_never_raises_and_boxes_are_valid(text, box_format, w, h):
    if max(w, h) / min(w, h) > 200:
        w = h
    _assert_valid(parse_lvlm_reply(text, (w, h), box_format))


_number = (st.integers(-3000, 3000) | st.floats(allow_nan=True, allow_infinity=True)
           | st.just('12') | st.none() | st.booleans())
_coord_value = (st.lists(_number, min_size=0, max_size=5)
                | st.lists(st.lists(_number, min_size=2, max_size=2), min_size=2, max_size=2)
                | st.fixed_dictionaries({k: _number for k in ('x1', 'y1', 'x2', 'y2')})
                | _number)
_entry = (st.fixed_dictionaries({'bbox_2d': _coord_value}, optional={
    'label': st.text(max_size=8) | st.integers(), 'score': _number})
    | st.lists(_number, min_size=4, max_size=4) | st.text(max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.lists(_entry, max_size=MAX_BOXES + 8), st.sampled_from(BOX_FORMATS),
       st.sampled_from(['bare', 'object', 'fenced']))
def test_any_json_box_list_gives_valid_boxes_and_consistent_counts(entries, box_format, wrap):
    body = entries if wrap == 'bare' else {'answer': 'ok', 'objects': entries}
    text = json.dumps(body)  # NaN/Infinity as JSON extensions, as some servers emit them
    if wrap == 'fenced':
        text = f'Here you go:\n```json\n{text}\n```'
    r = parse_lvlm_reply(text, (W, H), box_format)
    _assert_valid(r)
    n_entries = sum(1 for e in entries if isinstance(e, (dict, list)))
    if entries and r.structured:
        assert r.boxes_found == n_entries


def test_pathological_reply_is_bounded():
    text = '[' * 100_000 + '{"answer": "late"}'
    r = parse_lvlm_reply(text, (W, H))
    assert isinstance(r.answer, str)


# --- model families ---------------------------------------------------------------------------

@pytest.mark.parametrize(('height', 'width', 'max_pixels', 'expected'), [
    # (height, width) -> (height, width), checked against transformers' Qwen2-VL smart_resize.
    (480, 640, 28 * 28 * 1280, (476, 644)),
    (240, 320, 28 * 28 * 1280, (252, 308)),
    (720, 1280, 28 * 28 * 1280, (728, 1288)),
    (1080, 1920, 28 * 28 * 1280, (728, 1316)),
    (1080, 1920, 12845056, (1092, 1932)),
    (3000, 4000, 28 * 28 * 1280, (840, 1148)),
    (10, 10, 28 * 28 * 1280, (56, 56)),
    (1, 150, 28 * 28 * 1280, (28, 700)),
])
def test_smart_resize_matches_the_qwen_processor(height, width, max_pixels, expected):
    assert smart_resize(height, width, max_pixels=max_pixels) == expected
    assert SmartResize(max_pixels=max_pixels).size(width, height) == expected[::-1]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6000), st.integers(1, 6000), st.integers(1, 64))
def test_smart_resize_gives_patch_multiples_within_the_pixel_limits(h, w, k):
    if max(h, w) / min(h, w) > 200:
        with pytest.raises(ValueError, match='aspect'):
            smart_resize(h, w)
        return
    max_pixels = 28 * 28 * 16 * k
    rh, rw = smart_resize(h, w, max_pixels=max_pixels)
    assert rh % 28 == 0 and rw % 28 == 0 and rh >= 28 and rw >= 28
    assert rh * rw <= max_pixels or min(rh, rw) == 28  # only a thin strip can exceed it
    assert rh * rw >= 56 * 56
    # A frame sent at the resized size is not resized again (clients pre-resize for Qwen2.5-VL).
    # (Rounding can push a near-200 aspect ratio over the processor's limit: not idempotent.)
    if rh * rw <= max_pixels and max(rh, rw) / min(rh, rw) <= 200:
        assert smart_resize(rh, rw, max_pixels=max_pixels) == (rh, rw)


def test_bad_smart_resize_settings_raise():
    with pytest.raises(ValueError, match='min_pixels'):
        SmartResize(min_pixels=10_000, max_pixels=5_000)
    with pytest.raises(ValueError, match='factor'):
        SmartResize(factor=0)
    with pytest.raises(ValueError):
        smart_resize(0, 10)


def test_qwen25_vl_boxes_are_pixels_on_the_resized_input():
    # 640x480 sent -> the processor feeds 644x476; the model answers in those pixels.
    text = '```json\n[{"bbox_2d": [322, 238, 644, 476], "label": "cup"}]\n```'
    r = parse_lvlm_reply(text, (W, H), 'qwen2.5-vl')
    assert r.boxes == [Box(0.5, 0.5, 1.0, 1.0, 'cup')]
    # Read as pixels of the image sent, the same box would be off by 2-4 px and clipped.
    sent = parse_lvlm_reply(text, (W, H), 'pixels').boxes[0]
    assert sent.x_min == pytest.approx(322 / 640) and sent.y_min == pytest.approx(238 / 480)


def test_qwen25_vl_large_frames_are_scaled_down_by_max_pixels():
    # A 1920x1080 frame is fed at 1316x728 with the default max_pixels: a box in the middle
    # quarter is written in those pixels, far from its position in the frame's own pixels.
    text = '[{"bbox_2d": [329, 182, 987, 546]}]'
    (box,) = parse_lvlm_reply(text, (1920, 1080), 'qwen2.5-vl').boxes
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == pytest.approx(
        (0.25, 0.25, 0.75, 0.75))
    # A server configured with the checkpoint's larger max_pixels feeds 1932x1092.
    big = SmartResize(max_pixels=12845056)
    (box,) = parse_lvlm_reply('[{"bbox_2d": [483, 273, 1449, 819]}]', (1920, 1080),
                              'qwen2.5-vl', resize=big).boxes
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == pytest.approx(
        (0.25, 0.25, 0.75, 0.75))
    assert coordinate_frame('qwen2.5-vl', (1920, 1080), big) == (1932.0, 1092.0)


@pytest.mark.parametrize('fmt', ['qwen2-vl', 'qwen3-vl', 'grid1000'])
def test_grid_model_families_read_0_to_1000(fmt):
    r = parse_lvlm_reply('[{"bbox_2d": [100, 200, 400, 800], "label": "dog"}]', (W, H), fmt)
    assert r.boxes == [Box(0.1, 0.2, 0.4, 0.8, 'dog')]
    assert coordinate_frame(fmt, (W, H)) == (1000.0, 1000.0)


def test_gemini_box_2d_is_y_first_on_the_1000_grid():
    text = '```json\n[{"box_2d": [200, 100, 800, 400], "label": "dog"}]\n```'
    assert parse_lvlm_reply(text, (W, H), 'gemini').boxes == [Box(0.1, 0.2, 0.4, 0.8, 'dog')]
    # Named corner keys say which is which, whatever the family's list order.
    text = '[{"box_2d": {"x_min": 100, "y_min": 200, "x_max": 400, "y_max": 800}}]'
    assert parse_lvlm_reply(text, (W, H), 'gemini').boxes == [Box(0.1, 0.2, 0.4, 0.8)]


def test_coordinate_frame_refuses_auto():
    with pytest.raises(ValueError):
        coordinate_frame('auto', (W, H))


def test_auto_reads_qwen25_rounding_and_small_overshoot_as_pixels():
    # 644 > 640 is the resized input's right edge, not a 0..1000 grid value.
    r = parse_lvlm_reply('[{"bbox_2d": [480, 120, 644, 360]}]', (W, H))
    assert _px(r.boxes[0]) == pytest.approx((480, 120, 640, 360))


@pytest.mark.parametrize('keys', [('x1', 'y1', 'x2', 'y2'), ('x_min', 'y_min', 'x_max', 'y_max'),
                                  ('xmin', 'ymin', 'xmax', 'ymax'),
                                  ('left', 'top', 'right', 'bottom')])
def test_boxes_written_as_corner_keys(keys):
    corners = dict(zip(keys, (64, 48, 320, 240)))
    nested = json.dumps([{'label': 'cup', 'bbox': corners}])
    flat = json.dumps({'answer': 'a cup', 'objects': [{'label': 'cup', **corners}]})
    for text in (nested, flat):
        r = parse_lvlm_reply(text, (W, H), 'pixels')
        assert r.boxes == [Box(0.1, 0.1, 0.5, 0.5, 'cup')], text


def test_qwen_vl_ref_and_box_tags():
    r = parse_lvlm_reply('<ref>the cup</ref><box>(100,200),(400,800)</box> is full.', (W, H))
    assert r.answer == 'the cup is full.'
    assert r.boxes == [Box(0.1, 0.2, 0.4, 0.8, 'the cup')] and r.boxes_found == 1


def test_bare_coordinates_in_prose():
    r = parse_lvlm_reply('The cup: [64, 48, 320, 240]. A door (400, 0, 600, 470) on the right.',
                         (W, H), 'pixels')
    assert [b.label for b in r.boxes] == ['cup', '']
    assert _px(r.boxes[1]) == pytest.approx((400, 0, 600, 470))
    assert r.answer == 'The cup. A door on the right.'
    assert not r.structured and r.boxes_found == 2


def test_boxes_over_the_cap_are_counted():
    entries = [{'bbox_2d': [i, i, i + 10, i + 10]} for i in range(MAX_BOXES + 6)]
    r = parse_lvlm_reply(json.dumps(entries), (W, H), 'pixels')
    assert len(r.boxes) == MAX_BOXES
    assert (r.boxes_found, r.boxes_dropped, r.drop_reasons) == (
        MAX_BOXES + 6, 6, {'over_cap': 6})


def test_an_object_without_coordinates_is_found_and_dropped():
    r = parse_lvlm_reply('{"answer": "a cup", "objects": [{"label": "cup"}]}', (W, H))
    assert r.boxes == [] and (r.boxes_found, r.drop_reasons) == (1, {'invalid': 1})
    assert not r.unparsed_boxes  # it was read; it just had no box


@pytest.mark.parametrize('text', [
    '{"answer": "no cup here", "boxes": null}',
    '{"answer": "no cup here", "objects": "none"}',
    '{"answer": "no cup here", "bbox_2d": null}',
    '{"answer": "no cup here", "objects": []}',
])
def test_no_boxes_written_as_null_or_none_is_not_a_dropped_box(text):
    # How models say "nothing found": no box entry, so nothing to count as dropped.
    r = parse_lvlm_reply(text, (W, H))
    assert r.structured and r.answer == 'no cup here' and r.boxes == []
    assert (r.boxes_found, r.boxes_dropped, r.drop_reasons) == (0, 0, {})


@pytest.mark.parametrize('text', [
    'Objects: [{"label": "cup", "bbox_2d": [64, 48, 3',
    '```json\n[{"bbox_2d": [64, 48, 320, 240] "label": "cup"}]\n```',
    'The <|box_start|>(100,200),(4',
])
def test_box_syntax_that_cannot_be_read_is_flagged(text):
    r = parse_lvlm_reply(text, (W, H))
    assert r.boxes == [] and r.boxes_found == 0 and r.unparsed_boxes
    assert r.answer  # the text is still the answer


def test_plain_text_is_not_flagged():
    r = parse_lvlm_reply('A box of 4 cups is on the left.', (W, H))
    assert not r.unparsed_boxes and r.boxes_found == 0
