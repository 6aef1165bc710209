# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Tiny offline VLMs: real geometry, loadable like a checkpoint, cached, deterministic, atomic."""

from pathlib import Path
import threading

from edgevlm_ros.models import tiny
import pytest
from safetensors.torch import load_file
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor


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
    assert tiny.resolve_model('tiny') == str(tiny.tiny_model_dir('smolvlm-tiny', cache))
    cloud = tiny.tiny_model_dir('smolvlm-tiny-cloud', cache)
    assert tiny.resolve_model('tiny-cloud') == str(cloud)
    assert tiny.resolve_model('HuggingFaceTB/SmolVLM-256M-Instruct') == \
        'HuggingFaceTB/SmolVLM-256M-Instruct'
    assert tiny.resolve_model('/models/qwen') == '/models/qwen'
    with pytest.raises(ValueError):
        tiny.resolve_model('  ')


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
