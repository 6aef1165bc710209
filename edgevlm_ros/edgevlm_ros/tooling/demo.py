# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
`make demo`: the whole graph on the embedded default, answers streaming, a summary at the end.

Runs edgevlm.launch.py (the same launch description and config a robot uses) with the synthetic
world as the camera, the trained micro SVLM on the edge and the simulated LVLM as the embedded
cloud behind an emulated network (DEMO_ARGS; every launch argument can be overridden, e.g.
`source:=builtin:pan edge_model:=tiny embedded_model:=tiny-cloud` for the random-weight models),
prints every answer as it arrives, and on exit (after --duration seconds, or on Ctrl-C) prints a
summary: steps, answers, per-step latency, the edge's history KV cache hit rate, context
replacements and focus masks applied, cloud round trips, node restarts. The edge runtime is a
launch argument too (`edge_backend:=onnxruntime edge_quantize:=int8`, `edge_device:=cuda`).

The nodes run under launch_runner.Supervisor with the launch file's respawn arguments: a node that
dies is started again (a line says so) and the demo goes on; the summary counts the restarts per
node. A node that ends for good (respawn:=false, or respawn_max_retries used up) ends the demo
with exit code 1 and says which node, how it exited and why it was not respawned.

With the synthetic world as the camera (`source:=synth:seed=0,pace=0.3,question_every=10`: its
questions change as the world plays, and every frame's true answer is published), each answer is
printed next to the truth of the frame it answers (and the truth now, when that has changed), and
the summary adds the accuracy against the ground truth.
"""

import argparse
from collections import OrderedDict
from pathlib import Path
import signal
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from edgevlm_msgs.msg import Answer, CloudResponse, ContextUpdate, FocusMask, GroundTruth
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from edgevlm_ros.core.records import Truth
from edgevlm_ros.core.scoring import is_correct
from edgevlm_ros.core.stats import LatencyWindow, LifeCounters
from edgevlm_ros.ros.conversions import msg_to_truth, stamp_to_ns
from edgevlm_ros.ros.qos import RESULTS
from edgevlm_ros.tooling import launch_runner

# The demo's defaults; any launch argument can be overridden on the command line (name:=value).
# The synthetic world (a question every 10 s, calm pace: answers hold ~3 s), the trained micro
# SVLM on the edge and the simulated LVLM (the world's ground truth, 10 % wrong on purpose) as
# the cloud behind a 0.5 s network fluctuating by half: answers that can be checked, on a machine
# without weights. The strategy is edgevlm_arbitrated, which takes the cloud's answer while it is
# fresh and the edge's otherwise, and says which and why on every line.
DEMO_WORLD = 'synth:seed=0,pace=0.3,question_every=10'
DEMO_ARGS = {'use_frame_source': 'true', 'source': DEMO_WORLD, 'edge_model': 'micro',
             'embedded_model': f'simulated:{DEMO_WORLD},error=0.1',
             'network_profile': 'jitter:500,250', 'strategy': 'edgevlm_arbitrated'}
STATUS_NAMES = {0: 'ok', 1: 'timeout', 2: 'http error', 3: 'parse error', 4: 'dropped'}
# Truths kept to judge answers by their frame's stamp: 5 minutes of frames at 10 Hz, far more than
# any answer's latency.
MAX_TRUTHS = 3000


def printable(text: str, limit: int = 72) -> str:
    """Answers for the terminal: one line, control characters shown as '?', cut at limit."""
    text = text.replace('\n', ' ')
    clean = ''.join(c if c.isprintable() and c != '\ufffd' else '?' for c in text)
    return f'"{clean[:limit]}{"..." if len(clean) > limit else ""}"'


class DemoMonitor(Node):
    """Subscribes to everything the graph says and keeps what the summary needs (bounded)."""

    def __init__(self, namespace: str, quiet: bool, context=None) -> None:
        super().__init__('edgevlm_demo_monitor', namespace=namespace or '/', context=context)
        self.quiet = quiet
        self.latency = LatencyWindow(10_000)
        self.model_ms = LatencyWindow(10_000)
        self.round_trip = LatencyWindow(10_000)
        self.answers = self.edge_answers = self.with_replacement = self.with_focus = 0
        self.cloud_ok = self.cloud_failed = self.not_sent = self.updates = self.masks = 0
        self.first_answer_s: float | None = None
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.lives = LifeCounters()  # a restarted node counts from 0 again: the summary adds up
        self.watchdog: launch_runner.Watchdog | None = None
        self.truths: OrderedDict[int, Truth] = OrderedDict()  # frame stamp -> truth, bounded
        self.truth_now: Truth | None = None
        # Answers judged against the truth of their frame: source -> [correct, judged].
        self.judged = {'edge': [0, 0], 'cloud': [0, 0]}
        self.unjudged = 0  # answers to frames whose truth the monitor never saw
        self.create_subscription(Answer, 'edgevlm/answer', self._on_answer, RESULTS)
        self.create_subscription(CloudResponse, 'edgevlm/cloud_response', self._on_cloud,
                                 RESULTS)
        self.create_subscription(ContextUpdate, 'edgevlm/context_update', self._on_update,
                                 RESULTS)
        self.create_subscription(FocusMask, 'edgevlm/focus_mask', self._on_mask, RESULTS)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.create_subscription(GroundTruth, 'edgevlm/ground_truth', self._on_truth, RESULTS)

    def say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)

    def _on_answer(self, m: Answer) -> None:
        self.answers += 1
        if self.first_answer_s is None:
            self.first_answer_s = time.monotonic()
        self.latency.add(m.latency_ms)
        src = 'cloud' if m.source == Answer.SOURCE_CLOUD else 'edge '
        ctx = ''
        if m.source == Answer.SOURCE_EDGE:
            self.edge_answers += 1
            self.model_ms.add(m.model_ms)
            ctx = f' hist {m.history_turns:2d}'
            if m.replaced_turns:
                self.with_replacement += 1
                ctx += f' ({m.replaced_turns} from cloud, newest step {m.newest_cloud_step})'
            if m.focus_applied:
                self.with_focus += 1
                ctx += f' focus<-step {m.focus_source_step} ({m.focus_age_s:.1f} s)'
        if m.reason:
            ctx += f' [{m.reason}]'  # edgevlm_arbitrated: why this source
        self.say(f'{src} step {m.step_id:4d} {m.latency_ms:6.0f} ms{ctx} | {printable(m.answer)}'
                 f'{self._judge(m)}')

    def _on_truth(self, m: GroundTruth) -> None:
        if self.truth_now is None or self.truth_now.question != m.question:
            self.say(f'-- question: {printable(m.question)}')
        self.truth_now = msg_to_truth(m)
        self.truths[self.truth_now.stamp_ns] = self.truth_now
        while len(self.truths) > MAX_TRUTHS:
            self.truths.popitem(last=False)

    def _judge(self, m: Answer) -> str:
        """Score an answer against the truth of the frame it answers; the text to print."""
        if self.truth_now is None:
            return ''  # no ground truth in this graph (not a synthetic world)
        truth = self.truths.get(stamp_to_ns(m.header.stamp))
        if truth is None:
            self.unjudged += 1
            return ' | truth of its frame unknown'
        ok = is_correct(m.answer, truth)
        tally = self.judged['cloud' if m.source == Answer.SOURCE_CLOUD else 'edge']
        tally[0] += ok
        tally[1] += 1
        text = f" | {'right' if ok else 'wrong'}, truth {printable(truth.answer, 24)}"
        now = self.truth_now
        if now.question != truth.question:
            text += f' (now another question: {printable(now.question, 32)})'
        elif now.answer != truth.answer:
            text += f', now {printable(now.answer, 24)}'
        return text

    def accuracy(self) -> str:
        """The accuracy line of the summary ('' when there was no ground truth)."""
        if self.truth_now is None:
            return ''
        right = sum(c for c, _ in self.judged.values())
        total = sum(n for _, n in self.judged.values())
        notes = [f'{k} {c}/{n}' for k, (c, n) in self.judged.items() if n]
        if self.unjudged:
            notes.append(f'{self.unjudged} not judged: truth of their frame unknown')
        head = f'{100.0 * right / total:.0f} % of {total} answers' if total else '-'
        return f"{head} ({', '.join(notes)})" if notes else head

    def _on_cloud(self, m: CloudResponse) -> None:
        if m.status == CloudResponse.STATUS_DROPPED:
            self.not_sent += 1  # a step the bridge chose not to send
            return
        if m.status == CloudResponse.STATUS_OK:
            self.cloud_ok += 1
            self.round_trip.add(m.round_trip_ms)
        else:
            self.cloud_failed += 1
        status = STATUS_NAMES.get(m.status, str(m.status))
        detail = f'{len(m.regions)} boxes' if m.status == 0 else m.error
        self.say(f'CLOUD step {m.step_id:4d} {m.round_trip_ms:6.0f} ms round trip, {status}, '
                 f'{detail} | {printable(m.answer, 48)}')

    def _on_update(self, m: ContextUpdate) -> None:
        self.updates += 1

    def _on_mask(self, m: FocusMask) -> None:
        self.masks += 1

    def _on_diag(self, m: DiagnosticArray) -> None:
        for s in m.status:
            self.diagnostics[s.name] = values = {kv.key: kv.value for kv in s.values}
            self.lives.update(s.name, values)
            if self.watchdog is not None:
                launch_runner.beat(self.watchdog, s.name, values)

    def counter(self, node_suffix: str, key: str) -> int:
        """A node's counter over all its lives (a restart starts its counters at 0)."""
        return self.lives.total(node_suffix, key)

    def value(self, node_suffix: str, key: str) -> str | None:
        """A node's newest /diagnostics value for key, None if it never reported one."""
        for name, values in self.diagnostics.items():
            if name.endswith('/' + node_suffix) and key in values:
                return values[key]
        return None

    def history_cache(self) -> str:
        """The edge's history KV cache: the share of prompt tokens it served, steps that hit."""
        rate = self.value('edge_svlm', 'history_cache_token_hit_rate')
        if rate is None:
            return 'not reported by the edge backend'
        hits = self.value('edge_svlm', 'history_cache_hits')
        calls = self.value('edge_svlm', 'history_cache_calls')
        return (f'{100.0 * float(rate):.0f} % of prompt tokens from the cache '
                f'({hits} of {calls} steps reused it)')

    def arbitration(self) -> str:
        """edgevlm_arbitrated: how many answers the newest cloud answer gave, how many the SVLM."""
        cloud = self.value('edge_svlm', 'arbitration_cloud')
        edge = self.value('edge_svlm', 'arbitration_edge')
        if cloud is None and edge is None:
            return 'not used by this strategy'
        return f'{cloud or 0} / {edge or 0} (the reason is on each answer line)'

    def summary(self, wall_s: float, strategy: str, restarts: dict[str, int] | None = None,
                stalls: dict[str, int] | None = None) -> str:
        lat, mod, rt = self.latency.summary(), self.model_ms.summary(), self.round_trip.summary()
        rows = [
            ('run time', f'{wall_s:.1f} s, strategy {strategy}'),
            ('steps published', self.counter('camera', 'steps_published')),
            ('answers', f'{self.answers} ({self.edge_answers} from the edge model)'),
            ('steps the edge skipped', self.counter('edge_svlm', 'steps_skipped')),
            ('per-step latency p50 / p95', f"{lat['p50']:.0f} / {lat['p95']:.0f} ms"),
            ('edge model time p50 / p95', f"{mod['p50']:.0f} / {mod['p95']:.0f} ms"),
            ('edge history KV cache', self.history_cache()),
            ('arbitration: cloud / edge answers', self.arbitration()),
            ('context replacements applied', self.counter('edge_svlm', 'context_replacements')),
            ('answers with cloud text in history', self.with_replacement),
            ('focus masks published / applied', f'{self.masks} / {self.with_focus} answers'),
            ('cloud round trips ok / failed', f'{self.cloud_ok} / {self.cloud_failed} '
                                              f'({self.not_sent} steps not sent)'),
            ('cloud round trip p50 / p95', f"{rt['p50']:.0f} / {rt['p95']:.0f} ms"),
            ('restarts', restart_text(restarts or {}, stalls or {})),
        ]
        if self.accuracy():
            rows.append(('accuracy vs ground truth', self.accuracy()))
        width = max(len(k) for k, _ in rows)
        return '\n'.join(['== edgevlm_ros demo summary =='] +
                         [f'{k:<{width}}  {v}' for k, v in rows])


def restart_text(restarts: dict[str, int], stalls: dict[str, int] | None = None) -> str:
    """The summary's restarts row: 'none', or 'edge_svlm 2 (1 stalled), camera 1'."""
    stalls = stalls or {}
    counted = [f'{name} {n}' + (f' ({stalls[name]} stalled)' if stalls.get(name) else '')
               for name, n in restarts.items() if n]
    return ', '.join(counted) if counted else 'none'


def _prepare_models(args: dict[str, str]) -> None:
    """Build the tiny offline models now, in the foreground, with a progress bar; say what runs."""
    from edgevlm_ros.models.registry import resolve_model
    from edgevlm_ros.models.tiny import ensure_tiny_model

    if args.get('edge_model') == 'micro':
        print(f'edge model: micro SVLM trained on the synthetic world, at '
              f'{resolve_model("micro")}', flush=True)
    embedded = args.get('embedded_model', 'tiny-cloud')
    if args.get('cloud_url', 'embedded') == 'embedded' and embedded.startswith('simulated:'):
        print(f"cloud: SIMULATED LVLM ({embedded}): answers from the world's ground truth, "
              'late by the emulated network', flush=True)
    wanted = []
    if args.get('edge_model', 'tiny') == 'tiny':
        wanted.append(('edge', 'smolvlm-tiny'))
    if args.get('cloud_url', 'embedded') == 'embedded' and embedded == 'tiny-cloud':
        wanted.append(('cloud stand-in', 'smolvlm-tiny-cloud'))
    for role, kind in wanted:
        t0 = time.monotonic()
        path = ensure_tiny_model(kind, progress=True)
        print(f'{role} model: {kind}, random weights, at {path} '
              f'({time.monotonic() - t0:.1f} s)', flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='edgevlm_demo', description=__doc__.split('\n')[0])
    parser.add_argument('--duration', type=float, default=0.0,
                        help='seconds to run; 0 runs until Ctrl-C')
    parser.add_argument('--log-dir', type=Path, default=Path('build/demo_logs'),
                        help='where node output goes')
    parser.add_argument('--quiet', action='store_true', help='print the summary only')
    parser.add_argument('--watchdog', type=float, default=launch_runner.WATCHDOG_S,
                        help='seconds without a heartbeat after which a node is killed and '
                             'respawned; 0 = off')
    parser.add_argument('launch_args', nargs='*', metavar='name:=value',
                        help='launch arguments of edgevlm.launch.py')
    opts = parser.parse_intermixed_args(argv)  # options may come between name:=value
    largs = dict(DEMO_ARGS)
    for a in opts.launch_args:
        if ':=' not in a:
            parser.error(f'launch arguments look like name:=value, got {a!r}')
        k, v = a.split(':=', 1)
        largs[k] = v
    launch_runner.local_ros_environment()  # the demo is local

    try:
        procs, _, resolved = launch_runner.prepare(
            launch_runner.launch_file_path('edgevlm_ros', 'edgevlm.launch.py'), largs)
    except launch_runner.LaunchError as e:
        print(f'edgevlm_demo: {e}', file=sys.stderr, flush=True)
        return 1
    _prepare_models(largs)
    print(f"starting {', '.join(p.name for p in procs)} (logs in {opts.log_dir}/)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    watchdog = launch_runner.Watchdog(opts.watchdog) if opts.watchdog > 0 else None
    nodes = launch_runner.Supervisor(procs, opts.log_dir, say=lambda line: print(line, flush=True),
                                     watchdog=watchdog)
    monitor = executor = None
    codes: dict[str, int] = {}
    t0 = time.monotonic()
    try:
        nodes.start()
        # name:=value are launch arguments, not ROS remappings. Ctrl-C is ours (the handlers
        # above): rclpy's own would shut the context down under the loop and lose the summary.
        rclpy.init(args=sys.argv[:1], signal_handler_options=SignalHandlerOptions.NO)
        monitor = DemoMonitor(resolved.get('namespace', ''), opts.quiet)
        monitor.watchdog = watchdog  # the monitor hears /diagnostics: it feeds the heartbeats
        executor = SingleThreadedExecutor()
        executor.add_node(monitor)
        while not stop.is_set():
            try:
                executor.spin_once(timeout_sec=nodes.poll_within())
            except ExternalShutdownException:
                break  # the context was shut down from outside: stop as on Ctrl-C
            if opts.duration > 0 and time.monotonic() - t0 >= opts.duration:
                break
            nodes.poll()  # deaths and respawns, one line each
            if nodes.ended:
                break  # a node is gone for good: the demo cannot go on as the graph it shows
    finally:
        wall = time.monotonic() - t0
        codes = nodes.shutdown()  # always: the nodes run in their own sessions
        if executor is not None:
            executor.shutdown()
        if monitor is not None:
            monitor.destroy_node()
        rclpy.try_shutdown()
    print(monitor.summary(wall, resolved['strategy'], nodes.restart_counts(),
                          nodes.stall_counts()), flush=True)
    if nodes.ended:
        for ended in nodes.ended:
            log = opts.log_dir / f'{ended.name}.log'
            tail = log.read_text(errors='replace').splitlines()[-15:] if log.exists() else []
            print(f'\n{ended}; last lines of {log}:', flush=True)
            print('\n'.join(tail), flush=True)
        print(f"\nnode ended for good: {', '.join(str(e) for e in nodes.ended)}",
              file=sys.stderr, flush=True)
        return 1
    bad = launch_runner.stop_errors(codes, lambda line: print(line, flush=True))
    if bad:
        print(f'nodes exited with errors: {bad}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
