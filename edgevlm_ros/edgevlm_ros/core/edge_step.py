# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The edge step: how edge_svlm answers one Step, as data and pure functions (DESIGN.md §1, §3).

Why one module of 419 lines: it is the one edge step that edge_svlm_node and eval.replay_engine
share: one sequence of rules (numbered below) over one state, as dataclasses and short pure
functions. Split, a rule would sit apart from the state it reads, and the node and the engine
would import two halves that must change together.

edge_svlm_node and the evaluation's replay (eval.replay_engine) both answer steps through this
module, so a rule changed here changes both. The node reads clocks and carries messages; the
replay passes event times. What crosses steps lives in `EdgeState`; what the parameters say lives
in `EdgeConfig`. The rules, in the order a step meets them:

1. Inputs between steps (`EdgeState.on_*`):
   * a Step whose id is not above the newest one means the camera restarted: history, cloud
     answers, focus and the arbitration state are about another run and are cleared;
   * a cloud answer (CloudResponse) is kept by step id (the newest `MAX_CLOUD_RESPONSES`); every
     one that was sent, failed ones too, updates the round-trip estimate, so a slow, failing
     cloud stops looking like a fit for offload; ok ones feed the cloud's self-consistency;
   * a ContextUpdate replaces the edge's own answer in its history slot (Context Replacement),
     for the strategies that use it; one about a step newer than the newest Step is from before
     a camera restart and is ignored;
   * a FocusMask replaces the newest one unless it is older (by source step, then target step).
2. `plan`: what the step needs:
   * cloud_only: nothing (its answers are the cloud's, published on arrival: `answer_on_arrival`);
   * cloud_stale: the newest ok cloud answer, or the edge while there is none;
   * offload: when the round-trip estimate fits `offload_deadline_s`, wait for this step's own
     cloud answer until its camera stamp + the deadline (`WaitForCloud`; then `after_wait`);
     otherwise, and when the wait ends without an ok answer, the edge;
   * every other strategy: the edge model (`RunEdge`) with the history as it is now, Visual Focus
     from the newest mask when the strategy uses focus, the question is not one that skips it,
     the mask is not about a newer step and its source frame is at most `focus_max_age_s` old.
     The focus reaches the model as an attention bias, or as a crop/overlay of the frame when
     the model cannot take a bias or the mode says so (`edge_view`).
3. `record_edge` then `finish`: the edge's answer goes into its history slot (only into the
   history it was asked with: a restart in between made a new one); with edgevlm_arbitrated
   core.arbitration then decides, against the newest ok cloud answer that has arrived by then,
   whether the cloud's answer stands for the step; with edgevlm_carried core.carry decides,
   from the scene's learned horizons (core.validity, fed every ok cloud answer and every edge
   answer) and the cloud answer's tracked boxes (the newest FocusMask of its step), and a
   carried answer also takes the step's history slot (Context Replacement). `finish` returns
   the Answer's fields and its reason.

ROS-free and torch-free: plain data in, plain data out; no clocks, no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
import re

import numpy as np

from edgevlm_ros.core.arbitration import (
    ArbitrationParams,
    CloudConsistency,
    CloudView,
    EdgeAnswerLog,
    arbitrate,
)
from edgevlm_ros.core.carry import CarryParams, TrackView, carry_forward
from edgevlm_ros.core.context import ContextStore, TokenCounter, Turn, word_count
from edgevlm_ros.core.regions import Box
from edgevlm_ros.core.strategy import Strategy
from edgevlm_ros.core.validity import SceneValidity
from edgevlm_ros.core.zoom import focus_view

