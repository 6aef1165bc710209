# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The graph without ROS: a discrete-event replay of one strategy on one world and one network.

Why one module of 498 lines: it stands in for the rest of the graph around core.edge_step
(steps, cloud, fusion, the edge worker) on one event timeline; ``replay_strategy`` is that
timeline and the helpers make the events it orders. Cells and statistics (eval/cells.py) and the
sweep's tables (eval/sweep_report.py) already live apart.

The edge step itself is core.edge_step, the code edge_svlm_node runs; this module supplies what
the rest of the graph would, at the times it would:

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
  step replaces it). Inputs reach core.edge_step's EdgeState in time order, as the node's
  executor delivers them. An SVLM answer takes `edge_ms` of compute and is published that long
  after the worker took the step; inputs that land during it are delivered after its answer
  went into the history (the node applies them during the forward pass: the one difference,
  and only for inputs landing within `edge_ms`). cloud_stale answers `stale_ms` after taking
  the step; offload waits in camera time for its own cloud answer (core.edge_step.WaitForCloud);
  cloud_only publishes each ok answer when it arrives.
* The simulated LVLM's error draws are seeded with each world's seed.

SVLM answers are cached by (world, step, prompt, history, focus), so strategies and latencies
that put the same context in front of the model share one forward pass (and a cache file makes
reruns cheap). `replay_strategy(..., trace=[])` also lists every input and decision in the order
the edge met them: the equivalence test feeds that trace to the real node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import heapq
import json
import math
import os
from pathlib import Path

import numpy as np

from edgevlm_ros.core import edge_step as es
from edgevlm_ros.core.arbitration import ArbitrationParams
from edgevlm_ros.core.context import compress_answer
from edgevlm_ros.core.focus import BoxPropagator, FrameRing
from edgevlm_ros.core.images import decode_compressed, encode_jpeg, resize_max_side
from edgevlm_ros.core.netem import NetworkProfile
from edgevlm_ros.core.records import AnswerRecord, CloudRecord, RunRecord, Truth
from edgevlm_ros.core.regions import Box
from edgevlm_ros.core.sampling import StepSampler
from edgevlm_ros.core.selection import CloudSelector
from edgevlm_ros.core.strategy import Strategy
from edgevlm_ros.sim.synthworld import WorldSpec

STRATEGIES = tuple(s.value for s in Strategy)
EPOCH_NS = 1_767_225_600 * 10**9   # 2026-01-01T00:00:00Z, as eval.bags stamps frames


@dataclass(frozen=True)
class EngineConfig:
    """The graph's parameters the replay follows (defaults: the package's)."""

    step_rate: float = 2.0
    deadline_s: float = 1.0      # scoring deadline, and offload's wait (offload.deadline_s)
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
    focus_mode: str = 'auto'
    focus_crop_margin: float = 0.25
    focus_skip_questions: str = es.DEFAULT_SKIP_FOCUS

    def edge(self, strategy: str | Strategy) -> es.EdgeConfig:
        """The edge node's configuration for `strategy` under these parameters."""
        return es.EdgeConfig(
            strategy=Strategy.parse(strategy), history_turns=self.history_turns,
            history_tokens=self.history_tokens, history_evict_block=self.history_evict_block,
            focus_alpha=self.focus_alpha, focus_mode=self.focus_mode,
            focus_crop_margin=self.focus_crop_margin,
            focus_skip_questions=self.focus_skip_questions,
            focus_max_age_s=self.focus_max_age_s, offload_deadline_s=self.deadline_s,
            arbitration=self.arbitration)


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
        apply(selector.offer(s.stamp_ns * 1e-9, s.index, question=s.truth.question),
              s.stamp_ns)
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
    quality: float = 1.0         # the weakest box's tracking quality (FocusMask.quality)


