# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The step stream during a burst of Asks: what one-off questions cost the answers robots rely on.

Launches the demo graph (bench/graph.py: frame_source playing the synthetic world, camera_node at
step_rate_hz, the edge model, the simulated LVLM behind jitter:500,250; strategy edgevlm, so every
step runs the edge model) on loopback DDS in a domain of its own. After the first answer and
--settle seconds it measures windows of --window seconds, alternating (this machine is shared
and noisy) a window without asks and one window per `ask.policy` (set on the running edge node)
with bursts: --burst edge asks sent at once, every --every seconds (the newest frame, no context,
the node's token cap), each round --rounds times. Per kind of window it prints the step answers'
latency (Answer.latency_ms: camera stamp -> publish) p50/p95/max and count, the steps the edge
skipped (its /diagnostics steps_skipped), the gaps between two step answers arriving here (p95,
max: how long the robot goes without a new answer), and the asks' latency (acceptance ->
result) p50/p95 and how they ended. Numbers only.

usage: .venv/bin/python bench/ask_burst.py [--edge-model micro] [--edge-args 'k:=v ...']
       [--window 20] [--burst 4] [--every 5] [--rounds 2] [--step-rate 2] [--domain 93]
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parent))
import graph  # noqa: E402 - bench/graph.py, next to this file

POLICIES = ('alternate', 'asks_first')


def pct(values: list[float], q: float) -> float:
    if not values:
        return float('nan')
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('--edge-model', default='micro')
    ap.add_argument('--edge-args', default='', help="more launch arguments, 'k:=v k:=v'")
    ap.add_argument('--window', type=float, default=20.0, help='seconds per window')
    ap.add_argument('--burst', type=int, default=4, help='asks sent at once')
    ap.add_argument('--every', type=float, default=5.0, help='seconds between bursts')
    ap.add_argument('--rounds', type=int, default=2, help='windows of each kind')
    ap.add_argument('--settle', type=float, default=10.0)
    ap.add_argument('--step-rate', type=float, default=2.0)
    ap.add_argument('--domain', type=int, default=93)
    ap.add_argument('--log-dir', type=Path, default=Path('build/bench_ask_burst'))
    opts = ap.parse_args()
    graph.loopback_env(opts.domain, opts.log_dir)
    from edgevlm_ros.backends.cpu import read_cpu
    from edgevlm_ros.tooling.demo import DEMO_ARGS

    print(read_cpu().header())
    print(graph.load_avg(), flush=True)
    graph.prepare_models(opts.edge_model)
    params = graph.params_file({'camera': {'step_rate_hz': opts.step_rate}}, opts.log_dir)
    largs = {**DEMO_ARGS, 'edge_model': opts.edge_model, 'strategy': 'edgevlm',
             'params_file': params}
    for a in opts.edge_args.split():
        k, v = a.split(':=', 1)
        largs[k] = v
    from edgevlm_msgs.msg import Answer
    from edgevlm_ros.client import EdgeVlmClient
    from edgevlm_ros.ros.qos import RESULTS
    from rcl_interfaces.srv import SetParameters
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    _, popens = graph.launch(largs, opts.log_dir)
    rows: dict[str, dict[str, list]] = {}
    vlm = executor = monitor = None
    try:
        rclpy.init(args=[])  # argv holds launch arguments (k:=v), not ROS arguments
        monitor = graph.make_monitor()
        executor = SingleThreadedExecutor()
        executor.add_node(monitor)
        vlm = EdgeVlmClient(monitor)
        arrivals: list[float] = []  # when each edge answer arrived here (monotonic s)
        monitor.create_subscription(
            Answer, 'edgevlm/answer',
            lambda m: arrivals.append(time.monotonic()) if m.source == Answer.SOURCE_EDGE
            else None, RESULTS)
        vlm.wait_until_active(timeout_s=600)
        end = time.monotonic() + 600
        while monitor.first_answer_s is None and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
        settle = time.monotonic() + opts.settle
        while time.monotonic() < settle:
            executor.spin_once(timeout_sec=0.1)
        setter = monitor.create_client(SetParameters, '/edge_svlm/set_parameters')
        for r in range(opts.rounds):
            kinds = ('no asks',) + POLICIES
            for kind in (kinds if r % 2 == 0 else kinds[::-1]):
                if kind != 'no asks':
                    req = setter.srv_type.Request(parameters=[
                        Parameter('ask.policy', value=kind).to_parameter_msg()])
                    vlm._until(setter.call_async(req), time.monotonic() + 10, 'set ask.policy')
                row = rows.setdefault(kind, {'lat': [], 'skipped': [], 'asks': [], 'ends': [],
                                             'gaps': []})
                arrivals.clear()
                window(executor, monitor, vlm, kind != 'no asks', opts, row)
                row['gaps'].extend(b - a for a, b in zip(arrivals, arrivals[1:]))
                print(f'  round {r + 1} {kind}: {len(row["lat"])} step answers so far',
                      flush=True)
    finally:  # the graph always stops, whatever failed here
        if vlm is not None:
            vlm.destroy()
        if executor is not None:
            executor.shutdown()
        if monitor is not None:
            monitor.destroy_node()
        rclpy.try_shutdown()
        graph.stop(popens)
    print(f'\n{opts.edge_model} {opts.edge_args}, steps at {opts.step_rate:g} Hz, '
          f'{opts.rounds} x {opts.window:g} s per kind; bursts of {opts.burst} asks every '
          f'{opts.every:g} s')
    print(f"{'window':<11} {'answers':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
          f"{'gap p95':>8} {'gap max':>8} {'skipped':>8} {'asks':>5} {'ask p50':>8} "
          f"{'ask p95':>8}  endings")
    for kind, row in rows.items():
        lat, asks = row['lat'], row['asks']
        ends = {e: row['ends'].count(e) for e in sorted(set(row['ends']))}
        print(f'{kind:<11} {len(lat):>8} {pct(lat, .5):>8.0f} {pct(lat, .95):>8.0f} '
              f'{max(lat, default=float("nan")):>8.0f} {pct(row["gaps"], .95) * 1e3:>8.0f} '
              f'{max(row["gaps"], default=float("nan")) * 1e3:>8.0f} {sum(row["skipped"]):>8} '
              f'{len(asks):>5} {pct(asks, .5):>8.0f} {pct(asks, .95):>8.0f}  {ends}')
    return 0


