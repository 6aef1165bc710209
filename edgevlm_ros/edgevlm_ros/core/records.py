# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
What an evaluation run recorded, as plain data: the shapes scoring and reports work on.

ROS-free: eval.bags turns the recorded messages (GroundTruth, Answer, CloudResponse,
ContextUpdate) into these records and back. All times are integer nanoseconds of the graph's
clock (the ROS clock of the replay: simulated time when the replay runs at a speed-up), so a
stamp and a receive time can be compared directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgevlm_ros.core.regions import Box

CLOUD_STATUSES = ('ok', 'timeout', 'http_error', 'parse_error', 'dropped')


@dataclass(frozen=True)
class Truth:
    """Ground truth at one camera frame: the question asked then and its true answer."""

    stamp_ns: int
    episode: str
    question_id: str
    question: str
    answer: str
    accepted: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()  # multiple choice: the options, in order (a), (b), ...
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True)
class Sample:
    """One frame of an evaluation dataset with the question asked then and its true answer."""

    t_s: float  # seconds from the start of the dataset
    rgb: np.ndarray  # H x W x 3 uint8
    episode: str
    question_id: str
    question: str
    answer: str
    accepted: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True)
class AnswerRecord:
    """One Answer the graph published (edgevlm/answer)."""

    stamp_ns: int  # camera stamp of the step it answers
    step_id: int
    question: str
    answer: str
    source: str  # 'edge' or 'cloud'
    latency_ms: float  # camera stamp -> publish, as the edge node measured it
    received_ns: int  # when the evaluator received it
    model_ms: float = 0.0
    history_turns: int = 0
    replaced_turns: int = 0
    newest_cloud_step: int = -1
    focus_applied: bool = False
    focus_source_step: int = 0
    focus_age_s: float = 0.0
    reason: str = ''  # edgevlm_arbitrated: why this source answered

    @property
    def published_ns(self) -> int:
        """When the answer was published, on the graph's clock."""
        return self.stamp_ns + round(self.latency_ms * 1e6)


@dataclass(frozen=True)
class CloudRecord:
    """One CloudResponse (edgevlm/cloud_response): every step gets exactly one."""

    stamp_ns: int
    step_id: int
    question: str
    status: str  # one of CLOUD_STATUSES
    received_ns: int
    answer: str = ''
    round_trip_ms: float = 0.0
    error: str = ''
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True)
class UpdateRecord:
    """One ContextUpdate (edgevlm/context_update): cloud text replacing the edge's slot."""

    step_id: int
    text: str
    received_ns: int
    age_s: float = 0.0


@dataclass
class RunRecord:
    """Everything one replay of one strategy produced."""

    strategy: str
    network_profile: str
    truths: list[Truth] = field(default_factory=list)
    answers: list[AnswerRecord] = field(default_factory=list)
    clouds: list[CloudRecord] = field(default_factory=list)
    updates: list[UpdateRecord] = field(default_factory=list)
    # Final /diagnostics values per node name suffix ('camera', 'edge_svlm', 'cloud_bridge',
    # 'context_fusion'): {key: value as published (text)}.
    counters: dict[str, dict[str, str]] = field(default_factory=dict)
    # Free-form facts about the run (bag, speed, seed, models, wall time, ...), JSON-able.
    meta: dict[str, object] = field(default_factory=dict)
