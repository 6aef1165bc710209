# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The transformers edge step before and after its fast paths, side by side in one run.

Paths (one model instance each, loaded once; 'old' shares the fp32 model of 'fp32'):

* old: what ``TransformersSvlm.answer`` did before: processor, focus bias, ``model.generate``
  over the whole prompt (``reference_generate``), fp32, no kept cache;
* fp32: the backend's own greedy loop with history KV reuse, fp32;
* int8: the same with dynamic int8 Linear layers (``quantize='int8'``);
* bf16: the same in bfloat16.

Every path answers the same frames and questions after the same history: an 8-turn
``ContextStore`` that starts full, records one answer per step and takes a cloud answer for the
step two back every third step (Context Replacement). With ``--evict-block 1`` (default) the full
history slides by one turn a step, so consecutive prompts share only the template's first tokens;
``--evict-block 4`` drops the oldest 4 turns at once, so between evictions new turns append and
the KV cache keeps the history. Paths run round-robin, one step each per round, so the noise of
this shared machine spreads over all; ratios are to the old path's p50 from the same rounds.
Visual Focus boxes are given at every step. 'same' counts answers equal to the old path's.
'cpu ms' is the process CPU time of a call (all its threads): on a machine shared with other
jobs it moves less than wall time does. Numbers only, no asserts.

usage: python bench/transformers_speed.py [--model smolvlm-256m-random] [--steps 10]
       [--threads 2] [--new-tokens 16] [--evict-block 1] [--paths old,fp32,int8,bf16]
"""

import argparse
import os
import statistics
import sys
import time

from edgevlm_ros.backends import visual_focus
from edgevlm_ros.backends.base import STAGES
from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.backends.transformers_backend import TransformersSvlm
from edgevlm_ros.core.context import ContextStore
from edgevlm_ros.core.regions import Box
from edgevlm_ros.models.registry import resolve_model
from edgevlm_ros.sim.synthworld import WorldSpec
import torch

QUESTIONS = ['What colour is the square?', 'Is the path ahead clear?',
             'What is on the left?', 'How far is the door?']
FOCUS = [Box(0.30, 0.25, 0.55, 0.60, 'square')]
ALPHA = 2.0
TURNS = 8
# name -> (description, TransformersSvlm keywords)
PATHS = {
    'old': ('fp32, generate() over the whole prompt, no KV reuse (before)',
            dict(dtype='float32')),
    'fp32': ('fp32, own loop + KV reuse', dict(dtype='float32')),
    'int8': ('dynamic int8 Linear + KV reuse', dict(dtype='float32', quantize='int8')),
    'bf16': ('bfloat16, own loop + KV reuse', dict(dtype='bfloat16')),
}


def rss_mb() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def load() -> str:
    """The 1-, 5- and 15-minute load averages (other helpers share the cores)."""
    return ' '.join(f'{v:.2f}' for v in os.getloadavg())


class VisionTimer:
    """Wall time of the vision tower's forwards (hooks), for the old path's stages."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.seconds = 0.0
        self._start = None
        tower = next(getattr(model.model, n) for n in ('vision_model', 'visual', 'vision_tower')
                     if hasattr(model.model, n))
        tower.register_forward_pre_hook(self._begin)
        tower.register_forward_hook(self._end)

    def _begin(self, *_) -> None:
        self._start = time.perf_counter()

    def _end(self, *_) -> None:
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self._start = None


def old_answer(svlm: TransformersSvlm, timer: VisionTimer, image, question, history, sources):
    """TransformersSvlm.answer as it was: processor, focus bias, generate(), decode."""
    t0 = time.perf_counter()
    inputs, _ = svlm.build_inputs(image, question, history, sources)
    bias, _ = visual_focus.focus_bias(svlm.model, inputs, svlm.processor, FOCUS, ALPHA,
                                      image_size=image.shape[:2])
    t1 = time.perf_counter()
    timer.seconds = 0.0
    with visual_focus.applied(bias):
        ids = svlm.reference_generate(inputs, svlm.max_new_tokens)
    text = svlm.tokenizer.decode(ids, skip_special_tokens=True).strip()
    t2 = time.perf_counter()
    stages = {'preprocess': (t1 - t0) * 1e3, 'vision': timer.seconds * 1e3,
              'prefill+decode': (t2 - t1 - timer.seconds) * 1e3}
    return dict(text=text, ms=(t2 - t0) * 1e3, stages=stages, cached=0,
                prompt=int(inputs['input_ids'].shape[1]), gen=len(ids))


