# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Context Replacement: the history store and answer compression."""

import re

from edgevlm_ros.core.context import (
    COMPRESSION_MODES,
    ContextStore,
    Turn,
    compress_answer,
    find_entities,
    truncate_to_tokens,
    word_count,
)
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

Q = 'what is ahead?'  # 3 words


def _store(n: int, max_turns: int = 8, max_tokens: int = 512) -> ContextStore:
    s = ContextStore(max_turns=max_turns, max_tokens=max_tokens)
    for i in range(n):
        s.record_edge(i, Q, f'edge {i}')
    return s


def _tokens(turns: list[Turn]) -> int:
    return sum(word_count(t.question) + word_count(t.answer) for t in turns)


def test_history_is_oldest_first_and_keeps_edge_text():
    s = _store(3)
    assert s.history() == [Turn(i, Q, f'edge {i}', False) for i in range(3)]
    assert len(s) == 3 and s.replaced_turns == 0 and s.newest_cloud_step == -1


def test_cloud_answer_replaces_its_slot_only():
    s = _store(4)
    assert s.apply_cloud(1, Q, 'a person with a red cup')
    h = s.history()
    assert h[1] == Turn(1, Q, 'a person with a red cup', True)
    assert [t.answer for t in h if t.step_id != 1] == ['edge 0', 'edge 2', 'edge 3']
    assert s.replaced_turns == 1 and s.newest_cloud_step == 1


def test_edge_answer_never_overwrites_cloud_text():
    s = _store(2)
    s.apply_cloud(1, Q, 'cloud')
    s.record_edge(1, Q, 'edge again')
    assert s.history()[1].answer == 'cloud'
    s.record_edge(0, Q, 'edge updated')
    assert s.history()[0].answer == 'edge updated'


def test_cloud_answer_for_a_skipped_step_creates_a_slot_in_order():
    s = ContextStore(max_turns=4)
    for i in (0, 1, 3):  # the edge skipped step 2
        s.record_edge(i, Q, f'edge {i}')
    assert s.apply_cloud(2, Q, 'cloud two')
    assert [t.step_id for t in s.history()] == [0, 1, 2, 3]


def test_cloud_answer_before_the_edge_answers_is_kept():
    s = _store(2)
    assert s.apply_cloud(5, Q, 'cloud five')  # the edge has not answered step 5 yet
    s.record_edge(5, Q, 'edge five')
    assert s.history()[-1] == Turn(5, Q, 'cloud five', True)


def test_turn_cap_evicts_oldest_steps():
    s = _store(10, max_turns=3)
    assert [t.step_id for t in s.history()] == [7, 8, 9]
    assert s.stored_turns == 3


def test_late_answer_for_evicted_slot_changes_nothing():
    s = _store(10, max_turns=3)
    before = s.history()
    assert not s.apply_cloud(2, Q, 'too late')
    assert s.history() == before and s.dropped_late == 1


def test_answer_older_than_everything_in_a_full_store_is_dropped():
    s = ContextStore(max_turns=3)
    for i in (5, 6, 7):
        s.record_edge(i, Q, 'e')
    assert not s.apply_cloud(4, Q, 'old')  # never stored, but it would be evicted at once
    assert s.dropped_late == 1 and [t.step_id for t in s.history()] == [5, 6, 7]
    assert not s.apply_cloud(3, Q, 'older')  # and anything older stays late
    assert s.dropped_late == 2


def test_answer_older_than_everything_in_a_store_with_room_is_kept():
    s = ContextStore(max_turns=4)
    for i in (5, 6):
        s.record_edge(i, Q, 'e')
    assert s.apply_cloud(2, Q, 'cloud')
    assert [t.step_id for t in s.history()] == [2, 5, 6]


