# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Edge step latency of the ONNX backends against TransformersSvlm fp32, per stage, in one run.

Every path answers the same frames (the photo pan, builtin:pan, 640x480 -> one 512 px tile) and
question after the same 8-turn history, capped at --new-tokens; paths run round-robin, one step
each per round, so the load of this shared machine spreads over all of them. The first round is
a warm-up and is not counted. Prints per path: p50 end to end, p50 of each stage
(preprocess, vision, prefill, decode), decode tokens/s, cached prompt share, and the ratio to
the transformers p50 of the same rounds; with the load average (`uptime`) at start and end.

usage: python bench/onnx_edge_latency.py [--model smolvlm-256m-random] [--steps 10]
       [--threads 2] [--new-tokens 16] [--paths tf,ort,ort-reuse,ort-int8,ort-int8-reuse,...]
       [--onnx DIR]   (an exported folder; default: exported once into the cache)
"""

import argparse
import os
import statistics
import sys
import time

from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.backends.registry import load_svlm
from edgevlm_ros.sim.frame_sources import camera_pan
import numpy as np

QUESTION = 'What colour is the square?'
HISTORY = [
    ('How many red objects are there?', 'two'), ('Is there a blue circle?', 'yes'),
    ('What colour is the triangle?', 'green'), ('Where is the red square? (a) left (b) right',
                                                 'left'),
    ('Is there a yellow square?', 'no'), ('How many objects are there?', 'four'),
    ('What colour is the circle?', 'blue'), ('Is the path clear?', 'yes'),
]

# name -> (label, backend keywords); 'onnx' in the backend means the spec is the ONNX folder.
PATHS = {
    'tf': ('transformers fp32, no KV reuse', dict(backend='transformers', kv_reuse=False)),
    'tf-reuse': ('transformers fp32 + KV reuse', dict(backend='transformers')),
    'ort': ('ONNX Runtime fp32', dict(backend='onnxruntime', kv_reuse=False)),
    'ort-reuse': ('ONNX Runtime fp32 + KV reuse', dict(backend='onnxruntime')),
    'ort-int8': ('ONNX Runtime int8', dict(backend='onnxruntime', quantize='int8',
                                           kv_reuse=False)),
    'ort-int8-reuse': ('ONNX Runtime int8 + KV reuse',
                       dict(backend='onnxruntime', quantize='int8')),
    'ov-int8': ('OpenVINO int8', dict(backend='openvino', quantize='int8', kv_reuse=False)),
    'ov-int8-reuse': ('OpenVINO int8 + KV reuse', dict(backend='openvino', quantize='int8')),
    'ov-fp32-reuse': ('OpenVINO fp32 + KV reuse', dict(backend='openvino', dtype='float32')),
    'ov-bf16-reuse': ('OpenVINO int8 weights, bf16 + KV reuse',
                      dict(backend='openvino', quantize='int8', dtype='bfloat16')),
}


def load() -> str:
    """The 1/5/15 min load average."""
    return ' '.join(f'{x:.2f}' for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='smolvlm-256m-random')
    parser.add_argument('--onnx', default='', help='exported ONNX folder of the model')
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--new-tokens', type=int, default=16)
    parser.add_argument('--paths', default='tf,tf-reuse,ort,ort-reuse,ort-int8,ort-int8-reuse,'
                                           'ov-int8,ov-int8-reuse')
    args = parser.parse_args()
    names = [p for p in args.paths.split(',') if p]
    unknown = [p for p in names if p not in PATHS]
    if unknown:
        parser.error(f'unknown paths {unknown}; known: {", ".join(PATHS)}')
    print(read_cpu().header(args.threads))
    print(f'load at start: {load()}  ({time.strftime("%H:%M:%S")})', flush=True)
    common = dict(max_new_tokens=args.new_tokens, num_threads=args.threads,
                  image_longest_edge=512, do_image_splitting=False)
    svlms = {}
    for name in names:
        kw = dict(PATHS[name][1])
        spec = args.onnx if args.onnx and kw['backend'] != 'transformers' else args.model
        t0 = time.perf_counter()
        svlms[name] = load_svlm(spec, **kw, **common)
        print(f'loaded {name:15s} in {time.perf_counter() - t0:5.1f} s', flush=True)
    frames = camera_pan(640, 480, 37.0)
    rows: dict[str, list] = {n: [] for n in names}
    for step in range(args.steps + 1):
        image = next(frames)
        for name in names:
            r = svlms[name].answer(image, QUESTION, HISTORY)
            if step > 0:  # round 0 warms every path up
                rows[name].append(r)
        if step > 0:
            # The table so far after every round: a run stopped early still reports.
            report(args, names, rows, step)
    return 0


def report(args, names, rows, steps) -> None:
    """Print the table of the rounds so far."""

    def p50(values):
        return statistics.median(values) if values else float('nan')

    base = p50([r.model_ms for r in rows[names[0]]]) if names[0] == 'tf' else None
    print(f'\n{args.model}: 640x480 frame -> one 512 px tile, {len(HISTORY)}-turn history, '
          f'<= {args.new_tokens} new tokens, {args.threads} threads, {steps} steps '
          f'({time.strftime("%H:%M:%S")}, load {load()})')
    print(f'{"path":32s} {"p50 ms":>7s} {"prep":>6s} {"vision":>7s} {"prefill":>7s} '
          f'{"decode":>7s} {"tok/s":>6s} {"tokens":>6s} {"cached":>7s} {"vs tf":>6s}')
    for name in names:
        rs = rows[name]
        stage = {k: p50([r.stages.get(k, float('nan')) for r in rs])
                 for k in ('preprocess', 'vision', 'prefill', 'decode')}
        rate = p50([(r.completion_tokens - 1) / (r.stages['decode'] / 1000.0)
                    for r in rs if r.stages.get('decode') and r.completion_tokens > 1])
        total = p50([r.model_ms for r in rs])
        cached = np.mean([r.cached_tokens / r.prompt_tokens for r in rs]) if rs else 0.0
        ratio = f'{total / base:5.2f}x' if base else '-'
        print(f'{PATHS[name][0]:32s} {total:7.0f} {stage["preprocess"]:6.0f} '
              f'{stage["vision"]:7.0f} {stage["prefill"]:7.0f} {stage["decode"]:7.0f} '
              f'{rate:6.1f} {np.mean([r.completion_tokens for r in rs]):6.1f} '
              f'{cached:7.0%} {ratio:>6s}', flush=True)


if __name__ == '__main__':
    sys.exit(main())