def new_answer(svlm: TransformersSvlm, image, question, history, sources):
    r = svlm.answer(image, question, history, focus=FOCUS, focus_alpha=ALPHA,
                    history_sources=sources)
    stages = {**r.stages, 'prefill+decode': r.stages['prefill'] + r.stages['decode']}
    return dict(text=r.text, ms=r.model_ms, stages=stages, cached=r.cached_tokens,
                prompt=r.prompt_tokens, gen=r.completion_tokens)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='smolvlm-256m-random')
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--new-tokens', type=int, default=16)
    parser.add_argument('--evict-block', type=int, default=1)
    parser.add_argument('--paths', default=','.join(PATHS))
    opts = parser.parse_args()
    paths = [p.strip() for p in opts.paths.split(',') if p.strip()]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        parser.error(f'unknown paths {unknown}; known: {", ".join(PATHS)}')
    torch.set_num_threads(opts.threads)
    print(read_cpu().header(opts.threads), flush=True)
    if opts.model in ('smolvlm-256m-random',):
        from edgevlm_ros.models.tiny import ensure_tiny_model
        ensure_tiny_model(opts.model, progress=False)  # built on demand, once
    print(f'model {opts.model} ({resolve_model(opts.model)}), torch {torch.__version__}, '
          f'{opts.threads} threads, 640x480 frame, longest edge 512, no splitting, '
          f'{TURNS}-turn history (evict block {opts.evict_block}), {opts.new_tokens} new tokens, '
          f'{opts.steps} steps; load average {load()}')

    loaded = {}
    fp32 = None
    for name in paths:
        before, t0 = rss_mb(), time.perf_counter()
        if name in ('old', 'fp32') and fp32 is not None:
            svlm = fp32  # generate() never touches the backend's kept cache
        else:
            svlm = TransformersSvlm(opts.model, max_new_tokens=opts.new_tokens,
                                    image_longest_edge=512, do_image_splitting=False,
                                    **PATHS[name][1])
            if name in ('old', 'fp32'):
                fp32 = svlm
        loaded[name] = dict(svlm=svlm, timer=VisionTimer(svlm.model) if name == 'old' else None,
                            load_s=time.perf_counter() - t0, rss=rss_mb() - before, runs=[])

    world = WorldSpec(seed=7)
    store = ContextStore(max_turns=TURNS, max_tokens=1024, evict_block=opts.evict_block,
                         count_tokens=next(iter(loaded.values()))['svlm'].count_tokens)
    for i in range(TURNS):  # the node's history once it has run for a while
        store.record_edge(i, QUESTIONS[i % len(QUESTIONS)], f'a red square {i} ahead')

    for step in range(opts.steps + 1):  # step 0 warms every path up (not counted)
        episode, state = world.state_at(1.0 + 0.5 * step)
        image = episode.render(state)
        question = QUESTIONS[step % len(QUESTIONS)]
        turns = store.history()
        history = [(t.question, t.answer) for t in turns]
        sources = [t.from_cloud for t in turns]
        for name, p in loaded.items():
            cpu = time.process_time()
            if name == 'old':
                run = old_answer(p['svlm'], p['timer'], image, question, history, sources)
            else:
                run = new_answer(p['svlm'], image, question, history, sources)
            run['cpu_ms'] = (time.process_time() - cpu) * 1e3
            if step > 0:
                p['runs'].append(run)
        sid = TURNS + step
        store.record_edge(sid, question, f'a red square {sid} ahead')
        if step % 3 == 2:  # a late cloud answer replaces the turn of two steps back
            store.apply_cloud(sid - 2, QUESTIONS[(step - 2) % len(QUESTIONS)],
                              f'the cloud sees a blue ball {sid}')
        print(f'  step {step}{" (warm-up)" if step == 0 else ""}: {len(history)} turns, '
              + ', '.join(f'{n} {p["runs"][-1]["ms"]:.0f} ms' for n, p in loaded.items()
                          if p['runs']), file=sys.stderr, flush=True)

    old_p50 = statistics.median(r['ms'] for r in loaded['old']['runs']) \
        if 'old' in loaded else None
    old_cpu = statistics.median(r['cpu_ms'] for r in loaded['old']['runs']) \
        if 'old' in loaded else None
    print(f'\nload average after: {load()}')
    header = (f'{"path":5s} {"p50 ms":>8s} {"ratio":>6s} {"cpu ms":>7s} {"ratio":>6s} ' + ' '.join(
        f'{s:>10s}' for s in (*STAGES, 'pf+decode')) + f' {"cached":>7s} {"prompt":>6s} '
        f'{"gen":>4s} {"same":>5s} {"load s":>6s} {"RSS MB":>7s}  description')
    print(header)
    reference = [r['text'] for r in loaded['old']['runs']] if 'old' in loaded else None
    for name, p in loaded.items():
        runs = p['runs']
        p50 = statistics.median(r['ms'] for r in runs)
        cpu = statistics.median(r['cpu_ms'] for r in runs)
        stage_p50 = {s: statistics.median(r['stages'].get(s, float('nan')) for r in runs)
                     for s in (*STAGES, 'prefill+decode')}
        cached = sum(r['cached'] for r in runs) / max(1, sum(r['prompt'] for r in runs))
        same = sum(a == r['text'] for a, r in zip(reference, runs)) if reference else 0
        print(f'{name:5s} {p50:8.0f} {p50 / old_p50 if old_p50 else float("nan"):6.2f} '
              f'{cpu:7.0f} {cpu / old_cpu if old_cpu else float("nan"):6.2f} '
              + ' '.join(f'{stage_p50[s]:10.0f}' for s in (*STAGES, 'prefill+decode'))
              + f' {cached:7.1%} {statistics.median(r["prompt"] for r in runs):6.0f} '
              f'{statistics.mean(r["gen"] for r in runs):4.1f} {same:2d}/{len(runs):<2d} '
              f'{p["load_s"]:6.1f} {p["rss"]:7.0f}  {PATHS[name][0]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
