# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The cloud bridge's one clock, for selection, round trips and emulated network delays.

ROS-free: the node passes the ROS clock in as a function when it runs on simulated time. Rules:

1. Without a simulated clock, ``now`` is ``time.monotonic`` and ``sleep`` is ``asyncio.sleep``.
2. With one (a replay drives /clock at a speed-up), ``now`` reads it, and ``sleep(s)`` waits until
   it has moved on by ``s``, looking every ``poll_s`` of wall time. A paused clock keeps it
   waiting: the HTTP timeout bounds the wait in wall time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import time

# With a simulated clock, emulated network delays look at it this often (wall s).
SIM_SLEEP_POLL_S = 0.005


class BridgeClock:
    """Monotonic time, or a simulated clock; see the module docstring."""

    def __init__(self, sim_now: Callable[[], float] | None = None,
                 poll_s: float = SIM_SLEEP_POLL_S) -> None:
        if not poll_s > 0:
            raise ValueError(f'poll_s must be > 0, got {poll_s}')
        self.simulated = sim_now is not None
        self.now: Callable[[], float] = sim_now if sim_now is not None else time.monotonic
        self.sleep: Callable[[float], Awaitable[None]] = (
            self._sim_sleep if self.simulated else asyncio.sleep)
        self.poll_s = poll_s

    async def _sim_sleep(self, seconds: float) -> None:
        """Rule 2."""
        end = self.now() + seconds
        while (left := end - self.now()) > 0:
            await asyncio.sleep(min(self.poll_s, left))
