# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
How often the simulated LVLM contradicts itself, by error rate and network (numbers only).

For the tuning worlds (default seeds 300-309, the evaluation worlds' settings) prints the
distribution of core.arbitration.CloudConsistency's estimate over the ok cloud answers the bridge
would receive (eval.strategy_replay's cloud timeline): what the self-disagreement gate of
edgevlm_arbitrated sees for a cloud that is right, 10 % or 30 % wrong. No SVLM involved.

usage: python bench/cloud_consistency.py [--seeds 300-309]
"""

import argparse
import sys

from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.core.arbitration import CloudConsistency
from edgevlm_ros.eval import replay_engine as eng
from edgevlm_ros.eval import strategy_replay as sr
from edgevlm_ros.sim.synthworld import WorldSpec
import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--seeds', default='300-309')
    ap.add_argument('--networks', default='fixed:200,fixed:500,jitter:500,250,jitter:1000,500')
    args = ap.parse_args()
    print(read_cpu().header())
    worlds = [eng.make_world(WorldSpec(seed=s, duration=40, pace=0.4, question_every=8.0,
                                      mix='focus')) for s in sr.seeds_of(args.seeds)]
    parts = args.networks.split(',')
    networks = []
    for p in parts:  # 'jitter:500,250' holds a comma itself
        if networks and not p.startswith(('fixed', 'jitter', 'none', 'trace')):
            networks[-1] += ',' + p
        else:
            networks.append(p)
    print(f'{"error":>5s} {"network":18s} {"estimates":>9s}   p10   p50   p90')
    for error in (0.0, 0.1, 0.3):
        for net in networks:
            estimates = []
            for i, w in enumerate(worlds):
                answers = eng.cloud_answers(w, error)
                gate = CloudConsistency()
                for e in eng.cloud_timeline(w.steps, net, i):
                    if e.status == 'ok':
                        s = w.steps[e.step]
                        gate.add(s.stamp_ns * 1e-9, s.truth.question, answers[e.step][0])
                        if gate.estimate is not None:
                            estimates.append(gate.estimate)
            if estimates:
                p = np.percentile(estimates, [10, 50, 90])
                print(f'{error:5.1f} {net:18s} {len(estimates):9d} ' +
                      ' '.join(f'{x:5.2f}' for x in p))
    return 0


if __name__ == '__main__':
    sys.exit(main())
