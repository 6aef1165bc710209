# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""run_node: a shutdown racing the executor is a clean exit; any other error is not."""

import re
import signal

from edgevlm_ros.ros import entry
import pytest
import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node

pytestmark = pytest.mark.ros


def _spin_raising(shutdown_first: bool):
    def spin(node) -> None:
        if shutdown_first:  # what the SIGINT handler does, between two executor iterations
            rclpy.shutdown()
        raise RCLError('failed to initialize wait set: the given context is not valid')
    return spin


@pytest.fixture(autouse=True)
def _in_process(monkeypatch):
    # run_node is a process's main: its shutdown deadline (SIGALRM, also pytest-timeout's signal)
    # would outlive these in-process runs, and it leaves SIGINT ignored. Subprocesses test those.
    monkeypatch.setattr(entry, '_arm_shutdown_deadline', lambda: None)
    sigint = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, sigint)


def test_a_sigint_that_invalidates_the_context_mid_spin_exits_0(monkeypatch) -> None:
    monkeypatch.setattr(entry.rclpy, 'spin', _spin_raising(shutdown_first=True))
    assert entry.run_node(lambda: Node('entry_probe'), 'entry_probe', args=[]) == 0
    assert not rclpy.ok()


def test_an_rcl_error_while_the_context_is_up_is_not_swallowed(monkeypatch) -> None:
    monkeypatch.setattr(entry.rclpy, 'spin', _spin_raising(shutdown_first=False))
    with pytest.raises(RCLError):
        entry.run_node(lambda: Node('entry_probe'), 'entry_probe', args=[])
    assert not rclpy.ok()  # still shut down on the way out


def test_a_node_stuck_in_its_shutdown_prints_every_threads_stack_and_ends_itself() -> None:
    # Fast DDS can hang for good deleting a DataWriter (seen: the camera, 1 Ctrl-C in 30 under
    # load), holding the GIL. The launcher would SIGKILL the node 10 s later with nothing said;
    # instead its stderr (its log) gets every thread's stack, then it ends itself by SIGALRM.
    import subprocess
    import sys

    script = """
import threading
import rclpy
from rclpy.node import Node
from edgevlm_ros.ros import entry

class Stuck(Node):
    def destroy_node(self):
        hang_here = threading.Event()
        hang_here.wait()

def interrupted(node):
    raise KeyboardInterrupt

entry.SHUTDOWN_STACKS_S, entry.SHUTDOWN_DEADLINE_S = 0.2, 1
entry.rclpy.spin = interrupted
entry.run_node(lambda: Stuck('stuck_probe'), 'stuck_probe', args=[])
"""
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == -signal.SIGALRM, proc.stderr
    assert 'Timeout (0:00:00.200000)!' in proc.stderr
    assert 'in wait' in proc.stderr and 'in destroy_node' in proc.stderr


def test_a_second_sigint_during_the_shutdown_is_ignored() -> None:
    # Ctrl-C in a terminal reaches `ros2 launch` and every node of its process group; launch then
    # SIGINTs each node once more. Seen under the real launch: that second SIGINT raised
    # KeyboardInterrupt inside destroy_node (exit 1 with a traceback; the bridge aborted, -6).
    import subprocess
    import sys

    script = """
import os
import signal
import rclpy
from rclpy.node import Node
from edgevlm_ros.ros import entry

class Node2(Node):
    def destroy_node(self):
        os.kill(os.getpid(), signal.SIGINT)  # launch's own SIGINT, while this node shuts down
        super().destroy_node()
        print('destroyed', flush=True)

def interrupted(node):
    raise KeyboardInterrupt

entry.rclpy.spin = interrupted
code = entry.run_node(lambda: Node2('twice_probe'), 'twice_probe', args=[])
os.kill(os.getpid(), signal.SIGINT)  # and a late one, after rclpy has shut down
raise SystemExit(code)
"""
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == 'destroyed\n' and 'Traceback' not in proc.stderr, proc.stderr


class _Logger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def error(self, text: str) -> None:
        self.lines.append(('error', text))

    def warning(self, text: str) -> None:
        self.lines.append(('warning', text))


def test_shutdown_stages_all_run_and_a_slow_shutdown_names_each_stages_time() -> None:
    ran = []
    log = _Logger()

    def broken() -> None:
        ran.append('b')
        raise OSError('socket gone')

    took = entry.shutdown_in_stages(log, [('a', lambda: ran.append('a')), ('b', broken),
                                          ('c', lambda: ran.append('c'))], slow_s=-1.0)
    assert ran == ['a', 'b', 'c'] and list(took) == ['a', 'b', 'c']
    assert log.lines[0] == ('error', 'shutdown: b failed: OSError: socket gone')
    level, text = log.lines[1]
    assert level == 'warning' and re.fullmatch(
        r'shutdown took \d+\.\d s: a \d+\.\d s, b \d+\.\d s, c \d+\.\d s', text), text
    quiet = _Logger()
    entry.shutdown_in_stages(quiet, [('a', lambda: None)])
    assert quiet.lines == []  # a quick shutdown says nothing
