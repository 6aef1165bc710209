# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""ros.diagnostics: a heartbeat that a stuck executor cannot stop, and that says stalled."""

import json
import os
import signal
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from edgevlm_msgs.msg import Step
from edgevlm_ros.core.stats import Counters
from edgevlm_ros.ros import diagnostics as diag
import pytest

pytestmark = pytest.mark.ros

PERIOD_S = 0.1
STALL_AFTER_S = 0.6
LOADER = 'edge_svlm_loading'


def _statuses(arrays: list, name: str) -> list:
    """Every status of the node `name` (its fully qualified name ends so) heard so far."""
    return [s for a in list(arrays) for s in a.status if s.name.endswith('/' + name)]


def _newest(arrays: list, name: str) -> str:
    """The state word of the newest status of `name`, '' before the first one."""
    heard = _statuses(arrays, name)
    return heard[-1].message if heard else ''


def _stamped(arrays: list, name: str) -> list[tuple[object, float]]:
    """(status, its array's header stamp in s) of every status of `name` heard so far."""
    return [(s, a.header.stamp.sec + a.header.stamp.nanosec * 1e-9) for a in list(arrays)
            for s in a.status if s.name.endswith('/' + name)]


def _values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


class _Watched:
    """A node with a reporter, spun on a thread of its own; `block()` makes its executor hang."""

    def __init__(self, ctx) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.node = Node('watched', context=ctx)
        self.counters = Counters()
        self.reporter = diag.StatusReporter(self.node, self.counters, period_s=PERIOD_S,
                                            stall_after_s=STALL_AFTER_S,
                                            gauges=lambda: {'answer': 42})
        self.release = threading.Event()
        self._hang = threading.Event()
        self.node.create_timer(0.02, self._maybe_hang)
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _maybe_hang(self) -> None:
        if self._hang.is_set():
            self._hang.clear()
            self.release.wait(30.0)  # a deadlock, as far as the executor can tell

    def block(self) -> None:
        self.release.clear()
        self._hang.set()

    def close(self) -> None:
        self.release.set()
        self.reporter.destroy()
        self.executor.shutdown()
        self._thread.join(5.0)
        self.node.destroy_node()


@pytest.fixture
def watched(ros_context, probe):
    arrays = probe.listen(DiagnosticArray, '/diagnostics', 10)
    w = _Watched(ros_context)
    try:
        yield w, probe, arrays
    finally:
        w.close()


def test_states_map_to_diagnostic_levels():
    assert diag.LEVELS == {
        'starting': DiagnosticStatus.OK, 'loading': DiagnosticStatus.OK,
        'active': DiagnosticStatus.OK, 'degraded': DiagnosticStatus.WARN,
        'stalled': DiagnosticStatus.ERROR}
    assert set(diag.STATES) == set(diag.LEVELS)


def test_a_node_cannot_declare_itself_stalled_or_invent_a_state(ros_context):
    from rclpy.node import Node

    node = Node('liar', context=ros_context)
    reporter = diag.StatusReporter(node, Counters(), period_s=PERIOD_S)
    try:
        for state in ('stalled', 'running', ''):
            with pytest.raises(ValueError, match='state must be one of'):
                reporter.set_state(state)
        assert reporter.state == 'starting'
    finally:
        reporter.destroy()
        node.destroy_node()


def test_status_carries_state_level_and_the_old_keys(watched):
    w, probe, arrays = watched
    w.counters.inc('frames_received', 3)
    w.reporter.set_state('degraded', 'cloud open')
    assert probe.until(lambda: any(s.message == 'degraded'
                                   for s in _statuses(arrays, 'watched')), 10)
    status = [s for s in _statuses(arrays, 'watched') if s.message == 'degraded'][-1]
    values = _values(status)
    assert status.level == DiagnosticStatus.WARN and status.name == '/watched'
    assert values['state'] == 'degraded' and values['state_detail'] == 'cloud open'
    assert values['frames_received'] == '3' and values['answer'] == '42'
    assert float(values['executor_age_s']) < STALL_AFTER_S

    w.reporter.set_state('active')
    assert probe.until(lambda: _newest(arrays, 'watched') == 'active', 10)
    status = _statuses(arrays, 'watched')[-1]
    assert status.level == DiagnosticStatus.OK and _values(status)['state_detail'] == ''


def test_a_blocked_executor_keeps_the_heartbeat_and_turns_stalled(watched):
    w, probe, arrays = watched
    w.reporter.set_state('active')
    assert probe.until(lambda: any(s.message == 'active'
                                   for s in _statuses(arrays, 'watched')), 10)
    w.block()
    assert probe.until(lambda: _newest(arrays, 'watched') == 'stalled', 10)
    stalled = _statuses(arrays, 'watched')[-1]
    assert stalled.level == DiagnosticStatus.ERROR
    assert float(_values(stalled)['executor_age_s']) >= STALL_AFTER_S
    assert 'executor silent' in _values(stalled)['state_detail']
    # Still a heartbeat: more statuses keep coming while the executor hangs.
    heard = len(_statuses(arrays, 'watched'))
    assert probe.until(lambda: len(_statuses(arrays, 'watched')) >= heard + 3, 10)
    assert _newest(arrays, 'watched') == 'stalled'

    w.release.set()  # the executor runs again: so does the node
    assert probe.until(lambda: _newest(arrays, 'watched') == 'active', 10)


