# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Every strategy without ROS: the graph's timing rules replayed on synthetic worlds, scored alike.

A discrete-event replay of the graph for one world and one cloud network, per strategy:

* Steps: the world's frames (JPEG round trip as in a bag, quality 90) sampled by the camera's
  StepSampler at `step_rate` (2 Hz), resized to 512 px, each stamped with its frame time.
* Cloud (cloud_bridge): core.selection.CloudSelector with the bridge's defaults (one request in
  flight, the adaptive interval, max_age_s 3); the round trip of a request sent at t is the
  core.netem profile's sample (fixed:<ms> or jitter:<mean>,<std>, seeded) plus `overhead_ms`
  (the HTTP exchange and the LVLM's own time). Each sent step's answer is the simulated LVLM's
  (lvlm.simulated, drawn once per step and reused by every latency); unsent steps get DROPPED
  at once. edge_only sends nothing.
* context_fusion: an ok answer becomes a ContextUpdate (compressed to 24 words, box labels as
  entities) at its arrival, and its boxes are carried frame by frame with core.focus to every
  newer step (the same rules as the node: newer answers win, an answer without boxes clears the
  focus, masks older than 5 s are dropped). Fusion is taken as instantaneous: a step's mask
  targets the step's own frame.
* edge_svlm: one worker; a step arriving while it is busy waits in a one-deep slot (a newer
  step replaces it). An SVLM answer takes `edge_ms` of compute and is published that long after
  the worker took the step; its history is a core.context.ContextStore (8 turns, 512 tokens,
  evicted 4 at a time) read when the worker takes the step, Visual Focus (attention, alpha 2,
  counts skipped) from the newest mask by then. cloud_stale answers `stale_ms` after taking the
  step; offload waits for its own cloud answer while its round-trip average (the node's 0.8/0.2
  EWMA) fits the deadline, else falls back to the SVLM; cloud_only publishes each ok answer when
  it arrives.
* edgevlm_arbitrated: the edgevlm pipeline, then core.arbitration decides (when the SVLM's answer
  is ready) whether the newest cloud answer stands for the step; a core.arbitration
  CloudConsistency is fed every ok cloud answer as it arrives.
* The simulated LVLM's error draws are seeded with each world's seed.

Scores are core.scoring's (timeline(): accuracy at the deadline, the answer the robot shows at
stamp + deadline) over RunRecords built from the replayed answers. SVLM answers are cached by
(world, step, prompt, history, focus boxes), so strategies and latencies that put the same
context in front of the model share one forward pass (and a cache file makes reruns cheap).