# How Visual Focus reaches the SVLM: an attention bias, or a different image for models whose
# attention is out of reach (ONNX exports, HTTP) or for an ablation; auto picks per model.
FOCUS_MODES = ('auto', 'attention', 'crop', 'overlay')
# Counting questions skip Visual Focus by default: focusing the counted objects makes the micro
# SVLM miscount (docs/evaluation.md).
DEFAULT_SKIP_FOCUS = r'^\s*how many\b'
# Cloud answers kept for cloud_stale and offload look-ups, newest last: a bound, not a history
# (offload needs only its own step's, cloud_stale only the newest).
MAX_CLOUD_RESPONSES = 64
# edgevlm_arbitrated, edgevlm_carried: the SVLM's own answers kept to compare with late cloud
# answers (a bound; 64 steps are 32 s at 2 Hz, longer than any cloud answer either still trusts).
MAX_OWN_ANSWERS = 64
# Weight of the newest round trip in the offload estimate (an EWMA): about the last five round
# trips count, so one slow answer does not end offloading and a cloud that slowed down for good
# stops being waited for within a few answers.
RTT_EWMA_NEW = 0.2


def check_skip_pattern(text: str) -> str | None:
    """A reason when focus.skip_questions is not a regular expression."""
    try:
        re.compile(text)
    except re.error as e:
        return f'focus.skip_questions must be a regular expression: {e}'
    return None


@dataclass(frozen=True)
class EdgeConfig:
    """What the edge step follows, from the node's parameters (rebuilt when they change)."""

    strategy: Strategy = Strategy.EDGEVLM
    history_turns: int = 8
    history_tokens: int = 512
    history_evict_block: int = 4
    focus_alpha: float = 2.0
    focus_mode: str = 'auto'
    focus_crop_margin: float = 0.25
    focus_skip_questions: str = DEFAULT_SKIP_FOCUS
    focus_max_age_s: float = 5.0
    offload_deadline_s: float = 1.0
    arbitration: ArbitrationParams = field(default_factory=ArbitrationParams)
    carry: CarryParams = field(default_factory=CarryParams)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'strategy', Strategy.parse(self.strategy))
        if self.focus_mode not in FOCUS_MODES:
            raise ValueError(f'focus mode must be one of {", ".join(FOCUS_MODES)}, got '
                             f'{self.focus_mode!r}')
        re.compile(self.focus_skip_questions)  # a bad pattern fails here, not per step

    def skips_focus(self, question: str) -> bool:
        """Whether the question is answered without Visual Focus (focus_skip_questions)."""
        pattern = self.focus_skip_questions
        return bool(pattern) and re.search(pattern, question, re.IGNORECASE) is not None

    def history_store(self, count_tokens: TokenCounter | None = None) -> ContextStore:
        """An empty history with these caps."""
        return ContextStore(max_turns=self.history_turns, max_tokens=self.history_tokens,
                            evict_block=self.history_evict_block,
                            count_tokens=count_tokens or word_count)


@dataclass(frozen=True)
class StepView:
    """The step being answered: its id, the camera stamp of its frame and its question."""

    step_id: int
    stamp_s: float
    question: str


@dataclass(frozen=True)
class CloudNote:
    """A CloudResponse as the edge step needs it."""

    step_id: int
    stamp_s: float            # camera stamp of the frame it answers
    question: str
    answer: str
    ok: bool
    rtt_s: float | None       # None: the step was never sent (DROPPED)
    regions: int = 0          # objects the answer grounded (boxes)


@dataclass(frozen=True)
class MaskNote:
    """A FocusMask: boxes of the cloud answer of `source_step`, carried to `target_step`."""

    source_step: int
    target_step: int
    boxes: tuple[Box, ...]
    source_stamp_s: float     # camera stamp of the frame the cloud grounded the boxes on
    shift: float | None = None  # largest move of the tracked boxes (share of the width)
    quality: float = 1.0      # the weakest box's tracking quality, 0..1 (FocusMask.quality)


# ------------------------------------------------------------------------------- plans

@dataclass(frozen=True)
class FromCloud:
    """Answer the step with this cloud answer now."""

    note: CloudNote


@dataclass(frozen=True)
class WaitForCloud:
    """offload: wait for the step's own cloud answer until `until_s` (camera time)."""

    until_s: float


