# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
One-off questions to the cloud LVLM, streamed: a frame + question in, the text as it comes out.

ROS-free. The cloud bridge's Ask action (``edgevlm/ask_cloud``) runs ``StreamingAsker.ask`` on its
asyncio loop; the step stream's requests (``OpenAiVlmClient.ask``) are not touched. The request is
a chat completion with ``"stream": true`` (and ``stream_options.include_usage``) and a plain
prompt: no JSON reply schema and no ``response_format``, a one-off question wants prose. The reply
is read as server-sent events (``cloud.stream``); ``on_text(text so far, chunks so far)`` is
called after every chunk that carries text.

It shares the step client's connection pool, emulated network (half the sampled round trip before
the request goes, half before the first byte comes back; a lost request never answers, so it
times out; the download cap is not applied to streamed chunks), retry policy, circuit breaker and
key redaction. Rules:

1. ``ask`` never raises for network, server or stream faults; it returns an ``AskResult`` whose
   ``ending`` is 'done', 'deadline' or 'failed' ('cancelled' is the caller's: cancelling the task
   running ``ask`` closes the HTTP stream, and the server sees the connection close), with the
   text so far in every case and ``fault`` naming a failure. Bad arguments raise ValueError.
2. Timeouts: no byte for ``timeout_s`` (the client's) before the first byte or between two
   chunks is the fault 'timeout'; the whole ask ends at ``deadline`` (ending 'deadline', text so
   far kept). A deadline that passes while the ask waits for a slot ends it unsent
   (fault 'queued').
3. At most ``max_in_flight`` asks stream at once (their own slots: a one-off question never takes
   a slot of the step stream); later ones wait for a slot until their deadline. How many may wait
   at all is the caller's admission (``core.ask.Admission``).
4. Retries follow the client's ``RetryPolicy`` (transient faults; Retry-After honoured; never
   after the deadline) and only before any text arrived: once text streamed, a fault ends the
   ask with the partial text kept. A circuit breaker that is not closed lets no retry go.
5. Every attempt's outcome goes to the circuit breaker as on the step path: an answer is a
   success, a fault a failure, a busy refusal (429, 503 + Retry-After) neither. Reaching the
   deadline is the asker's limit, not the server's fault: a success if text had arrived, else
   nothing. An ask that is not let through by the breaker ends 'failed' unsent (fault
   'circuit_open', ``attempts`` 0).
6. Stream faults: a server that answers ``stream: true`` with one plain chat completion is
   accepted as one chunk (``streamed`` False; ``on_notice`` once per asker); a stream that ends
   before ``data: [DONE]`` and before a ``finish_reason`` is 'stream_broken' (or 'connect' if no
   text had come: then it is retried); a chunk that is not a chat.completion.chunk is 'bad_chunk';
   an error event mid-stream is 'stream_error'; more than the client's ``max_response_bytes`` is
   'too_large'; HTTP errors are the client's faults ('server_error', 'rate_limited', ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import json
import time

import httpx
import numpy as np

from edgevlm_ros.cloud.openai_client import (
    OpenAiVlmClient,
    _error_text,
    _message_content,
    _tls_error,
    parse_retry_after,
)
from edgevlm_ros.cloud.resilience import RETRYABLE, fault_for_status, refused_busy
from edgevlm_ros.cloud.stream import DONE, EVENT_STREAM, SseDecoder, SseError, parse_chunk

ASK_SYSTEM_PROMPT = ('You are the vision system of a robot. Answer the question about the image '
                     'in plain sentences, briefly and precisely.')

TextCallback = Callable[[str, int], None]


@dataclass
class AskResult:
    """What one streamed ask produced (after its retries)."""

    ending: str                  # 'done', 'deadline' or 'failed' (rule 1)
    text: str = ''               # the answer, or the text so far when it ended early
    chunks: int = 0              # chunks that carried text
    fault: str = ''              # why it failed (rule 6); '' when done
    error: str = ''              # one line for a person, redacted
    round_trip_ms: float = 0.0   # ask() called -> ended, waits and retries in
    model: str = ''
    attempts: int = 0            # HTTP exchanges tried (0: never sent)
    busy_tries: int = 0
    http_status: int = 0         # the last attempt's (0: no response)
    streamed: bool = True        # False: the server sent one plain completion (rule 6)
    finish_reason: str = ''
    completion_tokens: int | None = None  # the server's usage, when it sent it
    retry_after_s: float | None = None

    @property
    def sent(self) -> bool:
        return self.attempts > 0


class _TooLarge(Exception):
    pass


