# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Memory over a long run: RSS of every node process while the whole graph runs --steps steps.

Launches the graph as bench/graph.py does (frame_source builtin:pan as the camera, the tiny edge
model, the embedded cloud stand-in, loopback DDS in its own domain) with a fast camera
(step_rate_hz --step-rate from frames at --frame-rate), so steps flow through the camera, the edge
(which skips what it cannot take), the cloud bridge and context fusion as fast as the graph goes.
Every --every steps (step ids as published by the camera) it samples each node process's RSS,
threads and open file descriptors (psutil) and prints a row. At the end, per process: RSS at the
first sample at or after --baseline steps (default 1,000: imports, model loads and first-use
caches are done by then) and at the end, the growth in MB and MB per 1,000 steps, and the
least-squares slope of RSS over steps from the baseline on. A bounded graph is flat: a slope
near 0 and no steady thread or fd growth. Prints numbers only; nothing is asserted.

A 10,000-step run at ~10 steps/s takes about 17 minutes; develop with --steps 300 --every 50.

usage: .venv/bin/python bench/soak.py [--steps 10000] [--every 500] [--baseline 1000]
       [--step-rate 10] [--frame-rate 30] [--network-profile none] [--domain 96]
       [--log-dir build/bench_soak]
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

import graph  # bench/graph.py, next to this file: launching, listening, process stats

DEFAULT_DOMAIN = 96  # tests use 1..90 (conftest); graph.py 95, transport.py 97


