# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""backends.transformers_backend: history, focus, validation, device, dtype, int8, greedy loop."""

from pathlib import Path
import threading

from edgevlm_ros.backends import visual_focus
from edgevlm_ros.backends.base import STAGES, SvlmResult, bound_word_cache
from edgevlm_ros.backends.transformers_backend import TransformersSvlm
from edgevlm_ros.core.regions import Box
from edgevlm_ros.models.compat import load_processor
import numpy as np
import pytest
import torch

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


# ------------------------------------------------------------------ device, precision, int8


def test_cuda_requested_without_cuda_is_one_clear_error(tiny_edge_model: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip('this torch has a CUDA device')
    with pytest.raises(OSError, match=r"^device 'cuda' requested but this torch has no CUDA "
                       r'device \(torch .*\); available: cpu$'):
        TransformersSvlm(str(tiny_edge_model), device='cuda')


def test_devices_and_dtypes_resolve_against_what_torch_has(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from edgevlm_ros.backends import transformers_backend as tb

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert tb.resolve_device('auto') == torch.device('cuda', 0)
    assert tb.resolve_device(' CUDA:1 ') == torch.device('cuda', 1)
    assert tb.resolve_device('cpu') == torch.device('cpu')
    with pytest.raises(OSError, match='no CUDA device 2; available: cpu, cuda:0, cuda:1$'):
        tb.resolve_device('cuda:2')
    assert tb.resolve_dtype('auto', torch.device('cuda', 0)) is torch.float16
    assert tb.resolve_dtype('auto', torch.device('cpu')) is torch.float32
    assert tb.resolve_dtype('bfloat16', torch.device('cpu')) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert tb.resolve_device('auto') == torch.device('cpu')


@pytest.mark.parametrize(('kwargs', 'match'), [
    (dict(device='gpu'), 'device must be one of'),
    (dict(dtype='fp16'), 'dtype must be one of'),
    (dict(quantize='int2'), 'quantize must be one of'),
    (dict(kv_reuse='yes'), 'kv_reuse must be True or False'),
    (dict(quantize='int8', dtype='bfloat16'), "int8' needs dtype float32"),
])
def test_malformed_runtime_options_are_refused(tiny_edge_model: Path, kwargs: dict,
                                               match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TransformersSvlm(str(tiny_edge_model), **kwargs)


def test_int8_is_refused_on_cuda_before_anything_loads(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    # No model at this path: the option check comes first.
    with pytest.raises(ValueError, match='runs on the CPU only, not on cuda:0'):
        TransformersSvlm(str(tmp_path / 'absent'), device='cuda', quantize='int8',
                         dtype='float32')


@pytest.mark.parametrize(('dtype', 'quantize'), [('bfloat16', 'none'), ('float32', 'int8')])
def test_half_precision_and_int8_models_answer_with_focus(tiny_edge_model: Path,
                                                          frame: np.ndarray, dtype: str,
                                                          quantize: str) -> None:
    svlm = TransformersSvlm(str(tiny_edge_model), max_new_tokens=4, dtype=dtype,
                            quantize=quantize, providers=('CPUExecutionProvider',))
    linears = [m for m in svlm.model.modules() if type(m) is torch.nn.Linear]
    if quantize == 'int8':
        assert linears == []  # every Linear became a dynamic int8 one
        assert svlm.model.model.text_model.layers[0].self_attn.q_proj.weight().dtype == \
            torch.qint8
    else:
        assert svlm.model.dtype == torch.bfloat16 and linears
    first = svlm.answer(frame, 'What is ahead?', HISTORY, focus=[Box(0.25, 0.25, 0.5, 0.5)],
                        focus_alpha=2.0)
    assert first.focus_applied and first.focused_tokens == 4
    assert 1 <= first.completion_tokens <= 4 and first.text
    again = svlm.answer(frame, 'What is ahead?', HISTORY, focus=[Box(0.25, 0.25, 0.5, 0.5)],
                        focus_alpha=2.0)
    assert again.text == first.text and again.cached_tokens > 0


# ------------------------------------------------------------------------ own greedy loop


def reference_text(svlm: TransformersSvlm, image: np.ndarray, question: str,
                   history=(), focus=(), alpha: float = 0.0,
                   limit: int | None = None) -> tuple[str, list[int]]:
    """What transformers' generate() answers with the backend's settings (the old path)."""
    inputs, _ = svlm.build_inputs(image, question, history)
    bias = None
    if focus and alpha > 0:
        bias, _ = visual_focus.focus_bias(svlm.model, inputs, svlm.processor, list(focus),
                                          alpha, image_size=image.shape[:2])
    with visual_focus.applied(bias):
        ids = svlm.reference_generate(inputs, limit or svlm.max_new_tokens).tolist()
    return svlm.tokenizer.decode(ids, skip_special_tokens=True).strip(), ids


def test_stages_cached_tokens_and_cache_stats_are_reported(tiny_edge_model: Path,
                                                           frame: np.ndarray) -> None:
    svlm = TransformersSvlm(str(tiny_edge_model), max_new_tokens=5)
    results = []
    for n in (1, 2, 2):
        r = svlm.answer(frame, 'What is ahead?', HISTORY[:n])
        assert set(r.stages) == set(STAGES)
        assert all(v >= 0 for v in r.stages.values())
        assert sum(r.stages.values()) <= r.model_ms + 1e-6
        # The cache never holds more than this call's prompt and answer.
        assert len(svlm.cached_ids) == r.prompt_tokens + r.completion_tokens - 1
        results.append(r)
    assert results[0].cached_tokens == 0
    # The second prompt starts with the first's history turn; the third repeats the second
    # up to its image (the frame is new every step, so the image is never reused).
    assert 0 < results[1].cached_tokens < results[2].cached_tokens < results[2].prompt_tokens
    inputs, _ = svlm.build_inputs(frame, 'What is ahead?', HISTORY)
    ids = inputs['input_ids'][0].tolist()
    assert results[2].cached_tokens == ids.index(svlm.model.config.image_token_id)
    stats = svlm.cache_stats
    assert (stats.calls, stats.hits) == (3, 2)
    assert stats.prompt_tokens == sum(r.prompt_tokens for r in results)
    assert stats.cached_tokens == sum(r.cached_tokens for r in results)


def test_own_loop_answers_what_generate_answers(svlm: TransformersSvlm,
                                                frame: np.ndarray) -> None:
    box = Box(0.25, 0.25, 0.5, 0.5)
    for history, focus, limit in ((HISTORY, [box], 6), (HISTORY[:1], [], 3), ((), [box], 1)):
        result = svlm.answer(frame, 'What is ahead?', history, focus=focus, focus_alpha=3.0,
                             max_new_tokens=limit)
        text, ids = reference_text(svlm, frame, 'What is ahead?', history, focus, 3.0, limit)
        assert (result.text, result.completion_tokens) == (text, len(ids))


def test_without_kv_reuse_nothing_is_kept_and_answers_are_the_same(
        tiny_edge_model: Path, svlm: TransformersSvlm, frame: np.ndarray) -> None:
    plain = TransformersSvlm(str(tiny_edge_model), max_new_tokens=6, kv_reuse=False)
    for n in (1, 2, 2):
        result = plain.answer(frame, 'What is ahead?', HISTORY[:n])
        assert result.cached_tokens == 0 and plain.cached_ids == ()
        assert result.text == svlm.answer(frame, 'What is ahead?', HISTORY[:n]).text
    assert plain.cache_stats.calls == 3 and plain.cache_stats.hits == 0


def test_a_failing_model_call_drops_the_cache(tiny_edge_model: Path, frame: np.ndarray,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    svlm = TransformersSvlm(str(tiny_edge_model), max_new_tokens=6)
    expected = svlm.answer(frame, 'What is ahead?', HISTORY).text
    assert svlm.cached_ids
    forward = svlm.model.forward
    calls: list[int] = []

    def fails_on_the_first_decode_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the prefill went through and wrote into the cache
            raise RuntimeError('device lost')
        return forward(*args, **kwargs)

    monkeypatch.setattr(svlm.model, 'forward', fails_on_the_first_decode_step)
    with pytest.raises(RuntimeError, match='device lost'):
        svlm.answer(frame, 'What is ahead?', HISTORY)
    assert svlm.cached_ids == () and svlm.cache_stats.calls == 1
    monkeypatch.setattr(svlm.model, 'forward', forward)
    after = svlm.answer(frame, 'What is ahead?', HISTORY)
    assert after.cached_tokens == 0 and after.text == expected


def test_unknown_model_types_prefill_fully_and_answer_as_generate_does(
        tiny_edge_model: Path, frame: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgevlm_ros.backends import transformers_backend as tb

    # As if the positions of this model type were not known: no cache is kept, the model
    # gets every processor input and infers its positions itself.
    monkeypatch.setattr(tb, 'KV_REUSE_MODEL_TYPES', frozenset())
    svlm = TransformersSvlm(str(tiny_edge_model), max_new_tokens=6)
    for n in (1, 2, 2):
        result = svlm.answer(frame, 'What is ahead?', HISTORY[:n])
        assert result.cached_tokens == 0 and svlm.cached_ids == ()
        text, ids = reference_text(svlm, frame, 'What is ahead?', HISTORY[:n])
        assert (result.text, result.completion_tokens) == (text, len(ids))


def test_word_caches_are_bounded_and_tokens_stay_the_same(svlm: TransformersSvlm,
                                                         tiny_edge_model: Path) -> None:
    # 3000 new words (what a chatty cloud or a random-weight model puts into the history) through
    # the backend's capped tokenizers give exactly the ids of an uncapped tokenizer.
    plain = load_processor(str(tiny_edge_model)).tokenizer
    rng = np.random.default_rng(3)
    letters = np.array(list('abcdefghijklmnopqrstuvwxyz'))
    texts = [' '.join(''.join(rng.choice(letters, rng.integers(3, 9))) for _ in range(30))
             for _ in range(100)]
    for text in texts:
        assert svlm.tokenizer(text)['input_ids'] == plain(text)['input_ids']
    counted = plain(texts[0], add_special_tokens=False)['input_ids']
    assert svlm.count_tokens(texts[0]) == len(counted)
    assert bound_word_cache(plain, 10)
    assert not bound_word_cache(object())  # a slow tokenizer, or none: left alone
