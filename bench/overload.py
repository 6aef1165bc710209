# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Overload: the whole graph behind a 640x480 camera at 30 Hz (and faster), raw and compressed.

Launches edgevlm.launch.py as `make demo` does (frame_source_node playing the synthetic world as
the camera, camera_node, edge_svlm_node, cloud_bridge_node with the simulated LVLM behind an
emulated jitter:500,250 network, context_fusion_node; strategy edgevlm_arbitrated) on loopback DDS
in a domain of its own, once per cell. A cell is (edge model, camera rate, transport): the world
is played at --world with fps=<rate> and frame_source rate_hz=<rate>, so world time is wall time,
640x480 rgb8 Images (raw) or JPEG quality 90 CompressedImages (compressed); camera_node samples
step_rate_hz (2 Hz, edgevlm.yaml) out of it. After the first answer (model load) it waits
--settle seconds, then measures --duration seconds.

What is measured, per cell (counters are /diagnostics values, differences between the first
status each node published at or after the window's start and the first at or after its end,
over the time between those two statuses' stamps):

  source rate           frame_source's frames_published / its status interval: what the frame
                        source put on the camera topic
  carried to camera     camera_node's frames_received / its status interval: what the camera topic
                        actually delivered to camera_node (best effort, depth 1: a frame that
                        arrives while the previous one is still waiting replaces it, in DDS,
                        uncounted by any node: "lost in transport" = (source rate - carried
                        rate) x the camera's status interval, as the two nodes' statuses are
                        not taken at the same instant)
  tap interval          (unless --no-tap) the camera topic as a second subscriber sees it: a raw
                        (not deserialised) subscription whose header stamps give the intervals
                        between frames, p50/p95/max
  dropped before decode camera_node's frames_between_steps: frames its sampler (core/sampling.py)
                        refused in _on_frame before decode() is called; frames_received =
                        frames_between_steps + steps_published + bad_image
  step rate             camera_node's steps_published / its status interval
  answers               edgevlm/answer messages (any source: edge_svlm publishes one per step it
                        answers) whose step id was published in the window; answer rate = those
                        / the camera's status interval

Steps lost, the measure of the rate search (Isaac ROS ros2_benchmark: the highest input rate at
which at most 5 % of the messages are dropped), with the camera's status interval T and
step_rate_hz r:

  expected   = r * T                      steps camera_node should have published at its rate
  missed     = max(0, expected - published)          steps it did not publish
  unanswered = published - answered                 steps published, never answered (no Answer
               within --grace s after the window): not received by the edge (published - the
               edge's steps_received), skipped by the edge (steps_skipped: the model was busy
               and a newer step replaced the waiting one), or neither (failed, in flight)
  lost       = missed + unanswered;   lost % = lost / expected

A rate is kept when lost % <= 5. "lost % w/o skips" leaves out the edge's skips by design
(a model slower than the step period answers the newest step only); it is printed too, since
with the real-size model at ~1.1 s per step and 2 steps/s about half the steps are skipped at
any camera rate.

CPU % is of one core (user + system time of the node process over the window / the window's wall
time; this machine has os.cpu_count() cores), share = of the graph's processes together. RSS is
sampled every --rss-every s; "flat" = max - min of the samples after the first --warmup s of the
window, which must be <= 20 MB; drift = last - first sample after the warm-up; late-half range =
max - min over the window's second half (a slow warm-up settles there, a leak does not).

The rate search runs --search-model on --search-transport at each of --search-rates for
--search-duration s each and prints the highest rate that keeps lost % <= 5. The claims of
"Overload: a 30 Hz camera" (docs/robustness.md) are checked at the end: the step rate kept
(within 5 % of step_rate_hz), early drops counted (frames_between_steps equals frames_received -
steps_published - bad_image, and no frame is decoded that is not a step), the answer rate at
30 Hz within 10 % of the same model's at 10 Hz (same transport when that cell ran), RSS flat
within 20 MB after warm-up, and each node's CPU share.

usage: .venv/bin/python bench/overload.py [--cells micro:10:raw,micro:30:raw,...]
       [--duration 120] [--search-rates 15,30,45,60] [--search-duration 30]
       [--real-cells smolvlm-256m-random:10:compressed,...] [--no-real] [--domain 93]
       [--log-dir build/bench_overload]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
import math
import os
from pathlib import Path
import platform
import struct
import sys
import time

import graph  # bench/graph.py, next to this file: environment, params file, launch, stop

DEFAULT_DOMAIN = 93  # tests use 1..90 (conftest); graph.py 95, soak.py 96, transport.py 97
DEFAULT_WORLD = 'synth:seed=0,pace=0.3,question_every=10'  # the demo's world (its fps is set)
MICRO_CELLS = 'micro:10:raw,micro:30:raw,micro:10:compressed,micro:30:compressed'
REAL_CELLS = 'smolvlm-256m-random:10:compressed,smolvlm-256m-random:30:compressed'
NODES = ['frame_source', 'camera', 'edge_svlm', 'cloud_bridge', 'context_fusion']
LISTENER = '(this listener)'
LOST_LIMIT = 0.05      # ros2_benchmark's drop threshold
STEP_RATE_TOL = 0.05   # "keeps its step rate": within 5 % of step_rate_hz
ANSWER_RATE_TOL = 0.10
RSS_FLAT_MB = 20.0


# ---------------------------------------------------------------- machine
def header_lines(opts) -> list[str]:
    from edgevlm_ros.backends.cpu import read_cpu

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    env_threads = ', '.join(f'{k}={os.environ[k]}' for k in
                            ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')
                            if k in os.environ) or 'OMP/MKL/OPENBLAS_NUM_THREADS unset'
    num_threads = installed_param('edge_svlm', 'num_threads')
    return [
        read_cpu().header(num_threads or None),  # 0: torch's default
        f'threads: {os.cpu_count()} logical CPUs, {affinity} usable; {env_threads}; edge_svlm '
        f'num_threads {num_threads} ({"torch default" if num_threads == 0 else "set"}); '
        f'OpenVINO/ONNX Runtime use their defaults',
        f'{graph.load_avg()} at the start; {platform.node()}, Python {platform.python_version()},'
        f' {time.strftime("%Y-%m-%d %H:%M")}',
        f'world {opts.world},fps=<rate> 640x480; step_rate_hz {opts.step_rate:g}; network '
        f'{opts.network_profile}; strategy {opts.strategy}; domain {opts.domain}',
    ]


def installed_param(node: str, name: str):
    from ament_index_python.packages import get_package_share_directory
    import yaml

    src = Path(get_package_share_directory('edgevlm_ros')) / 'config' / 'edgevlm.yaml'
    return yaml.safe_load(src.read_text())[f'/**/{node}']['ros__parameters'].get(name)


# ---------------------------------------------------------------- cells
@dataclass
class Cell:
    model: str
    rate: float
    transport: str
    duration: float
    kind: str = 'cell'  # 'cell' or 'search'

    @property
    def label(self) -> str:
        short = 'micro' if self.model == 'micro' else (
            '256m' if self.model == 'smolvlm-256m-random' else self.model[-12:])
        return f'{short} {self.rate:g}Hz {"raw" if self.transport == "raw" else "jpeg"}'


@dataclass
class Result:
    cell: Cell
    error: str = ''
    load: str = ''
    startup_s: float = math.nan
    wall_s: float = math.nan
    delta: dict = field(default_factory=dict)    # (node, key) -> counter difference
    interval: dict = field(default_factory=dict)  # node -> seconds between its two statuses
    ids: tuple[int, int] = (0, 0)                 # step ids published in the window [a, b)
    answered: int = 0
    tap_ms: list[float] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    cpu_pct: dict = field(default_factory=dict)
    threads: dict = field(default_factory=dict)
    rss: dict = field(default_factory=dict)       # process -> [(t, MB)]
    machine_busy_pct: float = math.nan

    # derived
    def rate_of(self, node: str, key: str) -> float:
        t = self.interval.get(node, math.nan)
        return self.delta.get((node, key), 0) / t if t and t == t else math.nan

    @property
    def expected(self) -> float:
        return self.cell_step_rate * self.interval.get('camera', math.nan)

    cell_step_rate: float = 2.0

    @property
    def published(self) -> int:
        return self.delta.get(('camera', 'steps_published'), 0)

    @property
    def lost(self) -> float:
        return max(0.0, self.expected - self.published) + (self.published - self.answered)

    @property
    def lost_frac(self) -> float:
        return self.lost / self.expected if self.expected else math.nan

    @property
    def skipped(self) -> int:
        return self.delta.get(('edge_svlm', 'steps_skipped'), 0)

    @property
    def lost_wo_skips_frac(self) -> float:
        return max(0.0, self.lost - self.skipped) / self.expected if self.expected else math.nan

    @property
    def answer_rate(self) -> float:
        t = self.interval.get('camera', math.nan)
        return self.answered / t if t else math.nan

    def rss_after_warmup(self, proc: str, warmup: float) -> list[float]:
        return [mb for t, mb in self.rss.get(proc, []) if t >= warmup and mb == mb]


def parse_cells(text: str, duration: float) -> list[Cell]:
    cells = []
    for item in filter(None, (x.strip() for x in text.split(','))):
        model, rate, transport = item.rsplit(':', 2)
        if transport not in ('raw', 'compressed'):
            raise SystemExit(f'cell {item!r}: transport must be raw or compressed')
        cells.append(Cell(model, float(rate), transport, duration))
    return cells


# ---------------------------------------------------------------- the listener
def header_stamp_s(cdr: bytes) -> float:
    """The std_msgs/Header stamp of a serialised message: after 4 bytes of CDR encapsulation."""
    sec, nsec = struct.unpack_from('<iI' if cdr[1] == 1 else '>iI', cdr, 4)
    return sec + nsec * 1e-9


def make_listener(transport: str, tap: bool):
    from diagnostic_msgs.msg import DiagnosticArray
    from edgevlm_msgs.msg import Answer, Step
    from edgevlm_ros.ros.conversions import stamp_to_s
    from edgevlm_ros.ros.qos import LATEST_FRAME, RESULTS
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    class Listener(Node):
        def __init__(self) -> None:
            super().__init__('edgevlm_overload_listener')
            self.first_answer_s: float | None = None
            self.recording = False
            self.tap_stamps: list[float] = []
            self.step_ms: list[float] = []
            self.answers: dict[int, tuple[float, float]] = {}  # step id -> latency, model ms
            self.status: dict[str, list[tuple[float, dict[str, str]]]] = {n: [] for n in NODES}
            self.create_subscription(Step, 'edgevlm/step', self._on_step, LATEST_FRAME)
            self.create_subscription(Answer, 'edgevlm/answer', self._on_answer, RESULTS)
            self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 50)
            if tap:
                kind, topic = ((Image, 'camera/image_raw') if transport == 'raw' else
                               (CompressedImage, 'camera/image_raw/compressed'))
                # raw=True: the serialised bytes, no Python deserialisation of 900 KB frames.
                self.create_subscription(kind, topic, self._on_frame, qos_profile_sensor_data,
                                         raw=True)

        def _on_frame(self, cdr: bytes) -> None:
            if self.recording:
                self.tap_stamps.append(header_stamp_s(cdr))

        def _on_step(self, m) -> None:
            if self.recording:
                self.step_ms.append((time.time() - stamp_to_s(m.header.stamp)) * 1000.0)

        def _on_answer(self, m) -> None:
            if self.first_answer_s is None:
                self.first_answer_s = time.monotonic()
            self.answers[m.step_id] = (m.latency_ms, m.model_ms)

        def _on_diag(self, m) -> None:
            stamp = stamp_to_s(m.header.stamp)
            for s in m.status:
                node = s.name.rsplit('/', 1)[-1]
                if node in self.status:
                    hist = self.status[node]
                    hist.append((stamp, {kv.key: kv.value for kv in s.values}))
                    del hist[:-400]

        def first_status_after(self, node: str, t: float) -> tuple[float, dict] | None:
            return next(((s, v) for s, v in self.status[node] if s >= t), None)

    return Listener()