@dataclass(frozen=True)
class RunEdge:
    """Run the edge model with this history and this focus."""

    history: tuple[Turn, ...]
    view: str                   # 'attention', 'crop', 'overlay' or 'none'
    boxes: tuple[Box, ...]      # the fresh mask's boxes ('none': empty)
    mask: MaskNote | None       # the mask they come from
    focus_age_s: float          # age of its source frame at this step (0 without a mask)
    focus_skipped: bool         # the question skips Visual Focus
    focus_too_old: bool         # a mask was there, but older than focus_max_age_s
    offload_fallback: bool      # offload wanted the cloud and did not get it in time
    generation: int             # the history's generation it was read from


Plan = FromCloud | WaitForCloud | RunEdge | None


@dataclass(frozen=True)
class StepAnswer:
    """The Answer's fields that the step decides (the node adds stamps, latency and timings)."""

    text: str
    source: str                 # 'edge' or 'cloud'
    reason: str = ''
    newest_cloud_step: int = -1
    history_turns: int = 0
    replaced_turns: int = 0
    focus_mode: str = 'none'    # how the focus reached the model; 'none': it did not
    focus_source_step: int = 0
    focus_age_s: float = 0.0
    arbitration: str = ''       # edgevlm_arbitrated / _carried: the decided source, else ''
    carried: bool = False       # edgevlm_carried carried a cloud answer forward for this step

    @property
    def focus_applied(self) -> bool:
        return self.focus_mode != 'none'


# ------------------------------------------------------------------------------- state

class EdgeState:
    """What one edge step leaves for the next (module docstring, rule 1). Not thread-safe."""

    def __init__(self, cfg: EdgeConfig, count_tokens: TokenCounter | None = None) -> None:
        self._count_tokens = count_tokens
        self.store = cfg.history_store(count_tokens)
        self.generation = 0       # bumped whenever the history is made anew
        self.cloud: OrderedDict[int, CloudNote] = OrderedDict()
        self.newest_ok: CloudNote | None = None
        self.focus: MaskNote | None = None
        self.own = EdgeAnswerLog(MAX_OWN_ANSWERS)
        self.consistency = CloudConsistency()
        self.validity = SceneValidity(cfg.carry.validity)
        self.rtt_ewma_s: float | None = None
        self.newest_step_id: int | None = None

    def new_history(self, cfg: EdgeConfig) -> None:
        """An empty history with cfg's caps (the caps changed, or the camera restarted)."""
        self.store = cfg.history_store(self._count_tokens)
        self.generation += 1

    def reset_on_restart(self, cfg: EdgeConfig) -> None:
        """The camera restarted: everything learnt is about another run."""
        self.new_history(cfg)
        self.cloud.clear()
        self.newest_ok = None
        self.focus = None
        self.own.clear()
        self.consistency = CloudConsistency()
        self.validity.reset()

    def on_step(self, step_id: int, cfg: EdgeConfig) -> bool:
        """A Step arrived; True when its id says the camera restarted (state cleared)."""
        restarted = self.newest_step_id is not None and step_id <= self.newest_step_id
        if restarted:
            self.reset_on_restart(cfg)
        self.newest_step_id = step_id
        return restarted

    def from_before_a_restart(self, step_id: int) -> bool:
        """Cloud context about a step newer than the newest Step predates a camera restart."""
        return self.newest_step_id is not None and step_id > self.newest_step_id

    def on_cloud(self, note: CloudNote) -> None:
        if note.rtt_s is not None:
            self.rtt_ewma_s = note.rtt_s if self.rtt_ewma_s is None else (
                (1.0 - RTT_EWMA_NEW) * self.rtt_ewma_s + RTT_EWMA_NEW * note.rtt_s)
        self.cloud[note.step_id] = note
        while len(self.cloud) > MAX_CLOUD_RESPONSES:
            self.cloud.popitem(last=False)
        if note.ok:
            self.newest_ok = note
            self.consistency.add(note.stamp_s, note.question, note.answer)
            self.validity.add_cloud(note.step_id, note.question, note.answer)

    def on_context(self, step_id: int, question: str, text: str, cfg: EdgeConfig) -> str:
        """
        Put a compressed cloud answer into its history slot; say what became of it.

        'applied', 'dropped' (its slot was evicted), 'from_before_restart' or 'unused' (the
        strategy does not replace).
        """
        if not cfg.strategy.uses_replacement:
            return 'unused'
        if self.from_before_a_restart(step_id):
            return 'from_before_restart'
        return 'applied' if self.store.apply_cloud(step_id, question, text) else 'dropped'

    def on_mask(self, mask: MaskNote) -> str:
        """
        Keep the newest FocusMask; say what became of this one.

        'kept', 'older' (a newer mask is kept) or 'from_before_restart' (it would outrank every
        mask of the new run and steer nothing).
        """
        if self.from_before_a_restart(mask.source_step):
            return 'from_before_restart'
        old = self.focus
        if old is not None and (mask.source_step, mask.target_step) < (
                old.source_step, old.target_step):
            return 'older'
        self.focus = mask
        return 'kept'