def test_token_cap_keeps_the_newest_turns_that_fit():
    s = ContextStore(max_turns=8, max_tokens=15)
    for i in range(4):
        s.record_edge(i, Q, 'one two')  # 5 tokens per turn
    assert [t.step_id for t in s.history()] == [1, 2, 3]
    assert s.total_tokens == 15 and len(s) == 3 and s.stored_turns == 4


def test_shorter_cloud_answer_brings_an_older_turn_back_within_budget():
    s = ContextStore(max_turns=8, max_tokens=15)
    s.record_edge(0, Q, 'one two')
    s.record_edge(1, Q, 'one two three four five six')
    s.record_edge(2, Q, 'one two')
    assert [t.step_id for t in s.history()] == [1, 2]
    s.apply_cloud(1, Q, 'yes')
    assert [t.step_id for t in s.history()] == [0, 1, 2]


def test_a_turn_larger_than_the_whole_budget_is_truncated_not_lost():
    s = ContextStore(max_turns=4, max_tokens=10)
    s.apply_cloud(0, Q, 'The person holds a red cup. It is ' + 'very ' * 50 + 'full.')
    (turn,) = s.history()
    assert turn.answer == 'The person holds a red cup.'
    assert word_count(turn.question) + word_count(turn.answer) <= 10


def test_a_huge_question_keeps_at_most_half_the_budget():
    s = ContextStore(max_turns=4, max_tokens=10)
    s.record_edge(0, 'word ' * 40, 'one two three four five six seven eight')
    (turn,) = s.history()
    assert word_count(turn.question) == 5 and word_count(turn.answer) == 5


def test_custom_token_counter_is_used():
    s = ContextStore(max_turns=8, max_tokens=20, count_tokens=len)  # characters
    s.record_edge(0, 'q', 'abcdefghij')  # 11
    s.record_edge(1, 'q', 'abcdefghij')  # 11 -> only one fits
    assert [t.step_id for t in s.history()] == [1]


def test_zero_turns_switches_history_off():
    s = ContextStore(max_turns=0)
    s.record_edge(0, Q, 'e')
    assert not s.apply_cloud(0, Q, 'c')
    assert s.history() == [] and len(s) == 0 and s.dropped_late == 0


def test_empty_cloud_text_changes_nothing():
    s = _store(2)
    assert not s.apply_cloud(1, Q, '   ')
    assert s.history()[1].answer == 'edge 1'


def test_clear_makes_in_flight_answers_late():
    s = _store(3)
    s.clear()
    assert s.history() == []
    assert not s.apply_cloud(2, Q, 'old question')
    s.record_edge(3, Q, 'new')
    assert s.apply_cloud(3, Q, 'fresh')


@pytest.mark.parametrize('kwargs', [{'max_turns': -1}, {'max_tokens': -5},
                                    {'max_turns': 2.5}, {'count_tokens': 3}])
def test_bad_constructor_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        ContextStore(**kwargs)


def test_bad_step_ids_raise():
    s = ContextStore()
    with pytest.raises(ValueError):
        s.record_edge(-1, Q, 'a')
    with pytest.raises(ValueError):
        s.apply_cloud('3', Q, 'a')


# --- properties ------------------------------------------------------------------------------

_texts = st.lists(st.sampled_from(['a', 'cup', 'the', 'red', 'person', 'left.']),
                  min_size=0, max_size=12).map(' '.join)
_ops = st.lists(st.tuples(st.sampled_from(['edge', 'cloud']), st.integers(0, 30), _texts),
                max_size=40)
_caps = st.tuples(st.integers(0, 6), st.integers(0, 40))
_counters = st.sampled_from([word_count, len])
_long_texts = _texts | st.text(max_size=120)  # with long "words" and odd whitespace


_blocks = st.integers(1, 6)


@settings(max_examples=200, deadline=None)
@given(_caps, st.lists(st.tuples(st.sampled_from(['edge', 'cloud', 'clear']),
                                 st.integers(0, 30), _long_texts), max_size=40),
       _counters, st.sampled_from(COMPRESSION_MODES), _blocks)
