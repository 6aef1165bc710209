# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Periodic node status on /diagnostics: the node's state and every counter and gauge it keeps.

The status is also the node's heartbeat: a thread of its own publishes it every ``period_s``,
so neither the node's executor nor its model thread can hold it back. A supervisor reads it as
follows (docs/robustness.md):

1. One ``DiagnosticStatus`` per node, named after the node's fully qualified name, on
   ``/diagnostics`` every ``period_s`` (1 s) from the moment the reporter exists.
2. ``message`` and the key ``state`` are the node's state, one of ``STATES``; ``level`` is
   ``LEVELS[state]``: starting, loading and active are OK, degraded is WARN, stalled is ERROR.
   ``state_detail`` says why, in words (empty when there is nothing to say).
3. A timer on the node's own executor stamps "executor alive" every ``tick_s``;
   ``executor_age_s`` is the time since that stamp. When it exceeds ``stall_after_s`` the state
   published is ``stalled``, whatever the node set, unless the node set ``loading``: a long model
   load runs on the executor thread on purpose, and the node says so before it starts. Leaving
   ``loading`` counts as an executor tick (the load ran on the executor).
4. No status at all for longer than a supervisor's ``watchdog_s`` means the whole process is
   stuck (SIGSTOP, a thread that holds the GIL): nothing in the process can speak for it then.