# ------------------------------------------------------------------------------- the step

def answer_on_arrival(note: CloudNote, cfg: EdgeConfig) -> StepAnswer | None:
    """cloud_only: every ok cloud answer is the answer to its own step, published on arrival."""
    if cfg.strategy is not Strategy.CLOUD_ONLY or not note.ok:
        return None
    return StepAnswer(note.answer, 'cloud', newest_cloud_step=note.step_id)


def plan(step: StepView, state: EdgeState, cfg: EdgeConfig, focus_supported: bool) -> Plan:
    """What answering `step` needs now (module docstring, rule 2)."""
    strategy = cfg.strategy
    if strategy is Strategy.CLOUD_ONLY:
        return None
    if strategy is Strategy.CLOUD_STALE and state.newest_ok is not None:
        return FromCloud(state.newest_ok)
    if strategy is Strategy.OFFLOAD and state.rtt_ewma_s is not None \
            and state.rtt_ewma_s <= cfg.offload_deadline_s:
        return WaitForCloud(step.stamp_s + cfg.offload_deadline_s)
    return _run_edge(step, state, cfg, focus_supported, offload_fallback=False)


def cloud_landed(step: StepView, state: EdgeState) -> bool:
    """Whether the step's own cloud answer (or its failure) has arrived: a wait can end."""
    return step.step_id in state.cloud


def after_wait(step: StepView, state: EdgeState, cfg: EdgeConfig,
               focus_supported: bool) -> FromCloud | RunEdge:
    """Offload after `WaitForCloud`: the step's own ok cloud answer, else the edge."""
    got = state.cloud.get(step.step_id)
    if got is not None and got.ok:
        return FromCloud(got)
    # Not sent, failed, or later than the deadline.
    return _run_edge(step, state, cfg, focus_supported, offload_fallback=True)


def _run_edge(step: StepView, state: EdgeState, cfg: EdgeConfig, focus_supported: bool,
              offload_fallback: bool) -> RunEdge:
    mask, age, skipped, too_old = None, 0.0, False, False
    if cfg.strategy.uses_focus:
        if cfg.skips_focus(step.question):
            skipped = True
        elif state.focus is not None and state.focus.source_step <= step.step_id:
            age = step.stamp_s - state.focus.source_stamp_s
            if age > cfg.focus_max_age_s:
                too_old = True
            else:
                mask = state.focus
    view = 'none'
    if mask is not None and mask.boxes:
        view = cfg.focus_mode
        if view == 'auto':
            view = 'attention' if focus_supported else 'crop'
    return RunEdge(tuple(state.store.history()), view, mask.boxes if mask else (), mask, age,
                   skipped, too_old, offload_fallback, state.generation)


