# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The one entry-point shape every node uses: init, spin, clean shutdown on Ctrl-C or SIGTERM."""

from collections.abc import Callable, Sequence
import faulthandler
import signal
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

# A node still shutting down after SHUTDOWN_STACKS_S prints every thread's stack to stderr (its
# log), and SHUTDOWN_DEADLINE_S (whole seconds) after the start of its shutdown ends itself by
# SIGALRM (exit status -14): before the SIGKILL that ros2 launch sends 10 s after its SIGINT
# (sigterm_timeout 5 s, then sigkill_timeout 5 s; rclpy takes the SIGTERM as one more shutdown
# request) and the stand-in's SIGTERM at 10 s. Both run outside Python: Fast DDS can hang for good
# while deleting an entity (eProsima/Fast-DDS#6193), holding the GIL, so no Python thread runs.
SHUTDOWN_STACKS_S = 8.0
SHUTDOWN_DEADLINE_S = 9
# A shutdown slower than this logs one line with each stage's time.
SLOW_SHUTDOWN_S = 1.0


def run_node(factory: Callable[[], Node], name: str, args=None, *, threads: int = 0) -> int:
    """
    Create the node and spin it; threads > 0 uses a multi-threaded executor.

    A node that cannot start on its configuration (an invalid parameter, a missing file) logs one
    clear line and exits with code 2 instead of a traceback.

    This is a process's main (call it on the main thread): once its shutdown has begun, further
    SIGINTs are ignored, and a shutdown still under way after SHUTDOWN_STACKS_S dumps every
    thread's stack to stderr, then ends the process by SIGALRM (SHUTDOWN_DEADLINE_S), until the
    process is gone.
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
        _arm_shutdown_deadline()
        if executor is not None:
            executor.shutdown()
        try:
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()
        finally:
            # rclpy puts Python's handler back, and a late second SIGINT would raise at exit.
            _ignore_sigint()
    return 0


def _arm_shutdown_deadline() -> None:
    # A Ctrl-C in a terminal reaches `ros2 launch` and every node of its process group, and launch
    # then sends each node a SIGINT of its own: that second one raised KeyboardInterrupt in the
    # middle of destroying the node (exit 1 with a traceback, or SIGABRT from inside rclpy's C++).
    # The shutdown is under way and bounded: further SIGINTs are ignored.
    _ignore_sigint()
    faulthandler.dump_traceback_later(SHUTDOWN_STACKS_S)
    # Not disarmed at exit: the DDS participant goes when the interpreter finalizes rclpy's
    # context, after atexit; an alarm still pending dies with the process.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the kernel ends the process, no GIL
    signal.alarm(SHUTDOWN_DEADLINE_S)


def _ignore_sigint() -> None:
    if threading.current_thread() is threading.main_thread():  # signal.signal's own rule
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def shutdown_in_stages(logger, stages: Sequence[tuple[str, Callable[[], object]]],
                       slow_s: float = SLOW_SHUTDOWN_S) -> dict[str, float]:
    """
    Run a node's shutdown stages in order; each stage's time, s.

    A stage that raises is logged and the next ones still run (stopping must not fail). When the
    whole took longer than slow_s, one line names each stage's time, so that a slow shutdown
    says which part it was. (A stuck one says it with run_node's stack dump.)
    """
    took: dict[str, float] = {}
    for name, stage in stages:
        t0 = time.monotonic()
        try:
            stage()
        except Exception as e:  # noqa: BLE001 - the other stages must still run
            logger.error(f'shutdown: {name} failed: {type(e).__name__}: {e}')
        took[name] = time.monotonic() - t0
    if sum(took.values()) > slow_s:
        logger.warning(f'shutdown took {sum(took.values()):.1f} s: ' + ', '.join(
            f'{name} {s:.1f} s' for name, s in took.items()))
    return took
