# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The strategy sweep: every strategy replayed without ROS over a grid of clouds, as cells.

`edgevlm strategy-sweep OUT` runs it (eval.replay_engine for each world, strategy and network,
eval.cells to score, eval.sweep_report for the tables and the plot); `edgevlm strategy-report
OUT` writes the tables and the plot of a finished sweep again. `python -m
edgevlm_ros.eval.strategy_replay sweep|report ...` is the same command under its older name.

usage:
  edgevlm strategy-sweep OUT --seeds 400-407 --duration 40 --mix focus --ablations fixed
                                                        (the sweep in docs/evaluation.md)
  edgevlm strategy-sweep OUT --seeds 101 --duration 30 --mix rotation --fluctuations 0 \
      --extra-errors ''                                 (the graph sweep's heldout-seed101)
  edgevlm strategy-report OUT
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
import sys
import time

from edgevlm_ros.core.arbitration import ArbitrationParams
from edgevlm_ros.eval.cells import ABLATIONS, CellResult, cell_name, network_spec, run_cell, save
from edgevlm_ros.eval.replay_engine import STRATEGIES, EngineConfig, SvlmCache, make_world
from edgevlm_ros.eval.sweep_report import report
from edgevlm_ros.sim.synthworld import WorldSpec


def seeds_of(text: str) -> list[int]:
    """'400-407,410' -> [400, ..., 407, 410]."""
    out: list[int] = []
    for part in text.split(','):
        a, sep, b = part.partition('-')
        out.extend(range(int(a), int(b) + 1) if sep else [int(a)])
    return out


def _floats_of(text: str) -> list[float]:
    return [float(x) for x in text.split(',') if x.strip()]


def load_model(spec: str, threads: int = 1):
    """The edge model the sweep replays, through the one model registry."""
    import torch

    from edgevlm_ros.backends.registry import load_svlm
    torch.set_num_threads(threads)
    return load_svlm(spec, max_new_tokens=8, num_threads=threads)


def _progress(total: int, desc: str):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False)


