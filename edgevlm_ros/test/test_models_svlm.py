# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The transformers edge SVLM: text-only history, one image per answer, focus, validation."""

from pathlib import Path
import threading

from edgevlm_ros.backends.base import SvlmResult
from edgevlm_ros.backends.transformers_backend import TransformersSvlm
from edgevlm_ros.core.regions import Box
import numpy as np
import pytest

HISTORY = [('Is the path clear?', 'yes, the corridor is clear'),
           ('What is on the left?', 'a door')]


@pytest.fixture(scope='module')
def svlm(tiny_edge_model) -> TransformersSvlm:
    return TransformersSvlm(str(tiny_edge_model), max_new_tokens=6)


@pytest.fixture
def frame() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def n_image_tokens(svlm: TransformersSvlm, inputs) -> int:
    return int((inputs['input_ids'][0] == svlm.model.config.image_token_id).sum())


def test_answers_a_320x240_frame(svlm: TransformersSvlm, frame: np.ndarray) -> None:
    result = svlm.answer(frame, 'What is ahead?')
    assert isinstance(result, SvlmResult)
    assert isinstance(result.text, str)
    assert result.model_ms > 0
    assert 64 < result.prompt_tokens < 100
    assert 1 <= result.completion_tokens <= 6
    assert not result.focus_applied and result.focused_tokens == 0
    assert result.prompt.endswith('Assistant:')


def test_greedy_answers_repeat_exactly(svlm: TransformersSvlm, frame: np.ndarray) -> None:
    assert svlm.answer(frame, 'What is ahead?').text == svlm.answer(frame, 'What is ahead?').text


def test_history_is_text_turns_and_adds_no_image_tokens(svlm: TransformersSvlm,
                                                         frame: np.ndarray) -> None:
    prompt = svlm.render_prompt('What is ahead?', HISTORY)
    assert prompt.count('<image>') == 1
    assert 'User: Is the path clear?<end_of_utterance>' in prompt
    assert 'Assistant: yes, the corridor is clear<end_of_utterance>' in prompt
    assert prompt.index('a door') < prompt.index('<image>')  # the image is in the current turn

    bare, _ = svlm.build_inputs(frame, 'What is ahead?')
    with_history, _ = svlm.build_inputs(frame, 'What is ahead?', HISTORY)
    assert n_image_tokens(svlm, bare) == n_image_tokens(svlm, with_history) == 64
    result = svlm.answer(frame, 'What is ahead?', HISTORY)
    assert result.prompt == prompt
    assert result.prompt_tokens == with_history['input_ids'].shape[1]


@pytest.mark.parametrize('shape', [(240, 320), (480, 640), (600, 200)])
def test_one_tile_of_64_image_tokens_without_splitting(svlm: TransformersSvlm,
                                                       shape: tuple[int, int]) -> None:
    image = np.zeros((*shape, 3), np.uint8)
    inputs, _ = svlm.build_inputs(image, 'What?')
    assert n_image_tokens(svlm, inputs) == 64
    assert inputs['pixel_values'].shape[1] == 1


def test_splitting_adds_tiles_by_longest_edge(svlm: TransformersSvlm) -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    try:
        svlm.do_image_splitting, svlm.image_longest_edge = True, 1024
        inputs, _ = svlm.build_inputs(image, 'What?')
    finally:
        svlm.do_image_splitting, svlm.image_longest_edge = False, 512
    assert n_image_tokens(svlm, inputs) == 5 * 64  # 2x2 tiles + the global image


def test_focus_is_applied_only_when_an_image_token_gets_a_bias(svlm: TransformersSvlm,
                                                               frame: np.ndarray) -> None:
    box = Box(0.25, 0.25, 0.5, 0.5)
    focused = svlm.answer(frame, 'What is ahead?', focus=[box], focus_alpha=2.0)
    assert focused.focus_applied and focused.focused_tokens == 4  # 2x2 of the 8x8 grid
    assert not svlm.answer(frame, 'What?', focus=[box], focus_alpha=0.0).focus_applied
    assert not svlm.answer(frame, 'What?', focus=[], focus_alpha=2.0).focus_applied
    empty = svlm.answer(frame, 'What?', focus=[Box(0.3, 0.3, 0.3, 0.6)], focus_alpha=2.0)
    assert not empty.focus_applied and empty.focused_tokens == 0