def test_caps_always_hold(caps, ops, count, mode, block):
    max_turns, max_tokens = caps
    s = ContextStore(max_turns=max_turns, max_tokens=max_tokens, count_tokens=count,
                     compression=mode, evict_block=block)
    for kind, sid, text in ops:
        if kind == 'edge':
            s.record_edge(sid, Q, text)
        elif kind == 'cloud':
            s.apply_cloud(sid, Q, text)
        elif sid % 10 == 0:  # now and then the question changes
            s.clear()
        h = s.history()
        assert len(h) == len(s) <= max_turns and s.stored_turns <= max_turns
        assert sum(count(t.question) + count(t.answer) for t in h) == s.total_tokens
        assert s.total_tokens <= max_tokens
        ids = [t.step_id for t in h]
        assert ids == sorted(set(ids))
        assert set(ids) <= set(s.stored_ids) and len(s.stored_ids) == s.stored_turns


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.integers(1, 20), _texts, _blocks, st.data())
def test_replacing_slot_j_changes_no_other_slot(max_turns, n, text, block, data):
    s = ContextStore(max_turns=max_turns, max_tokens=10_000, evict_block=block)
    for i in range(n):
        s.record_edge(i, Q, f'edge {i}')
    before = {t.step_id: t for t in s.history()}
    j = data.draw(st.sampled_from(sorted(before)))
    s.apply_cloud(j, Q, text + ' cloud')
    after = {t.step_id: t for t in s.history()}
    assert after.keys() == before.keys()
    assert {k: v for k, v in after.items() if k != j} == {
        k: v for k, v in before.items() if k != j}
    assert after[j].answer == (text + ' cloud').strip() and after[j].from_cloud


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.integers(4, 40), _ops, st.integers(0, 30), _long_texts, _blocks)
def test_replacing_slot_j_changes_no_other_slot_under_a_token_budget(max_turns, max_tokens, ops,
                                                                    j, text, block):
    # With a tight budget a longer answer in slot j may push older turns out of the visible
    # history (the newest run that fits): that is the token cap, not a change to those slots.
    s = ContextStore(max_turns=max_turns, max_tokens=max_tokens, evict_block=block)
    for kind, sid, t in ops:
        (s.record_edge if kind == 'edge' else s.apply_cloud)(sid, Q, t)
    before = {t.step_id: t for t in s.history()}
    stored = s.stored_turns
    kept = s.apply_cloud(j, Q, text + ' cloud')
    after = {t.step_id: t for t in s.history()}
    # Newer slots are untouched and stay visible exactly as before. (With blocks, a slot
    # inserted before them moves the block boundaries of the token view, which may then start
    # up to block - 1 slots later.)
    if block == 1:
        assert {k: v for k, v in after.items() if k > j} == {
            k: v for k, v in before.items() if k > j}
    # Older slots visible before and after hold the same turn.
    assert all(after[k] == before[k] for k in after.keys() & before.keys() if k != j)
    if j in after:
        full = (text + ' cloud').strip()
        assert after[j].from_cloud
        if word_count(Q) + word_count(full) <= max_tokens:
            assert after[j].answer == full
    if kept:  # replaced, stored as one more slot, or stored while the oldest block left
        assert j in s.stored_ids
        assert s.stored_turns in (stored, stored + 1, stored + 1 - min(block, max_turns))
    else:
        assert s.stored_turns == stored


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(0, 40), st.integers(1, 20), _ops, _texts, _blocks,
       st.data())
