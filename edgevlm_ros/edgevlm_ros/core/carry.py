# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Carry a late cloud answer forward while it still describes the frame being answered.

The strategy `edgevlm_carried` runs the edge SVLM with Context Transfer on every step, as
`edgevlm` does; when its answer is ready, `carry_forward` lists the step's candidate answers
and picks the one likeliest right where they disagree, by the duels fresh cloud answers
refereed in this scene, for this kind of question and at this age (core.validity.SceneValidity,
learned online; the edge holds unless a challenger wins more than half):

* the edge SVLM's own answer;
* the newest ok cloud answer to the same question as it stands, up to `max_carry_s` old (up to
  `fresh_s` old it holds over the edge without a duel: the deadline forgives that age);
* that answer carried forward by what it rests on, from its boxes as context_fusion tracks them
  to the current frame (`TrackView`; every box it grounded still in view, the weakest tracked
  with quality at least `min_track_quality`):
  * attribute (colour, shape): the answer itself: an object keeps its colour while in view;
  * where: recomputed on the current frame from its object's tracked box: the question's
    options ("(a) left (b) centre (c) right") map to thirds of the frame, so no model runs;
  * count and exists: the answer itself while the edge's own answer has not changed since the
    cloud's frame (nothing entered that the tracks cannot see).

The decision says why in one line (`Arbitration.reason`), e.g. "cloud answer of step 41, 2.1 s
old, carried: red square tracked, quality 0.9 (carried over edge 81%)". ROS-free, torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

from edgevlm_ros.core.arbitration import (
    Arbitration,
    CloudView,
    cloud_unusable,
    question_choices,
    same_answer,
)
from edgevlm_ros.core.regions import Box
from edgevlm_ros.core.scoring import normalise
from edgevlm_ros.core.validity import Candidate, SceneValidity, ValidityParams, question_kind

# Option words and the third of the frame (left to right) they name.
_THIRDS = {'left': 0, 'centre': 1, 'center': 1, 'middle': 1, 'right': 2}


@dataclass(frozen=True)
class CarryParams:
    """Bounds of edgevlm_carried; the horizons themselves are learned (core.validity)."""

    max_carry_s: float = 10.0         # a cloud answer older than this is never carried
    # A cloud answer about a frame at most this much older than the step stands over the edge
    # without a duel: answers are judged at a deadline (1 s), which forgives that age, while
    # duels at that age mostly see the scene change the deadline forgives (docs/evaluation.md).
    fresh_s: float = 0.75
    min_track_quality: float = 0.6    # tracked boxes below this no longer vouch for an answer
    max_track_lag_steps: int = 2      # the track must be on a frame this close to the step's
    validity: ValidityParams = field(default_factory=ValidityParams)

    def __post_init__(self) -> None:
        for name in ('max_carry_s', 'fresh_s'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f'{name} must be a finite number >= 0, got {value!r}')
        if not 0 <= self.min_track_quality <= 1:
            raise ValueError(f'min_track_quality must be in [0, 1], got '
                             f'{self.min_track_quality!r}')
        if isinstance(self.max_track_lag_steps, bool) or not isinstance(
                self.max_track_lag_steps, int) or self.max_track_lag_steps < 0:
            raise ValueError(f'max_track_lag_steps must be an int >= 0, got '
                             f'{self.max_track_lag_steps!r}')


@dataclass(frozen=True)
class TrackView:
    """A cloud answer's boxes as context_fusion carries them to a recent frame."""

    source_step: int           # the cloud answer's step
    target_step: int           # the frame the boxes are on now
    boxes: tuple[Box, ...]     # the boxes still in view there
    grounded: int              # boxes the cloud answer had
    quality: float             # the weakest box's tracking quality (0..1)


def region_answer(question: str, box: Box) -> str | None:
    """The option of a "where" question that names the box's third of the frame, or None."""
    thirds: dict[int, str] = {}
    for choice in question_choices(question):
        named = {_THIRDS[w] for w in normalise(choice).split() if w in _THIRDS}
        if len(named) == 1:
            thirds[named.pop()] = choice
    cx = (box.x_min + box.x_max) / 2
    if set(thirds) == {0, 1, 2}:
        return thirds[min(2, max(0, int(cx * 3)))]
    if set(thirds) == {0, 2}:
        return thirds[0 if cx < 0.5 else 2]
    return None


