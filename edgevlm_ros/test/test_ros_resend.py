# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""ResendingCall: an idempotent request whose answer was lost goes again, later each time."""

from edgevlm_ros.ros import resend
from rclpy.task import Future


class _Client:
    """The two calls ResendingCall makes on an rclpy Client; keeps every request's future."""

    def __init__(self) -> None:
        self.futures: list[Future] = []
        self.removed: list[Future] = []

    def call_async(self, request) -> Future:
        self.futures.append(Future())
        return self.futures[-1]

    def remove_pending_request(self, future: Future) -> None:
        self.removed.append(future)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_unanswered_request_goes_again_later_each_time_and_the_answer_ends_it(
        monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(resend.time, 'monotonic', clock)
    client = _Client()
    call = resend.ResendingCall(client, 'request', first_wait_s=5.0)
    assert call.sent == 1
    clock.now += 4.9
    assert not call.done() and call.sent == 1
    clock.now += 0.2  # 5.1 s: the first answer is taken as lost
    assert not call.done() and call.sent == 2
    assert client.removed == client.futures[:1]
    clock.now += 9.9  # the next wait is twice as long
    assert not call.done() and call.sent == 2
    clock.now += 0.2
    assert not call.done() and call.sent == 3
    client.futures[-1].set_result('answer')
    assert call.done() and call.result() == 'answer'
    clock.now += 100.0
    assert call.done() and call.sent == 3  # answered: nothing more is sent


def test_a_constant_backoff_resends_at_a_fixed_period_and_cancel_drops_the_last(
        monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(resend.time, 'monotonic', clock)
    client = _Client()
    call = resend.ResendingCall(client, 'request', first_wait_s=2.0, backoff=1.0)
    for sent in (2, 3, 4):
        clock.now += 2.1
        assert not call.done() and call.sent == sent
    call.cancel()
    assert client.removed == client.futures
