# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Arbitration: answer a step from the newest cloud answer, or from the edge SVLM, and say why.

The strategy `edgevlm_arbitrated` runs the edge SVLM with Context Transfer on every step, as
`edgevlm` does, and then decides what the robot is told (`arbitrate`):

* the newest cloud answer, when it is an answer to the same question, its frame is at most
  `max_age_s` (0.75 s) older than the step's, and the cloud does not contradict itself on more
  than `max_self_disagreement` (45 %) of consecutive answers to one question about frames at
  most 1 s apart (`CloudConsistency`: a reliability signal that needs no ground truth; a cloud
  wrong 30 % of the time contradicts itself about twice as often as one wrong 10 %);
* optional change tests (off by default; on the tuning worlds they cost more right cloud
  answers than they caught changes): the edge SVLM gave the same answer on the cloud's frame
  as it gives now (`require_edge_agreement`), the boxes the cloud grounded have not moved
  further than `max_box_shift` (share of the frame width) since; within `trust_age_s` of its
  frame the cloud answer wins without them;
* otherwise the edge SVLM's own answer (with Context Transfer in its history).

Decided when the SVLM's answer is ready, with the newest cloud answer that has arrived by then,
so an answer leaves at edge latency (a cloud answer landing during the forward pass is used).
Every decision carries a one-line reason (`Arbitration.reason`) for the Answer and the logs.

ROS-free, torch-free; the caller keeps the state (`EdgeAnswerLog`: the SVLM's own answers by
step, bounded; `CloudConsistency`: one estimate) and passes it in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
import math
import re

from edgevlm_ros.core.scoring import normalise, pick_choice

SOURCES = ('edge', 'cloud')
# Multiple-choice options written into the question: "(a) left (b) centre ...".
_OPTIONS = re.compile(r'\(([a-z])\)\s*([^()]+?)\s*(?=\([a-z]\)|$)')


@dataclass(frozen=True)
class CloudView:
    """The newest cloud answer the edge has, as arbitration needs it."""

    step_id: int
    stamp_s: float       # the stamp of the frame the cloud answered
    question: str
    answer: str
    box_shift: float | None = None  # largest move of its boxes since its frame (share of width)


@dataclass(frozen=True)
class ArbitrationParams:
    """When a cloud answer may stand for a step; defaults tuned on world seeds 300-309."""

    max_age_s: float = 0.75         # older cloud answers never stand for a step
    trust_age_s: float = 0.0        # younger ones stand without the change test (0: off)
    # The SVLM's answer must not have changed since the cloud's frame. Off by default: on the
    # tuning worlds it sent right cloud answers to the edge more often than it caught changes.
    require_edge_agreement: bool = False
    max_box_shift: float | None = None    # None: boxes are not looked at
    # The cloud is not trusted while it contradicts itself on more than this share of
    # consecutive answers to one question (CloudConsistency); None: always trusted.
    max_self_disagreement: float | None = 0.45

    def __post_init__(self) -> None:
        for name in ('max_age_s', 'trust_age_s'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f'{name} must be a finite number >= 0, got {value!r}')
        if self.max_self_disagreement is not None and not (
                0 <= self.max_self_disagreement <= 1):
            raise ValueError('max_self_disagreement must be in [0, 1] or None, got '
                             f'{self.max_self_disagreement!r}')
        if self.max_box_shift is not None and not (
                math.isfinite(self.max_box_shift) and self.max_box_shift >= 0):
            raise ValueError(f'max_box_shift must be >= 0 or None, got {self.max_box_shift!r}')


@dataclass(frozen=True)
class Arbitration:
    """What the robot is told for one step, and why."""

    source: str          # 'edge' or 'cloud'
    answer: str
    reason: str
    cloud_step: int = -1     # the cloud answer's step when source is 'cloud' (or was weighed)
    cloud_age_s: float = math.nan
    carried: bool = False    # core.carry carried the cloud answer forward by its track


def question_choices(question: str) -> tuple[str, ...]:
    """The options written into a multiple-choice question ("(a) left (b) centre"), or ()."""
    return tuple(m.group(2) for m in _OPTIONS.finditer(question))


def same_answer(a: str, b: str, question: str = '') -> bool:
    """Whether two answers say the same (normalised text, or the same option picked)."""
    choices = question_choices(question)
    if choices:
        pa, pb = pick_choice(a, choices), pick_choice(b, choices)
        if pa is not None or pb is not None:
            return pa == pb
    return normalise(a) == normalise(b)


def cloud_unusable(question: str, cloud: CloudView | None) -> str | None:
    """Why the newest cloud answer cannot stand for a step at any age, or None."""
    if cloud is None:
        return 'no cloud answer yet'
    if cloud.question.strip() != question.strip():
        return f'the newest cloud answer (step {cloud.step_id}) is to another question'
    if not cloud.answer.strip():
        return f'the cloud answer of step {cloud.step_id} is empty'
    return None


