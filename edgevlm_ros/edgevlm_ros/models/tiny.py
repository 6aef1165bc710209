# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Random-weight VLMs of real edge architectures, built offline, deterministic and cached.

Why one module of 517 lines: it is one builder for five architectures: each kind's config,
tokenizer, processor and chat template must agree for the model to load like a real checkpoint,
and the ``TinySpec`` table keeps every kind in one place.

No machine of this project reaches a model hub, so tests, benchmarks and the embedded default use
models built here from a config with random weights. Their *geometry* is the real one of each
architecture (how an image becomes image tokens, the special tokens, the chat template) while
the tiny kinds have tiny widths. They are saved with ``save_pretrained`` and loaded back through
the processor loader (``compat.load_processor``) and ``AutoModelForImageTextToText``, the same
code path as a real checkpoint, so everything downstream is exercised for real.

Kinds (``TINY_KINDS``):

* ``smolvlm-tiny`` (edge default) and ``smolvlm-tiny-cloud`` (embedded cloud stand-in): Idefics3,
  the layout of SmolVLM-256M/500M-Instruct: SigLIP patch 16 at 512 px, pixel-shuffle scale 4 ->
  64 image tokens per 512 px tile, image splitting into row/column tiles plus a global tile.
  (An ``idefics3-tiny`` would be the same model, so there is none.)
* ``smolvlm2-tiny``: SmolVLM2 (``model_type=smolvlm``, ``SmolVLMForConditionalGeneration``), the
  class of SmolVLM2-256M/500M-Video-Instruct, with the same image geometry as above (512 px
  tiles of 64 tokens); its processor is ``SmolVLMProcessor`` loaded image-only
  (``compat.image_only``: the video processor would need torchvision) and needs ``num2words``.
  The chat template is SmolVLM's, which renders image turns as SmolVLM2's does.
* ``qwen2-vl-tiny``, ``qwen2.5-vl-tiny``: patch 14, 2x2 spatial merge, temporal patch 2,
  ``smart_resize`` to multiples of 28 px (one token per 28x28 px), M-RoPE text model; the
  processors are the image-only ones of ``compat`` (no torchvision).
* ``llava-tiny``: SigLIP 384/16 vision tower (24x24 = 576 image tokens, feature select strategy
  ``full``) and a Qwen2 text model with a ChatML template.
* ``smolvlm-256m-random``: the SmolVLM-256M architecture at its real sizes (SigLIP-B/16 at 512 px,
  30-layer 576-wide Llama text, 49280-entry embedding and LM head: 256 M parameters) with random
  weights, for measuring real compute cost. About 513 MB on disk (bfloat16 safetensors; the
  config says float32, so ``from_pretrained`` loads it in float32). Built only when asked for by
  name, never by default.
* ``smolvlm-500m-random``: SmolVLM-500M's sizes the same way (the same vision tower, a 32-layer
  960-wide Llama text model with 15 heads and 5 KV heads), about 1 GB on disk.

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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
import itertools
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

# Qwen2-VL / Qwen2.5-VL-Instruct's ChatML with the default system turn; one image placeholder
# (<|vision_start|><|image_pad|><|vision_end|>) per image part, expanded by the processor.
QWEN_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# LLaVA with a Qwen2 text model (the llava-interleave-qwen style): ChatML, '<image>' + newline.
LLAVA_QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_SMOL_SPECIAL_TOKENS = [
    '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<end_of_utterance>', '<image>',
    '<fake_token_around_image>', '<global-img>',
] + [f'<row_{i}_col_{j}>' for i in range(1, 7) for j in range(1, 7)]


@dataclass(frozen=True)
class _TokenizerRecipe:
    """Special tokens, their roles and the chat template of one model family."""

    specials: tuple[str, ...]
    bos: str | None
    eos: str
    pad: str
    unk: str
    named: tuple[tuple[str, str], ...]  # tokenizer attributes processors read (image_token ...)
    chat_template: str