def slope_per_1000(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs, times 1000 (MB per 1,000 steps); nan if undefined."""
    pts = [(x, y) for x, y in zip(xs, ys) if y == y]
    if len(pts) < 2:
        return float('nan')
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return float('nan')
    return 1000.0 * sum((x - mx) * (y - my) for x, y in pts) / sxx


def _os_counts(proc) -> tuple[int, int]:
    try:
        return proc.num_threads(), proc.num_fds()
    except Exception:  # noqa: BLE001 - a process that died
        return -1, -1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('--steps', type=int, default=10_000, help='steps to run')
    ap.add_argument('--every', type=int, default=500, help='sample every this many steps')
    ap.add_argument('--baseline', type=int, default=1000,
                    help='growth is measured from the first sample at or after this step')
    ap.add_argument('--step-rate', type=float, default=10.0, help='camera step_rate_hz')
    ap.add_argument('--frame-rate', type=float, default=30.0, help='frame_source rate_hz')
    ap.add_argument('--edge-model', default='tiny')
    ap.add_argument('--edge-args', nargs='*', default=[],
                    help='more launch arguments, e.g. edge_backend:=openvino '
                         'edge_quantize:=int8')
    ap.add_argument('--network-profile', default='none')
    ap.add_argument('--domain', type=int, default=DEFAULT_DOMAIN,
                    help='ROS_DOMAIN_ID (tests use 1..90)')
    ap.add_argument('--max-minutes', type=float, default=0.0,
                    help='give up after this long (0: 3x the nominal run time + 5 min)')
    ap.add_argument('--log-dir', type=Path, default=Path('build/bench_soak'), help='node logs')
    opts = ap.parse_args()
    from edgevlm_ros.backends.cpu import read_cpu

    print(read_cpu().header(), flush=True)
    if opts.baseline >= opts.steps:
        opts.baseline = opts.steps // 3
        print(f'--baseline moved to step {opts.baseline} (a third of the run)')

    graph.loopback_env(opts.domain, opts.log_dir)
    graph.prepare_models(opts.edge_model)
    overrides = {'camera': {'step_rate_hz': opts.step_rate},
                 'frame_source': {'rate_hz': opts.frame_rate}}
    largs = {'use_frame_source': 'true', 'source': 'builtin:pan', 'cloud_url': 'embedded',
             'edge_model': opts.edge_model, 'network_profile': opts.network_profile,
             'params_file': graph.params_file(overrides, opts.log_dir)}
    largs.update(a.split(':=', 1) for a in opts.edge_args)
    max_s = opts.max_minutes * 60 or 3 * opts.steps / opts.step_rate + 300
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=[])  # argv holds launch arguments (k:=v), not ROS arguments
    monitor = graph.make_monitor()
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    procs, popens = graph.launch(largs, opts.log_dir)
    names = [p.name for p in procs]
    stats = graph.ProcStats(names, [q.pid for q in popens])
    short = {'frame_source': 'source', 'camera': 'camera', 'edge_svlm': 'edge',
             'cloud_bridge': 'bridge', 'context_fusion': 'fusion', '(this listener)': 'listen'}
    cols = list(stats.procs)
    rows: list[tuple[int, dict[str, float], dict[str, tuple[int, int]]]] = []
    died = None
    t0 = time.monotonic()
    try:
        died = graph.spin_for(executor, 300.0, popens, procs, 0.1,
                              lambda: monitor.first_answer_s is not None)
        if died is None and monitor.first_answer_s is None:
            died = 'no answer within 300 s'
        print(f'graph up, first answer after {time.monotonic() - t0:.1f} s; step rate '
              f'{opts.step_rate:g} Hz from {opts.frame_rate:g} Hz frames; sampling every '
              f'{opts.every} steps; {graph.load_avg()}', flush=True)
        print(f"\n  {'steps':>6} {'min':>6} {'answers':>7}  " +
              ' '.join(f'{short.get(c, c)[:7] + " MB":>10}' for c in cols) +
              '   threads / fds per process')
        next_at = opts.every
        t_run = time.monotonic()

        def tick() -> bool:
            nonlocal next_at
            if monitor.steps_seen < next_at:
                return time.monotonic() - t_run > max_s
            steps = monitor.steps_seen
            rss = stats.sample()
            counts = {c: _os_counts(p) for c, p in stats.procs.items()}
            rows.append((steps, rss, counts))
            answers = monitor.counter('edge_svlm', 'answers_published')
            print(f'  {steps:6d} {(time.monotonic() - t_run) / 60:6.1f} {answers:7d}  ' +
                  ' '.join(f'{rss[c]:10.1f}' for c in cols) + '   ' +
                  ' '.join(f'{t}/{f}' for t, f in counts.values()), flush=True)
            while next_at <= steps:
                next_at += opts.every
            return steps >= opts.steps

        if died is None:
            try:
                died = graph.spin_for(executor, max_s, popens, procs, 0.2, tick)
            except (KeyboardInterrupt, ExternalShutdownException):
                died = f'stopped by Ctrl-C at step {monitor.steps_seen}'  # the table so far
        wall = time.monotonic() - t_run
        if rclpy.ok():
            graph.spin_for(executor, 1.2, popens, procs)  # one more diagnostics round
        if died is None and (not rows or rows[-1][0] < opts.steps):
            died = f'stopped after {max_s / 60:.0f} min at step {monitor.steps_seen}'
        if rows:
            verdict(opts, monitor, rows, cols, wall)
    finally:
        codes = graph.stop(popens)
        executor.shutdown()
        monitor.destroy_node()
        rclpy.try_shutdown()
    if died:
        print(f'soak incomplete: {died}; logs in {opts.log_dir}/', file=sys.stderr)
    bad = graph.stop_errors(procs, codes)
    if bad:
        print(f'nodes exited with errors on stop: {bad}', file=sys.stderr)
    return 0


def verdict(opts, monitor, rows, cols, wall: float) -> None:
    steps = rows[-1][0]
    base = next((r for r in rows if r[0] >= opts.baseline), rows[0])
    tail = [r for r in rows if r[0] >= base[0]]
    c = monitor.counter
    print(f'\n== soak: {steps} steps in {wall / 60:.1f} min ({steps / wall:.2f} steps/s), '
          f"{c('edge_svlm', 'answers_published')} edge answers, "
          f"{c('edge_svlm', 'steps_skipped')} steps skipped by the edge, "
          f"{c('edge_svlm', 'context_replacements')} context replacements, "
          f"{c('context_fusion', 'focus_masks_published')} focus masks; {graph.load_avg()} ==")
    print(f"  {'process':<17} {'RSS@' + str(base[0]):>10} {'RSS@' + str(steps):>10} "
          f"{'growth MB':>10} {'MB/1k steps':>11} {'LSQ MB/1k':>10}   threads, fds "
          f'(baseline -> end)')
    for col in cols:
        first, last = base[1][col], rows[-1][1][col]
        span = max(1, steps - base[0])
        lsq = slope_per_1000([r[0] for r in tail], [r[1][col] for r in tail])
        (t0, f0), (t1, f1) = base[2][col], rows[-1][2][col]
        print(f'  {col:<17} {first:10.1f} {last:10.1f} {last - first:10.1f} '
              f'{1000.0 * (last - first) / span:11.2f} {lsq:10.2f}   {t0}->{t1}, {f0}->{f1}')


if __name__ == '__main__':
    sys.exit(main())