usage:
  python -m edgevlm_ros.eval.strategy_replay sweep OUT --seeds 400-407 --duration 40 \
      --mix focus --ablations fixed                     (the sweep in docs/evaluation.md)
  python -m edgevlm_ros.eval.strategy_replay sweep OUT --seeds 101 --duration 30 \
      --mix rotation --fluctuations 0 --extra-errors ''  (the graph sweep's heldout-seed101)
  python -m edgevlm_ros.eval.strategy_replay report OUT
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
import heapq
import json
import math
import os
from pathlib import Path
import re
import sys
import time

import numpy as np

from edgevlm_ros.core.arbitration import (
    ArbitrationParams,
    CloudConsistency,
    CloudView,
    EdgeAnswerLog,
    arbitrate,
)
from edgevlm_ros.core.context import ContextStore, compress_answer
from edgevlm_ros.core.focus import BoxPropagator, FrameRing
from edgevlm_ros.core.images import decode_compressed, encode_jpeg, resize_max_side
from edgevlm_ros.core.netem import NetworkProfile
from edgevlm_ros.core.records import AnswerRecord, CloudRecord, RunRecord, Truth
from edgevlm_ros.core.regions import Box
from edgevlm_ros.core.sampling import StepSampler
from edgevlm_ros.core.scoring import timeline
from edgevlm_ros.core.selection import CloudSelector
from edgevlm_ros.sim.synthworld import WorldSpec

ARBITRATED = 'edgevlm_arbitrated'
BASELINES = ('edge_only', 'cloud_only', 'cloud_stale', 'offload')
STRATEGIES = (*BASELINES, 'edgevlm', 'replacement_only', 'focus_only', ARBITRATED)
REPLACEMENT = ('edgevlm', 'replacement_only', ARBITRATED)
ABLATIONS = ('replacement_only', 'focus_only')
FOCUS = ('edgevlm', 'focus_only', ARBITRATED)
EPOCH_NS = 1_767_225_600 * 10**9   # 2026-01-01T00:00:00Z, as eval.bags stamps frames
SKIP_FOCUS = re.compile(r'^\s*how many\b', re.IGNORECASE)  # edge_svlm focus.skip_questions


@dataclass(frozen=True)
class ReplayConfig:
    """The graph's parameters the replay follows (defaults: the package's)."""

    step_rate: float = 2.0
    deadline_s: float = 1.0
    edge_ms: float = 80.0        # SVLM step, as the graph's edge p50 (81 ms measured)
    stale_ms: float = 10.0       # cloud_stale publish after taking the step (graph p50 10 ms)
    overhead_ms: float = 15.0    # added to every cloud round trip (HTTP + LVLM)
    history_turns: int = 8
    history_tokens: int = 512
    history_evict_block: int = 4  # the node's history.evict_block
    replacement_words: int = 24
    focus_alpha: float = 2.0
    focus_max_age_s: float = 5.0
    growth_per_s: float = 0.05
    bridge_max_age_s: float = 3.0
    arbitration: ArbitrationParams = field(default_factory=ArbitrationParams)


@dataclass(frozen=True)
class ReplayStep:
    """One step: its frame (as the edge sees it) and its truth."""

    index: int
    stamp_ns: int
    rgb: np.ndarray
    truth: Truth


@dataclass
class World:
    """A world's steps and the simulated LVLM's answer to each (per error rate)."""

    label: str
    spec: str
    steps: list[ReplayStep]
    seed: int = 0
    cloud: dict[float, list[tuple[str, tuple[Box, ...]]]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- worlds

def world_steps(spec: WorldSpec, step_rate: float = 2.0, side: int = 512,
                jpeg_quality: int = 90) -> list[ReplayStep]:
    """The steps camera_node makes of the world's frames (as `edgevlm synth` writes them)."""
    sampler = StepSampler(step_rate)
    steps = []
    for s in spec.generate():
        stamp = EPOCH_NS + round(s.t_s * 1e9)
        if not sampler.due(stamp * 1e-9):
            continue
        rgb = decode_compressed(encode_jpeg(s.rgb, jpeg_quality))
        truth = Truth(stamp_ns=stamp, episode=s.episode, question_id=s.question_id,
                      question=s.question, answer=s.answer, accepted=s.accepted,
                      choices=s.choices, boxes=s.boxes)
        steps.append(ReplayStep(len(steps), stamp, resize_max_side(rgb, side), truth))
    return steps


def make_world(spec: WorldSpec, step_rate: float = 2.0) -> World:
    return World(f'seed{spec.seed}', str(spec), world_steps(spec, step_rate), spec.seed)


def cloud_answers(world: World, error: float, error_seed: int | None = None
                  ) -> list[tuple[str, tuple[Box, ...]]]:
    """
    The simulated LVLM's answer to every step (drawn once; every latency reuses them).

    The error draws are seeded with the world's seed unless `error_seed` is given: with one
    seed for every world, the same step indices would be wrong in every world, and a latency
    whose requests go out on the other steps would never meet a wrong answer.
    """
    if error_seed is None:
        error_seed = world.seed
    if error not in world.cloud:
        from edgevlm_ros.lvlm.simulated import SimulatedLvlm
        spec = world.spec.replace(',mix=focus', '')  # frames do not depend on the mix
        lvlm = SimulatedLvlm(f'simulated:{spec},error={error:g},error_seed={error_seed}',
                             max_new_tokens=64)
        world.cloud[error] = [(r.text, tuple(r.boxes)) for r in
                              (lvlm.answer(s.rgb, s.truth.question) for s in world.steps)]
    return world.cloud[error]


# ----------------------------------------------------------------------------- the cloud

@dataclass(frozen=True)
class CloudEvent:
    """The CloudResponse of one step: when it reached the graph and what it said."""

    step: int
    at_ns: int
    status: str          # 'ok' or 'dropped'
    rtt_s: float = 0.0


def cloud_timeline(steps: Sequence[ReplayStep], network: str, seed: int = 0,
                   overhead_ms: float = 15.0, max_age_s: float = 3.0) -> list[CloudEvent]:
    """Which steps the bridge sends under `network` and when their answers arrive."""
    profile = NetworkProfile.parse(network, seed)
    selector = CloudSelector(max_in_flight=1, max_age_s=max_age_s)
    t0 = steps[0].stamp_ns if steps else 0
    events: list[CloudEvent] = []
    flights: list[tuple[int, int, float]] = []   # heap of (lands_ns, step, rtt_s)

    def send(step: int, now_ns: int) -> None:
        delay = profile.sample((now_ns - t0) * 1e-9)
        rtt = (math.inf if delay is None else delay) + overhead_ms / 1000.0
        heapq.heappush(flights, (now_ns + round(rtt * 1e9), step, rtt))

    def apply(decision, now_ns: int) -> None:
        for step, _reason in decision.dropped:
            events.append(CloudEvent(step, now_ns, 'dropped'))
        for step in decision.send:
            send(step, now_ns)

    def land_until(t_ns: int) -> None:
        while flights and flights[0][0] <= t_ns:
            lands, step, rtt = heapq.heappop(flights)
            events.append(CloudEvent(step, lands, 'ok', rtt))
            apply(selector.finished(lands * 1e-9, rtt), lands)

    for s in steps:
        land_until(s.stamp_ns)
        apply(selector.expire(s.stamp_ns * 1e-9), s.stamp_ns)
        apply(selector.offer(s.stamp_ns * 1e-9, s.index), s.stamp_ns)
    land_until(2**62)
    events.sort(key=lambda e: (e.at_ns, e.step))
    return events


# ----------------------------------------------------------------------------- fusion

@dataclass(frozen=True)
class Mask:
    """A FocusMask as context_fusion publishes it."""

    at_ns: int
    source: int
    target: int
    boxes: tuple[Box, ...]
    source_stamp_ns: int
    shift: float | None = None   # largest centre move of the tracked boxes (share of width)


def focus_masks(steps: Sequence[ReplayStep], events: Sequence[CloudEvent],
                answers: Sequence[tuple[str, tuple[Box, ...]]], cfg: ReplayConfig
                ) -> list[Mask]:
    """context_fusion's FocusMasks for this cloud timeline, in publish order."""
    ring = FrameRing(64, 160)
    prop = BoxPropagator(growth_per_s=cfg.growth_per_s, max_age_s=cfg.focus_max_age_s)
    masks: list[Mask] = []
    tracked: dict | None = None
    queue = sorted([(s.stamp_ns, 0, s.index) for s in steps]
                   + [(e.at_ns, 1, e.step) for e in events if e.status == 'ok'])

    def carry(to: int, now_ns: int) -> None:
        nonlocal tracked
        tr = tracked
        frames = ring.span(tr['at'], to)
        if not frames or frames[0].step_id != tr['at'] or frames[-1].step_id != to:
            tracked = None
            return
        age = max(0.0, frames[-1].stamp_s - tr['stamp_s'])
        if age > cfg.focus_max_age_s:
            tracked = None
            return
        if len(frames) > 1:
            result = prop.propagate(tr['boxes'], frames)
            if result is None or not result.tracked:
                tracked = None
                return
            tr['boxes'], tr['q'], tr['at'] = result.tracked, result.qualities, to
        grown = [g for g in (prop.grow(b, age, q) for b, q in zip(tr['boxes'], tr['q'])) if g]
        if not grown:
            tracked = None
            return
        shift = max(abs((a.x_min + a.x_max) - (b.x_min + b.x_max)) / 2
                    for a, b in zip(tr['boxes'], tr['first'])) if tr['first'] else None
        masks.append(Mask(now_ns, tr['source'], to, tuple(grown),
                          round(tr['stamp_s'] * 1e9), shift))

    for t_ns, kind, k in queue:
        if kind == 0:
            s = steps[k]
            ring.add(k, s.stamp_ns * 1e-9, s.rgb)
            if tracked is not None:
                carry(k, t_ns)
            continue
        _text, boxes = answers[k]
        if tracked is not None and k < tracked['source']:
            continue
        if not boxes:
            if tracked is not None:
                tracked = None
                masks.append(Mask(t_ns, k, k, (), steps[k].stamp_ns))
            continue
        if ring.get(k) is None:
            continue
        boxes = [b.clipped() for b in boxes]
        tracked = {'source': k, 'stamp_s': steps[k].stamp_ns * 1e-9, 'at': k,
                   'boxes': boxes, 'q': [1.0] * len(boxes), 'first': list(boxes)}
        newest = ring.newest()
        if newest is not None:
            carry(newest.step_id, t_ns)
    return masks


# ----------------------------------------------------------------------------- the edge

class SvlmCache:
    """SVLM answers by (world, step, prompt, history, focus); optionally kept in a file."""

    def __init__(self, svlm, path: str | os.PathLike | None = None) -> None:
        self.svlm = svlm
        self.path = Path(path) if path else None
        self.memo: dict[str, str] = {}
        self.calls = 0
        self.hits = 0
        if self.path is not None and self.path.exists():
            with self.path.open() as f:
                for line in f:
                    if line.strip():
                        key, text = json.loads(line)
                        self.memo[key] = text
        self._file = self.path.open('a') if self.path is not None else None

    def answer(self, world: str, step: ReplayStep, history: Sequence[tuple[str, str, bool]],
               boxes: Sequence[Box], alpha: float) -> str:
        key = json.dumps([world, step.index, step.truth.question, list(history),
                          [[round(v, 4) for v in (b.x_min, b.y_min, b.x_max, b.y_max)]
                           for b in boxes], alpha if boxes else 0.0])
        hit = self.memo.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        self.calls += 1
        text = self.svlm.answer(step.rgb, step.truth.question, [(q, a) for q, a, _ in history],
                                focus=list(boxes), focus_alpha=alpha if boxes else 0.0,
                                history_sources=[c for _, _, c in history]).text
        self.memo[key] = text
        if self._file is not None:
            self._file.write(json.dumps([key, text]) + '\n')
            self._file.flush()
        return text


@dataclass
class RunResult:
    """One strategy on one world under one network."""

    run: RunRecord

    @property
    def decisions(self) -> list[tuple[int, str, str]]:
        """edgevlm_arbitrated's (step, source, reason) per answer, in order; [] otherwise."""
        return [(a.step_id, a.source, a.reason) for a in self.run.answers if a.reason]


def replay_strategy(strategy: str, world: World, events: Sequence[CloudEvent],
                    answers: Sequence[tuple[str, tuple[Box, ...]]], masks: Sequence[Mask],
                    svlm: SvlmCache, cfg: ReplayConfig, network: str = '') -> RunResult:
    """Replay one strategy; returns the RunRecord core.scoring scores."""
    steps = world.steps
    if strategy not in STRATEGIES:
        raise ValueError(f'unknown strategy {strategy!r}; valid: {", ".join(STRATEGIES)}')
    uses_cloud = strategy != 'edge_only'
    by_step = {e.step: e for e in events}
    out: list[AnswerRecord] = []

    def publish(s: ReplayStep, at_ns: int, text: str, source: str, newest_cloud: int = -1,
                replaced: int = 0, focus: bool = False, reason: str = '') -> None:
        out.append(AnswerRecord(
            stamp_ns=s.stamp_ns, step_id=s.index, question=s.truth.question, answer=text,
            source=source, latency_ms=(at_ns - s.stamp_ns) / 1e6, received_ns=at_ns,
            replaced_turns=replaced, newest_cloud_step=newest_cloud, focus_applied=focus,
            reason=reason))

    clouds = [CloudRecord(stamp_ns=s.stamp_ns, step_id=s.index, question=s.truth.question,
                          status=(by_step[s.index].status if uses_cloud and s.index in by_step
                                  else 'dropped'),
                          received_ns=by_step[s.index].at_ns if s.index in by_step else 0,
                          answer=answers[s.index][0] if uses_cloud else '')
              for s in steps]
    if strategy == 'cloud_only':
        for e in events:
            if e.status == 'ok':
                publish(steps[e.step], e.at_ns, answers[e.step][0], 'cloud', e.step)
        return RunResult(_record(strategy, network, steps, out, clouds))

    ok_events = [e for e in events if e.status == 'ok'] if uses_cloud else []
    store = ContextStore(max_turns=cfg.history_turns, max_tokens=cfg.history_tokens,
                         evict_block=cfg.history_evict_block,
                         count_tokens=svlm.svlm.count_tokens)
    own = EdgeAnswerLog(capacity=64)
    consistency = CloudConsistency()
    ev_i = 0          # next cloud event (of all events) to deliver to the edge
    mask_i = 0
    focus: Mask | None = None
    rtt_ewma: float | None = None
    newest_ok: CloudEvent | None = None
    all_events = list(events) if uses_cloud else []

    def deliver(until_ns: int) -> None:
        nonlocal ev_i, mask_i, focus, rtt_ewma, newest_ok
        while ev_i < len(all_events) and all_events[ev_i].at_ns <= until_ns:
            e = all_events[ev_i]
            ev_i += 1
            if e.status == 'dropped':
                continue
            rtt_ewma = e.rtt_s if rtt_ewma is None else 0.8 * rtt_ewma + 0.2 * e.rtt_s
            newest_ok = e
            consistency.add(steps[e.step].stamp_ns * 1e-9, steps[e.step].truth.question,
                            answers[e.step][0])
            if strategy in REPLACEMENT:
                text, boxes = answers[e.step]
                store.apply_cloud(e.step, steps[e.step].truth.question, compress_answer(
                    text, cfg.replacement_words,
                    entities=[b.label for b in boxes if b.label]))
        while strategy in FOCUS and mask_i < len(masks) and masks[mask_i].at_ns <= until_ns:
            m = masks[mask_i]
            mask_i += 1
            if focus is None or (m.source, m.target) >= (focus.source, focus.target):
                focus = m

    def newest_cloud_by(t_ns: int) -> CloudEvent | None:
        best = None
        for e in ok_events:  # few, in time order
            if e.at_ns > t_ns:
                break
            best = e
        return best

    def edge_answer(s: ReplayStep, t_ns: int) -> int:
        """The SVLM pipeline for step s taken at t_ns; returns the publish time."""
        deliver(t_ns)
        turns = store.history()
        history = [(t.question, t.answer, t.from_cloud) for t in turns]
        boxes: tuple[Box, ...] = ()
        shift = None
        if strategy in FOCUS and focus is not None and not SKIP_FOCUS.search(s.truth.question) \
                and focus.source <= s.index \
                and (s.stamp_ns - focus.source_stamp_ns) * 1e-9 <= cfg.focus_max_age_s:
            boxes = focus.boxes
        if focus is not None:
            shift = focus.shift
        text = svlm.answer(world.label, s, history, boxes, cfg.focus_alpha)
        done = t_ns + round(cfg.edge_ms * 1e6)
        store.record_edge(s.index, s.truth.question, text)
        replaced = [t for t in turns if t.from_cloud]
        newest = max((t.step_id for t in replaced), default=-1)
        if strategy == ARBITRATED:
            cloud = newest_cloud_by(done)
            view = None
            if cloud is not None:
                c = steps[cloud.step]
                view = CloudView(cloud.step, c.stamp_ns * 1e-9, c.truth.question,
                                 answers[cloud.step][0],
                                 shift if focus is not None and focus.source == cloud.step
                                 else None)
            deliver(done)  # what has arrived by the time the answer is ready
            d = arbitrate(s.truth.question, s.stamp_ns * 1e-9, text, view,
                          own.answer_at(cloud.step, s.truth.question) if cloud else None,
                          cfg.arbitration, consistency.estimate)
            own.record(s.index, s.truth.question, text)
            publish(s, done, d.answer, d.source, d.cloud_step if d.source == 'cloud'
                    else newest, len(replaced), bool(boxes), d.reason)
            return done
        publish(s, done, text, 'edge', newest, len(replaced), bool(boxes))
        return done

    def take(s: ReplayStep, t_ns: int) -> int:
        """The worker takes step s at t_ns; returns when it is free again."""
        deliver(t_ns)
        if strategy == 'cloud_stale' and newest_ok is not None:
            at = t_ns + round(cfg.stale_ms * 1e6)
            publish(s, at, answers[newest_ok.step][0], 'cloud', newest_ok.step)
            return at
        if strategy == 'offload' and rtt_ewma is not None and rtt_ewma <= cfg.deadline_s:
            end = s.stamp_ns + round(cfg.deadline_s * 1e9)
            e = by_step.get(s.index)
            if e is not None and e.at_ns <= end:
                at = max(e.at_ns, t_ns)
                if e.status == 'ok':
                    publish(s, at, answers[s.index][0], 'cloud', s.index)
                    return at
                return edge_answer(s, at)
            return edge_answer(s, max(end, t_ns))
        return edge_answer(s, t_ns)

    free_ns = -1
    k = 0
    stamps = [s.stamp_ns for s in steps]
    while k < len(steps):
        # The newest step that arrived while the worker was busy; older ones were replaced.
        j = k
        while j + 1 < len(steps) and stamps[j + 1] <= free_ns:
            j += 1
        t = max(free_ns, stamps[j])
        free_ns = take(steps[j], t)
        k = j + 1
    return RunResult(_record(strategy, network, steps, out, clouds))


def _record(strategy: str, network: str, steps: Sequence[ReplayStep],
            answers: list[AnswerRecord], clouds: list[CloudRecord]) -> RunRecord:
    return RunRecord(strategy=strategy, network_profile=network,
                     truths=[s.truth for s in steps], answers=answers, clouds=clouds)


# ----------------------------------------------------------------------------- cells

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

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.correct)) if self.correct else math.nan


