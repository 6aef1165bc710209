# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
edgevlm: evaluation data, rosbag replay evaluation, latency sweeps and reports.

Why one module of 503 lines: it is one command line: the ``edgevlm`` parser with every
subcommand's options and the thin ``cmd_*`` functions that call the modules doing the work, so
every command is found in one place.

  edgevlm synth OUT_BAG [--seed 0 --duration 60]     a synthetic robot-camera world as a bag
  edgevlm convert SRC OUT_BAG                         a folder or JSONL dataset as a bag
  edgevlm eval BAG [--strategies all --network jitter:1500,400 --speed 1 --deadline 1]
  edgevlm sweep BAG [--latencies 0.2,0.5,1,2,4,9 --fluctuations 0,0.5]
  edgevlm report RUN_DIR [--deadline 1]               score recorded runs again, rewrite the report
  edgevlm strategy-sweep OUT [--seeds 400-407 --latencies 0.2,0.5,1,2,4,9 --fluctuations 0,0.5]
                                                      every strategy replayed without ROS
  edgevlm strategy-report OUT                         its tables and plot again
  edgevlm strategy-grid OUT [--kinds 0,1 --seeds 500-507]
                                                      the same over a grid of world kinds
  edgevlm strategy-grid-report OUT                    its tables and plot
  edgevlm train-svlm OUT [--steps 3000]               train the micro SVLM on the synthetic world
  edgevlm heldout MODEL [--images 250 --backend transformers --quantize none --device auto]
                                                      its accuracy on held-out synthetic scenes
  edgevlm export-onnx MODEL OUT [--quantize int8|int4] ONNX export for the onnxruntime/openvino
                                                      edge backends

The edge runtime of eval and sweep is a node parameter like any other: --set
edge_svlm.backend=onnxruntime (and edge_svlm.device, .dtype, .quantize, .providers) reaches the
node as the launch argument that sets it.

Every evaluation writes <out>/report.md, <out>/scores.json and PNG plots; each strategy's
recording (MCAP), parameters, node logs and final counters stay under <out>/<strategy>/.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import datetime
import json
from pathlib import Path
import sys

from edgevlm_ros.core.netem import NetworkProfile
from edgevlm_ros.core.strategy import Strategy

ALL = [s.value for s in Strategy]


def _strategies(text: str) -> list[str]:
    if text.strip() == 'all':
        return list(ALL)
    try:
        names = [Strategy.parse(s).value for s in text.split(',') if s.strip()]
    except ValueError as e:  # argparse shows an ArgumentTypeError's own text
        raise argparse.ArgumentTypeError(str(e)) from None
    if not names:
        raise argparse.ArgumentTypeError('no strategy given')
    return names


def _floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(',') if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected comma-separated numbers, got {text!r}') from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f'expected non-negative numbers, got {text!r}')
    return values


