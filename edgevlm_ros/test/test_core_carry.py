# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""core.validity and core.carry: learned validity, carried answers and when they are let go."""

import random

from edgevlm_ros.core import edge_step as es
from edgevlm_ros.core.arbitration import CloudView
from edgevlm_ros.core.carry import (
    CarryParams,
    TrackView,
    carry_forward,
    object_box,
    region_answer,
)
from edgevlm_ros.core.regions import Box
from edgevlm_ros.core.validity import (
    MAX_PROPOSALS,
    Candidate,
    SceneValidity,
    question_kind,
)
import pytest

WHERE = 'Where is the red square? (a) left (b) centre (c) right (d) not visible'
COLOUR = 'What colour is the square?'
COUNT = 'How many red objects are there?'
RED_SQUARE = Box(0.05, 0.4, 0.2, 0.6, 'red square')


@pytest.mark.parametrize('question, kind', [
    ('What colour is the mug on the left?', 'attribute'),
    ('Which colour is the door?', 'attribute'),
    ('what shape is the sign', 'attribute'),
    ('Where is the forklift?', 'where'),
    ('Is the person on which side of the aisle?', 'where'),
    ('How many boxes are on the pallet?', 'count'),
    ('What is the number of people here?', 'count'),
    ('Is there a person in the aisle?', 'exists'),
    ('Do you see a ladder?', 'exists'),
    ('Describe the table.', 'other'),
    ('Is the door open?', 'other'),
])
def test_question_kind_comes_from_free_form_words(question, kind):
    assert question_kind(question) == kind


# ------------------------------------------------------------------ the referee

