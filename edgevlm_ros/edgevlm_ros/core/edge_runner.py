# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The edge step as a running node needs it, with its threads and clocks.

core.edge_step's state sits under one lock, fed from the executor thread and answered from the
model thread.

edge_svlm_node converts messages and publishes; this class keeps the rules that involve threads
and clocks, ROS-free so they are tested without ROS:

1. Inputs (`on_step`, `on_context`, `on_mask`, `on_cloud`) update the state under the lock and
   count what became of them in `counters` (the node's diagnostics keys).
2. `answer` runs one step on the model thread: it plans under the lock; offload's wait releases
   the lock while it waits, wakes on every cloud answer and checks its deadline on `now_s` (the
   node's clock: in a sped-up replay ROS seconds pass faster than wall seconds, so the wait also
   wakes every `OFFLOAD_POLL_S` of wall time); the model runs without the lock; the answer goes
   into the history and is arbitrated under the lock again.
3. `configure` makes a new state for a newly loaded model; `reconfigure` applies new parameters
   (new history caps restart the history empty); `release` drops the state.
4. `ask` answers a one-off question on the model thread, with the step stream's history (and
   its Visual Focus for the steps' own question) or without: it reads the state, never writes
   it, so an Ask leaves the history as it was. Its prompt shares the history's KV-cached prefix
   when it uses the context; one without it costs the next step a full prefill of the history.
5. `warm_up` answers once, during the load, with the longest prompt the history caps allow: the
   first real step is not a cold one, and the memory the longest prompt takes is taken then
   rather than minutes into a run, when a long history is first re-prefilled at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import threading
import time
from typing import Any

import numpy as np

from edgevlm_ros.core import edge_step as es
from edgevlm_ros.core.stats import Counters
from edgevlm_ros.core.strategy import Strategy

# offload: how often a waiting step checks its deadline (wall s).
OFFLOAD_POLL_S = 0.02

# warm_up's filler history: what it says does not matter, its length does.
WARM_UP_QUESTION = 'What is in front of the robot?'
WARM_UP_WORDS = ('a', 'red', 'square', 'left', 'of', 'the', 'blue', 'circle', 'on', 'table')

_CONTEXT_COUNTERS = {'applied': 'context_replacements',
                     'from_before_restart': 'context_updates_from_before_restart',
                     'dropped': 'context_updates_dropped'}


@dataclass(frozen=True)
class Answered:
    """What one step produced: the Answer's fields and, when the model ran, its result."""

    answer: es.StepAnswer
    result: Any = None          # the backend's SvlmResult (None: a cloud answer stood)


@dataclass(frozen=True)
class AskAnswered:
    """What a one-off question produced: the backend's result and the history it was given."""

    result: Any                 # the backend's SvlmResult
    history_turns: int = 0
    replaced_turns: int = 0     # of them, turns that hold cloud text


class EdgeRunner:
    """core.edge_step for a node: one lock, the offload wait, the model call (module docs)."""

    def __init__(self, cfg: es.EdgeConfig, counters: Counters) -> None:
        self._lock = threading.Lock()
        self._cloud_arrived = threading.Condition(self._lock)
        self.cfg = cfg
        self.counters = counters
        self.state: es.EdgeState | None = None
        self._stopping = False

    # ------------------------------------------------------------------ life
    def configure(self, count_tokens: Callable[[str], int] | None) -> None:
        with self._lock:
            self.state = es.EdgeState(self.cfg, count_tokens)
            self._stopping = False

    def reconfigure(self, cfg: es.EdgeConfig, history_caps_changed: bool) -> bool:
        """Apply new parameters; True when the history was restarted empty."""
        with self._lock:
            self.cfg = cfg
            if history_caps_changed and self.state is not None:
                self.state.new_history(cfg)
                return True
        return False

    def warm_up(self, svlm: Any, longest_edge: int) -> float:
        """
        Answer once with a full history (section 4 of the module docs); the seconds it took.

        `history_turns` turns of about `history_tokens / history_turns` tokens each (question
        and answer, as the history counts them), a grey 4:3 frame of `longest_edge` px, the
        model's own token cap. The edge state is not touched.
        """
        cfg, count = self.cfg, getattr(svlm, 'count_tokens', None)
        history: list[tuple[str, str]] = []
        if cfg.history_turns > 0 and count is not None:
            share = max(1, cfg.history_tokens // cfg.history_turns)
            words: list[str] = []
            for i in range(4 * share):  # a word costs at least one token
                words.append(WARM_UP_WORDS[i % len(WARM_UP_WORDS)])
                if count(WARM_UP_QUESTION) + count(' '.join(words)) > share:
                    words.pop()
                    break
            history = [(WARM_UP_QUESTION, ' '.join(words))] * cfg.history_turns
        frame = np.full((longest_edge * 3 // 4, longest_edge, 3), 128, np.uint8)
        t0 = time.monotonic()
        svlm.answer(frame, WARM_UP_QUESTION, history, history_sources=[False] * len(history))
        return time.monotonic() - t0

    def stop_waiting(self) -> None:
        """End an offload wait now (the worker is stopping)."""
        with self._lock:
            self._stopping = True
            self._cloud_arrived.notify_all()

    def release(self) -> None:
        with self._lock:
            self.state = None

    @property
    def history_turns(self) -> int:
        state = self.state
        return len(state.store) if state is not None else 0

    def validity(self) -> dict[str, object]:
        """edgevlm_carried: per question kind, how long a standing cloud answer beats the edge."""
        with self._lock:
            if self.state is None or self.cfg.strategy is not Strategy.EDGEVLM_CARRIED:
                return {}
            return {'refereed_steps': self.state.validity.refereed,
                    **self.state.validity.summary()}

    def hold(self, question: str) -> tuple[str, float, float] | None:
        """edgevlm_carried: (kind, s a standing answer holds, duels) for `question`; else None."""
        with self._lock:
            if self.state is None or self.cfg.strategy is not Strategy.EDGEVLM_CARRIED:
                return None
            return self.state.validity.hold(question)

    # ------------------------------------------------------------------ inputs
    def on_step(self, step_id: int) -> bool:
        """A Step arrived; True when its id says the camera restarted (context cleared)."""
        with self._lock:
            if self.state is None or not self.state.on_step(step_id, self.cfg):
                return False
        self.counters.inc('step_id_resets')
        return True

    def on_context(self, step_id: int, question: str, text: str) -> str:
        self.counters.inc('context_updates_received')
        with self._lock:
            if self.state is None:
                return 'unused'
            outcome = self.state.on_context(step_id, question, text, self.cfg)
        if outcome in _CONTEXT_COUNTERS:
            self.counters.inc(_CONTEXT_COUNTERS[outcome])
        return outcome

    def on_mask(self, mask: es.MaskNote) -> None:
        self.counters.inc('focus_masks_received')
        with self._lock:
            outcome = self.state.on_mask(mask) if self.state is not None else 'kept'
        if outcome == 'from_before_restart':
            self.counters.inc('focus_masks_from_before_restart')

    def on_cloud(self, note: es.CloudNote) -> es.StepAnswer | None:
        """A cloud answer arrived; returns the answer to publish now (cloud_only), if any."""
        self.counters.inc('cloud_responses_received')
        with self._lock:
            if self.state is None:
                return None
            self.state.on_cloud(note)
            self._cloud_arrived.notify_all()
            return es.answer_on_arrival(note, self.cfg)

    # ------------------------------------------------------------------ answering
    def ask(self, view: es.StepView, rgb: np.ndarray, svlm, *, use_context: bool,
            steps_question: str, max_new_tokens: int | None,
            on_token: Callable[[Any], bool] | None = None) -> AskAnswered:
        """A one-off question (module docs, rule 4)."""
        history: tuple = ()
        shown, boxes = rgb, []
        with self._lock:
            cfg, state = self.cfg, self.state
            if use_context and state is not None:
                run = es.ask_run(view, state, cfg, svlm.focus_supported, steps_question)
                history = run.history
                shown, boxes, _ = es.edge_view(rgb, run, cfg)
        result = svlm.answer(shown, view.question, [(t.question, t.answer) for t in history],
                             focus=boxes, focus_alpha=cfg.focus_alpha,
                             max_new_tokens=max_new_tokens,
                             history_sources=[t.from_cloud for t in history], on_token=on_token)
        return AskAnswered(result, len(history), sum(t.from_cloud for t in history))

    def answer(self, view: es.StepView, image: Callable[[], np.ndarray], svlm,
               now_s: Callable[[], float]) -> Answered | None:
        """
        Answer one step on the model thread (module docs, rule 2).

        `image` decodes the step's frame (raise core.images.ImageDecodeError for a bad one; it
        is called only when the model runs). None: nothing to publish (cloud_only, stopped).
        """
        with self._lock:
            cfg, state = self.cfg, self.state
            if state is None:
                return None
            plan = es.plan(view, state, cfg, svlm.focus_supported)
            if isinstance(plan, es.WaitForCloud):
                while not self._stopping and not es.cloud_landed(view, state):
                    remaining = plan.until_s - now_s()
                    if remaining <= 0:
                        break
                    self._cloud_arrived.wait(timeout=min(remaining, OFFLOAD_POLL_S))
                plan = es.after_wait(view, state, cfg, svlm.focus_supported)
        if isinstance(plan, es.FromCloud):
            return Answered(es.from_cloud(plan.note))
        if not isinstance(plan, es.RunEdge):
            return None
        rgb = image()
        for flag, counter in ((plan.focus_skipped, 'focus_skipped_questions'),
                              (plan.focus_too_old, 'focus_masks_too_old'),
                              (plan.offload_fallback, 'offload_fallbacks')):
            if flag:
                self.counters.inc(counter)
        shown, boxes, viewed = es.edge_view(rgb, plan, cfg)
        result = svlm.answer(shown, view.question,
                             [(t.question, t.answer) for t in plan.history], focus=boxes,
                             focus_alpha=cfg.focus_alpha,
                             history_sources=[t.from_cloud for t in plan.history])
        mode = plan.view if viewed else ('attention' if result.focus_applied else 'none')
        with self._lock:
            es.record_edge(view, plan, result.text, state)
            answer = es.finish(view, plan, result.text, mode, state, cfg)
        if answer.arbitration:
            self.counters.inc(f'arbitration_{answer.arbitration}')
        if answer.carried:
            self.counters.inc('carried_answers')
        return Answered(answer, result)