def _profile(spec: str) -> str:
    try:
        NetworkProfile.parse(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return spec


def _override(text: str) -> tuple[str, str, object]:
    """node.param=value, the value read as YAML (true, 3, 0.5, text)."""
    import yaml

    key, sep, value = text.partition('=')
    node, dot, param = key.partition('.')
    if not (sep and dot and node and param):
        raise argparse.ArgumentTypeError(f'--set takes node.param=value, got {text!r}')
    return node, param, yaml.safe_load(value)


def _default_out(bag: Path, what: str) -> Path:
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    return Path('build') / 'eval' / f'{bag.stem or bag.name}-{what}-{stamp}'


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument('bag', type=Path, help='evaluation bag (edgevlm synth / edgevlm convert)')
    p.add_argument('--out', type=Path, help='output directory (default build/eval/...)')
    p.add_argument('--strategies', type=_strategies, default=list(ALL),
                   help=f"comma-separated, or all ({','.join(ALL)})")
    p.add_argument('--speed', type=float, default=1.0,
                   help='1 = real time on the wall clock; N = simulated time at N x (nodes use '
                        '/clock; model compute then looks N x slower)')
    p.add_argument('--deadline', type=float, default=1.0,
                   help='answer deadline, s (scoring and the offload strategy)')
    p.add_argument('--seed', type=int, default=0, help='seeds the emulated network')
    p.add_argument('--edge-model', default='tiny',
                   help='edge SVLM: tiny, a checkpoint dir, or scripted:<json> (test double)')
    p.add_argument('--cloud-url', default='embedded',
                   help='OpenAI-compatible API root, or embedded (a local server)')
    p.add_argument('--cloud-model', default='edgevlm-local-lvlm', help='model name to ask for')
    p.add_argument('--embedded-model', default='tiny-cloud',
                   help='what the embedded server runs: tiny-cloud, a checkpoint dir, '
                        'oracle:<bag> (test double: the ground truth, late by the network), or '
                        'simulated:<bag>[,error=0.1] / simulated:synth:<world>[,error=0.1] (a '
                        'simulated LVLM: the ground truth, wrong at rate error)')
    p.add_argument('--step-rate', type=float, default=2.0, help='steps per second')
    p.add_argument('--drain', type=float, default=None,
                   help='seconds the graph keeps running after the last frame '
                        '(default max(2, 2 x deadline))')
    p.add_argument('--set', dest='overrides', type=_override, action='append', default=[],
                   metavar='NODE.PARAM=VALUE', help='any node parameter, e.g. '
                   'context_fusion.replacement.max_tokens=48 (repeatable)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')


def _config(args: argparse.Namespace, out: Path, network: str):
    from edgevlm_ros.eval.replay import ReplayConfig

    overrides: dict[str, dict[str, object]] = {}
    for node, param, value in args.overrides:
        overrides.setdefault(node, {})[param] = value
    cfg = ReplayConfig(
        bag=args.bag, out=out, strategies=args.strategies, network_profile=network,
        speed=args.speed, deadline_s=args.deadline, seed=args.seed, edge_model=args.edge_model,
        cloud_url=args.cloud_url, cloud_model=args.cloud_model,
        embedded_model=args.embedded_model, step_rate_hz=args.step_rate, drain_s=args.drain,
        overrides=overrides, progress=not args.no_progress)
    cfg.check()
    return cfg


def cmd_synth(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from edgevlm_ros.eval import bags
    from edgevlm_ros.sim import synthworld

    spec = synthworld.WorldSpec(seed=args.seed, duration=args.duration, fps=args.fps,
                                pace=args.pace, episode=args.episode,
                                question_every=args.question_every, width=args.width,
                                height=args.height)
    spec.check()
    # The bag says which world it is (the simulated LVLM answers from it): every value exact
    # (repr), since str(spec) rounds to 6 digits.
    text = spec.PREFIX + ','.join(f'{f.name}={getattr(spec, f.name)!r}'
                                  for f in fields(spec))
    summary = bags.write_eval_bag(args.out, spec.generate(), compressed=not args.raw,
                                  progress=True, custom_data={bags.WORLD_SPEC_KEY: text})
    print(f'wrote {args.out}: ' + ', '.join(f'{k} {v}' for k, v in summary.items()))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from edgevlm_ros.eval import bags, convert

    summary = bags.write_eval_bag(args.out, convert.load_dataset(args.source, fps=args.fps),
                                  compressed=not args.raw, jpeg_quality=args.jpeg_quality,
                                  progress=True)
    print(f'wrote {args.out}: ' + ', '.join(f'{k} {v}' for k, v in summary.items()))
    return 0


def _score_and_report(out: Path, runs, deadline_s: float, title: str, sweep=None) -> Path:
    from edgevlm_ros.core.scoring import score_run
    from edgevlm_ros.eval.report import write_report

    scored = [(run, score_run(run, deadline_s)) for run in runs]
    return write_report(out, scored, title=title, sweep=sweep, deadline_s=deadline_s)


def cmd_eval(args: argparse.Namespace) -> int:
    from edgevlm_ros.eval.replay import run_eval

    out = args.out or _default_out(args.bag, 'eval')
    cfg = _config(args, out, args.network)
    runs = run_eval(cfg)
    report = _score_and_report(out, runs, cfg.deadline_s,
                               f'edgevlm evaluation: {args.bag.name}, network {args.network}')
    print(f'report: {report}')
    print(_headline(out))
    return 0


def sweep_profiles(latencies_s: list[float], fluctuations: list[float]
                   ) -> list[tuple[float, float, str]]:
    """(mean latency s, relative std, profile spec) for each sweep point."""
    points = []
    for fl in fluctuations:
        for lat in latencies_s:
            ms = lat * 1000.0
            spec = f'fixed:{ms:g}' if fl == 0 else f'jitter:{ms:g},{ms * fl:g}'
            points.append((lat, fl, spec))
    return points


def cmd_sweep(args: argparse.Namespace) -> int:
    from edgevlm_ros.eval.replay import run_eval

    out = args.out or _default_out(args.bag, 'sweep')
    points = sweep_profiles(args.latencies, args.fluctuations)
    out.mkdir(parents=True, exist_ok=True)
    # What `edgevlm report` needs to rebuild the sweep from the recordings.
    plan = {'deadline_s': args.deadline, 'bag': str(args.bag), 'points': [
        {'latency_s': lat, 'fluctuation': fl, 'network_profile': spec, 'dir': _point_dir(lat, fl)}
        for lat, fl, spec in points]}
    (out / SWEEP_PLAN).write_text(json.dumps(plan, indent=2) + '\n')
    cloud_strategies = [s for s in args.strategies if s != Strategy.EDGE_ONLY.value]
    report = None
    try:
        # edge_only never talks to the cloud: one run stands for every network condition.
        if Strategy.EDGE_ONLY.value in args.strategies:
            cfg = _config(args, out / EDGE_ONLY_DIR, 'none')
            cfg.strategies = [Strategy.EDGE_ONLY.value]
            run_eval(cfg)
        for i, (lat, fl, spec) in enumerate(points):
            print(f'sweep point {i + 1}/{len(points)}: {spec}', flush=True)
            if cloud_strategies:
                cfg = _config(args, out / _point_dir(lat, fl), spec)
                cfg.strategies = cloud_strategies
                run_eval(cfg)
    finally:
        # Also after a failure or Ctrl-C: the points that finished get their report.
        report = _sweep_report(out, plan, args.deadline,
                               f'edgevlm latency sweep: {args.bag.name}')
    if report is not None:
        print(f'report: {report}')
        print(_headline(out))
    return 0


SWEEP_PLAN = 'sweep.json'
EDGE_ONLY_DIR = 'edge_only_all_networks'


def _point_dir(latency_s: float, fluctuation: float) -> str:
    return f'lat{latency_s:g}s_fl{fluctuation:g}'


def _load_runs(run_dir: Path) -> list:
    """The runs recorded under run_dir/<strategy>/ (record + run.json)."""
    from edgevlm_ros.eval import bags

    runs = []
    for run_json in sorted(run_dir.glob('*/run.json')):
        info = json.loads(run_json.read_text())
        run = bags.read_record(run_json.parent / 'record')
        run.strategy = info['meta']['strategy']
        run.network_profile = info['meta']['network_profile']
        run.meta, run.counters = info['meta'], info['counters']
        runs.append(run)
    return runs


def headline_profile(plan: dict) -> str:
    """The sweep point the headline table shows: the middle latency at the first fluctuation."""
    first = plan['points'][0]['fluctuation']
    level = sorted((p for p in plan['points'] if p['fluctuation'] == first),
                   key=lambda p: p['latency_s'])
    return level[len(level) // 2]['network_profile']


def _sweep_report(out: Path, plan: dict, deadline_s: float, title: str) -> Path | None:
    """Score every finished sweep point and write the report; None if nothing finished."""
    from edgevlm_ros.core.scoring import score_run
    from edgevlm_ros.eval.report import SweepPoint

    edge_only = _load_runs(out / EDGE_ONLY_DIR)
    headline = headline_profile(plan)
    sweep, shown = [], list(edge_only)
    for point in plan['points']:
        runs = _load_runs(out / point['dir'])
        if not runs:
            continue
        if point['network_profile'] == headline:
            shown += runs
        for run in [replace(r, network_profile=point['network_profile'])
                    for r in edge_only] + runs:
            sweep.append(SweepPoint(
                network_profile=point['network_profile'], cloud_latency_s=point['latency_s'],
                fluctuation=point['fluctuation'], strategy=run.strategy,
                score=score_run(run, deadline_s)))
    if not sweep:
        return None
    return _score_and_report(out, shown, deadline_s, title, sweep=sweep)


def cmd_report(args: argparse.Namespace) -> int:
    plan_file = args.run_dir / SWEEP_PLAN
    if plan_file.exists():
        plan = json.loads(plan_file.read_text())
        deadline = args.deadline if args.deadline is not None else plan['deadline_s']
        report = _sweep_report(args.run_dir, plan, deadline,
                               f'edgevlm latency sweep: {args.run_dir.name}')
    else:
        runs = _load_runs(args.run_dir)
        report = None
        if runs:
            deadline = args.deadline if args.deadline is not None else float(
                runs[0].meta.get('deadline_s', 1.0))
            report = _score_and_report(args.run_dir, runs, deadline,
                                       f'edgevlm evaluation: {args.run_dir.name}')
    if report is None:
        print(f'no recorded runs (*/run.json) under {args.run_dir}', file=sys.stderr)
        return 2
    print(f'report: {report}')
    print(_headline(args.run_dir))
    return 0


def _headline(out: Path) -> str:
    """The report's headline table, for the terminal."""
    text = (out / 'report.md').read_text()
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('|')), None)
    if start is None:
        return ''
    end = start
    while end < len(lines) and lines[end].startswith('|'):
        end += 1
    return '\n'.join(lines[start:end])


def cmd_train_svlm(args: argparse.Namespace) -> int:
    from edgevlm_ros.tooling.training import trainer

    config = trainer.TrainConfig(steps=args.steps, images_per_step=args.images,
                                 questions_per_image=args.questions, lr=args.lr,
                                 eval_every=args.eval_every, threads=args.threads, seed=args.seed,
                                 minutes=args.minutes, warmup=args.warmup,
                                 init=args.init)
    out = trainer.train(args.out, config)
    print(f'micro SVLM written to {out} (curve: {out / "curve.png"})')
    return 0


def cmd_heldout(args: argparse.Namespace) -> int:
    from edgevlm_ros.tooling.training import heldout

    # Only the options given: the default run (transformers, no keywords) is the one that
    # writes heldout.json next to the model (make train-svlm's model card reads it).
    options = {k: v for k, v in (('device', args.device), ('dtype', args.dtype),
                                 ('quantize', args.quantize), ('providers', args.providers))
               if v != HELDOUT_DEFAULTS[k]}
    result = heldout.evaluate_heldout(args.model, images=args.images, threads=args.threads,
                                      backend=args.backend, write=not args.no_write, **options)
    print(json.dumps(result['summary'], indent=1))
    return 0


HELDOUT_DEFAULTS = {'device': 'auto', 'dtype': 'auto', 'quantize': 'none', 'providers': ()}


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from edgevlm_ros.models import onnx_export

    out = onnx_export.export(args.model, args.out, quantize=args.quantize,
                             progress=not args.no_progress)
    print(f'ONNX export of {args.model} written to {out} (edge: backend onnxruntime or '
          f'openvino, model {out})')
    return 0


def _device(text: str) -> str:
    from edgevlm_ros.backends.base import check_device

    reason = check_device(text)
    if reason:
        raise argparse.ArgumentTypeError(reason)
    return text


def _providers(text: str) -> tuple[str, ...]:
    from edgevlm_ros.backends.base import parse_providers

    return parse_providers(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='edgevlm', description=__doc__.split('\n')[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n', 2)[2])
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('synth', help='generate a synthetic robot-camera world as a bag')
    p.add_argument('out', type=Path, help='bag directory to create')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--duration', type=float, default=60.0, help='seconds')
    p.add_argument('--fps', type=float, default=10.0)
    p.add_argument('--width', type=int, default=640)
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--episode', type=float, default=20.0, help='seconds per episode')
    p.add_argument('--question-every', type=float, default=5.0,
                   help='seconds between question changes')
    p.add_argument('--pace', type=float, default=1.0,
                   help='scene speed in (0, 1]: 0.5 = everything moves half as fast, so '
                        'answers hold about twice as long')
    p.add_argument('--raw', action='store_true', help='raw Image frames instead of JPEG')
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser('convert', help='turn a folder or JSONL dataset into a bag')
    p.add_argument('source', type=Path, help='dataset JSONL file or folder holding one')
    p.add_argument('out', type=Path, help='bag directory to create')
    p.add_argument('--fps', type=float, default=None, help='frame rate of a video (default: '
                   'the container rate)')
    p.add_argument('--raw', action='store_true', help='raw Image frames instead of JPEG')
    p.add_argument('--jpeg-quality', type=int, default=90)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser('eval', help='replay a bag through the graph once per strategy')
    _add_run_options(p)
    p.add_argument('--network', type=_profile, default='jitter:1500,400',
                   help='emulated cloud network: none, fixed:<ms>, jitter:<mean>,<std>, '
                        'trace:<lte|5g|csv>, with +outage:<a>-<b> etc.')
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser('sweep', help='evaluate over cloud latencies and fluctuation levels')
    _add_run_options(p)
    p.add_argument('--latencies', type=_floats, default=[0.2, 0.5, 1.0, 2.0, 4.0, 9.0],
                   help='mean cloud latencies, s')
    p.add_argument('--fluctuations', type=_floats, default=[0.0, 0.5],
                   help='relative standard deviations (0 = fixed latency)')
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser('report', help='score recorded runs again and rewrite the report')
    p.add_argument('run_dir', type=Path, help='an edgevlm eval --out directory')
    p.add_argument('--deadline', type=float, default=None, help="default: the run's own")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser('train-svlm', help='train the micro SVLM on the synthetic world')
    p.add_argument('out', type=Path, help='output directory (checkpoint, curves)')
    p.add_argument('--steps', type=int, default=3000)
    p.add_argument('--minutes', type=float, default=0.0,
                   help='train for this long instead (curriculum and learning rate follow '
                        'the clock; --steps is then ignored)')
    p.add_argument('--images', type=int, default=8, help='frames per step')
    p.add_argument('--questions', type=int, default=4, help='questions per frame')
    p.add_argument('--lr', type=float, default=5e-4)
    p.add_argument('--warmup', type=int, default=200, help='learning-rate warm-up steps')
    p.add_argument('--init', default='',
                   help="fine-tune this trained micro SVLM (directory or 'micro') on the "
                        'evaluation world instead of training from scratch')
    p.add_argument('--eval-every', type=int, default=250)
    p.add_argument('--threads', type=int, default=2, help='torch threads')
    p.add_argument('--seed', type=int, default=0)
    p.set_defaults(func=cmd_train_svlm)

    from edgevlm_ros.backends.base import BACKENDS, DTYPES, QUANTIZATIONS

    p = sub.add_parser('heldout', help="a model's accuracy on held-out synthetic scenes")
    p.add_argument('model', help="model directory or name ('micro'); for onnxruntime/openvino "
                   'an export-onnx directory')
    p.add_argument('--images', type=int, default=250, help='held-out frames (4 questions each)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--backend', choices=BACKENDS, default='transformers',
                   help='edge runtime the model answers on (as edge_svlm backend)')
    p.add_argument('--device', type=_device, default=HELDOUT_DEFAULTS['device'],
                   help='auto, cpu, cuda or cuda:N')
    p.add_argument('--dtype', choices=DTYPES, default=HELDOUT_DEFAULTS['dtype'])
    p.add_argument('--quantize', choices=QUANTIZATIONS, default=HELDOUT_DEFAULTS['quantize'])
    p.add_argument('--providers', type=_providers, default=HELDOUT_DEFAULTS['providers'],
                   help='ONNX Runtime execution providers, comma-separated (default: the '
                        "runtime's own order)")
    p.add_argument('--no-write', action='store_true',
                   help='do not write heldout.json next to the model (only the default '
                        'transformers run writes it)')
    p.set_defaults(func=cmd_heldout)

    p = sub.add_parser('export-onnx', help='export a checkpoint to ONNX for the onnxruntime and '
                       'openvino edge backends')
    p.add_argument('model', help="checkpoint directory or name ('micro', 'tiny', ...)")
    p.add_argument('out', type=Path, help='output directory')
    p.add_argument('--quantize', choices=QUANTIZATIONS, default='none',
                   help='int8: dynamic int8 weights; int4: int8 vision encoder, 4-bit decoder')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.set_defaults(func=cmd_export_onnx)
    from edgevlm_ros.eval import grid_sweep, strategy_replay
    strategy_replay.add_parsers(sub)
    grid_sweep.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as e:
        print(f'edgevlm {args.command}: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
