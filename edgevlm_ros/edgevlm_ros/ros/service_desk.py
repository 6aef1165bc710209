# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""A service served on its own executor thread, for callbacks that wait for a worker."""

from collections.abc import Callable
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class ServiceDesk:
    """
    One service on a companion node (`<node>_<suffix>`) spun by its own executor thread.

    A service callback that waits for slow work (a model call on the node's worker thread)
    blocks only this thread; the node's own executor goes on with subscriptions, parameters and
    diagnostics. An async callback would not do: rclpy's executor re-runs a pending task on
    every turn, busy-polling while it waits. Nodes of one context share one DDS participant, so
    the companion costs a thread, not a participant.
    """

    def __init__(self, node: Node, srv_type, name: str, callback: Callable, suffix: str) -> None:
        self._node = rclpy.create_node(f'{node.get_name()}_{suffix}',
                                       namespace=node.get_namespace(), context=node.context,
                                       start_parameter_services=False)
        self._node.create_service(srv_type, name, callback)
        self._executor = SingleThreadedExecutor(context=node.context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, name=f'{node.get_name()}_{suffix}',
                                        daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - the context went down under it (shutdown)
            pass

    def close(self, timeout_s: float = 5.0) -> None:
        self._executor.shutdown(timeout_sec=timeout_s)
        self._thread.join(timeout=timeout_s)
        self._node.destroy_node()
