# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Tiny offline VLMs: real geometry, loadable like a checkpoint, cached, deterministic, atomic."""

import dataclasses
from pathlib import Path
import threading

from edgevlm_ros.models import registry, tiny
from edgevlm_ros.models.compat import load_processor
from PIL import Image
import pytest
from safetensors.torch import load_file
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, GenerationConfig


@pytest.fixture(scope='module')
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('tiny-cache')
    tiny.ensure_tiny_model('smolvlm-tiny', cache_dir=root, progress=False)
    tiny.ensure_tiny_model('smolvlm-tiny-cloud', cache_dir=root, progress=False)
    return root


def test_tiny_model_reloads_through_auto_classes_with_smolvlm_geometry(cache: Path) -> None:
    path = tiny.ensure_tiny_model('smolvlm-tiny', cache_dir=cache, progress=False)
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert type(processor).__name__ == 'Idefics3Processor'
    assert type(model).__name__ == 'Idefics3ForConditionalGeneration'
    vision = model.config.vision_config
    assert (vision.image_size, vision.patch_size, model.config.scale_factor) == (512, 16, 4)
    assert processor.image_seq_len == 64
    assert processor.tokenizer.chat_template == tiny.SMOLVLM_CHAT_TEMPLATE
    assert processor.tokenizer.convert_tokens_to_ids('<row_6_col_6>') != \
        processor.tokenizer.unk_token_id
    assert sum(p.numel() for p in model.parameters()) < 2_000_000


