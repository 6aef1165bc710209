# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Held-out accuracy of the micro SVLM through the ONNX paths, and their agreement with torch.

Runs ``tooling.training.heldout.evaluate_heldout`` (250 frames = 1000 questions, each under
the five history kinds) through transformers (the reference) and each path given, then prints
per path: the accuracy per history kind, the share of the greedy answers equal to the
transformers ones, and the accuracy difference with its 95 % interval (paired, a bootstrap over
the questions). Writes nothing into the model directory.

usage: python bench/onnx_heldout_agreement.py [--model micro] [--images 250] [--threads 2]
       [--paths ort,ort-int8,ov-int8,ort-int4,ov-int4,ort-int8-exported,ov-int8-exported]
       [--out results.json]
"""

import argparse
import json
import os
import sys
import time

from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.core.stats import bootstrap_ci
from edgevlm_ros.tooling.training.heldout import HISTORY_KINDS, HISTORY_NAMES, evaluate_heldout

PATHS = {
    'transformers': ('transformers fp32', dict(backend='transformers')),
    'ort': ('ONNX Runtime fp32', dict(backend='onnxruntime')),
    'ort-int8': ('ONNX Runtime int8', dict(backend='onnxruntime', quantize='int8')),
    'ort-int8-exported': ('ONNX Runtime int8, exported decoder',
                          dict(backend='onnxruntime', quantize='int8', fused_decoder=False)),
    'ov-int8': ('OpenVINO int8', dict(backend='openvino', quantize='int8')),
    'ov-int8-exported': ('OpenVINO int8, exported decoder',
                         dict(backend='openvino', quantize='int8', fused_decoder=False)),
    'ort-int4': ('ONNX Runtime int4 decoder', dict(backend='onnxruntime', quantize='int4')),
    'ov-int4': ('OpenVINO int8 vision + int4 decoder', dict(backend='openvino', quantize='int4')),
    'ov-fp32': ('OpenVINO fp32', dict(backend='openvino', dtype='float32')),
}


def paired_interval(rows: list[dict], ref: list[dict]) -> tuple[float, float]:
    """95 % bootstrap interval of the accuracy difference, resampling held-out questions.

    A question's answers under the history kinds share its image, so the question is the block.
    """
    diffs = [r[k + '_ok'] - q[k + '_ok'] for r, q in zip(rows, ref) for k in HISTORY_KINDS]
    blocks = [f'{i:06d}' for i in range(len(rows)) for _ in HISTORY_KINDS]
    return bootstrap_ci(diffs, blocks, reps=2000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='micro')
    parser.add_argument('--images', type=int, default=250)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--paths', default='ort,ort-int8,ov-int8')
    parser.add_argument('--out', default='')
    args = parser.parse_args()
    print(read_cpu().header(args.threads), flush=True)
    names = ['transformers'] + [p for p in args.paths.split(',') if p and p != 'transformers']
    results = {}
    for name in names:
        t0 = time.monotonic()
        load0 = os.getloadavg()[0]
        kw = dict(PATHS[name][1])
        results[name] = evaluate_heldout(args.model, images=args.images, threads=args.threads,
                                         write=False, log=lambda s: None, **kw)
        results[name]['seconds'] = time.monotonic() - t0
        results[name]['load'] = (load0, os.getloadavg()[0])
        print(f'{name}: {results[name]["seconds"]:.0f} s, load {load0:.1f} -> '
              f'{os.getloadavg()[0]:.1f}', file=sys.stderr, flush=True)
    ref = results['transformers']['rows']
    print(f'{args.model}: {len(ref)} held-out questions x {len(HISTORY_KINDS)} history kinds, '
          f'{args.threads} threads')
    width = max(len(PATHS[n][0]) for n in names)
    print(f'{"path":{width}s} '
          + ' '.join(f'{HISTORY_NAMES[k][1][:12]:>12s}' for k in HISTORY_KINDS)
          + f' {"agree":>7s} {"d acc":>6s} {"95 % CI":>15s} {"s":>5s} {"load":>9s}')
    for name in names:
        rows = results[name]['rows']
        summary = results[name]['summary']
        same = sum(r[k] == q[k] for r, q in zip(rows, ref) for k in HISTORY_KINDS)
        total = len(rows) * len(HISTORY_KINDS)
        acc = sum(r[k + '_ok'] for r in rows for k in HISTORY_KINDS) / total
        acc_ref = sum(q[k + '_ok'] for q in ref for k in HISTORY_KINDS) / total
        load = results[name]['load']
        low, high = paired_interval(rows, ref)
        print(f'{PATHS[name][0]:{width}s} '
              + ' '.join(f'{summary[HISTORY_NAMES[k][1]]:12.1%}' for k in HISTORY_KINDS)
              + f' {same / total:7.2%} {100 * (acc - acc_ref):+6.2f} '
              f'[{100 * low:+6.2f},{100 * high:+6.2f}] '
              f'{results[name]["seconds"]:5.0f} {load[0]:4.1f}-{load[1]:4.1f}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({k: {'summary': v['summary'], 'seconds': v['seconds'], 'load': v['load']}
                       for k, v in results.items()}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
