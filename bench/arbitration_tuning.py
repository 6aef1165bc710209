# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Tune core.arbitration's parameters on worlds the evaluation never uses (numbers only).

Replays (eval.strategy_replay) the baselines and edgevlm_arbitrated with a grid of
ArbitrationParams on the tuning worlds (default seeds 300-309, question mix 'focus'), and prints
per variant its accuracy at the deadline per cell and its worst margin over the best baseline.
The edgevlm pipeline's SVLM answers are shared by every variant (one forward pass per step).

usage: python bench/arbitration_tuning.py [--seeds 300-309] [--latencies 0.2,0.5,1,2]
(4 s and 9 s are left out: no cloud answer is fresh enough there for any variant to differ.)
"""

import argparse
import itertools
import sys

from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.core.arbitration import ArbitrationParams
from edgevlm_ros.core.scoring import timeline
from edgevlm_ros.eval import cells as sweep_cells
from edgevlm_ros.eval import replay_engine as eng
from edgevlm_ros.eval import strategy_replay as sr
from edgevlm_ros.sim.synthworld import WorldSpec
import numpy as np
from tqdm import tqdm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--seeds', default='300-309')
    ap.add_argument('--duration', type=float, default=40.0)
    ap.add_argument('--latencies', default='0.2,0.5,1,2')
    ap.add_argument('--fluctuations', default='0,0.5')
    ap.add_argument('--extra-errors', default='0.3', help='cloud error rates also tuned on')
    ap.add_argument('--extra-latencies', default='0.5,2')
    ap.add_argument('--cache', default='build/strategy_replay/tuning_cache.jsonl')
    args = ap.parse_args()
    threads = 1  # the SVLM's torch threads
    print(read_cpu().header(threads), flush=True)
    cfg0 = eng.EngineConfig()
    worlds = [eng.make_world(WorldSpec(seed=s, duration=args.duration, pace=0.4,
                                      question_every=8.0, mix='focus'))
              for s in sr.seeds_of(args.seeds)]
    svlm = eng.SvlmCache(sr.load_model('micro', threads), args.cache)
    grid = [ArbitrationParams(max_age_s=m, require_edge_agreement=a, max_self_disagreement=g)
            for m, a, g in itertools.product((0.75, 1.0, 1.5, 2.0), (False, True),
                                             (None, 0.35, 0.45))]
    cells = [(lat, f, 0.1) for f in sr._floats_of(args.fluctuations)
             for lat in sr._floats_of(args.latencies)]
    cells += [(lat, 0.0, e) for e in sr._floats_of(args.extra_errors)
              for lat in sr._floats_of(args.extra_latencies)]
    acc: dict[str, dict[str, list[int]]] = {}
    for lat, f, err in tqdm(cells, file=sys.stderr):
        net = sweep_cells.network_spec(lat, f)
        name = sweep_cells.cell_name(lat, f, err)
        per = acc.setdefault(name, {})
        for w_i, w in enumerate(worlds):
            answers = eng.cloud_answers(w, err)
            events = eng.cloud_timeline(w.steps, net, w_i, cfg0.overhead_ms)
            masks = eng.focus_masks(w.steps, events, answers, cfg0)
            # arb variants reuse edgevlm's
            runs = [(s, cfg0) for s in (*sweep_cells.BASELINES, 'edgevlm')]
            runs += [(f'arb m{p.max_age_s:g} a{int(p.require_edge_agreement)} '
                      f'g{p.max_self_disagreement}',
                      eng.EngineConfig(arbitration=p)) for p in grid]
            for label, cfg in runs:
                strategy = sweep_cells.ARBITRATED if label.startswith('arb') else label
                res = eng.replay_strategy(strategy, w, events, answers, masks, svlm, cfg, net)
                per.setdefault(label, []).extend(
                    int(r.correct) for r in timeline(res.run, cfg.deadline_s)
                    if r.correct is not None)
    labels = list(next(iter(acc.values())))
    print(f'{len(worlds)} worlds, {len(next(iter(next(iter(acc.values())).values())))} steps '
          f'per cell; SVLM {svlm.calls} new, {svlm.hits} cached')
    print(f'{"variant":26s} ' + ' '.join(f'{c:>10s}' for c in acc) + '  worst-margin  mean')
    for label in labels:
        row = [100 * np.mean(acc[c][label]) for c in acc]
        margins = [100 * (np.mean(acc[c][label])
                          - max(np.mean(acc[c][b]) for b in sweep_cells.BASELINES))
                   for c in acc]
        print(f'{label:26s} ' + ' '.join(f'{x:10.1f}' for x in row)
              + f'  {min(margins):+11.1f}  {np.mean(row):5.1f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
