# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Tiny random-weight VLMs of the real SmolVLM (Idefics3) architecture, built offline and cached.

No machine of this project reaches a model hub, so tests and the embedded default use tiny models
whose *geometry* is real (SigLIP patch 16 at 512 px, pixel-shuffle scale 4 -> 64 image tokens per
tile, the Idefics3 special tokens and chat template) and whose widths are tiny. They are saved
with ``save_pretrained`` and loaded back through ``AutoProcessor`` /
``AutoModelForImageTextToText``, the same code path as a real checkpoint, so everything
downstream is exercised for real.

Rules this module enforces:

* A build is deterministic: the tokenizer is trained on a fixed synthetic corpus and the weights
  come from a fixed seed, so two builds of one kind are identical (the caller's torch RNG state
  is left untouched).
* A model directory is either complete or absent: it is built in a temporary directory next to
  its final place and renamed into place, so a crash never leaves a half model and concurrent
  builders are safe (the first rename wins, the others discard their copy).
* The cache holds one directory per kind and build version; stale temporary directories older
  than ``STALE_TMP_S`` are removed on the next build, so crashed builds do not accumulate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import json
import os
from pathlib import Path
import random
import shutil
import sys
import tempfile
import threading
import time

BUILD_VERSION = 1
MARKER_FILE = 'edgevlm_tiny.json'
STALE_TMP_S = 3600.0
TINY_ALIASES = {'tiny': 'smolvlm-tiny', 'tiny-cloud': 'smolvlm-tiny-cloud'}
# Weight init draws from torch's global RNG: builds in two threads must not interleave draws.
_SEED_LOCK = threading.Lock()

# The real SmolVLM-256M/500M-Instruct chat template (Idefics3 layout).
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

_SPECIAL_TOKENS = [
    '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<end_of_utterance>', '<image>',
    '<fake_token_around_image>', '<global-img>',
] + [f'<row_{i}_col_{j}>' for i in range(1, 7) for j in range(1, 7)]

_WORDS = (
    'a an the robot camera image picture photo scene person people car cars road street tree '
    'trees sky cloud building house door window table chair cup bottle dog cat bird red green '
    'blue yellow white black left right top bottom center near far front behind on in under '
    'over with and or is are there what where how many which color describe see shows showing '
    'contains object objects obstacle path floor wall box hand arm gripper grasp pick place '
    'move stop go turn forward backward yes no one two three four five user assistant system '
    'question answer context edge model large small focus region attention kitchen office '
    'room outdoor indoor light dark sunny rainy day night walking standing sitting holding '
    'clear blocked door open closed shelf corridor ahead label json bbox'
).split()


@dataclass(frozen=True)
class TinySpec:
    """Sizes and seed of one tiny model kind (the geometry is fixed to SmolVLM's)."""

    seed: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    vocab_size: int = 1024


TINY_KINDS: dict[str, TinySpec] = {
    # Edge default: the smallest model that still has the real token geometry.
    'smolvlm-tiny': TinySpec(seed=1729, text_hidden=64, text_layers=2, text_heads=4,
                             text_kv_heads=2),
    # Embedded cloud stand-in: a bit larger and seeded differently, so it answers unlike the edge.
    'smolvlm-tiny-cloud': TinySpec(seed=4104, text_hidden=96, text_layers=4, text_heads=4,
                                   text_kv_heads=2),
}


def default_cache_dir() -> Path:
    """Return $EDGEVLM_CACHE, or ~/.cache/edgevlm_ros when it is unset or empty."""
    env = os.environ.get('EDGEVLM_CACHE', '').strip()
    return Path(env).expanduser() if env else Path.home() / '.cache' / 'edgevlm_ros'


def tiny_model_dir(kind: str, cache_dir: Path | None = None) -> Path:
    """Return where the tiny model of ``kind`` lives (whether or not it is built yet)."""
    if kind not in TINY_KINDS:
        raise ValueError(f'unknown tiny model kind {kind!r}; known: {sorted(TINY_KINDS)}')
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / 'models' / f'{kind}-v{BUILD_VERSION}'


def is_built(path: Path) -> bool:
    """Return True if ``path`` holds a complete tiny model (the marker is written last)."""
    return (path / MARKER_FILE).is_file()