def test_late_answer_for_evicted_slot_changes_nothing_property(max_turns, max_tokens, extra,
                                                               ops, text, block, data):
    n = max_turns + extra  # steps 0 .. extra-1 are evicted by the turn cap (whatever the block)
    s = ContextStore(max_turns=max_turns, max_tokens=max_tokens, evict_block=block)
    for i in range(n):
        s.record_edge(i, Q, f'edge {i}')
    for kind, sid, t in ops:  # more traffic on kept (or newer) steps
        sid += extra
        (s.record_edge if kind == 'edge' else s.apply_cloud)(sid, Q, t)
    evicted = data.draw(st.integers(0, extra - 1))
    before, dropped = s.history(), s.dropped_late
    assert not s.apply_cloud(evicted, Q, text + ' late')
    assert s.history() == before and s.dropped_late == dropped + 1


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(0, 60), st.lists(st.integers(0, 20), max_size=12),
       st.lists(st.tuples(st.integers(0, 25), _texts), max_size=10, unique_by=lambda x: x[0]),
       st.randoms(use_true_random=False))
def test_order_of_cloud_arrivals_does_not_matter(max_turns, max_tokens, edge_ids, cloud,
                                                 rnd):
    def run(order):
        s = ContextStore(max_turns=max_turns, max_tokens=max_tokens)
        for sid in sorted(edge_ids):
            s.record_edge(sid, Q, f'edge {sid}')
        for sid, text in order:
            s.apply_cloud(sid, Q, text)
        return s.history()

    shuffled = list(cloud)
    rnd.shuffle(shuffled)
    assert run(cloud) == run(shuffled)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6), st.integers(0, 60),
       st.lists(st.tuples(st.integers(0, 20), _texts), max_size=14),
       st.lists(st.tuples(st.integers(0, 25), _long_texts), max_size=10,
                unique_by=lambda x: x[0]),
       st.randoms(use_true_random=False), _counters)
def test_replay_order_does_not_matter(max_turns, max_tokens, edge_ops, cloud, rnd, count):
    # The edge answers steps in any id order (skips, repeats); cloud answers (one per step)
    # arrive interleaved with them at any point and in any order. The result is the same.
    def replay(events):
        s = ContextStore(max_turns=max_turns, max_tokens=max_tokens, count_tokens=count)
        for kind, sid, text in events:
            (s.record_edge if kind == 'edge' else s.apply_cloud)(sid, Q, text)
        return s.history(), s.stored_turns

    def interleave(cloud_order):
        events = [('edge', sid, t) for sid, t in edge_ops]
        for sid, t in cloud_order:
            events.insert(rnd.randint(0, len(events)), ('cloud', sid, t))
        return events

    reference = replay([('edge', sid, t) for sid, t in edge_ops] +
                       [('cloud', sid, t) for sid, t in cloud])
    shuffled = list(cloud)
    for _ in range(3):
        rnd.shuffle(shuffled)
        assert replay(interleave(shuffled)) == reference


def _first_ids(max_turns: int, block: int, steps: int, max_tokens: int = 512) -> list[int]:
    s = ContextStore(max_turns=max_turns, max_tokens=max_tokens, evict_block=block)
    first = []
    for i in range(steps):
        s.record_edge(i, Q, 'one two')  # 5 tokens per turn
        first.append(s.history()[0].step_id)
    return first


def test_block_eviction_drops_the_oldest_block_at_once():
    # 8 turns, blocks of 4: the history starts at step 0 for 8 steps, then at 4, 8, 12, ...
    assert _first_ids(8, 4, 20) == [0] * 8 + [4] * 4 + [8] * 4 + [12] * 4
    s = ContextStore(max_turns=8, evict_block=4)
    for i in range(9):
        s.record_edge(i, Q, 'e')
    assert s.stored_ids == (4, 5, 6, 7, 8) and s.evict_block == 4
    # One slides by one turn every step (the window without blocks).
    assert _first_ids(3, 1, 6) == [0, 0, 0, 1, 2, 3]
    # A block larger than the cap empties the store but for the newest turn.
    assert _first_ids(3, 10, 6) == [0, 0, 0, 3, 3, 3]


