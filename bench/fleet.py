# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
A fleet on one LVLM endpoint: N robots, each its own graph and world, share one cloud server.

Starts ONE `lvlm_server` process on 127.0.0.1 serving the simulated LVLM (10 % wrong on
purpose), checks that it serves concurrent requests, then for each N of --robots launches N
copies of edgevlm.launch.py (namespace robot1..robotN; frame_source playing the synthetic world,
robot k its own seed k-1; the micro SVLM on the edge; edgevlm_arbitrated; every bridge pointed at
the one server by cloud_url), waits until every robot has an edge answer and a cloud answer,
lets the graph settle for --warmup s, listens for --duration s and prints one row per robot:

  steps/s        Steps the robot's camera published (its own rate; 2/s by edgevlm.yaml)
  answers/s      Answers published (edge model or, by arbitration, the newest cloud answer)
  skip           Steps the edge skipped (model busy, a newer Step won)
  edge ms        the edge model's time per step, p50 (Answer.model_ms)
  lat p95        frame stamp to Answer, p95 (Answer.latency_ms)
  cloud ok       CloudResponses with status OK, and their share of the robot's CloudResponses
                 (the bridge publishes one per Step: OK, failed or DROPPED = not sent)
  rtt p50/p95    cloud round trip of the OK ones (bridge: request, server queue and model, parse)
  429/5xx/tmo    requests that failed in the end (after their retries), by fault (bridge
                 /diagnostics failures_rate_limited, failures_server_error, failures_timeout)
  retries        tries after the first (bridge `retries`: each one followed a 429/5xx/connect
                 failure), and tries per request sent (at most 1 + retry.max_retries = 3)
  brk            times the bridge's circuit breaker opened
  acc            Answers right against the ground truth of their frame (frame_source publishes
                 edgevlm/ground_truth per frame, judged as `make demo` does); cloud acc: the
                 cloud's own OK answers judged the same way (the simulated LVLM must recognise
                 each robot's frames: about 90 %)

then the fleet: fairness (fewest / most cloud answers of a robot), cloud requests and tries per
second, load average, CPU % (of one core) summed per node kind, the server's CPU and the RSS of
everything. Numbers only; nothing is asserted.

One server, N worlds: the simulated LVLM recognises a frame by its thumbnail among the frames it
knows. Given a world spec (simulated:synth:...) it knows one world; robots with other seeds would
get 'unknown'. So this bench writes ONE evaluation bag holding the frames and per-frame truth of
all N worlds (build/bench_fleet/worlds-N, once) and serves simulated:<that bag>,error=0.1: each
frame is matched among the frames that were asked the request's question, and the nearest (its
own world's, a few grey levels away; another world's frames are hundreds away) gives the truth.

Capacity: the simulated LVLM answers in about 2 ms of CPU, so it never saturates by itself.
--service-ms gives it the capacity of a real LVLM (each model call holds the model that long, one
at a time: 1000/service_ms requests a second; lvlm_server --service-ms) and --max-pending the
queue bound past which the server answers 503 (lvlm_server --max-pending, default 8).

usage: .venv/bin/python bench/fleet.py [--robots 1,2,4,8] [--duration 60] [--warmup 10]
       [--service-ms 0] [--max-pending 8] [--network-profile none] [--edge-threads 1]
       [--domain 98] [--log-dir build/bench_fleet]