# ---------------------------------------------------------------- one cell
def _num(values: dict, key: str) -> int:
    try:
        return int(float(values.get(key, 0)))
    except ValueError:
        return 0


COUNTERS = {'frame_source': ['frames_published'],
            'camera': ['frames_received', 'frames_between_steps', 'steps_published', 'bad_image',
                       'unstamped_frames'],
            'edge_svlm': ['steps_received', 'steps_skipped', 'answers_published', 'answer_errors',
                          'bad_image']}


def world_at(world: str, rate: float) -> str:
    kept = [kv for kv in world.split(':', 1)[1].split(',') if kv and not kv.startswith('fps=')]
    return 'synth:' + ','.join(kept + [f'fps={rate:g}'])


def run_cell(cell: Cell, opts, executor_factory, index: str) -> Result:
    import psutil
    import rclpy  # noqa: F401 - initialised by main

    res = Result(cell, cell_step_rate=opts.step_rate)
    world = world_at(opts.world, cell.rate)
    real = cell.model != 'micro' and not cell.model.startswith(('tiny', 'scripted:'))
    largs = {'use_frame_source': 'true', 'source': world, 'cloud_url': 'embedded',
             'embedded_model': f'simulated:{world},error=0.1',
             'network_profile': opts.network_profile, 'strategy': opts.strategy,
             'edge_model': cell.model, 'input_transport': cell.transport,
             'edge_backend': opts.real_backend if real else 'transformers',
             'edge_quantize': opts.real_quantize if real else 'none',
             'params_file': graph.params_file(
                 {'frame_source': {'rate_hz': cell.rate, 'width': 640, 'height': 480},
                  'camera': {'step_rate_hz': opts.step_rate}}, opts.log_dir)}
    log_dir = opts.log_dir / cell.label.replace(' ', '_')
    print(f'[{index}] {cell.label} ({cell.model}, {largs["edge_backend"]}'
          f'{"/" + largs["edge_quantize"] if real else ""}, {cell.transport}, '
          f'{cell.duration:g} s): launching; {graph.load_avg()}', flush=True)
    listener = make_listener(cell.transport, not opts.no_tap)
    executor = executor_factory()
    executor.add_node(listener)
    procs, popens = graph.launch(largs, log_dir)
    timeout = opts.startup_timeout if real else min(opts.startup_timeout, 300.0)
    try:
        t0 = time.monotonic()
        died = graph.spin_for(executor, timeout, popens, procs, 0.1,
                              lambda: listener.first_answer_s is not None)
        if died is None and listener.first_answer_s is None:
            died = f'no answer within {timeout:.0f} s'
        if died:
            res.error = died
            return res
        res.startup_s = listener.first_answer_s - t0
        died = graph.spin_for(executor, opts.settle, popens, procs)
        if died:
            res.error = died
            return res
        stats = graph.ProcStats([p.name for p in procs], [q.pid for q in popens])
        psutil.cpu_percent(None)
        listener.recording = True
        stats.start()
        t_start_wall, t_start = time.time(), time.monotonic()

        def sample() -> bool:
            rss = stats.sample()
            t = time.monotonic() - t_start
            for n, mb in rss.items():
                res.rss.setdefault(n, []).append((t, mb))
            return False

        sample()
        died = graph.spin_for(executor, cell.duration, popens, procs, opts.rss_every, sample)
        res.wall_s = time.monotonic() - t_start
        t_end_wall = time.time()
        stats.finish()
        res.machine_busy_pct = psutil.cpu_percent(None)
        for n, p in stats.procs.items():
            try:
                res.threads[n] = p.num_threads()
            except Exception:  # noqa: BLE001 - a process that died
                res.threads[n] = -1
        listener.recording = False
        res.cpu_pct = dict(stats.cpu_pct)
        res.load = graph.load_avg()
        # Statuses at or after the end, then answers of the window's steps still on their way.
        graph.spin_for(executor, 1.5, popens, procs)
        graph.spin_for(executor, opts.grace, popens, procs)
        if died:
            res.error = died
        for node, keys in COUNTERS.items():
            a = listener.first_status_after(node, t_start_wall)
            b = listener.first_status_after(node, t_end_wall)
            if a is None or b is None:
                continue
            res.interval[node] = b[0] - a[0]
            for k in keys:
                res.delta[(node, k)] = _num(b[1], k) - _num(a[1], k)
            if node == 'camera':
                res.ids = (_num(a[1], 'next_step_id'), _num(b[1], 'next_step_id'))
        lo, hi = res.ids
        window = [v for sid, v in listener.answers.items() if lo <= sid < hi]
        res.answered = len(window)
        res.latency_ms = [v[0] for v in window]
        res.model_ms = [v[1] for v in window if v[1] > 0]
        res.step_ms = list(listener.step_ms)
        ts = sorted(listener.tap_stamps)
        res.tap_ms = [(b - a) * 1000.0 for a, b in zip(ts, ts[1:])]
        if 'camera' not in res.interval:
            res.error = res.error or 'no camera status on /diagnostics'
        return res
    finally:
        codes = graph.stop(popens)
        executor.shutdown()
        listener.destroy_node()
        bad = graph.stop_errors(procs, codes)
        if bad:
            print(f'    nodes exited with errors on stop: {bad}', flush=True)
        line = (f'    {cell.label}: ' + (f'FAILED: {res.error}; ' if res.error else '') +
                summary(res) + f'; logs {log_dir}/')
        print(line, flush=True)


