# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The bridge's decisions under one lock (cloud.dispatch): what goes, what is dropped, why."""

import threading

from edgevlm_ros.cloud.dispatch import CloudDispatch, Drop, Job
from edgevlm_ros.cloud.openai_client import CloudResult
from edgevlm_ros.cloud.resilience import CircuitBreaker, Transition
from edgevlm_ros.core.selection import CloudSelector
import numpy as np
import pytest
from test_cloud_bridge_config import config

FRAME = np.zeros((8, 8, 3), np.uint8)
OK = CloudResult(status='ok', answer='a cup', model='m', attempts=1, round_trip_ms=200.0)
BAD = CloudResult(status='http_error', error='HTTP 500: boom', fault='server_error', attempts=1)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(clock: FakeClock | None = None, transitions: list | None = None,
         **selection) -> CloudDispatch:
    selection = {'max_in_flight': 1, 'max_age_s': 3.0, **selection}
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=2.0, clock=clock or FakeClock())
    dispatch = CloudDispatch(CloudSelector(**selection), breaker)
    if transitions is not None:
        def on_transition(t: Transition) -> None:
            transitions.append(dispatch.on_breaker(t))
        breaker.on_transition = on_transition
    return dispatch


def test_a_free_slot_sends_the_step_as_a_job_with_its_arrival_time():
    dispatch = make()
    orders = dispatch.offer(1.5, 'step 1', FRAME)
    assert orders.dropped == [] and len(orders.send) == 1
    job = orders.send[0]
    assert (job.step, job.offered_s) == ('step 1', 1.5) and job.rgb is FRAME
    assert dispatch.deadline_s(job) == 4.5  # max_age_s after it arrived


def test_a_waiting_step_is_superseded_by_a_newer_one_and_says_so():
    dispatch = make()
    dispatch.offer(0.0, 'step 1', FRAME)
    assert dispatch.offer(0.1, 'step 2', FRAME).dropped == []  # waits for the slot
    dropped = dispatch.offer(0.2, 'step 3', FRAME).dropped
    assert [(d.job.step, d.reason, d.error) for d in dropped] == [
        ('step 2', 'superseded', 'not sent: superseded')]
    assert isinstance(dropped[0], Drop)


def test_a_finished_request_frees_its_slot_for_the_waiting_step():
    dispatch = make()
    dispatch.offer(0.0, 'step 1', FRAME)
    dispatch.offer(0.1, 'step 2', FRAME)
    orders = dispatch.finished(0.3, OK)
    assert [j.step for j in orders.send] == ['step 2'] and orders.dropped == []


def test_a_cancelled_request_frees_its_slot_too():
    dispatch = make()
    dispatch.offer(0.0, 'step 1', FRAME)
    dispatch.finished(0.3, None)
    assert dispatch.gauges(0.0)['in_flight'] == 0


def test_only_an_answer_feeds_the_adaptive_interval():
    dispatch = make()
    dispatch.offer(0.0, 'step 1', FRAME)
    dispatch.finished(0.3, BAD)
    assert dispatch.gauges(0.0)['rtt_ewma_ms'] == 'nan'
    dispatch.offer(1.0, 'step 2', FRAME)
    dispatch.finished(1.2, OK)
    gauges = dispatch.gauges(0.0)
    assert (gauges['rtt_ewma_ms'], gauges['interval_s']) == ('200.0', '0.200')


def test_a_step_waiting_longer_than_max_age_is_dropped_when_expired():
    dispatch = make()
    dispatch.offer(0.0, 'step 1', FRAME)
    dispatch.offer(0.1, 'step 2', FRAME)
    assert dispatch.expire(3.0).dropped == []
    assert [(d.job.step, d.reason) for d in dispatch.expire(3.2).dropped] == [
        ('step 2', 'max_age')]


