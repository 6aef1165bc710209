# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
What Context Transfer costs the edge step: Context Replacement and Visual Focus next to the SVLM.

The baseline is the edge step as edge_only runs it: the frame, the question and the SVLM's own
8-turn history. Context Replacement swaps some of those turns for compressed cloud answers
(cost: the store update plus whatever the cloud text changes in prefill length); Visual Focus adds
the region -> image-token geometry and the attention bias. Configurations run round-robin so
machine noise spreads over all of them. Prints numbers only; nothing is asserted.

usage: python bench/context_transfer.py [--model tiny|smolvlm-256m-random|<dir>] [--steps 20]
       [--budget 48] (replacement.max_tokens: words, as context_fusion compresses)
"""

import argparse
import statistics
import time

from edgevlm_ros.backends import visual_focus
from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.backends.transformers_backend import TransformersSvlm
from edgevlm_ros.core.context import ContextStore, compress_answer
from edgevlm_ros.core.regions import Box
import numpy as np
from tqdm import tqdm

CLOUD_REPLY = ('Sure! Based on the image, there is a red cup on the left side of the table, next '
               'to a blue bottle. A person is standing behind the table near the open door. The '
               'path ahead of the robot is clear. Let me know if you need anything else!')
QUESTION = 'What is in front of the robot?'
FOCUS = [Box(0.1, 0.3, 0.35, 0.7, 'red cup'), Box(0.4, 0.3, 0.55, 0.6, 'blue bottle')]


def _ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('--model', default='tiny', help='tiny, smolvlm-256m-random or a directory')
    ap.add_argument('--steps', type=int, default=20, help='answers per configuration')
    ap.add_argument('--width', type=int, default=640)
    ap.add_argument('--height', type=int, default=480)
    ap.add_argument('--max-new-tokens', type=int, default=16)
    ap.add_argument('--turns', type=int, default=8, help='history turns (edge_only has them too)')
    ap.add_argument('--replaced', type=int, default=4, help='turns holding cloud text')
    ap.add_argument('--budget', type=int, default=24,
                    help='replacement.max_tokens (words, as context_fusion counts them)')
    ap.add_argument('--alpha', type=float, default=2.0)
    opts = ap.parse_args()
    print(read_cpu().header(), flush=True)

    t0 = time.monotonic()
    svlm = TransformersSvlm(opts.model, max_new_tokens=opts.max_new_tokens)
    print(f'model {svlm.name} ({svlm.model_type}): loaded in {time.monotonic() - t0:.1f} s; '
          f'{opts.width}x{opts.height} frame, {opts.max_new_tokens} new tokens, '
          f'{opts.turns}-turn history, {opts.replaced} replaced, focus alpha {opts.alpha}')
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (opts.height, opts.width, 3), dtype=np.uint8)

    # The edge's own answers, as long as the SVLM really makes them (max_new_tokens).
    own_answers = [svlm.answer(image, f'Question {i} about the scene?').text
                   for i in tqdm(range(opts.turns), desc='edge history', unit='turn')]

    # The edge's own history, then the same history with cloud answers in some slots.
    def history(replaced: int) -> list[tuple[str, str]]:
        store = ContextStore(max_turns=opts.turns, max_tokens=512, count_tokens=svlm.count_tokens)
        for i in range(opts.turns):
            store.record_edge(i, f'Question {i} about the scene?', own_answers[i])
        for i in range(replaced):
            store.apply_cloud(i, f'Question {i} about the scene?',
                              compress_answer(CLOUD_REPLY, opts.budget))
        return [(t.question, t.answer) for t in store.history()]

    own, corrected = history(0), history(opts.replaced)
    cases = {'edge step (own history)': (own, ()),
             '+ Context Replacement': (corrected, ()),
             '+ Visual Focus': (own, FOCUS),
             '+ both (edgevlm)': (corrected, FOCUS)}
    svlm.answer(image, 'warm up?', own, focus=FOCUS, focus_alpha=opts.alpha)
    times: dict[str, list[float]] = {name: [] for name in cases}
    info: dict[str, tuple[int, int, int]] = {}
    for _ in tqdm(range(opts.steps), desc='round-robin steps', unit='round'):
        for name, (hist, boxes) in cases.items():
            r = svlm.answer(image, QUESTION, hist, focus=boxes, focus_alpha=opts.alpha)
            times[name].append(r.model_ms)
            info[name] = (r.prompt_tokens, r.focused_tokens, r.completion_tokens)

    base = statistics.median(times['edge step (own history)'])
    print(f"\n{'configuration':28s} {'p50 ms':>9s} {'p95 ms':>9s} {'vs edge':>8s} "
          f"{'prompt':>7s} {'focused':>8s} {'gen':>4s}")
    for name, values in times.items():
        p50 = statistics.median(values)
        prompt, focused, gen = info[name]
        print(f'{name:28s} {p50:9.1f} {np.percentile(values, 95):9.1f} '
              f'{100 * (p50 / base - 1):+7.1f}% {prompt:7d} {focused:8d} {gen:4d}')

    # The modules' own work, outside the model call.
    store = ContextStore(max_turns=opts.turns, max_tokens=512, count_tokens=svlm.count_tokens)
    for i in range(opts.turns):
        store.record_edge(i, f'Question {i}?', 'a robot near a table')
    step = iter(range(10**9))
    replacement_ms = _ms(lambda: store.apply_cloud(
        next(step) % opts.turns, 'Question?',
        compress_answer(CLOUD_REPLY, opts.budget)), 200)
    inputs, _ = svlm.build_inputs(image, QUESTION, own)
    # As TransformersSvlm.answer calls it: the processor and the frame size (LLaVA crops/pads).
    geometry_ms = _ms(lambda: visual_focus.focus_bias(
        svlm.model, inputs, svlm.processor, FOCUS, opts.alpha,
        image_size=(opts.height, opts.width)), 50)
    print(f'\nContext Replacement bookkeeping (compress + store update): {replacement_ms:.3f} ms '
          '(runs in context_fusion / on the edge message callback, not in the model call)')
    print(f'Visual Focus geometry (regions -> token bias): {geometry_ms:.3f} ms per step')
    own_tokens = sum(svlm.count_tokens(a) for a in own_answers) / len(own_answers)
    cloud_tokens = svlm.count_tokens(compress_answer(CLOUD_REPLY, opts.budget))
    print(f'history answers: edge {own_tokens:.1f} tokens each, compressed cloud answer '
          f'{cloud_tokens} tokens (budget {opts.budget} words): replacement changes the '
          f'prefill by {opts.replaced * (cloud_tokens - own_tokens):+.0f} tokens')
    print(f'edge step p50 {base:.1f} ms; 5 % of it is {0.05 * base:.1f} ms')


if __name__ == '__main__':
    main()