def cmd_strategy_sweep(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = EngineConfig(edge_ms=args.edge_ms, overhead_ms=args.overhead_ms,
                       deadline_s=args.deadline, arbitration=ArbitrationParams(
                           max_age_s=args.max_age, trust_age_s=args.trust_age,
                           require_edge_agreement=args.agreement,
                           max_self_disagreement=(None if args.max_self_disagreement < 0
                                                  else args.max_self_disagreement)))
    t0 = time.monotonic()
    specs = [WorldSpec(seed=s, duration=args.duration, pace=args.pace,
                       question_every=args.question_every, mix=args.mix)
             for s in seeds_of(args.seeds)]
    worlds = [make_world(s, cfg.step_rate) for s in specs]
    strategies = [s for s in args.strategies.split(',') if s]
    svlm = SvlmCache(load_model(args.model, args.threads), out / 'svlm_cache.jsonl')
    cells: dict[str, dict[str, CellResult]] = {}
    plan = [(lat, f, e) for e in _floats_of(args.errors) for f in _floats_of(args.fluctuations)
            for lat in _floats_of(args.latencies)]
    plan += [(lat, 0.0, e) for e in _floats_of(args.extra_errors)
             for lat in _floats_of(args.extra_latencies)]
    # Ablations (replacement_only, focus_only) cost forward passes of their own: with
    # --ablations fixed they run only in the fixed-latency cells of the first error rate, after
    # every cell has its other strategies (so a cut-short sweep still has the goal cells).
    ablations = [s for s in strategies if s in ABLATIONS] if args.ablations == 'fixed' else []
    main_strategies = [s for s in strategies if s not in ablations]
    first_error = _floats_of(args.errors)[0]
    passes = [(lat, f, e, main_strategies) for lat, f, e in plan]
    passes += [(lat, f, e, ablations) for lat, f, e in plan
               if ablations and f == 0 and e == first_error]
    bar = _progress(sum(len(p[3]) for p in passes) * len(worlds), 'cells')
    for lat, f, e, chosen in passes:
        name = cell_name(lat, f, e)
        bar.set_postfix_str(f'{name} svlm {svlm.calls} new / {svlm.hits} cached')
        cells.setdefault(name, {}).update(run_cell(
            worlds, network_spec(lat, f), e, chosen, svlm, cfg, args.network_seed,
            progress=lambda: bar.update(1)))
        save(cells, out / 'results.json', {
            'worlds': [str(s) for s in specs], 'steps': sum(len(w.steps) for w in worlds),
            'config': {k: (v.__dict__ if k == 'arbitration' else v)
                       for k, v in cfg.__dict__.items()}, 'model': args.model})
    bar.close()
    report(out, strategies, _floats_of(args.latencies), _floats_of(args.fluctuations),
           _floats_of(args.errors)[0])
    print(f'{sum(len(w.steps) for w in worlds)} steps per cell from {len(worlds)} worlds; '
          f'{svlm.calls} SVLM calls, {svlm.hits} cached; {time.monotonic() - t0:.0f} s',
          file=sys.stderr)
    return 0


def cmd_strategy_report(args: argparse.Namespace) -> int:
    report(Path(args.out))
    return 0


def add_parsers(sub) -> None:
    """The strategy sweep's subcommands, for the `edgevlm` command line."""
    sw = sub.add_parser('strategy-sweep', help='every strategy replayed without ROS over '
                        'cloud latencies, fluctuations and error rates (docs/evaluation.md)')
    sw.add_argument('out')
    sw.add_argument('--seeds', default='400-407', help='world seeds, e.g. 400-407,410')
    sw.add_argument('--duration', type=float, default=40.0)
    sw.add_argument('--pace', type=float, default=0.4)
    sw.add_argument('--question-every', type=float, default=8.0)
    sw.add_argument('--mix', default='focus', help='question mix (sim.synthworld)')
    sw.add_argument('--latencies', default='0.2,0.5,1,2,4,9')
    sw.add_argument('--fluctuations', default='0,0.5')
    sw.add_argument('--errors', default='0.1')
    sw.add_argument('--extra-errors', default='0,0.3')
    sw.add_argument('--extra-latencies', default='0.5,2')
    sw.add_argument('--strategies', default=','.join(STRATEGIES))
    sw.add_argument('--ablations', choices=('all', 'fixed'), default='all',
                    help='cells where replacement_only and focus_only run')
    sw.add_argument('--model', default='micro')
    sw.add_argument('--threads', type=int, default=1)
    sw.add_argument('--edge-ms', type=float, default=80.0)
    sw.add_argument('--overhead-ms', type=float, default=15.0)
    sw.add_argument('--deadline', type=float, default=1.0)
    sw.add_argument('--network-seed', type=int, default=0)
    sw.add_argument('--max-age', type=float, default=ArbitrationParams.max_age_s)
    sw.add_argument('--trust-age', type=float, default=ArbitrationParams.trust_age_s)
    sw.add_argument('--max-self-disagreement', type=float,
                    default=ArbitrationParams.max_self_disagreement,
                    help='arbitration: distrust a cloud that contradicts itself more (-1: off)')
    sw.add_argument('--agreement', action='store_true',
                    help='arbitration: the edge answer must be unchanged since the cloud frame')
    sw.set_defaults(func=cmd_strategy_sweep)
    rp = sub.add_parser('strategy-report',
                        help='tables and plot of a finished strategy sweep again')
    rp.add_argument('out')
    rp.set_defaults(func=cmd_strategy_report)


def main(argv: Iterable[str] | None = None) -> int:
    """`python -m edgevlm_ros.eval.strategy_replay sweep|report ...`: edgevlm's two commands."""
    parser = argparse.ArgumentParser(prog='python -m edgevlm_ros.eval.strategy_replay',
                                     description='edgevlm strategy-sweep / strategy-report')
    add_parsers(parser.add_subparsers(dest='command', required=True))
    argv = list(argv) if argv is not None else sys.argv[1:]
    if argv and argv[0] in ('sweep', 'report'):
        argv = [f'strategy-{argv[0]}', *argv[1:]]
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
