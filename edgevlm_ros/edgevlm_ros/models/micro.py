# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The micro SVLM: a SmolVLM-layout (Idefics3) model trained here, offline, on the synthetic world.

No pretrained VLM weights reach this project's machines, so the edge model that makes answers
meaningful is trained from scratch by `edgevlm train-svlm`:

* Architecture: Idefics3 (the SmolVLM-256M/500M layout: SigLIP vision tower, pixel-shuffle
  connector, Llama text model, SmolVLM chat template), narrowed so that it trains on two CPU
  cores: a 192 px image in 16 px patches, pixel shuffle 2 -> 6 x 6 = 36 image tokens, no image
  splitting. It is saved and loaded like any checkpoint (``save_pretrained`` / AutoProcessor /
  AutoModelForImageTextToText), so the edge node, Visual Focus and the token-geometry code see
  a real model.
* Tokenizer: byte-level BPE trained on the tiny corpus plus every question and answer of the
  world, so a world word is one token (answers are short: the model learns them quickly).
* Data (``core.svlm_data``): curriculum from one large object to the evaluation world, four
  questions per frame (the frame goes through the vision tower once per batch item, and its
  features are shared by the questions), multi-turn histories about earlier frames with right or
  wrong answers, each turn the edge's own or a cloud answer (as Context Replacement leaves the
  history under a cloud latency). The chat template marks cloud turns ("Assistant (cloud):"),
  so the model can learn to trust them more than its own.
* Fine-tuning: ``TrainConfig.init`` starts from a trained checkpoint (its processor takes the
  micro chat template) and trains on the evaluation-world stage only.
* Loss: cross-entropy on the answer tokens (the end-of-utterance token included) plus, during
  training only, an auxiliary per-image-token loss (which colours and shapes each token's cell
  shows) on the connector output, which teaches the vision tower to see the objects early. The
  auxiliary head is not part of the saved model.

The run writes, into its output directory: the checkpoint (``model.safetensors`` + processor),
``curve.jsonl`` (loss, running answer accuracy and held-out accuracy with no, right and wrong
history over the steps), ``curve.png``, ``train.json`` (the command, settings, time taken) and,
once ``evaluate`` has run, ``heldout.json``. It checkpoints every ``eval_every`` steps, so a run
stopped early still leaves a usable model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
import json
import math
from pathlib import Path
import random
import re
import shutil
import sys
import time
from typing import Any

import numpy as np

from edgevlm_ros.core import svlm_data
from edgevlm_ros.core.synthworld import PALETTE, SHAPES, WHERE_CHOICES
from edgevlm_ros.models.chat import chat_messages
from edgevlm_ros.models.registry import MICRO_NAME

# Seeds 5,000 .. 5,999 hold the validation frames scored during training; the held-out
# evaluation after training uses seeds 0 .. 999 (the evaluation bags use seeds below 10,000 too).
VALIDATION_SEED = 5_000
HELDOUT_SEED = 0
HISTORY_KINDS = svlm_data.HISTORY_KINDS
# What train.json says of the training histories (runs without the key had unmarked turns).
HISTORIES = 'cloud turns and truth-independent own turns (svlm_data.HistoryPlan)'
# How curves, held-out summaries and the model card name them (label, summary key).
HISTORY_NAMES = {
    'none': ('alone', 'alone'),
    'as-is': ('right cloud history', 'right_history'),
    'wrong': ('wrong cloud history', 'wrong_history'),
    'own-wrong': ('wrong own history', 'own_wrong_history'),
    'late-cloud': ('right cloud, then wrong own', 'late_cloud_history'),
}
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


# ------------------------------------------------------------------------------------ batches