def test_token_cap_view_moves_by_whole_blocks():
    # 5 tokens per turn, 20 tokens = 4 turns fit; 8 stored turns in blocks of 2: the view
    # starts at stored slot 0, 2, 4 or 6 and jumps by two turns, never by one.
    assert _first_ids(8, 2, 12, max_tokens=20) == [0, 0, 0, 0, 2, 2, 4, 4, 6, 6, 8, 8]
    s = ContextStore(max_turns=8, max_tokens=20, evict_block=2)
    for i in range(5):
        s.record_edge(i, Q, 'one two')
    assert [t.step_id for t in s.history()] == [2, 3, 4] and s.stored_turns == 5
    # The newest block alone over the budget: the newest run that fits (the newest turn).
    s = ContextStore(max_turns=8, max_tokens=12, evict_block=4)
    for i in range(3):
        s.record_edge(i, Q, 'one two three four')  # 7 tokens
    assert [t.step_id for t in s.history()] == [2]


def test_a_new_slot_inside_the_block_evicted_next_is_refused_as_late():
    s = ContextStore(max_turns=4, evict_block=2)
    for i in (1, 3, 5, 7):
        s.record_edge(i, Q, 'e')
    assert not s.apply_cloud(2, Q, 'cloud two')  # it would leave with 1 and 3 at once
    assert s.stored_ids == (1, 3, 5, 7) and s.dropped_late == 1
    assert s.apply_cloud(6, Q, 'cloud six')  # newer than the block: kept, the block goes
    assert s.stored_ids == (5, 6, 7)
    assert not s.apply_cloud(3, Q, 'late')  # left with the block: late
    assert s.dropped_late == 2
    assert s.apply_cloud(4, Q, 'cloud four')  # newer than anything evicted, room again
    assert s.stored_ids == (4, 5, 6, 7)


def test_bad_evict_block_raises():
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match='evict_block'):
            ContextStore(evict_block=bad)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12), _blocks, st.data(),
       st.lists(st.tuples(st.integers(1, 3), st.integers(1, 6)), min_size=1, max_size=40))
def test_new_turns_only_append_between_block_evictions(max_turns, block, data, steps):
    # The edge answers steps in id order (skipping some); every turn costs 4..9 tokens and the
    # newest block always fits. The history then either gains the new turn at its end with every
    # earlier turn unchanged (the KV-cached prompt prefix holds), or loses a whole block from its
    # front: never one turn per step.
    max_tokens = data.draw(st.integers(9 * min(block, max_turns), 120))
    s = ContextStore(max_turns=max_turns, max_tokens=max_tokens, evict_block=block)
    sid, before = 0, []
    for skip, words in steps:
        sid += skip
        s.record_edge(sid, Q, ' '.join(['word'] * words))
        after = s.history()
        assert after[-1].step_id == sid  # the newest turn is always seen
        gone = [t for t in before if t not in after]
        assert before[:len(gone)] == gone  # only from the front
        assert after[:-1] == before[len(gone):]  # the rest unchanged, the new turn appended
        assert not gone or len(gone) >= min(block, max_turns)
        assert len(after) <= max_turns and s.total_tokens <= max_tokens
        before = after


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6), st.integers(0, 60), st.integers(2, 4),
       st.lists(st.tuples(st.integers(0, 20), _texts), max_size=14),
       st.lists(st.tuples(st.integers(0, 25), _long_texts), max_size=10,
                unique_by=lambda x: x[0]),
       st.randoms(use_true_random=False))
