# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The demo's monitor, its end on Ctrl-C, and what it does when a node dies.

The monitor judges answers by their frame's truth; Ctrl-C ends the demo with a summary; a node that
dies comes back and the summary counts it; a node that cannot come back ends the demo, saying why.
"""

import json
import os
from pathlib import Path
import queue
import signal
import subprocess
import sys
import threading
import time

from edgevlm_msgs.msg import Answer
from edgevlm_ros.core.records import Truth
from edgevlm_ros.ros.conversions import ns_to_stamp, truth_to_msg
from edgevlm_ros.tooling import launch_runner
import pytest

pytestmark = pytest.mark.ros

WHERE = 'Where is the red circle? (a) left (b) centre (c) right (d) not visible'
CHOICES = ('left', 'centre', 'right', 'not visible')


@pytest.fixture
def monitor(ros_context):
    from edgevlm_ros.tooling.demo import DemoMonitor

    node = DemoMonitor('', quiet=True, context=ros_context)
    try:
        yield node
    finally:
        node.destroy_node()


def _truth(stamp_ns: int, answer: str) -> Truth:
    return Truth(stamp_ns=stamp_ns, episode='ep000', question_id='where/red-circle',
                 question=WHERE, answer=answer, choices=CHOICES)


def _answer(stamp_ns: int, text: str, source: int = Answer.SOURCE_EDGE) -> Answer:
    msg = Answer(step_id=stamp_ns, question=WHERE, answer=text, source=source)
    msg.header.stamp = ns_to_stamp(stamp_ns)
    return msg


def test_without_ground_truth_the_summary_has_no_accuracy_line(monitor):
    monitor._on_answer(_answer(1, 'a red circle'))
    assert monitor.accuracy() == ''
    assert 'accuracy' not in monitor.summary(1.0, 'edgevlm')


def test_answers_are_judged_by_the_truth_of_their_own_frame(monitor):
    monitor._on_truth(truth_to_msg(_truth(10, 'left')))
    monitor._on_truth(truth_to_msg(_truth(20, 'right')))  # the object moved since frame 10
    monitor._on_answer(_answer(10, '(a) left'))  # right for its frame, stale now
    monitor._on_answer(_answer(20, 'left'))      # wrong for its frame
    monitor._on_answer(_answer(20, 'c', Answer.SOURCE_CLOUD))
    monitor._on_answer(_answer(5, 'left'))       # a frame the monitor never saw
    assert monitor.judged == {'edge': [1, 2], 'cloud': [1, 1]}
    assert monitor.accuracy() == ('67 % of 3 answers (edge 1/2, cloud 1/1, '
                                  '1 not judged: truth of their frame unknown)')
    row = monitor.summary(1.0, 'edgevlm').splitlines()[-1]
    assert row.split() == ['accuracy', 'vs', 'ground', 'truth', *monitor.accuracy().split()]
    assert monitor._judge(_answer(10, 'left')).startswith(' | right, truth "left", now "right"')


def test_summary_shows_the_history_cache_hit_rate_the_edge_reports(monitor):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    assert 'not reported' in monitor.history_cache()
    status = DiagnosticStatus(name='edgevlm/edge_svlm', values=[
        KeyValue(key='history_cache_calls', value='40'),
        KeyValue(key='history_cache_hits', value='31'),
        KeyValue(key='history_cache_token_hit_rate', value='0.625')])
    monitor._on_diag(DiagnosticArray(status=[status]))
    assert monitor.history_cache() == '62 % of prompt tokens from the cache (31 of 40 steps ' \
        'reused it)'
    row = next(r for r in monitor.summary(1.0, 'edgevlm').splitlines()
               if r.startswith('edge history KV cache'))
    assert row.endswith(monitor.history_cache())


def test_summary_counts_steps_over_every_life_of_a_restarted_camera(monitor):
    # A respawned camera counts its steps from 0 again; the summary showed only its last life.
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    def beat(pid: str, steps: int) -> None:
        monitor._on_diag(DiagnosticArray(status=[DiagnosticStatus(
            name='/camera', values=[KeyValue(key='pid', value=pid),
                                    KeyValue(key='steps_published', value=str(steps))])]))

    beat('100', 40)
    beat('100', 41)   # the newest beat of a life counts, not their sum
    beat('200', 3)    # the camera came back
    beat('200', 36)
    assert monitor.counter('camera', 'steps_published') == 77
    row = next(r for r in monitor.summary(1.0, 'edgevlm').splitlines()
               if r.startswith('steps published'))
    assert row.split()[-1] == '77'


class Demo:
    """`edgevlm_demo` in a subprocess, its output read line by line with deadlines."""

    def __init__(self, tmp_path: Path, *launch_args: str, pythonpath: list[str] = ()) -> None:
        script = tmp_path / 'edge.json'
        script.write_text(json.dumps({'answer': 'left', 'delay_ms': 20}))
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join([*pythonpath, env.get('PYTHONPATH', '')])
        # The edge is the scripted double so that the graph answers at once.
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'edgevlm_ros.tooling.demo', '--log-dir',
             str(tmp_path / 'logs'), f'edge_model:=scripted:{script}', *launch_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._q.put(line.rstrip('\n'))
        self._q.put(None)

    def until(self, predicate, timeout_s: float) -> str | None:
        """The first line from now on for which predicate holds (None: timeout or exit)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                line = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                return None
            self.lines.append(line)
            if predicate(line):
                return line
        return None

    def finish(self, timeout_s: float = 60) -> str:
        """Wait for the exit; all output read so far and the rest."""
        self.proc.wait(timeout_s)
        self.until(lambda _: False, 5)
        return '\n'.join(self.lines)

    def child(self, executable: str) -> int:
        """The pid of the demo's node process running executable."""
        return launch_runner.child_pid(self.proc.pid, executable)

    def close(self) -> None:
        """
        Stop the demo as Ctrl-C does, so that it stops its nodes.

        They run in sessions of their own: killing the demo alone would leave them running.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _answer_line(line: str) -> bool:
    return line.startswith(('edge ', 'cloud '))  # answers; 'CLOUD ' lines are cloud responses


def _summary_row(out: str, key: str) -> str:
    summary = out[out.index('== edgevlm_ros demo summary =='):].splitlines()
    return next(r for r in summary if r.startswith(key + ' '))[len(key):].strip()


def test_ctrl_c_ends_the_demo_with_its_summary_even_where_real_launch_is_installed(tmp_path):
    # README: without DURATION the demo runs until Ctrl-C, then prints the summary. On a machine
    # with a sourced ROS install `import launch, launch_ros` works: the demo must still run (the
    # stand-in is private to the launch file). Empty packages stand in for the real ones here.
    real = tmp_path / 'ros'
    for pkg in ('launch', 'launch_ros'):
        (real / pkg).mkdir(parents=True)
        (real / pkg / '__init__.py').write_text('')
    demo = Demo(tmp_path, pythonpath=[str(real)])
    try:
        assert demo.until(_answer_line, 120), '\n'.join(demo.lines[-30:])
        demo.proc.send_signal(signal.SIGINT)
        out = demo.finish()
    finally:
        demo.close()
    assert demo.proc.returncode == 0, out[-2000:]
    assert 'Traceback' not in out
    assert int(_summary_row(out, 'answers').split()[0]) >= 1
    assert _summary_row(out, 'restarts') == 'none'


def test_a_node_killed_mid_run_comes_back_and_the_summary_counts_its_restart(tmp_path):
    demo = Demo(tmp_path, 'respawn_delay:=0.5')
    try:
        assert demo.until(_answer_line, 120), '\n'.join(demo.lines[-30:])
        pid = demo.child('edge_svlm_node')
        os.kill(pid, signal.SIGKILL)
        death = demo.until(lambda x: x.startswith('[launch] edge_svlm '), 10)
        assert death == (f'[launch] edge_svlm killed by SIGKILL [pid {pid}]; respawning in '
                         '0.5 s (retry 1 of 5)')
        back = demo.until(lambda x: x.startswith('[launch] edge_svlm '), 10)
        assert back.startswith('[launch] edge_svlm restarted [pid ') and '(retry 1 of 5)' in back
        # The demo kept running and the new edge answers.
        assert demo.until(lambda x: x.startswith('edge '), 60), '\n'.join(demo.lines[-30:])
        demo.proc.send_signal(signal.SIGINT)
        out = demo.finish()
    finally:
        demo.close()
    assert demo.proc.returncode == 0, out[-2000:]
    assert _summary_row(out, 'restarts') == 'edge_svlm 1'
    # The death and the restart, nothing else (a shutdown that hung says so, and is not one).
    assert sum(line.startswith('[launch] ') and 'SIGALRM' not in line
               for line in out.splitlines()) == 2


def test_a_node_that_refuses_its_configuration_ends_the_demo_and_says_why(tmp_path):
    # A bad configuration is respawned like any exit (launch's meaning); respawn_max_retries
    # ends the loop, every death line says "bad configuration" with the node's error, and the
    # demo exits 1 naming the node.
    demo = Demo(tmp_path, f'edge_model:=scripted:{tmp_path}/missing.json',
                'respawn_max_retries:=1', 'respawn_delay:=0')
    try:
        out = demo.finish(120)
    finally:
        demo.close()
    assert demo.proc.returncode == 1, out[-3000:]
    deaths = [x for x in out.splitlines() if x.startswith('[launch] edge_svlm exited 2')]
    assert len(deaths) == 2, out[-3000:]
    for x in deaths:
        assert x.startswith('[launch] edge_svlm exited 2 (bad configuration) [pid ')
        assert f"]: cannot load edge model 'scripted:{tmp_path}/missing.json'" in x
    assert deaths[-1].endswith('not respawned: all 1 retries used')
    assert 'restarts' in out and _summary_row(out, 'restarts') == 'edge_svlm 1'
    assert 'node ended for good: edge_svlm exited 2 (bad configuration)' in out
