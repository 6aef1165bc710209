# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Whether the edge SVLM's RSS grows when its prompt reaches token lengths it has not seen before.

The hypothesis this measures (docs/robustness.md, "An hour without growth"): the edge node's
RSS steps up after warm-up because the history's prompts reach new token lengths (new tensor
shapes), and per-shape caches (torch/oneDNN for transformers, OpenVINO / ONNX Runtime for the
openvino backend) keep memory per new shape; once every shape has been seen, RSS is flat.

One backend answers --steps steps in this process, on a dedicated model thread as in the node:

* mode 'evolving': the node's history (ContextStore with the node's caps: 8 turns, 512 tokens,
  evict_block 4) records each answer; the question switches every --question-every steps
  (the synthetic world's questions; 0 = the camera's fixed question, as in the soaks); with
  probability --cloud-p the step's slot is replaced 1-2 steps later by a cloud text (random
  tokens of the edge tokenizer, as the random-weight stand-in LVLM answers, compressed to 24
  words as context_fusion does);
* mode 'fixed' (the control): the same frames and focus boxes, but one fixed question and one
  fixed 8-turn history: the same prompt every step;
* mode 'both': 'evolving' then 'fixed', each in a fresh child process (one after the other).

The frames (512x384, --frames of them, cycled) and the question plan are made before the model
loads: rendering a new episode of the world allocates and frees tens of MB, which glibc keeps and
which would show as growth. Two switches separate the causes: --cloud-text pool (cloud texts
drawn from a fixed set: prompt lengths vary as much, but no new words reach the tokenizer) and
--tokenizer-cache off (the HF tokenizers' BPE word caches, 10,000 words each by default, resized
to 0).

After every step: process RSS (psutil), glibc's mallinfo2 (bytes in use / free but kept),
the prompt's token length, its cached prefix, the generated tokens. Printed: RSS every --every
steps with the distinct prompt lengths and shapes seen so far, then how much of the RSS increase
came from steps that brought a new prompt length (or a new maximum, or any new shape: the
prefill (new tokens, cached) pair or a KV length of a decode step) vs steps that repeated seen
ones, the largest single-step increases, and what malloc_trim(0) gives back at the end.

usage: python bench/edge_memory_shapes.py [--model micro] [--backend transformers]
       [--quantize none] [--steps 1500] [--mode both] [--threads 2] [--warmup 100]
       [--cloud-text random|pool] [--tokenizer-cache default|off] [--question-every 16]
