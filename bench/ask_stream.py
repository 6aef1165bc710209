# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
What streaming an Ask's tokens costs the edge model: the same answer with and without on_token.

Loads the model once and answers the same frame and history three ways, alternating round by
round (this machine is shared and noisy): without a callback (the step stream's path), with the
Ask action's callback (core.ask.TokenStream: the text decoded every `ask.feedback_tokens` tokens
or `ask.feedback_ms`), and with a callback that decodes the text after every token (the worst
case a client could ask for). Prints per way the p50 of the whole answer and of its decode stage,
and the ratio against no callback; the generated tokens are the same in all three.

usage: .venv/bin/python bench/ask_stream.py [--model smolvlm-256m-random] [--backend openvino]
       [--quantize int8] [--tokens 48] [--rounds 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from edgevlm_ros.backends import registry
from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.core.ask import TokenStream
import numpy as np

WAYS = ('none', 'ask stream', 'every token')


def callback(way: str):
    if way == 'none':
        return None
    if way == 'ask stream':
        return TokenStream().on_token
    return lambda partial: bool(partial.text) or True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--model', default='smolvlm-256m-random')
    ap.add_argument('--backend', default='openvino')
    ap.add_argument('--quantize', default='int8')
    ap.add_argument('--tokens', type=int, default=48, help='max_new_tokens of every answer')
    ap.add_argument('--rounds', type=int, default=15, help='rounds; the first is a warm-up')
    ap.add_argument('--threads', type=int, default=2)
    opts = ap.parse_args()
    print(read_cpu().header(opts.threads))
    print('load average {:.2f} {:.2f} {:.2f}'.format(*os.getloadavg()), flush=True)
    svlm = registry.load_svlm(opts.model, backend=opts.backend, quantize=opts.quantize,
                              num_threads=opts.threads, max_new_tokens=opts.tokens)
    frame = np.random.default_rng(0).integers(0, 256, (384, 512, 3), dtype=np.uint8)
    history = [('What is ahead?', 'a red square on the left of the table')] * 6
    rows = {way: {'total': [], 'decode': [], 'tokens': set()} for way in WAYS}
    for r in range(opts.rounds):
        order = WAYS if r % 2 == 0 else WAYS[::-1]
        for way in order:
            t = time.perf_counter()
            result = svlm.answer(frame, 'Describe the scene.', history,
                                 on_token=callback(way))
            total = (time.perf_counter() - t) * 1000.0
            if r == 0:
                continue  # warm-up
            rows[way]['total'].append(total)
            rows[way]['decode'].append(result.stages.get('decode', 0.0))
            rows[way]['tokens'].add(result.completion_tokens)
    print(f'{opts.model} on {opts.backend} {opts.quantize}, {opts.rounds - 1} rounds, '
          f'max_new_tokens {opts.tokens}')
    base = {k: statistics.median(rows['none'][k]) for k in ('total', 'decode')}
    print(f"{'callback':<12} {'answer p50 ms':>14} {'ratio':>6} {'decode p50 ms':>14} "
          f"{'ratio':>6}  tokens")
    for way in WAYS:
        total = statistics.median(rows[way]['total'])
        decode = statistics.median(rows[way]['decode'])
        print(f'{way:<12} {total:>14.1f} {total / base["total"]:>6.3f} {decode:>14.1f} '
              f'{decode / base["decode"]:>6.3f}  {sorted(rows[way]["tokens"])}')


if __name__ == '__main__':
    main()