"""

from __future__ import annotations

import argparse
from collections import OrderedDict
import dataclasses
import os
from pathlib import Path
import socket
import subprocess
import sys
import threading
import time

import graph  # bench/graph.py, next to this file: loopback environment, params file

DEFAULT_DOMAIN = 98  # tests use 1..90; graph.py 95, soak.py 96, transport.py 97, overload.py 93
# The demo's world (a question every 10 s, calm pace), one seed per robot: robot k plays seed k-1.
WORLD = 'synth:seed={seed},pace=0.3,question_every=10'
KINDS = ['frame_source', 'camera', 'edge_svlm', 'cloud_bridge', 'context_fusion']
BRIDGE_KEYS = ['requests_sent', 'attempts', 'retries', 'responses_ok', 'failures_rate_limited',
               'failures_server_error', 'failures_timeout', 'failures_connect', 'breaker_open']
EDGE_KEYS = ['steps_received', 'steps_skipped', 'answers_published']
MAX_TRUTHS = 3000  # per robot: 5 min of frames at 10 Hz, far more than any answer's latency
SERVED_NAME = 'edgevlm-local-lvlm'


def world(k: int) -> str:
    return WORLD.format(seed=k - 1)


def say(line: str) -> None:
    print(line, flush=True)


# ------------------------------------------------------------------------------ the server

def worlds_bag(n: int, out_dir: Path) -> Path:
    """One eval bag with the frames and truths of worlds 1..n, one after another (made once)."""
    from edgevlm_ros.eval.bags import write_eval_bag
    from edgevlm_ros.sim.synthworld import WorldSpec

    specs = [WorldSpec.parse(world(k)) for k in range(1, n + 1)]
    path = out_dir / f'worlds-{n}'
    if (path / 'metadata.yaml').exists():
        return path
    t0 = time.monotonic()
    gap = max(s.duration for s in specs) + 10.0  # world k starts at k * gap s of bag time

    def samples():
        for k, spec in enumerate(specs):
            for s in spec.generate():
                yield dataclasses.replace(s, t_s=s.t_s + k * gap)

    summary = write_eval_bag(path, samples(), jpeg_quality=75)
    say(f"worlds bag {path}: {summary['frames']} frames of {n} worlds "
        f"({summary['bytes'] / 2**20:.0f} MB, {time.monotonic() - t0:.0f} s)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_server(bag: Path, opts, log_path: Path) -> tuple[subprocess.Popen, str]:
    """The one lvlm_server process all robots share; waits for /health."""
    import httpx

    port = free_port()
    exe = Path(sys.prefix) / 'bin' / 'lvlm_server'
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else
           ['-m', 'edgevlm_ros.lvlm.server']),
           '--model', f'simulated:{bag.resolve()},error=0.1', '--host', '127.0.0.1',
           '--port', str(port), '--served-name', SERVED_NAME,
           '--max-pending', str(opts.max_pending), '--service-ms', f'{opts.service_ms:g}']
    say('server: ' + ' '.join(cmd))
    log = open(log_path, 'w')  # noqa: SIM115 - open for the process's life
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f'http://127.0.0.1:{port}/v1'
    deadline = time.monotonic() + 180.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f'lvlm_server exited {proc.returncode}; see {log_path}')
        try:
            if httpx.get(f'http://127.0.0.1:{port}/health', timeout=1.0).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f'lvlm_server not up within 180 s; see {log_path}')


def check_concurrency(url: str, k: int) -> str:
    """One request alone, then one per world at once: statuses, times, answers right."""
    import base64

    from edgevlm_ros.core.images import encode_jpeg, resize_max_side
    from edgevlm_ros.core.records import Truth
    from edgevlm_ros.core.scoring import is_correct
    from edgevlm_ros.sim.synthworld import WorldSpec
    import httpx

    requests = []
    for w in range(1, k + 1):
        s = next(iter(WorldSpec.parse(world(w)).generate()))
        jpeg = encode_jpeg(resize_max_side(s.rgb, 512), 85)
        body = {'model': SERVED_NAME, 'max_tokens': 64, 'messages': [{'role': 'user', 'content': [
            {'type': 'image_url',
             'image_url': {'url': 'data:image/jpeg;base64,' + base64.b64encode(jpeg).decode()}},
            {'type': 'text', 'text': f'The image is 512x384 pixels.\n{s.question}'}]}]}
        truth = Truth(stamp_ns=0, episode=s.episode, question_id=s.question_id,
                      question=s.question, answer=s.answer, accepted=s.accepted,
                      choices=s.choices, boxes=s.boxes)
        requests.append((body, truth))
    out: list[tuple[int, float, bool]] = [None] * k  # type: ignore[list-item]

    def ask(i: int) -> None:
        import json

        t0 = time.monotonic()
        r = httpx.post(f'{url}/chat/completions', json=requests[i][0], timeout=60.0)
        right = False
        if r.status_code == 200:
            answer = json.loads(r.json()['choices'][0]['message']['content'])['answer']
            right = is_correct(answer, requests[i][1])
        out[i] = (r.status_code, (time.monotonic() - t0) * 1000.0, right)

    ask(0)
    alone = out[0][1]
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(k)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = (time.monotonic() - t0) * 1000.0
    codes: dict[int, int] = {}
    for code, _, _ in out:
        codes[code] = codes.get(code, 0) + 1
    return (f'{k} requests at once (one per world): HTTP {codes}, all back in {wall:.0f} ms, '
            f'slowest {max(ms for _, ms, _ in out):.0f} ms (one alone {alone:.0f} ms); '
            f'{sum(r for _, _, r in out)}/{k} right for their own world '
            '(the simulated LVLM is wrong 10 % of the time on purpose)')


# ------------------------------------------------------------------------------ listening

def make_nodes(n: int):
    from diagnostic_msgs.msg import DiagnosticArray
    from edgevlm_msgs.msg import Answer, CloudResponse, GroundTruth
    from edgevlm_ros.core.scoring import is_correct
    from edgevlm_ros.ros.conversions import msg_to_truth, stamp_to_ns
    from edgevlm_ros.ros.qos import RESULTS
    from rclpy.node import Node

    class RobotMonitor(Node):
        """Answers, cloud responses and truths of one robot's namespace."""

        def __init__(self, ns: str) -> None:
            super().__init__('fleet_monitor', namespace='/' + ns)
            self.ns = ns
            self.recording = False
            self.first_answer = self.first_cloud = False
            self.truths: OrderedDict[int, object] = OrderedDict()
            self.reset()
            self.create_subscription(Answer, 'edgevlm/answer', self._on_answer, RESULTS)
            self.create_subscription(CloudResponse, 'edgevlm/cloud_response', self._on_cloud,
                                     RESULTS)
            self.create_subscription(GroundTruth, 'edgevlm/ground_truth', self._on_truth,
                                     RESULTS)

        def reset(self) -> None:
            self.answers = self.cloud_sourced = 0
            self.latency_ms: list[float] = []
            self.model_ms: list[float] = []
            self.judged = [0, 0]        # right, judged (all answers)
            self.cloud_judged = [0, 0]  # right, judged (the cloud's own OK answers)
            self.cloud_ok = self.cloud_failed = self.cloud_dropped = 0
            self.rtt_ms: list[float] = []

        def _judge(self, header, text: str, tally: list[int]) -> None:
            truth = self.truths.get(stamp_to_ns(header.stamp))
            if truth is not None:
                tally[0] += is_correct(text, truth)
                tally[1] += 1

        def _on_truth(self, m) -> None:
            t = msg_to_truth(m)
            self.truths[t.stamp_ns] = t
            while len(self.truths) > MAX_TRUTHS:
                self.truths.popitem(last=False)

        def _on_answer(self, m) -> None:
            self.first_answer = True
            if not self.recording:
                return
            self.answers += 1
            self.latency_ms.append(m.latency_ms)
            if m.source == Answer.SOURCE_CLOUD:
                self.cloud_sourced += 1
            if m.model_ms > 0:  # the edge model ran (arbitration may still show the cloud's)
                self.model_ms.append(m.model_ms)
            self._judge(m.header, m.answer, self.judged)

        def _on_cloud(self, m) -> None:
            if m.status == CloudResponse.STATUS_OK:
                self.first_cloud = True
            if not self.recording:
                return
            if m.status == CloudResponse.STATUS_OK:
                self.cloud_ok += 1
                self.rtt_ms.append(m.round_trip_ms)
                self._judge(m.header, m.answer, self.cloud_judged)
            elif m.status == CloudResponse.STATUS_DROPPED:
                self.cloud_dropped += 1
            else:
                self.cloud_failed += 1

    class DiagMonitor(Node):
        """Newest /diagnostics values per node, and states other than active seen per node."""

        def __init__(self) -> None:
            super().__init__('fleet_diagnostics')
            self.values: dict[str, dict[str, str]] = {}
            self.states: dict[str, set[str]] = {}
            self.watch_states = False
            self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 100)

        def _on_diag(self, m) -> None:
            for s in m.status:
                self.values[s.name] = {kv.key: kv.value for kv in s.values}
                state = self.values[s.name].get('state', '')
                if self.watch_states and state and state != 'active':
                    self.states.setdefault(s.name, set()).add(state)

        def counter(self, name: str, key: str) -> int:
            try:
                return int(float(self.values.get(name, {}).get(key, 0)))
            except ValueError:
                return 0

        def snapshot(self, robots: list[str]) -> dict[tuple[str, str, str], int]:
            out = {}
            for r in robots:
                for node, keys in (('camera', ['steps_published']), ('edge_svlm', EDGE_KEYS),
                                   ('cloud_bridge', BRIDGE_KEYS)):
                    for key in keys:
                        out[(r, node, key)] = self.counter(f'/{r}/{node}', key)
            return out

    return [RobotMonitor(f'robot{k}') for k in range(1, n + 1)], DiagMonitor()


