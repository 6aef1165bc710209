# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Rosbag replay through the live graph, once per strategy, recording everything it answers.

Why one module of 610 lines: it is one replay run: the config, the launched graph, the Recorder
node that plays and records, the simulated clock and the player share one run's timing and
directory; split, a run's order (launch, wait, play, drain, stop) would be spread over
modules.

For each strategy the replay starts the graph from edgevlm.launch.py (the same launch file and
parameters a robot uses; a parameter file written into the run directory records every
override), waits until every node is up (the edge node answers once with a full history while
it loads, so the first step does not pay the first forward pass), then plays the evaluation
bag's camera frames at their own pace and its questions on edgevlm/question, and records the
ground truth of every frame (re-stamped like the frame) with
every Answer, CloudResponse, ContextUpdate and FocusMask into `<out>/<strategy>/record` (MCAP).
The nodes' final /diagnostics counters and the run's facts go to `<out>/<strategy>/run.json`.

Time: at speed 1 the frames are stamped with the wall clock as they are published, like a live
camera. At any other speed the replay publishes /clock (bag time running at `speed` x the wall
clock), every node runs with use_sim_time, frames keep their bag stamps, and the emulated
network waits in simulated time; model compute still takes wall time, so at speed 4 a 50 ms
edge step is 200 ms of simulated time (the robot's compute looks 4x slower).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
import itertools
import json
from pathlib import Path
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from edgevlm_msgs.msg import Answer, CloudResponse, ContextUpdate, FocusMask, GroundTruth
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
import yaml

from edgevlm_ros.core.records import RunRecord
from edgevlm_ros.core.stats import LatencyWindow
from edgevlm_ros.core.strategy import Strategy
from edgevlm_ros.eval import bags
from edgevlm_ros.ros.conversions import truth_to_msg
from edgevlm_ros.ros.qos import QUESTION, RESULTS
from edgevlm_ros.tooling import launch_runner

# The graph's node names (diagnostics keys in RunRecord.counters).
NODES = ('camera', 'edge_svlm', 'cloud_bridge', 'context_fusion')
# /clock is published this often (wall seconds): the simulated clock's resolution. Every node
# runs a Python callback per /clock message, so 200 Hz cost the graph so much CPU that the edge
# lost half its steps at 2x; 50 Hz (ros2 bag play --clock uses 40) does not.
CLOCK_PERIOD_S = 0.02
# Waiting for the graph to come up (model loads and their warm-up answers included).
READY_TIMEOUT_S = 180.0
# After the drain, how long to wait (wall s) for every node's last counters.
FINAL_DIAGNOSTICS_TIMEOUT_S = 10.0
# After the drain, how much longer (wall s, plus the deadline) requests still in flight may take.
DRAIN_TIMEOUT_S = 30.0
RECORDED = {
    'edgevlm/answer': (Answer, 'edgevlm_msgs/msg/Answer'),
    'edgevlm/cloud_response': (CloudResponse, 'edgevlm_msgs/msg/CloudResponse'),
    'edgevlm/context_update': (ContextUpdate, 'edgevlm_msgs/msg/ContextUpdate'),
    'edgevlm/focus_mask': (FocusMask, 'edgevlm_msgs/msg/FocusMask'),
}
# Topics whose every message the replay needs: it starts once their writers have matched all
# their readers.
LINKS = ('edgevlm/step', *RECORDED)
# Parameters the replay itself sets (through launch arguments or its own defaults): a --set
# of one of them would be overridden or misreported, so it is refused with the option to use.
SET_BY_OPTIONS = {
    ('edge_svlm', 'model'): '--edge-model', ('edge_svlm', 'strategy'): '--strategies',
    ('edge_svlm', 'offload.deadline_s'): '--deadline',
    ('cloud_bridge', 'base_url'): '--cloud-url', ('cloud_bridge', 'model'): '--cloud-model',
    ('cloud_bridge', 'network_profile'): '--network', ('cloud_bridge', 'strategy'):
    '--strategies', ('cloud_bridge', 'seed'): '--seed',
    ('cloud_bridge', 'embedded_model'): '--embedded-model',
    ('camera', 'input_transport'): 'the bag (its image topic)',
    ('camera', 'step_rate_hz'): '--step-rate', ('camera', 'question'): 'the bag',
    **{(n, 'use_sim_time'): '--speed' for n in NODES},
}
# Parameters the launch file sets from launch arguments (which win over the params file): a --set
# of one of them reaches the node as that launch argument.
LAUNCH_ARGUMENTS = {
    ('edge_svlm', 'backend'): 'edge_backend', ('edge_svlm', 'device'): 'edge_device',
    ('edge_svlm', 'dtype'): 'edge_dtype', ('edge_svlm', 'quantize'): 'edge_quantize',
    ('edge_svlm', 'providers'): 'edge_providers',
}
TRUTH_TOPIC = '/edgevlm/ground_truth'
TRUTH_TYPE = 'edgevlm_msgs/msg/GroundTruth'


class ReplayError(RuntimeError):
    """The replay could not run (a node died, the graph never came up, a bad bag)."""


@dataclass
class ReplayConfig:
    """One evaluation: a bag, the strategies to compare, the conditions they run under."""

    bag: Path
    out: Path
    strategies: list[str] = field(default_factory=lambda: [s.value for s in Strategy])
    network_profile: str = 'none'
    speed: float = 1.0
    deadline_s: float = 1.0
    seed: int = 0
    edge_model: str = 'tiny'
    cloud_url: str = 'embedded'
    cloud_model: str = 'edgevlm-local-lvlm'
    embedded_model: str = 'tiny-cloud'
    step_rate_hz: float = 2.0
    # Simulated seconds the graph keeps running after the last frame, so that answers in flight
    # arrive; None = max(2 s, 2 x deadline).
    drain_s: float | None = None
    # Extra parameters: {node name: {parameter: value}}, written into each run's params file.
    overrides: dict[str, dict[str, object]] = field(default_factory=dict)
    namespace: str = 'edgevlm_eval'
    progress: bool = True

    def check(self) -> None:
        if not self.speed > 0:
            raise ValueError(f'speed must be > 0, got {self.speed}')
        if not self.deadline_s > 0:
            raise ValueError(f'deadline must be > 0 s, got {self.deadline_s}')
        if not self.strategies:
            raise ValueError('no strategy to run')
        for s in self.strategies:
            Strategy.parse(s)
        if self.drain_s is not None and not self.drain_s >= 0:
            raise ValueError(f'drain must be >= 0 s, got {self.drain_s}')
        if not 0 < self.step_rate_hz <= 120:
            raise ValueError(f'step rate must be in (0, 120] Hz, got {self.step_rate_hz}')
        unknown = set(self.overrides) - set(NODES)
        if unknown:
            raise ValueError(f'overrides for unknown nodes {sorted(unknown)}; nodes: {NODES}')
        for node, values in self.overrides.items():
            for param in values:
                option = SET_BY_OPTIONS.get((node, param))
                if option is not None:
                    raise ValueError(f'{node}.{param} is set by {option}, not by --set')

    @property
    def sim_time(self) -> bool:
        return self.speed != 1.0

    @property
    def drain(self) -> float:
        return self.drain_s if self.drain_s is not None else max(2.0, 2.0 * self.deadline_s)


def write_params(cfg: ReplayConfig, strategy: str, bag: bags.EvalBag, path: Path) -> Path:
    """The run's parameter file: the package defaults plus what this replay sets."""
    from ament_index_python.packages import get_package_share_directory

    default = Path(get_package_share_directory('edgevlm_ros')) / 'config' / 'edgevlm.yaml'
    params = yaml.safe_load(default.read_text())
    first_question = bag.questions[0][1] if bag.questions else 'What is in front of the robot?'
    sets: dict[str, dict[str, object]] = {
        'camera': {'step_rate_hz': cfg.step_rate_hz, 'question': first_question},
        'edge_svlm': {'offload.deadline_s': cfg.deadline_s},
        'cloud_bridge': {'seed': cfg.seed, 'embedded_model': cfg.embedded_model},
    }
    for node, values in cfg.overrides.items():
        sets.setdefault(node, {}).update(values)
    for node, values in sets.items():
        params.setdefault(f'/**/{node}', {}).setdefault('ros__parameters', {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'# edgevlm eval: strategy {strategy}, bag {cfg.bag}\n'
                    + yaml.safe_dump(params, sort_keys=False))
    return path


class Recorder(Node):
    """The evaluator's ROS side: plays frames and questions, records what the graph says."""

    def __init__(self, namespace: str, image_msgtype: str, sim_time: bool) -> None:
        super().__init__('edgevlm_eval', namespace=namespace, parameter_overrides=[
            Parameter('use_sim_time', value=sim_time)])
        self.compressed = image_msgtype.endswith('CompressedImage')
        if self.compressed:
            self.image_topic = 'camera/image_raw/compressed'
            self._image_pub = self.create_publisher(CompressedImage, self.image_topic,
                                                    qos_profile_sensor_data)
            self._image_cls = CompressedImage
        else:
            self.image_topic = 'camera/image_raw'
            self._image_pub = self.create_publisher(Image, self.image_topic,
                                                    qos_profile_sensor_data)
            self._image_cls = Image
        self._question_pub = self.create_publisher(String, 'edgevlm/question', QUESTION)
        self._clock_pub = self.create_publisher(Clock, '/clock', 10) if sim_time else None
        self._lock = threading.Lock()
        self._writer: bags.RecordWriter | None = None
        self.received: dict[str, int] = dict.fromkeys(RECORDED, 0)
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.diagnostics_at: dict[str, float] = {}
        self._recorded_subs = [
            self.create_subscription(cls, topic, self._recorder(topic, msgtype), RESULTS,
                                     raw=True)
            for topic, (cls, msgtype) in RECORDED.items()]
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 50)

    # ------------------------------------------------------------------ recording
    def start_recording(self, writer: bags.RecordWriter) -> None:
        with self._lock:
            self._writer = writer
            self.received = dict.fromkeys(RECORDED, 0)

    def stop_recording(self) -> None:
        with self._lock:
            self._writer = None

    def _recorder(self, topic: str, msgtype: str) -> Callable[[bytes], None]:
        name = '/' + topic

        def record(raw: bytes) -> None:
            now = self.get_clock().now().nanoseconds
            with self._lock:
                if self._writer is None:
                    return
                self._writer.write(name, msgtype, bytes(raw), now)
                self.received[topic] += 1
        return record

    def write_truth(self, truth: GroundTruth) -> None:
        with self._lock:
            if self._writer is not None:
                stamp = truth.header.stamp.sec * 1_000_000_000 + truth.header.stamp.nanosec
                self._writer.write(TRUTH_TOPIC, TRUTH_TYPE, serialize_message(truth), stamp)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            node = status.name.rsplit('/', 1)[-1]
            if node in NODES and status.name.startswith(self.get_namespace().rstrip('/') + '/'):
                self.diagnostics[node] = {kv.key: kv.value for kv in status.values}
                self.diagnostics_at[node] = time.monotonic()

    # ------------------------------------------------------------------ playing
    def publish_clock(self, ns: int) -> None:
        if self._clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(ns, 1_000_000_000)
            self._clock_pub.publish(msg)

    def publish_frame(self, raw: bytes, stamp_ns: int) -> None:
        msg = deserialize_message(raw, self._image_cls)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        self._image_pub.publish(msg)

    def publish_question(self, text: str) -> None:
        self._question_pub.publish(String(data=text))

    def graph_ready(self) -> list[str]:
        """What is still missing before the replay can start (empty when ready)."""
        ns = self.get_namespace().rstrip('/')
        missing = []
        if self.count_subscribers(f'{ns}/{self.image_topic}') < 1:
            missing.append('camera_node subscribed to the camera topic')
        if self.count_subscribers(f'{ns}/edgevlm/question') < 1:
            missing.append('camera_node subscribed to edgevlm/question')
        # The edge subscribes to steps only once its model is loaded (lifecycle activate).
        if self.count_subscribers(f'{ns}/edgevlm/step') < 3:
            missing.append('edge, bridge and fusion subscribed to edgevlm/step')
        for topic in RECORDED:
            if topic != 'edgevlm/focus_mask' and self.count_publishers(f'{ns}/{topic}') < 1:
                missing.append(f'a publisher of {topic}')
        return missing or self._links_unmatched()

    def _links_unmatched(self) -> list[str]:
        """Links the graph lists but whose reader and writer have not matched yet.

        Discovery lists an endpoint before the other side has matched it, and a Step or answer
        sent in between is lost; so both ends of every link the replay relies on must say so:
        this node's own endpoints directly, the others' through their /diagnostics.
        """
        ns = self.get_namespace().rstrip('/')
        missing = []
        for pub, topic in ((self._image_pub, self.image_topic),
                           (self._question_pub, 'edgevlm/question')):
            if pub.get_subscription_count() < self.count_subscribers(f'{ns}/{topic}'):
                missing.append(f'{topic} matched by the camera')
        for sub in self._recorded_subs:
            topic = sub.topic_name[len(ns) + 1:]
            if topic != 'edgevlm/focus_mask' and sub.get_publisher_count() < 1:
                missing.append(f'{topic} matched by its publisher')
        # Every writer of the graph has matched every reader of its topic: the camera's Steps
        # reach the edge, the bridge and fusion, and every result reaches this recorder.
        for node in NODES:
            values = self.diagnostics.get(node)
            if values is None:
                missing.append(f'/diagnostics of {node}')
                continue
            for key, value in values.items():
                kind, _, topic = key.partition(':')
                if topic not in LINKS:
                    continue
                if kind == 'matched_subscribers' and int(value) < self.count_subscribers(
                        f'{ns}/{topic}'):
                    missing.append(f'{topic} of {node} matched by all its subscribers')
                if kind == 'matched_publishers' and int(value) < self.count_publishers(
                        f'{ns}/{topic}'):
                    missing.append(f'{topic} of {node} matched by all its publishers')
        return missing

    def cloud_idle(self, since: float) -> bool:
        """The bridge reported, after `since`, no request in flight or waiting."""
        values = self.diagnostics.get('cloud_bridge', {})
        return (self.diagnostics_at.get('cloud_bridge', 0.0) > since
                and all(values.get(k) == '0' for k in ('in_flight', 'pending', 'http_tasks')))


class _Spinner:
    """Spins the recorder in a background thread while the player paces frames."""

    def __init__(self, node: Node) -> None:
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(node)
        self._thread = threading.Thread(target=self.executor.spin, name='eval_spin',
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.executor.shutdown()
        self._thread.join(timeout=5.0)


def _wait(what: Callable[[], list[str] | bool], timeout_s: float, alive: Callable[[], None],
          describe: str) -> None:
    end = time.monotonic() + timeout_s
    while True:
        alive()
        result = what()
        missing = result if isinstance(result, list) else ([] if result else [describe])
        if not missing:
            return
        if time.monotonic() > end:
            raise ReplayError(f'{describe}: timed out after {timeout_s:g} s waiting for '
                              + ', '.join(missing))
        time.sleep(0.05)  # polling the ROS graph; the spinner thread does the work


def _log_tail(log_dir: Path, name: str, lines: int = 12) -> str:
    log = log_dir / f'{name}.log'
    if not log.exists():
        return ''
    return '\n'.join(log.read_text(errors='replace').splitlines()[-lines:])


def launch_arguments(cfg: ReplayConfig, strategy: str, params: Path, compressed: bool
                     ) -> dict[str, str]:
    """edgevlm.launch.py's arguments for one run (--set values of LAUNCH_ARGUMENTS included)."""
    args = {
        'namespace': cfg.namespace, 'params_file': str(params), 'strategy': strategy,
        'edge_model': cfg.edge_model, 'cloud_url': cfg.cloud_url,
        'embedded_model': cfg.embedded_model, 'cloud_model': cfg.cloud_model,
        'network_profile': cfg.network_profile,
        'input_transport': 'compressed' if compressed else 'raw',
        'use_sim_time': 'true' if cfg.sim_time else 'false', 'use_frame_source': 'false'}
    for (node, param), arg in LAUNCH_ARGUMENTS.items():
        if param in cfg.overrides.get(node, {}):
            args[arg] = str(cfg.overrides[node][param])
    return args


def run_strategy(cfg: ReplayConfig, strategy: str, bag: bags.EvalBag, progress=None
                 ) -> RunRecord:
    """Replay the bag once through a fresh graph running `strategy`; return what it recorded."""
    run_dir = cfg.out / strategy
    run_dir.mkdir(parents=True, exist_ok=True)
    record_path = run_dir / 'record'
    if record_path.exists():
        raise ReplayError(f'{record_path} exists: give the evaluation a new --out directory')
    params = write_params(cfg, strategy, bag, run_dir / 'params.yaml')
    procs, _, resolved = launch_runner.plan(launch_runner.load(
        launch_runner.launch_file_path('edgevlm_ros', 'edgevlm.launch.py')),
        launch_arguments(cfg, strategy, params, bag.info.compressed))
    log_dir = run_dir / 'logs'
    node = Recorder(cfg.namespace, bag.info.image_msgtype, cfg.sim_time)
    spinner = _Spinner(node)
    popens = []
    wall0 = time.monotonic()
    t0_ns = bag.info.start_ns
    clock = SimClock(node, t0_ns, cfg.speed) if cfg.sim_time else None
    lag = LatencyWindow(100_000)

    def alive() -> None:
        for p, q in zip(procs, popens):
            if q.poll() is not None:
                raise ReplayError(f'{p.name} exited with code {q.returncode} during the '
                                  f'{strategy} replay; last lines of {log_dir}/{p.name}.log:\n'
                                  + _log_tail(log_dir, p.name))

    try:
        popens = launch_runner.start(procs, log_dir)
        if clock is not None:
            clock.begin()  # the nodes' clocks start at the bag's first frame
        _wait(node.graph_ready, READY_TIMEOUT_S, alive, f'starting the {strategy} graph')
        with bags.RecordWriter(record_path) as writer:
            node.start_recording(writer)
            try:
                frames, with_truth = _play(node, cfg, bag, alive, progress, lag, clock)
            finally:
                node.stop_recording()
        diag_from = time.monotonic()
        # Nodes report once per second of their (possibly simulated) clock.
        _wait(lambda: [n for n in NODES if node.diagnostics_at.get(n, 0.0) < diag_from],
              max(FINAL_DIAGNOSTICS_TIMEOUT_S, 3.0 / cfg.speed), alive,
              'final /diagnostics of every node')
        counters = {n: dict(v) for n, v in node.diagnostics.items()}
        recorded = dict(node.received)
    finally:
        codes = launch_runner.stop(popens)
        if clock is not None:
            clock.stop()
        spinner.stop()
        node.destroy_node()
    run = bags.read_record(record_path)
    run.strategy = strategy
    run.network_profile = cfg.network_profile
    run.counters = counters
    run.meta = {
        'bag': str(cfg.bag), 'strategy': strategy, 'network_profile': cfg.network_profile,
        'speed': cfg.speed, 'clock': 'simulated (/clock)' if cfg.sim_time else 'wall',
        'deadline_s': cfg.deadline_s, 'seed': cfg.seed, 'edge_model': cfg.edge_model,
        'cloud_url': cfg.cloud_url, 'cloud_model': cfg.cloud_model,
        'embedded_model': cfg.embedded_model if cfg.cloud_url == 'embedded' else '',
        'edge_runtime': {arg: resolved[arg] for arg in LAUNCH_ARGUMENTS.values()},
        'step_rate_hz': cfg.step_rate_hz, 'frames_played': frames,
        'frames_with_truth': with_truth, 'recorded': recorded,
        'answers_to_another_question': _question_mismatches(run),
        'drain_s': cfg.drain, 'wall_s': round(time.monotonic() - wall0, 2),
        # How late the player published frames, in wall ms (x speed = graph-clock ms).
        'player_lag_p95_ms': round(lag.percentile(95), 2), 'player_lag_max_ms': round(lag.max, 2),
        'exit_codes': dict(zip([p.name for p in procs], codes)),
        'params_file': str(params), 'record': str(record_path)}
    (run_dir / 'run.json').write_text(json.dumps(
        {'meta': run.meta, 'counters': run.counters}, indent=2, sort_keys=True))
    return run


def _check_truths_match_frames(bag: bags.EvalBag, frames: int = 50) -> None:
    """Truths are found by their frame's stamp: refuse a bag where they never line up."""
    stamps = {t.stamp_ns for t in bag.truths}
    first = [stamp for stamp, _, _ in itertools.islice(bag.frames(), frames)]
    if first and not stamps.intersection(first):
        raise ReplayError(
            f'none of the first {len(first)} frames of {bag.path} has a ground truth at its '
            'stamp: frames are taken at their bag log time, which must equal their header.stamp '
            'and the stamp of their GroundTruth (edgevlm convert and edgevlm synth write bags '
            'so; a bag recorded with `ros2 bag record` logs receive times instead)')


def _question_mismatches(run: RunRecord) -> int:
    """Answers whose question is not the one the truth of their frame asks (should be 0)."""
    asked = {t.stamp_ns: t.question.strip() for t in run.truths}
    return sum(1 for a in run.answers
               if a.stamp_ns in asked and a.question.strip() != asked[a.stamp_ns])


class SimClock:
    """/clock of a sped-up replay: the bag's first stamp until started, then bag time x speed."""

    def __init__(self, node: Recorder, start_ns: int, speed: float) -> None:
        self._node, self._start_ns, self._speed = node, start_ns, speed
        self._wall0: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name='eval_clock', daemon=True)

    def now_ns(self) -> int:
        if self._wall0 is None:
            return self._start_ns
        return self._start_ns + round((time.monotonic() - self._wall0) * self._speed * 1e9)

    def begin(self) -> None:
        self._node.publish_clock(self._start_ns)
        self._thread.start()

    def run_from(self, wall0: float) -> None:
        """Bag time starts to run: the bag's first stamp is at wall time `wall0`."""
        self._wall0 = wall0

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _tick(self) -> None:
        # Keeps running after the last frame, so nodes' timers (diagnostics) still fire.
        while not self._stop.wait(CLOCK_PERIOD_S):
            self._node.publish_clock(self.now_ns())


def _play(node: Recorder, cfg: ReplayConfig, bag: bags.EvalBag, alive: Callable[[], None],
          progress, lag: LatencyWindow, clock: SimClock | None) -> tuple[int, int]:
    """Publish every frame at its time, each new question just before its frame.

    Returns (frames published, frames that had a ground truth).
    """
    questions = list(bag.questions)
    truths = {t.stamp_ns: t for t in bag.truths}
    start_ns = bag.info.start_ns
    speed = cfg.speed
    wall0 = time.monotonic()
    # Real time: each frame is stamped with its scheduled wall time (a camera's capture time),
    # so the camera's sampling by stamps picks the same frames in every run.
    epoch_ns = time.time_ns()
    if clock is not None:
        clock.run_from(wall0)
    q_index = 0
    while q_index < len(questions) and questions[q_index][0] <= start_ns:
        q_index += 1  # the first question is the camera's parameter already
    count = with_truth = 0
    frames = bag.frames()
    current = next(frames, None)
    while current is not None:
        stamp_ns, _, raw = current
        current = next(frames, None)  # one frame ahead: its question goes out before it
        due = wall0 + (stamp_ns - start_ns) / 1e9 / speed
        left = due - time.monotonic()
        if left > 0:
            time.sleep(left)  # pacing the replay at the bag's own rate
        if count % 20 == 0:
            alive()
        new_stamp = stamp_ns if cfg.sim_time else epoch_ns + (stamp_ns - start_ns)
        node.publish_frame(raw, new_stamp)
        lag.add((time.monotonic() - due) * 1000.0)  # how late the player was (wall ms)
        truth = truths.get(stamp_ns)
        if truth is not None:
            node.write_truth(truth_to_msg(replace(truth, stamp_ns=new_stamp)))
            with_truth += 1
        count += 1
        if progress is not None:
            progress.update(1)
        # A question that starts at the next frame goes out now, a frame interval ahead: the
        # camera takes the frame just published first (its image callback runs before its
        # question callback when both are waiting) and the next frame with the new question.
        nxt = current[0] if current is not None else None
        while q_index < len(questions) and (nxt is None or questions[q_index][0] <= nxt):
            node.publish_question(questions[q_index][1])
            q_index += 1
    # Drain: the graph keeps running (and the clock ticking) so answers in flight arrive; then
    # on until the bridge says no request is left, so every Step it took has its response here.
    time.sleep(cfg.drain / speed)
    drained = time.monotonic()
    _wait(lambda: node.cloud_idle(drained), DRAIN_TIMEOUT_S + cfg.deadline_s / speed, alive,
          'the cloud bridge to finish its requests in flight')
    return count, with_truth


def run_eval(cfg: ReplayConfig, on_run: Callable[[RunRecord], None] | None = None
             ) -> list[RunRecord]:
    """Replay the bag once per strategy; returns the runs (each also saved under cfg.out)."""
    cfg.check()
    bag = bags.read_eval_bag(cfg.bag)
    _check_truths_match_frames(bag)
    launch_runner.local_ros_environment()
    runs = []
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=bag.info.frames * len(cfg.strategies), unit='frame',
                   desc='replay', dynamic_ncols=True)
    own_context = not rclpy.ok()
    if own_context:
        # Ctrl-C stays a KeyboardInterrupt (the command says "interrupted" after the nodes are
        # stopped); rclpy's SIGINT handler would shut the context down under the spinning thread.
        rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.SIGTERM)
    try:
        for i, strategy in enumerate(cfg.strategies):
            if bar is not None:
                bar.set_description(f'{strategy} ({i + 1}/{len(cfg.strategies)})')
            run = run_strategy(cfg, Strategy.parse(strategy).value, bag, bar)
            runs.append(run)
            if on_run is not None:
                on_run(run)
    finally:
        if bar is not None:
            bar.close()
        if own_context:
            rclpy.try_shutdown()
    return runs
