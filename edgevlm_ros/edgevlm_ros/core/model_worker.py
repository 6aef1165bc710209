# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The one thread that runs the edge model, so that no executor callback ever waits for it.

Two kinds of work reach it:

1. Steps, through a one-deep slot: a step offered while another one waits replaces it (the newer
   frame wins; `offer` says so, and the caller counts the skip). Steps are never queued.
2. One-off requests (an Ask), through a bounded queue: `submit` returns a future at once, or
   raises `WorkerBusy` when `max_requests` are already waiting. A request runs between two steps.
   Which goes first is the `policy`:
   - 'asks_first': every waiting request before the waiting step: a robot that asks is waiting
     for that answer, while the step stream only ever needs its newest step (and a burst of asks
     holds it up for as long as the burst takes);
   - 'alternate': one request, then the waiting step if there is one, then the next request: the
     step stream keeps answering during a burst, each ask waits one step longer.
   A request cancelled while it waits (its future's `cancel`) never runs.

A step that raises is reported to `on_error` and the thread goes on; a request's exception goes
into its future. `stop` cancels the requests still waiting. ROS-free and torch-free.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
import threading
from typing import Any, Generic, TypeVar

T = TypeVar('T')

# One-off requests waiting at once: each costs a model call of its own (hundreds of ms on the
# real-size model), so a deeper queue would only add latency for the caller at its end.
MAX_REQUESTS = 4


POLICIES = ('asks_first', 'alternate')


class WorkerBusy(RuntimeError):
    """Raised by `submit` when the request queue is full."""


class ModelWorker(Generic[T]):
    """Runs `handle(step)` for the newest step and submitted requests, one at a time."""

    def __init__(self, handle: Callable[[T], None],
                 on_error: Callable[[T, Exception], None], *,
                 max_requests: int = MAX_REQUESTS, policy: str = 'asks_first',
                 name: str = 'model_worker') -> None:
        self._handle = handle
        self._on_error = on_error
        self.max_requests = max_requests
        self.policy = policy
        self._name = name
        self._last_was_request = False
        self._cond = threading.Condition()
        self._step: T | None = None
        self._requests: deque[tuple[Callable[[], Any], Future]] = deque()
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the work in hand; waiting requests are cancelled, the waiting step lost."""
        with self._cond:
            self._running = False
            self._step = None
            waiting, self._requests = list(self._requests), deque()
            self._cond.notify_all()
        for _fn, future in waiting:
            future.cancel()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout_s)

    @property
    def running(self) -> bool:
        return self._running

    @property
    def max_requests(self) -> int:
        """Requests that may wait at once; a new bound applies to the next `submit`."""
        return self._max_requests

    @max_requests.setter
    def max_requests(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'max_requests must be an int >= 1, got {value!r}')
        self._max_requests = value

    @property
    def policy(self) -> str:
        """Which goes first between a waiting request and a waiting step (module docs)."""
        return self._policy

    @policy.setter
    def policy(self, value: str) -> None:
        if value not in POLICIES:
            raise ValueError(f'policy must be one of {", ".join(POLICIES)}, got {value!r}')
        self._policy = value

    @property
    def waiting_requests(self) -> int:
        with self._cond:
            return len(self._requests)

    def offer(self, step: T) -> bool:
        """Make `step` the next step; True when it replaced one that was still waiting."""
        with self._cond:
            replaced = self._step is not None
            self._step = step
            self._cond.notify_all()
        return replaced

    def submit(self, fn: Callable[[], Any]) -> Future:
        """Run `fn` on the model thread between two steps; its result arrives in the future."""
        future: Future = Future()
        with self._cond:
            if not self._running:
                raise WorkerBusy('the edge model is not running')
            if len(self._requests) >= self._max_requests:
                raise WorkerBusy(f'{self._max_requests} requests are already waiting')
            self._requests.append((fn, future))
            self._cond.notify_all()
        return future

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._running and self._step is None and not self._requests:
                    self._cond.wait()
                if not self._running:
                    return
                step_first = self._step is not None and self._policy == 'alternate' \
                    and self._last_was_request
                if self._requests and not step_first:
                    request, step = self._requests.popleft(), None
                else:
                    request, step, self._step = None, self._step, None
                self._last_was_request = request is not None
            if request is not None:
                fn, future = request
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except Exception as e:  # noqa: BLE001 - the caller gets it
                        future.set_exception(e)
                continue
            try:
                self._handle(step)
            except Exception as e:  # noqa: BLE001 - one bad step must not stop the worker
                self._on_error(step, e)