def summary(r: Result) -> str:
    if 'camera' not in r.interval:
        return 'no numbers'
    source = r.rate_of('frame_source', 'frames_published')
    return (f'startup {r.startup_s:.0f} s; source {source:.1f}'
            f" Hz, carried {r.rate_of('camera', 'frames_received'):.1f} Hz, steps "
            f"{r.rate_of('camera', 'steps_published'):.2f}/s, answers {r.answer_rate:.2f}/s, "
            f'lost {100 * r.lost_frac:.1f} %; {r.load}')


# ---------------------------------------------------------------- printing
def pct(values: list[float], q: float) -> float:
    from edgevlm_ros.core.stats import percentile

    return percentile(values, q) if values else math.nan


def fmt(v, spec: str = '.1f') -> str:
    if v is None or (isinstance(v, float) and v != v):
        return '-'
    return format(v, spec)


def table(title: str, columns: list[str], rows: list[tuple[str, list[str]]]) -> None:
    w0 = max([len(title)] + [len(k) for k, _ in rows])
    widths = [max(len(c), *(len(v[i]) for _, v in rows)) for i, c in enumerate(columns)]
    print(f'\n  {title:<{w0}}  ' + '  '.join(f'{c:>{w}}' for c, w in zip(columns, widths)))
    for k, vals in rows:
        print(f'  {k:<{w0}}  ' + '  '.join(f'{v:>{w}}' for v, w in zip(vals, widths)))