class CpuSampler:
    """CPU seconds and RSS of every process over the window (psutil), keyed (owner, kind)."""

    def __init__(self, procs: dict[tuple[str, str], int]) -> None:
        import psutil

        self.procs = {key: psutil.Process(pid) for key, pid in procs.items()}
        self.rss_peak_mb: dict[tuple[str, str], float] = dict.fromkeys(self.procs, 0.0)
        self.cpu_pct: dict[tuple[str, str], float] = {}

    @staticmethod
    def _cpu(p) -> float:
        try:
            t = p.cpu_times()
            return t.user + t.system
        except Exception:  # noqa: BLE001 - a process that died
            return float('nan')

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = {k: self._cpu(p) for k, p in self.procs.items()}

    def sample(self) -> None:
        for k, p in self.procs.items():
            try:
                self.rss_peak_mb[k] = max(self.rss_peak_mb[k], p.memory_info().rss / 2**20)
            except Exception:  # noqa: BLE001
                pass

    def finish(self) -> None:
        wall = time.monotonic() - self._t0
        self.cpu_pct = {k: 100.0 * (self._cpu(p) - self._cpu0[k]) / wall
                        for k, p in self.procs.items()}


# ------------------------------------------------------------------------------ one run

def run_fleet(n: int, url: str, server_pid: int, opts, params: str) -> dict | None:
    from edgevlm_ros.tooling import launch_runner
    from rclpy.executors import SingleThreadedExecutor

    robots = [f'robot{k}' for k in range(1, n + 1)]
    path = launch_runner.launch_file_path('edgevlm_ros', 'edgevlm.launch.py')
    sups = []
    for k, r in enumerate(robots, start=1):
        args = {'namespace': r, 'use_frame_source': 'true', 'source': world(k),
                'edge_model': 'micro', 'strategy': 'edgevlm_arbitrated', 'cloud_url': url,
                'network_profile': opts.network_profile, 'params_file': params,
                'respawn': 'false'}
        procs, _, _ = launch_runner.prepare(path, args)
        sups.append(launch_runner.Supervisor(procs, opts.log_dir / f'n{n}' / r,
                                             say=lambda line, r=r: say(f'[{r}] {line}')))
    mons, diag = make_nodes(n)
    executor = SingleThreadedExecutor()
    for node in [*mons, diag]:
        executor.add_node(node)
    result = None
    t_launch = time.monotonic()
    say(f'\n--- N = {n}: launching {n} robots x {len(sups[0].procs)} processes '
        f'({graph.load_avg()})')
    try:
        for s in sups:
            s.start()

        def spin(seconds: float, tick=None) -> str | None:
            end = time.monotonic() + seconds
            next_tick = time.monotonic() + 1.0
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)
                for r, s in zip(robots, sups):
                    s.poll()
                    if s.ended:
                        return f'{r}: ' + ', '.join(str(e) for e in s.ended)
                if tick is not None and time.monotonic() >= next_tick:
                    next_tick += 1.0
                    if tick():
                        return None
            return None

        died = spin(opts.startup_timeout,
                    lambda: all(m.first_answer and m.first_cloud for m in mons))
        if died is None and not all(m.first_answer and m.first_cloud for m in mons):
            died = 'not every robot had an edge and a cloud answer within ' \
                   f'{opts.startup_timeout:.0f} s: ' + ', '.join(
                       f'{m.ns} answer={m.first_answer} cloud={m.first_cloud}' for m in mons)
        if died:
            say(f'N = {n} failed: {died}; logs in {opts.log_dir}/n{n}/')
            return None
        say(f'every robot answering {time.monotonic() - t_launch:.0f} s after launch; '
            f'settling {opts.warmup:.0f} s, then measuring {opts.duration:.0f} s')
        died = spin(opts.warmup)
        pids = {(r, p.name): q.pid for r, s in zip(robots, sups)
                for p, q in zip(s.procs, s.popens) if q is not None}
        pids[('fleet', 'lvlm_server')] = server_pid
        pids[('fleet', 'this listener')] = os.getpid()
        cpu = CpuSampler(pids)
        before = diag.snapshot(robots)
        for m in mons:
            m.reset()
            m.recording = True
        diag.watch_states = True
        load0 = os.getloadavg()
        cpu.start()
        t0 = time.monotonic()
        died = died or spin(opts.duration, lambda: cpu.sample())
        wall = time.monotonic() - t0
        cpu.finish()
        load1 = os.getloadavg()
        for m in mons:
            m.recording = False
        diag.watch_states = False
        # Counters as last published (each node every 1 s): as old at the end as at the start.
        after = diag.snapshot(robots)
        if died:
            say(f'N = {n}: a node ended during the window: {died}')
        delta = {k: after[k] - before[k] for k in before}
        result = {'n': n, 'wall': wall, 'mons': mons, 'delta': delta, 'cpu': cpu,
                  'load': (load0, load1), 'states': dict(diag.states), 'died': died}
        return result
    finally:
        for s in sups:
            s.shutdown()
        executor.shutdown()
        for node in [*mons, diag]:
            node.destroy_node()