class Batcher:
    """Turns examples into model inputs exactly as TransformersSvlm builds them at inference."""

    def __init__(self, processor: Any, camera_side: int = 512) -> None:
        self.processor = processor
        self.tok = processor.tokenizer
        self.eos = self.tok.convert_tokens_to_ids('<end_of_utterance>')
        # The edge node asks for size={'longest_edge': image_longest_edge} without splitting.
        self.image_kwargs = dict(do_image_splitting=False,
                                 size={'longest_edge': camera_side})

    def prompt(self, turn: svlm_data.Turn) -> str:
        messages = chat_messages(turn.question, turn.history, turn.history_sources)
        return self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                  tokenize=False)

    def __call__(self, examples: Sequence[svlm_data.Example],
                 turns: Sequence[Sequence[svlm_data.Turn]] | None = None) -> dict:
        from PIL import Image
        import torch

        turns = turns if turns is not None else [ex.turns for ex in examples]
        pixel, pmask, ids, labels, owner, answer_pos = [], [], [], [], [], []
        for i, (ex, ts) in enumerate(zip(examples, turns)):
            pil = Image.fromarray(ex.rgb)
            for t in ts:
                out = self.processor(text=[self.prompt(t)], images=[[pil]], return_tensors='pt',
                                     **self.image_kwargs)
                p = out['input_ids'][0].tolist()
                a = self.tok(' ' + t.answer, add_special_tokens=False)['input_ids'] + [self.eos]
                ids.append(p + a)
                labels.append([-100] * len(p) + a)
                answer_pos.append(len(p))
                owner.append(i)
                if len(pixel) == i:
                    pixel.append(out['pixel_values'][0])
                    pmask.append(out['pixel_attention_mask'][0])
        n = max(len(x) for x in ids)
        pad = self.tok.pad_token_id
        input_ids = torch.full((len(ids), n), pad, dtype=torch.long)
        attention = torch.zeros((len(ids), n), dtype=torch.long)
        target = torch.full((len(ids), n), -100, dtype=torch.long)
        for r, (x, y) in enumerate(zip(ids, labels)):
            input_ids[r, :len(x)] = torch.tensor(x)
            attention[r, :len(x)] = 1
            target[r, :len(y)] = torch.tensor(y)
        batch = dict(input_ids=input_ids, attention_mask=attention, labels=target,
                     pixel_values=torch.stack(pixel), pixel_attention_mask=torch.stack(pmask),
                     owner=torch.tensor(owner))
        if all(ex.aux is not None for ex in examples):
            batch['aux'] = torch.from_numpy(np.stack([ex.aux for ex in examples]))
        return batch


def forward(model: Any, batch: dict, aux_head: Any = None) -> tuple[Any, Any, Any]:
    """(answer loss, aux loss or None, logits): the vision tower runs once per image."""
    import torch
    import torch.nn.functional as F
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    feats = model.model.get_image_features(batch['pixel_values'],
                                           batch['pixel_attention_mask'],
                                           return_dict=True).pooler_output
    if isinstance(feats, (list, tuple)):  # one entry per image
        feats = torch.cat([f.reshape(-1, f.shape[-1]) for f in feats])
    feats = feats.reshape(batch['pixel_values'].shape[0], -1, feats.shape[-1])
    per_seq = feats[batch['owner']].reshape(-1, feats.shape[-1])
    out = model(input_ids=batch['input_ids'], attention_mask=batch['attention_mask'],
                mm_encoder_outputs={'image': BaseModelOutputWithPooling(pooler_output=per_seq)})
    logits = out.logits[:, :-1]
    target = batch['labels'][:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                           ignore_index=-100)
    aux_loss = None
    if aux_head is not None and 'aux' in batch:
        pred = aux_head(feats)
        aux_loss = F.binary_cross_entropy_with_logits(
            pred, batch['aux'].reshape(pred.shape[0], -1, pred.shape[-1]))
    del torch
    return loss, aux_loss, logits


def answer_correct(logits: Any, labels: Any) -> Any:
    """Per sequence: every answer token is the argmax (= what greedy decoding would answer)."""
    target = labels[:, 1:]
    hit = (logits.argmax(-1) == target) | (target == -100)
    return hit.all(dim=1)


# ----------------------------------------------------------------------------------- training

