# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Cells of the strategy sweep, and the paired statistics between strategies.

A cell is every strategy replayed on every world under one network and one cloud error rate,
scored at the deadline (core.scoring.timeline).

A cell's steps are the same for every strategy (same worlds, same cloud timeline), so strategies
compare step by step; intervals resample question windows (blocks of steps) whole
(core.stats.bootstrap_ci).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import json
import math
import os
from pathlib import Path

import numpy as np

from edgevlm_ros.core.scoring import timeline
from edgevlm_ros.core.stats import bootstrap_ci
from edgevlm_ros.core.strategy import Strategy
from edgevlm_ros.core.validity import question_kind
from edgevlm_ros.eval.replay_engine import (
    EngineConfig,
    SvlmCache,
    World,
    cloud_answers,
    cloud_timeline,
    focus_masks,
    replay_strategy,
)

ARBITRATED = Strategy.EDGEVLM_ARBITRATED.value
CARRIED = Strategy.EDGEVLM_CARRIED.value
BASELINES = ('edge_only', 'cloud_only', 'cloud_stale', 'offload')
ABLATIONS = ('replacement_only', 'focus_only')


@dataclass
class CellResult:
    """One strategy in one cell (network x error) over all worlds."""

    strategy: str
    network: str
    error: float
    correct: list[int] = field(default_factory=list)     # per scored step, 0/1
    blocks: list[str] = field(default_factory=list)      # per scored step: world/episode/q
    latencies_ms: list[float] = field(default_factory=list)
    cloud_decisions: int = 0
    edge_decisions: int = 0
    kinds: list[str] = field(default_factory=list)       # per scored step: question kind
    # per scored step: what the shown answer was: 'edge', 'cloud' (a cloud answer as it
    # stood), 'carried' (edgevlm_carried carried it) or 'none' (no answer yet)
    shown: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.correct)) if self.correct else math.nan


def network_spec(latency_s: float, fluctuation: float) -> str:
    ms = latency_s * 1000.0
    return f'fixed:{ms:g}' if fluctuation == 0 else f'jitter:{ms:g},{fluctuation * ms:g}'


def cell_name(latency_s: float, fluctuation: float, error: float) -> str:
    return f'{latency_s:g} s' + (f' f{fluctuation:g}' if fluctuation else '') + \
        (f' e{100 * error:g}%' if abs(error - 0.1) > 1e-9 else '')


def run_cell(worlds: Sequence[World], network: str, error: float, strategies: Sequence[str],
             svlm: SvlmCache, cfg: EngineConfig, seed: int = 0,
             progress: Callable[[], None] | None = None) -> dict[str, CellResult]:
    """Every strategy on every world under one network and cloud error rate."""
    results = {s: CellResult(s, network, error) for s in strategies}
    for w_i, world in enumerate(worlds):
        answers = cloud_answers(world, error)
        events = cloud_timeline(world.steps, network, seed + w_i, cfg.overhead_ms,
                                cfg.bridge_max_age_s)
        masks = focus_masks(world.steps, events, answers, cfg) \
            if any(Strategy.parse(s).uses_focus for s in strategies) else []
        for strategy in strategies:
            res = replay_strategy(strategy, world, events, answers, masks, svlm, cfg, network)
            cell = results[strategy]
            shown = {(a.step_id, a.published_ns): answer_shown(a.source, a.reason)
                     for a in res.run.answers}
            for row in timeline(res.run, cfg.deadline_s):
                if row.correct is None:
                    continue
                cell.correct.append(int(row.correct))
                cell.blocks.append(f'{world.label}/{row.episode}/{row.question}')
                cell.kinds.append(question_kind(row.question))
                cell.shown.append(shown.get((row.answer_step_id, row.published_ns), 'none'))
            cell.latencies_ms.extend(a.latency_ms for a in res.run.answers)
            cell.cloud_decisions += sum(1 for _, src, _ in res.decisions if src == 'cloud')
            cell.edge_decisions += sum(1 for _, src, _ in res.decisions if src == 'edge')
            if progress is not None:
                progress()
    return results


def answer_shown(source: str, reason: str) -> str:
    """'edge', 'cloud' or 'carried': what kind of answer an AnswerRecord is."""
    if source != 'cloud':
        return 'edge'
    return 'carried' if ', carried: ' in reason else 'cloud'


def paired_diff_ci(a: CellResult, b: CellResult, reps: int = 1000, seed: int = 0
                   ) -> tuple[float, float, float]:
    """Accuracy of a minus b (same steps), with a 95 % block-bootstrap interval."""
    if a.blocks != b.blocks:
        raise ValueError('paired difference needs the same steps')
    diff = np.asarray(a.correct, float) - np.asarray(b.correct, float)
    lo, hi = bootstrap_ci(list(diff), a.blocks, reps, seed)
    return float(diff.mean()), lo, hi


def save(cells: dict[str, dict[str, CellResult]], path: str | os.PathLike,
         meta: dict) -> None:
    data = {'meta': meta, 'cells': {c: {s: r.__dict__ for s, r in v.items()}
                                    for c, v in cells.items()}}
    Path(path).write_text(json.dumps(data))


def load(path: str | os.PathLike) -> tuple[dict[str, dict[str, CellResult]], dict]:
    data = json.loads(Path(path).read_text())
    return ({c: {s: CellResult(**r) for s, r in v.items()} for c, v in data['cells'].items()},
            data['meta'])
