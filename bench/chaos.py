# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
What each fault costs the running graph: time to the next answer, answers lost, restarts.

Runs `edgevlm_demo` (the whole graph on the synthetic world, the simulated LVLM behind a
jittery network) with the edge model asked for, waits until answers flow, then SIGKILLs each
node in turn (frame source, camera, edge, bridge, fusion) and SIGSTOPs the edge once (only the
heartbeat watchdog notices that). For each fault it prints:

* next answer: seconds from the fault to the first Answer published after it;
* back: seconds from the fault to the first Answer about a Step stamped after the fault (the
  graph answers new frames again);
* new step: seconds from the fault to the first Step stamped after it that this bench received
  (what the camera side costs; "back" minus this is what the edge side costs);
* lost: Steps the camera should have published at its step rate between the fault and "back"
  that were not answered (unpublished ones count: a dead camera loses its steps too);
* the restart line of the runner and, for the edge, how long its model load took (its log).

Prints numbers only; nothing is asserted. Models: `micro` (the shipped micro SVLM) and, e.g.,
`--edge-model smolvlm-256m-random --edge-args edge_backend:=openvino edge_quantize:=int8`.

usage: .venv/bin/python bench/chaos.py [--edge-model micro] [--edge-args NAME:=VALUE ...]
       [--settle 10] [--watchdog 5] [--domain 94] [--log-dir build/bench_chaos]
       [--faults camera,edge_svlm_stop] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import queue
import re
import signal
import subprocess
import sys
import threading
import time

from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.tooling import launch_runner

FAULTS = (('frame_source', 'frame_source_node', signal.SIGKILL),
          ('camera', 'camera_node', signal.SIGKILL),
          ('edge_svlm', 'edge_svlm_node', signal.SIGKILL),
          ('cloud_bridge', 'cloud_bridge_node', signal.SIGKILL),
          ('context_fusion', 'context_fusion_node', signal.SIGKILL),
          ('edge_svlm', 'edge_svlm_node', signal.SIGSTOP))
STEP_RATE_HZ = 2.0  # the camera's default step_rate_hz


class Demo:
    """The demo in a subprocess; its output kept line by line."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, '-m', 'edgevlm_ros.tooling.demo', *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.restarted_at = float('nan')  # wall time of the newest "restarted" line
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._q.put(line.rstrip('\n'))
            if line.startswith('[launch] ') and ' restarted [pid ' in line:
                self.restarted_at = time.time()

    def drain(self) -> None:
        while True:
            try:
                self.lines.append(self._q.get_nowait())
            except queue.Empty:
                return

    def child(self, executable: str) -> int:
        return launch_runner.child_pid(self.proc.pid, executable)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        time.sleep(0.5)
        self.drain()
        return '\n'.join(self.lines)


def _new_life(log: Path) -> tuple[float, float]:
    """Wall times of the newest life's first and second log lines (node up, its first work)."""
    text = log.read_text(errors='replace').rsplit('---- [launch] respawn', 1)[-1]
    times = [float(t) for t in re.findall(r'^\[\w+\] \[([0-9.]+)\]', text, re.M)]
    up, work = (times + [float('nan')] * 2)[:2]
    return up, work


