# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The asyncio loop on a worker thread (cloud.loop_thread): submit, count, stop cleanly."""

import asyncio
import threading

from edgevlm_ros.cloud.loop_thread import LoopThread
import pytest


@pytest.fixture
def loop_thread():
    lt = LoopThread('test_loop').start()
    try:
        yield lt
    finally:
        lt.stop(timeout_s=2.0)


def test_a_submitted_coroutine_runs_on_the_worker_thread_and_returns_its_result(loop_thread):
    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert loop_thread.submit(where()).result(2.0) == 'test_loop'


def test_pending_counts_coroutines_until_they_finish(loop_thread):
    gate = threading.Event()

    async def wait_for_gate() -> None:
        while not gate.is_set():
            await asyncio.sleep(0.001)

    futures = [loop_thread.submit(wait_for_gate()) for _ in range(3)]
    assert loop_thread.pending == 3
    gate.set()
    for f in futures:
        f.result(2.0)
    assert loop_thread.pending == 0


def test_an_exception_reaches_the_future(loop_thread):
    async def boom() -> None:
        raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):
        loop_thread.submit(boom()).result(2.0)
    assert loop_thread.pending == 0


def test_stop_cancels_running_work_then_closes_and_ends_the_thread():
    lt = LoopThread('test_stop').start()
    closed = []

    async def forever() -> None:
        await asyncio.sleep(3600)

    async def close() -> None:
        closed.append(True)

    future = lt.submit(forever())
    lt.stop(close=close, timeout_s=2.0)
    assert future.cancelled() and closed == [True] and lt.pending == 0
    assert not lt.running
    assert not any(t.name == 'test_stop' for t in threading.enumerate())


def test_submit_before_start_or_after_stop_refuses_and_closes_the_coroutine():
    lt = LoopThread('test_refuse')

    async def nothing() -> None:
        pass

    coro = nothing()
    with pytest.raises(RuntimeError, match='not running'):
        lt.submit(coro)
    assert coro.cr_frame is None  # closed: no 'never awaited' warning
    lt.start()
    lt.stop()
    with pytest.raises(RuntimeError, match='not running'):
        lt.submit(nothing())


def test_stop_is_idempotent_and_a_never_started_loop_stops_as_a_no_op():
    LoopThread('never').stop()
    lt = LoopThread('twice').start()
    lt.stop()
    lt.stop()
    assert not lt.running


def test_start_twice_keeps_one_thread(loop_thread):
    loop_thread.start()
    assert sum(t.name == 'test_loop' for t in threading.enumerate()) == 1