def _run_world(change_every: int, cloud_error: float, edge_error: float, age_steps: int,
               steps: int = 400, seed: int = 0) -> SceneValidity:
    """
    One question whose true answer changes every change_every steps (0.5 s each).

    Every step proposes the edge's answer and the cloud answer of age_steps steps ago (standing);
    the cloud answers every step, wrong with cloud_error, the edge with edge_error.
    """
    rng = random.Random(seed)
    answers = ['a', 'b', 'c', 'd']
    truth = [answers[(i // change_every) % 4] for i in range(steps)]

    def noisy(i: int, error: float) -> str:
        return rng.choice([a for a in answers if a != truth[i]]) if rng.random() < error \
            else truth[i]

    cloud = [noisy(i, cloud_error) for i in range(steps)]
    v = SceneValidity()
    for i in range(age_steps, steps):
        v.propose(i, 'What colour is it?', (
            Candidate('edge', noisy(i, edge_error)),
            Candidate('standing', cloud[i - age_steps], 0.5 * age_steps)))
        v.add_cloud(i, 'What colour is it?', cloud[i])
    return v


def test_a_slow_scene_lets_a_reliable_cloud_answer_stand_when_it_is_old():
    v = _run_world(change_every=40, cloud_error=0.1, edge_error=0.35, age_steps=4)
    q = 'What colour is it?'
    assert v.win_chance(q, 'standing', 'edge', 2.0) > 0.6   # its prior at 2 s: 0.45
    assert v.horizon_s(q) >= 3.0


def test_a_fast_scene_hands_old_answers_back_to_the_edge():
    v = _run_world(change_every=3, cloud_error=0.1, edge_error=0.35, age_steps=4)
    q = 'What colour is it?'
    assert v.win_chance(q, 'standing', 'edge', 2.0) < 0.4
    assert v.horizon_s(q) < 2.0


def test_a_noisy_cloud_in_a_still_scene_is_not_mistaken_for_a_changing_scene():
    # The cloud is wrong 45 % of the time and the scene never changes: its answers disagree
    # with each other a lot, and still agree with fresh cloud answers less than the edge does
    # only because they are wrong, not because the scene moved. The edge wins.
    noisy = _run_world(change_every=10_000, cloud_error=0.45, edge_error=0.1, age_steps=1)
    q = 'What colour is it?'
    assert noisy.win_chance(q, 'standing', 'edge', 0.5) < 0.4
    # The same noisy cloud, but an edge that is wrong more often still: the cloud wins.
    worse_edge = _run_world(change_every=10_000, cloud_error=0.3, edge_error=0.6, age_steps=1)
    assert worse_edge.win_chance(q, 'standing', 'edge', 0.5) > 0.6


def test_a_cloud_answer_that_comes_before_the_candidates_is_still_refereed():
    v = SceneValidity()
    assert not v.add_cloud(7, COLOUR, 'red')          # the cloud was faster than the edge
    v.propose(7, COLOUR, (Candidate('edge', 'blue'), Candidate('standing', 'red', 1.0)))
    assert v.refereed == 1
    assert v.duels(COLOUR, 'standing', 'edge', 1.0) == pytest.approx(1.0)


def test_only_disagreements_count():
    v = SceneValidity()
    for i in range(20):   # the edge and the standing answer agree: nothing to learn
        v.propose(i, COLOUR, (Candidate('edge', 'red'), Candidate('standing', 'red', 1.0)))
        v.add_cloud(i, COLOUR, 'red')
    assert v.refereed == 20 and v.duels(COLOUR, 'standing', 'edge', 1.0) == 0.0


def test_candidates_waiting_for_their_referee_are_bounded():
    v = SceneValidity()
    for i in range(MAX_PROPOSALS + 50):
        v.propose(i, COLOUR, (Candidate('edge', 'red'),))
        v.add_cloud(10_000 + i, COLOUR, 'red')       # never a proposal of its own
    assert len(v._proposals) == MAX_PROPOSALS
    assert len(v._early) == MAX_PROPOSALS
    assert not v.add_cloud(0, COLOUR, 'red')         # the oldest proposal was let go


def test_a_kind_with_few_referees_borrows_from_the_pooled_estimate():
    v = SceneValidity()
    prior = v.win_chance(COLOUR, 'standing', 'edge', 2.0)
    for i in range(60):   # counts: the standing answer always right, the edge always wrong
        v.propose(i, COUNT, (Candidate('edge', '3'), Candidate('standing', '2', 2.0)))
        v.add_cloud(i, COUNT, '2')
    # No colour duel yet: the colour estimate moved from its prior towards the pooled one.
    assert prior < 0.5 < v.win_chance(COLOUR, 'standing', 'edge', 2.0)
    v.reset()
    assert v.refereed == 0 and v.win_chance(COLOUR, 'standing', 'edge', 2.0) == prior


# ------------------------------------------------------------------ carrying

def test_where_options_map_to_thirds_of_the_frame():
    assert region_answer(WHERE, Box(0.0, 0.0, 0.2, 0.2)) == 'left'
    assert region_answer(WHERE, Box(0.4, 0.0, 0.6, 0.2)) == 'centre'
    assert region_answer(WHERE, Box(0.8, 0.0, 1.0, 0.2)) == 'right'
    assert region_answer('Where is it? (a) left (b) right', Box(0.6, 0, 0.9, 1)) == 'right'
    assert region_answer('Where is the cup?', Box(0.6, 0, 0.9, 1)) is None   # no options
    two = (RED_SQUARE, Box(0.7, 0.1, 0.8, 0.2, 'red circle'))
    assert object_box(WHERE, two) == RED_SQUARE
    assert object_box('Where is the cup?', two) is None


def _favour(v: SceneValidity, question: str, name: str, age: float) -> None:
    """Referee steps so that `name` (at `age`) is always right, the edge half the time."""
    for i in range(40):
        cands = [Candidate('edge', 'y' if i % 2 else 'x'), Candidate(name, 'y', age)]
        if name == 'carried':
            cands.append(Candidate('standing', 'z', age))   # the scene moved on
        v.propose(1000 + i, question, tuple(cands))
        v.add_cloud(1000 + i, question, 'y')


def _decide(question, cloud_answer, edge_answer, track, validity, own=None, age=2.0,
            step_id=50):
    cloud = CloudView(40, 100.0, question, cloud_answer)
    return carry_forward(question, step_id, 100.0 + age, edge_answer, cloud, track, validity,
                         own, CarryParams())


def test_a_where_answer_is_recomputed_from_the_tracked_box():
    v = SceneValidity()
    _favour(v, WHERE, 'carried', 2.0)
    moved = TrackView(40, 50, (Box(0.7, 0.4, 0.85, 0.6, 'red square'),), 1, 0.9)
    decision, candidates = _decide(WHERE, 'left', 'centre', moved, v)
    assert decision.source == 'cloud' and decision.answer == 'right'
    assert "carried: red square tracked to 'right', quality 0.9 (" in decision.reason
    assert [c.name for c in candidates] == ['edge', 'standing', 'carried']


def test_a_carried_answer_is_dropped_when_its_track_is_lost():
    v = SceneValidity()
    _favour(v, COLOUR, 'carried', 2.0)
    held = TrackView(40, 50, (RED_SQUARE,), 1, 0.9)
    decision, _ = _decide(COLOUR, 'red', 'blue', held, v)
    assert (decision.source, decision.answer) == ('cloud', 'red')
    assert 'carried: red square tracked, quality 0.9' in decision.reason
    cases = {
        'left the view': TrackView(40, 50, (), 1, 0.9),
        'weak': TrackView(40, 50, (RED_SQUARE,), 1, 0.3),
        'not tracked': TrackView(39, 50, (RED_SQUARE,), 1, 0.9),   # another answer's boxes
        'not near': TrackView(40, 44, (RED_SQUARE,), 1, 0.9),      # a stale mask
    }
    for why, track in cases.items():
        decision, candidates = _decide(COLOUR, 'red', 'blue', track, v)
        assert decision.source == 'edge' and decision.answer == 'blue', why
        assert 'not carried' in decision.reason, why
        assert 'carried' not in [c.name for c in candidates], why
    decision, _ = _decide(COLOUR, 'red', 'blue', None, v)
    assert decision.source == 'edge' and 'its boxes are not tracked' in decision.reason


def test_a_count_is_carried_only_while_the_edge_sees_no_change():
    v = SceneValidity()
    _favour(v, COUNT, 'carried', 2.0)
    track = TrackView(40, 50, (Box(0.1, 0.1, 0.2, 0.2, 'red circle'),), 1, 0.9)
    decision, _ = _decide(COUNT, '1', '2', track, v, own='2')
    assert (decision.source, decision.answer) == ('cloud', '1')
    decision, _ = _decide(COUNT, '1', '2', track, v, own='1')   # the edge went 1 -> 2
    assert decision.source == 'edge' and 'the edge answer changed since' in decision.reason


def test_a_fresh_cloud_answer_holds_without_a_duel():
    v = SceneValidity()
    for i in range(80):   # every duel so far went to the edge, at 0.5 s and at 1 s
        age = 0.5 + 0.5 * (i % 2)
        v.propose(i, COLOUR, (Candidate('edge', 'y'), Candidate('standing', 'z', age)))
        v.add_cloud(i, COLOUR, 'y')
    decision, _ = _decide(COLOUR, 'red', 'blue', None, v, age=0.5)
    assert (decision.source, decision.answer) == ('cloud', 'red')
    assert 'stands (standing is fresh)' in decision.reason
    decision, _ = _decide(COLOUR, 'red', 'blue', None, v, age=1.0)   # older than fresh_s
    assert decision.source == 'edge'


def test_the_edge_answers_when_the_cloud_answer_is_to_another_question_or_too_old():
    v = SceneValidity()
    _favour(v, COLOUR, 'standing', 2.0)
    decision, _ = _decide(COLOUR, 'red', 'blue', None, v)
    assert decision.source == 'cloud' and 'stands' in decision.reason
    cloud = CloudView(40, 100.0, WHERE, 'left')
    decision, _ = carry_forward(COLOUR, 50, 102.0, 'blue', cloud, None, v, None)
    assert decision.source == 'edge' and 'another question' in decision.reason
    decision, _ = _decide(COLOUR, 'red', 'blue', None, v, age=11.0)
    assert decision.source == 'edge' and 'too old' in decision.reason


# ------------------------------------------------------------------ in the edge step

def test_edge_step_carries_into_the_history_and_lets_go_with_the_track():
    cfg = es.EdgeConfig(strategy='edgevlm_carried')
    state = es.EdgeState(cfg)
    _favour(state.validity, COLOUR, 'carried', 1.0)

    def answer(step_id: int, stamp_s: float, edge_text: str) -> es.StepAnswer:
        step = es.StepView(step_id, stamp_s, COLOUR)
        state.on_step(step_id, cfg)
        run = es.plan(step, state, cfg, True)
        es.record_edge(step, run, edge_text, state)
        return es.finish(step, run, edge_text, 'none', state, cfg)

    answer(1, 10.0, 'blue')
    state.on_cloud(es.CloudNote(1, 10.0, COLOUR, 'red', True, 2.0, regions=1))
    state.on_mask(es.MaskNote(1, 5, (RED_SQUARE,), 10.0, quality=0.9))
    got = answer(5, 12.0, 'blue')
    assert (got.source, got.text, got.arbitration, got.carried) == ('cloud', 'red', 'cloud', True)
    assert 'carried: red square tracked' in got.reason
    slot = [t for t in state.store.history() if t.step_id == 5][0]
    assert slot.answer == 'red' and slot.from_cloud   # Context Replacement gets it too
    # The square left the view: fusion's next mask of that answer has no box any more.
    state.on_mask(es.MaskNote(1, 6, (), 10.0, quality=0.0))
    got = answer(6, 12.5, 'blue')
    assert (got.source, got.text) == ('edge', 'blue')
    assert '1 of its 1 objects left the view' in got.reason


def test_the_summary_says_how_long_answers_hold_per_kind():
    v = _run_world(change_every=40, cloud_error=0.1, edge_error=0.35, age_steps=4)
    got = v.summary()
    assert list(got) == ['holds_s.attribute']       # the only kind asked
    assert got['holds_s.attribute'].startswith(f'{v.horizon_s(COLOUR):g} (')