def test_loading_on_the_executor_is_not_stalled(watched):
    w, probe, arrays = watched
    w.reporter.set_state('loading', 'a long model load')
    w.block()  # the load holds the executor, as the edge node's on_configure does

    def loaded_past_the_stall_limit() -> bool:
        return any(float(_values(s)['executor_age_s']) > 2 * STALL_AFTER_S
                   for s in _statuses(arrays, 'watched'))

    assert probe.until(loaded_past_the_stall_limit, 10)
    during = [s for s in _statuses(arrays, 'watched')]
    assert {s.message for s in during} <= {'starting', 'loading'}
    assert all(s.level == DiagnosticStatus.OK for s in during)

    # The load ends on the executor and the node goes active: that counts as a tick at once,
    # before the executor's own tick timer gets its turn.
    w.reporter.set_state('active')
    assert w.reporter.state == 'active'
    w.release.set()
    heard = len(_statuses(arrays, 'watched'))
    assert probe.until(lambda: len(_statuses(arrays, 'watched')) >= heard + 3, 10)
    assert all(s.message == 'active' for s in _statuses(arrays, 'watched')[heard:])


def test_a_broken_gauge_does_not_stop_the_heartbeat(watched):
    w, probe, arrays = watched
    w.reporter.gauges = lambda: {'half': 1 / 0}
    assert probe.until(lambda: any('gauges_error' in _values(s)
                                   for s in _statuses(arrays, 'watched')), 10)
    assert _values(_statuses(arrays, 'watched')[-1])['state'] in diag.STATES


def test_destroying_the_node_ends_the_heartbeat_thread(ros_context):
    from rclpy.node import Node

    node = Node('short_lived', context=ros_context)
    reporter = diag.StatusReporter(node, Counters(), period_s=PERIOD_S)
    node.destroy_node()  # without reporter.destroy(), as a node with no destroy_node override
    reporter._thread.join(5.0)
    assert not reporter._thread.is_alive()


def _edge_statuses(arrays) -> list:
    return _statuses(arrays, 'edge_svlm')


def test_a_stopped_edge_process_goes_silent_and_speaks_again_when_continued(
        graph, probe, tmp_path):
    script = tmp_path / 'script.json'
    script.write_text(json.dumps({'answer': 'yes'}))
    arrays = probe.listen(DiagnosticArray, '/diagnostics', 10)
    graph.node('edge_svlm_node', 'edge_svlm', {'model': f'scripted:{script}'})
    assert probe.until(lambda: any(s.message == 'active' for s in _edge_statuses(arrays)), 60), (
        graph.log('edge_svlm'))
    active = [s for s in _edge_statuses(arrays) if s.message == 'active'][-1]
    assert active.level == DiagnosticStatus.OK and active.name == '/edge_svlm'
    assert _values(active)['state'] == 'active' and 'executor_age_s' in _values(active)

    def stamped_between(t0: float, t1: float) -> list:
        return [s for s, at in _stamped(arrays, 'edge_svlm') if t0 < at < t1]

    pid = graph.popen('edge_svlm').pid
    stopped_at = time.time()
    os.killpg(pid, signal.SIGSTOP)
    try:
        # Silence for more than two periods: nothing stamped while the process is stopped (by
        # stamp, not by arrival: a status sent just before the stop may still be on its way).
        probe.until(lambda: stamped_between(stopped_at, time.time()), 2.5 * diag.PERIOD_S)
        continued_at = time.time()
        assert not stamped_between(stopped_at, continued_at), 'a stopped process published'
    finally:
        os.killpg(pid, signal.SIGCONT)
    assert probe.until(lambda: stamped_between(continued_at, float('inf')), 3 * diag.PERIOD_S)
    assert probe.until(lambda: _newest(arrays, 'edge_svlm') == 'active', 10)


def test_the_edge_node_says_loading_through_a_long_model_load_then_active(
        ros_context, probe, monkeypatch, tmp_path):
    from edgevlm_ros.backends import registry
    from edgevlm_ros.edge_svlm_node import EdgeSvlmNode
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    script = tmp_path / 'script.json'
    script.write_text(json.dumps({'answer': 'yes'}))
    loaded = threading.Event()
    load_svlm = registry.load_svlm

    def slow_load(spec, **kwargs):
        loaded.wait(30.0)  # calibrating an int8 model, say: minutes, on the executor thread
        return load_svlm(spec, **kwargs)

    monkeypatch.setattr(registry, 'load_svlm', slow_load)
    arrays = probe.listen(DiagnosticArray, '/diagnostics', 10)
    # A name of its own: this process's lifecycle services must not look like a later test's
    # edge_svlm process to that test's clients.
    node = EdgeSvlmNode(context=ros_context, cli_args=['--ros-args', '-r', f'__node:={LOADER}'],
                        parameter_overrides=[Parameter('model', value=f'scripted:{script}')])
    node._status.stall_after_s = STALL_AFTER_S
    node._status.period_s = PERIOD_S
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        def loading_past_the_stall_limit() -> bool:
            return any(s.message == 'loading'
                       and float(_values(s)['executor_age_s']) > 2 * STALL_AFTER_S
                       for s in _statuses(arrays, LOADER))

        assert probe.until(loading_past_the_stall_limit, 20)
        assert not any(s.message == 'stalled' for s in _statuses(arrays, LOADER))
        loaded.set()
        assert probe.until(lambda: _newest(arrays, LOADER) == 'active', 20)
        assert not any(s.message == 'stalled' for s in _statuses(arrays, LOADER))

        node._step_failed(Step(step_id=5), RuntimeError('out of memory'))
        assert node._status.state == 'degraded'
        assert probe.until(lambda: _newest(arrays, LOADER) == 'degraded', 10)
        assert 'out of memory' in _values(_statuses(arrays, LOADER)[-1])['state_detail']
    finally:
        loaded.set()
        executor.shutdown()
        spinner.join(5.0)
        node.destroy_node()
