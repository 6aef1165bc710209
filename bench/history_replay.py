# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Context Replacement without the graph: a bag's steps, answered with the edge node's history.

An SVLM answers every step of a bag with the history the edge node would hold under a cloud
latency. Numbers only.

For every step of an evaluation bag (its frames sampled at --step-rate, resized to the camera's
512 px, paired with their ground truth), each model answers:

- alone: no history;
- edge only: after its own previous answers (core.context.ContextStore, 8 turns, as edge_svlm);
- cloud at L s: the same store, plus Context Replacement as the graph does it: the simulated LVLM
  (lvlm/simulated, 10 % wrong on purpose) answers one step at a time (one request in flight, the
  next one at the first step after the reply, as the bridge's adaptive interval does), and its
  answer replaces the step's slot before the first step at or after stamp + L.

It is the graph's answer accuracy (each answer against its own frame's truth) without ROS,
network or model timing, so a 5-minute bag (600 steps) per model and latency takes a few minutes
instead of an hour of real-time replays. `edgevlm sweep` stays the measurement of the system.

usage: python bench/history_replay.py BAG [--models micro,DIR] [--latencies 0.2,0.5,1,2,4]
"""

import argparse
import sys

from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.backends.transformers_backend import TransformersSvlm
from edgevlm_ros.core.context import ContextStore, compress_answer
from edgevlm_ros.core.images import resize_max_side
from edgevlm_ros.core.sampling import StepSampler
from edgevlm_ros.core.scoring import is_correct
from edgevlm_ros.eval.bags import read_eval_bag
from edgevlm_ros.lvlm.simulated import SimulatedLvlm
import numpy as np
from tqdm import tqdm


def _steps(bag_dir: str, step_rate: float, side: int = 512) -> list:
    """(stamp_ns, rgb, truth) of the frames the camera node makes steps of, as it sends them."""
    bag = read_eval_bag(bag_dir)
    truths = {t.stamp_ns: t for t in bag.truths}
    sampler = StepSampler(step_rate)
    return [(stamp_ns, resize_max_side(bag.decode_rgb(msgtype, raw), side), truths[stamp_ns])
            for stamp_ns, msgtype, raw in bag.frames() if sampler.due(stamp_ns * 1e-9)]


def _cloud_answers(steps: list, bag_dir: str, error: float) -> list[str]:
    """The simulated LVLM's answer to every step (drawn once, reused by every latency)."""
    lvlm = SimulatedLvlm(f'simulated:{bag_dir},error={error:g}', max_new_tokens=64)
    return [lvlm.answer(rgb, truth.question).text for _, rgb, truth in steps]


def run(svlm: TransformersSvlm, steps: list, cloud: list[str], latency_s: float | None,
        history: bool = True) -> float:
    """Answer accuracy over the steps; latency_s None = no cloud."""
    store = ContextStore(max_turns=8 if history else 0)
    replies: list[tuple[int, int]] = []   # (lands_ns, step index), in flight or landed
    free_ns = 0                            # when the one request slot frees up
    right = []
    for k, (stamp_ns, rgb, truth) in enumerate(steps):
        if latency_s is not None and stamp_ns >= free_ns:
            lands = stamp_ns + int(latency_s * 1e9)
            replies.append((lands, k))
            free_ns = lands
        for lands, j in [r for r in replies if r[0] <= stamp_ns]:
            store.apply_cloud(j, steps[j][2].question, compress_answer(cloud[j], 24))
            replies.remove((lands, j))
        turns = store.history()
        answer = svlm.answer(rgb, truth.question, [(t.question, t.answer) for t in turns],
                             history_sources=[t.from_cloud for t in turns]).text
        store.record_edge(k, truth.question, answer)
        right.append(is_correct(answer, truth))
    return float(np.mean(right))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('bag', help='an eval bag written by edgevlm synth')
    ap.add_argument('--models', default='micro', help='comma-separated model dirs or names')
    ap.add_argument('--latencies', default='0.2,0.5,1,2,4', help='cloud latencies, s')
    ap.add_argument('--step-rate', type=float, default=2.0)
    ap.add_argument('--error', type=float, default=0.1, help="the simulated LVLM's error rate")
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()
    print(read_cpu().header(args.threads), flush=True)
    latencies = [float(x) for x in args.latencies.split(',') if x]
    steps = _steps(args.bag, args.step_rate)
    cloud = _cloud_answers(steps, args.bag, args.error)
    conditions = [('alone', None, False), ('edge only', None, True)] + [
        (f'cloud {lat:g} s', lat, True) for lat in latencies]
    print(f'{len(steps)} steps of {args.bag} at {args.step_rate:g} Hz; simulated LVLM right on '
          f'{np.mean([is_correct(c, s[2]) for c, s in zip(cloud, steps)]):.1%} of them')
    print(f'{"model":36s} ' + ' '.join(f'{c[0]:>11s}' for c in conditions))
    for model in args.models.split(','):
        svlm = TransformersSvlm(model, max_new_tokens=8, num_threads=args.threads)
        scores = [run(svlm, steps, cloud, lat, hist) for _, lat, hist in
                  tqdm(conditions, desc=model[-30:], file=sys.stderr, leave=False)]
        print(f'{model[-36:]:36s} ' + ' '.join(f'{s:11.1%}' for s in scores), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