def focus_masks(steps: Sequence[ReplayStep], events: Sequence[CloudEvent],
                answers: Sequence[tuple[str, tuple[Box, ...]]], cfg: EngineConfig
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
                          round(tr['stamp_s'] * 1e9), shift, min(tr['q'])))

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
                masks.append(Mask(t_ns, k, k, (), steps[k].stamp_ns, quality=0.0))
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
               boxes: Sequence[Box], alpha: float, image: np.ndarray | None = None,
               view: str = '') -> str:
        """The SVLM's answer; `image` and `view` when a crop/overlay replaced the frame."""
        parts = [world, step.index, step.truth.question, list(history),
                 [[round(v, 4) for v in (b.x_min, b.y_min, b.x_max, b.y_max)] for b in boxes],
                 alpha if boxes else 0.0]
        if view:
            parts.append(view)
        key = json.dumps(parts)
        hit = self.memo.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        self.calls += 1
        text = self.svlm.answer(step.rgb if image is None else image, step.truth.question,
                                [(q, a) for q, a, _ in history], focus=list(boxes),
                                focus_alpha=alpha if boxes else 0.0,
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
        """edgevlm_arbitrated's / _carried's (step, source, reason) per answer; [] otherwise."""
        return [(a.step_id, a.source, a.reason) for a in self.run.answers if a.reason]


def _view_key(run: es.RunEdge) -> str:
    """Cache key part of a crop/overlay: the mode and the boxes it showed ('' otherwise)."""
    if run.view not in ('crop', 'overlay'):
        return ''
    return run.view + ':' + ','.join(f'{b.x_min:.4f} {b.y_min:.4f} {b.x_max:.4f} {b.y_max:.4f}'
                                     for b in run.boxes)


def replay_strategy(strategy: str, world: World, events: Sequence[CloudEvent],
                    answers: Sequence[tuple[str, tuple[Box, ...]]], masks: Sequence[Mask],
                    svlm: SvlmCache, cfg: EngineConfig, network: str = '',
                    trace: list | None = None) -> RunResult:
    """
    Replay one strategy through core.edge_step; returns the RunRecord core.scoring scores.

    With `trace` (a list), every input the edge met and every decision it took is appended in
    the order the edge met them, each with its time (ns): ('step', t, index), ('cloud', t,
    CloudNote), ('context', t, (step, question, text)), ('mask', t, MaskNote), ('take', t,
    index) and ('answer', t, index, StepAnswer, RunEdge | None), t the publish time.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f'unknown strategy {strategy!r}; valid: {", ".join(STRATEGIES)}')
    steps = world.steps
    ecfg = cfg.edge(strategy)
    uses_cloud = ecfg.strategy.uses_cloud
    focus_supported = bool(getattr(svlm.svlm, 'focus_supported', True))
    by_step = {e.step: e for e in events}
    out: list[AnswerRecord] = []
    clouds = [CloudRecord(stamp_ns=s.stamp_ns, step_id=s.index, question=s.truth.question,
                          status=(by_step[s.index].status if uses_cloud and s.index in by_step
                                  else 'dropped'),
                          received_ns=by_step[s.index].at_ns if s.index in by_step else 0,
                          answer=answers[s.index][0] if uses_cloud else '')
              for s in steps]
    note = (lambda *a: trace.append(a)) if trace is not None else (lambda *a: None)

    def publish(s: ReplayStep, at_ns: int, ans: es.StepAnswer) -> None:
        out.append(AnswerRecord(
            stamp_ns=s.stamp_ns, step_id=s.index, question=s.truth.question, answer=ans.text,
            source=ans.source, latency_ms=(at_ns - s.stamp_ns) / 1e6, received_ns=at_ns,
            history_turns=ans.history_turns, replaced_turns=ans.replaced_turns,
            newest_cloud_step=ans.newest_cloud_step, focus_applied=ans.focus_applied,
            focus_source_step=ans.focus_source_step, focus_age_s=ans.focus_age_s,
            reason=ans.reason))

    # The edge node's inputs in delivery order: (time, kind order, n, kind, payload).
    inputs: list[tuple[int, int, int, str, object]] = [
        (s.stamp_ns, 0, s.index, 'step', s) for s in steps]
    if uses_cloud:
        inputs += [(e.at_ns, 1, n, 'cloud', e) for n, e in enumerate(events)]
    if ecfg.strategy.uses_focus:
        inputs += [(m.at_ns, 2, n, 'mask', m) for n, m in enumerate(masks)]
    inputs.sort(key=lambda x: x[:3])
    state = es.EdgeState(ecfg, svlm.svlm.count_tokens)
    next_input = 0

    def deliver(until_ns: int) -> None:
        nonlocal next_input
        while next_input < len(inputs) and inputs[next_input][0] <= until_ns:
            _t, _o, _n, kind, item = inputs[next_input]
            next_input += 1
            if kind == 'step':
                note('step', _t, item.index)
                state.on_step(item.index, ecfg)
            elif kind == 'cloud':
                _deliver_cloud(item)
            else:
                m = es.MaskNote(item.source, item.target, item.boxes,
                                item.source_stamp_ns * 1e-9, item.shift, item.quality)
                note('mask', _t, m)
                state.on_mask(m)

    def _deliver_cloud(e: CloudEvent) -> None:
        s = steps[e.step]
        text, boxes = answers[e.step]
        ok = e.status == 'ok'
        c = es.CloudNote(e.step, s.stamp_ns * 1e-9, s.truth.question, text if ok else '', ok,
                         e.rtt_s if ok else None, len(boxes) if ok else 0)
        note('cloud', e.at_ns, c)
        state.on_cloud(c)
        arrival = es.answer_on_arrival(c, ecfg)
        if arrival is not None:
            note('answer', e.at_ns, e.step, arrival, None)
            publish(s, e.at_ns, arrival)
        if ok:
            # context_fusion's ContextUpdate for the same answer, at the same time.
            compressed = compress_answer(text, cfg.replacement_words,
                                         entities=[b.label for b in boxes if b.label])
            note('context', e.at_ns, (e.step, s.truth.question, compressed))
            state.on_context(e.step, s.truth.question, compressed, ecfg)

    def run_edge(s: ReplayStep, view: es.StepView, run: es.RunEdge, t_ns: int) -> int:
        shown, boxes, viewed = es.edge_view(s.rgb, run, ecfg)
        history = [(t.question, t.answer, t.from_cloud) for t in run.history]
        text = svlm.answer(world.label, s, history, boxes, ecfg.focus_alpha,
                           shown if viewed else None, _view_key(run) if viewed else '')
        done = t_ns + round(cfg.edge_ms * 1e6)
        es.record_edge(view, run, text, state)
        deliver(done)  # what has arrived by the time the answer is ready
        mode = run.view if viewed else ('attention' if boxes and focus_supported else 'none')
        ans = es.finish(view, run, text, mode, state, ecfg)
        note('answer', done, s.index, ans, run)
        publish(s, done, ans)
        return done

    def take(s: ReplayStep, t_ns: int) -> int:
        """The worker takes step s at t_ns; returns when it is free again."""
        deliver(t_ns)
        note('take', t_ns, s.index)
        view = es.StepView(s.index, s.stamp_ns * 1e-9, s.truth.question)
        plan = es.plan(view, state, ecfg, focus_supported)
        if isinstance(plan, es.WaitForCloud):
            end = s.stamp_ns + round(ecfg.offload_deadline_s * 1e9)
            e = by_step.get(s.index)
            t_ns = max(e.at_ns if e is not None and e.at_ns <= end else end, t_ns)
            deliver(t_ns)
            plan = es.after_wait(view, state, ecfg, focus_supported)
        if isinstance(plan, es.FromCloud):
            at = t_ns + (round(cfg.stale_ms * 1e6) if ecfg.strategy is Strategy.CLOUD_STALE
                         else 0)
            ans = es.from_cloud(plan.note)
            note('answer', at, s.index, ans, None)
            publish(s, at, ans)
            return at
        if plan is None:
            return t_ns  # cloud_only: answers come with the cloud responses
        return run_edge(s, view, plan, t_ns)

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
    deliver(2**62)  # cloud_only: answers that land after the last step
    return RunResult(_record(strategy, network, steps, out, clouds))


def _record(strategy: str, network: str, steps: Sequence[ReplayStep],
            answers: list[AnswerRecord], clouds: list[CloudRecord]) -> RunRecord:
    return RunRecord(strategy=strategy, network_profile=network,
                     truths=[s.truth for s in steps], answers=answers, clouds=clouds)