def ensure_tiny_model(kind: str = 'smolvlm-tiny', cache_dir: Path | None = None,
                      progress: bool = True) -> Path:
    """
    Return the directory of the tiny model ``kind``, building it once if it is not cached.

    The directory holds a normal ``save_pretrained`` model + processor; load it with
    ``AutoProcessor`` / ``AutoModelForImageTextToText`` like any real checkpoint.
    """
    final = tiny_model_dir(kind, cache_dir)
    if is_built(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp_dirs(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f'.tmp-{final.name}-', dir=final.parent))
    try:
        _build_into(kind, TINY_KINDS[kind], tmp, progress)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process renamed its complete copy into place first (or an incomplete
            # directory from an older layout is in the way): keep a complete one, never a half one.
            if not is_built(final):
                shutil.rmtree(final, ignore_errors=True)
                try:
                    os.rename(tmp, final)
                except OSError:
                    pass  # lost a second race: the check below decides
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if not is_built(final):
        raise OSError(f'building tiny model {kind!r} into {final} failed')
    return final


def resolve_model(spec: str) -> str:
    """
    Map a model spec to something ``from_pretrained`` can load.

    'tiny' -> the edge tiny model directory, 'tiny-cloud' -> the cloud stand-in directory (both
    built on first use); a tiny kind name ('smolvlm-tiny', ...) works too. Anything else (a local
    directory or a hub id) is returned unchanged.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f'model spec must be a non-empty string, got {spec!r}')
    spec = spec.strip()
    kind = TINY_ALIASES.get(spec, spec if spec in TINY_KINDS else None)
    if kind is None:
        return spec
    return str(ensure_tiny_model(kind, progress=sys.stderr.isatty()))


# ------------------------------------------------------------------------------------------ build


def _remove_stale_tmp_dirs(models_dir: Path) -> None:
    now = time.time()
    for entry in models_dir.glob('.tmp-*'):
        try:
            if now - entry.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass  # vanished meanwhile: another process cleaned it


def _corpus(seed: int, n_sentences: int = 4000) -> Iterator[str]:
    rnd = random.Random(seed)
    for _ in range(n_sentences):
        words = [rnd.choice(_WORDS) for _ in range(rnd.randint(4, 16))]
        yield ' '.join(words) + rnd.choice(['.', '?', '!', ',', ':'])
    for word in _WORDS:
        yield word.capitalize()
    yield '0 1 2 3 4 5 6 7 8 9 10 ( ) [ ] { } < > | _ - + = * / \\ \' " # @ % & ~ ^ $ ; \n \t'


def _build_tokenizer(spec: TinySpec):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size, special_tokens=list(_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    # The corpus seed is fixed (not the model seed) so both kinds share one tokenizer.
    tok.train_from_iterator(_corpus(seed=0), trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token='<|im_start|>', eos_token='<end_of_utterance>',
        pad_token='<|im_end|>', unk_token='<|endoftext|>',
        extra_special_tokens={
            'image_token': '<image>', 'fake_image_token': '<fake_token_around_image>',
            'global_image_token': '<global-img>', 'end_of_utterance_token': '<end_of_utterance>'})
    hf.chat_template = SMOLVLM_CHAT_TEMPLATE
    return hf


def _build_config(spec: TinySpec, tok):
    from transformers import Idefics3Config

    vision = dict(hidden_size=spec.vision_hidden, intermediate_size=2 * spec.vision_hidden,
                  num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
                  image_size=512, patch_size=16)
    text = dict(model_type='llama', vocab_size=len(tok), hidden_size=spec.text_hidden,
                intermediate_size=2 * spec.text_hidden, num_hidden_layers=spec.text_layers,
                num_attention_heads=spec.text_heads, num_key_value_heads=spec.text_kv_heads,
                max_position_embeddings=8192, rope_theta=100000.0,
                pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id)
    return Idefics3Config(vision_config=vision, text_config=text, scale_factor=4,
                          image_token_id=tok.convert_tokens_to_ids('<image>'),
                          pad_token_id=tok.pad_token_id)


def _build_into(kind: str, spec: TinySpec, out: Path, progress: bool) -> None:
    from tqdm import tqdm

    stages = ['tokenizer', 'config', 'weights', 'processor', 'save']
    with tqdm(total=len(stages), desc=f'building {kind}', disable=not progress, leave=False,
              file=sys.stderr) as bar:
        bar.set_postfix_str(stages[0])
        tok = _build_tokenizer(spec)
        bar.update()

        bar.set_postfix_str(stages[1])
        import torch
        from transformers import (
            GenerationConfig,
            Idefics3ForConditionalGeneration,
            Idefics3Processor,
        )
        from transformers.models.idefics3.image_processing_pil_idefics3 import (
            Idefics3ImageProcessorPil,
        )
        config = _build_config(spec, tok)
        bar.update()

        bar.set_postfix_str(stages[2])
        # fork_rng: a seeded build must not change the caller's random stream.
        with _SEED_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            model = Idefics3ForConditionalGeneration(config).eval()
        model.generation_config = GenerationConfig(
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id, do_sample=False)
        bar.update()

        bar.set_postfix_str(stages[3])
        # SmolVLM-256M-Instruct's processor settings; callers override splitting per request.
        image_processor = Idefics3ImageProcessorPil(
            do_image_splitting=True, size={'longest_edge': 2048},
            max_image_size={'longest_edge': 512}, resample=1)
        processor = Idefics3Processor(image_processor, tok, image_seq_len=64,
                                      chat_template=SMOLVLM_CHAT_TEMPLATE)
        bar.update()

        bar.set_postfix_str(stages[4])
        from transformers.utils import logging as hf_logging
        bars_were_on = hf_logging.is_progress_bar_enabled()
        if not progress:
            hf_logging.disable_progress_bar()
        try:
            model.save_pretrained(out)
            processor.save_pretrained(out)
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        # mkdtemp makes a private 0700 directory; a shared cache must be readable by others.
        os.chmod(out, 0o755)
        for path in out.iterdir():
            os.chmod(path, 0o644)
        # Written last: its presence is what marks the directory complete.
        marker = {'kind': kind, 'build_version': BUILD_VERSION, 'seed': spec.seed,
                  'params': sum(p.numel() for p in model.parameters())}
        (out / MARKER_FILE).write_text(json.dumps(marker, indent=2) + '\n')
        bar.update()
