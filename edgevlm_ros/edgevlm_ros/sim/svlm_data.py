# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Training and held-out data for the micro SVLM: synthetic-world frames with questions and histories.

A training example is one frame and several questions about it; each question carries a chat
history of earlier turns, as the edge node would send it: question/answer pairs about *earlier*
frames of the same scene (mostly the same question, as a robot asks it every step), each marked
as the edge's own answer or as a cloud answer that Context Replacement put there. Which turns
hold cloud text follows the edge node's history under a cloud latency (HistoryPlan): the newest
turns are the edge's own (the cloud's answers to them are still in flight), older ones hold a
cloud answer every few steps (one request in flight at a time). Cloud answers are wrong at a rate
drawn per frame; own answers carry no information about the truth (see OWN_REPEAT), so the model
learns to read the image and to weigh a cloud answer by its age against it.

Seeds: training draws world seeds from TRAIN_SEED_BASE up; seeds below it (0 .. 9,999) are
reserved for held-out evaluation and the evaluation bags, so no held-out scene is ever trained on.

Curriculum (CURRICULUM): one large object on a plain scene first, then more and smaller ones,
then the evaluation world itself (Layout defaults: 4-5 objects, 1-2 pillars).

No ROS, no torch: numpy and the synthetic world only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import cv2
import numpy as np

from edgevlm_ros.sim.synthworld import (
    DEFAULT_LAYOUT,
    LOCATIONS,
    NONE_ANSWER,
    NOT_VISIBLE,
    PALETTE,
    QUESTION_TYPES,
    SHAPES,
    WHERE_CHOICES,
    Episode,
    FrameState,
    Layout,
    Question,
)

TRAIN_SEED_BASE = 10_000
# A scene question: every aux-label cell says which colours and shapes are in it.
AUX_CLASSES = (*PALETTE, *SHAPES)
# How long an episode of training frames lasts (s of scene time) and the step spacing of
# history turns (s of scene time: 0.5 s steps at pace 0.3 .. 1).
EPISODE_S = 20.0
HISTORY_STEP_S = (0.15, 0.5)
# The edge node keeps 8 turns by default (history.max_turns).
MAX_HISTORY = 8
# Per frame, the share of wrong answers among the cloud's history turns (drawn from these): an
# LVLM is usually right (the simulated one 90 %), sometimes often wrong.
CLOUD_ERRORS = (0.0, 0.0, 0.1, 0.1, 0.2, 0.5)
# The edge's own turns in training say nothing about the truth: answers drawn from the question's
# answer space, each own turn repeating the previous own answer to the same question with this
# probability (an edge repeats itself). Own answers are the model's reading of nearly the same
# frames, so they add nothing to its reading of the current one; a first fine-tune with own turns
# that were truths at an error rate (0-100 %) learned to trust them, and replaying its own
# answers cost it 9 points against answering alone (75.0 % -> 65.7 % over 600 held-out steps).
OWN_REPEAT = 0.8
# Histories with no cloud turn at all (edge_only, the cloud down or slower than the history).
NO_CLOUD_SHARE = 0.25
# A cloud answer a history plan expects that never came (timeout, dropped step).
CLOUD_LOSS = 0.1


@dataclass(frozen=True)
class Stage:
    """One curriculum stage: a layout, its share of the training steps."""

    name: str
    layout: Layout
    share: float


CURRICULUM: tuple[Stage, ...] = (
    Stage('one-large', Layout(objects=(1, 1), pillars=(0, 0), size=1.6, colours=1), 0.10),
    Stage('few', Layout(objects=(1, 3), pillars=(0, 1), size=1.25, colours=3), 0.20),
    Stage('world', DEFAULT_LAYOUT, 0.70),
)


@dataclass(frozen=True)
class HistoryPlan:
    """
    Which history turns hold cloud text, and how often own and cloud answers are wrong.

    Ages count steps back from the current one (1 = the newest turn). With one cloud request in
    flight and a round trip of about `stride` steps, the newest `lag` turns are still the edge's
    own (their cloud answers have not landed), and below them every `stride`-th turn holds a
    cloud answer (the steps that were sent). lag = MAX_HISTORY: no cloud turn at all.
    """

    lag: int
    stride: int
    own_error: float | None   # None: own answers independent of the truth (OWN_REPEAT)
    cloud_error: float
    cloud_loss: float = 0.0   # share of the expected cloud answers that never came

    def is_cloud(self, age: int) -> bool:
        return age > self.lag and (age - self.lag - 1) % self.stride == 0

    @classmethod
    def draw(cls, rng: np.random.Generator, error: float | None = None) -> HistoryPlan:
        """A plan as the edge node meets them; `error` makes both kinds of turn truths at it."""
        stride = int(rng.integers(1, 6))
        lag = MAX_HISTORY if rng.random() < NO_CLOUD_SHARE else (
            stride - int(rng.integers(0, 2)))
        cloud = float(rng.choice(CLOUD_ERRORS)) if error is None else error
        return cls(lag, stride, error, cloud, CLOUD_LOSS)