def test_max_new_tokens_is_a_cap_per_model_and_per_call(svlm: TransformersSvlm,
                                                        frame: np.ndarray) -> None:
    assert svlm.answer(frame, 'What?', max_new_tokens=2).completion_tokens <= 2
    with pytest.raises(ValueError):
        svlm.max_new_tokens = 0
    assert svlm.max_new_tokens == 6


def test_cloud_turns_look_like_any_turn_to_a_template_that_does_not_mark_them(
        svlm: TransformersSvlm, frame: np.ndarray) -> None:
    # SmolVLM's own template ignores the source; the micro SVLM's template shows it.
    plain = svlm.render_prompt('What is ahead?', HISTORY)
    assert svlm.render_prompt('What is ahead?', HISTORY, [True, False]) == plain
    assert svlm.answer(frame, 'What is ahead?', HISTORY, history_sources=[True, True]).prompt == (
        plain)
    with pytest.raises(ValueError, match='history_sources has 1 entries for 2'):
        svlm.answer(frame, 'What is ahead?', HISTORY, history_sources=[True])


def test_focus_layers_must_exist(svlm: TransformersSvlm) -> None:
    svlm.focus_layers = [1]
    assert svlm.focus_layers == (1,)
    with pytest.raises(ValueError, match='out of range'):
        svlm.focus_layers = [2]
    svlm.focus_layers = None


def test_count_tokens_measures_what_history_costs_in_the_prompt(svlm: TransformersSvlm,
                                                                 frame: np.ndarray) -> None:
    assert svlm.count_tokens('') == 0
    bare = svlm.render_prompt('What is ahead?')
    with_history = svlm.render_prompt('What is ahead?', HISTORY)
    history_text = with_history[:with_history.index(bare[len('<|im_start|>'):])]
    bare_inputs, _ = svlm.build_inputs(frame, 'What is ahead?')
    history_inputs, _ = svlm.build_inputs(frame, 'What is ahead?', HISTORY)
    grown = history_inputs['input_ids'].shape[1] - bare_inputs['input_ids'].shape[1]
    assert svlm.count_tokens(history_text) - svlm.count_tokens('<|im_start|>') == grown


@pytest.mark.parametrize('image', [
    np.zeros((240, 320), np.uint8),
    np.zeros((240, 320, 4), np.uint8),
    np.zeros((240, 320, 3), np.float32),
    np.zeros((0, 320, 3), np.uint8),
    [[0, 0, 0]],
])
def test_rejects_images_that_are_not_rgb_uint8(svlm: TransformersSvlm, image: object) -> None:
    with pytest.raises(ValueError, match='image'):
        svlm.answer(image, 'What?')  # type: ignore[arg-type]


def test_rejects_empty_question_and_malformed_history(svlm: TransformersSvlm,
                                                      frame: np.ndarray) -> None:
    with pytest.raises(ValueError, match='question'):
        svlm.answer(frame, '   ')
    with pytest.raises(ValueError, match='history'):
        svlm.answer(frame, 'What?', [('only a question',)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match='focus_alpha'):
        svlm.answer(frame, 'What?', focus=[Box(0, 0, 1, 1)], focus_alpha=float('nan'))


def test_missing_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / 'SmolVLM-256M-Instruct'
    with pytest.raises(FileNotFoundError, match='does not exist'):
        TransformersSvlm(str(missing))
    with pytest.raises(OSError, match='cannot load the processor'):
        TransformersSvlm(str(tmp_path))  # exists but holds no model


def test_concurrent_callers_are_served_one_at_a_time(svlm: TransformersSvlm,
                                                     frame: np.ndarray) -> None:
    expected = svlm.answer(frame, 'What is ahead?').text
    texts: list[str] = []
    threads = [threading.Thread(target=lambda: texts.append(
        svlm.answer(frame, 'What is ahead?').text)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert texts == [expected] * 3
