# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Edge step time of the SVLM alone, with history, with Visual Focus, with both (prints only).

usage: python bench/edge_step.py [--model tiny] [--steps 20] [--width 640 --height 480]
"""

import argparse
import statistics
import time

from edgevlm_ros.core.regions import Box
from edgevlm_ros.models.svlm import TransformersSvlm
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='tiny')
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--width', type=int, default=640)
    ap.add_argument('--height', type=int, default=480)
    ap.add_argument('--max-new-tokens', type=int, default=16)
    opts = ap.parse_args()
    t0 = time.monotonic()
    svlm = TransformersSvlm(opts.model, max_new_tokens=opts.max_new_tokens)
    print(f'model {svlm.name}: loaded in {time.monotonic() - t0:.2f} s')
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (opts.height, opts.width, 3), dtype=np.uint8)
    history = [(f'question {i}?', 'a red cup on the table near the robot') for i in range(8)]
    focus = [Box(0.25, 0.25, 0.5, 0.5, 'cup')]
    cases = {'plain': ((), ()), '8-turn history': (history, ()), 'focus': ((), focus),
             'history + focus': (history, focus)}
    svlm.answer(image, 'warm up?')
    base = None
    for name, (hist, boxes) in cases.items():
        times = []
        for _ in range(opts.steps):
            r = svlm.answer(image, 'What is in front of the robot?', hist, focus=boxes,
                            focus_alpha=2.0)
            times.append(r.model_ms)
        p50 = statistics.median(times)
        base = base or p50
        print(f'{name:16s} p50 {p50:7.1f} ms  p95 {np.percentile(times, 95):7.1f} ms  '
              f'({100 * (p50 / base - 1):+.0f}% vs plain, prompt {r.prompt_tokens} tokens)')


if __name__ == '__main__':
    main()
