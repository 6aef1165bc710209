# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Services and action servers on their own executor threads, for callbacks that wait."""

from collections.abc import Callable
import threading
import traceback
from typing import Any

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from edgevlm_ros.core.stats import Counters


class Desk:
    """
    A companion node (`<node>_<suffix>`) whose executor threads serve slow requests.

    A service or action callback that waits for slow work (a model call on the node's worker
    thread, a cloud stream) blocks one of this desk's threads; the node's own executor goes on
    with subscriptions, parameters and diagnostics. Each action goal runs on a thread of its
    own, so that cancel requests and new goals are taken while goals run: `threads` bounds the
    goals and requests running at once (one more thread takes cancels and goal requests).

    Why blocking callbacks, not async ones: rclpy's executor re-runs a pending task on every
    turn, busy-polling while it waits for a future. A callback blocked on a threading primitive
    costs nothing. Nodes of one context share one DDS participant, so the companion costs threads,
    not a participant.

    A service callback that raises is logged with its traceback and counted (`desk_errors` in
    `counters`), and the caller gets the default response (for edgevlm/ask: success false); the
    desk goes on serving. (rclpy re-raises a callback's exception in the thread that spins the
    executor, at its next request: unhandled, that ended the spin and left every service here
    silent.) An action goal's exception is rclpy's ActionServer's: it aborts the goal and logs.
    Anything else that escapes the executor is logged and counted the same way, and the desk
    spins again (at most every ERROR_PAUSE_S).
    """

    ERROR_PAUSE_S = 0.5

    def __init__(self, node: Node, suffix: str, threads: int = 2,
                 counters: Counters | None = None) -> None:
        name = f'{node.get_name()}_{suffix}'
        # A launch file names its node with a global `__node:=` rule, which would rename this
        # node too (two nodes of one name; rosout warns). A local rule wins over a global one;
        # topic and namespace rules still apply.
        self._node = rclpy.create_node(name, namespace=node.get_namespace(), context=node.context,
                                       cli_args=['--ros-args', '-r', f'__node:={name}'],
                                       start_parameter_services=False)
        self._counters = counters
        self._closing = threading.Event()
        self._group = ReentrantCallbackGroup()
        self._servers: list[ActionServer] = []
        self._executor = MultiThreadedExecutor(num_threads=threads + 1, context=node.context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, name=f'{node.get_name()}_{suffix}',
                                        daemon=True)
        self._thread.start()

    @property
    def node(self) -> Node:
        return self._node

    def add_service(self, srv_type: Any, name: str, callback: Callable) -> None:
        def serve(request: Any, response: Any) -> Any:
            try:
                return callback(request, response)
            except Exception:  # noqa: BLE001 - the caller gets an answer, the desk goes on
                self._failed(f'{name}: a request failed')
                return response

        self._node.create_service(srv_type, name, serve, callback_group=self._group)

    def add_action(self, action_type: Any, name: str,
                   execute: Callable[[ServerGoalHandle], Any],
                   on_cancel: Callable[[ServerGoalHandle], None] | None = None) -> ActionServer:
        """
        An action server whose goals are all accepted and run `execute` on a desk thread.

        Goals are checked in `execute`, which aborts a bad one at once with the reason in its
        result (nav2's error_code / error_msg convention): a rejection in the goal response
        could carry no reason. Cancel requests are always accepted; `on_cancel` hears of them at
        once (to stop a model at its next token), and `execute` sees them on
        `goal_handle.is_cancel_requested` and ends the goal.
        """
        def cancel(handle: ServerGoalHandle) -> CancelResponse:
            if on_cancel is not None:
                on_cancel(handle)
            return CancelResponse.ACCEPT

        server = ActionServer(
            self._node, action_type, name, execute_callback=execute,
            goal_callback=lambda _goal: GoalResponse.ACCEPT, cancel_callback=cancel,
            callback_group=self._group)
        self._servers.append(server)
        return server

    def end(self, handle: ServerGoalHandle, state: str) -> None:
        """
        End a goal 'succeeded', 'canceled' or 'aborted'; nothing once the node is shutting down.

        'canceled' needs a cancel request (the action protocol's rule): without one it is
        'aborted'. After shutdown the goal's status could not be published any more.
        """
        if not self._node.context.ok():
            return
        if state == 'canceled' and handle.is_cancel_requested:
            handle.canceled()
        elif state == 'succeeded':
            handle.succeed()
        else:
            handle.abort()

    def clients_listening(self, action_name: str) -> int:
        """Action clients subscribed to `action_name`'s feedback (0: every client is gone)."""
        topic = self._node.resolve_topic_name(action_name) + '/_action/feedback'
        return self._node.count_subscribers(topic)

    def _spin(self) -> None:
        while self._node.context.ok() and not self._closing.is_set():
            try:
                self._executor.spin()
                return  # the executor was shut down (close)
            except Exception:  # noqa: BLE001 - nothing may end the desk but close()
                if self._closing.is_set() or not self._node.context.ok():
                    return  # closing, or the context went down under it
                self._failed('the desk executor failed')
                self._closing.wait(self.ERROR_PAUSE_S)  # a fault that repeats must not spin hot

    def _failed(self, what: str) -> None:
        if self._counters is not None:
            self._counters.inc('desk_errors')
        self._node.get_logger().error(f'{what}:\n{traceback.format_exc()}')

    def close(self, timeout_s: float = 5.0) -> None:
        self._closing.set()  # what fails from here on is the shutdown's
        for server in self._servers:
            server.destroy()
        self._servers = []
        self._executor.shutdown(timeout_sec=timeout_s)
        self._thread.join(timeout=timeout_s)
        self._node.destroy_node()