Besides the node's own values, each status says how many endpoints every one of the node's topics
has matched (``matched_publishers:<topic>`` for a subscription, ``matched_subscribers:<topic>``
for a publisher). The graph can list a node before its readers and writers are matched, and
messages sent in between are lost: these keys tell a supervisor (the replay evaluation, a launch
check) when a link really carries data.
"""

from collections.abc import Callable
import os
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from edgevlm_ros.core.stats import Counters

STARTING, LOADING, ACTIVE, DEGRADED, STALLED = STATES = (
    'starting', 'loading', 'active', 'degraded', 'stalled')
LEVELS = {STARTING: DiagnosticStatus.OK, LOADING: DiagnosticStatus.OK,
          ACTIVE: DiagnosticStatus.OK, DEGRADED: DiagnosticStatus.WARN,
          STALLED: DiagnosticStatus.ERROR}
# A node sets these; 'stalled' is the reporter's own verdict (rule 3).
SETTABLE = (STARTING, LOADING, ACTIVE, DEGRADED)
PERIOD_S = 1.0
# An executor silent this long is stuck: three missed periods, well below a supervisor's
# watchdog_s (5 s), so that the ERROR is on the wire before the supervisor gives up on silence.
STALL_AFTER_S = 3.0


class StatusReporter:
    """Publishes one DiagnosticStatus named after the node: state, counters, gauges, matches.

    ``gauges`` is called on the heartbeat thread: it must only read (snapshots), never wait.
    A node whose gauges read what its constructor has not made yet sets ``gauges`` later.
    """

    def __init__(self, node: Node, counters: Counters, period_s: float = PERIOD_S,
                 gauges: Callable[[], dict[str, object]] | None = None, *,
                 stall_after_s: float = STALL_AFTER_S, tick_s: float | None = None) -> None:
        if not 0.0 < period_s or not 0.0 < stall_after_s:
            raise ValueError(f'period_s and stall_after_s must be > 0, got {period_s}, '
                             f'{stall_after_s}')
        self._node = node
        self._counters = counters
        self.gauges = gauges
        self.period_s = period_s
        self.stall_after_s = stall_after_s
        self._lock = threading.Lock()
        self._state, self._detail = STARTING, ''
        self._tick_at = time.monotonic()  # the executor has until stall_after_s to show up
        self._pub = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # Steady time, not the node's clock: a simulated clock that is paused (a replay before
        # its first frame) must neither silence the node nor make it look stalled.
        self._tick_timer = node.create_timer(
            tick_s if tick_s is not None else min(period_s, stall_after_s / 3.0), self._tick,
            clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f'{node.get_name()}_heartbeat',
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the node's side
    def set_state(self, state: str, detail: str = '') -> None:
        """Set the node's state (any thread); 'stalled' is not the node's to set."""
        if state not in SETTABLE:
            raise ValueError(f'state must be one of {", ".join(SETTABLE)}, got {state!r}')
        with self._lock:
            if self._state == LOADING and state != LOADING:
                self._tick_at = time.monotonic()  # the load ran on the executor (rule 3)
            self._state, self._detail = state, detail

    @property
    def state(self) -> str:
        """The state as the next heartbeat will publish it (rule 3 applied)."""
        return self.snapshot()[0]

    def snapshot(self) -> tuple[str, str, float]:
        """(state, detail, executor_age_s) as published now."""
        with self._lock:
            state, detail, age = self._state, self._detail, time.monotonic() - self._tick_at
        if state != LOADING and age > self.stall_after_s:
            return STALLED, f'executor silent for {age:.1f} s (was {state})', age
        return state, detail, age

    def _tick(self) -> None:
        with self._lock:
            self._tick_at = time.monotonic()

    # ------------------------------------------------------------------ the heartbeat
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._node.context.ok():
                return
            try:
                self.publish()
            except Exception as e:  # noqa: BLE001 - the heartbeat outlives any one bad status
                if (self._stop.is_set() or not self._node.context.ok()
                        or self._pub not in list(self._node.publishers)):
                    return  # the node was destroyed under us (destroy_node without destroy)
                self._node.get_logger().error(f'status not published: {e!r}',
                                              throttle_duration_sec=30.0)
            self._stop.wait(self.period_s)

    def publish(self) -> None:
        """Publish the status now (the heartbeat thread calls this every period)."""
        state, detail, age = self.snapshot()
        values = {k: str(v) for k, v in self._counters.as_dict().items()}
        if self.gauges is not None:
            try:
                values.update({k: str(v) for k, v in self.gauges().items()})
            except Exception as e:  # noqa: BLE001 - a broken gauge must not stop the heartbeat
                values['gauges_error'] = repr(e)
        values.update(matched_endpoints(self._node))
        # pid: a supervisor tells this life's heartbeats from a late one of a process it killed.
        values.update(state=state, state_detail=detail, executor_age_s=f'{age:.2f}',
                      pid=str(os.getpid()))
        status = DiagnosticStatus(
            level=LEVELS[state], name=self._node.get_fully_qualified_name(),
            message=state, hardware_id='edgevlm_ros',
            values=[KeyValue(key=k, value=v) for k, v in sorted(values.items())])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(msg)

    def destroy(self) -> None:
        """Stop the heartbeat thread, then remove its timer and publisher (once)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=self.period_s + 1.0)
        self._tick_timer.cancel()
        self._node.destroy_timer(self._tick_timer)
        self._node.destroy_publisher(self._pub)


# Topics every node has; their matching says nothing about the node's own data flow.
_INFRASTRUCTURE = ('/diagnostics', '/rosout', '/parameter_events', '/clock')


def matched_endpoints(node: Node) -> dict[str, str]:
    """``matched_publishers:<topic>`` / ``matched_subscribers:<topic>`` for the node's topics.

    Topics are named relative to the node's namespace, as the node's code names them. Safe to
    call from another thread than the node's executor (the heartbeat does).
    """
    prefix = node.get_namespace().rstrip('/') + '/'
    values = {}
    for kind, endpoints, count in (
            ('matched_publishers', list(node.subscriptions), 'get_publisher_count'),
            ('matched_subscribers', list(node.publishers), 'get_subscription_count')):
        for endpoint in endpoints:
            try:
                topic = endpoint.topic_name
                matched = getattr(endpoint, count)()
            except Exception:  # noqa: BLE001 - destroyed by the executor thread meanwhile
                continue
            if topic in _INFRASTRUCTURE:
                continue
            name = topic[len(prefix):] if topic.startswith(prefix) else topic
            values[f'{kind}:{name}'] = str(matched)
    return values