"""

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from edgevlm_ros.backends.cpu import read_cpu

MB = 1024.0 * 1024.0
FIXED_QUESTION = 'What is in front of the robot?'  # the camera's default question
SKIP_FOCUS = r'^\s*how many\b'                      # edge_svlm focus.skip_questions default


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks',
        'fordblks', 'keepcost')]


_LIBC = ctypes.CDLL('libc.so.6')
try:
    _LIBC.mallinfo2.restype = _MallInfo2
    HAVE_MALLINFO2 = True
except AttributeError:  # glibc < 2.33
    HAVE_MALLINFO2 = False


def malloc_state() -> tuple[float, float, float]:
    """Glibc heap (all arenas): MB in use, MB free but kept, MB in mmapped chunks."""
    if not HAVE_MALLINFO2:
        return float('nan'), float('nan'), float('nan')
    m = _LIBC.mallinfo2()
    return m.uordblks / MB, m.fordblks / MB, m.hblkhd / MB


def run_mode(opts) -> dict:
    """One mode in this process; prints its tables and returns a summary."""
    import random
    import re

    from edgevlm_ros.backends.registry import load_svlm
    from edgevlm_ros.core.context import ContextStore, compress_answer, word_count
    from edgevlm_ros.sim.synthworld import WorldSpec
    import psutil

    proc = psutil.Process()
    rss = lambda: proc.memory_info().rss / MB  # noqa: E731
    pool = __import__('concurrent.futures').futures.ThreadPoolExecutor(
        1, thread_name_prefix='model')  # the node answers on one model thread

    def on_model_thread(fn, *a, **kw):
        return pool.submit(fn, *a, **kw).result()

    # Frames and questions of the synthetic world, made before the model loads (rendering a
    # new episode allocates and frees tens of MB, which glibc keeps: it would show as growth):
    # 2 steps/s (the camera's step rate), the question switching every question_every steps;
    # the first --frames frames are cycled.
    qe = opts.question_every if opts.question_every > 0 else 16
    world = WorldSpec(seed=opts.seed, duration=opts.steps / 2.0 + 1.0, fps=2.0, width=512,
                      height=384, question_every=qe / 2.0, episode=max(20.0, qe / 2.0))
    plan, frames = [], []
    for i, sample in zip(range(opts.steps), world.generate()):
        plan.append((sample.question, tuple(sample.boxes)))
        if i < opts.frames:
            frames.append(sample.rgb)
    gc.collect()

    t0 = time.monotonic()
    rss_start = rss()
    kwargs = dict(backend=opts.backend, max_new_tokens=16, num_threads=opts.threads,
                  image_longest_edge=512, do_image_splitting=False)
    if opts.quantize != 'none':
        kwargs['quantize'] = opts.quantize
    svlm = on_model_thread(load_svlm, opts.model, **kwargs)
    load_s = time.monotonic() - t0
    rss_loaded = rss()
    tok = svlm.tokenizer
    vocab = len(tok)

    rng = random.Random(opts.seed)
    skip = re.compile(SKIP_FOCUS, re.IGNORECASE)

    def random_text() -> str:
        ids = [rng.randrange(vocab) for _ in range(rng.randint(4, 64))]
        text = tok.decode(ids, skip_special_tokens=True)
        return compress_answer(text, 24, word_count) or 'nothing'

    # 'pool': a fixed set of such texts: prompt lengths still vary (8 turns drawn from the
    # pool), but no new words reach the tokenizer after the first steps.
    text_pool = [random_text() for _ in range(opts.pool)]

    def cloud_text() -> str:
        return random_text() if opts.cloud_text == 'random' else rng.choice(text_pool)

    caches = tokenizer_caches(svlm)
    if opts.tokenizer_cache == 'off':
        for model in caches:
            model._resize_cache(0)
    print(f'tokenizer BPE word caches: {len(caches)} '
          f"({'resized to 0' if opts.tokenizer_cache == 'off' else 'default capacity'}); "
          f'cloud text: {opts.cloud_text}', flush=True)

    store = ContextStore(max_turns=8, max_tokens=512, evict_block=4,
                         count_tokens=svlm.count_tokens)
    fixed_history = None
    if opts.mode == 'fixed':
        # One 8-turn history as the node holds it after a while: own answers and cloud texts.
        fixed_history = [(FIXED_QUESTION, 'not visible' if i % 2 else cloud_text())
                         for i in range(8)]
    pending: dict[int, list[tuple[int, str, str]]] = {}  # due step -> cloud replacements

    seen_n: set[int] = set()
    seen_shape: set[tuple] = set()
    max_n = max_prefill = max_area = -1
    rows = []
    prev = rss()
    print(f'{opts.model} on {opts.backend} (quantize {opts.quantize}), mode {opts.mode}: '
          f'loaded in {load_s:.1f} s, RSS {rss_start:.1f} -> {rss_loaded:.1f} MB; '
          f'{opts.threads} threads; model thread', flush=True)
    print(f"{'step':>6} {'RSS MB':>8} {'dRSS':>7} {'lengths':>7} {'max len':>7} "
          f"{'shapes':>6} {'heap use':>8} {'heap free':>9} {'mmap':>7} {'turns':>5} "
          f"{'words':>5} {'ms/step':>7}", flush=True)
    t_steps = time.monotonic()
    for step in range(opts.steps):
        sample_q, boxes = plan[step]
        rgb = frames[step % len(frames)]
        question = sample_q if opts.question_every > 0 else FIXED_QUESTION
        for sid, q, text in pending.pop(step, []):
            store.apply_cloud(sid, q, text)
        if fixed_history is not None:
            question = FIXED_QUESTION
            history, sources = fixed_history, [i % 2 == 0 for i in range(8)]
        else:
            turns = store.history()
            history = [(t.question, t.answer) for t in turns]
            sources = [t.from_cloud for t in turns]
        # The focus boxes of the sample's question (a fresh mask, as the cloud sends them),
        # the same in both modes; counting questions skip focus as in the node.
        focus = [] if skip.search(sample_q) else list(boxes)
        r = on_model_thread(svlm.answer, rgb, question, history, focus=focus,
                            focus_alpha=2.0, history_sources=sources)
        if fixed_history is None:
            store.record_edge(step, question, r.text)
            if rng.random() < opts.cloud_p:
                pending.setdefault(step + rng.choice((1, 2)), []).append(
                    (step, question, cloud_text()))
        n, c, k = r.prompt_tokens, r.cached_tokens, r.completion_tokens
        shapes = {('prefill', n - c, c)} | {('kv', n + j) for j in range(1, max(1, k))}
        new_n = n not in seen_n
        new_max = n > max_n
        new_shape = not shapes <= seen_shape
        # The prefill's activations grow with its new tokens (n - c) and its attention scores
        # with (n - c) x n: a new maximum of either is a new high-water mark of memory touched.
        new_prefill_max = (n - c) * n > max_area or n - c > max_prefill
        max_prefill, max_area = max(max_prefill, n - c), max(max_area, (n - c) * n)
        seen_n.add(n)
        seen_shape |= shapes
        max_n = max(max_n, n)
        now = rss()
        use, free, mmap = malloc_state()
        rows.append(dict(step=step, rss=now, d=now - prev, n=n, cached=c, gen=k,
                         new_n=new_n, new_max=new_max, new_shape=new_shape,
                         new_prefill_max=new_prefill_max,
                         lengths=len(seen_n), shapes=len(seen_shape), heap_use=use,
                         heap_free=free, mmap=mmap, turns=len(history),
                         words=sum(word_count(q) + word_count(a) for q, a in history)))
        prev = now
        if (step + 1) % opts.every == 0 or step == 0 or step + 1 == opts.steps:
            row = rows[-1]
            ms = (time.monotonic() - t_steps) * 1000.0 / (step + 1)
            print(f"{step + 1:6d} {row['rss']:8.1f} {row['rss'] - rss_loaded:+7.1f} "
                  f"{row['lengths']:7d} {max_n:7d} {row['shapes']:6d} {use:8.1f} {free:9.1f} "
                  f"{mmap:7.1f} {row['turns']:5d} {row['words']:5d} {ms:7.0f}", flush=True)

    summary = attribution(rows, opts.warmup)
    rss_end = rss()
    trimmed = _LIBC.malloc_trim(0)
    rss_trim = rss()
    use, free, mmap = malloc_state()
    print(f'malloc_trim(0) (returned {trimmed}): RSS {rss_end:.1f} -> {rss_trim:.1f} MB '
          f'({rss_trim - rss_end:+.1f}); glibc heap in use {use:.1f}, free kept {free:.1f}, '
          f'mmapped {mmap:.1f} MB')
    pool.shutdown()
    lens = [r['n'] for r in rows]
    summary.update(cloud_text=opts.cloud_text, tokenizer_cache=opts.tokenizer_cache,
                   heap_use_warm=rows[min(opts.warmup, len(rows)) - 1]['heap_use'],
                   heap_use_end=rows[-1]['heap_use'])
    summary.update(mode=opts.mode, model=opts.model, backend=opts.backend,
                   quantize=opts.quantize, steps=opts.steps, load_s=load_s,
                   rss_loaded=rss_loaded, rss_warm=rows[min(opts.warmup, len(rows)) - 1]['rss'],
                   rss_end=rss_end, rss_trim=rss_trim, lengths=len(set(lens)),
                   len_min=min(lens), len_max=max(lens), shapes=len(seen_shape),
                   ms_per_step=(time.monotonic() - t_steps) * 1000.0 / opts.steps,
                   checkpoints=[(r['step'] + 1, round(r['rss'], 1), r['lengths'])
                                for r in rows if (r['step'] + 1) % opts.every == 0])
    return summary


def tokenizer_caches(svlm) -> list:
    """The tokenizers' models with a word cache (HF tokenizers BPE), each once."""
    found, seen = [], set()
    for owner in (svlm, getattr(svlm, 'processor', None)):
        for value in list(vars(owner).values()) if owner is not None else ():
            backend = getattr(value, 'backend_tokenizer', None) or getattr(value, '_tokenizer',
                                                                             None)
            model = getattr(backend, 'model', None)
            if model is not None and hasattr(model, '_resize_cache') and id(backend) not in seen:
                seen.add(id(backend))
                found.append(model)
    return found