def validation_set(n_images: int, spec: MicroSpec, questions: int = 4
                   ) -> list[svlm_data.Example]:
    """
    Fixed validation frames (evaluation-world layout, seeds VALIDATION_SEED+), history 4.

    The histories are right and every turn a cloud turn (svlm_data.ALL_CLOUD); the history
    kinds of ``Turn.with_history`` make the wrong and own variants.
    """
    rng = np.random.default_rng(12345)
    world = svlm_data.CURRICULUM[-1]
    return [svlm_data.make_example(rng, VALIDATION_SEED + i, world, questions=questions,
                                   history_turns=4, aux_grid=spec.grid,
                                   plan=svlm_data.ALL_CLOUD)
            for i in range(n_images)]


def score_set(model: Any, batcher: Batcher, examples: Sequence[svlm_data.Example],
              history: str, chunk: int = 8) -> dict[str, float]:
    """Accuracy (greedy-equivalent exact match) on examples under one history kind."""
    import torch

    rng = np.random.default_rng(7)
    right: dict[str, list[bool]] = {}
    with torch.inference_mode():
        for k in range(0, len(examples), chunk):
            part = examples[k:k + chunk]
            turns = [[t.with_history(history, rng) for t in ex.turns] for ex in part]
            batch = batcher(part, turns)
            _, _, logits = forward(model, batch)
            hits = answer_correct(logits, batch['labels']).tolist()
            kinds = [t.kind for ts in turns for t in ts]
            for kind, hit in zip(kinds, hits):
                right.setdefault(kind, []).append(bool(hit))
    allhits = [h for v in right.values() for h in v]
    out = {'all': float(np.mean(allhits))}
    out.update({k: float(np.mean(v)) for k, v in sorted(right.items())})
    return out


def _print(text: str) -> None:
    print(text, flush=True)