def ask_run(step: StepView, state: EdgeState, cfg: EdgeConfig, focus_supported: bool,
            steps_question: str) -> RunEdge:
    """
    Plan a one-off question (an Ask) with the step stream's context.

    Its history; its Visual Focus only when the ask is the steps' own question (the mask's
    boxes answer that one).
    """
    run = _run_edge(step, state, cfg, focus_supported, offload_fallback=False)
    if step.question.strip().casefold() == steps_question.strip().casefold():
        return run
    return replace(run, view='none', boxes=(), mask=None, focus_age_s=0.0, focus_skipped=False,
                   focus_too_old=False)


def from_cloud(note: CloudNote) -> StepAnswer:
    """The Answer of a step that a cloud answer stands for (cloud_stale, offload)."""
    return StepAnswer(note.answer, 'cloud', newest_cloud_step=note.step_id)


def edge_view(rgb: np.ndarray, run: RunEdge, cfg: EdgeConfig
              ) -> tuple[np.ndarray, list[Box], bool]:
    """
    Give the image and attention boxes for the model, and whether the image was changed.

    'crop' and 'overlay' show the focus in the image and pass no boxes; a crop of the whole
    frame changes nothing and does not count as focus.
    """
    if run.view in ('crop', 'overlay'):
        kwargs = {'margin': cfg.focus_crop_margin} if run.view == 'crop' else {}
        shown, crop = focus_view(rgb, list(run.boxes), run.view, **kwargs)
        return shown, [], crop.zoomed or run.view == 'overlay'
    return rgb, list(run.boxes) if run.view == 'attention' else [], False


def record_edge(step: StepView, run: RunEdge, text: str, state: EdgeState) -> bool:
    """
    Put the edge's answer into its history slot; True when recorded.

    Only into the history it was asked with: after a restart or new caps this step's id would
    sit in the new one as its newest turn.
    """
    if run.generation != state.generation:
        return False
    state.store.record_edge(step.step_id, step.question, text)
    return True


def finish(step: StepView, run: RunEdge, text: str, focus_mode: str, state: EdgeState,
           cfg: EdgeConfig) -> StepAnswer:
    """
    Give the Answer of an edge step; edgevlm_arbitrated and _carried weigh the newest cloud answer.

    `focus_mode` is how the focus reached the model: run.view when the image was changed,
    'attention' when the model applied the bias, else 'none'.
    """
    replaced = [t for t in run.history if t.from_cloud]
    newest_cloud = max((t.step_id for t in replaced), default=-1)
    focused = focus_mode != 'none' and run.mask is not None
    answer = StepAnswer(
        text, 'edge', '', newest_cloud, len(run.history), len(replaced),
        focus_mode if focused else 'none',
        run.mask.source_step if focused else 0, run.focus_age_s if focused else 0.0)
    if not cfg.strategy.weighs_cloud:
        return answer
    cloud = state.newest_ok
    mask = state.focus if cloud is not None and state.focus is not None \
        and state.focus.source_step == cloud.step_id else None
    view = None if cloud is None else CloudView(
        cloud.step_id, cloud.stamp_s, cloud.question, cloud.answer,
        None if mask is None else mask.shift)
    own = None if cloud is None else state.own.answer_at(cloud.step_id, step.question)
    if cfg.strategy is Strategy.EDGEVLM_CARRIED:
        track = None if mask is None or cloud is None else TrackView(
            mask.source_step, mask.target_step, mask.boxes, cloud.regions, mask.quality)
        decision, candidates = carry_forward(step.question, step.step_id, step.stamp_s, text,
                                             view, track, state.validity, own, cfg.carry)
        state.validity.propose(step.step_id, step.question, candidates)
        if decision.source == 'cloud' and run.generation == state.generation:
            state.store.apply_cloud(step.step_id, step.question, decision.answer)
    else:
        decision = arbitrate(step.question, step.stamp_s, text, view, own, cfg.arbitration,
                             state.consistency.estimate)
    state.own.record(step.step_id, step.question, text)
    if decision.source == 'cloud':
        return replace(answer, text=decision.answer, source='cloud', reason=decision.reason,
                       newest_cloud_step=decision.cloud_step, arbitration='cloud',
                       carried=decision.carried)
    return replace(answer, reason=decision.reason, arbitration='edge')