class StreamingAsker:
    """Streams one-off questions through an ``OpenAiVlmClient``'s pool; see the module."""

    def __init__(self, client: OpenAiVlmClient, max_in_flight: int = 1,
                 on_notice: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) \
                or max_in_flight < 1:
            raise ValueError(f'max_in_flight must be an int >= 1, got {max_in_flight!r}')
        self.client = client
        self.max_in_flight = max_in_flight
        self.on_notice = on_notice
        self._clock = clock
        self._slots: asyncio.Semaphore | None = None  # made on the loop that asks
        self._noticed = False

    def build_request(self, rgb: np.ndarray, question: str, max_tokens: int | None = None
                      ) -> dict:
        """The JSON body ``ask`` sends: a plain prompt, streamed, no response_format."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError('question must be a non-empty string')
        if max_tokens is not None and (isinstance(max_tokens, bool)
                                       or not isinstance(max_tokens, int) or max_tokens < 1):
            raise ValueError(f'max_tokens must be a positive int, got {max_tokens!r}')
        image, _ = self.client.image_part(rgb)
        return {
            'model': self.client.model,
            'messages': [
                {'role': 'system', 'content': ASK_SYSTEM_PROMPT},
                {'role': 'user', 'content': [image, {'type': 'text', 'text': question.strip()}]},
            ],
            'max_tokens': max_tokens or self.client.max_tokens,
            'temperature': 0,
            'stream': True,
            'stream_options': {'include_usage': True},
        }

    async def ask(self, rgb: np.ndarray, question: str, *, max_tokens: int | None = None,
                  deadline: float | None = None, on_text: TextCallback | None = None
                  ) -> AskResult:
        """Stream the answer (rules 1-6); `deadline` is on this asker's clock."""
        payload = json.dumps(self.build_request(rgb, question, max_tokens)).encode()
        t0 = self._clock()
        result = AskResult('failed', model=self.client.model)
        try:
            if not await self._take_slot(deadline):
                result.ending, result.fault = 'deadline', 'queued'
                result.error = (f'not sent: {self.max_in_flight} asks streaming until its '
                                'deadline')
                return result
            try:
                await self._attempts(payload, deadline, on_text, result)
            finally:
                assert self._slots is not None
                self._slots.release()
            return result
        finally:
            result.round_trip_ms = (self._clock() - t0) * 1000.0
            result.error = self.client.redact(result.error)

    # ------------------------------------------------------------------------------- tries

    async def _take_slot(self, deadline: float | None) -> bool:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        if deadline is None:
            await self._slots.acquire()
            return True
        try:
            async with asyncio.timeout(max(0.0, deadline - self._clock())):
                await self._slots.acquire()
        except TimeoutError:
            return False
        return True

    async def _attempts(self, payload: bytes, deadline: float | None,
                        on_text: TextCallback | None, result: AskResult) -> None:
        breaker = self.client.breaker
        if breaker is not None and not breaker.acquire():
            result.fault, result.error = 'circuit_open', self.client.open_text()
            return
        recorded = False  # an outcome went to the breaker (else a probe must be handed back)
        try:
            retry = 0
            while True:
                await self._attempt(payload, deadline, on_text, result)
                result.attempts += 1
                refused = refused_busy(result.http_status, result.retry_after_s)
                result.busy_tries += refused
                if result.ending == 'done' or (result.ending == 'deadline' and result.chunks):
                    if breaker is not None:
                        breaker.record_success()
                        recorded = True
                    return
                if result.ending == 'deadline':
                    return
                if breaker is not None and not refused:
                    breaker.record_failure(result.error)
                    recorded = True
                if result.chunks:
                    return  # rule 4: the partial text stands, no retry
                retry += 1
                wait = self.client.retry.delay(retry, result.fault, self._clock(), deadline,
                                               result.retry_after_s)
                if wait is None:
                    if retry <= self.client.retry.max_retries and result.fault in RETRYABLE:
                        result.error += ' (not retried: the next try would start after the ' \
                                        'deadline)'
                    return
                if not self._retry_allowed(result):
                    return
                await asyncio.sleep(wait)
                if not self._retry_allowed(result):
                    return
        finally:
            if breaker is not None and not recorded:
                breaker.release()

    def _retry_allowed(self, result: AskResult) -> bool:
        breaker = self.client.breaker
        if breaker is None or breaker.retry_allowed():
            return True
        result.error += ' (not retried: circuit open)'
        return False

    async def _attempt(self, payload: bytes, deadline: float | None,
                       on_text: TextCallback | None, result: AskResult) -> None:
        """One HTTP exchange; sets ending, fault, error, http_status and retry_after_s."""
        result.ending, result.fault, result.error = 'failed', '', ''
        result.http_status, result.retry_after_s = 0, None
        client = self.client
        loop = asyncio.get_running_loop()
        deadline_at = None if deadline is None else loop.time() + deadline - self._clock()
        limit = ['timeout']  # what the running timer stands for

        def arm(timer: asyncio.Timeout) -> None:
            """Rule 2: timeout_s from now, or the deadline if that comes first."""
            end = loop.time() + client.timeout_s
            if deadline_at is not None and deadline_at <= end:
                end, limit[0] = deadline_at, 'deadline'
            else:
                limit[0] = 'timeout'
            timer.reschedule(end)

        delay = client.network_delay(len(payload))
        started = [False]  # response headers came
        try:
            async with asyncio.timeout(None) as timer:
                arm(timer)
                if delay is None:
                    await asyncio.Event().wait()  # lost in the emulated network: never answers
                if delay:
                    await asyncio.sleep(delay / 2)  # on the way up
                async with client.http.stream('POST', client.endpoint, content=payload,
                                              headers={'Accept': EVENT_STREAM}) as response:
                    if delay:
                        await asyncio.sleep(delay / 2)  # on the way down, before the first byte
                    started[0] = True
                    await self._read(response, result, on_text, lambda: arm(timer))
        except TimeoutError:
            if limit[0] == 'deadline':
                result.ending, result.fault = 'deadline', ''
                result.error = (f'deadline reached after {result.chunks} chunks'
                                if result.chunks else 'deadline reached before any text')
            else:
                self._fail(result, 'timeout', f'no data within {client.timeout_s:g} s'
                           + (' (emulated network: request lost in an outage)'
                              if delay is None else ''))
        except httpx.TimeoutException:
            self._fail(result, 'timeout', f'no data within {client.timeout_s:g} s')
        except _TooLarge:
            self._fail(result, 'too_large',
                       f'stream longer than {client.max_response_bytes} bytes')
        except SseError as e:
            self._fail(result, 'bad_chunk', str(e))
        except (httpx.HTTPError, OSError) as e:
            detail = f'{type(e).__name__}: {e}' if str(e) else type(e).__name__
            tls = _tls_error(e)
            if tls is not None:
                self._fail(result, 'tls', f'TLS failure with {client.base_url}: {tls}')
            elif started[0]:
                self._broken(result, f'connection lost with {client.base_url} mid-stream: '
                             f'{detail}')
            else:
                self._fail(result, 'connect', f'cannot connect to {client.base_url}: {detail}')

    async def _read(self, response: httpx.Response, result: AskResult,
                    on_text: TextCallback | None, rearm: Callable[[], None]) -> None:
        """Read a response whose headers came: an error, a stream, or one plain completion."""
        client = self.client
        result.http_status = response.status_code
        cap = client.max_response_bytes
        size = 0

        async def chunks():
            nonlocal size
            async for data in response.aiter_bytes():
                rearm()
                size += len(data)
                if size > cap:
                    raise _TooLarge
                yield data

        if not 200 <= response.status_code < 300:
            raw = b''.join([c async for c in chunks()])
            result.retry_after_s = parse_retry_after(response.headers.get('Retry-After'))
            self._fail(result, fault_for_status(response.status_code),
                       f'HTTP {response.status_code}: {client.clip(_error_text(raw))}')
            return
        if EVENT_STREAM not in response.headers.get('Content-Type', ''):
            raw = b''.join([c async for c in chunks()])
            self._whole(raw, result, on_text)
            return
        decoder = SseDecoder()
        async for data in chunks():
            for event in decoder.feed(data):
                if self._event(event, result, on_text):
                    return
        for event in decoder.close():
            if self._event(event, result, on_text):
                return
        if result.finish_reason:  # ended, only the [DONE] line is missing: the answer is whole
            result.ending = 'done'
            return
        self._broken(result, 'the stream ended before [DONE]')

    def _event(self, data: str, result: AskResult, on_text: TextCallback | None) -> bool:
        """Take one event; True when it ended the stream."""
        if data.strip() == DONE:
            result.ending = 'done'
            return True
        chunk = parse_chunk(data)
        if chunk is None:
            self._fail(result, 'bad_chunk', 'not a chat.completion.chunk: '
                       + self.client.clip(data))
            return True
        if chunk.error:
            self._fail(result, 'stream_error', 'server error mid-stream: '
                       + self.client.clip(chunk.error))
            return True
        if chunk.model:
            result.model = chunk.model
        if chunk.finish_reason:
            result.finish_reason = chunk.finish_reason
        if chunk.completion_tokens is not None:
            result.completion_tokens = chunk.completion_tokens
        if chunk.content:
            result.text += chunk.content
            result.chunks += 1
            if on_text is not None:
                on_text(result.text, result.chunks)
        return False

    def _whole(self, raw: bytes, result: AskResult, on_text: TextCallback | None) -> None:
        """Rule 6: a server that does not stream: its completion is the one chunk."""
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            body = None
        content = _message_content(body)
        if content is None:
            self._fail(result, 'bad_chunk', 'reply is neither a stream nor a chat completion: '
                       + self.client.clip(raw.decode('utf-8', 'replace')))
            return
        result.streamed = False
        result.ending = 'done'
        if isinstance(body.get('model'), str) and body['model']:
            result.model = body['model']
        if content:
            result.text, result.chunks = content, 1
            if on_text is not None:
                on_text(result.text, result.chunks)
        if not self._noticed:
            self._noticed = True
            if self.on_notice is not None:
                self.on_notice(f'{self.client.base_url} does not stream (it answered '
                               '"stream": true with one plain completion): asks get their '
                               'answer in one piece')

    def _broken(self, result: AskResult, error: str) -> None:
        # Before any text, a broken connection is a transient fault (retried, rule 4).
        self._fail(result, 'stream_broken' if result.chunks else 'connect', error)

    @staticmethod
    def _fail(result: AskResult, fault: str, error: str) -> None:
        result.ending, result.fault, result.error = 'failed', fault, error
