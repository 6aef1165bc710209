# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Streamed one-off questions without ROS.

The SSE wire format (cloud.stream), the streaming asker (cloud.ask_stream) against the embedded
LVLM server (simulated LVLM) and the fault server, and the Ask action's pure rules (cloud.asks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import json
import time

from edgevlm_ros.cloud.ask_stream import StreamingAsker
from edgevlm_ros.cloud.asks import ask_counts, check_goal
from edgevlm_ros.cloud.openai_client import OpenAiVlmClient
from edgevlm_ros.cloud.resilience import CircuitBreaker, RetryPolicy
from edgevlm_ros.cloud.stream import DONE, SseDecoder, SseError, parse_chunk, sse_event
from edgevlm_ros.core.ask import Admission, FeedbackGate
from edgevlm_ros.lvlm.server import LvlmServer
from edgevlm_ros.lvlm.streaming import word_pieces
from edgevlm_ros.sim.synthworld import WorldSpec
from fault_server import FaultServer
import httpx
import numpy as np
import pytest

WORLD = 'synth:duration=1,fps=2'
SERVED = 'edgevlm-local-lvlm'
MODEL = 'fault-vlm'
QUESTION = 'Describe the scene'


def frame() -> np.ndarray:
    return next(WorldSpec.parse(WORLD).generate()).rgb


