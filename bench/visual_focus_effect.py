# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Does Visual Focus change the micro SVLM's answers, and why (not)? Held-out frames, numbers only.

For held-out evaluation-world frames (seeds 0.., never trained on) and every question whose
answer rests on visible objects, the model answers alone, with the attention bias on the true
boxes of those objects (alpha 0.5, 1, 2, 4, 8: what a right cloud answer's boxes would do), with
the bias on the WRONG boxes (another visible object, or an empty patch: a causal test of whether
the focused region steers the answer), with the rule Visual Focus used before (alpha x coverage,
not scaled to the best-covered token), and with the crop and overlay variants of core/zoom. Per
condition: accuracy, share of answers that changed, and the attention the answer's first token
pays to the focused image tokens (share of all attention mass on image tokens, mean over layers
and heads), with and without the bias, read from eager attention.

usage: python bench/visual_focus_effect.py [--model micro] [--frames 60] [--threads 2]
"""

import argparse
import json
import statistics
import sys

import cv2
from edgevlm_ros.backends import visual_focus
from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.backends.transformers_backend import TransformersSvlm
from edgevlm_ros.core.regions import Box
from edgevlm_ros.core.scoring import normalise
from edgevlm_ros.core.zoom import focus_view
from edgevlm_ros.sim import svlm_data
from edgevlm_ros.sim.synthworld import SynthWorld
import numpy as np
import torch
from tqdm import tqdm

ALPHAS = (0.5, 1.0, 2.0, 4.0, 8.0)


def _attention_share(svlm: TransformersSvlm, inputs, bias, positions) -> float:
    """Share of the last prompt position's attention to image tokens that lands on `positions`."""
    image_id = svlm.model.config.image_token_id
    image = (inputs['input_ids'][0] == image_id).nonzero().flatten()
    with torch.inference_mode(), visual_focus.applied(bias):
        out = svlm.model(**inputs, output_attentions=True)
    shares = []
    for layer in out.attentions:  # [1, heads, q, k]
        last = layer[0, :, -1, :]
        on_image = last[:, image].sum(-1)
        on_focus = last[:, positions].sum(-1)
        shares.append((on_focus / on_image.clamp_min(1e-9)).mean().item())
    return float(np.mean(shares))


def _answer_with_bias(svlm: TransformersSvlm, rgb, question: str, bias, history=()) -> str:
    """Greedy answer under an arbitrary bias (for rules focus_bias does not implement)."""
    from transformers import GenerationConfig

    inputs, _ = svlm.build_inputs(rgb, question, history)
    with torch.inference_mode(), visual_focus.applied(bias):
        out = svlm.model.generate(**inputs, generation_config=GenerationConfig(
            **svlm._generation_kwargs, max_new_tokens=svlm.max_new_tokens))
    return svlm.tokenizer.decode(out[0, inputs['input_ids'].shape[1]:],
                                 skip_special_tokens=True).strip()


def _cases(frames: int, history_turns: int = 0):
    """(rgb, question, truth, true boxes, wrong boxes, history) for questions on visible objects.

    The history holds `history_turns` right answers to the same question, 0.2 s of scene time
    apart (a 2 Hz robot at pace 0.4), as Context Replacement leaves them.
    """
    rng = np.random.default_rng(2024)
    for seed in range(frames):
        world = SynthWorld(seed)
        episode = world.episode(int(rng.integers(0, 1000)))
        t = float(rng.uniform(0, svlm_data.EPISODE_S))
        state = episode.state(t)
        # As the camera node sends it: 640x480 resized to its 512 px long side.
        rgb = cv2.resize(episode.render(state), (512, 384), interpolation=cv2.INTER_AREA)
        visible = [o for o in state.visible() if o.box is not None]
        for q in svlm_data.frame_questions(episode, state):
            relevant = [o for o in q.relevant(state) if o.box is not None]
            if not relevant:
                continue
            others = [o.box for o in visible if o not in relevant]
            wrong = others[:1] or [Box(0.0, 0.0, 0.15, 0.15, 'empty')]
            history = [(q.text, q.answer(episode.state(max(0.0, t - 0.2 * k)))[0])
                       for k in range(history_turns, 0, -1)]
            yield rgb, q, q.answer(state)[0], [o.box for o in relevant], wrong, history


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--model', default='micro')
    ap.add_argument('--frames', type=int, default=60)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--max-cases', type=int, default=240)
    ap.add_argument('--history-turns', type=int, default=0,
                    help='right history turns before each question (the edge node has some)')
    ap.add_argument('--json', default='', help='also write the numbers here')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(read_cpu().header(args.threads), flush=True)
    svlm = TransformersSvlm(args.model, max_new_tokens=6, image_longest_edge=512)
    cases = list(_cases(args.frames, args.history_turns))[:args.max_cases]
    conds = ['no focus'] + [f'attention a={a:g}' for a in ALPHAS] + [
        'attention a=4 WRONG boxes', 'attention a=4 plain coverage', 'crop', 'overlay']
    right = {c: [] for c in conds}
    changed = {c: [] for c in conds}
    share_off, share_on, share_wrong, share_norm = [], [], [], []
    per_kind: dict[str, dict[str, list[bool]]] = {}
    for rgb, q, truth, boxes, wrong, hist in tqdm(cases, desc='cases', file=sys.stderr,
                                            mininterval=5):
        answers = {'no focus': svlm.answer(rgb, q.text, hist).text}
        for a in ALPHAS:
            answers[f'attention a={a:g}'] = svlm.answer(rgb, q.text, hist, focus=boxes,
                                                        focus_alpha=a).text
        answers['attention a=4 WRONG boxes'] = svlm.answer(rgb, q.text, hist, focus=wrong,
                                                           focus_alpha=4.0).text
        # The rule before: alpha x coverage, not scaled to the best-covered token (objects
        # smaller than a token then get only alpha x their small share of it).
        inputs, _ = svlm.build_inputs(rgb, q.text, hist)
        positions_all, cells = visual_focus.image_token_boxes(
            svlm.model, inputs, svlm.processor, (rgb.shape[0], rgb.shape[1]))
        plain = torch.zeros(1, inputs['input_ids'].shape[1])
        plain[0, positions_all] = 4.0 * visual_focus.union_coverage(cells, boxes)
        answers['attention a=4 plain coverage'] = _answer_with_bias(svlm, rgb, q.text, plain,
                                                                    hist)
        for mode in ('crop', 'overlay'):
            shown, _ = focus_view(rgb, boxes, mode)
            answers[mode] = svlm.answer(shown, q.text, hist).text
        for c in conds:
            ok = normalise(answers[c]) == normalise(truth)
            right[c].append(ok)
            changed[c].append(normalise(answers[c]) != normalise(answers['no focus']))
            per_kind.setdefault(q.kind, {}).setdefault(c, []).append(ok)
        size = (rgb.shape[0], rgb.shape[1])
        bias, _ = visual_focus.focus_bias(svlm.model, inputs, svlm.processor, boxes, 4.0,
                                          image_size=size)
        positions = (bias[0] > 0).nonzero().flatten()
        if len(positions):
            share_off.append(_attention_share(svlm, inputs, None, positions))
            share_on.append(_attention_share(svlm, inputs, bias, positions))
            share_norm.append(_attention_share(svlm, inputs, plain, positions))
            frac = len(positions) / int((inputs['input_ids'][0] ==
                                         svlm.model.config.image_token_id).sum())
            share_wrong.append(frac)
    print(f'model {svlm.name}: {len(cases)} questions on {args.frames} held-out frames '
          f'(questions whose answer rests on visible objects), {args.history_turns} right '
          'history turns before each')
    print(f'{"condition":28s} {"accuracy":>9s} {"changed":>8s}')
    result = {'cases': len(cases), 'conditions': {}}
    for c in conds:
        acc, ch = float(np.mean(right[c])), float(np.mean(changed[c]))
        result['conditions'][c] = {'accuracy': acc, 'changed': ch,
                                   'by_kind': {k: float(np.mean(v[c]))
                                               for k, v in sorted(per_kind.items())}}
        kinds = ', '.join(f'{k} {np.mean(v[c]):.0%}' for k, v in sorted(per_kind.items()))
        print(f'{c:28s} {acc:9.1%} {ch:8.1%}   ({kinds})')
    if share_on:
        result['attention'] = {'focused_token_share': statistics.mean(share_wrong),
                               'share_without_bias': statistics.mean(share_off),
                               'share_with_bias_a4': statistics.mean(share_on),
                               'share_with_plain_coverage_a4': statistics.mean(share_norm)}
        print(f'attention of the answer position on the focused image tokens (share of its '
              f'image attention; focused tokens are {statistics.mean(share_wrong):.1%} of the '
              f'image tokens): without bias {statistics.mean(share_off):.1%}, with alpha 4 '
              f'{statistics.mean(share_on):.1%}, with alpha 4 x plain coverage (the rule before) '
              f'{statistics.mean(share_norm):.1%}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
