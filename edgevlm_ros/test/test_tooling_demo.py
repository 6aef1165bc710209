# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The demo: the monitor judges answers by their frame's truth; Ctrl-C ends it with a summary."""

import json
import signal
import subprocess
import sys

from edgevlm_msgs.msg import Answer
from edgevlm_ros.core.records import Truth
from edgevlm_ros.ros.conversions import ns_to_stamp, truth_to_msg
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


def test_ctrl_c_ends_the_demo_with_its_summary(tmp_path) -> None:
    # README: without DURATION the demo runs until Ctrl-C, then prints the summary. The edge is
    # the scripted double so that the graph answers at once.
    script = tmp_path / 'edge.json'
    script.write_text(json.dumps({'answer': 'left', 'delay_ms': 20}))
    proc = subprocess.Popen([sys.executable, '-m', 'edgevlm_ros.tooling.demo', '--log-dir',
                             str(tmp_path / 'logs'), f'edge_model:=scripted:{script}'],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        answered = False
        for line in proc.stdout:  # pytest's timeout ends a graph that never answers
            if line.startswith(('edge ', 'cloud ', 'CLOUD ')):
                answered = True
                break
        assert answered, 'the demo exited before any answer'
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest[-2000:]
    assert 'Traceback' not in rest
    summary = rest[rest.index('== edgevlm_ros demo summary =='):].splitlines()
    answers = next(r for r in summary if r.startswith('answers '))
    assert int(answers.split()[1]) >= 1