def until(predicate, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def run_ask(url: str, model: str = SERVED, *, deadline_s: float | None = None,
            max_tokens: int | None = None, notices: list | None = None,
            breaker: CircuitBreaker | None = None, retries: int = 0, timeout_s: float = 10.0):
    """One ask on a fresh client; returns (result, [(text, chunks) seen by on_text])."""
    seen: list[tuple[str, int]] = []

    async def main():
        client = OpenAiVlmClient(url, model, timeout_s=timeout_s, breaker=breaker,
                                 retry=RetryPolicy(retries, 0.01, 0.02))
        asker = StreamingAsker(client, on_notice=(notices.append if notices is not None
                                                  else None))
        try:
            deadline = None if deadline_s is None else time.monotonic() + deadline_s
            return await asker.ask(frame(), QUESTION, max_tokens=max_tokens, deadline=deadline,
                                   on_text=lambda t, n: seen.append((t, n)))
        finally:
            await client.aclose()
    return asyncio.run(main()), seen


@pytest.fixture(scope='module')
def lvlm() -> Iterator[LvlmServer]:
    """The embedded stand-in serving the simulated LVLM, 1.5 s a call (words spread over it)."""
    server = LvlmServer(f'simulated:{WORLD},error=0', service_ms=1500)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    with FaultServer(served_model=MODEL) as server:
        yield server


# ----------------------------------------------------------------------------- wire format


def test_sse_events_are_read_whatever_the_chunking_and_line_ends():
    stream = (b': keep-alive\r\n\r\ndata: {"a": 1}\r\n\r\nevent: x\ndata: two\ndata: lines\n\n'
              b'data:[DONE]\r\r')
    for size in (1, 2, 3, 7, len(stream)):
        decoder = SseDecoder()
        events = []
        for i in range(0, len(stream), size):
            events += decoder.feed(stream[i:i + size])
        events += decoder.close()
        assert events == ['{"a": 1}', 'two\nlines', DONE], size


def test_an_event_without_its_blank_line_is_kept_at_the_end_and_long_lines_are_refused():
    decoder = SseDecoder()
    assert decoder.feed(b'data: [DONE]') == []
    assert decoder.close() == [DONE]
    with pytest.raises(SseError):
        SseDecoder(max_line_bytes=16).feed(b'data: ' + b'x' * 32)


def test_chunks_give_content_finish_reason_and_usage_and_reject_what_is_not_a_chunk():
    c = parse_chunk(json.dumps({'model': 'm', 'choices': [
        {'index': 0, 'delta': {'content': ' red'}, 'finish_reason': None}]}))
    assert (c.content, c.model, c.finish_reason) == (' red', 'm', '')
    c = parse_chunk('{"choices": [{"delta": {}, "finish_reason": "stop"}]}')
    assert (c.content, c.finish_reason) == ('', 'stop')
    c = parse_chunk('{"choices": [], "usage": {"completion_tokens": 7}}')
    assert c.completion_tokens == 7
    assert parse_chunk('{"error": {"message": "out of memory"}}').error == 'out of memory'
    for bad in ('{"choices": [{"delta": {"content": "trunc', '[1, 2]', '{"id": "x"}',
                '{"choices": ["x"]}', '{"choices": [{"delta": {"content": 3}}]}'):
        assert parse_chunk(bad) is None, bad
    assert sse_event(DONE) == b'data: [DONE]\n\n'


def test_words_stream_with_the_space_before_them():
    assert word_pieces('a red  box\non it ') == ['a', ' red', '  box', '\non', ' it']
    assert ''.join(word_pieces('a red  box')) == 'a red  box'


# ----------------------------------------------------------------------------- the asker


def test_the_request_is_a_plain_streamed_question_without_a_reply_schema():
    client = OpenAiVlmClient('http://127.0.0.1:9/v1', MODEL, structured_output='json_schema')
    body = StreamingAsker(client).build_request(frame(), '  Is the path clear? ', max_tokens=40)
    assert body['stream'] is True and body['stream_options'] == {'include_usage': True}
    assert 'response_format' not in body and body['max_tokens'] == 40
    assert 'JSON' not in body['messages'][0]['content']
    assert body['messages'][1]['content'][1] == {'type': 'text', 'text': 'Is the path clear?'}
    with pytest.raises(ValueError):
        StreamingAsker(client).build_request(frame(), '  ')


def test_the_embedded_server_streams_the_answer_in_several_chunks(lvlm):
    result, seen = run_ask(lvlm.url)
    assert (result.ending, result.fault, result.streamed) == ('done', '', True)
    assert result.finish_reason == 'stop' and result.chunks == len(seen) >= 3
    assert seen[-1] == (result.text, result.chunks)
    # Each chunk adds to the text: what a robot shows grows word by word.
    assert all(b[0].startswith(a[0]) and len(b[0]) > len(a[0]) for a, b in zip(seen, seen[1:]))
    assert result.completion_tokens == len(result.text.split())
    # Non-streaming requests are as they were: JSON answer and boxes.
    client = httpx.Client(base_url=lvlm.url, timeout=30)
    body = StreamingAsker(OpenAiVlmClient(lvlm.url, SERVED)).build_request(frame(), QUESTION)
    del body['stream'], body['stream_options']
    reply = client.post('/chat/completions', json=body).json()
    assert json.loads(reply['choices'][0]['message']['content'])['answer'] == result.text


def test_cancelling_the_ask_closes_the_stream_and_frees_the_servers_model(lvlm):
    stopped = lvlm.streams_stopped

    async def main():
        client = OpenAiVlmClient(lvlm.url, SERVED)
        first = asyncio.Event()
        task = asyncio.ensure_future(StreamingAsker(client).ask(
            frame(), QUESTION, on_text=lambda t, n: first.set()))
        await asyncio.wait_for(first.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.aclose()
    t0 = time.monotonic()
    asyncio.run(main())
    # The server saw the connection close and stopped: its model is free long before the
    # 1.5 s the whole answer would have held it.
    assert until(lambda: lvlm.streams_stopped == stopped + 1 and lvlm.calls_running == 0)
    assert time.monotonic() - t0 < 1.5
    result, _ = run_ask(lvlm.url)  # and it answers the next one whole
    assert result.ending == 'done'


def test_a_stream_broken_half_way_fails_with_the_partial_text_kept(fault):
    fault.set('ok', stream_mode='sse_broken', break_after=3)
    result, seen = run_ask(fault.url, MODEL, retries=2)
    assert (result.ending, result.fault) == ('failed', 'stream_broken')
    assert result.text == 'a red box' and result.chunks == 3 == len(seen)
    assert result.attempts == 1  # text had streamed: not asked again
    assert 'mid-stream' in result.error


def test_a_stream_broken_before_any_text_is_retried(fault):
    fault.set('ok', stream_mode='sse_broken', break_after=0)
    result, _ = run_ask(fault.url, MODEL, retries=1)
    assert (result.ending, result.fault, result.attempts, result.text) == (
        'failed', 'connect', 2, '')


def test_a_malformed_chunk_fails_with_the_partial_text_kept(fault):
    fault.set('ok', stream_mode='sse_malformed', break_after=2)
    result, _ = run_ask(fault.url, MODEL)
    assert (result.ending, result.fault, result.text) == ('failed', 'bad_chunk', 'a red')
    assert 'not a chat.completion.chunk' in result.error


def test_a_server_that_does_not_stream_gives_its_whole_answer_as_one_chunk(fault):
    fault.set('no_boxes')  # stream: true answered with one plain completion
    notices: list[str] = []
    result, seen = run_ask(fault.url, MODEL, notices=notices)
    assert (result.ending, result.streamed, result.chunks) == ('done', False, 1)
    assert seen == [('There is a red box on the floor.', 1)]
    assert len(notices) == 1 and 'does not stream' in notices[0]
    assert ask_counts('done', result)[:2] == [('ask_answered', 1), ('ask_stream_unsupported', 1)]


def test_http_errors_fail_with_the_reason_and_busy_refusals_are_retried(fault):
    fault.set('status', status=401, message='bad key')
    result, _ = run_ask(fault.url, MODEL, retries=2)
    assert (result.ending, result.fault, result.attempts) == ('failed', 'unauthorized', 1)
    assert result.error == 'HTTP 401: bad key'
    fault.set('ok', stream_mode='sse').script('status')
    fault.status, fault.retry_after = 503, '0'
    breaker = CircuitBreaker(failure_threshold=1)
    result, _ = run_ask(fault.url, MODEL, retries=1, breaker=breaker)
    assert (result.ending, result.attempts, result.busy_tries) == ('done', 2, 1)
    assert breaker.state == 'closed'  # busy is no failure


def test_silence_is_a_timeout_and_the_deadline_keeps_the_text_so_far(fault):
    fault.set('hang')
    result, _ = run_ask(fault.url, MODEL, timeout_s=0.3)
    assert (result.ending, result.fault) == ('failed', 'timeout')
    fault.set('ok', stream_mode='sse', stream_delay_s=0.2)
    result, _ = run_ask(fault.url, MODEL, deadline_s=0.5)
    assert result.ending == 'deadline' and result.fault == ''
    assert 0 < result.chunks < len(word_pieces(fault.answer))
    assert fault.answer.startswith(result.text)
    assert until(lambda: fault.disconnects == 1)  # the stream was closed


def test_an_open_breaker_sends_nothing_and_a_failure_opens_it(fault):
    fault.set('status', status=500)
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=60.0)
    result, _ = run_ask(fault.url, MODEL, breaker=breaker, retries=2)
    assert (result.ending, result.fault, breaker.state) == ('failed', 'server_error', 'open')
    n = fault.count
    result, _ = run_ask(fault.url, MODEL, breaker=breaker)
    assert (result.fault, result.attempts, fault.count) == ('circuit_open', 0, n)
    assert 'circuit open' in result.error


def test_asks_wait_for_their_own_slot_until_their_deadline(fault):
    fault.set('ok', stream_mode='sse', stream_delay_s=0.3)

    async def main():
        client = OpenAiVlmClient(fault.url, MODEL)
        asker = StreamingAsker(client, max_in_flight=1)
        first = asyncio.ensure_future(asker.ask(frame(), QUESTION))
        await asyncio.sleep(0)
        second = await asker.ask(frame(), QUESTION, deadline=time.monotonic() + 0.3)
        results = (await first, second, client.in_flight)
        await client.aclose()
        return results
    first, second, step_slots = asyncio.run(main())
    assert first.ending == 'done'
    assert (second.ending, second.fault, second.attempts) == ('deadline', 'queued', 0)
    assert step_slots == 0  # the step stream's slots were never taken


# ----------------------------------------------------------------------------- rules


def test_goals_are_checked_in_order_and_zero_means_the_bridge_default():
    ok = check_goal('', 'What is ahead?', 0, 0.0, 64, 30.0)
    assert (ok.rejection, ok.max_tokens, ok.deadline_s) == ('', 64, 30.0)
    assert check_goal('cloud', 'q', 12, 2.5, 64, 30.0).max_tokens == 12
    assert check_goal('edge', '', 0, -1.0, 64, 30.0).rejection == 'unknown_target'
    assert check_goal('cloud', ' ', 0, 0.0, 64, 30.0).rejection == 'empty_question'
    assert check_goal('cloud', 'q', 9000, 0.0, 64, 30.0).rejection == 'bad_max_new_tokens'
    for bad in (-1.0, float('nan'), float('inf'), 4000.0):
        assert check_goal('cloud', 'q', 0, bad, 64, 30.0).rejection == 'bad_deadline'


def test_feedback_goes_at_once_then_every_n_chunks_or_m_seconds():
    gate = FeedbackGate(every=4, every_s=0.1)
    assert gate.due(1, 0.0)
    gate.sent(1, 0.0)
    assert not gate.due(1, 5.0)         # nothing new
    assert not gate.due(4, 0.05)        # 3 new chunks within 0.1 s
    assert gate.wait_s(4, 0.05) == pytest.approx(0.05)
    assert gate.due(5, 0.05)            # 4 new chunks
    assert gate.due(2, 0.1)             # 0.1 s passed with something new


def test_admission_holds_the_streaming_and_the_waiting_asks_and_no_more():
    admission = Admission(max_in_flight=1, max_queue=1)
    assert admission.enter() and admission.enter() and not admission.enter()
    admission.leave()
    assert admission.enter() and admission.active == 2