_TOKENIZERS = {
    'idefics3': _TokenizerRecipe(
        specials=tuple(_SMOL_SPECIAL_TOKENS), bos='<|im_start|>', eos='<end_of_utterance>',
        pad='<|im_end|>', unk='<|endoftext|>',
        named=(('image_token', '<image>'), ('fake_image_token', '<fake_token_around_image>'),
               ('global_image_token', '<global-img>'),
               ('end_of_utterance_token', '<end_of_utterance>')),
        chat_template=SMOLVLM_CHAT_TEMPLATE),
    'qwen_vl': _TokenizerRecipe(
        specials=('<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|vision_start|>',
                  '<|vision_end|>', '<|image_pad|>', '<|video_pad|>'),
        bos=None, eos='<|im_end|>', pad='<|endoftext|>', unk='<|endoftext|>',
        named=(('image_token', '<|image_pad|>'), ('video_token', '<|video_pad|>'),
               ('vision_bos_token', '<|vision_start|>'), ('vision_eos_token', '<|vision_end|>')),
        chat_template=QWEN_VL_CHAT_TEMPLATE),
    'llava_qwen': _TokenizerRecipe(
        specials=('<|endoftext|>', '<|im_start|>', '<|im_end|>', '<image>'),
        bos=None, eos='<|im_end|>', pad='<|endoftext|>', unk='<|endoftext|>',
        named=(('image_token', '<image>'),), chat_template=LLAVA_QWEN_CHAT_TEMPLATE),
}
# Architecture -> tokenizer family.
ARCHS = {'idefics3': 'idefics3', 'smolvlm': 'idefics3', 'qwen2_vl': 'qwen_vl',
         'qwen2_5_vl': 'qwen_vl', 'llava': 'llava_qwen'}

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
    """Architecture, sizes and seed of one model kind (the token geometry is the arch's own)."""

    seed: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    vocab_size: int = 1024             # BPE training target of the tokenizer
    arch: str = 'idefics3'             # a key of ARCHS
    text_intermediate: int | None = None    # None: 2 x text_hidden
    vision_intermediate: int | None = None  # None: 2 x vision_hidden
    config_vocab_size: int | None = None    # embedding rows; None: the tokenizer's size
    save_dtype: str = 'float32'        # dtype of the safetensors on disk (loads as float32)


