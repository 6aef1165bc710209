# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The bridge's clock (cloud.clock): monotonic time, or a simulated clock, without ROS."""

import asyncio
import time

from edgevlm_ros.cloud.clock import BridgeClock
import pytest


def test_without_a_simulated_clock_it_is_monotonic_time_and_asyncio_sleep():
    clock = BridgeClock()
    assert not clock.simulated
    assert clock.now is time.monotonic and clock.sleep is asyncio.sleep


def test_a_simulated_sleep_waits_until_the_simulated_clock_has_moved_on():
    sim = [100.0]
    polls = []

    def now() -> float:
        polls.append(sim[0])
        sim[0] += 0.4  # the replay runs simulated time fast
        return sim[0]

    clock = BridgeClock(now, poll_s=0.001)
    assert clock.simulated and clock.now is now
    start = time.monotonic()
    asyncio.run(clock.sleep(1.0))
    assert sim[0] >= 101.0 and time.monotonic() - start < 0.5
    assert len(polls) == 4  # one sets the end (100.4 + 1.0), then 100.8, 101.2, 101.6


def test_a_paused_simulated_clock_keeps_the_sleep_waiting():
    clock = BridgeClock(lambda: 5.0, poll_s=0.001)

    async def sleep_briefly() -> bool:
        try:
            await asyncio.wait_for(clock.sleep(0.5), timeout=0.05)
        except TimeoutError:
            return False
        return True

    assert asyncio.run(sleep_briefly()) is False


def test_a_poll_period_that_is_not_positive_is_refused():
    with pytest.raises(ValueError, match='poll_s'):
        BridgeClock(lambda: 0.0, poll_s=0.0)
