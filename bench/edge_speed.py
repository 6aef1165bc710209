# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The edge step on every backend path, side by side in one run, against today's path.

For each model, every path answers the same frame and question after the history the edge node
would hold (a ContextStore with the node's caps that records each answer, so the history grows and
evicts as it does on the robot, and the KV cache meets the prefix changes a real run makes), with
Visual Focus boxes given. Paths run round-robin, one step each per round, so the noise of this
shared machine spreads over all of them; every path's p50 is divided by today's p50 from the same
rounds. Paths whose runtime is not installed are listed and skipped. Numbers only.

"today" is the transformers path as it was before the fast paths: fp32, ``model.generate`` over
the whole prompt every step (no KV reuse, logits at every prompt position).

usage: python bench/edge_speed.py [--models smolvlm-256m-random,micro] [--steps 12] [--threads 2]
       [--new-tokens 16]
       [--paths today,tf-reuse,tf-int8,ort,ort-reuse,ort-int8-exported,ort-int8,
       ov-int8-exported,ov-int8,ov-int8-tiles,ov-int4]
"""

import argparse
import os
import statistics
import sys
import time

from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.backends.registry import load_svlm
from edgevlm_ros.core.context import ContextStore
from edgevlm_ros.core.regions import Box
from edgevlm_ros.sim.synthworld import WorldSpec
import numpy as np
from tqdm import tqdm

QUESTION = 'What colour is the square?'
FOCUS = [Box(0.30, 0.25, 0.55, 0.60, 'square')]
ALPHA = 2.0

# name -> (description, load_svlm keywords); 'today' is answered by legacy_answer().
PATHS = {
    'today': ('transformers fp32, generate(), no KV reuse (the old path)',
              dict(backend='transformers', kv_reuse=False)),
    'tf-reuse': ('transformers fp32 + KV reuse', dict(backend='transformers')),
    'tf-int8': ('transformers dynamic int8 + KV reuse',
                dict(backend='transformers', quantize='int8')),
    'ort': ('ONNX Runtime fp32, no KV reuse', dict(backend='onnxruntime', kv_reuse=False)),
    'ort-reuse': ('ONNX Runtime fp32 + KV reuse', dict(backend='onnxruntime')),
    'ort-int8-exported': ('ONNX Runtime int8 + KV reuse, exported decoder',
                          dict(backend='onnxruntime', quantize='int8', fused_decoder=False)),
    'ort-int8': ('ONNX Runtime int8 + KV reuse', dict(backend='onnxruntime', quantize='int8')),
    'ov-int8-exported': ('OpenVINO static int8 vision + ONNX Runtime int8 exported decoder '
                         '+ KV reuse (before the fused decoder)',
                         dict(backend='openvino', quantize='int8', fused_decoder=False)),
    'ov-int8': ('OpenVINO static int8 vision + ONNX Runtime int8 fused decoder + KV reuse',
                dict(backend='openvino', quantize='int8')),
    'ov-int8-tiles': ('the same with Idefics3 tiling: 4 tiles of 512 px and the global view',
                      dict(backend='openvino', quantize='int8', do_image_splitting=True,
                           image_longest_edge=1024)),
    'ov-int4': ('OpenVINO static int8 vision + ONNX Runtime 4-bit decoder + KV reuse',
                dict(backend='openvino', quantize='int4')),
}


def rss_mb() -> float:
    """Resident set size of this process, MB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def legacy_answer(svlm, image, question, history, sources):
    """Today's TransformersSvlm.answer before the fast paths: generate() over the whole prompt."""
    from edgevlm_ros.backends import visual_focus
    import torch
    from transformers import GenerationConfig

    t0 = time.perf_counter()
    inputs, _ = svlm.build_inputs(image, question, history, sources)
    bias, _ = visual_focus.focus_bias(svlm.model, inputs, svlm.processor, FOCUS, ALPHA,
                                      image_size=image.shape[:2])
    config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=svlm.max_new_tokens,
                              eos_token_id=svlm.tokenizer.eos_token_id,
                              pad_token_id=svlm.tokenizer.pad_token_id or 0)
    with torch.inference_mode(), visual_focus.applied(bias):
        out = svlm.model.generate(**inputs, generation_config=config)
    n = int(inputs['input_ids'].shape[1])
    text = svlm.tokenizer.decode(out[0, n:], skip_special_tokens=True).strip()
    return text, (time.perf_counter() - t0) * 1000.0, {}, 0, int(out.shape[1] - n), n


def answer(name, svlm, image, question, history, sources):
    if name == 'today':
        return legacy_answer(svlm, image, question, history, sources)
    r = svlm.answer(image, question, history, focus=FOCUS, focus_alpha=ALPHA,
                    history_sources=sources)
    return r.text, r.model_ms, r.stages, r.cached_tokens, r.completion_tokens, r.prompt_tokens