def _stamp(m) -> float:
    return m.header.stamp.sec + m.header.stamp.nanosec * 1e-9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--edge-model', default='micro')
    ap.add_argument('--edge-args', nargs='*', default=[], help='more launch arguments')
    ap.add_argument('--settle', type=float, default=10.0, help='s of normal running per fault')
    ap.add_argument('--watchdog', type=float, default=5.0)
    ap.add_argument('--domain', type=int, default=94)
    ap.add_argument('--log-dir', type=Path, default=Path('build/bench_chaos'))
    ap.add_argument('--faults', default='', help='comma-separated node names to fault (default: '
                    'all, in order); SIGSTOP is the edge_svlm_stop entry')
    ap.add_argument('--repeat', type=int, default=1, help='each fault this many times in a row')
    opts = ap.parse_args()
    names = [n for n in opts.faults.split(',') if n]
    faults = [f for f in FAULTS for _ in range(opts.repeat)
              if not names or (f[0] + ('_stop' if f[2] == signal.SIGSTOP else '')) in names]
    os.environ['ROS_DOMAIN_ID'] = str(opts.domain)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

    from edgevlm_msgs.msg import Answer, Step
    from edgevlm_ros.ros.qos import EVERY_FRAME, RESULTS
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    print(f'== chaos: edge {opts.edge_model} {" ".join(opts.edge_args)}; load '
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(read_cpu().header(), flush=True)
    rclpy.init(args=[])  # argv holds launch arguments (k:=v), not ROS arguments
    node = rclpy.create_node('bench_chaos')
    steps, answers = [], []
    node.create_subscription(Step, 'edgevlm/step', lambda m: steps.append((time.time(), m)),
                             EVERY_FRAME)
    node.create_subscription(Answer, 'edgevlm/answer',
                             lambda m: answers.append((time.time(), m)), RESULTS)
    ex = SingleThreadedExecutor()
    ex.add_node(node)

    def spin(seconds: float, until=None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
            if until is not None and until():
                return True
        return until is None

    demo = Demo(['--log-dir', str(opts.log_dir), f'--watchdog={opts.watchdog}',
                 f'edge_model:={opts.edge_model}', *opts.edge_args])
    rows = []
    try:
        if not spin(900, lambda: len(answers) >= 3):
            print('no answers within 15 min', file=sys.stderr)
            return 1
        spin(opts.settle)
        for name, exe, sig in faults:
            pid = demo.child(exe)
            t0 = time.time()
            n_ans = len(answers)
            os.kill(pid, sig)
            spin(900, lambda t0=t0, n=n_ans: any(_stamp(m) > t0 for _, m in answers[n:]))
            back = next((t for t, m in answers[n_ans:] if _stamp(m) > t0), float('nan'))
            first = answers[n_ans][0] if len(answers) > n_ans else float('nan')
            new_step = next((t for t, m in steps if _stamp(m) > t0), float('nan'))
            answered = {(m.step_id, _stamp(m)) for _, m in answers}
            published = [(m.step_id, _stamp(m)) for _, m in steps if t0 <= _stamp(m) < back]
            expected = max(len(published), int((back - t0) * STEP_RATE_HZ))
            lost = expected - sum(k in answered for k in published)
            spin(opts.settle)  # normal running before the next fault
            demo.drain()
            load = ''
            if exe == 'edge_svlm_node':
                logs = (opts.log_dir / 'edge_svlm.log').read_text(errors='replace')
                times = re.findall(r'loaded edge model .* in ([0-9.]+) s', logs)
                load = f'model load {times[-1]} s' if times else ''
            up, work = _new_life(opts.log_dir / f'{name}.log')
            parts = (f'respawned {demo.restarted_at - t0:.2f} s, node up {up - t0:.2f} s, '
                     f'its next log line {work - t0:.2f} s')
            print(f'    {parts}', flush=True)
            kind = 'SIGSTOP' if sig == signal.SIGSTOP else 'SIGKILL'
            rows.append((f'{kind} {name}', first - t0, new_step - t0, back - t0, lost, load))
            print(f'{kind} {name:<15} next answer {first - t0:6.2f} s   new step '
                  f'{new_step - t0:6.2f} s   back {back - t0:6.2f} s   lost {lost:3d} steps   '
                  f'{load}', flush=True)
    finally:
        out = demo.stop()
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    restarts = next((x for x in out.splitlines() if x.startswith('restarts ')), 'restarts ?')
    print(restarts)
    print('\n| fault | next answer s | new step s | back s | steps lost | note |\n'
          '|---|---:|---:|---:|---:|---|')
    for fault, nxt, new_step, back, lost, note in rows:
        print(f'| {fault} | {nxt:.2f} | {new_step:.2f} | {back:.2f} | {lost} | {note} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