def test_with_blocks_order_does_not_matter_when_nothing_is_refused(max_turns, max_tokens, block,
                                                                   edge_ops, cloud, rnd):
    # With blocks, a late answer's arrival time decides whether it held a slot when a block
    # left; when no new slot is refused (nothing was late), any order gives the same history.
    def replay(events):
        s = ContextStore(max_turns=max_turns, max_tokens=max_tokens, evict_block=block)
        refused = 0
        for kind, sid, text in events:
            new = sid not in s.stored_ids
            (s.record_edge if kind == 'edge' else s.apply_cloud)(sid, Q, text)
            refused += bool(new and sid not in s.stored_ids and (kind == 'edge' or text.strip()))
        return (s.history(), s.stored_turns), refused

    edge = [('edge', sid, t) for sid, t in sorted(edge_ops)]
    reference, refused = replay(edge + [('cloud', sid, t) for sid, t in cloud])
    shuffled = list(cloud)
    rnd.shuffle(shuffled)
    events = list(edge)
    for sid, t in shuffled:
        events.insert(rnd.randint(0, len(events)), ('cloud', sid, t))
    result, refused_too = replay(events)
    if refused == 0 and refused_too == 0:
        assert result == reference


# --- compression -----------------------------------------------------------------------------

def test_compress_keeps_the_answer_and_drops_filler():
    text = ('Sure! Based on the image, the path ahead is clear. A chair stands on the left. '
            'I hope this helps!')
    assert compress_answer(text, 100) == 'The path ahead is clear. A chair stands on the left.'
    assert compress_answer(text, 8) == 'The path ahead is clear.'


def test_compress_cuts_a_long_first_sentence_at_a_word():
    assert compress_answer('The path ahead is clear of obstacles.', 3) == 'The path ahead'


def test_compress_turns_markdown_lists_into_sentences():
    assert compress_answer('**Objects:**\n- a red cup\n- a laptop\n', 20) == \
        'Objects: a red cup. a laptop.'


def test_compress_empty_in_empty_out():
    assert compress_answer('', 10) == '' and compress_answer('   \n', 10) == ''
    assert compress_answer('text', 0) == ''


def test_compress_keeps_pure_filler_rather_than_nothing():
    assert compress_answer('Sure!', 5) == 'Sure!'


def test_truncate_falls_back_to_characters_for_one_long_word():
    assert truncate_to_tokens('abcdefghij', 4, len) == 'abcd'


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.integers(0, 30))
def test_compress_never_exceeds_the_budget(text, budget):
    assert word_count(compress_answer(text, budget)) <= budget
    assert len(compress_answer(text, budget, len)) <= budget


def test_zero_token_budget_hands_out_no_empty_turns():
    store = ContextStore(max_turns=8, max_tokens=0)
    store.record_edge(1, 'What is ahead?', 'a door')
    store.apply_cloud(1, 'What is ahead?', 'an open door')
    assert store.history() == []


def test_an_empty_newest_turn_hides_no_older_turn():
    store = ContextStore(max_turns=8, max_tokens=100)
    store.record_edge(1, Q, 'a door')
    store.record_edge(2, '', '')  # nothing to show, nothing to cost
    assert store.history() == [Turn(1, Q, 'a door', False)]


# --- compression modes and entities ----------------------------------------------------------

REPLY = ('Sure! The robot should stop. A **red cup** stands on the table near the "EXIT" sign. '
         'Behind it, John holds a Coca-Cola can. The door to Room B is open. I hope this helps!')


def test_find_entities_takes_quoted_bold_and_capitalised_names():
    assert find_entities(REPLY) == ['red cup', 'EXIT', 'John', 'Coca-Cola', 'Room B']
    # Sentence-initial words, 'I', yes/ok and possessives are not names.
    assert find_entities("It's John's cup. 'Stop' said the sign. I think OK. Yes, Mary and I "
                         'left. **Objects:** none.') == ['John', 'Stop', 'Mary']
    assert find_entities('') == []


