# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Shared fixtures: an isolated ROS domain per test worker, loopback-only DDS, launched graphs."""

from collections.abc import Callable, Iterator
import os
from pathlib import Path
import sys
import tempfile
import time
import zlib

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / 'edgevlm_ros'

# Before anything imports rclpy: nothing leaves loopback, logs in tmp, and a domain of its own for
# each worker of this run (a block of ten per run, chosen from the run's id, so two suites on one
# machine rarely meet; ids stay in 1..99, the range safe for Fast DDS ports).
_worker = int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0').removeprefix('gw') or 0)
_run = os.environ.get('PYTEST_XDIST_TESTRUNUID') or str(os.getpid())
os.environ['ROS_DOMAIN_ID'] = str(1 + 10 * (zlib.crc32(_run.encode()) % 9) + _worker % 10)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(PACKAGE / 'config' / 'fastdds_localhost.xml')
os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='edgevlm_ros_log_'))
os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
os.environ['HF_HUB_OFFLINE'] = '1'


@pytest.fixture(scope='session')
def model_cache(tmp_path_factory) -> Path:
    """Tiny models are built offline once per test session, into a private cache."""
    cache = tmp_path_factory.mktemp('edgevlm_cache')
    os.environ['EDGEVLM_CACHE'] = str(cache)
    return cache


@pytest.fixture(scope='session')
def tiny_edge_model(model_cache) -> Path:
    """The tiny edge SVLM (SmolVLM/Idefics3 layout, random weights), built once per session."""
    from edgevlm_ros.models.tiny import ensure_tiny_model

    return ensure_tiny_model('smolvlm-tiny', model_cache, progress=False)


@pytest.fixture
def ros_context() -> Iterator[object]:
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.try_shutdown(context=ctx)


def spin_until(executor, predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Spin until predicate() holds; True if it did before timeout_s."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return predicate()


class Probe:
    """An in-test node that records what it hears and publishes what a test sends."""

    def __init__(self, ctx, name: str = 'test_probe') -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.node = Node(name, context=ctx)
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)
        self.received: dict[str, list] = {}

    def listen(self, msg_type, topic: str, qos) -> list:
        box = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, box.append, qos)
        return box

    def until(self, predicate: Callable[[], bool], timeout_s: float = 30.0) -> bool:
        return spin_until(self.executor, predicate, timeout_s)

    def diagnostics(self, node_name: str) -> dict[str, str]:
        """Newest /diagnostics key/values of one node (listen to /diagnostics first)."""
        values: dict[str, str] = {}
        for arr in self.received.get('/diagnostics', []):
            for s in arr.status:
                if s.name.endswith('/' + node_name):
                    values = {kv.key: kv.value for kv in s.values}
        return values

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def probe(ros_context) -> Iterator[Probe]:
    p = Probe(ros_context)
    try:
        yield p
    finally:
        p.close()


class Graph:
    """Processes started from a launch file (the package's own), always stopped at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs = []
        self.popens = []

    def launch(self, file_name: str = 'edgevlm.launch.py', **launch_args: str) -> None:
        from edgevlm_ros.tooling import launch_runner

        desc = launch_runner.load(launch_runner.launch_file_path('edgevlm_ros', file_name))
        procs, _, _ = launch_runner.plan(desc, launch_args)
        self.start(procs)

    def start(self, procs) -> None:
        from edgevlm_ros.tooling import launch_runner

        self.procs += procs
        self.popens += launch_runner.start(procs, self.log_dir)

    def node(self, executable: str, name: str, params: dict | None = None,
             remap: dict | None = None) -> None:
        """Start one node process the way a launch file would."""
        from edgevlm_ros.tooling import launch_runner

        node = launch_runner.Node(package='edgevlm_ros', executable=executable, name=name,
                                  parameters=[params or {}],
                                  remappings=list((remap or {}).items()))
        desc = launch_runner.LaunchDescription([node])
        procs, _, _ = launch_runner.plan(desc, {})
        self.start(procs)

    def popen(self, name: str):
        return next(p for proc, p in zip(self.procs, self.popens) if proc.name == name)

    def stop(self, name: str) -> int:
        from edgevlm_ros.tooling import launch_runner

        return launch_runner.stop([self.popen(name)])[0]

    def log(self, name: str) -> str:
        path = self.log_dir / f'{name}.log'
        return path.read_text(errors='replace') if path.exists() else ''

    def close(self) -> list[int]:
        from edgevlm_ros.tooling import launch_runner

        return launch_runner.stop(self.popens)


@pytest.fixture
def graph(tmp_path, model_cache) -> Iterator[Graph]:
    g = Graph(tmp_path / 'logs')
    try:
        yield g
    finally:
        g.close()