def attribution(rows: list[dict], warmup: int) -> dict:
    """Print and return the RSS increase by step kind, over all steps and after warm-up."""
    out = {}
    for label, part in (('all steps', rows), (f'after step {warmup}', rows[warmup:])):
        if not part:
            continue
        print(f'\nRSS change by step kind, {label} ({len(part)} steps; '
              f"RSS {part[0]['rss'] - part[0]['d']:.1f} -> {part[-1]['rss']:.1f} MB):")
        print(f"{'step kind':<34} {'steps':>6} {'sum of +dRSS':>12} {'net dRSS':>9} "
              f"{'steps with dRSS>=1 MB':>21}")
        for key, name in (('new_n', 'new prompt length'), ('new_max', 'new maximum length'),
                          ('new_shape', 'new shape (prefill pair / KV len)'),
                          ('new_prefill_max', 'new max prefill (n-c or (n-c)*n)')):
            for flag in (True, False):
                g = [r for r in part if r[key] == flag]
                pos = sum(r['d'] for r in g if r['d'] > 0)
                net = sum(r['d'] for r in g)
                big = sum(r['d'] >= 1.0 for r in g)
                tag = name if flag else f'  not {name}'
                print(f'{tag:<34} {len(g):6d} {pos:+12.1f} {net:+9.1f} {big:21d}')
                out[f'{label}|{key}|{flag}'] = (len(g), round(pos, 2), round(net, 2), big)
        top = sorted(part, key=lambda r: -r['d'])[:12]
        print('largest single-step increases: ' + '; '.join(
            f"step {r['step']} {r['d']:+.1f} MB (len {r['n']}, prefill {r['n'] - r['cached']}"
            f"{', new' if r['new_n'] else ''}{', max' if r['new_max'] else ''}"
            f"{', new shape' if r['new_shape'] else ''}"
            f"{', prefill max' if r['new_prefill_max'] else ''}; heap use "
            f"{r['heap_use'] - rows[r['step'] - 1]['heap_use'] if r['step'] else 0:+.1f})"
            for r in top if r['d'] > 0))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('--model', default='micro')
    ap.add_argument('--backend', default='transformers')
    ap.add_argument('--quantize', default='none')
    ap.add_argument('--steps', type=int, default=1500)
    ap.add_argument('--mode', choices=('evolving', 'fixed', 'both'), default='both')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--question-every', type=int, default=16,
                    help='steps per question (0: the fixed camera question, as in the soaks)')
    ap.add_argument('--cloud-p', type=float, default=0.85,
                    help='share of steps whose slot a cloud text replaces (evolving mode)')
    ap.add_argument('--frames', type=int, default=64, help='distinct frames, cycled')
    ap.add_argument('--cloud-text', choices=('random', 'pool'), default='random',
                    help='random: new random-token texts every time (as the random-weight '
                         'stand-in LVLM); pool: drawn from --pool fixed texts')
    ap.add_argument('--pool', type=int, default=48)
    ap.add_argument('--tokenizer-cache', choices=('default', 'off'), default='default',
                    help="off: the tokenizers' BPE word caches resized to 0")
    ap.add_argument('--warmup', type=int, default=100)
    ap.add_argument('--every', type=int, default=50)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', default='', help='write the summary here (used by mode both)')
    opts = ap.parse_args()
    print(f'{read_cpu().header(opts.threads)}; glibc mallinfo2: {HAVE_MALLINFO2}; load average '
          f'{os.getloadavg()[0]:.1f}', flush=True)
    if opts.mode != 'both':
        summary = run_mode(opts)
        s = summary
        print(f"summary: {s['mode']}, cloud text {s['cloud_text']}, tokenizer cache "
              f"{s['tokenizer_cache']}: RSS {s['rss_warm']:.1f} at step {opts.warmup} -> "
              f"{s['rss_end']:.1f} at {s['steps']} ({s['rss_end'] - s['rss_warm']:+.1f} MB), "
              f"glibc heap in use {s['heap_use_end'] - s['heap_use_warm']:+.1f} MB; "
              f"{s['lengths']} prompt lengths ({s['len_min']}-{s['len_max']}), "
              f"{s['shapes']} shapes", flush=True)
        if opts.json:
            with open(opts.json, 'w') as f:
                json.dump(summary, f)
        return 0
    results = {}
    for mode in ('evolving', 'fixed'):
        with tempfile.NamedTemporaryFile(suffix='.json', delete=False) as f:
            path = f.name
        args = [a for a in sys.argv[1:]]
        cmd = [sys.executable, os.path.abspath(__file__), *args, '--mode', mode, '--json', path]
        print(f'\n=== {mode}: a fresh process ===', flush=True)
        rc = subprocess.call(cmd)
        if rc == 0:
            with open(path) as f:
                results[mode] = json.load(f)
        os.unlink(path)
    if len(results) == 2:
        print('\n=== evolving vs fixed (the control) ===')
        print(f"{'mode':<9} {'RSS loaded':>10} {'at warm-up':>10} {'end':>8} {'growth after':>12} "
              f"{'heap use growth':>15} {'after trim':>10} {'lengths':>7} {'len range':>10} "
              f"{'shapes':>6} {'ms/step':>7}")
        for mode, s in results.items():
            print(f"{mode:<9} {s['rss_loaded']:10.1f} {s['rss_warm']:10.1f} {s['rss_end']:8.1f} "
                  f"{s['rss_end'] - s['rss_warm']:+12.1f} "
                  f"{s['heap_use_end'] - s['heap_use_warm']:+15.1f} {s['rss_trim']:10.1f} "
                  f"{s['lengths']:7d} {s['len_min']:>4d}-{s['len_max']:<5d} {s['shapes']:6d} "
                  f"{s['ms_per_step']:7.0f}")
    return 0


if __name__ == '__main__':
    threading.current_thread().name = 'main'
    sys.exit(main())