def test_an_open_circuit_drops_every_step_and_says_when_the_next_probe_goes():
    clock = FakeClock()
    dispatch = make(clock)
    dispatch.breaker.record_failure('boom')
    dispatch.breaker.record_failure('boom')
    clock.t = 0.75
    orders = dispatch.offer(0.75, 'step 1', FRAME)
    assert orders.send == []
    assert [(d.reason, d.error) for d in orders.dropped] == [
        ('circuit_open', 'not sent: circuit open, next probe in 1.2 s')]
    assert dispatch.drop_error('circuit_open', 'given by the client') == 'given by the client'


def test_results_set_the_cloud_state_and_an_answer_its_round_trip():
    dispatch = make()
    change = dispatch.report(OK, step_id=3)
    assert (change.old, change.new) == ('unknown', 'ok') and dispatch.cloud_state == 'ok'
    assert dispatch.report(OK, step_id=4) is None  # same state: nothing to log
    change = dispatch.report(BAD, step_id=5)
    assert change.new == 'failing' and '2 failures in a row' in change.detail
    gauges = dispatch.gauges(0.0)
    assert (gauges['round_trip_p50_ms'], gauges['cloud_state']) == ('200.0', 'failing')


def test_a_result_the_client_dropped_changes_no_state_and_no_round_trip():
    dispatch = make()
    assert dispatch.report(CloudResult(status='dropped', fault='max_age'), 1) is None
    assert dispatch.cloud_state == 'unknown'
    assert dispatch.gauges(0.0)['round_trip_p50_ms'] == 'nan'


def test_breaker_transitions_reach_the_cloud_state_with_its_last_error():
    transitions: list = []
    dispatch = make(transitions=transitions)
    dispatch.breaker.record_failure('HTTP 503')
    dispatch.breaker.record_failure('HTTP 503')
    assert [(c.old, c.new) for c in transitions] == [('unknown', 'open')]
    assert 'last error: HTTP 503' in transitions[0].detail
    gauges = dispatch.gauges(0.0)
    assert (gauges['breaker_state'], gauges['next_probe_in_s']) == ('open', '2.00')


def test_the_gauges_are_the_cloud_side_of_the_status():
    assert set(make().gauges(0.0)) == {
        'cloud_state', 'breaker_state', 'next_probe_in_s', 'in_flight', 'pending', 'interval_s',
        'quiet_limit_s', 'busy_refusals', 'rtt_ewma_ms', 'round_trip_p50_ms',
        'round_trip_p95_ms'}


def test_changed_parameters_reach_the_selector_and_the_breaker_only_when_theirs():
    dispatch = make()
    c = config(max_in_flight=2, **{'breaker.cooldown_s': 5.0})
    dispatch.configure(c, {'retry.backoff_s'})
    assert dispatch.breaker.cooldown_s == 2.0
    dispatch.offer(0.0, 'step 1', FRAME)
    assert dispatch.offer(0.1, 'step 2', FRAME).send == []  # one in flight at most
    dispatch.configure(c, {'max_in_flight', 'breaker.cooldown_s'})
    assert dispatch.breaker.cooldown_s == 5.0
    dispatch.finished(0.2, BAD)  # the waiting step goes; a second slot is free now
    assert [j.step for j in dispatch.offer(0.3, 'step 3', FRAME).send] == ['step 3']


def test_a_transition_during_a_decision_on_another_thread_does_not_deadlock():
    # The HTTP thread reports a failure (the breaker opens and calls back into the dispatch)
    # while the executor offers steps: one lock, always taken before the breaker's.
    dispatch = make(transitions=[])
    stop = threading.Event()

    def offer_steps() -> None:
        t = 0.0
        while not stop.is_set():
            t += 0.001
            for job in dispatch.offer(t, 'step', FRAME).send:
                dispatch.finished(t, None)
                assert isinstance(job, Job)

    worker = threading.Thread(target=offer_steps)
    worker.start()
    try:
        for _ in range(200):
            dispatch.breaker.record_failure('boom')
            dispatch.breaker.record_success()
    finally:
        stop.set()
        worker.join(timeout=5.0)
    assert not worker.is_alive()


@pytest.mark.parametrize('reason', ['interval', 'no_change', 'strategy'])
def test_other_reasons_are_named_in_the_error(reason):
    assert make().drop_error(reason) == f'not sent: {reason}'