def test_smart_lists_the_entities_only_the_cut_sentences_name():
    labels = ['cup', 'door', 'person']  # 'person' is named nowhere: not added
    assert compress_answer(REPLY, 4, entities=labels) == 'The robot should stop.'
    assert compress_answer(REPLY, 6, entities=labels) == 'The robot should stop. (also: cup)'
    # A longer name found in the text replaces the label it contains.
    assert compress_answer(REPLY, 10, entities=labels) == \
        'The robot should stop. (also: door, red cup, EXIT, John)'
    # Entities the kept sentences already name are not repeated.
    assert compress_answer(REPLY, 20, entities=labels) == (
        'The robot should stop. A red cup stands on the table near the "EXIT" sign. '
        '(also: door, John, Coca-Cola)')


def test_smart_adds_nothing_when_the_whole_answer_fits():
    full = ('The robot should stop. A red cup stands on the table near the "EXIT" sign. '
            'Behind it, John holds a Coca-Cola can. The door to Room B is open.')
    assert compress_answer(REPLY, 100, entities=['cup', 'person']) == full
    assert compress_answer(REPLY, 100, mode='sentences') == full


def test_sentences_mode_keeps_leading_sentences_only():
    assert compress_answer(REPLY, 10, entities=['door'], mode='sentences') == \
        'The robot should stop.'


def test_truncate_mode_is_a_word_prefix_of_the_raw_reply():
    assert compress_answer(REPLY, 6, mode='truncate') == 'Sure! The robot should stop. A'
    assert compress_answer('  a \n b  c ', 2, mode='truncate') == 'a b'


def test_unknown_compression_mode_raises():
    with pytest.raises(ValueError, match='mode'):
        compress_answer('text', 5, mode='summarise')
    with pytest.raises(ValueError, match='compression'):
        ContextStore(compression='summarise')


def test_store_compresses_oversized_answers_with_its_mode():
    text = 'The robot should stop. The door to Room B is open.'
    smart = ContextStore(max_turns=2, max_tokens=9)
    smart.apply_cloud(0, 'go?', text)
    assert smart.history()[0].answer == 'The robot should stop. (also: Room B)'
    plain = ContextStore(max_turns=2, max_tokens=9, compression='truncate')
    plain.apply_cloud(0, 'go?', text)
    assert plain.history()[0].answer == 'The robot should stop. The door to Room'


_words = st.sampled_from(['the', 'cup', 'Red', 'door', 'John', 'EXIT', '"Room B"', "'Stop'",
                          '**red cup**', 'is', 'open', 'Sure!', 'I', "it's", 'Coca-Cola',
                          'left', 'hope this helps!'])
_sentences = st.lists(_words, min_size=1, max_size=8).map(
    lambda ws: ' '.join(ws)[0].upper() + ' '.join(ws)[1:] + '.')
_replies = st.lists(_sentences, max_size=6).map(' '.join) | st.text(max_size=200)
_entities = st.lists(st.sampled_from(['cup', 'red cup', 'door', 'person', 'Room B', '', ' ',
                                      'a (b)', 'x' * 100]), max_size=5)


@settings(max_examples=400, deadline=None)
@given(_replies, st.integers(0, 40), _entities, st.sampled_from(COMPRESSION_MODES), _counters)
def test_every_mode_stays_within_the_budget(text, budget, entities, mode, count):
    out = compress_answer(text, budget, count, entities=entities, mode=mode)
    assert count(out) <= budget
    if budget == 0 or not text.strip():
        assert out == ''


_ALSO_RE = re.compile(r' \(also: (.+)\)$')


@settings(max_examples=400, deadline=None)
@given(_replies, st.integers(1, 40), _entities, _counters)
def test_smart_is_the_sentence_answer_plus_entities_only_the_cut_named(text, budget, entities,
                                                                       count):
    plain = compress_answer(text, budget, count, mode='sentences')
    smart = compress_answer(text, budget, count, entities=entities)
    assert smart.startswith(plain)
    suffix = smart[len(plain):]
    if suffix:
        m = _ALSO_RE.fullmatch(suffix)
        assert m is not None, suffix
        for entity in m.group(1).split(', '):
            assert entity.lower() in text.lower()
            assert entity.lower() not in plain.lower()
