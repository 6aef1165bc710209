# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Scoring an evaluation run: answer matching and the run metrics (eval design, Scoring)."""

import json
import math

from edgevlm_ros.core.records import AnswerRecord, CloudRecord, RunRecord, Truth
from edgevlm_ros.core.scoring import (
    RunScore,
    is_correct,
    normalise,
    pick_choice,
    score_run,
    timeline,
)
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

EPOCH_NS = 1_767_225_600 * 10**9
SEC = 10**9
Q = 'Is the path clear?'


def _t(k: float) -> int:
    return EPOCH_NS + round(k * SEC)


def _truth(k: float, answer: str, episode: str = 'ep1', question: str = Q, **kw) -> Truth:
    return Truth(stamp_ns=_t(k), episode=episode, question_id='q1', question=question,
                 answer=answer, **kw)


def _answer(step: int, k: float, text: str, latency_ms: float, source: str = 'edge',
            question: str = Q, **kw) -> AnswerRecord:
    return AnswerRecord(stamp_ns=_t(k), step_id=step, question=question, answer=text,
                        source=source, latency_ms=latency_ms,
                        received_ns=_t(k) + round(latency_ms * 1e6) + 1000, **kw)


def _cloud(step: int, k: float, status: str = 'ok', rtt_ms: float = 500.0) -> CloudRecord:
    return CloudRecord(stamp_ns=_t(k), step_id=step, question=Q, status=status,
                       received_ns=_t(k) + round(rtt_ms * 1e6), round_trip_ms=rtt_ms)


