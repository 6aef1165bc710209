# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
ONNX Runtime's spinning worker threads: what they cost the edge step and what comes after it.

ONNX Runtime's intra-op threads busy-wait after each run unless the session says
`session.intra_op.allow_spinning = 0` (`backends.onnx_backend.ORT_SPINNING`). Loads the model
twice in one process, spinning on and off, and alternates them step by step (the same frame and
history, the question changing so the prompt does), printing per setting: the step's p50 and its
stages, the preprocessing of a frame right after a step and after 0.3 s idle, and the CPU the
process burns in the 200 ms after a step (spinning threads burn it while the node, and every
other node on the robot, wants the cores). Numbers only.

usage: .venv/bin/python bench/ort_spinning.py [--model smolvlm-256m-random] [--backend openvino]
       [--rounds 13] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from edgevlm_ros.backends import onnx_backend, registry
from edgevlm_ros.backends.base import STAGES
from edgevlm_ros.backends.cpu import read_cpu
import numpy as np


def cpu_ms() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--model', default='smolvlm-256m-random')
    ap.add_argument('--backend', default='openvino', choices=('onnxruntime', 'openvino'))
    ap.add_argument('--rounds', type=int, default=13, help='rounds; the first is a warm-up')
    ap.add_argument('--threads', type=int, default=2)
    opts = ap.parse_args()
    print(read_cpu().header(opts.threads))
    print('load average {:.2f} {:.2f} {:.2f}'.format(*os.getloadavg()), flush=True)
    svlms = {}
    for spin in (True, False):
        onnx_backend.ORT_SPINNING = spin
        svlms[spin] = registry.load_svlm(opts.model, backend=opts.backend, quantize='int8',
                                         num_threads=opts.threads, max_new_tokens=16)
    frame = np.random.default_rng(0).integers(0, 256, (384, 512, 3), dtype=np.uint8)
    history = [('What is ahead?', 'a red square on the left of the table')] * 6
    rows = {spin: {'step': [], 'after': [], 'idle': [], 'burnt': [], 'stages': []}
            for spin in svlms}
    for r in range(opts.rounds):
        for spin in ((True, False) if r % 2 == 0 else (False, True)):
            svlm, row = svlms[spin], rows[spin]
            t = time.perf_counter()
            result = svlm.answer(frame, f'What is ahead? ({r})', history)
            step = (time.perf_counter() - t) * 1000.0
            t = time.perf_counter()
            svlm.build_inputs(frame, 'What is ahead?')
            after = (time.perf_counter() - t) * 1000.0
            svlm.answer(frame, f'What is ahead? ({r})', history)
            c0 = cpu_ms()
            time.sleep(0.2)
            burnt = cpu_ms() - c0
            time.sleep(0.3)
            t = time.perf_counter()
            svlm.build_inputs(frame, 'What is ahead?')
            idle = (time.perf_counter() - t) * 1000.0
            if r > 0:
                row['step'].append(step)
                row['after'].append(after)
                row['idle'].append(idle)
                row['burnt'].append(burnt)
                row['stages'].append([result.stages.get(k, float('nan')) for k in STAGES])
    print(f'{opts.model} on {opts.backend} int8, {opts.rounds - 1} rounds alternating, '
          f'16 new tokens at most')
    print(f"{'spinning':<9} {'step p50':>9} " + ' '.join(f'{k:>10}' for k in STAGES)
          + f" {'prep after':>11} {'prep idle':>10} {'CPU burnt':>10}")
    for spin, row in rows.items():
        st = np.median(np.array(row['stages']), axis=0)
        print(f"{'on' if spin else 'off':<9} {np.median(row['step']):9.1f} "
              + ' '.join(f'{v:10.1f}' for v in st)
              + f" {np.median(row['after']):11.1f} {np.median(row['idle']):10.1f} "
              f"{np.median(row['burnt']):10.1f}")
    ratio = np.median(rows[True]['step']) / np.median(rows[False]['step'])
    print(f'step p50, spinning on / off: {ratio:.2f}x (ms; CPU burnt: ms of CPU in the 200 ms '
          'after a step)')


if __name__ == '__main__':
    main()