def window(executor, monitor, vlm, asking: bool, opts, row) -> None:
    """One measured window; asks (if asking) in bursts; fills row."""
    skipped0 = monitor.counter('edge_svlm', 'steps_skipped')
    monitor.reset()
    monitor.recording = True
    t_end = time.monotonic() + opts.window
    next_burst = time.monotonic() + 1.0
    pending = []
    while time.monotonic() < t_end or pending:
        now = time.monotonic()
        if asking and now >= next_burst and now < t_end - 1.0:
            for i in range(opts.burst):
                goal = vlm.goal(f'Describe the scene ({i}).')
                pending.append((time.monotonic(), vlm.send_ask(goal), None))
            next_burst = now + opts.every
        executor.spin_once(timeout_sec=0.05)
        still = []
        for t0, sent, result in pending:
            if result is None and sent.done():
                result = sent.result().get_result_async()
            if result is not None and result.done():
                res = result.result().result
                row['asks'].append((time.monotonic() - t0) * 1000.0)
                row['ends'].extend(res.endings or [f'error {res.error_code}'])
            else:
                still.append((t0, sent, result))
        pending = still
    monitor.recording = False
    row['lat'].extend(lat for _, lat, _, _ in monitor.answers)
    row['skipped'].append(monitor.counter('edge_svlm', 'steps_skipped') - skipped0)


if __name__ == '__main__':
    sys.exit(main())
