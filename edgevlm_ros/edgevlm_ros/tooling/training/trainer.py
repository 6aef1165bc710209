# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Training the micro SVLM: batches built as the edge builds them, loss, loop, checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
import json
import math
from pathlib import Path
import random
import shutil
import sys
import time
from typing import Any

import numpy as np

from edgevlm_ros.models.chat import chat_messages
from edgevlm_ros.sim import svlm_data
from edgevlm_ros.tooling.training.heldout import HISTORY_KINDS, HISTORY_NAMES
from edgevlm_ros.tooling.training.spec import (
    MicroSpec,
    TrainConfig,
    build_untrained,
    load_trained,
    spec_of,
)

# Seeds 5,000 .. 5,999 hold the validation frames scored during training; the held-out
# evaluation after training uses seeds 0 .. 999 (heldout.HELDOUT_SEED; the evaluation bags use
# seeds below 10,000 too).
VALIDATION_SEED = 5_000
# What train.json says of the training histories (runs without the key had unmarked turns).
HISTORIES = 'cloud turns and truth-independent own turns (svlm_data.HistoryPlan)'


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


# Both defaults are frozen dataclasses (spec.py), safe to share.
def train(out: Path, config: TrainConfig = TrainConfig(), spec: MicroSpec = MicroSpec(),  # noqa: B008
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

