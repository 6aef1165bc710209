# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The graph under its own faults: every node killed in turn, the edge stalled once, in one demo.

`edgevlm_demo` runs the whole graph on the synthetic world (the scripted edge double answers at
once, so a restarted edge is back in about a second). Each node's process is SIGKILLed in turn,
then the edge is SIGSTOPped, which only the heartbeat watchdog can notice. After each fault:
only the faulted node restarted; answers resume; and every Step the camera published once the
graph was whole again is answered exactly once. The summary counts each restart. Cross-module
by nature (launch runner, demo, every node), hence the name.
"""

import os
import signal

from diagnostic_msgs.msg import DiagnosticArray
from edgevlm_msgs.msg import Answer, Step
import pytest
from test_tooling_demo import Demo, _summary_row

pytestmark = pytest.mark.ros

FAULTS = (('camera', 'camera_node'), ('edge_svlm', 'edge_svlm_node'),
          ('cloud_bridge', 'cloud_bridge_node'), ('context_fusion', 'context_fusion_node'),
          ('frame_source', 'frame_source_node'))
# After a restart, how long the graph takes to be whole again before its Steps are held to
# "answered exactly once" (DDS discovery of the new process; a few steps at 2 Hz).
SETTLE_S = 3.0


def _restarted(demo: Demo, name: str, timeout_s: float) -> str | None:
    return demo.until(lambda x: x.startswith(f'[launch] {name} restarted'), timeout_s)


def _steps_answered_once(steps: list, answers: list, since_s: float, until_s: float) -> None:
    """Every Step stamped in [since_s, until_s) has exactly one Answer (by id and stamp)."""
    def key(m):
        return (m.step_id, m.header.stamp.sec, m.header.stamp.nanosec)

    def stamp(m):
        return m.header.stamp.sec + m.header.stamp.nanosec * 1e-9

    window = [key(s) for s in steps if since_s <= stamp(s) < until_s]
    got = [key(a) for a in answers]
    assert window, f'no steps published between {since_s:.1f} and {until_s:.1f}'
    missing = [k for k in window if k not in got]
    twice = [k for k in set(window) if got.count(k) > 1]
    assert not missing and not twice, (missing, twice)


def test_every_node_killed_or_stalled_comes_back_and_no_later_step_is_lost(tmp_path, probe):
    from edgevlm_ros.ros.qos import EVERY_FRAME, RESULTS

    steps = probe.listen(Step, 'edgevlm/step', EVERY_FRAME)
    probe.listen(DiagnosticArray, '/diagnostics', 50)
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    demo = Demo(tmp_path, '--watchdog=3', 'respawn_delay:=0.5')

    def now_s() -> float:
        return probe.node.get_clock().now().nanoseconds * 1e-9

    def answers_after(t_s: float) -> bool:
        return any(a.header.stamp.sec + a.header.stamp.nanosec * 1e-9 > t_s for a in answers)

    try:
        assert probe.until(lambda: len(answers) >= 3, 120), '\n'.join(demo.lines[-30:])
        restarted = {name: 0 for name, _ in FAULTS}
        faults = [(name, exe, signal.SIGKILL) for name, exe in FAULTS]
        faults.append(('edge_svlm', 'edge_svlm_node', signal.SIGSTOP))
        for name, exe, sig in faults:
            pid = demo.child(exe)
            t_fault = now_s()
            os.kill(pid, sig)
            line = _restarted(demo, name, 30)
            assert line, '\n'.join(demo.lines[-30:])
            if sig == signal.SIGSTOP:
                assert any(x.startswith(f'[launch] {name} stalled: no heartbeat for ')
                           for x in demo.lines), '\n'.join(demo.lines[-30:])
            restarted[name] += 1
            # Nothing but the faulted node restarted.
            for other, n in restarted.items():
                assert sum(x.startswith(f'[launch] {other} restarted')
                           for x in demo.lines) == n, (other, demo.lines[-30:])
            # Answers resume, and once the graph is whole every Step is answered once.
            assert probe.until(lambda t=t_fault: answers_after(t + SETTLE_S), 60), (
                name, demo.lines[-30:])
            whole = now_s()
            assert probe.until(lambda w=whole: answers_after(w + 2.0), 30)
            probe.until(lambda: False, 0.5)  # the last steps' answers are on their way
            _steps_answered_once(steps, answers, whole, now_s() - 1.0)
            if name == 'camera':
                # Its ids went on from where they were: the edge kept its history.
                assert probe.diagnostics('edge_svlm').get('step_id_resets', '0') == '0'
        demo.proc.send_signal(signal.SIGINT)
        out = demo.finish()
    finally:
        demo.close()
    assert demo.proc.returncode == 0, out[-3000:]
    assert _summary_row(out, 'restarts') == ('frame_source 1, camera 1, edge_svlm 2 (1 stalled), '
                                             'cloud_bridge 1, context_fusion 1')

