# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""core.arbitration: which answer a step gets (newest cloud answer or the edge's), and why."""

import math

from edgevlm_ros.core.arbitration import (
    ArbitrationParams,
    CloudConsistency,
    CloudView,
    EdgeAnswerLog,
    arbitrate,
    question_choices,
    same_answer,
)
import pytest

Q = 'How many red objects are there?'
CHANGE_TEST = ArbitrationParams(max_age_s=2.0, require_edge_agreement=True)
WHERE = 'Where is the red circle? (a) left (b) centre (c) right (d) not visible'


def _cloud(stamp_s=10.0, answer='2', question=Q, step=20, shift=None):
    return CloudView(step, stamp_s, question, answer, shift)


def test_no_cloud_answer_means_the_edge_answers():
    d = arbitrate(Q, 10.5, '1', None, None)
    assert (d.source, d.answer, d.cloud_step) == ('edge', '1', -1)
    assert 'no cloud answer' in d.reason
    assert math.isnan(d.cloud_age_s)


def test_a_cloud_answer_to_another_question_is_not_used():
    d = arbitrate(Q, 10.5, '1', _cloud(question='Is there a red circle?'), '1')
    assert d.source == 'edge'
    assert 'another question' in d.reason


def test_by_default_a_cloud_answer_up_to_0_75_s_old_stands_for_the_step():
    d = arbitrate(Q, 10.75, '0', _cloud(answer='2'), '1')
    assert (d.source, d.answer, d.cloud_step) == ('cloud', '2', 20)
    assert arbitrate(Q, 10.76, '0', _cloud(answer='2'), '1').source == 'edge'


def test_the_cloud_answer_stands_while_the_edge_sees_no_change():
    d = arbitrate(Q, 11.0, '1', _cloud(answer='2'), '1', CHANGE_TEST)
    assert (d.source, d.answer, d.cloud_step) == ('cloud', '2', 20)
    assert d.cloud_age_s == pytest.approx(1.0)
    assert 'not changed' in d.reason


def test_an_edge_answer_that_changed_since_the_cloud_frame_means_the_scene_moved():
    d = arbitrate(Q, 11.0, '0', _cloud(answer='2'), '1', CHANGE_TEST)
    assert (d.source, d.answer) == ('edge', '0')
    assert "'1' -> '0'" in d.reason


def test_without_the_edge_answer_on_the_cloud_frame_the_change_test_cannot_pass():
    assert arbitrate(Q, 11.0, '1', _cloud(), None, CHANGE_TEST).source == 'edge'
    no_test = ArbitrationParams(max_age_s=2.0, require_edge_agreement=False)
    assert arbitrate(Q, 11.0, '1', _cloud(), None, no_test).source == 'cloud'


def test_an_old_cloud_answer_never_stands():
    params = ArbitrationParams(max_age_s=1.5)
    assert arbitrate(Q, 11.5, '2', _cloud(), '2', params).source == 'cloud'
    d = arbitrate(Q, 11.6, '2', _cloud(), '2', params)
    assert d.source == 'edge' and '1.6 s old' in d.reason


def test_a_young_cloud_answer_is_trusted_without_the_change_test():
    params = ArbitrationParams(trust_age_s=0.6, require_edge_agreement=True)
    assert arbitrate(Q, 10.5, '0', _cloud(), '1', params).source == 'cloud'
    assert arbitrate(Q, 10.7, '0', _cloud(), '1', params).source == 'edge'


def test_boxes_that_moved_too_far_mean_the_scene_changed_where_it_matters():
    params = ArbitrationParams(max_age_s=2.0, max_box_shift=0.2)
    assert arbitrate(Q, 11.0, '1', _cloud(shift=0.1), '1', params).source == 'cloud'
    d = arbitrate(Q, 11.0, '1', _cloud(shift=0.3), '1', params)
    assert d.source == 'edge' and 'moved' in d.reason
    # Unknown motion (the cloud answer had no boxes) decides nothing.
    assert arbitrate(Q, 11.0, '1', _cloud(shift=None), '1', params).source == 'cloud'


