# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""run_node: a shutdown racing the executor is a clean exit; any other error is not."""

from edgevlm_ros.ros import entry
import pytest
import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node

pytestmark = pytest.mark.ros


def _spin_raising(shutdown_first: bool):
    def spin(node) -> None:
        if shutdown_first:  # what the SIGINT handler does, between two executor iterations
            rclpy.shutdown()
        raise RCLError('failed to initialize wait set: the given context is not valid')
    return spin


def test_a_sigint_that_invalidates_the_context_mid_spin_exits_0(monkeypatch) -> None:
    monkeypatch.setattr(entry.rclpy, 'spin', _spin_raising(shutdown_first=True))
    assert entry.run_node(lambda: Node('entry_probe'), 'entry_probe', args=[]) == 0
    assert not rclpy.ok()


def test_an_rcl_error_while_the_context_is_up_is_not_swallowed(monkeypatch) -> None:
    monkeypatch.setattr(entry.rclpy, 'spin', _spin_raising(shutdown_first=False))
    with pytest.raises(RCLError):
        entry.run_node(lambda: Node('entry_probe'), 'entry_probe', args=[])
    assert not rclpy.ok()  # still shut down on the way out
