# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Cloud step selection: every step leaves once, sent or dropped with a reason (fake clock)."""

from edgevlm_ros.core.selection import REASONS, CloudSelector
import numpy as np
import pytest


def test_first_step_is_sent_and_counted_in_flight():
    s = CloudSelector()
    d = s.offer(0.0, 'a')
    assert d.send == ['a'] and d.dropped == [] and s.in_flight == 1


def test_min_interval_between_sends():
    s = CloudSelector(min_interval_s=1.0, adaptive=False, max_in_flight=4)
    assert s.offer(0.0, 'a').send == ['a']
    assert s.offer(0.5, 'b').dropped == [('b', 'interval')]
    assert s.offer(1.0, 'c').send == ['c']


def test_scene_change_gate_and_max_quiet():
    s = CloudSelector(scene_change=0.1, max_quiet_s=5.0, max_in_flight=8)
    dark = np.zeros((48, 64), np.uint8)
    assert s.offer(0.0, 'a', dark).send == ['a']
    assert s.offer(1.0, 'b', dark + 10).dropped == [('b', 'no_change')]  # 10/255 = 0.04
    assert s.offer(1.0, 'c', dark + 60).send == ['c']
    assert s.offer(6.0, 'd', dark + 60).send == ['d']  # quiet for max_quiet_s: send anyway
    assert s.offer(6.5, 'e', None).send == ['e']  # no frame: cannot judge


def test_an_unchanged_scene_is_sent_again_before_the_standing_answer_expires():
    # The edge learned that a standing answer to this question holds 3 s here: with a 1 s round
    # trip the next send goes 2 s after the last, not after max_quiet_s.
    s = CloudSelector(scene_change=0.1, max_quiet_s=5.0, max_in_flight=1, follow_hold=True)
    still = np.zeros((48, 64), np.uint8)
    q = 'What colour is the box?'
    assert s.offer(0.0, 'a', still, question=q).send == ['a']
    s.finished(1.0, rtt_s=1.0)
    s.set_hold(q, 3.0)
    assert s.quiet_limit_s(1.0, q) == pytest.approx(2.0)
    assert s.offer(1.5, 'b', still, question=q).dropped == [('b', 'no_change')]
    assert s.offer(2.1, 'c', still, question=q).send == ['c']
    s.finished(3.1, rtt_s=1.0)
    # Another question, a hold of 0 (the edge beats any standing answer) or an unbounded one
    # (no age seen where it stops holding): max_quiet_s, as without an estimate.
    assert s.quiet_limit_s(3.1, 'How many people?') == 5.0
    for hold in (0.0, float('inf')):
        s.set_hold(q, hold)
        assert s.quiet_limit_s(3.1, q) == 5.0
    # A hold no longer than the round trip: an answer sent now lands expired; no sooner send.
    s.set_hold(q, 1.0)
    assert s.quiet_limit_s(3.1, q) == 5.0
    # Just longer than it: as often as the interval allows, never more.
    s.set_hold(q, 1.5)
    assert s.quiet_limit_s(3.1, q) == pytest.approx(s.interval_at(3.1)) == pytest.approx(1.0)
    s.set_hold(q, 60.0)
    assert s.quiet_limit_s(3.1, q) == 5.0  # max_quiet_s stays the bound
    s.set_hold(q, 3.0)
    s.configure(max_in_flight=1, min_interval_s=0.0, scene_change=0.1, max_quiet_s=5.0,
                max_age_s=3.0, adaptive=True, rtt_alpha=0.3, follow_hold=False)
    assert s.quiet_limit_s(3.1, q) == 5.0  # told not to follow the edge's hold
    with pytest.raises(ValueError, match='hold_s'):
        s.set_hold(q, float('nan'))


def test_scene_change_compares_frames_of_different_sizes():
    s = CloudSelector(scene_change=0.1)
    s.offer(0.0, 'a', np.zeros((480, 640, 3), np.uint8))
    s.finished(0.05)
    assert s.offer(0.1, 'b', np.zeros((240, 320), np.uint8)).dropped == [('b', 'no_change')]


def test_clock_going_backwards_forgets_the_last_send():
    s = CloudSelector(min_interval_s=10.0, max_in_flight=2)
    s.offer(100.0, 'a')
    assert s.offer(5.0, 'b').send == ['b']


def test_a_step_over_the_in_flight_limit_waits_and_goes_when_a_slot_frees():
    s = CloudSelector(max_in_flight=1, adaptive=False)
    s.offer(0.0, 'a')
    d = s.offer(0.5, 'b')
    assert d.send == [] and d.dropped == [] and s.pending == 1
    d = s.finished(1.0, rtt_s=1.0)
    assert d.send == ['b'] and s.in_flight == 1 and s.pending == 0