# --- normalise ---------------------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('Yes, the path is clear!', 'yes path is clear'),
    ('  There are THREE   cups. ', 'there are 3 cups'),
    ('zero one ten twenty', '0 1 10 20'),
    ("Don't go", 'dont go'),
    ('It is 2.5 m away.', 'it is 2.5 m away'),
    ('An apple; a pear', 'apple pear'),
    ('\uff32\uff25\uff24', 'red'),           # full-width letters (NFKC)
    ('\ufb01ne', 'fine'),                     # the fi ligature
    ('left-hand_side', 'left hand side'),
    ('', ''),
    ('The.', ''),
])
def test_normalise_cases(text, expected):
    assert normalise(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_normalise_is_idempotent_and_collapses_whitespace(text):
    once = normalise(text)
    assert normalise(once) == once
    assert once == once.strip() and '  ' not in once


# --- open questions ----------------------------------------------------------------------------

def test_open_answer_matches_exactly_after_normalising_or_an_accepted_form():
    truth = _truth(0, 'three', accepted=('a few',))
    assert is_correct('3', truth)
    assert is_correct('Three.', truth)
    assert is_correct('A few!', truth)
    assert not is_correct('four', truth)
    assert not is_correct('', truth)


def test_leading_words_match_needs_a_word_boundary():
    no = _truth(0, 'no')
    assert is_correct('No, there is a box in the way.', no)
    assert not is_correct('not sure', no)       # 'not' is not the word 'no'
    assert not is_correct('nobody knows', no)
    assert not is_correct('I think no', no)     # the leading words, not any words
    yes = _truth(0, 'yes')
    assert is_correct('Yes, the path is clear', yes)
    two_words = _truth(0, 'red car')
    assert is_correct('The red car, parked', two_words)
    assert not is_correct('red', two_words)
    assert not is_correct('2.5 metres', _truth(0, '2'))  # a decimal is one word


def test_empty_truth_matches_only_an_empty_answer():
    empty = _truth(0, '')
    assert is_correct('', empty) and is_correct('the', empty)
    assert not is_correct('anything', empty)


# --- multiple choice ---------------------------------------------------------------------------

CHOICES = ('red', 'dark red', 'blue')


@pytest.mark.parametrize('answer, expected', [
    ('b', 1), ('B', 1), ('(b)', 1), ('b)', 1), ('B.', 1), ('b: dark red', 1), ('option b', 1),
    ('Option (C)', 2), ('Answer: c', 2), ('The answer is (a)', 0),
    ('(b) blue', 1),                 # the letter at the start wins
    ('It is dark red.', 1),          # 'red' only inside 'dark red': one option named
    ('a red car', 0),                # the article, then option text 'red'
    ('Blue', 2),
    ('red or blue', None),           # several options
    ('green', None),                 # none
    ('d', None),                     # past the last option
    ('options are unclear', None),
    ('e.g. blue', 2),                # 'e.' followed by more letters is no option letter
])
def test_pick_choice(answer, expected):
    assert pick_choice(answer, CHOICES) == expected


def test_pick_choice_without_choices_picks_nothing():
    assert pick_choice('a', ()) is None


def test_multiple_choice_is_correct_only_for_the_true_option():
    truth = _truth(0, 'Dark red', choices=CHOICES)
    assert is_correct('(b)', truth)
    assert is_correct('It looks dark red to me', truth)
    assert not is_correct('red', truth)
    assert not is_correct('dark red or blue', truth)  # naming two options is wrong
    assert not is_correct('(a) dark red', truth)      # picked a
    # A truth that names no option is judged as an open question.
    assert is_correct('purple', _truth(0, 'purple', choices=CHOICES))


def test_multiple_choice_accepts_the_true_options_synonyms():
    where = ('left', 'centre', 'right', 'not visible')
    truth = Truth(0, 'ep', 'where', 'Where is it?', 'centre', accepted=('center',), choices=where)
    assert is_correct('center', truth)
    assert is_correct('The green circle is in the center.', truth)
    assert not is_correct('off centre left', truth)  # names two options: picks none, and wrong
    assert not is_correct('left of center', truth)   # picks an option: judged by it


# --- run metrics -------------------------------------------------------------------------------

def _example_run() -> RunRecord:
    """Four steps 1 s apart, deadline 1 s (the metrics are worked out in the test)."""
    truths = [_truth(0, 'yes'), _truth(1, 'yes'), _truth(2, 'no', 'ep2'), _truth(3, 'yes', 'ep2')]
    clouds = [_cloud(0, 0, 'ok', 500.0), _cloud(1, 1, 'timeout'), _cloud(2, 2, 'dropped'),
              _cloud(3, 3, 'ok', 700.0)]
    answers = [
        _answer(0, 0, 'Yes', 200.0),                                       # t=0.2 s
        _answer(1, 1, 'No', 1500.0),                                       # t=2.5 s, late
        _answer(2, 2, 'No.', 300.0, source='cloud', newest_cloud_step=0,   # t=2.3 s
                replaced_turns=2, focus_applied=True),
        # step 3: never answered
    ]
    return RunRecord(strategy='edgevlm', network_profile='fixed:500', truths=truths,
                     answers=answers, clouds=clouds,
                     counters={'cloud_bridge': {'bytes_sent': '12345', 'bytes_received': '678'}})


def test_hand_built_run_scores_exactly():
    s = score_run(_example_run(), deadline_s=1.0)
    assert (s.steps, s.steps_scored, s.steps_without_truth) == (4, 4, 0)
    assert (s.answers, s.answers_scored) == (3, 3)
    # Answers vs their own truth: yes/yes right, no/yes wrong, no/no right.
    assert s.accuracy == pytest.approx(2 / 3)
    # At each stamp + 1 s the newest published answer: step 0 (yes, right), step 0 again at
    # t=2 s (yes, right: step 1's own answer is out at 2.5 s), step 1's 'No' at t=3 s (published
    # 2.5 s, after step 2's 2.3 s; right), and that 'No' still at t=4 s (truth yes: wrong).
    assert s.accuracy_at_deadline == pytest.approx(0.75)
    assert s.per_episode == {'ep1': 1.0, 'ep2': 0.5}
    assert (s.deadline_misses, s.deadline_miss_rate) == (2, 0.5)  # step 1 late, step 3 never
    assert (s.latency_p50_ms, s.latency_p99_ms) == (300.0, pytest.approx(1476.0))
    # Staleness: 200, 1500, and the cloud answer about step 0: 2.3 s after its stamp.
    assert s.staleness_p50_ms == pytest.approx(1500.0)
    assert s.staleness_p95_ms == pytest.approx(1500 + 0.9 * 800)
    assert (s.cloud_requests, s.cloud_ok, s.cloud_rtt_p50_ms) == (3, 2, 600.0)
    assert (s.cloud_bytes_up, s.cloud_bytes_down) == (12345, 678)
    assert (s.edge_answers, s.cloud_answers) == (2, 1)
    assert (s.answers_with_replacement, s.answers_with_focus) == (1, 1)
    assert s.notes == []


def test_timeline_names_the_answer_in_force_at_each_deadline():
    rows = timeline(_example_run(), deadline_s=1.0)
    assert [r.step_id for r in rows] == [0, 1, 2, 3]
    assert [r.answer_step_id for r in rows] == [0, 0, 1, 1]
    assert [r.correct for r in rows] == [True, True, True, False]
    assert [r.missed_deadline for r in rows] == [False, True, False, True]
    assert rows[3].own_published_ns is None and rows[2].source == 'edge'
    assert rows[2].truth == 'no' and rows[2].episode == 'ep2'


def test_a_longer_deadline_sees_later_answers():
    s = score_run(_example_run(), deadline_s=2.0)
    # Step 1's answer is now in time; at t=2 s (step 0) step 0's yes is still current.
    assert s.deadline_misses == 1
    assert s.accuracy_at_deadline == pytest.approx(0.5)  # yes, no(x), no, no(x)


def test_answer_exactly_at_the_deadline_is_in_time():
    run = RunRecord('edge_only', 'none', truths=[_truth(0, 'yes')],
                    answers=[_answer(0, 0, 'yes', 1000.0)], clouds=[_cloud(0, 0, 'dropped')])
    s = score_run(run, deadline_s=1.0)
    assert (s.deadline_misses, s.accuracy_at_deadline) == (0, 1.0)
    s = score_run(run, deadline_s=0.999)
    assert (s.deadline_misses, s.accuracy_at_deadline) == (1, 0.0)


def test_answer_to_another_question_is_wrong():
    run = RunRecord('edgevlm', 'none', truths=[_truth(0, 'yes')],
                    answers=[_answer(0, 0, 'yes', 100.0, question='What is ahead?')])
    s = score_run(run, deadline_s=1.0)
    assert s.accuracy == 0.0 and s.accuracy_at_deadline == 0.0
    assert s.deadline_misses == 0  # it was published in time, just about something else


def test_step_without_truth_is_counted_not_scored():
    run = RunRecord('edgevlm', 'none', truths=[_truth(0, 'yes')],
                    answers=[_answer(0, 0, 'yes', 100.0), _answer(1, 0.5, 'no', 100.0)],
                    clouds=[_cloud(2, 0.7, 'ok')])
    s = score_run(run, deadline_s=1.0)
    assert (s.steps, s.steps_scored, s.steps_without_truth) == (3, 1, 2)
    assert (s.answers, s.answers_scored) == (2, 1)
    # At t=1 s the current answer is step 1's 'no' (published 0.6 s): wrong for step 0.
    assert s.accuracy_at_deadline == 0.0 and s.accuracy == 1.0
    assert s.deadline_misses == 1  # step 2 (cloud only) never got its own answer


def test_stale_cloud_answer_age_counts_from_the_step_it_is_about():
    # cloud_stale: every step answers with the newest cloud reply; step 2's content is step 0.
    run = RunRecord('cloud_stale', 'fixed:1500', truths=[_truth(k, 'yes') for k in range(3)],
                    clouds=[_cloud(k, k, 'ok', 1500.0) for k in range(3)],
                    answers=[_answer(2, 2, 'yes', 10.0, source='cloud', newest_cloud_step=0),
                             _answer(3, 3, 'yes', 10.0, source='cloud', newest_cloud_step=99)])
    s = score_run(run, deadline_s=1.0)
    # Step 0 stamp -> step 2 publish = 2010 ms; step 99 is unknown, so that answer is skipped.
    assert s.staleness_p50_ms == pytest.approx(2010.0)
    assert s.staleness_p95_ms == pytest.approx(2010.0)


def test_empty_run_gives_nan_not_a_crash():
    s = score_run(RunRecord('edge_only', 'none'), deadline_s=1.0)
    assert s.steps == s.answers == s.deadline_misses == s.cloud_requests == 0
    for name in ('accuracy', 'accuracy_at_deadline', 'latency_p50_ms', 'latency_p99_ms',
                 'deadline_miss_rate', 'staleness_p50_ms', 'cloud_rtt_p50_ms'):
        assert math.isnan(getattr(s, name)), name
    d = s.to_dict()
    assert d['accuracy'] is None
    json.dumps(d, allow_nan=False)
    back = RunScore.from_dict(d)
    assert math.isnan(back.accuracy) and back.steps == 0


def test_truths_only_run_is_all_wrong_and_all_missed():
    run = RunRecord('cloud_only', 'none', truths=[_truth(0, 'yes')],
                    clouds=[_cloud(0, 0, 'timeout')])
    s = score_run(run, deadline_s=1.0)
    assert (s.accuracy_at_deadline, s.deadline_misses, s.cloud_ok) == (0.0, 1, 0)
    assert math.isnan(s.accuracy) and math.isnan(s.latency_p50_ms)


def test_bad_byte_counter_is_noted_and_taken_as_zero():
    run = RunRecord('edgevlm', 'none',
                    counters={'/edgevlm/cloud_bridge': {'bytes_sent': 'lots',
                                                        'bytes_received': '42'}})
    s = score_run(run, deadline_s=1.0)
    assert (s.cloud_bytes_up, s.cloud_bytes_down) == (0, 42)
    assert len(s.notes) == 1 and 'bytes_sent' in s.notes[0]


@pytest.mark.parametrize('deadline', [0.0, -1.0, math.nan, math.inf])
def test_bad_deadline_is_refused(deadline):
    with pytest.raises(ValueError, match='deadline_s'):
        score_run(RunRecord('edge_only', 'none'), deadline_s=deadline)


def test_score_round_trips_through_json():
    s = score_run(_example_run(), deadline_s=1.0)
    back = RunScore.from_dict(json.loads(json.dumps(s.to_dict(), allow_nan=False)))
    assert back == s


# --- properties --------------------------------------------------------------------------------

_WORDS = st.sampled_from(['yes', 'no', 'two', '3', 'red car', 'left', 'not sure', 'The box.'])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_WORDS, st.floats(0.0, 999.0)), min_size=1, max_size=30),
       st.floats(1.01, 3.0))
