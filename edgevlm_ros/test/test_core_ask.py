# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""core.ask: goal checks, the token stream between the model and the feedback, endings."""

import threading

from edgevlm_ros.core import ask
import pytest


class _Partial:
    def __init__(self, words):
        self.words = words

    @property
    def tokens(self):
        return len(self.words)

    @property
    def text(self):
        return ' '.join(self.words)


@pytest.mark.parametrize('args, code', [
    (('  ', 'edge', 0, 0.0), 'EMPTY_QUESTION'),
    (('Q?', 'moon', 0, 0.0), 'UNKNOWN_TARGET'),
    (('Q?', 'edge', 513, 0.0), 'BAD_MAX_NEW_TOKENS'),
    (('Q?', 'edge', 0, -1.0), 'BAD_DEADLINE'),
    (('Q?', 'edge', 0, float('nan')), 'BAD_DEADLINE'),
])
def test_bad_goals_are_named(args, code):
    assert ask.check_goal(*args, max_tokens_bound=512).code == code


def test_good_goals_and_targets():
    for target in ('', 'edge', 'CLOUD', 'both'):
        assert ask.check_goal('Q?', target, 512, 3600.0, max_tokens_bound=512) is None
    assert ask.parse_target('') == 'edge' and ask.parse_target(' Both ') == 'both'
    assert ask.parse_target('edge,cloud') is None


def test_the_stream_keeps_text_every_n_tokens_or_m_seconds_and_stops_on_request():
    now = [0.0]
    stream = ask.TokenStream(every_tokens=4, every_s=0.1, clock=lambda: now[0])
    words = []
    kept = []
    for i in range(10):
        words.append(f'w{i}')
        assert stream.on_token(_Partial(list(words)))
        update = stream.wait(0)
        if update is not None:
            kept.append(update.tokens)
    assert kept == [1, 5, 9]  # the first at once, then every 4 while the clock stands still
    now[0] = 0.2
    words.append('w10')
    stream.on_token(_Partial(list(words)))
    assert stream.wait(0).tokens == 11  # 0.1 s passed: kept after one token
    stream.stop(ask.CANCELLED)
    stream.stop(ask.DEADLINE)  # the first reason stands
    assert stream.on_token(_Partial(words)) is False and stream.stopped_by == ask.CANCELLED
    stream.finish('w0 w1', 2)
    end = stream.wait(0)
    assert end.finished and end.text == 'w0 w1' and end.stopped_by == ask.CANCELLED


def test_a_consumer_wakes_when_text_arrives_from_another_thread():
    stream = ask.TokenStream(every_tokens=1, every_s=10.0)
    got = []
    reader = threading.Thread(target=lambda: got.append(stream.wait(5.0)))
    reader.start()
    stream.on_token(_Partial(['hello']))
    reader.join(5.0)
    assert got and got[0].text == 'hello' and not got[0].finished
    assert stream.wait(0.0) is None  # nothing new since


def test_endings_and_the_goal_terminal_state():
    assert ask.ending('', failed=False) == ask.DONE
    assert ask.ending(ask.DEADLINE, failed=False) == ask.DEADLINE
    assert ask.ending(ask.CANCELLED, failed=True) == ask.FAILED
    assert ask.terminal([ask.DONE, ask.DONE], False) == 'succeeded'
    assert ask.terminal([ask.DONE, ask.FAILED], False) == 'aborted'
    assert ask.terminal([ask.DONE], True) == 'canceled'
    assert ask.terminal([], False) == 'aborted'


def test_a_client_is_gone_only_after_nobody_listened_for_the_grace():
    now = [0.0]
    watch = ask.ClientWatch(grace_s=0.5, clock=lambda: now[0])
    assert not watch.gone(0)  # the first look: the client may not be discovered yet
    now[0] = 0.4
    assert not watch.gone(1)
    now[0] = 0.8
    assert not watch.gone(0)  # 0.4 s since it was last heard
    now[0] = 0.9
    assert watch.gone(0)