def test_only_the_newest_step_waits():
    s = CloudSelector(max_in_flight=1, adaptive=False)
    s.offer(0.0, 'a')
    s.offer(0.1, 'b')
    assert s.offer(0.2, 'c').dropped == [('b', 'superseded')]
    assert s.pending == 1
    assert s.finished(0.3).send == ['c']


def test_a_step_that_waited_longer_than_max_age_is_dropped_not_sent():
    s = CloudSelector(max_in_flight=1, max_age_s=2.0, adaptive=False)
    s.offer(0.0, 'a')
    s.offer(1.0, 'b')
    assert s.expire(2.9).dropped == []
    assert s.expire(3.1).dropped == [('b', 'max_age')] and s.pending == 0
    s.offer(4.0, 'c')
    d = s.finished(6.5)  # 'a' ends; 'c' has waited 2.5 s > max_age
    assert d.send == [] and d.dropped == [('c', 'max_age')] and s.in_flight == 0


def test_a_shut_gate_drops_the_step_and_the_one_waiting():
    s = CloudSelector(max_in_flight=1, adaptive=False)
    s.offer(0.0, 'a')
    s.offer(0.1, 'b')
    d = s.offer(0.2, 'c', gate=False)
    assert d.dropped == [('b', 'circuit_open'), ('c', 'circuit_open')] and s.pending == 0
    s.offer(0.3, 'd')
    d = s.finished(0.4, gate=False)
    assert d.send == [] and d.dropped == [('d', 'circuit_open')]


def test_interval_follows_the_round_trip_so_requests_do_not_queue():
    s = CloudSelector(max_in_flight=2, min_interval_s=0.1, rtt_alpha=0.5)
    assert s.base_interval_s == 0.1  # nothing measured yet
    s.offer(0.0, 'a')
    s.finished(2.0, rtt_s=2.0)
    assert s.rtt_ewma_s == 2.0 and s.base_interval_s == pytest.approx(1.0)  # RTT / max_in_flight
    s.offer(2.0, 'b')
    s.finished(2.5, rtt_s=1.0)
    assert s.rtt_ewma_s == pytest.approx(1.5) and s.base_interval_s == pytest.approx(0.75)
    assert s.offer(2.7, 'c').dropped == [('c', 'interval')]  # 0.7 s after the last send
    assert s.offer(2.8, 'd').send == ['d']


def test_failed_requests_do_not_feed_the_round_trip_mean():
    s = CloudSelector()
    s.offer(0.0, 'a')
    s.finished(10.0, rtt_s=None)
    assert s.rtt_ewma_s is None and s.base_interval_s == 0.0


def test_adaptive_off_keeps_the_fixed_interval():
    s = CloudSelector(min_interval_s=0.2, adaptive=False)
    s.offer(0.0, 'a')
    s.finished(3.0, rtt_s=3.0)
    assert s.base_interval_s == 0.2


def test_every_step_leaves_exactly_once_and_state_stays_bounded():
    rng = np.random.default_rng(0)
    s = CloudSelector(max_in_flight=2, min_interval_s=0.05, max_age_s=0.5)
    outcomes: dict[int, str] = {}
    in_flight: list[int] = []
    t = 0.0
    for i in range(2000):
        t += 0.1
        d = s.offer(t, i, gate=bool(rng.random() > 0.1))
        d2 = s.expire(t)
        events = [d, d2]
        if in_flight and rng.random() < 0.4:
            in_flight.pop(0)
            events.append(s.finished(t, rtt_s=float(rng.uniform(0.05, 1.0)),
                                     gate=bool(rng.random() > 0.1)))
        for e in events:
            for item in e.send:
                assert item not in outcomes
                outcomes[item] = 'sent'
                in_flight.append(item)
            for item, reason in e.dropped:
                assert item not in outcomes and reason in REASONS
                outcomes[item] = reason
        assert s.in_flight == len(in_flight) <= 2 and s.pending <= 1
    assert len(outcomes) + s.pending == 2000
    assert set(outcomes.values()) >= {'sent', 'interval', 'circuit_open', 'superseded'}


def test_configure_keeps_requests_in_flight():
    s = CloudSelector(max_in_flight=1)
    s.offer(0.0, 'a')
    s.configure(max_in_flight=2, min_interval_s=0.0, scene_change=0.0, max_quiet_s=5.0,
                max_age_s=3.0, adaptive=True, rtt_alpha=0.3, follow_hold=False)
    assert s.in_flight == 1 and s.offer(0.1, 'b').send == ['b']


def test_finished_without_a_request_is_a_bug():
    with pytest.raises(RuntimeError):
        CloudSelector().finished(0.0)


