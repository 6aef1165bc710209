# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
An asyncio event loop on its own worker thread, fed coroutines from other threads.

For code whose callers are not async (a ROS executor callback, an HTTP handler thread) but whose
slow work is (HTTP requests): the caller submits a coroutine and gets a concurrent future back at
once, so it never waits on the network.

Rules:

1. ``start()`` creates the loop and its daemon thread once; a second call does nothing.
2. ``submit(coro)`` may be called from any thread while started; it returns a
   ``concurrent.futures.Future`` of the coroutine's result. Before start or after stop it
   raises RuntimeError and closes the coroutine (it would never run).
3. ``pending`` counts submitted coroutines that have not finished, for a gauge.
4. ``stop()`` cancels what still runs and waits for it, then awaits ``close()`` on the loop if
   given (e.g. an HTTP client's ``aclose``), stops the loop and joins the thread, each within
   ``timeout_s``; it is best effort (stopping must not fail) and idempotent, and a LoopThread that
   never started stops as a no-op. The loop is closed once its thread has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
import concurrent.futures
import threading
from typing import Any

# How long stop() waits for the cancelled work plus close(), and then for the thread, s.
STOP_TIMEOUT_S = 5.0


class LoopThread:
    """An asyncio event loop running on a daemon thread; see the module docstring."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pending = 0

    @property
    def running(self) -> bool:
        """Started and not stopped: submit() accepts work."""
        return self._loop is not None

    @property
    def pending(self) -> int:
        """Submitted coroutines not finished yet."""
        return self._pending

    def start(self) -> LoopThread:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._run, args=(self._loop,),
                                                name=self.name, daemon=True)
                self._thread.start()
        return self

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        with self._lock:
            if self._loop is None:
                coro.close()
                raise RuntimeError(f'{self.name}: the event loop is not running')
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
            self._pending += 1
        future.add_done_callback(self._done)
        return future

    def stop(self, close: Callable[[], Awaitable[None]] | None = None,
             timeout_s: float = STOP_TIMEOUT_S) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None  # from here on submit() refuses
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._wind_down(close), loop).result(timeout_s)
        except Exception:  # noqa: BLE001 - closing on shutdown is best effort
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=timeout_s)
        if not thread.is_alive():
            loop.close()

    # ---------------------------------------------------------------------------- internals

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def _done(self, _future: concurrent.futures.Future) -> None:
        with self._lock:
            self._pending -= 1

    @staticmethod
    async def _wind_down(close: Callable[[], Awaitable[None]] | None) -> None:
        """Cancel every other task on the loop, wait for them, then run `close`."""
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current]
        for t in others:
            t.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if close is not None:
            await close()