def test_second_call_returns_the_cached_model_without_rebuilding(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tiny.tiny_model_dir('smolvlm-tiny', cache)
    before = (path / 'model.safetensors').stat().st_mtime_ns

    def no_build(*args: object) -> None:
        raise AssertionError('rebuilt a cached model')

    monkeypatch.setattr(tiny, '_build_into', no_build)
    assert tiny.ensure_tiny_model('smolvlm-tiny', cache_dir=cache, progress=False) == path
    assert (path / 'model.safetensors').stat().st_mtime_ns == before


def test_builds_in_two_directories_are_identical(cache: Path, tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    other = tiny.ensure_tiny_model('smolvlm-tiny', cache_dir=tmp_path, progress=False)
    assert torch.equal(torch.rand(1), expected_next), 'the build changed the caller RNG stream'
    first = load_file(tiny.tiny_model_dir('smolvlm-tiny', cache) / 'model.safetensors')
    second = load_file(other / 'model.safetensors')
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert (other / 'tokenizer.json').read_bytes() == \
        (tiny.tiny_model_dir('smolvlm-tiny', cache) / 'tokenizer.json').read_bytes()


def test_cloud_stand_in_is_larger_and_has_other_weights(cache: Path) -> None:
    edge = AutoModelForImageTextToText.from_pretrained(tiny.tiny_model_dir('smolvlm-tiny', cache))
    cloud = AutoModelForImageTextToText.from_pretrained(
        tiny.tiny_model_dir('smolvlm-tiny-cloud', cache))
    assert cloud.config.text_config.num_hidden_layers == 4
    assert edge.config.text_config.num_hidden_layers == 2
    assert sum(p.numel() for p in cloud.parameters()) > sum(p.numel() for p in edge.parameters())


def test_resolve_model_maps_tiny_aliases_and_passes_other_specs(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('EDGEVLM_CACHE', str(cache))
    assert registry.resolve_model('tiny') == str(tiny.tiny_model_dir('smolvlm-tiny', cache))
    cloud = tiny.tiny_model_dir('smolvlm-tiny-cloud', cache)
    assert registry.resolve_model('tiny-cloud') == str(cloud)
    assert registry.resolve_model('HuggingFaceTB/SmolVLM-256M-Instruct') == \
        'HuggingFaceTB/SmolVLM-256M-Instruct'
    assert registry.resolve_model('/models/qwen') == '/models/qwen'
    with pytest.raises(ValueError):
        registry.resolve_model('  ')


def test_default_cache_dir_honours_edgevlm_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('EDGEVLM_CACHE', '/srv/models')
    assert tiny.default_cache_dir() == Path('/srv/models')
    monkeypatch.delenv('EDGEVLM_CACHE')
    assert tiny.default_cache_dir() == Path.home() / '.cache' / 'edgevlm_ros'


def test_unknown_kind_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='unknown tiny model kind'):
        tiny.ensure_tiny_model('gpt-5', cache_dir=tmp_path)


def test_crashed_build_leaves_neither_model_nor_temp_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(kind: str, spec: tiny.TinySpec, out: Path, progress: bool) -> None:
        (out / 'config.json').write_text('{}')
        raise RuntimeError('power cut')

    monkeypatch.setattr(tiny, '_build_into', crash)
    with pytest.raises(RuntimeError):
        tiny.ensure_tiny_model('smolvlm-tiny', cache_dir=tmp_path)
    assert list((tmp_path / 'models').iterdir()) == []


def test_losing_the_rename_race_keeps_the_winner_model(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = tiny._build_into
    final = tiny.tiny_model_dir('smolvlm-tiny', tmp_path)

    def build_then_other_process_wins(kind: str, spec: tiny.TinySpec, out: Path,
                                      progress: bool) -> None:
        build(kind, spec, out, progress)
        final.mkdir(parents=True)  # the other builder's complete copy lands first
        for f in tiny.tiny_model_dir('smolvlm-tiny', cache).iterdir():
            (final / f.name).write_bytes(f.read_bytes())

    monkeypatch.setattr(tiny, '_build_into', build_then_other_process_wins)
    assert tiny.ensure_tiny_model('smolvlm-tiny', cache_dir=tmp_path, progress=False) == final
    assert tiny.is_built(final)
    assert [p.name for p in final.parent.iterdir()] == [final.name]


def test_concurrent_builders_end_with_one_complete_model(tmp_path: Path) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(tiny.ensure_tiny_model('smolvlm-tiny-cloud', cache_dir=tmp_path,
                                                  progress=False))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len(set(results)) == 1 and tiny.is_built(results[0])
    assert [p.name for p in (tmp_path / 'models').iterdir()] == [results[0].name]


# ------------------------------------------------------------------- other edge architectures


@pytest.mark.parametrize(('kind', 'model_class', 'processor_class'), [
    ('qwen2-vl-tiny', 'Qwen2VLForConditionalGeneration', 'Qwen2VLProcessor'),
    ('qwen2.5-vl-tiny', 'Qwen2_5_VLForConditionalGeneration', 'Qwen2_5_VLProcessor'),
    ('llava-tiny', 'LlavaForConditionalGeneration', 'LlavaProcessor'),
])
def test_architecture_kinds_reload_with_their_real_geometry(
        model_cache: Path, kind: str, model_class: str, processor_class: str) -> None:
    path = tiny.ensure_tiny_model(kind, model_cache, progress=False)
    processor = load_processor(str(path))
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert type(model).__name__ == model_class
    assert type(processor).__name__ == processor_class
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    tok = processor.tokenizer
    assert tok.convert_tokens_to_ids(processor.image_token) == model.config.image_token_id
    assert processor.image_token in tok.all_special_tokens
    assert tok.chat_template
    if kind.startswith('qwen'):
        vision = model.config.vision_config
        assert (vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size) == \
            (14, 2, 2)
        assert processor.image_processor.merge_size == 2
    else:
        vision = model.config.vision_config
        assert (vision.model_type, vision.image_size, vision.patch_size) == \
            ('siglip_vision_model', 384, 16)
        assert model.config.vision_feature_select_strategy == 'full'
        assert (processor.patch_size, processor.vision_feature_select_strategy,
                processor.num_additional_image_tokens) == (16, 'full', 0)


def test_architecture_kind_builds_are_identical(model_cache: Path, tmp_path: Path) -> None:
    first = tiny.ensure_tiny_model('qwen2.5-vl-tiny', model_cache, progress=False)
    second = tiny.ensure_tiny_model('qwen2.5-vl-tiny', tmp_path, progress=False)
    a, b = load_file(first / 'model.safetensors'), load_file(second / 'model.safetensors')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (first / 'tokenizer.json').read_bytes() == (second / 'tokenizer.json').read_bytes()


@pytest.mark.parametrize('kind,millions,text_sizes', [
    ('smolvlm-256m-random', 256, (576, 30, 9, 3, 49280)),
    ('smolvlm-500m-random', 507, (960, 32, 15, 5, 49280))])
def test_real_size_kinds_have_the_published_sizes_and_are_not_built_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind, millions, text_sizes) -> None:
    from transformers import Idefics3ForConditionalGeneration

    spec = tiny.TINY_KINDS[kind]
    config = tiny._build_config(spec, tiny._build_tokenizer(spec))
    with torch.device('meta'):  # sizes only: no memory, no weights
        model = Idefics3ForConditionalGeneration(config)
    params = sum(p.numel() for p in model.parameters())
    assert millions * 1_000_000 < params < (millions + 1) * 1_000_000
    text = config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads,
            text.num_key_value_heads, text.vocab_size) == text_sizes
    assert (config.vision_config.hidden_size, config.vision_config.num_hidden_layers) == (768, 12)
    monkeypatch.setenv('EDGEVLM_CACHE', str(tmp_path))
    registry.resolve_model('tiny')
    assert not tiny.tiny_model_dir(kind, tmp_path).exists()


def test_a_kind_saved_in_bfloat16_loads_as_float32(model_cache: Path, tmp_path: Path) -> None:
    reference = tiny.ensure_tiny_model('llava-tiny', model_cache, progress=False)
    spec = dataclasses.replace(tiny.TINY_KINDS['llava-tiny'], save_dtype='bfloat16')
    tiny._build_into('llava-tiny', spec, tmp_path, progress=False)
    on_disk = load_file(tmp_path / 'model.safetensors')
    assert {t.dtype for t in on_disk.values()} == {torch.bfloat16}
    model = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    full = load_file(reference / 'model.safetensors')
    assert all(torch.equal(on_disk[k], full[k].to(torch.bfloat16)) for k in full)


def test_embedding_rows_past_the_tokenizer_are_never_generated(tmp_path: Path) -> None:
    # What smolvlm-256m-random does with its 49280 rows, at tiny scale.
    spec = dataclasses.replace(tiny.TINY_KINDS['llava-tiny'], config_vocab_size=4096)
    tiny._build_into('llava-tiny', spec, tmp_path, progress=False)
    processor = load_processor(str(tmp_path))
    model = AutoModelForImageTextToText.from_pretrained(tmp_path)
    n_tok = len(processor.tokenizer)
    assert model.config.text_config.vocab_size == 4096 > n_tok
    head = model.get_output_embeddings().weight
    assert not bool(head[n_tok:].any()) and bool(head[:n_tok].any())
    prompt = processor.apply_chat_template(
        [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'What?'}]}],
        add_generation_prompt=True)
    inputs = processor(text=prompt, images=[Image.new('RGB', (64, 48))], return_tensors='pt')
    with torch.no_grad():
        out = model.generate(**inputs, generation_config=GenerationConfig(
            max_new_tokens=12, min_new_tokens=12, do_sample=False))
    assert int(out[0, inputs['input_ids'].shape[1]:].max()) < n_tok