@pytest.mark.parametrize('kwargs', [{'max_in_flight': 0}, {'min_interval_s': -1},
                                    {'scene_change': 1.5}, {'max_quiet_s': 0},
                                    {'max_age_s': 0}, {'rtt_alpha': 0}, {'rtt_alpha': 1.5},
                                    {'max_in_flight': True}])
def test_bad_selector_configuration_raises(kwargs):
    with pytest.raises(ValueError):
        CloudSelector(**kwargs)


def test_a_new_question_goes_at_once_past_the_interval_and_the_in_flight_limit():
    sel = CloudSelector(max_in_flight=1, min_interval_s=0.3, adaptive=False)
    assert sel.offer(0.0, 'a1', question='Where is the cup?').send == ['a1']
    # Same question: the slot is taken, the step waits; another supersedes it.
    assert sel.offer(0.5, 'a2', question='Where is the cup?').send == []
    assert sel.pending == 1
    # The question changed: sent now (two in flight), the old question's step is dropped.
    got = sel.offer(0.6, 'b1', question='Is the door open?')
    assert got.send == ['b1'] and got.dropped == [('a2', 'superseded')]
    assert sel.in_flight == 2 and sel.pending == 0
    # Once is enough: the next step of the new question follows the usual rules.
    assert sel.offer(0.7, 'b2', question='Is the door open?').dropped == [('b2', 'interval')]
    # A third question while two are in flight: the limit plus one holds it back.
    assert sel.offer(1.8, 'c1', question='How many boxes?').send == []
    assert sel.pending == 1
    # Without questions the rule is off.
    plain = CloudSelector(max_in_flight=1)
    assert plain.offer(0.0, 'x').send == ['x'] and plain.offer(0.1, 'y').send == []


def test_a_busy_refusal_halves_the_send_rate_which_grows_back_by_a_step_a_second():
    from edgevlm_ros.core.selection import BUSY_MAX_INTERVAL_S, BUSY_RECOVERY_HZ_PER_S

    s = CloudSelector(max_in_flight=1, adaptive=False)
    assert s.offer(0.0, 'a').send == ['a']
    s.finished(0.1, busy=True)                 # no interval before: the first busy one
    assert s.interval_at(0.1) == pytest.approx(0.25)
    assert s.offer(0.2, 'b').dropped == [('b', 'interval')]  # 0.2 s after the send: too soon
    assert s.offer(0.3, 'c').send == ['c']
    s.finished(0.4, busy=True)                 # refused again: half the rate of that moment
    rate = 4.0 + 0.3 * BUSY_RECOVERY_HZ_PER_S  # 4 Hz allowed at 0.1, grown for 0.3 s
    assert 1.0 / s.interval_at(0.4) == pytest.approx(rate / 2.0)
    assert s.offer(0.7, 'd').dropped == [('d', 'interval')]
    # The rate grows back by BUSY_RECOVERY_HZ_PER_S each second without another refusal.
    assert 1.0 / s.interval_at(2.4) == pytest.approx(rate / 2.0 + 2.0 * BUSY_RECOVERY_HZ_PER_S)
    for t in range(3, 40):                     # answered from now on
        assert s.offer(float(t), 'x').send == ['x']
        s.finished(t + 0.01)
    assert s.interval_at(40.0) == 0.0          # recovered: back to the base interval
    assert s.busy_refusals == 2
    sends = []
    for k in range(1200):                      # 60 s of a step every 50 ms, every try refused
        t = 100.0 + 0.05 * k
        if s.offer(t, 'y').send:
            sends.append(t)
            s.finished(t, busy=True)
    # Halving meets regrowth at one try every sqrt(1 / (2 * BUSY_RECOVERY_HZ_PER_S)) s (1.4 s).
    gaps = np.diff(sends[10:])
    assert np.mean(gaps) == pytest.approx((2.0 * BUSY_RECOVERY_HZ_PER_S) ** -0.5, abs=0.06)
    many = CloudSelector(max_in_flight=12, adaptive=False)
    for _ in range(12):
        many.offer(0.0, 'z')
    for _ in range(12):                        # twelve refusals at once: capped
        many.finished(0.0, busy=True)
    assert many.interval_at(0.0) == BUSY_MAX_INTERVAL_S


def test_a_step_pending_when_its_slot_comes_back_busy_is_dropped():
    s = CloudSelector(max_in_flight=1, adaptive=False)
    s.offer(0.0, 'a')
    s.offer(0.2, 'b')                          # waits for the slot
    out = s.finished(0.3, busy=True)
    assert out.send == [] and out.dropped == [('b', 'interval')] and s.pending == 0
    assert s.offer(0.4, 'c').send == ['c']     # 0.4 s after the last send: past 0.25 s