# ------------------------------------------------------------------------------ the table

def p(values: list[float], q: float) -> float:
    from edgevlm_ros.core.stats import percentile

    return percentile(values, q) if values else float('nan')


def pct(right: int, total: int) -> str:
    return f'{100.0 * right / total:3.0f}%' if total else '  - '


def report(res: dict, opts) -> list[str]:
    n, wall, d = res['n'], res['wall'], res['delta']
    lines = [f'\n== fleet N = {n}: {wall:.0f} s window, simulated LVLM '
             f'(service {opts.service_ms:g} ms, max_pending {opts.max_pending}), network '
             f'{opts.network_profile}, edge micro ({opts.edge_threads} torch thread), '
             'edgevlm_arbitrated ==']
    head = (f"{'robot':<7} {'steps/s':>7} {'ans/s':>6} {'skip':>4} {'edge ms':>7} "
            f"{'lat p95':>7} {'cloud ok':>12} {'rtt p50/p95 ms':>15} {'429/5xx/tmo':>11} "
            f"{'retries':>11} {'brk':>3} {'acc':>4} {'cloud acc':>9}")
    lines.append(head)
    cloud_oks: list[int] = []
    rates: list[float] = []  # answers per step of each robot
    tot = {'steps': 0, 'answers': 0, 'requests': 0, 'attempts': 0, 'retries': 0, 'r429': 0,
           'r5xx': 0, 'tmo': 0, 'brk': 0, 'ok': 0, 'judged': [0, 0], 'cjudged': [0, 0],
           'rtt': [], 'skip': 0, 'edge_ms': [], 'lat': []}
    for m in res['mons']:
        r = m.ns
        steps = d[(r, 'camera', 'steps_published')]
        sent = d[(r, 'cloud_bridge', 'requests_sent')]
        attempts = d[(r, 'cloud_bridge', 'attempts')]
        retries = d[(r, 'cloud_bridge', 'retries')]
        r429 = d[(r, 'cloud_bridge', 'failures_rate_limited')]
        r5xx = d[(r, 'cloud_bridge', 'failures_server_error')]
        tmo = d[(r, 'cloud_bridge', 'failures_timeout')]
        brk = d[(r, 'cloud_bridge', 'breaker_open')]
        skip = d[(r, 'edge_svlm', 'steps_skipped')]
        responses = m.cloud_ok + m.cloud_failed + m.cloud_dropped
        cloud_oks.append(m.cloud_ok)
        rates.append(m.answers / steps if steps else 0.0)
        per_req = f'{attempts / sent:.2f}' if sent else '-'
        lines.append(
            f'{r:<7} {steps / wall:7.2f} {m.answers / wall:6.2f} {skip:4d} '
            f'{p(m.model_ms, 50):7.0f} {p(m.latency_ms, 95):7.0f} '
            f'{m.cloud_ok:5d} ({pct(m.cloud_ok, responses)}) '
            f'{p(m.rtt_ms, 50):7.0f}/{p(m.rtt_ms, 95):<7.0f} {r429:3d}/{r5xx:3d}/{tmo:3d} '
            f'{retries:5d} ({per_req:>4}) {brk:3d} {pct(*m.judged):>4} {pct(*m.cloud_judged):>9}')
        for key, v in (('steps', steps), ('answers', m.answers), ('requests', sent),
                       ('attempts', attempts), ('retries', retries), ('r429', r429),
                       ('r5xx', r5xx), ('tmo', tmo), ('brk', brk), ('ok', m.cloud_ok),
                       ('skip', skip)):
            tot[key] += v
        for i in (0, 1):
            tot['judged'][i] += m.judged[i]
            tot['cjudged'][i] += m.cloud_judged[i]
        tot['rtt'] += m.rtt_ms
        tot['edge_ms'] += m.model_ms
        tot['lat'] += m.latency_ms
    lines.append(
        f"{'fleet':<7} {tot['steps'] / wall:7.2f} {tot['answers'] / wall:6.2f} "
        f"{tot['skip']:4d} {p(tot['edge_ms'], 50):7.0f} {p(tot['lat'], 95):7.0f} "
        f"{tot['ok']:5d} ({tot['ok'] / wall:4.1f}/s) "
        f"{p(tot['rtt'], 50):7.0f}/{p(tot['rtt'], 95):<7.0f} "
        f"{tot['r429']:3d}/{tot['r5xx']:3d}/{tot['tmo']:3d} {tot['retries']:5d} "
        f"({tot['attempts'] / tot['requests'] if tot['requests'] else 0:4.2f}) "
        f"{tot['brk']:3d} {pct(*tot['judged']):>4} {pct(*tot['cjudged']):>9}")
    worst, best = min(cloud_oks), max(cloud_oks)
    ratio = worst / best if best else float('nan')
    lines.append(f'fairness: fewest / most cloud answers {worst} / {best} = {ratio:.2f} '
                 f"({'>=' if ratio >= 0.8 else 'BELOW'} 0.8)")
    lines.append(f"cloud: {tot['requests'] / wall:.1f} requests/s sent, "
                 f"{tot['attempts'] / wall:.1f} tries/s, {tot['ok'] / wall:.1f} answers/s; "
                 f"answers per step: fleet {tot['answers'] / max(tot['steps'], 1):.2f}, "
                 f'lowest robot {min(rates):.2f}')
    cpu = res['cpu']
    by_kind: dict[str, float] = {}
    rss = 0.0
    for (owner, kind), v in cpu.cpu_pct.items():
        by_kind[kind] = by_kind.get(kind, 0.0) + v
        rss += cpu.rss_peak_mb[(owner, kind)]
    total_cpu = sum(v for v in by_kind.values() if v == v)
    (l0, _, _), (l1, l5, _) = res['load']
    lines.append(f'load average {l0:.1f} at the start, {l1:.1f} (1 min) / {l5:.1f} (5 min) at '
                 f'the end; CPU {total_cpu:.0f} % of one core (2 cores = 200 %), RSS '
                 f'{rss / 1024:.1f} GB (peak, summed)')
    lines.append('CPU % by process kind (summed over robots): ' + ', '.join(
        f'{k} {v:.0f}' for k, v in by_kind.items()))
    bad = {name: sorted(s) for name, s in res['states'].items()}
    if bad:
        lines.append('states other than active in the window: ' + ', '.join(
            f'{k} {"/".join(v)}' for k, v in sorted(bad.items())))
    if res['died']:
        lines.append(f"a node ended during the window: {res['died']}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('--robots', default='1,2,4,8', help='fleet sizes, comma-separated')
    ap.add_argument('--duration', type=float, default=60.0, help='measured seconds per size')
    ap.add_argument('--warmup', type=float, default=10.0,
                    help='seconds after every robot answers, before measuring')
    ap.add_argument('--service-ms', type=float, default=0.0,
                    help='server: least model time per request, one at a time (0 = the '
                         'simulated LVLM as it is, ~2 ms)')
    ap.add_argument('--max-pending', type=int, default=8,
                    help='server: requests at once past which it answers 503')
    ap.add_argument('--network-profile', default='none',
                    help="every bridge's emulated network (none, fixed:<ms>, "
                         'jitter:<mean>,<std>)')
    ap.add_argument('--edge-threads', type=int, default=1,
                    help="each edge's torch threads (N robots share this machine's cores)")
    ap.add_argument('--domain', type=int, default=DEFAULT_DOMAIN,
                    help='ROS_DOMAIN_ID (tests use 1..90)')
    ap.add_argument('--startup-timeout', type=float, default=300.0,
                    help='seconds for every robot to answer')
    ap.add_argument('--log-dir', type=Path, default=Path('build/bench_fleet'),
                    help='node and server logs, the worlds bag')
    opts = ap.parse_args()
    sizes = [int(x) for x in opts.robots.split(',') if x.strip()]
    if not sizes or min(sizes) < 1:
        ap.error('--robots takes fleet sizes >= 1, e.g. 1,2,4,8')

    graph.loopback_env(opts.domain, opts.log_dir)
    from edgevlm_ros.backends.cpu import read_cpu
    import rclpy

    say(f'machine: {read_cpu().header(opts.edge_threads)} (each edge); {graph.load_avg()}')
    bag = worlds_bag(max(sizes), opts.log_dir)
    params = graph.params_file({'edge_svlm': {'num_threads': opts.edge_threads}}, opts.log_dir)
    server, url = start_server(bag, opts, opts.log_dir / 'lvlm_server.log')
    out: list[str] = []
    rclpy.init(args=[])  # argv holds launch arguments (k:=v), not ROS arguments
    try:
        say(f'server up at {url} (pid {server.pid})')
        say('concurrency: ' + check_concurrency(url, max(max(sizes), 2)))
        for n in sizes:
            res = run_fleet(n, url, server.pid, opts, params)
            if res is not None:
                lines = report(res, opts)
                say('\n'.join(lines))
                out += lines
    finally:
        rclpy.try_shutdown()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    if len(sizes) > 1 and out:
        say('\n== all sizes ==' + '\n'.join(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
