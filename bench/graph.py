# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The whole graph as launched: throughput, per-stage latency, CPU and memory per node process.

Launches edgevlm.launch.py as `make demo` does (frame_source_node with builtin:pan as the camera,
the embedded cloud LVLM stand-in, an emulated network) on loopback DDS in a domain of its own,
waits for the first answer (model load), then listens for --duration seconds to edgevlm/step,
answer, cloud_response, context_update, focus_mask and /diagnostics. Prints steps/s published,
answers/s, steps the edge skipped, and per-stage latency p50/p95/p99 (n):

  frame -> Step received     frame stamp to the Step arriving here (camera_node decode, resize,
                             Step transport; this listener stands in for the edge's subscription)
  Step -> answer, not model  Answer.latency_ms - model_ms - the above: waiting for the model,
                             pre/post-processing and publishing in the edge node
  edge model                 Answer.model_ms (processor + generate + decode)
  answer latency (edge)      Answer.latency_ms: frame stamp to the answer, as the edge measured it
  answer received            frame stamp to the answer arriving here (adds the Answer transport)
  cloud round trip           CloudResponse.round_trip_ms (bridge: request, network, LVLM, parse)
  cloud -> context update    CloudResponse received -> ContextUpdate received (fusion time)
  cloud -> focus mask        CloudResponse received -> first FocusMask of that cloud step

and CPU % (of one core) and RSS per node process over the window. Prints numbers only; nothing is
asserted. Every clock is this machine's wall clock, so stamps and receive times compare directly.

usage: .venv/bin/python bench/graph.py [--duration 30] [--edge-model tiny|smolvlm-256m-random]
       [--network-profile none|fixed:<ms>|jitter:<mean>,<std>] [--step-rate HZ]
       [--frame-rate HZ] [--domain 95] [--log-dir build/bench_graph]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
import tempfile
import time

# Test suites take domains 1..90 (conftest: blocks of ten chosen per run); benches use 91..99.
DEFAULT_DOMAIN = 95
STAGES = ['frame -> Step received', 'Step -> answer, not model', 'edge model',
          'answer latency (edge)', 'answer received', 'cloud round trip',
          'cloud -> context update', 'cloud -> focus mask']
NODES = ['frame_source', 'camera', 'edge_svlm', 'cloud_bridge', 'context_fusion']


def loopback_env(domain: int, log_dir: Path) -> None:
    """Before rclpy: loopback-only DDS (as tooling/demo.py and the tests), our own domain."""
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    os.environ['HF_HUB_OFFLINE'] = '1'
    os.environ['TRANSFORMERS_OFFLINE'] = '1'
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault('ROS_LOG_DIR', str(log_dir / 'ros_log'))
    from ament_index_python.packages import get_package_share_directory

    os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = os.path.join(
        get_package_share_directory('edgevlm_ros'), 'config', 'fastdds_localhost.xml')


def params_file(overrides: dict[str, dict[str, object]], out_dir: Path) -> str:
    """The installed edgevlm.yaml with some node parameters replaced, as a file for the launch."""
    from ament_index_python.packages import get_package_share_directory
    import yaml

    src = Path(get_package_share_directory('edgevlm_ros')) / 'config' / 'edgevlm.yaml'
    config = yaml.safe_load(src.read_text())
    for node, values in overrides.items():
        config[f'/**/{node}']['ros__parameters'].update(values)
    fd, path = tempfile.mkstemp(prefix='edgevlm_bench_', suffix='.yaml', dir=out_dir)
    with os.fdopen(fd, 'w') as f:
        yaml.safe_dump(config, f)
    return path


def prepare_models(edge_model: str) -> None:
    """Build the offline models in the foreground, so no node spends the window building one."""
    from edgevlm_ros.models.tiny import TINY_KINDS, ensure_tiny_model

    kinds = ['smolvlm-tiny-cloud']
    kinds.append('smolvlm-tiny' if edge_model == 'tiny' else edge_model)
    for kind in kinds:
        if kind in TINY_KINDS:
            t0 = time.monotonic()
            path = ensure_tiny_model(kind, progress=False)
            print(f'model {kind}: {path} ({time.monotonic() - t0:.1f} s)', flush=True)


def launch(launch_args: dict[str, str], log_dir: Path):
    """Start the graph from the installed edgevlm.launch.py; returns (processes, popens)."""
    from edgevlm_ros.tooling import launch_runner

    procs, _, _ = launch_runner.plan(
        launch_runner.load(launch_runner.launch_file_path('edgevlm_ros', 'edgevlm.launch.py')),
        launch_args)
    return procs, launch_runner.start(procs, log_dir)


def stop(popens) -> list[int]:
    from edgevlm_ros.tooling import launch_runner

    return launch_runner.stop(popens)


def stop_errors(procs, codes: list[int]) -> dict[str, int]:
    """The nodes that did not stop cleanly, as the launcher judges it (a hung shutdown is said)."""
    from edgevlm_ros.tooling import launch_runner

    return launch_runner.stop_errors({p.name: c for p, c in zip(procs, codes)},
                                     lambda line: print(line, flush=True))


def load_avg() -> str:
    return 'load average {:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())


class ProcStats:
    """CPU time and RSS of each node process (psutil), sampled by the caller."""

    def __init__(self, names: list[str], pids: list[int]) -> None:
        import psutil

        self.procs = {n: psutil.Process(p) for n, p in zip(names, pids)}
        self.procs['(this listener)'] = psutil.Process(os.getpid())
        self.rss_mb: dict[str, list[float]] = {n: [] for n in self.procs}
        self._cpu0: dict[str, float] = {}
        self._t0 = 0.0
        self.cpu_pct: dict[str, float] = {}

    @staticmethod
    def _cpu_s(p) -> float:
        t = p.cpu_times()  # not children: reaped node processes would count for the listener
        return t.user + t.system

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = {n: self._cpu_s(p) for n, p in self.procs.items()}

    def sample(self) -> dict[str, float]:
        rss = {}
        for n, p in self.procs.items():
            try:
                rss[n] = p.memory_info().rss / 2**20
            except Exception:  # noqa: BLE001 - a process that died: shown as nan
                rss[n] = float('nan')
            self.rss_mb[n].append(rss[n])
        return rss

    def finish(self) -> None:
        wall = time.monotonic() - self._t0
        for n, p in self.procs.items():
            try:
                self.cpu_pct[n] = 100.0 * (self._cpu_s(p) - self._cpu0[n]) / wall
            except Exception:  # noqa: BLE001
                self.cpu_pct[n] = float('nan')


def make_monitor(namespace: str = ''):
    """A node that timestamps everything the graph says on arrival (bounded: cleared per run)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from edgevlm_msgs.msg import Answer, CloudResponse, ContextUpdate, FocusMask, Step
    from edgevlm_ros.core.stats import LifeCounters
    from edgevlm_ros.ros.conversions import stamp_to_s
    from edgevlm_ros.ros.qos import LATEST_FRAME, RESULTS
    from rclpy.node import Node

    class Monitor(Node):
        def __init__(self) -> None:
            super().__init__('edgevlm_bench_monitor', namespace=namespace or '/')
            self.recording = False
            self.reset()
            self.first_answer_s: float | None = None
            # Every step, recording or not (the soak counts with them). Step ids start at the
            # camera's start time in ms: the count is newest - first + 1.
            self.first_step_id: int | None = None
            self.newest_step_id = -1
            self.diagnostics: dict[str, dict[str, str]] = {}
            self.lives = LifeCounters()
            self.create_subscription(Step, 'edgevlm/step', self._on_step, LATEST_FRAME)
            self.create_subscription(Answer, 'edgevlm/answer', self._on_answer, RESULTS)
            self.create_subscription(CloudResponse, 'edgevlm/cloud_response', self._on_cloud,
                                     RESULTS)
            self.create_subscription(ContextUpdate, 'edgevlm/context_update', self._on_update,
                                     RESULTS)
            self.create_subscription(FocusMask, 'edgevlm/focus_mask', self._on_mask, RESULTS)
            self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 50)

        def reset(self) -> None:
            self.step_ms: dict[int, float] = {}     # step id -> frame stamp to arrival here
            self.answers: list[tuple[int, float, float, float]] = []  # id, latency, model, rx
            self.cloud_answers = 0
            self.cloud_rx: dict[int, float] = {}    # cloud step id -> arrival (status ok)
            self.round_trip_ms: list[float] = []
            self.cloud_failed = self.cloud_not_sent = 0
            self.update_rx: dict[int, float] = {}
            self.mask_rx: dict[int, float] = {}     # source step id -> first mask's arrival
            self.masks = 0

        @property
        def steps_seen(self) -> int:
            if self.first_step_id is None:
                return 0
            return self.newest_step_id - self.first_step_id + 1

        def _on_step(self, m) -> None:
            if self.first_step_id is None:
                self.first_step_id = m.step_id
            self.newest_step_id = max(self.newest_step_id, m.step_id)
            if self.recording:
                self.step_ms[m.step_id] = (time.time() - stamp_to_s(m.header.stamp)) * 1000.0

        def _on_answer(self, m) -> None:
            now = time.time()
            if self.first_answer_s is None:
                self.first_answer_s = time.monotonic()
            if not self.recording:
                return
            if m.source != Answer.SOURCE_EDGE:
                self.cloud_answers += 1
                return
            self.answers.append((m.step_id, m.latency_ms, m.model_ms,
                                 (now - stamp_to_s(m.header.stamp)) * 1000.0))

        def _on_cloud(self, m) -> None:
            if not self.recording:
                return
            if m.status == CloudResponse.STATUS_DROPPED:
                self.cloud_not_sent += 1
            elif m.status == CloudResponse.STATUS_OK:
                self.cloud_rx[m.step_id] = time.time()
                self.round_trip_ms.append(m.round_trip_ms)
            else:
                self.cloud_failed += 1

        def _on_update(self, m) -> None:
            if self.recording:
                self.update_rx.setdefault(m.step_id, time.time())

        def _on_mask(self, m) -> None:
            if self.recording:
                self.masks += 1
                self.mask_rx.setdefault(m.source_step_id, time.time())

        def _on_diag(self, m) -> None:
            for s in m.status:
                self.diagnostics[s.name] = values = {kv.key: kv.value for kv in s.values}
                self.lives.update(s.name, values)

        def counter(self, node: str, key: str) -> int:
            """A node's counter over all its lives (the chaos bench restarts nodes)."""
            return self.lives.total(node, key)

        def stages(self) -> dict[str, list[float]]:
            out: dict[str, list[float]] = {s: [] for s in STAGES}
            out['frame -> Step received'] = list(self.step_ms.values())
            for sid, latency, model, rx in self.answers:
                out['edge model'].append(model)
                out['answer latency (edge)'].append(latency)
                out['answer received'].append(rx)
                if sid in self.step_ms:
                    out['Step -> answer, not model'].append(latency - model - self.step_ms[sid])
            out['cloud round trip'] = list(self.round_trip_ms)
            for sid, rx in self.cloud_rx.items():
                if sid in self.update_rx:
                    out['cloud -> context update'].append((self.update_rx[sid] - rx) * 1000.0)
                if sid in self.mask_rx:
                    out['cloud -> focus mask'].append((self.mask_rx[sid] - rx) * 1000.0)
            return out

    return Monitor()


def spin_for(executor, seconds: float, popens, procs, every_s: float = 0.0,
             tick=None) -> str | None:
    """Spin; call tick() every every_s, stop early when it returns True. Returns what died."""
    end = time.monotonic() + seconds
    next_tick = time.monotonic() + every_s
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
        if tick is not None and time.monotonic() >= next_tick:
            next_tick += every_s
            if tick():
                return None
        for p, q in zip(procs, popens):
            if q.poll() is not None:
                return f'{p.name} (exit code {q.returncode})'
    return None


def pct_row(name: str, values: list[float]) -> str:
    from edgevlm_ros.core.stats import percentile

    if not values:
        return f'  {name:<27} {"-":>8} {"-":>8} {"-":>8}   (n=0)'
    p = [percentile(values, q) for q in (50, 95, 99)]
    return f'  {name:<27} {p[0]:8.1f} {p[1]:8.1f} {p[2]:8.1f}   (n={len(values)})'


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('--duration', type=float, default=30.0, help='measured seconds')
    ap.add_argument('--edge-model', default='tiny',
                    help='tiny, smolvlm-256m-random or a checkpoint directory')
    ap.add_argument('--network-profile', default='none',
                    help='none, fixed:<ms> or jitter:<mean_ms>,<std_ms> '
                         '(the demo uses jitter:1500,400)')
    ap.add_argument('--strategy', default='edgevlm')
    ap.add_argument('--step-rate', type=float, default=None,
                    help='camera step_rate_hz (default: edgevlm.yaml)')
    ap.add_argument('--frame-rate', type=float, default=None,
                    help='frame_source rate_hz (default: edgevlm.yaml)')
    ap.add_argument('--domain', type=int, default=DEFAULT_DOMAIN,
                    help='ROS_DOMAIN_ID (tests use 1..90)')
    ap.add_argument('--startup-timeout', type=float, default=300.0,
                    help='seconds to wait for the first answer (model load)')
    ap.add_argument('--log-dir', type=Path, default=Path('build/bench_graph'),
                    help='node logs')
    opts = ap.parse_args()

    loopback_env(opts.domain, opts.log_dir)
    from edgevlm_ros.backends.cpu import read_cpu

    print(read_cpu().header(), flush=True)
    prepare_models(opts.edge_model)
    overrides: dict[str, dict[str, object]] = {}
    if opts.step_rate is not None:
        overrides['camera'] = {'step_rate_hz': opts.step_rate}
    if opts.frame_rate is not None:
        overrides['frame_source'] = {'rate_hz': opts.frame_rate}
    largs = {'use_frame_source': 'true', 'source': 'builtin:pan', 'cloud_url': 'embedded',
             'edge_model': opts.edge_model, 'network_profile': opts.network_profile,
             'strategy': opts.strategy,
             'params_file': params_file(overrides, opts.log_dir)}
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init(args=[])  # argv holds launch arguments (k:=v), not ROS arguments
    monitor = make_monitor()
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    procs, popens = launch(largs, opts.log_dir)
    died = None
    try:
        t0 = time.monotonic()
        died = spin_for(executor, opts.startup_timeout, popens, procs, 0.1,
                        lambda: monitor.first_answer_s is not None)
        if died is None and monitor.first_answer_s is None:
            died = f'no answer within {opts.startup_timeout:.0f} s'
        if died is None:
            print(f'first answer {monitor.first_answer_s - t0:.1f} s after launch; measuring '
                  f'{opts.duration:.0f} s ({load_avg()})', flush=True)
            stats = ProcStats([p.name for p in procs], [q.pid for q in popens])
            # Counters from a fresh diagnostics round, so the deltas cover the window only.
            spin_for(executor, 1.2, popens, procs)
            before = {(n, k): monitor.counter(n, k) for n, k in COUNTERS}
            monitor.reset()
            monitor.recording = True
            stats.start()
            t_start = time.monotonic()
            died = spin_for(executor, opts.duration, popens, procs, 1.0,
                            lambda: not stats.sample())
            wall = time.monotonic() - t_start
            stats.finish()
            monitor.recording = False
            spin_for(executor, 1.2, popens, procs)  # the diagnostics round after the window
            delta = {key: monitor.counter(*key) - v for key, v in before.items()}
            report(opts, monitor, stats, delta, wall)
    finally:
        codes = stop(popens)
        executor.shutdown()
        monitor.destroy_node()
        rclpy.try_shutdown()
    if died:
        print(f'graph failed: {died}; logs in {opts.log_dir}/', file=sys.stderr)
    bad = stop_errors(procs, codes)
    if bad:
        print(f'nodes exited with errors: {bad}', file=sys.stderr)
    return 0


COUNTERS = [('camera', 'steps_published'), ('camera', 'frames_received'),
            ('edge_svlm', 'steps_received'),
            ('edge_svlm', 'steps_skipped'), ('edge_svlm', 'answers_published'),
            ('edge_svlm', 'context_replacements'), ('edge_svlm', 'answers_with_focus'),
            ('context_fusion', 'focus_masks_published')]


def report(opts, monitor, stats: ProcStats, delta: dict, wall: float) -> None:
    import statistics

    edge_answers = len(monitor.answers)
    print(f'\n== graph: edge {opts.edge_model}, embedded cloud, network {opts.network_profile}, '
          f'strategy {opts.strategy}, {wall:.1f} s window, domain {opts.domain} ==')
    print(f'  {load_avg()} (at the end)')
    steps = delta[('camera', 'steps_published')]
    rows = [
        ('steps published', f'{steps} ({steps / wall:.2f}/s); camera frames in '
                            f"{delta[('camera', 'frames_received')]}"),
        ('steps received by the edge', delta[('edge_svlm', 'steps_received')]),
        ('steps skipped by the edge', f"{delta[('edge_svlm', 'steps_skipped')]} "
                                      '(model busy, newer step won)'),
        ('answers', f'{edge_answers} edge ({edge_answers / wall:.2f}/s), '
                    f'{monitor.cloud_answers} cloud'),
        ('cloud ok / failed / not sent', f'{len(monitor.round_trip_ms)} / '
                                         f'{monitor.cloud_failed} / {monitor.cloud_not_sent}'),
        ('context replacements', delta[('edge_svlm', 'context_replacements')]),
        ('answers with focus', delta[('edge_svlm', 'answers_with_focus')]),
        ('focus masks published', delta[('context_fusion', 'focus_masks_published')]),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f'  {k:<{width}}  {v}')
    print(f'\n  {"stage latency, ms":<27} {"p50":>8} {"p95":>8} {"p99":>8}')
    for name, values in monitor.stages().items():
        print(pct_row(name, values))
    print(f'\n  {"process":<17} {"CPU % (1 core)":>14} {"RSS MB mean":>12} {"RSS MB max":>11}')
    for n in stats.procs:
        rss = [r for r in stats.rss_mb[n] if r == r] or [float('nan')]
        print(f'  {n:<17} {stats.cpu_pct[n]:14.1f} {statistics.fmean(rss):12.1f} '
              f'{max(rss):11.1f}')


if __name__ == '__main__':
    sys.exit(main())