def object_box(question: str, boxes: tuple[Box, ...]) -> Box | None:
    """The box of the object the question names (by label), or the only box."""
    q = f' {normalise(question)} '
    named = [b for b in boxes if b.label and f' {normalise(b.label)} ' in q]
    if len(named) == 1:
        return named[0]
    return boxes[0] if len(boxes) == 1 and not named else None


def carry_forward(question: str, step_id: int, stamp_s: float, edge_answer: str,
                  cloud: CloudView | None, track: TrackView | None, validity: SceneValidity,
                  edge_answer_at_cloud_step: str | None,
                  params: CarryParams = CarryParams()
                  ) -> tuple[Arbitration, tuple[Candidate, ...]]:
    """Decide the answer for a step (module docstring); also give the candidates weighed."""
    edge = Candidate('edge', edge_answer)
    unusable = cloud_unusable(question, cloud)
    if cloud is None or unusable is not None:
        return Arbitration('edge', edge_answer, str(unusable),
                           -1 if cloud is None else cloud.step_id), (edge,)
    age = max(0.0, float(stamp_s) - float(cloud.stamp_s))
    head = f'cloud answer of step {cloud.step_id}, {age:.1f} s old'
    if age > params.max_carry_s:
        return Arbitration('edge', edge_answer, f'{head}: too old to weigh (> '
                           f'{params.max_carry_s:g} s)', cloud.step_id, age), (edge,)
    candidates = [edge, Candidate('standing', cloud.answer, age)]
    carried, what = _carried(question, step_id, cloud, track, edge_answer,
                             edge_answer_at_cloud_step, params)
    if carried is not None:
        candidates.append(Candidate('carried', carried, age))
    best, duels = validity.choose(question, tuple(candidates),
                                  'standing' if age <= params.fresh_s else 'edge')
    rates = '; '.join(duels) or 'all agree'
    if best.name == 'edge':
        why = f'{head}; the edge holds ({rates})'
        if carried is None:
            why += f'; not carried: {what}'
        return Arbitration('edge', edge_answer, why, cloud.step_id, age), tuple(candidates)
    if best.name == 'standing':
        why = f'{head}, stands ({rates})'
    else:
        why = f'{head}, carried: {what} ({rates})'
    return (Arbitration('cloud', best.answer, why, cloud.step_id, age, best.name == 'carried'),
            tuple(candidates))


def _carried(question: str, step_id: int, cloud: CloudView, track: TrackView | None,
             edge_answer: str, edge_answer_at_cloud_step: str | None, params: CarryParams
             ) -> tuple[str | None, str]:
    """The cloud answer carried to this step and what carried it, or None and why not."""
    held = _track_holds(cloud, track, step_id, params)
    if isinstance(held, str):
        return None, held
    kind = question_kind(question)
    labels = ', '.join(b.label for b in held.boxes if b.label) or 'its boxes'
    quality = f'quality {held.quality:.1f}'
    if kind == 'attribute':
        return cloud.answer, f'{labels} tracked, {quality}'
    if kind == 'where':
        box = object_box(question, held.boxes)
        region = None if box is None else region_answer(question, box)
        if region is None:
            return None, 'no option of the question names where its box is'
        return region, f'{box.label or "its box"} tracked to {region!r}, {quality}'
    if kind in ('count', 'exists'):
        if edge_answer_at_cloud_step is None:
            return None, 'no edge answer on its frame to tell whether objects entered'
        if not same_answer(edge_answer_at_cloud_step, edge_answer, question):
            return None, (f'the edge answer changed since ({edge_answer_at_cloud_step!r} -> '
                          f'{edge_answer!r})')
        return cloud.answer, f'{labels} tracked, the edge answer unchanged, {quality}'
    return None, 'a question of no known kind'


def _track_holds(cloud: CloudView, track: TrackView | None, step_id: int,
                 params: CarryParams) -> TrackView | str:
    """The track when it still vouches for the cloud answer, else why not."""
    if track is None or track.source_step != cloud.step_id:
        return 'its boxes are not tracked'
    if track.grounded == 0:
        return 'it grounded no object to track'
    if abs(int(step_id) - int(track.target_step)) > params.max_track_lag_steps:
        return f'its track is on step {track.target_step}, not near this one'
    if len(track.boxes) < track.grounded:
        return f'{track.grounded - len(track.boxes)} of its {track.grounded} objects left the view'
    if track.quality < params.min_track_quality:
        return f'its track is weak (quality {track.quality:.2f} < {params.min_track_quality:g})'
    return track
