# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""What the bridge publishes and counts for one request's result (cloud.outcomes), without ROS."""

from edgevlm_ros.cloud.health import STATES
from edgevlm_ros.cloud.openai_client import CloudResult
from edgevlm_ros.cloud.outcomes import CLOUD_DOWN, bridge_error, drop_error, outcome


def test_an_answer_counts_its_response_attempts_retries_bytes_and_boxes_in_order():
    result = CloudResult(status='ok', answer='a cup', model='m', attempts=3, round_trip_ms=40.0,
                         request_bytes=1200, response_bytes=300, structured=True, boxes_found=3,
                         drop_reasons={'outside': 1, 'invalid': 1})
    out = outcome(result)
    assert (out.status, out.error, out.drop_reason) == ('ok', '', '')
    assert out.counts == (('responses_ok', 1), ('attempts', 3), ('retries', 2),
                          ('bytes_sent', 1200), ('bytes_received', 300), ('boxes_found', 3),
                          ('boxes_dropped_outside', 1), ('boxes_dropped_invalid', 1))


def test_an_unstructured_reply_with_unreadable_boxes_is_counted_as_such():
    out = outcome(CloudResult(status='ok', attempts=1, unparsed_boxes=True))
    names = [name for name, _ in out.counts]
    assert 'replies_unstructured' in names and names[-1] == 'replies_unparsed_boxes'


def test_zero_counts_are_kept_so_the_counter_exists():
    out = outcome(CloudResult(status='timeout', error='timed out', fault='timeout'))
    assert ('attempts', 0) in out.counts and ('retries', 0) in out.counts
    assert ('bytes_sent', 0) in out.counts


def test_a_failure_counts_its_fault_or_other_and_keeps_its_error():
    out = outcome(CloudResult(status='http_error', error='HTTP 500: boom', fault='server_error',
                              attempts=1))
    assert (out.status, out.error) == ('http_error', 'HTTP 500: boom')
    assert out.counts[0] == ('responses_http_error', 1)
    assert out.counts[-1] == ('failures_server_error', 1)
    assert not any(name.startswith('boxes') for name, _ in out.counts)
    assert outcome(CloudResult(status='parse_error')).counts[-1] == ('failures_other', 1)


def test_a_result_the_client_dropped_is_a_drop_with_its_reason_and_no_counts():
    out = outcome(CloudResult(status='dropped', fault='max_age', error='not sent: too old'))
    assert (out.status, out.drop_reason, out.error, out.counts) == (
        'dropped', 'max_age', 'not sent: too old', ())
    assert outcome(CloudResult(status='dropped')).drop_reason == 'client'


def test_a_step_not_sent_says_why_and_when_an_open_circuit_probes_next():
    assert drop_error('interval') == 'not sent: interval'
    assert drop_error('circuit_open', 1.26) == 'not sent: circuit open, next probe in 1.3 s'
    assert drop_error('circuit_open', 1.26, 'the client said so') == 'the client said so'


def test_a_failure_inside_the_bridge_is_an_http_error_naming_the_exception():
    result = bridge_error(KeyError('x'), 'm')
    assert (result.status, result.model, result.fault) == ('http_error', 'm', '')
    assert result.error == "bridge error: KeyError: 'x'"


def test_the_bridge_is_degraded_while_the_cloud_fails_is_open_or_probes():
    assert CLOUD_DOWN == {'failing', 'open', 'probing'} and CLOUD_DOWN <= set(STATES)