def baseline_for(r: Result, results: list[Result]) -> Result | None:
    """The same model's 10 Hz cell, same transport if it ran, else any transport."""
    same = [b for b in results if b.cell.model == r.cell.model and b.cell.rate == 10
            and b.cell.kind == 'cell' and not b.error and b.interval]
    return next((b for b in same if b.cell.transport == r.cell.transport), None) or (
        same[0] if same else None)


def others_pct(r: Result) -> float:
    """CPU of everything but the graph and this listener (other tests on the machine)."""
    ours = sum(v for v in r.cpu_pct.values() if v == v)
    return max(0.0, r.machine_busy_pct * (os.cpu_count() or 1) - ours)


def print_cells(results: list[Result], opts) -> None:
    rs = [r for r in results if r.interval]
    if not rs:
        return
    cols = [r.cell.label for r in rs]
    d = lambda r, n, k: r.delta.get((n, k), 0)  # noqa: E731
    rows = [
        ('window, s (camera status interval)', [fmt(r.interval.get('camera')) for r in rs]),
        ('startup to first answer, s', [fmt(r.startup_s, '.0f') for r in rs]),
        ('camera rate asked, Hz', [fmt(r.cell.rate, 'g') for r in rs]),
        ('source published, Hz', [fmt(r.rate_of('frame_source', 'frames_published'), '.2f')
                                  for r in rs]),
        ('carried to camera_node, Hz', [fmt(r.rate_of('camera', 'frames_received'), '.2f')
                                        for r in rs]),
        ('tap interval p50/p95/max, ms',
         [('/'.join(fmt(x, '.0f') for x in (pct(r.tap_ms, 50), pct(r.tap_ms, 95),
                                             max(r.tap_ms))) if r.tap_ms else '-') for r in rs]),
        ('frames published by source', [str(d(r, 'frame_source', 'frames_published'))
                                        for r in rs]),
        ('frames received by camera_node', [str(d(r, 'camera', 'frames_received')) for r in rs]),
        ('  lost in transport (rate diff x T)',
         [fmt((r.rate_of('frame_source', 'frames_published') -
               r.rate_of('camera', 'frames_received')) * r.interval['camera'], '.0f')
          if r.interval.get('frame_source') else '-' for r in rs]),
        ('  dropped before decode (between)', [str(d(r, 'camera', 'frames_between_steps'))
                                               for r in rs]),
        ('  decoded (steps + bad images)',
         [str(d(r, 'camera', 'steps_published') + d(r, 'camera', 'bad_image')) for r in rs]),
        ('  dropped early, % of received',
         [fmt(100 * d(r, 'camera', 'frames_between_steps') /
              max(1, d(r, 'camera', 'frames_received'))) for r in rs]),
        ('steps expected (rate x window)', [fmt(r.expected) for r in rs]),
        ('steps published', [str(r.published) for r in rs]),
        ('step rate, /s', [fmt(r.rate_of('camera', 'steps_published'), '.3f') for r in rs]),
        ('steps received by the edge', [str(d(r, 'edge_svlm', 'steps_received')) for r in rs]),
        ('steps skipped by the edge', [str(r.skipped) for r in rs]),
        ('steps answered', [str(r.answered) for r in rs]),
        ('answer rate, /s', [fmt(r.answer_rate, '.3f') for r in rs]),
        ('answer rate vs 10 Hz, %',
         [fmt(100 * (r.answer_rate / b.answer_rate - 1), '+.1f')
          if (b := baseline_for(r, results)) is not None and b is not r else '-' for r in rs]),
        ('steps lost, %', [fmt(100 * r.lost_frac) for r in rs]),
        ('steps lost w/o edge skips, %', [fmt(100 * r.lost_wo_skips_frac) for r in rs]),
        ('frame -> Step received p50/p95, ms',
         [f'{fmt(pct(r.step_ms, 50), ".0f")}/{fmt(pct(r.step_ms, 95), ".0f")}' for r in rs]),
        ('answer latency p50/p95, ms',
         [f'{fmt(pct(r.latency_ms, 50), ".0f")}/{fmt(pct(r.latency_ms, 95), ".0f")}'
          for r in rs]),
        ('edge model p50, ms', [fmt(pct(r.model_ms, 50), '.0f') for r in rs]),
        ('machine CPU busy, % of all cores', [fmt(r.machine_busy_pct, '.0f') for r in rs]),
        ('other processes, % of one core', [fmt(others_pct(r), '.0f') for r in rs]),
        ('load average at the end', [r.load.replace('load average ', '') for r in rs]),
    ]
    table('cell', cols, rows)

    procs = [n for n in NODES + [LISTENER] if any(n in r.cpu_pct for r in rs)]
    rows = []
    for n in procs:
        vals = []
        for r in rs:
            total = sum(v for k, v in r.cpu_pct.items() if k != LISTENER and v == v)
            c = r.cpu_pct.get(n, math.nan)
            part = 100 * c / total if total else math.nan
            share = '' if n == LISTENER else f' ({fmt(part, ".0f")} %)'
            vals.append(f'{fmt(c)}{share} t{r.threads.get(n, "?")}')
        rows.append((n, vals))
    rows.append(('graph total', [fmt(sum(v for k, v in r.cpu_pct.items()
                                         if k != LISTENER and v == v)) for r in rs]))
    table('CPU % of one core (share of graph) threads', cols, rows)

    rows = []
    for n in procs:
        vals = []
        for r in rs:
            after = r.rss_after_warmup(n, opts.warmup)
            late = r.rss_after_warmup(n, r.wall_s / 2)
            vals.append('-' if not after else f'{after[0]:.0f} {max(after) - min(after):.1f} '
                                              f'{after[-1] - after[0]:+.1f} '
                                              f'{max(late) - min(late) if late else math.nan:.1f}')
        rows.append((n, vals))
    table(f'RSS MB after {opts.warmup:g} s: first range drift late-half-range', cols, rows)


