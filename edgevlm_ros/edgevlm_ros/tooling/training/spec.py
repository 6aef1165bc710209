# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The micro SVLM's sizes, tokenizer and model build, and loading a trained one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgevlm_ros.sim.synthworld import PALETTE, SHAPES, WHERE_CHOICES

# The SmolVLM chat template, with assistant turns that hold cloud text shown as
# "Assistant (cloud): ..." (see models/chat.py).
MICRO_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message.get('source') == 'cloud' %}{{' (cloud)'}}{% endif %}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


@dataclass(frozen=True)
class MicroSpec:
    """Sizes of the micro SVLM (image geometry and widths)."""

    image_size: int = 192
    patch_size: int = 16
    scale_factor: int = 2
    vision_hidden: int = 192
    vision_layers: int = 4
    vision_heads: int = 4
    vision_intermediate: int = 768
    text_hidden: int = 256
    text_layers: int = 4
    text_heads: int = 8
    text_kv_heads: int = 4
    text_intermediate: int = 768
    vocab_size: int = 1024
    seed: int = 2508

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size // self.scale_factor

    @property
    def image_seq_len(self) -> int:
        return self.grid * self.grid


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings (all recorded in train.json)."""

    steps: int = 6000
    images_per_step: int = 8
    questions_per_image: int = 4
    lr: float = 5e-4
    warmup: int = 200
    weight_decay: float = 0.01
    aux_weight: float = 0.5
    eval_every: int = 250
    eval_images: int = 48
    threads: int = 2
    seed: int = 0
    minutes: float = 0.0   # > 0: schedule (curriculum, learning rate) by time, stop at it
    init: str = ''         # a trained micro SVLM to fine-tune (evaluation world only), or scratch


def _world_corpus() -> list[str]:
    lines = []
    for c in PALETTE:
        lines.append(f'How many {c} objects are there?')
        for s in SHAPES:
            lines.append(f'Is there a {c} {s}?')
            options = ' '.join(f'({chr(97 + i)}) {x}' for i, x in enumerate(WHERE_CHOICES))
            lines.append(f'Where is the {c} {s}? {options}')
    for s in SHAPES:
        lines.append(f'What colour is the {s}?')
    lines += [' '.join(PALETTE), ' '.join(SHAPES), ' '.join(WHERE_CHOICES), 'yes no none',
              'User: Assistant: Assistant (cloud):']
    return lines * 50


def build_tokenizer(spec: MicroSpec):
    """The SmolVLM-family tokenizer, BPE-trained on the tiny corpus plus the world's sentences."""
    from edgevlm_ros.models.tiny import train_tokenizer

    return train_tokenizer('idefics3', spec.vocab_size, _world_corpus())


def build_untrained(spec: MicroSpec = MicroSpec()) -> tuple[Any, Any]:
    """(model, processor) of the micro SVLM with fresh random weights."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    tok = build_tokenizer(spec)
    vision = dict(hidden_size=spec.vision_hidden, intermediate_size=spec.vision_intermediate,
                  num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
                  image_size=spec.image_size, patch_size=spec.patch_size)
    text = dict(model_type='llama', vocab_size=len(tok), hidden_size=spec.text_hidden,
                intermediate_size=spec.text_intermediate, num_hidden_layers=spec.text_layers,
                num_attention_heads=spec.text_heads, num_key_value_heads=spec.text_kv_heads,
                max_position_embeddings=2048, rope_theta=100000.0,
                pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id)
    config = Idefics3Config(vision_config=vision, text_config=text,
                            scale_factor=spec.scale_factor,
                            image_token_id=tok.convert_tokens_to_ids('<image>'),
                            pad_token_id=tok.pad_token_id)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(spec.seed)
        model = Idefics3ForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={'longest_edge': spec.image_size},
        max_image_size={'longest_edge': spec.image_size}, resample=2)
    processor = Idefics3Processor(image_processor, tok, image_seq_len=spec.image_seq_len,
                                  chat_template=MICRO_CHAT_TEMPLATE)
    return model, processor


def load_trained(path: str | Path) -> tuple[Any, Any]:
    """(model, processor) of a trained micro SVLM, float32, with the micro chat template."""
    import torch
    from transformers import AutoModelForImageTextToText

    from edgevlm_ros.models.compat import load_processor

    model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=torch.float32)
    processor = load_processor(str(path))
    processor.chat_template = MICRO_CHAT_TEMPLATE
    return model, processor


def spec_of(model: Any) -> MicroSpec:
    """The MicroSpec of a loaded micro SVLM (from its config)."""
    v, t = model.config.vision_config, model.config.text_config
    return MicroSpec(image_size=v.image_size, patch_size=v.patch_size,
                     scale_factor=model.config.scale_factor, vision_hidden=v.hidden_size,
                     vision_layers=v.num_hidden_layers, vision_heads=v.num_attention_heads,
                     vision_intermediate=v.intermediate_size, text_hidden=t.hidden_size,
                     text_layers=t.num_hidden_layers, text_heads=t.num_attention_heads,
                     text_kv_heads=t.num_key_value_heads, text_intermediate=t.intermediate_size,
                     vocab_size=t.vocab_size)