def network_spec(latency_s: float, fluctuation: float) -> str:
    ms = latency_s * 1000.0
    return f'fixed:{ms:g}' if fluctuation == 0 else f'jitter:{ms:g},{fluctuation * ms:g}'


def run_cell(worlds: Sequence[World], network: str, error: float, strategies: Sequence[str],
             svlm: SvlmCache, cfg: ReplayConfig, seed: int = 0,
             progress: Callable[[], None] | None = None) -> dict[str, CellResult]:
    """Every strategy on every world under one network and cloud error rate."""
    results = {s: CellResult(s, network, error) for s in strategies}
    for w_i, world in enumerate(worlds):
        answers = cloud_answers(world, error)
        events = cloud_timeline(world.steps, network, seed + w_i, cfg.overhead_ms,
                                cfg.bridge_max_age_s)
        masks = focus_masks(world.steps, events, answers, cfg) \
            if any(s in FOCUS for s in strategies) else []
        for strategy in strategies:
            res = replay_strategy(strategy, world, events, answers, masks, svlm, cfg, network)
            cell = results[strategy]
            for row in timeline(res.run, cfg.deadline_s):
                if row.correct is None:
                    continue
                cell.correct.append(int(row.correct))
                cell.blocks.append(f'{world.label}/{row.episode}/{row.question}')
                cell.kinds.append(_kind(row.question))
            cell.latencies_ms.extend(a.latency_ms for a in res.run.answers)
            cell.cloud_decisions += sum(1 for _, src, _ in res.decisions if src == 'cloud')
            cell.edge_decisions += sum(1 for _, src, _ in res.decisions if src == 'edge')
            if progress is not None:
                progress()
    return results