def print_search(results: list[Result], opts) -> float | None:
    rs = [r for r in results if r.cell.kind == 'search']
    if not rs:
        return None
    print(f'\n== rate search: {opts.search_model}, {opts.search_transport}, '
          f'{opts.search_duration:g} s per rate, kept = steps lost <= {100 * LOST_LIMIT:g} % ==')
    print(f"  {'asked Hz':>8} {'source Hz':>9} {'carried Hz':>10} {'expected':>8} "
          f"{'published':>9} {'answered':>8} {'skipped':>7} {'lost %':>7} {'kept':>5}  load")
    best = None
    for r in rs:
        if not r.interval:
            print(f'  {r.cell.rate:8g}  failed: {r.error}')
            continue
        kept = r.lost_frac <= LOST_LIMIT and not r.error
        if kept:
            best = r if best is None or r.cell.rate > best.cell.rate else best
        print(f"  {r.cell.rate:8g} {fmt(r.rate_of('frame_source', 'frames_published'), '9.2f')} "
              f"{fmt(r.rate_of('camera', 'frames_received'), '10.2f')} {r.expected:8.1f} "
              f'{r.published:9d} {r.answered:8d} {r.skipped:7d} {100 * r.lost_frac:7.1f} '
              f"{'yes' if kept else 'no':>5}  {r.load.replace('load average ', '')}")
    if best is None:
        print('  highest camera rate kept: none of the rates tried')
        return None
    failed_below = [r.cell.rate for r in rs if r.cell.rate < best.cell.rate and r.interval
                    and not (r.lost_frac <= LOST_LIMIT and not r.error)]
    print(f'  highest camera rate kept: {best.cell.rate:g} Hz asked, '
          f"{best.rate_of('frame_source', 'frames_published'):.1f} Hz published by the source, "
          f"{best.rate_of('camera', 'frames_received'):.1f} Hz carried to camera_node "
          f'({100 * best.lost_frac:.1f} % of steps lost)' +
          (f'; but lost more at {failed_below} Hz' if failed_below else ''))
    return best.cell.rate