def test_answering_the_truth_in_time_scores_one(steps, gap_s):
    # Steps further apart than the deadline (an answer published exactly at a deadline is in
    # force then), so each step's own answer is the one judged at its deadline.
    deadline = 1.0
    truths, answers, clouds = [], [], []
    for i, (word, latency) in enumerate(steps):
        k = i * gap_s
        truths.append(_truth(k, word, episode=f'ep{i % 3}'))
        answers.append(_answer(i, k, word, latency))
        clouds.append(_cloud(i, k))
    s = score_run(RunRecord('edgevlm', 'none', truths, answers, clouds), deadline_s=deadline)
    assert s.accuracy == 1.0 and s.accuracy_at_deadline == 1.0
    assert s.deadline_misses == 0 and s.deadline_miss_rate == 0.0
    assert set(s.per_episode.values()) == {1.0}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_WORDS, _WORDS, st.floats(0.0, 5000.0), st.booleans()), max_size=30),
       st.floats(0.05, 5.0))
def test_metrics_stay_in_range_for_any_run(steps, deadline):
    truths, answers = [], []
    for i, (truth, said, latency, answered) in enumerate(steps):
        truths.append(_truth(i * 0.3, truth))
        if answered:
            answers.append(_answer(i, i * 0.3, said, latency))
    s = score_run(RunRecord('edgevlm', 'none', truths, answers), deadline_s=deadline)
    for v in (s.accuracy, s.accuracy_at_deadline, s.deadline_miss_rate):
        assert math.isnan(v) or 0.0 <= v <= 1.0
    assert s.steps == len(answers) and 0 <= s.deadline_misses <= s.steps
    if answers:
        assert s.latency_p50_ms <= s.latency_p95_ms <= s.latency_p99_ms