def test_a_cloud_answer_about_a_newer_frame_than_the_step_has_age_zero():
    # A slow edge answering step 19 when the cloud has answered step 20 already.
    d = arbitrate(Q, 9.0, '1', _cloud(), '1')
    assert d.source == 'cloud' and d.cloud_age_s == 0.0
    assert d.reason == 'cloud answer of step 20, 1.0 s newer than this step, same question; ' \
        'no change test'
    assert arbitrate(Q, 9.0, '1', _cloud(), '0', CHANGE_TEST).source == 'edge'


def test_multiple_choice_answers_compare_by_the_option_they_pick():
    assert question_choices(WHERE) == ('left', 'centre', 'right', 'not visible')
    assert same_answer('(b)', 'centre', WHERE)
    assert same_answer('(d) not visible', 'Not visible.', WHERE)
    assert not same_answer('(b)', '(c)', WHERE)
    assert same_answer('Two', '2', Q) and not same_answer('2', '3', Q)
    d = arbitrate(WHERE, 11.0, '(b) centre', _cloud(answer='left', question=WHERE), 'centre',
                  CHANGE_TEST)
    assert d.source == 'cloud' and d.answer == 'left'


@pytest.mark.parametrize('kw', [{'max_age_s': -1}, {'trust_age_s': math.nan},
                                {'max_box_shift': -0.1}])
def test_bad_parameters_are_refused(kw):
    with pytest.raises(ValueError):
        ArbitrationParams(**kw)


def test_the_answer_log_is_bounded_and_keyed_by_question():
    log = EdgeAnswerLog(capacity=3)
    for k in range(5):
        log.record(k, Q, str(k))
    assert len(log) == 3
    assert log.answer_at(0, Q) is None
    assert log.answer_at(4, Q) == '4'
    assert log.answer_at(4, 'Is there a red circle?') is None
    log.clear()
    assert len(log) == 0
    with pytest.raises(ValueError):
        EdgeAnswerLog(capacity=0)


def test_a_cloud_that_contradicts_itself_is_not_trusted():
    params = ArbitrationParams(max_self_disagreement=0.4)
    assert arbitrate(Q, 10.5, '1', _cloud(), '1', params, cloud_disagreement=0.3).source \
        == 'cloud'
    d = arbitrate(Q, 10.5, '1', _cloud(), '1', params, cloud_disagreement=0.5)
    assert d.source == 'edge' and 'contradicts itself on 50%' in d.reason
    # not known yet, or the test off: trusted
    assert arbitrate(Q, 10.5, '1', _cloud(), '1', params, None).source == 'cloud'
    off = ArbitrationParams(max_self_disagreement=None)
    assert arbitrate(Q, 10.5, '1', _cloud(), '1', off, cloud_disagreement=0.9).source == 'cloud'
    # the default distrusts a cloud contradicting itself on more than 45 %
    assert arbitrate(Q, 10.5, '1', _cloud(), '1', cloud_disagreement=0.46).source == 'edge'


def test_cloud_consistency_counts_disagreeing_pairs_of_close_answers_to_one_question():
    c = CloudConsistency(max_gap_s=1.0, alpha=0.5, min_pairs=2)
    c.add(0.0, Q, '2')
    c.add(0.5, Q, 'two')               # same answer
    assert c.estimate is None          # one pair so far
    c.add(1.0, Q, '3')                 # differs
    assert c.pairs == 2 and c.estimate == pytest.approx(0.5)
    c.add(5.0, Q, '1')                 # too far from the last one: no pair
    c.add(5.5, 'Is there a red circle?', 'yes')  # another question: no pair
    assert c.pairs == 2
    c.add(6.0, 'Is there a red circle?', 'no')
    assert c.pairs == 3 and c.estimate == pytest.approx(0.75)
    for kw in ({'max_gap_s': 0}, {'alpha': 0}, {'min_pairs': 0}):
        with pytest.raises(ValueError):
            CloudConsistency(**kw)