def print_claims(results: list[Result], opts) -> None:
    rs = [r for r in results if r.interval and r.cell.kind == 'cell']
    if not rs:
        return
    print('\n== claims (cells of --duration s) ==')
    for r in rs:
        d = lambda n, k: r.delta.get((n, k), 0)  # noqa: E731, B023
        step_rate = r.rate_of('camera', 'steps_published')
        ok_rate = abs(step_rate / opts.step_rate - 1) <= STEP_RATE_TOL
        rec, between = d('camera', 'frames_received'), d('camera', 'frames_between_steps')
        decoded = d('camera', 'steps_published') + d('camera', 'bad_image')
        # Status snapshots of one node are consistent; allow the frame in hand at a snapshot.
        ok_early = abs(rec - between - decoded) <= 2 and between > 0
        b = baseline_for(r, results)
        ans = '-'
        if b is not None and b is not r:
            change = r.answer_rate / b.answer_rate - 1
            ans = (f"{'holds' if abs(change) <= ANSWER_RATE_TOL else 'FAILS'} "
                   f'({100 * change:+.1f} % vs {b.cell.label})')
        worst = max(((n, max(a) - min(a)) for n in NODES
                     if (a := r.rss_after_warmup(n, opts.warmup))), key=lambda x: x[1],
                    default=('-', math.nan))
        ok_rss = worst[1] <= RSS_FLAT_MB
        print(f'  {r.cell.label}: step rate {step_rate:.3f}/s '
              f"{'holds' if ok_rate else 'FAILS'}; early drops {between} of {rec} received, "
              f"{decoded} decoded: {'holds' if ok_early else 'FAILS'}; answer rate {ans}; RSS "
              f"range worst {worst[0]} {worst[1]:.1f} MB: {'holds' if ok_rss else 'FAILS'}")