def train(out: Path, config: TrainConfig = TrainConfig(), spec: MicroSpec = MicroSpec(),
          log: Callable[[str], None] = _print, progress: bool = True) -> Path:
    """Train the micro SVLM into `out` (checkpoint, curve.jsonl, curve.png, train.json)."""
    import torch
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if config.init:
        # A fine-tune keeps the trained model's sizes and learns on the evaluation world only.
        from edgevlm_ros.models.registry import resolve_model

        init = Path(resolve_model(config.init))
        model, processor = load_trained(init)
        spec = spec_of(model)
        curriculum = svlm_data.CURRICULUM[-1:]
    else:
        model, processor = build_untrained(spec)
        curriculum = svlm_data.CURRICULUM
    model.train()
    aux_head = torch.nn.Linear(spec.text_hidden, len(svlm_data.AUX_CLASSES))
    params = list(model.parameters()) + list(aux_head.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optim = torch.optim.AdamW([{'params': decay, 'weight_decay': config.weight_decay},
                               {'params': no_decay, 'weight_decay': 0.0}], lr=config.lr,
                              betas=(0.9, 0.98))

    def progress_at(step: int) -> float:
        # A time budget (busy machines train slower) moves the schedule by wall time instead.
        if config.minutes > 0:
            return min(1.0, (time.monotonic() - t0) / 60.0 / config.minutes)
        return step / config.steps

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return config.lr * (step + 1) / config.warmup
        p = progress_at(step)
        return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))

    batcher = Batcher(processor)
    valid = validation_set(config.eval_images, spec)
    n_params = sum(p.numel() for p in model.parameters())
    log(f'micro SVLM: {n_params / 1e6:.2f} M parameters, {spec.image_seq_len} image tokens, '
        f'{config.steps} steps x {config.images_per_step} frames x '
        f'{config.questions_per_image} questions')
    record: dict[str, Any] = {
        'command': ' '.join(sys.argv), 'config': asdict(config), 'spec': asdict(spec),
        'parameters': n_params, 'histories': HISTORIES,
        'started': time.strftime('%Y-%m-%d %H:%M:%S')}
    if config.init:
        record['base'] = _keep_base_record(init, out)
    (out / 'train.json').write_text(json.dumps(record, indent=1))
    curve = (out / 'curve.jsonl').open('w')
    t0 = time.monotonic()
    total_steps = config.steps if config.minutes <= 0 else 10 ** 9
    window: list[float] = []
    # A fine-tune goes on with world seeds its base never saw.
    seed_next = svlm_data.TRAIN_SEED_BASE + record.get('base', {}).get('frames_seen', 0)
    bar = tqdm(total=config.steps if config.minutes <= 0 else None, desc='train micro SVLM',
               unit='step', disable=not progress, file=sys.stderr, mininterval=5.0)
    try:
        for step in range(total_steps):
            if config.minutes > 0 and progress_at(step) >= 1.0:
                break
            examples = []
            # One history length per step: sequences of a batch pad to the same length.
            n_history = int(rng.integers(0, svlm_data.MAX_HISTORY + 1))
            for _ in range(config.images_per_step):
                stage = svlm_data.mixed_stage(rng, progress_at(step), curriculum)
                examples.append(svlm_data.make_example(
                    rng, seed_next, stage, questions=config.questions_per_image,
                    aux_grid=spec.grid, history_turns=n_history))
                seed_next += 1
            batch = batcher(examples)
            for group in optim.param_groups:
                group['lr'] = lr_at(step)
            loss, aux_loss, logits = forward(model, batch, aux_head)
            total = loss + config.aux_weight * aux_loss if aux_loss is not None else loss
            optim.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            window.extend(answer_correct(logits.detach(), batch['labels']).tolist())
            window = window[-512:]
            bar.update(1)
            stage_name = svlm_data.stage_at(progress_at(step), curriculum).name
            bar.set_postfix(loss=f'{loss.item():.3f}', acc=f'{np.mean(window):.2f}',
                            stage=stage_name)
            last = step + 1 == total_steps or (config.minutes > 0 and progress_at(step) >= 1.0)
            if (step + 1) % config.eval_every == 0 or last:
                model.eval()
                scores = {h: score_set(model, batcher, valid, h) for h in HISTORY_KINDS}
                model.train()
                row = {'step': step + 1, 'minutes': (time.monotonic() - t0) / 60,
                       'stage': stage_name, 'lr': lr_at(step), 'loss': loss.item(),
                       'aux_loss': aux_loss.item() if aux_loss is not None else None,
                       'train_acc': float(np.mean(window)),
                       'valid': scores}
                curve.write(json.dumps(row) + '\n')
                curve.flush()
                log(f'step {step + 1}: loss {loss.item():.3f}, train {np.mean(window):.1%}, '
                    'valid ' + ', '.join(f'{HISTORY_NAMES[k][0]} {scores[k]["all"]:.1%}'
                                         for k in HISTORY_KINDS)
                    + f' ({row["minutes"]:.1f} min)')
                save(model, processor, out)
    finally:
        bar.close()
        curve.close()
    info = json.loads((out / 'train.json').read_text())
    info.update(finished=time.strftime('%Y-%m-%d %H:%M:%S'), steps_done=bar.n,
                minutes=(time.monotonic() - t0) / 60, frames_seen=seed_next -
                svlm_data.TRAIN_SEED_BASE - info.get('base', {}).get('frames_seen', 0))
    (out / 'train.json').write_text(json.dumps(info, indent=1))
    plot_curve(out)
    return out


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


def _keep_base_record(base: Path, out: Path) -> dict:
    """The base run's train.json, with its curve kept as base_curve.jsonl/.png in `out`."""
    for name in ('curve.jsonl', 'curve.png'):
        if (base / name).is_file():
            shutil.copyfile(base / name, out / ('base_' + name))
    return json.loads((base / 'train.json').read_text())


def save(model: Any, processor: Any, out: Path) -> None:
    """Write the checkpoint (fp16 on disk, loads as float32) atomically into `out`."""
    import torch

    tmp = out / '.saving'
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, state_dict={k: v.to(torch.float16) for k, v in
                                           model.state_dict().items()})
    processor.save_pretrained(tmp)
    from edgevlm_ros.models.tiny import _declare_float32
    _declare_float32(tmp / 'config.json')
    for f in tmp.iterdir():
        f.replace(out / f.name)
    tmp.rmdir()