def test_smolvlm2_kind_answers_through_the_transformers_and_onnx_backends(
        model_cache: Path, tmp_path: Path) -> None:
    # SmolVLM2 (model_type smolvlm): its processor is SmolVLMProcessor loaded image-only (its
    # video processor would need torchvision), and it needs num2words.
    from edgevlm_ros.backends.onnx_backend import OnnxSvlm
    from edgevlm_ros.backends.transformers_backend import TransformersSvlm
    from edgevlm_ros.core.regions import Box
    from edgevlm_ros.models import onnx_export
    import numpy as np

    path = tiny.ensure_tiny_model('smolvlm2-tiny', model_cache, progress=False)
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert type(model).__name__ == 'SmolVLMForConditionalGeneration'
    assert model.config.model_type == 'smolvlm' and model.config.scale_factor == 4
    assert type(load_processor(str(path))).__name__ == 'SmolVLMProcessor'

    rgb = np.random.default_rng(3).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    history = [('Is the path clear?', 'yes')]
    focus = [Box(0.1, 0.2, 0.5, 0.6, 'cup', 0.9)]
    torch_svlm = TransformersSvlm(str(path), max_new_tokens=6, device='cpu')
    plain = torch_svlm.answer(rgb, 'What is ahead?', history)
    # One 512 px tile of 64 image tokens, the SmolVLM chat template around it.
    assert plain.prompt.count('<image>') == 1 and plain.prompt.endswith('Assistant:')
    assert plain.prompt_tokens > 64 and plain.completion_tokens >= 1
    focused = torch_svlm.answer(rgb, 'What is ahead?', history, focus=focus, focus_alpha=4.0)
    assert focused.focus_applied and 0 < focused.focused_tokens < 64

    onnx_dir = onnx_export.export(str(path), tmp_path / 'onnx', progress=False)
    ort_svlm = OnnxSvlm(str(onnx_dir), runtime='onnxruntime', max_new_tokens=6)
    ort = ort_svlm.answer(rgb, 'What is ahead?', history)
    assert (ort.text, ort.prompt_tokens) == (plain.text, plain.prompt_tokens)
    ort_focused = ort_svlm.answer(rgb, 'What is ahead?', history, focus=focus, focus_alpha=4.0)
    assert ort_focused.focus_applied and ort_focused.focused_tokens == focused.focused_tokens
