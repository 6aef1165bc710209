# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""QoS profiles used across the graph (REP-2003 conventions)."""

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

# Camera frames and Steps: best effort, newest only. A slow consumer never builds a backlog of
# stale frames; a reliable camera publisher still matches.
LATEST_FRAME = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                          reliability=ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.VOLATILE)

# Steps as published by camera_node: reliable so that both best-effort (edge, cloud bridge) and
# reliable (context fusion, which wants every frame for motion compensation) subscribers match.
STEP_PUBLISHER = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                            reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.VOLATILE)

# Every frame, in order, with a short queue: context fusion's frame ring.
EVERY_FRAME = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)

# Answers, cloud responses, context updates: reliable, a short queue.
RESULTS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)

# Questions: reliable and volatile, so both plain and transient-local publishers match.
QUESTION = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)

# "Current value" topics: late joiners get the latest one.
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
