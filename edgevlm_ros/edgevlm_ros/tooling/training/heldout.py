# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Held-out accuracy of an edge SVLM through the edge's own path; the micro SVLM's model card."""

from __future__ import annotations

from collections.abc import Callable
import json
from pathlib import Path
import re
import sys
from typing import Any

import numpy as np

from edgevlm_ros.models.registry import MICRO_NAME
from edgevlm_ros.sim import svlm_data

# The held-out evaluation uses world seeds 0 .. 999 (never trained on; training validates on
# 5,000 .. 5,999, trainer.VALIDATION_SEED).
HELDOUT_SEED = 0
HISTORY_KINDS = svlm_data.HISTORY_KINDS
# How curves, held-out summaries and the model card name them (label, summary key).
HISTORY_NAMES = {
    'none': ('alone', 'alone'),
    'as-is': ('right cloud history', 'right_history'),
    'wrong': ('wrong cloud history', 'wrong_history'),
    'own-wrong': ('wrong own history', 'own_wrong_history'),
    'late-cloud': ('right cloud, then wrong own', 'late_cloud_history'),
}


def _print(text: str) -> None:
    print(text, flush=True)


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

    ``backend`` and ``backend_kwargs`` go to ``backends.registry.load_svlm`` (e.g.
    ``backend='onnxruntime', quantize='int8'``), so the score can be taken through every edge
    path; only the default path (transformers, no keywords) writes heldout.json, which the
    model card reads. The summary names the backend and its keywords.
    """
    from tqdm import tqdm

    from edgevlm_ros.backends.registry import load_svlm
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
        "scratch on this project's synthetic robot-camera world (`sim/synthworld.py`) because "
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
