# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The cloud health state machine (cloud.health): one change per state, never one per frame."""

from edgevlm_ros.cloud.health import RECOVER_AFTER, CloudHealth, HealthChange
from edgevlm_ros.cloud.openai_client import CloudResult
from edgevlm_ros.cloud.resilience import Transition
import pytest

OK = CloudResult(status='ok', answer='a cup', model='m', attempts=1, round_trip_ms=50.0)
BAD = CloudResult(status='http_error', error='HTTP 500: boom', fault='server_error', attempts=1)


def observe(health: CloudHealth, result: CloudResult, breaker: str = 'closed',
            step_id: int = 7) -> HealthChange | None:
    return health.observe(result, step_id, breaker, failure_threshold=5)


def changes(health: CloudHealth, results: list[CloudResult]) -> list[tuple[str, str]]:
    out = [observe(health, r) for r in results]
    return [(c.old, c.new) for c in out if c is not None]


def test_first_answer_is_one_change_to_ok_with_model_round_trip_and_step():
    health = CloudHealth()
    change = observe(health, OK, step_id=3)
    assert (change.old, change.new, health.state) == ('unknown', 'ok', 'ok')
    assert str(change) == 'cloud unknown -> ok: answering (model m, 50 ms, step 3)'
    assert not change.is_warning
    assert observe(health, OK) is None  # same state: nothing to log


def test_a_failure_while_closed_is_failing_with_the_error_and_the_threshold():
    health = CloudHealth()
    change = observe(health, BAD, step_id=4)
    assert (change.old, change.new) == ('unknown', 'failing') and change.is_warning
    assert change.detail == 'HTTP 500: boom (step 4; 5 failures in a row open the circuit)'
    assert observe(health, BAD) is None


def test_a_cloud_failing_every_other_request_is_one_change_not_one_per_frame():
    health = CloudHealth()
    assert changes(health, [OK] + [BAD, OK] * 10) == [('unknown', 'ok'), ('ok', 'failing')]
    assert health.state == 'failing'


def test_leaving_failing_takes_recover_after_answers_in_a_row():
    health = CloudHealth()
    observe(health, BAD)
    assert changes(health, [OK] * (RECOVER_AFTER - 1)) == []
    assert changes(health, [OK]) == [('failing', 'ok')]


def test_a_failure_restarts_the_count_of_answers_in_a_row():
    health = CloudHealth(recover_after=2)
    assert changes(health, [BAD, OK, BAD, OK]) == [('unknown', 'failing')]
    assert changes(health, [OK]) == [('failing', 'ok')]


def test_outcomes_while_the_breaker_is_not_closed_change_nothing_but_count_answers():
    health = CloudHealth()
    observe(health, BAD)
    for breaker in ('open', 'half_open'):
        assert observe(health, BAD, breaker) is None
        assert observe(health, OK, breaker) is None
    assert health.state == 'failing' and health.ok_streak == 1
    observe(health, OK, 'open')
    assert observe(health, OK).new == 'ok'  # the third answer in a row


def test_breaker_transitions_set_open_probing_and_ok():
    health = CloudHealth()
    observe(health, BAD)
    opened = health.observe_breaker(Transition('closed', 'open', '5 failures in a row', 2.0),
                                    'HTTP 503: busy')
    assert (opened.old, opened.new) == ('failing', 'open') and opened.is_warning
    assert opened.detail == ('5 failures in a row, last error: HTTP 503: busy; '
                             'sending nothing for 2 s')
    probing = health.observe_breaker(Transition('open', 'half_open', 'cool-down over', 0.0),
                                     '')
    assert probing.new == 'probing' and not probing.is_warning
    assert probing.detail == 'cool-down over, sending one probe request'
    closed = health.observe_breaker(Transition('half_open', 'closed', 'request succeeded', 0.0),
                                    '')
    assert (closed.old, closed.new, closed.detail) == ('probing', 'ok',
                                                       'probe answered, circuit closed')
    # The probe's own answer, reported after the breaker closed, is no second line.
    assert observe(health, OK) is None


def test_a_failed_probe_reopening_the_breaker_is_one_line_per_cool_down():
    health = CloudHealth()
    lines = [health.observe_breaker(Transition(old, new, 'r', 1.0), 'e') for old, new in
             [('closed', 'open'), ('open', 'half_open'), ('half_open', 'open'),
              ('open', 'half_open'), ('half_open', 'closed')]]
    assert [c.new for c in lines] == ['open', 'probing', 'open', 'probing', 'ok']


@pytest.mark.parametrize('recover_after', [0, -1, 1.5, True])
def test_recover_after_must_be_a_positive_int(recover_after):
    with pytest.raises(ValueError, match='recover_after'):
        CloudHealth(recover_after)