def _kind(question: str) -> str:
    q = question.lower()
    for prefix, kind in (('how many', 'count'), ('is there', 'exists'),
                         ('what colour', 'colour'), ('where', 'where')):
        if q.startswith(prefix):
            return kind
    return 'other'


def bootstrap_ci(correct: Sequence[int], blocks: Sequence[str], reps: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """95 % interval of the accuracy, resampling question windows (blocks of steps) whole."""
    if not correct:
        return math.nan, math.nan
    names = sorted(set(blocks))
    index = {b: i for i, b in enumerate(names)}
    ids = np.array([index[b] for b in blocks])
    sums = np.bincount(ids, weights=np.asarray(correct, float), minlength=len(names))
    counts = np.bincount(ids, minlength=len(names)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(reps, len(names)))
    acc = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    lo, hi = np.percentile(acc, [2.5, 97.5])
    return float(lo), float(hi)


def paired_diff_ci(a: CellResult, b: CellResult, reps: int = 1000, seed: int = 0
                   ) -> tuple[float, float, float]:
    """Accuracy of a minus b (same steps), with a 95 % block-bootstrap interval."""
    if a.blocks != b.blocks:
        raise ValueError('paired difference needs the same steps')
    diff = np.asarray(a.correct, float) - np.asarray(b.correct, float)
    lo, hi = bootstrap_ci(list(diff), a.blocks, reps, seed)
    return float(diff.mean()), lo, hi


# ----------------------------------------------------------------------------- reports

def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


def table(cells: dict[str, dict[str, CellResult]], strategies: Sequence[str],
          columns: Sequence[str]) -> str:
    """Markdown: accuracy at the deadline [95 % interval] per strategy (rows) and cell."""
    head = '| Strategy | ' + ' | '.join(columns) + ' |'
    lines = [head, '|---|' + '---:|' * len(columns)]
    for s in strategies:
        row = []
        for c in columns:
            r = cells[c].get(s)
            if r is None or not r.correct:
                row.append('-')
                continue
            lo, hi = bootstrap_ci(r.correct, r.blocks)
            row.append(f'{100 * r.accuracy:.1f} [{100 * lo:.0f}-{100 * hi:.0f}]')
        lines.append(f'| {s} | ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def goal_table(cells: dict[str, dict[str, CellResult]], columns: Sequence[str],
               candidate: str = ARBITRATED) -> str:
    """Per cell: the best baseline, the candidate minus it (paired 95 % interval), latency."""
    lines = ['| Cell | best baseline | ' + candidate + ' - best | vs edge_only | '
             'p95 ms (edge_only) | met |', '|---|---|---:|---:|---:|---|']
    for c in columns:
        cell = cells[c]
        if candidate not in cell:
            continue
        base = [b for b in BASELINES if b in cell]
        best = max(base, key=lambda b: cell[b].accuracy)
        d, lo, hi = paired_diff_ci(cell[candidate], cell[best])
        e, elo, ehi = paired_diff_ci(cell[candidate], cell['edge_only']) \
            if 'edge_only' in cell else (math.nan, math.nan, math.nan)
        p95 = percentile(cell[candidate].latencies_ms, 95)
        p95e = percentile(cell['edge_only'].latencies_ms, 95) if 'edge_only' in cell \
            else math.nan
        met = d >= -0.02 and p95 <= 1.1 * p95e
        lines.append(f'| {c} | {best} {100 * cell[best].accuracy:.1f} | '
                     f'{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] | '
                     f'{100 * e:+.1f} [{100 * elo:+.1f}, {100 * ehi:+.1f}] | '
                     f'{p95:.0f} ({p95e:.0f}) | {"yes" if met else "NO"} |')
    return '\n'.join(lines)


def kind_table(cells: dict[str, dict[str, CellResult]], columns: Sequence[str],
               strategies: Sequence[str] = ('edge_only', 'focus_only', 'edgevlm', ARBITRATED),
               kinds: Sequence[str] = ('colour', 'where', 'count', 'exists')) -> str:
    """Markdown: accuracy at the deadline per question kind (steps in brackets), per cell."""
    lines = ['| Cell | Strategy | ' + ' | '.join(kinds) + ' |',
             '|---|---|' + '---:|' * len(kinds)]
    for c in columns:
        for s in strategies:
            r = cells.get(c, {}).get(s)
            if r is None or not r.correct:
                continue
            row = []
            for k in kinds:
                hits = [x for x, kk in zip(r.correct, r.kinds) if kk == k]
                row.append(f'{100 * np.mean(hits):.1f} ({len(hits)})' if hits else '-')
            lines.append(f'| {c} | {s} | ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def plot(cells: dict[str, dict[str, CellResult]], strategies: Sequence[str],
         latencies: Sequence[float], fluctuations: Sequence[float], error: float,
         path: str | os.PathLike) -> None:
    """Accuracy at the deadline against cloud latency with 95 % intervals, a panel per level."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(fluctuations), figsize=(6.5 * len(fluctuations), 4.8),
                             sharey=True, squeeze=False)
    for ax, f in zip(axes[0], fluctuations):
        for n, s in enumerate(strategies):
            xs, ys, lo, hi = [], [], [], []
            for lat in latencies:
                r = cells.get(cell_name(lat, f, error), {}).get(s)
                if r is None or not r.correct:
                    continue
                a, b = bootstrap_ci(r.correct, r.blocks)
                xs.append(lat * (1 + 0.03 * (n - len(strategies) / 2)))
                ys.append(100 * r.accuracy)
                lo.append(100 * (r.accuracy - a))
                hi.append(100 * (b - r.accuracy))
            style = {'lw': 2.6} if s == ARBITRATED else {'lw': 1.2}
            ax.errorbar(xs, ys, yerr=[lo, hi], marker='o', ms=3.5, capsize=2, label=s, **style)
        ax.set_xscale('log')
        ax.set_xticks(list(latencies), [f'{x:g}' for x in latencies])
        ax.set_xlabel('cloud latency, s')
        ax.set_title(f'fluctuation {f:g} (simulated LVLM {100 * error:g} % wrong)')
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel('accuracy at deadline, % (95 % CI)')
    axes[0][-1].legend(fontsize=8, loc='lower left')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cell_name(latency_s: float, fluctuation: float, error: float) -> str:
    return f'{latency_s:g} s' + (f' f{fluctuation:g}' if fluctuation else '') + \
        (f' e{100 * error:g}%' if abs(error - 0.1) > 1e-9 else '')


def save(cells: dict[str, dict[str, CellResult]], path: str | os.PathLike,
         meta: dict) -> None:
    data = {'meta': meta, 'cells': {c: {s: r.__dict__ for s, r in v.items()}
                                    for c, v in cells.items()}}
    Path(path).write_text(json.dumps(data))


def load(path: str | os.PathLike) -> tuple[dict[str, dict[str, CellResult]], dict]:
    data = json.loads(Path(path).read_text())
    return ({c: {s: CellResult(**r) for s, r in v.items()} for c, v in data['cells'].items()},
            data['meta'])


# ----------------------------------------------------------------------------- CLI

def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(','):
        a, sep, b = part.partition('-')
        out.extend(range(int(a), int(b) + 1) if sep else [int(a)])
    return out


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(',') if x.strip()]


def load_model(spec: str, threads: int = 1):
    import torch

    from edgevlm_ros.backends.registry import load_svlm
    torch.set_num_threads(threads)
    return load_svlm(spec, max_new_tokens=8, num_threads=threads)


def _progress(total: int, desc: str):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False)


def sweep(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = ReplayConfig(edge_ms=args.edge_ms, overhead_ms=args.overhead_ms,
                       deadline_s=args.deadline, arbitration=ArbitrationParams(
                           max_age_s=args.max_age, trust_age_s=args.trust_age,
                           require_edge_agreement=args.agreement,
                           max_self_disagreement=(None if args.max_self_disagreement < 0
                                                  else args.max_self_disagreement)))
    t0 = time.monotonic()
    specs = [WorldSpec(seed=s, duration=args.duration, pace=args.pace,
                       question_every=args.question_every, mix=args.mix)
             for s in _seeds(args.seeds)]
    worlds = [make_world(s, cfg.step_rate) for s in specs]
    strategies = [s for s in args.strategies.split(',') if s]
    svlm = SvlmCache(load_model(args.model, args.threads), out / 'svlm_cache.jsonl')
    cells: dict[str, dict[str, CellResult]] = {}
    plan = [(lat, f, e) for e in _floats(args.errors) for f in _floats(args.fluctuations)
            for lat in _floats(args.latencies)]
    plan += [(lat, 0.0, e) for e in _floats(args.extra_errors)
             for lat in _floats(args.extra_latencies)]
    # Ablations (replacement_only, focus_only) cost forward passes of their own: with
    # --ablations fixed they run only in the fixed-latency cells of the first error rate, after
    # every cell has its other strategies (so a cut-short sweep still has the goal cells).
    ablations = [s for s in strategies if s in ABLATIONS] if args.ablations == 'fixed' else []
    main_strategies = [s for s in strategies if s not in ablations]
    first_error = _floats(args.errors)[0]
    passes = [(lat, f, e, main_strategies) for lat, f, e in plan]
    passes += [(lat, f, e, ablations) for lat, f, e in plan
               if ablations and f == 0 and e == first_error]
    bar = _progress(sum(len(p[3]) for p in passes) * len(worlds), 'cells')
    for lat, f, e, chosen in passes:
        name = cell_name(lat, f, e)
        bar.set_postfix_str(f'{name} svlm {svlm.calls} new / {svlm.hits} cached')
        cells.setdefault(name, {}).update(run_cell(
            worlds, network_spec(lat, f), e, chosen, svlm, cfg, args.network_seed,
            progress=lambda: bar.update(1)))
        save(cells, out / 'results.json', {
            'worlds': [str(s) for s in specs], 'steps': sum(len(w.steps) for w in worlds),
            'config': {k: (v.__dict__ if k == 'arbitration' else v)
                       for k, v in cfg.__dict__.items()}, 'model': args.model})
    bar.close()
    report(out, strategies, _floats(args.latencies), _floats(args.fluctuations),
           _floats(args.errors)[0])
    print(f'{sum(len(w.steps) for w in worlds)} steps per cell from {len(worlds)} worlds; '
          f'{svlm.calls} SVLM calls, {svlm.hits} cached; {time.monotonic() - t0:.0f} s',
          file=sys.stderr)
    return 0


def report(out: Path, strategies: Sequence[str] | None = None,
           latencies: Sequence[float] = (0.2, 0.5, 1, 2, 4, 9),
           fluctuations: Sequence[float] = (0.0, 0.5), error: float = 0.1) -> str:
    cells, meta = load(out / 'results.json')
    if strategies is None:
        strategies = [s for s in STRATEGIES if any(s in c for c in cells.values())]
    text = [f'Worlds: {", ".join(meta["worlds"])}; {meta["steps"]} steps per cell.', '']
    for f in fluctuations:
        cols = [cell_name(lat, f, error) for lat in latencies if cell_name(lat, f, error)
                in cells]
        if cols:
            text += [f'Accuracy at the deadline, %, [95 % CI], fluctuation {f:g}:', '',
                     table(cells, strategies, cols), '']
    extra = [c for c in cells if '%' in c]
    if extra:
        text += ['Other cloud error rates:', '', table(cells, strategies, extra), '']
    text += ['Goal check (paired differences, 95 % CI):', '',
             goal_table(cells, list(cells)), '']
    focus_cols = [c for c in (cell_name(0.5, 0, error), cell_name(2, 0, error)) if c in cells]
    if focus_cols:
        text += ['Per question kind (accuracy at the deadline, %, steps):', '',
                 kind_table(cells, focus_cols), '']
    md = '\n'.join(text)
    (out / 'table.md').write_text(md)
    plot(cells, strategies, [x for x in latencies], [f for f in fluctuations if any(
        cell_name(lat, f, error) in cells for lat in latencies)], error,
        out / 'accuracy_vs_latency.png')
    print(md)
    return md


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='python -m edgevlm_ros.eval.strategy_replay',
                                 description=__doc__.split('\n')[1])
    sub = ap.add_subparsers(dest='command', required=True)
    sw = sub.add_parser('sweep', help='every strategy over latencies, fluctuations, errors')
    sw.add_argument('out')
    sw.add_argument('--seeds', default='400-407', help='world seeds, e.g. 400-407,410')
    sw.add_argument('--duration', type=float, default=40.0)
    sw.add_argument('--pace', type=float, default=0.4)
    sw.add_argument('--question-every', type=float, default=8.0)
    sw.add_argument('--mix', default='focus', help='question mix (core.synthworld)')
    sw.add_argument('--latencies', default='0.2,0.5,1,2,4,9')
    sw.add_argument('--fluctuations', default='0,0.5')
    sw.add_argument('--errors', default='0.1')
    sw.add_argument('--extra-errors', default='0,0.3')
    sw.add_argument('--extra-latencies', default='0.5,2')
    sw.add_argument('--strategies', default=','.join(STRATEGIES))
    sw.add_argument('--ablations', choices=('all', 'fixed'), default='all',
                    help='cells where replacement_only and focus_only run')
    sw.add_argument('--model', default='micro')
    sw.add_argument('--threads', type=int, default=1)
    sw.add_argument('--edge-ms', type=float, default=80.0)
    sw.add_argument('--overhead-ms', type=float, default=15.0)
    sw.add_argument('--deadline', type=float, default=1.0)
    sw.add_argument('--network-seed', type=int, default=0)
    sw.add_argument('--max-age', type=float, default=ArbitrationParams.max_age_s)
    sw.add_argument('--trust-age', type=float, default=ArbitrationParams.trust_age_s)
    sw.add_argument('--max-self-disagreement', type=float,
                    default=ArbitrationParams.max_self_disagreement,
                    help='arbitration: distrust a cloud that contradicts itself more (-1: off)')
    sw.add_argument('--agreement', action='store_true',
                    help='arbitration: the edge answer must be unchanged since the cloud frame')
    rp = sub.add_parser('report', help='tables and plot of a finished sweep again')
    rp.add_argument('out')
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.command == 'sweep':
        return sweep(args)
    report(Path(args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