def plot_curve(out: Path) -> Path | None:
    """curve.png: training loss and validation accuracy by history kind over the steps."""
    rows = [json.loads(line) for line in (out / 'curve.jsonl').read_text().splitlines() if line]
    if not rows:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    steps = [r['step'] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(steps, [r['loss'] for r in rows], label='answer loss')
    if rows[0].get('aux_loss') is not None:
        a.plot(steps, [r['aux_loss'] for r in rows], label='aux loss (per image token)')
    a.set_xlabel('step')
    a.set_yscale('log')
    a.legend()
    a.set_title('training loss')
    for key, (label, _) in HISTORY_NAMES.items():
        if key in rows[-1]['valid']:
            b.plot(steps, [r['valid'][key]['all'] for r in rows], label=label)
    b.plot(steps, [r['train_acc'] for r in rows], ':', label='train (running)')
    b.set_ylim(0, 1)
    b.set_xlabel('step')
    b.set_title('validation accuracy (evaluation-world frames)')
    b.legend()
    fig.tight_layout()
    path = out / 'curve.png'
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ held-out

def evaluate_heldout(model: str, images: int = 250, threads: int = 2, history_turns: int = 4,
                     seed: int = HELDOUT_SEED, write: bool = True,
                     log: Callable[[str], None] = _print, backend: str = 'transformers',
                     **backend_kwargs: Any) -> dict:
    """
    Accuracy of an SVLM on held-out evaluation-world frames, through the edge node's own path.

    Frames come from world seeds `seed` .. `seed + images - 1` (never trained on), 4 questions
    each, asked once per history kind (HISTORY_KINDS): alone; after `history_turns` right cloud
    turns (the earlier frames' truths, as Context Replacement leaves them); after the same
    turns all wrong; all wrong and the edge's own; the older half right cloud turns and the
    newer half wrong own ones. Answers come from ``TransformersSvlm.answer`` (processor, chat
    template, greedy decoding, cloud turns marked) and count when their normalised text equals
    the truth. Writes heldout.json next to a model directory.

    ``backend`` and ``backend_kwargs`` go to ``backends.base.load_svlm`` (e.g.
    ``backend='onnxruntime', quantize='int8'``), so the score can be taken through every edge
    path; only the default path (transformers, no keywords) writes heldout.json, which the
    model card reads. The summary names the backend and its keywords.
    """
    from tqdm import tqdm

    from edgevlm_ros.backends.base import load_svlm
    from edgevlm_ros.core.scoring import normalise

    if backend == 'transformers':
        import torch

        torch.set_num_threads(threads)
    options = dict(max_new_tokens=8, image_longest_edge=512, num_threads=threads)
    options.update(backend_kwargs)
    svlm = load_svlm(model, backend=backend, **options)
    rng = np.random.default_rng(seed + 99)
    world = svlm_data.CURRICULUM[-1]
    rows: list[dict] = []
    wrong_rng = np.random.default_rng(seed + 7)
    for i in tqdm(range(images), desc='held-out frames', unit='frame', file=sys.stderr,
                  mininterval=5.0):
        ex = svlm_data.make_example(rng, seed + i, world, history_turns=history_turns,
                                    plan=svlm_data.ALL_CLOUD)
        for turn in ex.turns:
            row = {'seed': seed + i, 'kind': turn.kind, 'question': turn.question,
                   'truth': turn.answer}
            for kind in HISTORY_KINDS:
                t = turn.with_history(kind, wrong_rng)
                text = svlm.answer(ex.rgb, t.question, t.history,
                                   history_sources=t.history_sources).text
                row[kind] = text
                row[kind + '_ok'] = normalise(text) == normalise(turn.answer)
            rows.append(row)
    summary: dict[str, Any] = {'model': model, 'frames': images, 'questions': len(rows),
                               'history_turns': history_turns,
                               'seeds': [seed, seed + images - 1], 'backend': backend,
                               'backend_options': {k: v for k, v in backend_kwargs.items()
                                                   if isinstance(v, (str, int, float, bool))}}
    for kind, (_, name) in HISTORY_NAMES.items():
        summary[name] = float(np.mean([r[kind + '_ok'] for r in rows]))
        summary[name + '_by_kind'] = {
            k: float(np.mean([r[kind + '_ok'] for r in rows if r['kind'] == k]))
            for k in sorted({r['kind'] for r in rows})}
    truths = [r['truth'] for r in rows]
    by_kind: dict[str, list[str]] = {}
    for r in rows:
        by_kind.setdefault(r['kind'], []).append(r['truth'])
    summary['majority_baseline'] = float(sum(
        max(v.count(a) for a in set(v)) for v in by_kind.values()) / len(truths))
    log(f'held-out ({len(rows)} questions): ' + ', '.join(
        f'{label} {summary[name]:.1%}' for label, name in HISTORY_NAMES.values())
        + f', majority-answer baseline {summary["majority_baseline"]:.1%}')
    result = {'summary': summary, 'rows': rows}
    path = Path(svlm.path)
    if write and path.is_dir() and backend == 'transformers' and not backend_kwargs:
        (path / 'heldout.json').write_text(json.dumps(result, indent=1))
    return result


# ---------------------------------------------------------------------------------- model card

def _user_command(record: dict) -> str:
    # The command as a user types it (python -m edgevlm_ros.eval.cli == the edgevlm script).
    return re.sub(r'^\S*(edgevlm_ros/eval/cli\.py|edgevlm)\b', 'edgevlm', record['command'])


def _run_lines(record: dict) -> list[str]:
    config = record['config']
    return [
        f'- Command: `{_user_command(record)}`',
        f'- {record.get("steps_done", config["steps"])} steps of '
        f'{config["images_per_step"]} frames x {config["questions_per_image"]} questions '
        f'({record.get("frames_seen", "?")} frames) in {record.get("minutes", 0):.0f} min on 2 '
        f'CPU cores ({config["threads"]} torch threads); AdamW lr {config["lr"]:g} (warm-up '
        f'{config["warmup"]} steps, cosine to 10 %), weight decay {config["weight_decay"]:g}, '
        'gradient clip 1.',
    ]


def _curve_table(rows: list[dict], marked: bool = True) -> list[str]:
    kinds = [k for k in HISTORY_KINDS if k in rows[-1]['valid']]
    # Runs before cloud marks had one kind of turn: 'right history', 'wrong history'.
    labels = [HISTORY_NAMES[k][0] if marked else HISTORY_NAMES[k][0].replace(' cloud', '')
              for k in kinds]
    out = ['| step | min | stage | answer loss | ' + ' | '.join(labels) + ' |',
           '|---:|---:|---|---:|' + '---:|' * len(kinds)]
    for r in rows:
        out.append(f'| {r["step"]} | {r["minutes"]:.0f} | {r["stage"]} | {r["loss"]:.3f} | '
                   + ' | '.join(f'{r["valid"][k]["all"]:.1%}' for k in kinds) + ' |')
    return out


def write_model_card(model_dir: Path) -> Path:
    """README.md of a trained micro SVLM from its train.json, curves and heldout.json."""
    model_dir = Path(model_dir)
    train_info = json.loads((model_dir / 'train.json').read_text())
    base = train_info.get('base')
    rows = [json.loads(x) for x in (model_dir / 'curve.jsonl').read_text().splitlines() if x]
    held = json.loads((model_dir / 'heldout.json').read_text())['summary'] \
        if (model_dir / 'heldout.json').is_file() else None
    spec = train_info['spec']
    grid = spec['image_size'] // spec['patch_size'] // spec['scale_factor']
    first = base or train_info   # the run that started from random weights
    size_mb = (model_dir / 'model.safetensors').stat().st_size / 1e6
    lines = [
        f'# {MICRO_NAME}: a micro SVLM trained offline on the synthetic world',
        '',
        'A vision-language model of the SmolVLM / Idefics3 architecture (SigLIP-style vision '
        'tower, pixel-shuffle connector, Llama text model, SmolVLM chat template), trained from '
        "scratch on this project's synthetic robot-camera world (`core/synthworld.py`) because "
        'no pretrained VLM weights reach the machines it is built on. It is the edge model of '
        '`make demo` and of the evaluation (`--edge-model micro`). It knows only that world: '
        'coloured circles, squares and triangles on a grey floor, moving behind pillars. On '
        'real camera images its answers mean nothing.',
        '',
        '## Architecture',
        '',
        f'- {train_info["parameters"] / 1e6:.2f} M parameters, stored in float16 '
        f'({size_mb:.1f} MB; loads as float32).',
        f'- Vision: {spec["image_size"]} px square input, patch {spec["patch_size"]}, '
        f'{spec["vision_layers"]} layers x {spec["vision_hidden"]} wide; pixel shuffle '
        f'{spec["scale_factor"]} -> {grid} x {grid} = {grid * grid} image tokens; '
        'no image splitting (the processor resizes any frame to the square).',
        f'- Text: Llama, {spec["text_layers"]} layers x {spec["text_hidden"]} wide, '
        f'{spec["text_heads"]} heads ({spec["text_kv_heads"]} KV), byte-level BPE of '
        f'{first["spec"]["vocab_size"]} entries trained on a small corpus plus every question '
        'and answer of the world.',
        "- Chat template: SmolVLM's, except that an assistant turn holding cloud text "
        '(Context Replacement) reads `Assistant (cloud): ...` (models/chat.py).',
        '',
        '## Data',
        '',
        '- Frames of the synthetic world rendered at 640x480 and resized to 512 px long side '
        '(what the camera node sends), generated on the fly from world seeds 10,000 and up. '
        'Seeds 0-9,999 are never trained on: held-out evaluation uses 0-999 (and the '
        'evaluation bags), validation 5,000-5,999.',
        '- Curriculum: ' + '; '.join(
            f'{s.name} ({s.share:.0%} of the run: {s.layout.objects[0]}-{s.layout.objects[1]} '
            f'objects, {s.layout.pillars[0]}-{s.layout.pillars[1]} pillars, size x'
            f'{s.layout.size:g}, {s.layout.colours} colours)' for s in svlm_data.CURRICULUM)
        + '; 15 % of frames replay an earlier stage.' + (
            ' The fine-tune trains on the last stage only.' if base else ''),
        f'- {first["config"]["questions_per_image"]} questions per frame (kinds balanced: count, '
        "exists, colour, where with 4 options; subjects mostly the scene's own objects, exists "
        'answered yes about half the time).',
        f'- Each question comes after 0-{svlm_data.MAX_HISTORY} earlier turns (one length per '
        'step), question/answer pairs about earlier frames of the same scene (85 % the same '
        'question), 0.15-0.5 s of scene time apart (a 2 Hz robot at pace 0.3-1).',
    ]
    if base and 'histories' not in base:
        lines.append(
            '- Base run: every history turn unmarked; per frame its answers are wrong with '
            'probability 0, 0, 0.2, 0.5 or 1 (drawn). That was the training code before cloud '
            'marks (commit ef39d25); `make train-svlm` now gives the base run the histories '
            'below too.')
    if 'histories' in train_info:
        lines += [
            ('- Fine-tune: t' if base else '- T')
            + "urns are the edge's own or cloud turns as Context Replacement leaves "
            'them under a cloud latency (`svlm_data.HistoryPlan`): the newest 0-5 turns own (the '
            'cloud answers to them still in flight), below them a cloud turn every 1-5 steps '
            f'({svlm_data.CLOUD_LOSS:.0%} of them lost), no cloud turn at all in '
            f'{svlm_data.NO_CLOUD_SHARE:.0%} of the frames. Per frame, cloud answers are wrong '
            'with probability ' + ', '.join(f'{x:g}' for x in svlm_data.CLOUD_ERRORS)
            + ' (drawn). Own answers say nothing of the truth (drawn from the answer space, '
            f'each repeating the previous own answer with probability {svlm_data.OWN_REPEAT:g}): '
            "they are the model's reading of nearly the same frames, and a model that trusts "
            'them follows its own mistakes. So it learns to read the image and to weigh a cloud '
            'answer by its age against it.',
        ]
    lines += [
        '',
        '## Training',
        '',
    ]
    if base:
        lines += ['Two runs: the base run from random weights, then a fine-tune from its '
                  "weights (`--init`: the base run's output directory).", '',
                  'Base run:', ''] + _run_lines(base) + ['', 'Fine-tune:', '']
    lines += _run_lines(train_info) + [
        '- Loss: cross-entropy on the answer tokens and the end-of-utterance token, plus '
        f'{train_info["config"]["aux_weight"]:g} x an auxiliary per-image-token loss (which '
        "colours and shapes each token's cell shows, from the true object boxes) on the "
        'connector output, through a linear head that is not saved. It teaches the vision tower '
        'to see objects early.',
        '- The frame goes through the vision tower once per step item and its features are '
        'shared by its questions.',
        '',
        '## Learning curve',
        '',
        'Validation: 48 frames of seeds 5,000+ in the evaluation-world layout, 4 questions each, '
        'teacher-forced exact match of the answer (equal to greedy decoding getting it right). '
        'Histories of 4 turns about the earlier frames: right, or wrong, cloud turns; all wrong '
        'own turns; the older two right cloud turns and the newer two wrong own turns.',
        '',
    ]
    if base and (model_dir / 'base_curve.jsonl').is_file():
        base_rows = [json.loads(x) for x in
                     (model_dir / 'base_curve.jsonl').read_text().splitlines() if x]
        lines += ['Base run' + ('' if 'histories' in base else ' (its history turns were '
                                'unmarked)') + ':', '',
                  '![base learning curve](base_curve.png)', ''] + _curve_table(
                      base_rows, marked='histories' in base) + [
                  '', 'Fine-tune:', '']
    lines += ['![learning curve](curve.png)', ''] + _curve_table(rows)
    lines += ['', '## Held-out accuracy', '']
    if held is None:
        lines.append('Not measured yet: `edgevlm heldout <this directory>`.')
    else:
        lines += [
            f'`edgevlm heldout micro --images {held["frames"]}`: {held["questions"]} questions '
            f'on {held["frames"]} frames of world seeds {held["seeds"][0]}-{held["seeds"][1]} '
            "(never trained on), answered through `TransformersSvlm.answer` (the edge node's "
            'own path: processor, chat template, greedy decoding), right when the normalised '
            f'answer equals the truth; histories of {held["history_turns"]} turns as in the '
            'validation.',
            '',
            '| condition | all | ' + ' | '.join(held['alone_by_kind']) + ' |',
            '|---|---:|' + '---:|' * len(held['alone_by_kind']),
        ]
        for label, name in HISTORY_NAMES.values():
            if name not in held:
                continue
            lines.append(f'| {label} | {held[name]:.1%} | ' + ' | '.join(
                f'{v:.1%}' for v in held[name + '_by_kind'].values()) + ' |')
        lines += ['', f'Answering the most common answer of each question kind: '
                      f'{held["majority_baseline"]:.1%}.']
        rows = json.loads((model_dir / 'heldout.json').read_text())['rows']
        by_truth: dict[tuple[str, str], list[bool]] = {}
        for r in rows:
            by_truth.setdefault((r['kind'], r['truth']), []).append(r['none_ok'])
        lines += ['', 'Alone, by true answer:', '', '| kind | truth | questions | right |',
                  '|---|---|---:|---:|']
        lines += [f'| {k} | {t} | {len(v)} | {np.mean(v):.0%} |'
                  for (k, t), v in sorted(by_truth.items())]
    lines += [
        '',
        '## Limits',
        '',
        '- Only the synthetic world: five colours, three shapes, four question templates. Any '
        'other question gets an answer in the style of those.',
        '- Objects are small next to a token (36 tokens over the frame): the colour of a named '
        'shape (it must tell the shapes apart at that size), counts of 2 or more and '
        'left/right are what it gets wrong most (table above; heldout.json has every answer).',
        '- Its history moves it only as far as the held-out rows show: how much a right cloud '
        'turn lifts it and a wrong one pulls it down is the gap between the right- and '
        'wrong-history rows and "alone". Context Replacement can gain no more than that.',
        '- An attention bias on the objects it counts makes it miscount (docs/evaluation.md), '
        'so the edge node answers counting questions without Visual Focus '
        '(`focus.skip_questions`).',
        '',
    ]
    path = model_dir / 'README.md'
    path.write_text('\n'.join(lines))
    return path
