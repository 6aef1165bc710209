# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""core.model_worker: the newest step wins, requests run between steps, a full queue refuses."""

from concurrent.futures import CancelledError
import threading

from edgevlm_ros.core.model_worker import ModelWorker, WorkerBusy
import pytest


class _Steps:
    """A handler that holds its first step until released, and records every step it ran."""

    def __init__(self) -> None:
        self.handled: list = []
        self.busy = threading.Event()      # set once the first step is in hand
        self.release = threading.Event()
        self.done = threading.Condition()

    def __call__(self, step) -> None:
        self.busy.set()
        self.release.wait(5)
        with self.done:
            self.handled.append(step)
            self.done.notify_all()

    def wait_for(self, n: int) -> bool:
        with self.done:
            return self.done.wait_for(lambda: len(self.handled) >= n, 5)


def _worker(steps: _Steps, **kwargs) -> ModelWorker:
    w = ModelWorker(steps, lambda step, e: steps.handled.append(('error', step, str(e))),
                    **kwargs)
    w.start()
    w.offer('busy')
    assert steps.busy.wait(5)  # the model is in the middle of a step from here on
    return w


def test_a_newer_step_replaces_the_waiting_one_and_says_so():
    steps = _Steps()
    w = _worker(steps)
    try:
        assert w.offer(2) is False
        assert w.offer(3) is True  # 2 was still waiting: skipped
        steps.release.set()
        assert steps.wait_for(2)
        assert steps.handled == ['busy', 3]
    finally:
        w.stop()


def test_requests_run_before_the_waiting_step_and_return_their_result():
    steps = _Steps()
    w = _worker(steps)
    try:
        w.offer('next')
        seen = []
        future = w.submit(lambda: seen.append(list(steps.handled)) or 42)
        steps.release.set()
        assert future.result(5) == 42
        assert seen == [['busy']]  # between the step in hand and the waiting one
        assert steps.wait_for(2) and steps.handled == ['busy', 'next']
    finally:
        w.stop()


def test_a_full_request_queue_refuses_at_once():
    steps = _Steps()
    w = _worker(steps, max_requests=2)
    try:
        futures = [w.submit(lambda: 1), w.submit(lambda: 2)]
        with pytest.raises(WorkerBusy, match='2 requests are already waiting'):
            w.submit(lambda: 3)
        steps.release.set()
        assert [f.result(5) for f in futures] == [1, 2]
        assert w.submit(lambda: 4).result(5) == 4  # room again
    finally:
        w.stop()
    with pytest.raises(WorkerBusy, match='not running'):
        w.submit(lambda: 5)


def test_a_failing_step_is_reported_and_the_worker_goes_on_and_requests_get_their_error():
    handled = []

    def handle(step):
        if step == 'bad':
            raise ValueError('corrupt frame')
        handled.append(step)

    w = ModelWorker(handle, lambda step, e: handled.append(('error', step, str(e))))
    w.start()
    try:
        w.offer('bad')
        w.submit(lambda: None).result(5)
        w.offer('good')
        w.submit(lambda: None).result(5)
        assert handled == [('error', 'bad', 'corrupt frame'), 'good']

        def fails():
            raise RuntimeError('model crashed')

        with pytest.raises(RuntimeError, match='model crashed'):
            w.submit(fails).result(5)
    finally:
        w.stop()


def test_stop_cancels_requests_that_never_ran():
    steps = _Steps()
    w = _worker(steps)
    waiting = w.submit(lambda: 'never')
    stopper = threading.Thread(target=w.stop)
    stopper.start()
    with pytest.raises(CancelledError):
        waiting.result(5)
    steps.release.set()
    stopper.join(5)
    assert not stopper.is_alive() and steps.handled == ['busy']


def test_alternate_runs_the_waiting_step_between_two_requests_and_a_cancelled_one_never():
    steps = _Steps()
    w = _worker(steps, policy='alternate')
    try:
        seen = {}
        first = w.submit(lambda: seen.setdefault('ask1', list(steps.handled)))
        w.offer('step2')
        dropped = w.submit(lambda: seen.setdefault('never', True))
        second = w.submit(lambda: seen.setdefault('ask2', list(steps.handled)))
        assert dropped.cancel()  # still waiting: taken out of the queue
        steps.release.set()
        first.result(5)
        second.result(5)
        # One ask, then the waiting step, then the next ask: the step stream is not held up.
        assert seen == {'ask1': ['busy'], 'ask2': ['busy', 'step2']}
    finally:
        w.stop()
    with pytest.raises(ValueError, match='policy'):
        ModelWorker(lambda s: None, lambda s, e: None, policy='fifo')