# ---------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('--cells', default=MICRO_CELLS,
                    help='model:rate_hz:raw|compressed, comma-separated (run first)')
    ap.add_argument('--duration', type=float, default=120.0, help='measured seconds per cell')
    ap.add_argument('--search-rates', default='15,30,45,60',
                    help='camera rates of the rate search, Hz ("" for none)')
    ap.add_argument('--search-duration', type=float, default=30.0)
    ap.add_argument('--search-model', default='micro')
    ap.add_argument('--search-transport', default='raw', choices=['raw', 'compressed'])
    ap.add_argument('--real-cells', default=REAL_CELLS,
                    help='cells run last (the real-size model), same form as --cells')
    ap.add_argument('--no-real', action='store_true', help='skip --real-cells')
    ap.add_argument('--real-backend', default='openvino')
    ap.add_argument('--real-quantize', default='int8')
    ap.add_argument('--step-rate', type=float, default=None,
                    help='camera step_rate_hz (default: edgevlm.yaml)')
    ap.add_argument('--world', default=DEFAULT_WORLD, help='synth:... without fps')
    ap.add_argument('--network-profile', default='jitter:500,250')
    ap.add_argument('--strategy', default='edgevlm_arbitrated')
    ap.add_argument('--settle', type=float, default=5.0,
                    help='seconds between the first answer and the window')
    ap.add_argument('--warmup', type=float, default=20.0,
                    help='seconds of the window left out of the RSS flatness')
    ap.add_argument('--rss-every', type=float, default=2.0)
    ap.add_argument('--grace', type=float, default=4.0,
                    help='seconds after the window for the answers of its steps')
    ap.add_argument('--no-tap', action='store_true',
                    help='do not subscribe to the camera topic (intervals not measured)')
    ap.add_argument('--startup-timeout', type=float, default=1200.0,
                    help='seconds to wait for the first answer (the real-size model calibrates '
                         'once for ~2 min on its first OpenVINO load)')
    ap.add_argument('--domain', type=int, default=DEFAULT_DOMAIN,
                    help='ROS_DOMAIN_ID (tests use 1..90)')
    ap.add_argument('--log-dir', type=Path, default=Path('build/bench_overload'))
    opts = ap.parse_args()

    graph.loopback_env(opts.domain, opts.log_dir)
    if opts.step_rate is None:
        opts.step_rate = float(installed_param('camera', 'step_rate_hz'))
    cells = parse_cells(opts.cells, opts.duration)
    search = [Cell(opts.search_model, float(x), opts.search_transport, opts.search_duration,
                   'search') for x in filter(None, opts.search_rates.split(','))]
    real = [] if opts.no_real else parse_cells(opts.real_cells, opts.duration)
    plan = cells + search + real
    print(f'== overload: {len(plan)} phases, about '
          f'{sum(c.duration + 30 for c in plan) / 60:.0f} min plus model loads ==')
    for line in header_lines(opts):
        print(f'  {line}')
    sys.stdout.flush()
    from edgevlm_ros.models.tiny import TINY_KINDS, ensure_tiny_model

    for model in sorted({c.model for c in plan}):
        if model in TINY_KINDS:
            t0 = time.monotonic()
            path = ensure_tiny_model(model, progress=False)
            print(f'model {model}: {path} ({time.monotonic() - t0:.1f} s)', flush=True)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init(args=[])  # argv holds launch arguments (k:=v), not ROS arguments
    results: list[Result] = []
    try:
        for i, cell in enumerate(plan, 1):
            results.append(run_cell(cell, opts, SingleThreadedExecutor, f'{i}/{len(plan)}'))
    except KeyboardInterrupt:
        print('interrupted: the tables cover the phases that ran', flush=True)
    finally:
        rclpy.try_shutdown()

    print('\n== overload: results ==')
    for line in header_lines(opts)[:2]:
        print(f'  {line}')
    print(f'  {graph.load_avg()} at the end')
    print_cells([r for r in results if r.cell.kind == 'cell'], opts)
    print_search(results, opts)
    print_claims(results, opts)
    failed = [r for r in results if r.error]
    for r in failed:
        print(f'  {r.cell.label} ({r.cell.kind}): {r.error}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