def frame() -> np.ndarray:
    """One 640x480 frame of the synthetic world (the micro SVLM's world)."""
    episode, state = WorldSpec(seed=7).state_at(2.0)
    return episode.render(state)


def bench_model(model: str, paths: list[str], opts) -> None:
    image = frame()
    loaded = {}
    for name in paths:
        desc, kwargs = PATHS[name]
        before, t0 = rss_mb(), time.monotonic()
        try:
            svlm = load_svlm(model, max_new_tokens=opts.new_tokens, num_threads=opts.threads,
                             **({'image_longest_edge': 512} | kwargs))
        except ImportError as e:
            print(f'  {name:10s} skipped: {e}')
            continue
        except Exception as e:  # noqa: BLE001 - a path that cannot load is reported, not fatal
            print(f'  {name:10s} cannot load: {type(e).__name__}: {e}')
            continue
        # The node's history caps, evict_block included (edge_svlm history.evict_block default).
        store = ContextStore(max_turns=8, max_tokens=512, evict_block=4,
                             count_tokens=svlm.count_tokens)
        for i in range(8):  # the node's history once it has run for a while: 8 own turns
            store.record_edge(i, f'Question {i} about the scene?', 'a red square near the left')
        loaded[name] = dict(svlm=svlm, store=store, load_s=time.monotonic() - t0,
                            rss=rss_mb() - before, ms=[], stages=[], cached=[], prompt=[], gen=[])
        answer(name, svlm, image, QUESTION, *_history(store))  # warm-up (not timed)
    if 'today' not in loaded:
        print("  today's path did not load: no ratios")
    step = 100
    for _ in tqdm(range(opts.steps), desc=model[-24:], unit='round', file=sys.stderr):
        for name, p in loaded.items():
            history, sources = _history(p['store'])
            text, ms, stages, cached, gen, prompt = answer(name, p['svlm'], image, QUESTION,
                                                           history, sources)
            p['store'].record_edge(step, QUESTION, text)
            p['ms'].append(ms)
            p['stages'].append(stages)
            p['cached'].append(cached)
            p['prompt'].append(prompt)
            p['gen'].append(gen)
        step += 1
    base = statistics.median(loaded['today']['ms']) if 'today' in loaded else None
    print(f'\n{model}: {opts.steps} rounds, {opts.threads} threads, {opts.new_tokens} new '
          f'tokens cap, 8-turn history, Visual Focus alpha {ALPHA}; load average '
          f'{os.getloadavg()[0]:.1f}')
    print(f"{'path':10s} {'p50 ms':>8s} {'p95 ms':>8s} {'x today':>7s} {'prep':>6s} "
          f"{'vision':>7s} {'prefill':>8s} {'decode':>7s} {'tok/s':>6s} {'cached':>7s} "
          f"{'prompt':>6s} {'gen':>4s} {'RSS MB':>7s}  what")
    for name, p in loaded.items():
        p50 = statistics.median(p['ms'])
        p95 = float(np.percentile(p['ms'], 95))
        st = {k: statistics.median([s.get(k, float('nan')) for s in p['stages']])
              for k in ('preprocess', 'vision', 'prefill', 'decode')}
        gen = statistics.median(p['gen'])
        tok_s = gen / st['decode'] * 1000.0 if st['decode'] == st['decode'] and st['decode'] else \
            float('nan')
        cached = sum(p['cached']) / max(1, sum(p['prompt']))
        ratio = f'{base / p50:6.2f}x' if base else '    -'
        print(f"{name:10s} {p50:8.0f} {p95:8.0f} {ratio:>7s} {st['preprocess']:6.0f} "
              f"{st['vision']:7.0f} {st['prefill']:8.0f} {st['decode']:7.0f} {tok_s:6.1f} "
              f"{cached:7.0%} {statistics.median(p['prompt']):6.0f} {gen:4.0f} "
              f"{p['rss']:7.0f}  {PATHS[name][0]}")


def _history(store: ContextStore):
    turns = store.history()
    return [(t.question, t.answer) for t in turns], [t.from_cloud for t in turns]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('--models', default='smolvlm-256m-random,micro')
    ap.add_argument('--paths', default=','.join(PATHS))
    ap.add_argument('--steps', type=int, default=12, help='timed rounds (one step per path)')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--new-tokens', type=int, default=16)
    opts = ap.parse_args()
    paths = [p for p in opts.paths.split(',') if p]
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        ap.error(f'unknown paths {unknown}; known: {", ".join(PATHS)}')
    print(read_cpu().header(opts.threads), flush=True)
    for model in opts.models.split(','):
        bench_model(model, paths, opts)
    return 0


if __name__ == '__main__':
    sys.exit(main())