TINY_KINDS: dict[str, TinySpec] = {
    # Edge default: the smallest model that still has the real token geometry.
    'smolvlm-tiny': TinySpec(seed=1729, text_hidden=64, text_layers=2, text_heads=4,
                             text_kv_heads=2),
    # Embedded cloud stand-in: a bit larger and seeded differently, so it answers unlike the edge.
    'smolvlm-tiny-cloud': TinySpec(seed=4104, text_hidden=96, text_layers=4, text_heads=4,
                                   text_kv_heads=2),
    'smolvlm2-tiny': TinySpec(seed=2256, arch='smolvlm', text_hidden=64, text_layers=2,
                              text_heads=4, text_kv_heads=2),
    'qwen2-vl-tiny': TinySpec(seed=2002, arch='qwen2_vl', text_hidden=64, text_layers=2,
                              text_heads=4, text_kv_heads=2),
    'qwen2.5-vl-tiny': TinySpec(seed=2505, arch='qwen2_5_vl', text_hidden=64, text_layers=2,
                                text_heads=4, text_kv_heads=2),
    'llava-tiny': TinySpec(seed=3003, arch='llava', text_hidden=64, text_layers=2, text_heads=4,
                           text_kv_heads=2),
    # SmolVLM-256M-Instruct's sizes with random weights: real compute cost, meaningless answers.
    # The tokenizer stays the small offline one; the embedding and the (untied) LM head keep the
    # real 49280 rows so their cost is real; the LM-head rows past the tokenizer are zero, so
    # generation picks real tokens.
    'smolvlm-256m-random': TinySpec(
        seed=256, text_hidden=576, text_layers=30, text_heads=9, text_kv_heads=3,
        text_intermediate=1536, vision_hidden=768, vision_layers=12, vision_heads=12,
        vision_intermediate=3072, config_vocab_size=49280, save_dtype='bfloat16'),
    # SmolVLM-500M-Instruct's sizes the same way: the same vision tower, SmolLM2-360M's text
    # model (960 wide, 32 layers, 15 heads of 64, 5 KV heads).
    'smolvlm-500m-random': TinySpec(
        seed=500, text_hidden=960, text_layers=32, text_heads=15, text_kv_heads=5,
        text_intermediate=2560, vision_hidden=768, vision_layers=12, vision_heads=12,
        vision_intermediate=3072, config_vocab_size=49280, save_dtype='bfloat16'),
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


def train_tokenizer(family: str, vocab_size: int, extra: Iterable[str] = ()):
    """
    A byte-level BPE tokenizer of one family's special tokens and chat template (_TOKENIZERS).

    Trained on the fixed tiny corpus (its seed is not a model's seed, so kinds of one family share
    a tokenizer) followed by `extra` sentences, e.g. a domain's own words.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    recipe = _TOKENIZERS[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(recipe.specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(itertools.chain(_corpus(seed=0), extra), trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=recipe.bos, eos_token=recipe.eos,
        pad_token=recipe.pad, unk_token=recipe.unk, extra_special_tokens=dict(recipe.named))
    hf.chat_template = recipe.chat_template
    return hf


def _build_tokenizer(spec: TinySpec):
    return train_tokenizer(ARCHS[spec.arch], spec.vocab_size)


def _text_config(spec: TinySpec, tok, **extra) -> dict:
    text = dict(vocab_size=spec.config_vocab_size or len(tok), hidden_size=spec.text_hidden,
                intermediate_size=spec.text_intermediate or 2 * spec.text_hidden,
                num_hidden_layers=spec.text_layers, num_attention_heads=spec.text_heads,
                num_key_value_heads=spec.text_kv_heads, max_position_embeddings=8192, **extra)
    text.update(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id)
    return text


def _mrope_section(head_dim: int) -> list[int]:
    # Qwen2-VL splits the rotary half-dimensions 1:1.5:1.5 over (time, height, width): 128 ->
    # [16, 24, 24]; they must add up to head_dim / 2.
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _build_config(spec: TinySpec, tok):
    vision_intermediate = spec.vision_intermediate or 2 * spec.vision_hidden
    if spec.arch in ('idefics3', 'smolvlm'):
        from transformers import Idefics3Config, SmolVLMConfig

        vision = dict(hidden_size=spec.vision_hidden, intermediate_size=vision_intermediate,
                      num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
                      image_size=512, patch_size=16)
        text = _text_config(spec, tok, model_type='llama', rope_theta=100000.0)
        cls = Idefics3Config if spec.arch == 'idefics3' else SmolVLMConfig
        return cls(vision_config=vision, text_config=text, scale_factor=4,
                   image_token_id=tok.convert_tokens_to_ids('<image>'),
                   pad_token_id=tok.pad_token_id)
    if spec.arch in ('qwen2_vl', 'qwen2_5_vl'):
        from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

        rope = {'rope_type': 'default', 'rope_theta': 1000000.0,
                'mrope_section': _mrope_section(spec.text_hidden // spec.text_heads)}
        text = _text_config(spec, tok, rope_parameters=rope)
        ids = {name: tok.convert_tokens_to_ids(token) for name, token in (
            ('image_token_id', '<|image_pad|>'), ('video_token_id', '<|video_pad|>'),
            ('vision_start_token_id', '<|vision_start|>'),
            ('vision_end_token_id', '<|vision_end|>'))}
        geometry = dict(patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
        if spec.arch == 'qwen2_vl':
            vision = dict(depth=spec.vision_layers, embed_dim=spec.vision_hidden,
                          hidden_size=spec.text_hidden, num_heads=spec.vision_heads,
                          mlp_ratio=vision_intermediate // spec.vision_hidden, **geometry)
            return Qwen2VLConfig(vision_config=vision, text_config=text, **ids)
        # Window attention (112 px windows) in every block but the last, like the real model.
        vision = dict(depth=spec.vision_layers, hidden_size=spec.vision_hidden,
                      intermediate_size=vision_intermediate, num_heads=spec.vision_heads,
                      out_hidden_size=spec.text_hidden, window_size=112,
                      fullatt_block_indexes=[spec.vision_layers - 1], **geometry)
        return Qwen2_5_VLConfig(vision_config=vision, text_config=text, **ids)
    if spec.arch == 'llava':
        from transformers import LlavaConfig

        vision = dict(model_type='siglip_vision_model', hidden_size=spec.vision_hidden,
                      intermediate_size=vision_intermediate, num_hidden_layers=spec.vision_layers,
                      num_attention_heads=spec.vision_heads, image_size=384, patch_size=16)
        text = _text_config(spec, tok, model_type='qwen2')
        return LlavaConfig(vision_config=vision, text_config=text,
                           image_token_id=tok.convert_tokens_to_ids('<image>'),
                           vision_feature_select_strategy='full', vision_feature_layer=-1,
                           projector_hidden_act='gelu')
    raise ValueError(f'unknown architecture {spec.arch!r}; known: {sorted(ARCHS)}')


def _build_model(spec: TinySpec, config):
    import transformers

    names = {'idefics3': 'Idefics3ForConditionalGeneration',
             'smolvlm': 'SmolVLMForConditionalGeneration',
             'qwen2_vl': 'Qwen2VLForConditionalGeneration',
             'qwen2_5_vl': 'Qwen2_5_VLForConditionalGeneration',
             'llava': 'LlavaForConditionalGeneration'}
    return getattr(transformers, names[spec.arch])(config)


def _build_processor(spec: TinySpec, tok):
    if spec.arch == 'idefics3':
        from transformers import Idefics3Processor
        from transformers.models.idefics3.image_processing_pil_idefics3 import (
            Idefics3ImageProcessorPil,
        )
        # SmolVLM-256M-Instruct's processor settings; callers override splitting per request.
        image_processor = Idefics3ImageProcessorPil(
            do_image_splitting=True, size={'longest_edge': 2048},
            max_image_size={'longest_edge': 512}, resample=1)
        return Idefics3Processor(image_processor, tok, image_seq_len=64,
                                 chat_template=SMOLVLM_CHAT_TEMPLATE)
    if spec.arch == 'smolvlm':
        from transformers import SmolVLMProcessor
        from transformers.models.smolvlm.image_processing_pil_smolvlm import (
            SmolVLMImageProcessorPil,
        )

        from edgevlm_ros.models.compat import image_only
        # SmolVLM2-256M-Video-Instruct's image settings; no video processor (torchvision).
        image_processor = SmolVLMImageProcessorPil(
            do_image_splitting=True, size={'longest_edge': 2048},
            max_image_size={'longest_edge': 512}, resample=1)
        return image_only(SmolVLMProcessor)(image_processor, tok, None, image_seq_len=64,
                                            chat_template=SMOLVLM_CHAT_TEMPLATE)
    if spec.arch in ('qwen2_vl', 'qwen2_5_vl'):
        from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil,
        )

        from edgevlm_ros.models.compat import image_only
        # Qwen2-VL/2.5-VL-Instruct's pixel budget: 4 to 16384 tokens of 28x28 px.
        image_processor = Qwen2VLImageProcessorPil(
            min_pixels=56 * 56, max_pixels=28 * 28 * 16384, patch_size=14, merge_size=2,
            temporal_patch_size=2)
        cls = Qwen2VLProcessor if spec.arch == 'qwen2_vl' else Qwen2_5_VLProcessor
        return image_only(cls)(image_processor=image_processor, tokenizer=tok,
                               chat_template=QWEN_VL_CHAT_TEMPLATE)
    from transformers import LlavaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil
    return LlavaProcessor(image_processor=SiglipImageProcessorPil(size={'height': 384,
                                                                        'width': 384}),
                          tokenizer=tok, patch_size=16, vision_feature_select_strategy='full',
                          num_additional_image_tokens=0,
                          chat_template=LLAVA_QWEN_CHAT_TEMPLATE)


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
        from transformers import GenerationConfig
        config = _build_config(spec, tok)
        bar.update()

        bar.set_postfix_str(stages[2])
        # fork_rng: a seeded build must not change the caller's random stream.
        with _SEED_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            model = _build_model(spec, config).eval()
        if config.text_config.vocab_size > len(tok):
            # LM-head rows past the tokenizer still cost their matmul, but with zero weights their
            # logit is 0, below the best real one, so answers decode to words. (Suppressing them
            # in generate() instead costs ~100 ms per step for 48k ids.)
            with torch.no_grad():
                model.get_output_embeddings().weight[len(tok):] = 0.0
        model.generation_config = GenerationConfig(
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id, do_sample=False)
        params = sum(p.numel() for p in model.parameters())
        bar.update()

        bar.set_postfix_str(stages[3])
        processor = _build_processor(spec, tok)
        bar.update()

        bar.set_postfix_str(stages[4])
        from transformers.utils import logging as hf_logging
        bars_were_on = hf_logging.is_progress_bar_enabled()
        if not progress:
            hf_logging.disable_progress_bar()
        try:
            if spec.save_dtype != 'float32':
                model = model.to(getattr(torch, spec.save_dtype))
            model.save_pretrained(out)
            processor.save_pretrained(out)
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        if spec.save_dtype != 'float32':
            _declare_float32(out / 'config.json')
        # mkdtemp makes a private 0700 directory; a shared cache must be readable by others.
        os.chmod(out, 0o755)
        for path in out.iterdir():
            os.chmod(path, 0o644)
        # Written last: its presence is what marks the directory complete.
        marker = {'kind': kind, 'arch': spec.arch, 'build_version': BUILD_VERSION,
                  'seed': spec.seed, 'params': params}
        (out / MARKER_FILE).write_text(json.dumps(marker, indent=2) + '\n')
        bar.update()


def _declare_float32(config_path: Path) -> None:
    """Make a checkpoint saved in a smaller dtype load as float32 by default (the CPU dtype)."""
    config = json.loads(config_path.read_text())
    for section in (config, *(v for v in config.values() if isinstance(v, dict))):
        if 'dtype' in section:
            section['dtype'] = 'float32'
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + '\n')
