# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The one entry-point shape every node uses: init, spin, clean shutdown on Ctrl-C or SIGTERM."""

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def run_node(factory: Callable[[], Node], name: str, args=None, *, threads: int = 0) -> int:
    """
    Create the node and spin it; threads > 0 uses a multi-threaded executor.

    A node that cannot start on its configuration (an invalid parameter, a missing file) logs one
    clear line and exits with code 2 instead of a traceback.
    """
    rclpy.init(args=args)
    node = None
    executor = None
    try:
        try:
            node = factory()
        except (ValueError, OSError) as e:
            rclpy.logging.get_logger(name).fatal(f'cannot start: {e}')
            return 2
        if threads > 0:
            executor = MultiThreadedExecutor(num_threads=threads)
            executor.add_node(node)
            executor.spin()
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # Ctrl-C's handler can shut the context down while the executor builds its wait set:
        # rclpy then raises RCLError ("context is not valid"), not ExternalShutdownException.
        if rclpy.ok():
            raise
    finally:
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
