# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The exported decoder against the fused one, as the backend runs them: numerics and time.

FOLDER is an ONNX export of version 4 or later (it has ``decoder_model_fused[_int8].onnx``,
models/fused_decoder.py). The two decoders run through the backend's own classes
(backends/onnx_decoder.py): ``ExportedDecoder`` (the past in as arrays, the presents out as new
arrays) and ``FusedDecoder`` (GroupQueryAttention over one buffer per layer bound as past and
present). Both get the same token embeddings, Visual Focus bias and per-layer gate.

First the numerics: a prefill of 40 positions and one step, fp32 and int8, the logits of each
decoder against the exported fp32 one (max abs difference, cosine, same argmax), and a prefix
reuse (keep 25 of 40, prefill to 40 again) against a fresh prefill. Then, round-robin in one
process, the time of a prefill of --prefill positions (no past) and of --steps single-position
steps after a past of --past positions, int8, for both decoders. A ratio is the median over
rounds of the round's median over the exported decoder's. Numbers only.

usage: python bench/gqa_decoder.py FOLDER [--rounds 8] [--threads 2] [--prefill 170]
       [--past 380] [--steps 16]
"""

import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import time

from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.backends.onnx_backend import _OrtGraph
from edgevlm_ros.backends.onnx_decoder import ExportedDecoder, FusedDecoder
from edgevlm_ros.models.onnx_export import DECODER_FILE, FUSED_DECODER_FILE, onnx_file
import numpy as np
import onnxruntime as ort

PROVIDERS = ['CPUExecutionProvider']
ALPHA = 2.0  # Visual Focus bias on the focused keys


def decoders(folder: Path, quantize: str, threads: int) -> dict[str, object]:
    """The exported and the fused decoder of ``folder`` for ``quantize``, as the backend runs."""
    text = json.loads((folder / 'config.json').read_text())['text_config']
    layers, kv_heads = int(text['num_hidden_layers']), int(text['num_key_value_heads'])
    head_dim = int(text.get('head_dim') or text['hidden_size'] // text['num_attention_heads'])
    paths = {name: onnx_file(folder, stem, quantize) for name, stem in
             (('exported', DECODER_FILE), ('fused', FUSED_DECODER_FILE))}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        sys.exit(f'{folder} has no {quantize} {" / ".join(missing)} decoder (export version 4+ '
                 'with --quantize int8)')
    graph = {name: _OrtGraph(path, PROVIDERS, threads, dynamic_shapes=True)  # as the backend
             for name, path in paths.items()}
    return {'exported': ExportedDecoder(graph['exported'], layers, kv_heads, head_dim),
            'fused': FusedDecoder(graph['fused'], layers, kv_heads, head_dim,
                                  int(text['max_position_embeddings']))}


class Stream:
    """Random token embeddings, a Visual Focus bias on a quarter of them and a layer gate."""

    def __init__(self, hidden: int, layers: int, length: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.embeds = (rng.standard_normal((1, length, hidden)) * 0.05).astype(np.float32)
        self.bias = (ALPHA * (rng.random((1, length)) < 0.25)).astype(np.float32)
        self.gate = (rng.random(layers) < 0.5).astype(np.float32)
        self.gate[rng.integers(layers)] = 1.0

    def prefill(self, decoder, keep: int, end: int) -> np.ndarray:
        decoder.keep(keep)
        return decoder.run(self.embeds[:, keep:end], self.bias, self.gate)


def compare(label: str, a: np.ndarray, b: np.ndarray) -> None:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = float(a64 @ b64 / np.linalg.norm(a64) / np.linalg.norm(b64))
    print(f'  {label:44s} {np.abs(a - b).max():10.3g} {cos:10.6f} '
          f'{"yes" if a.argmax() == b.argmax() else "NO":>7s}')


def check(folder: Path, hidden: int, layers: int, threads: int) -> None:
    stream = Stream(hidden, layers, 41, seed=0)
    logits = {}
    for quantize in ('none', 'int8'):
        for name, decoder in decoders(folder, quantize, threads).items():
            first = stream.prefill(decoder, 0, 40)
            step = decoder.run(stream.embeds[:, 40:41], stream.bias, stream.gate)
            reused = stream.prefill(decoder, 25, 40)
            logits[name, quantize] = (first, step, reused)
    print(f'\nnumerics: prefill 40 + 1 step, Visual Focus bias {ALPHA} on '
          f'{int((stream.bias > 0).sum())}/41 keys, gate on in {int(stream.gate.sum())}/{layers}'
          f' layers; logits of the last position')
    print(f'  {"decoder vs reference":44s} {"max |diff|":>10s} {"cosine":>10s} {"argmax":>7s}')
    ref = logits['exported', 'none']
    for (name, quantize), (first, step, reused) in logits.items():
        if (name, quantize) != ('exported', 'none'):
            compare(f'{name} {quantize} prefill vs exported fp32', ref[0], first)
            compare(f'{name} {quantize} step vs exported fp32', ref[1], step)
        compare(f'{name} {quantize} keep 25, prefill to 40 vs fresh', first, reused)


def bench(runs: dict, stream: Stream, rounds: int, prefill: int, past: int,
          steps: int) -> dict[str, dict[str, list]]:
    """Per decoder and round: the prefill time and the step times, ms."""
    def step(decoder) -> None:
        n = decoder.length
        decoder.run(stream.embeds[:, n:n + 1], stream.bias, stream.gate)

    for decoder in runs.values():  # warm-up
        stream.prefill(decoder, 0, prefill)
        for _ in range(3):
            step(decoder)
    times = {name: {'prefill': [], 'step': []} for name in runs}
    for r in range(rounds):
        for name, decoder in runs.items():
            t0 = time.perf_counter()
            stream.prefill(decoder, 0, prefill)
            times[name]['prefill'].append((time.perf_counter() - t0) * 1e3)
            stream.prefill(decoder, 0, past)
            step_ms = []
            for _ in range(steps):
                t0 = time.perf_counter()
                step(decoder)
                step_ms.append((time.perf_counter() - t0) * 1e3)
            times[name]['step'].append(step_ms)
        print(f'round {r + 1}/{rounds}: step ms (median) '
              + ', '.join(f'{name} {statistics.median(t["step"][-1]):.2f}'
                          for name, t in times.items()), flush=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('folder', type=Path)
    parser.add_argument('--rounds', type=int, default=8)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--prefill', type=int, default=170)
    parser.add_argument('--past', type=int, default=380)
    parser.add_argument('--steps', type=int, default=16)
    args = parser.parse_args()
    ort.set_default_logger_severity(3)
    print(read_cpu().header(args.threads))
    print(f'load at start: {os.getloadavg()}', flush=True)
    text = json.loads((args.folder / 'config.json').read_text())['text_config']
    hidden, layers = int(text['hidden_size']), int(text['num_hidden_layers'])
    check(args.folder, hidden, layers, args.threads)

    stream = Stream(hidden, layers, max(args.prefill, args.past + args.steps), seed=1)
    runs = decoders(args.folder, 'int8', args.threads)
    print(f'\ntiming: {args.rounds} rounds, {args.threads} threads, int8, prefill '
          f'{args.prefill} positions; {args.steps} steps after a past of {args.past}',
          flush=True)
    times = bench(runs, stream, args.rounds, args.prefill, args.past, args.steps)
    base = times['exported']
    print('\nmedians; a ratio is the median over rounds of (round median / exported)')
    print(f'{"decoder":10s} {"step ms":>8s} {"prefill ms":>11s} {"step ratio":>11s} '
          f'{"prefill ratio":>14s}')
    for name, t in times.items():
        step_ratio = statistics.median(statistics.median(a) / statistics.median(b)
                                       for a, b in zip(t['step'], base['step']))
        prefill_ratio = statistics.median(a / b for a, b in zip(t['prefill'], base['prefill']))
        all_steps = [ms for round_ms in t['step'] for ms in round_ms]
        print(f'{name:10s} {statistics.median(all_steps):8.2f} '
              f'{statistics.median(t["prefill"]):11.1f} {step_ratio:11.3f} '
              f'{prefill_ratio:14.3f}')
    print(f'load at end: {os.getloadavg()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
