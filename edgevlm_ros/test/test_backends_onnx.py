# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The ONNX edge backends: export, torch parity, KV reuse, Visual Focus bias, layouts, errors.

Tests models/onnx_export.py and backends/onnx_backend.py (with backends/calibration.py)
together: the export writes the layout the backend loads, and most tests need both.
"""

import json
import logging
from pathlib import Path
import shutil

from edgevlm_ros.backends import onnx_backend
from edgevlm_ros.backends.base import STAGES, choose_backend
from edgevlm_ros.backends.onnx_backend import OnnxSvlm
from edgevlm_ros.backends.registry import load_svlm
from edgevlm_ros.backends.transformers_backend import TransformersSvlm
from edgevlm_ros.core.regions import Box
from edgevlm_ros.models import onnx_export
from edgevlm_ros.sim import svlm_data
import numpy as np
import pytest

pytest.importorskip('onnxruntime')

HISTORY = [('Is the path clear?', 'yes, the corridor is clear'),
           ('What is on the left?', 'a door'), ('How many people?', 'two')]
QUESTIONS = ('What is ahead?', 'Is there a red box?', 'Where is the door?')
FOCUS = [Box(0.1, 0.2, 0.45, 0.6)]


def frames(n: int, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope='module')
def tiny_onnx(tiny_edge_model, tmp_path_factory) -> Path:
    """The tiny edge model exported once, with int8 graphs."""
    return onnx_export.export(str(tiny_edge_model), tmp_path_factory.mktemp('onnx') / 'tiny',
                              quantize='int8', progress=False)


@pytest.fixture(scope='module')
def torch_svlm(tiny_edge_model) -> TransformersSvlm:
    return TransformersSvlm(str(tiny_edge_model), max_new_tokens=8, num_threads=2)


@pytest.fixture(scope='module')
def ort_svlm(tiny_onnx) -> OnnxSvlm:
    return OnnxSvlm(str(tiny_onnx), max_new_tokens=8, num_threads=2)


def test_export_writes_the_published_layout(tiny_onnx: Path) -> None:
    import onnx

    for name in ('config.json', 'generation_config.json', 'tokenizer.json',
                 'processor_config.json', onnx_export.MARKER_FILE):
        assert (tiny_onnx / name).is_file(), name
    assert not list(tiny_onnx.glob('*.safetensors'))  # graphs only, no torch weights
    graphs = {p.name for p in (tiny_onnx / 'onnx').iterdir()}
    assert graphs == {'vision_encoder.onnx', 'embed_tokens.onnx', 'decoder_model_merged.onnx',
                      'decoder_model_fused.onnx', 'vision_encoder_int8.onnx',
                      'decoder_model_merged_int8.onnx', 'decoder_model_fused_int8.onnx'}

    def names(path: Path) -> tuple[list[str], list[str]]:
        g = onnx.load(str(path), load_external_data=False).graph
        return [i.name for i in g.input], [o.name for o in g.output]

    assert names(tiny_onnx / 'onnx/vision_encoder.onnx') == (
        ['pixel_values', 'pixel_attention_mask'], ['image_features'])
    assert names(tiny_onnx / 'onnx/embed_tokens.onnx') == (['input_ids'], ['inputs_embeds'])
    inputs, outputs = names(tiny_onnx / 'onnx/decoder_model_merged.onnx')
    layers = json.loads((tiny_onnx / 'config.json').read_text())['text_config'][
        'num_hidden_layers']
    assert inputs[:5] == ['inputs_embeds', 'attention_mask', 'position_ids',
                          'attention_bias', 'attention_bias_layers']
    assert inputs[5:] == [f'past_key_values.{i}.{k}' for i in range(layers)
                          for k in ('key', 'value')]
    assert outputs == ['logits'] + [f'present.{i}.{k}' for i in range(layers)
                                    for k in ('key', 'value')]
    fused = onnx.load(str(tiny_onnx / 'onnx/decoder_model_fused_int8.onnx')).graph
    ops = {n.op_type for n in fused.node}
    assert {'GroupQueryAttention', 'SkipSimplifiedLayerNormalization', 'MatMulInteger'} <= ops
    assert [i.name for i in fused.input][:5] == [
        'inputs_embeds', 'attention_bias', 'attention_bias_layers', 'seqlens_k',
        'total_sequence_length']


def test_fp32_answers_equal_torch_greedy(torch_svlm, ort_svlm) -> None:
    for i, image in enumerate(frames(4)):
        history = HISTORY[:i % 4]
        sources = [j % 2 == 0 for j in range(len(history))]
        question = QUESTIONS[i % len(QUESTIONS)]
        ort_svlm.clear_cache()
        a = ort_svlm.answer(image, question, history, history_sources=sources)
        b = torch_svlm.answer(image, question, history, history_sources=sources)
        assert a.text == b.text
        assert a.prompt == b.prompt and a.prompt_tokens == b.prompt_tokens
        assert a.completion_tokens == b.completion_tokens
        assert set(a.stages) == set(STAGES) and all(v >= 0 for v in a.stages.values())


def test_micro_answers_equal_torch(model_cache) -> None:
    # The trained micro SVLM gives meaningful, confident answers: same greedy text on both.
    ort = OnnxSvlm('micro', max_new_tokens=8, num_threads=2)
    ref = TransformersSvlm('micro', max_new_tokens=8, num_threads=2)
    rng = np.random.default_rng(11)
    for i in range(3):
        ex = svlm_data.make_example(rng, 900 + i, svlm_data.CURRICULUM[-1], history_turns=3,
                                    plan=svlm_data.ALL_CLOUD)
        for turn in ex.turns[:2]:
            a = ort.answer(ex.rgb, turn.question, turn.history,
                           history_sources=turn.history_sources)
            b = ref.answer(ex.rgb, turn.question, turn.history,
                           history_sources=turn.history_sources)
            assert a.text == b.text


@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'exported'])
def test_kv_reuse_gives_the_same_answers(tiny_onnx, fused) -> None:
    reuse = OnnxSvlm(str(tiny_onnx), max_new_tokens=8, num_threads=2, fused_decoder=fused)
    fresh = OnnxSvlm(str(tiny_onnx), max_new_tokens=8, num_threads=2, kv_reuse=False,
                     fused_decoder=fused)
    assert reuse.decoder.fused == fused
    images = frames(5, seed=5)
    steps = [  # (frame, history, sources): growing, unchanged, a replaced (cloud) turn, focus
        (0, HISTORY[:1], [False]),
        (1, HISTORY[:2], [False, False]),
        (2, HISTORY[:2], [False, False]),
        (2, [HISTORY[0], ('What is on the left?', 'a red chair')], [False, True]),
        (3, [HISTORY[0], ('What is on the left?', 'a red chair')], [False, True]),
    ]
    results = []
    for k, (f, history, sources) in enumerate(steps):
        focus = FOCUS if k == 4 else ()
        a = reuse.answer(images[f], 'What is ahead?', history, focus=focus, focus_alpha=3.0,
                         history_sources=sources)
        b = fresh.answer(images[f], 'What is ahead?', history, focus=focus, focus_alpha=3.0,
                         history_sources=sources)
        assert a.text == b.text, k
        assert b.cached_tokens == 0
        results.append(a)
    # Unchanged history, new frame: the history prefix (everything before the image) is reused.
    image_at = results[2].prompt.index('<image>')
    prefix = reuse.count_tokens(results[2].prompt[:image_at])
    assert results[2].cached_tokens >= prefix - 2
    # The same frame again after a replaced turn: reuse stops where the turn changed.
    changed = reuse.count_tokens(results[3].prompt[:results[3].prompt.index('a red chair')])
    assert 0 < results[3].cached_tokens <= changed + 1
    assert results[4].cached_tokens > 0
    assert reuse.cache_stats.calls == 5 and reuse.cache_stats.hits >= 3
    assert fresh.cache_stats.hits == 0


@pytest.mark.parametrize('quantize', ['none', 'int8'])
def test_the_fused_decoder_answers_as_the_exported_one(tiny_onnx, quantize) -> None:
    fused = OnnxSvlm(str(tiny_onnx), quantize=quantize, max_new_tokens=8, num_threads=2)
    exported = OnnxSvlm(str(tiny_onnx), quantize=quantize, max_new_tokens=8, num_threads=2,
                        fused_decoder=False)
    assert fused.decoder.fused and not exported.decoder.fused
    assert fused.focus_supported and fused.graph_runtimes['decoder_model_merged'] == \
        'onnxruntime'
    # The text graphs see a new shape nearly every step: no per-shape memory plans kept.
    for svlm in (fused, exported):
        assert not svlm.decoder.graph.session.get_session_options().enable_mem_pattern
        assert not svlm._embed.session.get_session_options().enable_mem_pattern
        assert svlm._vision.session.get_session_options().enable_mem_pattern
    same = []
    for i, image in enumerate(frames(4, seed=17)):
        for focus in ((), FOCUS):  # with history growing, so prefixes are reused too
            args = (image, QUESTIONS[i % 3], HISTORY[:i % 4])
            a = fused.answer(*args, focus=focus, focus_alpha=3.0)
            b = exported.answer(*args, focus=focus, focus_alpha=3.0)
            assert a.cached_tokens == b.cached_tokens and a.focus_applied == bool(focus)
            same.append(a.text == b.text)
    # fp32: the same arithmetic in another order; int8: the same quantized weights (per
    # output column, so concatenating q|k|v changes no scale), activations rounded alike.
    assert all(same) if quantize == 'none' else sum(same) >= len(same) - 1, same


def test_the_fused_decoder_refuses_a_decoder_it_would_compute_wrongly(tiny_edge_model) -> None:
    from edgevlm_ros.models import fused_decoder
    import torch
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_edge_model),
                                                        dtype=torch.float32)
    assert fused_decoder.weights_of(model).layers  # SiLU, default rotary: built
    text = model.config.text_config
    text.hidden_act = 'gelu'
    with pytest.raises(ValueError, match='SiLU'):
        fused_decoder.weights_of(model)
    text.hidden_act = 'silu'
    text.rope_parameters = {'rope_type': 'dynamic', 'factor': 2.0, 'rope_theta': 10000.0}
    with pytest.raises(ValueError, match="'dynamic'"):
        fused_decoder.weights_of(model)


def test_the_fused_decoder_grows_its_buffer_and_refuses_past_the_model(tiny_onnx,
                                                                        monkeypatch) -> None:
    from edgevlm_ros.backends import onnx_decoder

    monkeypatch.setattr(onnx_decoder, 'FUSED_INITIAL_POSITIONS', 16)
    small = OnnxSvlm(str(tiny_onnx), max_new_tokens=8, num_threads=2)
    exported = OnnxSvlm(str(tiny_onnx), max_new_tokens=8, num_threads=2, fused_decoder=False)
    assert small.decoder.capacity == 16
    image = frames(1, seed=19)[0]
    for history in (HISTORY[:1], HISTORY):  # the second prompt outgrows the first buffer
        a = small.answer(image, 'What is ahead?', history)
        assert a.text == exported.answer(image, 'What is ahead?', history).text
        assert small.decoder.capacity >= a.prompt_tokens + a.completion_tokens
    assert a.cached_tokens > 0  # the kept positions were carried into the bigger buffer
    small.decoder._max_positions = a.prompt_tokens - 1
    with pytest.raises(ValueError, match='exceed'):
        small.answer(image, 'What is ahead now?', HISTORY)


def _backend(kind: str, tiny_edge_model, tiny_onnx, **kw):
    if kind == 'transformers':
        return TransformersSvlm(str(tiny_edge_model), max_new_tokens=8, num_threads=2, **kw)
    if kind == 'openvino':
        pytest.importorskip('openvino')
        return OnnxSvlm(str(tiny_onnx), runtime='openvino', dtype='float32', max_new_tokens=8,
                        num_threads=2, **kw)
    return OnnxSvlm(str(tiny_onnx), max_new_tokens=8, num_threads=2, **kw)


@pytest.mark.parametrize('kind', ['transformers', 'onnxruntime', 'openvino'])
def test_every_backend_streams_its_tokens_and_stops_with_a_usable_cache(
        kind, tiny_edge_model, tiny_onnx) -> None:
    svlm = _backend(kind, tiny_edge_model, tiny_onnx)
    fresh = _backend(kind, tiny_edge_model, tiny_onnx, kv_reuse=False)
    image, later = frames(2, seed=21)
    seen = []
    whole = svlm.answer(image, 'What is ahead?', HISTORY[:2], focus=FOCUS, focus_alpha=3.0,
                        on_token=lambda p: seen.append((p.tokens, p.text)) or True)
    # One call per token, the text so far growing into the answer, which is unchanged.
    assert [n for n, _ in seen] == list(range(1, whole.completion_tokens + 1))
    assert seen[-1][1] == whole.text and not whole.stopped
    assert all(whole.text.startswith(t) for _, t in seen)
    assert whole.text == fresh.answer(image, 'What is ahead?', HISTORY[:2], focus=FOCUS,
                                      focus_alpha=3.0).text
    assert whole.completion_tokens >= 4, 'the tiny model must talk long enough to be stopped'

    stopped = svlm.answer(later, 'Describe it.', HISTORY[:2], on_token=lambda p: p.tokens < 2)
    assert stopped.stopped and stopped.completion_tokens == 2
    # The cache a stopped answer leaves serves the next call, which answers as a fresh model.
    after = svlm.answer(later, 'What is ahead?', HISTORY[:2])
    assert after.cached_tokens > 0
    assert after.text == fresh.answer(later, 'What is ahead?', HISTORY[:2]).text


def test_image_splitting_tiles_answer_like_torch(tiny_edge_model, tiny_onnx) -> None:
    # Idefics3's tiling: a 640x480 frame at longest edge 1024 is 4 tiles and the global view,
    # 5 images through the exported vision encoder's image axis.
    kw = dict(max_new_tokens=8, num_threads=2, do_image_splitting=True, image_longest_edge=1024)
    tiled = OnnxSvlm(str(tiny_onnx), **kw)
    ref = TransformersSvlm(str(tiny_edge_model), **kw)
    rng = np.random.default_rng(23)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    inputs, _ = tiled.build_inputs(image, 'What is ahead?')
    assert np.asarray(inputs['pixel_values']).shape[1] == 5
    a = tiled.answer(image, 'What is ahead?', HISTORY[:1], focus=FOCUS, focus_alpha=3.0)
    b = ref.answer(image, 'What is ahead?', HISTORY[:1], focus=FOCUS, focus_alpha=3.0)
    assert a.prompt_tokens == b.prompt_tokens and a.focused_tokens == b.focused_tokens > 0
    assert a.text == b.text


def test_focus_bias_changes_the_answer_like_torch(torch_svlm, ort_svlm) -> None:
    changed = 0
    for image in frames(3, seed=9):
        plain = ort_svlm.answer(image, 'What is ahead?', HISTORY[:1])
        focused = ort_svlm.answer(image, 'What is ahead?', HISTORY[:1], focus=FOCUS,
                                  focus_alpha=4.0)
        ref = torch_svlm.answer(image, 'What is ahead?', HISTORY[:1], focus=FOCUS,
                                focus_alpha=4.0)
        assert focused.focus_applied and focused.focused_tokens == ref.focused_tokens > 0
        assert not plain.focus_applied
        assert focused.text == ref.text
        changed += focused.text != plain.text
    assert changed >= 1
    assert ort_svlm.focus_supported


def test_focus_layers_select_the_biased_layers(tiny_onnx) -> None:
    svlm = OnnxSvlm(str(tiny_onnx), max_new_tokens=8, num_threads=2, kv_reuse=False)
    image = frames(1, seed=21)[0]
    all_layers = svlm.answer(image, 'What is ahead?', focus=FOCUS, focus_alpha=8.0).text
    svlm.focus_layers = [1]
    one_layer = svlm.answer(image, 'What is ahead?', focus=FOCUS, focus_alpha=8.0).text
    svlm.focus_layers = []
    none = svlm.answer(image, 'What is ahead?', focus=FOCUS, focus_alpha=8.0)
    plain = svlm.answer(image, 'What is ahead?').text
    assert none.text == plain  # a bias on no layer changes nothing
    assert all_layers != plain or one_layer != plain
    with pytest.raises(ValueError, match='out of range'):
        svlm.focus_layers = [7]


def test_published_layout_loads_without_focus(tiny_onnx, torch_svlm, tmp_path) -> None:
    published = tmp_path / 'published'
    shutil.copytree(tiny_onnx, published)
    (published / onnx_export.MARKER_FILE).unlink()
    for name in ('decoder_model_merged_int8.onnx', 'vision_encoder_int8.onnx',
                 'decoder_model_fused.onnx', 'decoder_model_fused_int8.onnx'):
        (published / 'onnx' / name).unlink()  # ours only
    # Published decoders have no attention_bias and give logits at every position.
    onnx_export.export_published_decoder(torch_svlm.path,
                                         published / 'onnx' / 'decoder_model_merged.onnx')
    svlm = OnnxSvlm(str(published), max_new_tokens=8, num_threads=2)
    assert not svlm.focus_supported
    image = frames(1, seed=2)[0]
    result = svlm.answer(image, 'What is ahead?', HISTORY[:2], focus=FOCUS, focus_alpha=4.0)
    assert not result.focus_applied and result.focused_tokens == 0
    assert result.text == torch_svlm.answer(image, 'What is ahead?', HISTORY[:2]).text
    again = svlm.answer(frames(1, seed=4)[0], 'What is ahead?', HISTORY[:2])
    assert again.cached_tokens > 0
    with pytest.raises(FileNotFoundError, match='quantize=int8'):
        OnnxSvlm(str(published), quantize='int8')


def test_bad_provider_falls_back_with_one_log_line(tiny_onnx, caplog) -> None:
    onnx_backend._WARNED.clear()
    with caplog.at_level(logging.WARNING, logger='edgevlm_ros.backends.onnx_backend'):
        svlm = OnnxSvlm(str(tiny_onnx), max_new_tokens=4, num_threads=1,
                        providers=('NoSuchExecutionProvider', 'CPUExecutionProvider'))
        svlm.answer(frames(1)[0], 'What is ahead?')
        OnnxSvlm(str(tiny_onnx), max_new_tokens=4, providers='NoSuchExecutionProvider')
    lines = [r.getMessage() for r in caplog.records if 'NoSuchExecutionProvider' in
             r.getMessage()]
    assert len(lines) == 1 and 'CPUExecutionProvider' in lines[0]
    assert svlm.providers == ('CPUExecutionProvider',)


def test_int8_answers(tiny_onnx, ort_svlm) -> None:
    svlm = OnnxSvlm(str(tiny_onnx), quantize='int8', max_new_tokens=8, num_threads=2)
    image = frames(1, seed=8)[0]
    result = svlm.answer(image, 'What is ahead?', HISTORY)
    assert result.text and 1 <= result.completion_tokens <= 8
    assert result.prompt_tokens == ort_svlm.answer(image, 'What is ahead?', HISTORY).prompt_tokens


def test_int4_exports_a_4bit_decoder_that_both_runtimes_answer_with(tiny_edge_model, tmp_path,
                                                                     ort_svlm) -> None:
    import onnx

    folder = onnx_export.export(str(tiny_edge_model), tmp_path / 'int4', quantize='int4',
                                progress=False)
    graphs = {p.name for p in (folder / 'onnx').iterdir()}
    assert {'decoder_model_merged_int4.onnx', 'vision_encoder_int8.onnx'} <= graphs
    assert not {'decoder_model_merged_int8.onnx', 'decoder_model_fused_int8.onnx'} & graphs
    decoder = onnx.load(str(folder / 'onnx' / 'decoder_model_merged_int4.onnx'),
                        load_external_data=False).graph
    ops = {n.op_type for n in decoder.node}
    assert 'MatMulNBits' in ops and 'MatMul' in ops  # weights 4-bit; attention's MatMuls stay
    image = frames(1, seed=8)[0]
    fp32 = ort_svlm.answer(image, 'What is ahead?', HISTORY)
    ort = OnnxSvlm(str(folder), quantize='int4', max_new_tokens=8, num_threads=2)
    first = ort.answer(image, 'What is ahead?', HISTORY)
    assert first.text and first.prompt_tokens == fp32.prompt_tokens
    ov = OnnxSvlm(str(folder), runtime='openvino', quantize='int4', max_new_tokens=8,
                  num_threads=2)
    # The 4-bit decoder runs on ONNX Runtime under either runtime; OpenVINO keeps its static
    # int8 vision encoder.
    assert ov.graph_runtimes == {'vision_encoder': 'openvino', 'embed_tokens': 'onnxruntime',
                                 'decoder_model_merged': 'onnxruntime'}
    assert ov._vision.static_int8 and not ov.decoder.fused
    result = ov.answer(image, 'What is ahead?', HISTORY, focus=FOCUS, focus_alpha=3.0)
    again = ov.answer(image, 'What is ahead?', HISTORY, focus=FOCUS, focus_alpha=3.0)
    assert result.text and result.focus_applied
    assert again.text == result.text and again.cached_tokens > 0
    with pytest.raises(FileNotFoundError, match='--quantize int4'):
        OnnxSvlm(str(ort_svlm.path), quantize='int4')  # an int8 export has no 4-bit decoder
    with pytest.raises(ValueError, match="'int4'.*onnxruntime and openvino"):
        TransformersSvlm(str(tiny_edge_model), quantize='int4')


def test_openvino_fp32_equals_onnxruntime(tiny_onnx, ort_svlm) -> None:
    pytest.importorskip('openvino')
    ov = OnnxSvlm(str(tiny_onnx), runtime='openvino', dtype='float32', max_new_tokens=8,
                  num_threads=2)
    assert ov.focus_supported
    for image in frames(2, seed=13):
        a = ov.answer(image, 'What is ahead?', HISTORY[:2], focus=FOCUS, focus_alpha=3.0)
        b = ort_svlm.answer(image, 'What is ahead?', HISTORY[:2], focus=FOCUS, focus_alpha=3.0)
        assert a.text == b.text and a.focus_applied


def test_openvino_int8_answers(tiny_onnx) -> None:
    pytest.importorskip('nncf')
    ov = OnnxSvlm(str(tiny_onnx), runtime='openvino', quantize='int8', max_new_tokens=8,
                  num_threads=2)
    # int8: the vision encoder on OpenVINO, the embeddings and decoder on ONNX Runtime.
    assert ov.graph_runtimes == {'vision_encoder': 'openvino', 'embed_tokens': 'onnxruntime',
                                 'decoder_model_merged': 'onnxruntime'}
    assert ov.providers == ('OpenVINO CPU', 'CPUExecutionProvider')
    assert ov.decoder.fused  # the int8 default path runs the fused decoder
    image = frames(1, seed=8)[0]
    result = ov.answer(image, 'What is ahead?', HISTORY, focus=FOCUS, focus_alpha=3.0)
    assert result.text and result.stages['vision'] >= 0 and result.focus_applied
    again = ov.answer(image, 'What is ahead?', HISTORY, focus=FOCUS, focus_alpha=3.0)
    assert again.text == result.text and again.cached_tokens > 0
    # The vision encoder is static int8 (calibrated activations), close to the fp32 graph.
    assert ov._vision.static_int8
    fp32 = OnnxSvlm(str(tiny_onnx), runtime='openvino', dtype='float32', num_threads=2)
    inputs, _ = ov.build_inputs(frames(1, seed=21)[0], 'What is ahead?')
    a, b = ov._image_features(inputs).ravel(), fp32._image_features(inputs).ravel()
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.98


@pytest.mark.parametrize('read_only', [False, True], ids=['writable', 'read_only'])
def test_openvino_static_int8_is_calibrated_once(tiny_onnx, tmp_path, monkeypatch,
                                                 read_only) -> None:
    # Kept beside the graph, or in $EDGEVLM_CACHE/openvino when the folder is read-only.
    ov_module = pytest.importorskip('openvino')
    pytest.importorskip('nncf')
    from edgevlm_ros.backends import calibration

    folder = tmp_path / 'published'
    shutil.copytree(tiny_onnx, folder)
    for f in (folder / 'onnx').glob('*_ov_*'):
        f.unlink()
    monkeypatch.setenv('EDGEVLM_CACHE', str(tmp_path / 'cache'))
    save = ov_module.save_model

    def read_only_folder(model, path, *args, **kwargs):  # root writes anywhere: refuse as a
        if str(path).startswith(str(folder)):           # read-only mount would
            raise PermissionError(13, 'Read-only file system', str(path))
        return save(model, path, *args, **kwargs)
    if read_only:
        monkeypatch.setattr(ov_module, 'save_model', read_only_folder)
    first = OnnxSvlm(str(folder), runtime='openvino', quantize='int8', max_new_tokens=4)
    name = f'vision_encoder*{onnx_backend.STATIC_IR_SUFFIX}.xml'
    beside = list((folder / 'onnx').glob(name))
    cached = list((tmp_path / 'cache' / onnx_backend.OV_CACHE_DIR).glob(name))
    assert (len(beside), len(cached)) == ((0, 1) if read_only else (1, 0))
    assert (beside + cached)[0].with_suffix('.bin').is_file()

    def no_calibration(*args, **kwargs):
        raise AssertionError('calibrated again although the static int8 model is kept')

    monkeypatch.setattr(calibration, 'calibration_frames', no_calibration)
    again = OnnxSvlm(str(folder), runtime='openvino', quantize='int8', max_new_tokens=4)
    image = frames(1, seed=9)[0]
    assert again.answer(image, 'What is ahead?').text == first.answer(image, 'What is ahead?').text


def test_openvino_int8_decoder_on_openvino_when_asked_for_bf16(tiny_onnx, tmp_path) -> None:
    pytest.importorskip('nncf')
    bf16 = OnnxSvlm(str(tiny_onnx), runtime='openvino', quantize='int8', dtype='bfloat16',
                    max_new_tokens=4, num_threads=2)
    assert set(bf16.graph_runtimes.values()) == {'openvino'}
    assert bf16.providers == ('OpenVINO CPU',)
    assert (tiny_onnx / 'onnx' / 'decoder_model_merged_ov_int8.xml').is_file()
    # A folder without ONNX Runtime's int8 decoder: NNCF compresses the fp32 one instead.
    bare = tmp_path / 'no-ort-int8'
    shutil.copytree(tiny_onnx, bare)
    for f in (bare / 'onnx').glob('decoder_model_merged_*'):
        f.unlink()
    ov = OnnxSvlm(str(bare), runtime='openvino', quantize='int8', max_new_tokens=4,
                  num_threads=2)
    assert ov.graph_runtimes['decoder_model_merged'] == 'openvino'
    image = frames(1, seed=8)[0]
    assert ov.answer(image, 'What is ahead?', HISTORY[:1]).completion_tokens >= 1
    assert (bare / 'onnx' / 'decoder_model_merged_ov_int8.xml').is_file()


def test_checkpoint_without_onnx_is_exported_once_into_the_cache(tiny_edge_model,
                                                                 model_cache) -> None:
    first = OnnxSvlm(str(tiny_edge_model), max_new_tokens=4)
    assert first.path.parent == model_cache / 'onnx'
    marker = (first.path / onnx_export.MARKER_FILE).stat().st_mtime_ns
    second = load_svlm(str(tiny_edge_model), backend='onnxruntime', max_new_tokens=4)
    assert second.path == first.path
    assert (first.path / onnx_export.MARKER_FILE).stat().st_mtime_ns == marker


def test_bad_inputs_give_one_clear_error(tiny_onnx, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match='does not exist'):
        OnnxSvlm(str(tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(OSError, match='neither onnx/ graphs nor a checkpoint'):
        OnnxSvlm(str(tmp_path / 'empty'))
    corrupt = tmp_path / 'corrupt'
    shutil.copytree(tiny_onnx, corrupt)
    for name in ('decoder_model_fused', 'decoder_model_merged'):
        (corrupt / 'onnx' / f'{name}.onnx').write_bytes(b'not a graph')
        with pytest.raises(OSError, match=f'cannot load ONNX graph .*{name}') as e:
            OnnxSvlm(str(corrupt), fused_decoder=name == 'decoder_model_fused')
        assert '\n' not in str(e.value)
    with pytest.raises(ValueError, match='runtime'):
        OnnxSvlm(str(tiny_onnx), runtime='tensorflow')
    with pytest.raises(ValueError, match='device'):
        OnnxSvlm(str(tiny_onnx), device='tpu')
    with pytest.raises(ValueError, match='bfloat16'):
        OnnxSvlm(str(tiny_onnx), dtype='bfloat16')
    with pytest.raises(ValueError, match='quantize'):
        OnnxSvlm(str(tiny_onnx), quantize='int2')
    svlm = OnnxSvlm(str(tiny_onnx), max_new_tokens=2)
    with pytest.raises(ValueError, match='max_new_tokens'):
        svlm.answer(frames(1)[0], 'What?', max_new_tokens=0)
    with pytest.raises(ValueError, match='question'):
        svlm.answer(frames(1)[0], '  ')
    with pytest.raises(ValueError, match='history turn 0'):
        svlm.answer(frames(1)[0], 'What?', [('only a question',)])
    with pytest.raises(ValueError, match='history_sources'):
        svlm.answer(frames(1)[0], 'What?', HISTORY[:1], history_sources=[True, False])


def test_export_refuses_other_architectures_and_foreign_folders(model_cache, tmp_path) -> None:
    with pytest.raises(ValueError, match='quantize'):
        onnx_export.export('tiny', tmp_path / 'x', quantize='int2')
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError):
        onnx_export.export('tiny', foreign)
    assert onnx_export.main(['llava-tiny', str(tmp_path / 'llava')]) == 1
    assert not (tmp_path / 'llava').exists()


def test_auto_backend_choice(tiny_edge_model, tiny_onnx, tmp_path) -> None:
    # A small checkpoint stays on transformers (the micro SVLM: 46 against 76-91 ms).
    backend, why = choose_backend(str(tiny_edge_model), 'cpu')
    assert backend == 'transformers' and 'small checkpoint' in why
    assert choose_backend('micro', 'cpu')[0] == 'transformers'
    # A real-size one (only its file size counts here) goes to the ONNX runtimes on the CPU.
    big = tmp_path / 'big'
    shutil.copytree(tiny_edge_model, big)
    with open(big / 'model.safetensors', 'r+b') as f:
        f.truncate(600 * 2**20)  # sparse: takes no disk space
    backend, why = choose_backend(str(big), 'cpu')
    assert backend in ('openvino', 'onnxruntime') and 'idefics3' in why
    assert choose_backend(str(big), 'cuda:0')[0] == 'transformers'
    # An ONNX folder has no torch weights: transformers could not load it.
    assert choose_backend(str(tiny_onnx), 'cpu')[0] in ('openvino', 'onnxruntime')
    other = tmp_path / 'llava'
    other.mkdir()
    (other / 'config.json').write_text(json.dumps({'model_type': 'llava'}))
    assert choose_backend(str(other))[0] == 'transformers'


def test_heldout_through_onnxruntime_matches_transformers(model_cache) -> None:
    from edgevlm_ros.tooling.training.heldout import evaluate_heldout

    ref = evaluate_heldout('micro', images=2, write=False, log=lambda s: None)
    got = evaluate_heldout('micro', images=2, write=False, log=lambda s: None,
                           backend='onnxruntime')
    assert got['summary']['backend'] == 'onnxruntime'
    kinds = [k for k in got['rows'][0] if k.endswith('_ok')]
    assert len(got['rows']) == len(ref['rows']) == 8 and kinds
    for a, b in zip(got['rows'], ref['rows']):
        assert all(a[k[:-3]] == b[k[:-3]] for k in kinds)


def test_heldout_through_openvino_static_int8_keeps_the_answers(model_cache) -> None:
    # The static int8 vision encoder is the furthest from fp32 of the fast paths: on the whole
    # held-out set (5000 answers) 98.7 % of its greedy answers equal transformers fp32's.
    pytest.importorskip('nncf')
    from edgevlm_ros.tooling.training.heldout import evaluate_heldout

    ref = evaluate_heldout('micro', images=5, write=False, log=lambda s: None)
    got = evaluate_heldout('micro', images=5, write=False, log=lambda s: None,
                           backend='openvino', quantize='int8')
    kinds = [k[:-3] for k in got['rows'][0] if k.endswith('_ok')]
    pairs = [(a[k], b[k]) for a, b in zip(got['rows'], ref['rows']) for k in kinds]
    assert len(pairs) == 100
    assert sum(a == b for a, b in pairs) >= 95


def test_heldout_through_int4_keeps_the_answers(model_cache) -> None:
    # The 4-bit decoder changes more answers than int8: on the whole held-out set (5000 answers)
    # 97.8 % of its greedy answers equal transformers fp32's, accuracy +0.1 points.
    from edgevlm_ros.tooling.training.heldout import evaluate_heldout

    ref = evaluate_heldout('micro', images=5, write=False, log=lambda s: None)
    got = evaluate_heldout('micro', images=5, write=False, log=lambda s: None,
                           backend='onnxruntime', quantize='int4')
    kinds = [k[:-3] for k in got['rows'][0] if k.endswith('_ok')]
    pairs = [(a[k], b[k]) for a, b in zip(got['rows'], ref['rows']) for k in kinds]
    right = [(a[k + '_ok'], b[k + '_ok']) for a, b in zip(got['rows'], ref['rows'])
             for k in kinds]
    assert len(pairs) == 100
    assert sum(a == b for a, b in pairs) >= 95  # 99 here
    assert abs(sum(a for a, _ in right) - sum(b for _, b in right)) <= 3


def test_calibration_frames_mix_the_world_and_the_pan_outside_evaluation_seeds() -> None:
    from edgevlm_ros.backends.calibration import CALIBRATION_SEED, calibration_frames

    frames_ = calibration_frames(6)
    assert len(frames_) == 6 and all(f.shape == (480, 640, 3) for f in frames_)
    assert all(f.dtype == np.uint8 for f in frames_)
    assert len({f.tobytes() for f in frames_}) == 6  # no frame twice
    # Seeds below TRAIN_SEED_BASE are the held-out and evaluation worlds.
    assert CALIBRATION_SEED >= svlm_data.TRAIN_SEED_BASE
    other = calibration_frames(6, start=100)
    assert not {f.tobytes() for f in frames_} & {f.tobytes() for f in other}
    with pytest.raises(ValueError, match='n must be'):
        calibration_frames(0)