def arbitrate(question: str, stamp_s: float, edge_answer: str, cloud: CloudView | None,
              edge_answer_at_cloud_step: str | None,
              params: ArbitrationParams = ArbitrationParams(),
              cloud_disagreement: float | None = None) -> Arbitration:
    """
    Decide the answer for a step (module docstring).

    `edge_answer` is the SVLM's answer to this step; `cloud` the newest cloud answer that has
    arrived; `edge_answer_at_cloud_step` the SVLM's own answer to the cloud's step (None: the
    edge did not answer that step, e.g. it was busy); `cloud_disagreement` the cloud's
    self-disagreement estimate (CloudConsistency.estimate; None: not known yet).
    """
    def edge(reason: str, age: float = math.nan, step: int = -1) -> Arbitration:
        return Arbitration('edge', edge_answer, reason, step, age)

    unusable = cloud_unusable(question, cloud)
    if cloud is None or unusable is not None:
        return edge(str(unusable), step=-1 if cloud is None else cloud.step_id)
    age = max(0.0, float(stamp_s) - float(cloud.stamp_s))
    # A slow edge can be answering a step older than the cloud's newest answer.
    old = (f'{age:.1f} s old' if float(stamp_s) >= float(cloud.stamp_s)
           else f'{float(cloud.stamp_s) - float(stamp_s):.1f} s newer than this step')
    if params.max_self_disagreement is not None and cloud_disagreement is not None \
            and cloud_disagreement > params.max_self_disagreement:
        return edge(f'the cloud contradicts itself on {cloud_disagreement:.0%} of consecutive '
                    f'answers (> {params.max_self_disagreement:.0%}): not trusted', age,
                    cloud.step_id)
    if age > params.max_age_s:
        return edge(f'cloud answer of step {cloud.step_id} is {age:.1f} s old '
                    f'(> {params.max_age_s:g} s)', age, cloud.step_id)
    if params.trust_age_s > 0 and age <= params.trust_age_s:
        return Arbitration('cloud', cloud.answer, f'cloud answer of step {cloud.step_id}, '
                           f'{old} (trusted up to {params.trust_age_s:g} s)',
                           cloud.step_id, age)
    if params.max_box_shift is not None and cloud.box_shift is not None \
            and cloud.box_shift > params.max_box_shift:
        return edge(f'the objects of the cloud answer of step {cloud.step_id} moved '
                    f'{cloud.box_shift:.2f} of the frame since', age, cloud.step_id)
    if params.require_edge_agreement:
        if edge_answer_at_cloud_step is None:
            return edge(f'no edge answer on the frame of cloud step {cloud.step_id} to tell '
                        'whether the scene changed', age, cloud.step_id)
        if not same_answer(edge_answer_at_cloud_step, edge_answer, question):
            return edge(f'the edge answer changed since cloud step {cloud.step_id} '
                        f'({edge_answer_at_cloud_step!r} -> {edge_answer!r}): the scene moved',
                        age, cloud.step_id)
        why = 'the edge answer has not changed since'
    else:
        why = 'no change test'
    return Arbitration('cloud', cloud.answer, f'cloud answer of step {cloud.step_id}, '
                       f'{old}, same question; {why}', cloud.step_id, age)


class EdgeAnswerLog:
    """The SVLM's own answers by step id, the newest `capacity` (a bound, not a history)."""

    def __init__(self, capacity: int = 64) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f'capacity must be an int >= 1, got {capacity!r}')
        self.capacity = capacity
        self._answers: OrderedDict[int, tuple[str, str]] = OrderedDict()

    def record(self, step_id: int, question: str, answer: str) -> None:
        self._answers[int(step_id)] = (question, answer)
        self._answers.move_to_end(int(step_id))
        while len(self._answers) > self.capacity:
            self._answers.popitem(last=False)

    def answer_at(self, step_id: int, question: str) -> str | None:
        """The SVLM's answer to step_id if it was to `question`, else None."""
        got = self._answers.get(int(step_id))
        if got is None or got[0].strip() != question.strip():
            return None
        return got[1]

    def clear(self) -> None:
        self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)


class CloudConsistency:
    """
    How often the cloud contradicts itself: a reliability signal that needs no ground truth.

    Two ok cloud answers to the same question about frames at most `max_gap_s` apart should say
    the same unless the scene changed in between; a cloud that is often wrong says different
    things about nearly the same frame. `add` every ok cloud answer in arrival order; `estimate`
    is an exponentially weighted share (weight `alpha`) of such pairs that disagree, None until
    `min_pairs` pairs were seen.
    """

    def __init__(self, max_gap_s: float = 1.0, alpha: float = 0.1, min_pairs: int = 5) -> None:
        if not (math.isfinite(max_gap_s) and max_gap_s > 0):
            raise ValueError(f'max_gap_s must be > 0, got {max_gap_s!r}')
        if not 0 < alpha <= 1:
            raise ValueError(f'alpha must be in (0, 1], got {alpha!r}')
        if isinstance(min_pairs, bool) or not isinstance(min_pairs, int) or min_pairs < 1:
            raise ValueError(f'min_pairs must be an int >= 1, got {min_pairs!r}')
        self.max_gap_s, self.alpha, self.min_pairs = float(max_gap_s), float(alpha), min_pairs
        self.pairs = 0
        self._rate = 0.0
        self._last: tuple[float, str, str] | None = None

    def add(self, stamp_s: float, question: str, answer: str) -> None:
        last, self._last = self._last, (float(stamp_s), question, answer)
        if last is None or last[1].strip() != question.strip() \
                or not 0 <= stamp_s - last[0] <= self.max_gap_s:
            return
        differ = 0.0 if same_answer(last[2], answer, question) else 1.0
        self.pairs += 1
        self._rate = differ if self.pairs == 1 else (
            self.alpha * differ + (1.0 - self.alpha) * self._rate)

    @property
    def estimate(self) -> float | None:
        return self._rate if self.pairs >= self.min_pairs else None