# Every turn of the history from the cloud (Context Replacement with the cloud faster than a step).
ALL_CLOUD = HistoryPlan(lag=0, stride=1, own_error=0.0, cloud_error=0.0)
# Histories of Turn.with_history: 'own-wrong' and 'late-cloud' ask how far the model trusts its
# own turns against cloud turns (the held-out evaluation's conditions).
HISTORY_KINDS = ('none', 'as-is', 'wrong', 'own-wrong', 'late-cloud')


@dataclass
class Turn:
    """One question about the frame with its history and target answer."""

    question: str
    answer: str
    kind: str
    history: list[tuple[str, str]] = field(default_factory=list)
    history_correct: bool = True   # every history answer is its frame's truth
    history_spaces: list[tuple[str, ...]] = field(default_factory=list)  # answers each could have
    history_sources: list[bool] = field(default_factory=list)  # True: the turn holds cloud text

    def with_history(self, kind: str, rng: np.random.Generator | None = None) -> Turn:
        """
        This turn with another history (HISTORY_KINDS).

        'none': no history; 'as-is': unchanged; 'wrong': every answer wrong, sources unchanged;
        'own-wrong': every answer wrong and every turn the edge's own; 'late-cloud': the newer
        half of the turns wrong and the edge's own, the older half unchanged and from the cloud
        (the edge was wrong since the cloud's last, late, answer).
        """
        if kind == 'none':
            return Turn(self.question, self.answer, self.kind)
        if kind == 'as-is':
            return self
        if kind not in HISTORY_KINDS or rng is None:
            raise ValueError(f'history kind must be one of {", ".join(HISTORY_KINDS)} (with '
                             f'rng for the wrong ones), got {kind!r}')
        n = len(self.history)
        flip = [True] * n if kind != 'late-cloud' else [i >= n - n // 2 for i in range(n)]
        turns, sources = [], []
        for (q, a), space, src, f in zip(self.history, self.history_spaces,
                                         self.history_sources, flip):
            if f:
                others = [x for x in space if x != a]
                a = others[int(rng.integers(len(others)))]
            turns.append((q, a))
            sources.append(src if kind == 'wrong' else (False if f else True))
        correct = not any(flip) and self.history_correct
        return Turn(self.question, self.answer, self.kind, turns, correct,
                    list(self.history_spaces), sources)


@dataclass
class Example:
    """A rendered frame (RGB, camera size), its questions and the per-cell aux labels."""

    rgb: np.ndarray
    turns: list[Turn]
    stage: str
    aux: np.ndarray | None = None   # (grid, grid, len(AUX_CLASSES)) float32, 1 = present


def answer_space(q: Question) -> tuple[str, ...]:
    """Every answer a question of this kind can have (for wrong history answers)."""
    if q.kind == 'count':
        return ('0', '1', '2', '3', '4')
    if q.kind == 'exists':
        return ('yes', 'no')
    if q.kind == 'colour':
        return (*PALETTE, NONE_ANSWER)
    return WHERE_CHOICES


def frame_questions(episode: Episode, state: FrameState) -> list[Question]:
    """
    Questions with one well-defined answer at this frame, present and absent subjects alike.

    Colour and location questions need the subject to be unique among the visible objects
    (the evaluation world asks them only about subjects unique in the episode).
    """
    visible = state.visible()
    qs = [Question('count', colour=c) for c in PALETTE]
    qs += [Question('exists', colour=c, shape=s) for c in PALETTE for s in SHAPES]
    qs += [Question('colour', shape=s) for s in SHAPES
           if sum(o.shape == s for o in visible) <= 1]
    combos = [(o.colour, o.shape) for o in visible]
    qs += [Question('where', colour=c, shape=s) for c in PALETTE for s in SHAPES
           if combos.count((c, s)) <= 1]
    del episode
    return qs


def _pick_questions(rng: np.random.Generator, episode: Episode, state: FrameState,
                    k: int) -> list[Question]:
    """Pick k questions: kinds balanced,, subjects mostly about the episode's own objects."""
    pool = frame_questions(episode, state)
    own = {(t.colour, t.shape) for t in episode.things}
    own_colours = {c for c, _ in own}
    own_shapes = {s for _, s in own}

    def about_episode(q: Question) -> bool:
        if q.kind == 'count':
            return q.colour in own_colours
        if q.kind == 'colour':
            return q.shape in own_shapes
        return (q.colour, q.shape) in own

    out: list[Question] = []
    kinds = list(rng.permutation(QUESTION_TYPES))
    while len(out) < k:
        kind = kinds[len(out) % len(kinds)]
        cands = [q for q in pool if q.kind == kind and q not in out]
        if not cands:
            cands = [q for q in pool if q not in out]
        mine = [q for q in cands if about_episode(q)]
        # Exists questions get a yes about half the time; the rest prefer the scene's subjects.
        if kind == 'exists':
            yes = [q for q in cands if q.answer(state)[0] == 'yes']
            use = yes if yes and rng.random() < 0.5 else cands
        else:
            use = mine if mine and rng.random() < 0.8 else cands
        out.append(use[int(rng.integers(len(use)))])
    return out


def _history(rng: np.random.Generator, episode: Episode, t: float, q: Question,
             others: list[Question], plan: HistoryPlan, n: int | None = None) -> Turn:
    """The history part of a Turn (question and answer left empty) under `plan`."""
    if n is None:
        n = int(rng.integers(0, MAX_HISTORY + 1))
    step = float(rng.uniform(*HISTORY_STEP_S))
    out = Turn('', '', '')
    own: dict[str, str] = {}   # the newest own answer to each question
    for j in range(n, 0, -1):
        past = episode.state(max(0.0, t - j * step))
        asked = q if (rng.random() < 0.85 or not others) else others[
            int(rng.integers(len(others)))]
        cloud = plan.is_cloud(j) and rng.random() >= plan.cloud_loss
        truth = asked.answer(past)[0]
        space = answer_space(asked)
        # The same draws whatever the error rates: plans that differ only in them pair up turns.
        err, pick = rng.random(2)
        error = plan.cloud_error if cloud else plan.own_error
        if error is None:
            answer = own[asked.text] if asked.text in own and err < OWN_REPEAT else space[
                int(pick * len(space))]
        elif err < error:
            wrong = [a for a in space if a != truth]
            answer = wrong[int(pick * len(wrong))]
        else:
            answer = truth
        if not cloud:
            own[asked.text] = answer
        out.history_correct = out.history_correct and answer == truth
        out.history.append((asked.text, answer))
        out.history_spaces.append(space)
        out.history_sources.append(cloud)
    return out


def aux_labels(state: FrameState, grid: int) -> np.ndarray:
    """Per cell of a grid x grid image-token layout: which colours and shapes it shows."""
    out = np.zeros((grid, grid, len(AUX_CLASSES)), np.float32)
    colour_idx = {c: i for i, c in enumerate(PALETTE)}
    for o in state.visible():
        if o.box is None:
            continue
        b = o.box
        r0, r1 = int(b.y_min * grid), min(grid - 1, int(math.ceil(b.y_max * grid)) - 1)
        c0, c1 = int(b.x_min * grid), min(grid - 1, int(math.ceil(b.x_max * grid)) - 1)
        out[max(0, r0):r1 + 1, max(0, c0):c1 + 1, colour_idx[o.colour]] = 1.0
        out[max(0, r0):r1 + 1, max(0, c0):c1 + 1, len(PALETTE) + SHAPES.index(o.shape)] = 1.0
    return out


def make_example(rng: np.random.Generator, seed: int, stage: Stage, *, questions: int = 4,
                 width: int = 640, height: int = 480, camera_side: int = 512,
                 aux_grid: int = 0, error: float | None = None,
                 history_turns: int | None = None,
                 plan: HistoryPlan | None = None) -> Example:
    """
    One training frame of world `seed` at `stage`, with `questions` questions and histories.

    The frame is rendered at width x height and resized the way the camera node resizes it
    (long side `camera_side`, INTER_AREA), so the model trains on what the edge node sees.
    Histories follow `plan` (default: one HistoryPlan.draw for the frame, both error rates
    `error` when it is given).
    """
    episode = Episode(seed, int(rng.integers(0, 1_000_000)), width, height, EPISODE_S,
                      stage.layout)
    t = float(rng.uniform(0, EPISODE_S))
    state = episode.state(t)
    rgb = episode.render(state)
    scale = camera_side / max(width, height)
    if scale < 1.0:
        rgb = cv2.resize(rgb, (round(width * scale), round(height * scale)),
                         interpolation=cv2.INTER_AREA)
    qs = _pick_questions(rng, episode, state, questions)
    plan = plan or HistoryPlan.draw(rng, error)
    turns = []
    for q in qs:
        h = _history(rng, episode, t, q, qs, plan, history_turns)
        h.question, h.answer, h.kind = q.text, q.answer(state)[0], q.kind
        turns.append(h)
    aux = aux_labels(state, aux_grid) if aux_grid else None
    return Example(rgb, turns, stage.name, aux)


def stage_at(progress: float, curriculum: tuple[Stage, ...] = CURRICULUM) -> Stage:
    """The stage a training run is in after `progress` (0..1) of its steps."""
    edge = 0.0
    for stage in curriculum:
        edge += stage.share
        if progress < edge:
            return stage
    return curriculum[-1]


def mixed_stage(rng: np.random.Generator, progress: float,
                curriculum: tuple[Stage, ...] = CURRICULUM) -> Stage:
    """The current stage, with some replay of earlier ones (so simple scenes are not forgotten)."""
    stage = stage_at(progress, curriculum)
    i = curriculum.index(stage)
    if i > 0 and rng.random() < 0.15:
        return curriculum[int(rng.integers(i))]
    return stage


__all__ = ['ALL_CLOUD', 'AUX_CLASSES', 'CURRICULUM', 'Example', 'HISTORY_KINDS', 'HistoryPlan',
           'LOCATIONS', 'NOT_VISIBLE', 'Stage', 'TRAIN_SEED_BASE', 'Turn', 'answer_space',
           'aux_labels', 'frame_questions', 'make_example', 'mixed_stage', 'stage_at']
