# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The cloud bridge's HTTP client: a frame + question to an OpenAI-compatible chat completion.

Why one module of 720 lines: it is one client whose rules (below: never raising, retries,
breaker, in-flight slots, deadlines, the structured-output fallback, key redaction) all act
inside one ``ask``; the retry policy and the breaker it calls already live in cloud.resilience.
One-off questions streamed as text (the Ask action) are ``cloud.ask_stream``, which uses this
client's connection pool, emulated network, breaker and redaction.

Works with vLLM, SGLang, Ollama, llama.cpp server, OpenAI, ``transformers serve`` and the
project's own ``lvlm_server``. The frame goes as a base64 JPEG data URL (``jpeg_quality``), no
larger than ``max_image_side``; the prompt asks for JSON ``{"answer": ..., "objects": [{"label",
"bbox_2d": [x1, y1, x2, y2]}]}`` in the coordinates ``box_format`` names, and the reply is parsed
with ``parse_lvlm_reply`` against the size of the image sent, so boxes come back normalised to
the frame.

Structured output: with ``structured_output`` 'json_schema' (or 'json_object') the request also
carries ``response_format`` (vLLM, SGLang, llama.cpp, Ollama and OpenAI constrain the reply with
it; servers that do not know it mostly ignore it). A server that rejects it (HTTP 400/422 whose
message mentions response_format, json_schema or structured output) is asked again at once
without it (unless the request is past its deadline by then), and this client never sends it
again (``on_notice`` is called once). Plain-text
replies are parsed as well as JSON ones.

Rules:

* ``ask`` never raises for network, server or reply faults; it returns a ``CloudResult`` whose
  ``status`` says what happened: 'ok' (also for a plain-text reply without boxes), 'timeout' (no
  complete reply within ``timeout_s`` for an attempt, emulated network included), 'http_error'
  (connection refused/reset, TLS, or a non-2xx status), 'parse_error' (2xx but not a
  chat-completions body, or a body over ``max_response_bytes``) or 'dropped' (not sent: past its
  deadline, circuit breaker open, or no in-flight slot before the deadline). ``fault`` names the
  failure or drop reason (``resilience.FAULTS``, or 'max_age' / 'circuit_open' / 'in_flight').
  Bad *arguments* (not an RGB image, empty question) raise ValueError.
* Retries follow the ``RetryPolicy`` (transient faults only, jittered backoff, Retry-After
  honoured, never starting after the deadline) and stop as soon as the breaker is not closed.
  Every attempt's outcome is reported to the ``CircuitBreaker``.
* At most ``max_in_flight`` requests run at once (a caller over the limit waits for a slot,
  until its deadline).
* The API key is sent only as ``Authorization: Bearer``; it never appears in an error message
  or in ``repr``. https certificates are verified unless ``tls_verify`` is False; ``ca_file``
  adds a private CA bundle.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
import json
import math
import os
from pathlib import Path
import ssl
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import numpy as np

from edgevlm_ros.cloud.resilience import (
    RETRYABLE,
    CircuitBreaker,
    RetryPolicy,
    fault_for_status,
    refused_busy,
)
from edgevlm_ros.core import regions
from edgevlm_ros.core.images import check_image, encode_jpeg, resize_max_side, resize_to
from edgevlm_ros.core.regions import Box, parse_lvlm_reply

# Default cap on a response body; a chat completion with a short answer and a few boxes is < 10 kB.
MAX_RESPONSE_BYTES = 1024 * 1024
# Longest server error text quoted in CloudResult.error.
MAX_ERROR_CHARS = 300
# Most boxes the JSON schema allows (the parser keeps at most regions.MAX_BOXES anyway).
SCHEMA_MAX_OBJECTS = 32
STRUCTURED_OUTPUT = ('json_schema', 'json_object', 'off')
STATUSES = ('ok', 'timeout', 'http_error', 'parse_error', 'dropped')

_COORDINATES = {
    'pixels': 'absolute pixel coordinates of the image you were given',
    'grid': 'coordinates on a 0-1000 grid over the image (0,0 top left, 1000,1000 bottom right)',
    'normalized': 'coordinates as fractions 0-1 of the image width and height',
}
# Model families that ground on the 0-1000 grid whatever they are told; Gemini also puts y first.
_GRID_FAMILIES = ('grid1000', 'qwen2-vl', 'qwen3-vl', 'gemini')
_YX_FAMILIES = ('gemini',)


def _box_key(box_format: str) -> str:
    return 'box_2d' if box_format in _YX_FAMILIES else 'bbox_2d'


def system_prompt(box_format: str = 'auto') -> str:
    """
    The instruction sent with every frame: answer briefly, ground objects, reply as JSON.

    Boxes are asked for in the coordinates and order the model family was trained on
    (regions.BOX_FORMATS names the families), so that the parser reads them as written.
    """
    if box_format in _GRID_FAMILIES:
        coords = _COORDINATES['grid']
    elif box_format == 'normalized':
        coords = _COORDINATES['normalized']
    else:
        coords = _COORDINATES['pixels']
    key = _box_key(box_format)
    order = '[y1, x1, y2, x2]' if box_format in _YX_FAMILIES else '[x1, y1, x2, y2]'
    return ('You are the vision system of a robot. Answer the question about the image briefly '
            'and ground the objects your answer relies on. Reply with JSON only, in this form: '
            '{"answer": "<short answer>", "objects": [{"label": "<object>", '
            f'"{key}": {order}}}]}}. {key} is in {coords} (x to the right, y down). '
            'Use an empty list when no object is relevant.')


def reply_schema(box_format: str = 'auto') -> dict:
    """The JSON schema of the reply (for response_format), with the family's box key."""
    key = _box_key(box_format)
    return {
        'type': 'object',
        'properties': {
            'answer': {'type': 'string'},
            'objects': {
                'type': 'array', 'maxItems': SCHEMA_MAX_OBJECTS,
                'items': {
                    'type': 'object',
                    'properties': {
                        'label': {'type': 'string'},
                        key: {'type': 'array', 'items': {'type': 'number'},
                              'minItems': 4, 'maxItems': 4},
                    },
                    'required': ['label', key],
                },
            },
        },
        'required': ['answer', 'objects'],
    }



class NetworkModel(Protocol):
    """What the client needs of an emulated network (core.netem.NetworkProfile has it)."""

    def sample(self, elapsed_s: float, up_bytes: int = 0,
               down_bytes: int = 0) -> float | None: ...  # noqa: E704

    def transfer_s(self, up_bytes: int = 0, down_bytes: int = 0) -> float: ...  # noqa: E704

    def describe(self) -> str: ...  # noqa: E704


@dataclass
class CloudResult:
    """What one cloud request produced (after its retries)."""

    status: str  # one of STATUSES
    answer: str = ''
    boxes: list[Box] = field(default_factory=list)
    round_trip_ms: float = 0.0   # ask() called -> result ready, retries and emulated network in
    model: str = ''
    error: str = ''
    request_bytes: int = 0       # last attempt's body
    response_bytes: int = 0      # last attempt's body
    fault: str = ''              # failure or drop reason; '' when ok
    http_status: int = 0         # last attempt's HTTP status (0: no response)
    attempts: int = 0            # HTTP exchanges tried (0: never sent)
    structured: bool = False     # the reply was JSON in the asked shape
    # What the parser made of the reply's boxes (LvlmReply): found, dropped by reason
    # (invalid, empty, outside, over_cap), and whether box syntax could not be read at all.
    boxes_found: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    unparsed_boxes: bool = False
    retry_after_s: float | None = None
    busy_tries: int = 0          # tries the server refused as busy (resilience.refused_busy)

    @property
    def ok(self) -> bool:
        return self.status == 'ok'


class _ResponseTooLarge(Exception):
    pass


def _message_content(body: Any) -> str | None:
    """Return choices[0].message.content as text, or None if the body is not a completion."""
    if not isinstance(body, dict):
        return None
    choices = body.get('choices')
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get('message')
    if not isinstance(message, dict):
        return None
    content = message.get('content')
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers return content parts
        texts = [p.get('text') for p in content if isinstance(p, dict)]
        return ''.join(t for t in texts if isinstance(t, str))
    return None


def _error_text(response_body: bytes) -> str:
    """Return the server's error message (OpenAI-style JSON or raw text), whole."""
    try:
        body = json.loads(response_body)
    except (UnicodeDecodeError, ValueError):
        body = None
    error = body.get('error') if isinstance(body, dict) else None
    message = error.get('message') if isinstance(error, dict) else error
    if not (isinstance(message, str) and message) and isinstance(body, dict):
        detail = body.get('detail', body.get('message'))  # FastAPI / plain servers
        if detail is not None:
            message = detail if isinstance(detail, str) else json.dumps(detail)
    if isinstance(message, str) and message:
        return message
    return response_body.decode('utf-8', 'replace').strip()


def parse_retry_after(value: str | None, now_epoch_s: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP-date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        now = time.time() if now_epoch_s is None else now_epoch_s
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def url_has_credentials(url: str) -> bool:
    """Whether the URL carries user:password@ (which logs and errors would then show)."""
    return '@' in urlsplit(url).netloc


def _rejects_response_format(status: int, error: str) -> bool:
    text = error.lower()
    return status in (400, 422) and any(
        k in text for k in ('response_format', 'json_schema', 'structured output',
                            'structured_output', 'guided'))


def _tls_error(e: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = e
    for _ in range(8):  # cause chains are short; bound the walk anyway
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _tls_context(tls_verify: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    if not tls_verify:
        return False
    if not ca_file:
        return True
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f'cannot load the CA bundle {ca_file!r}: {e}') from None


def resolve_api_key(env_name: str = '', file_path: str = '',
                    environ: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """
    Return (key or None, where it came from) without ever putting the key in a message.

    A file (first line, surrounding whitespace stripped) wins over the environment variable; a
    file that is set but unreadable or empty raises ValueError naming the file, not its content.
    """
    if file_path:
        path = Path(file_path).expanduser()
        try:
            text = path.read_text(encoding='utf-8')
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            raise ValueError(f'cannot read the API key file {str(path)!r}: {reason}') from None
        lines = text.strip().splitlines()
        key = lines[0].strip() if lines else ''
        if not key:
            raise ValueError(f'the API key file {str(path)!r} is empty')
        return key, f'file {str(path)!r}'
    environ = os.environ if environ is None else environ
    if env_name and environ.get(env_name, '').strip():
        return environ[env_name].strip(), f'${env_name}'
    return None, 'none' + (f' (${env_name} is not set)' if env_name else '')


class OpenAiVlmClient:
    """
    Async client for one OpenAI-compatible VLM endpoint (one model).

    Its connection pool belongs to the event loop that first uses it: create one client per loop
    (e.g. in the bridge's asyncio worker thread) and ``aclose`` it there.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 timeout_s: float = 10.0, max_tokens: int = 128, jpeg_quality: int = 85,
                 max_image_side: int = 640, box_format: str = 'auto',
                 tls_verify: bool = True, ca_file: str | None = None,
                 structured_output: str = 'json_schema',
                 max_response_bytes: int = MAX_RESPONSE_BYTES, max_in_flight: int = 4,
                 retry: RetryPolicy | None = None, breaker: CircuitBreaker | None = None,
                 network: NetworkModel | None = None,
                 on_notice: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(('http://', 'https://')):
            raise ValueError(f'base_url must start with http:// or https://, got {base_url!r}')
        if url_has_credentials(base_url):  # they would show in every log line and error
            raise ValueError('base_url must not carry credentials (user:password@); pass the '
                             'key as api_key')
        if not model:
            raise ValueError('model must not be empty')
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s)
                and timeout_s > 0):
            raise ValueError(f'timeout_s must be a positive number, got {timeout_s!r}')
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f'max_tokens must be a positive int, got {max_tokens!r}')
        if not isinstance(jpeg_quality, int) or not 1 <= jpeg_quality <= 100:
            raise ValueError(f'jpeg_quality must be 1..100, got {jpeg_quality!r}')
        if not isinstance(max_image_side, int) or max_image_side < 16:
            raise ValueError(f'max_image_side must be an int >= 16, got {max_image_side!r}')
        if box_format not in regions.BOX_FORMATS:
            raise ValueError(f'box_format must be one of {regions.BOX_FORMATS}, '
                             f'got {box_format!r}')
        if structured_output not in STRUCTURED_OUTPUT:
            raise ValueError(f'structured_output must be one of {STRUCTURED_OUTPUT}, '
                             f'got {structured_output!r}')
        if not isinstance(max_response_bytes, int) or max_response_bytes < 1024:
            raise ValueError(f'max_response_bytes must be an int >= 1024, '
                             f'got {max_response_bytes!r}')
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f'max_in_flight must be an int >= 1, got {max_in_flight!r}')
        self.base_url = base_url.rstrip('/')
        self.endpoint = f'{self.base_url}/chat/completions'
        self.model = model
        self.timeout_s = float(timeout_s)
        self.max_tokens = max_tokens
        self.jpeg_quality = jpeg_quality
        self.max_image_side = max_image_side
        self.box_format = box_format
        self.structured_output = structured_output
        self.max_response_bytes = max_response_bytes
        self.max_in_flight = max_in_flight
        self.retry = retry if retry is not None else RetryPolicy()
        self.breaker = breaker
        self.network = network
        self.on_notice = on_notice
        # Emulated network delays and retry backoff wait on `sleep`, measured by `clock`: a
        # replay in simulated time passes both in that time.
        self._clock = clock
        self._sleep = sleep
        self._network_origin: float | None = None  # the first request's time
        self._in_flight = 0
        self._slot_freed: asyncio.Condition | None = None
        self._api_key = api_key or None
        headers = {'Content-Type': 'application/json', 'Accept': 'application/json'}
        if self._api_key:
            headers['Authorization'] = f'Bearer {self._api_key}'
        # Per-phase timeouts guard each socket operation; every attempt is also bounded as a whole.
        self._client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(self.timeout_s),
            verify=_tls_context(tls_verify, ca_file), follow_redirects=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=8))

    def __repr__(self) -> str:  # never shows the key
        return f'OpenAiVlmClient({self.base_url!r}, model={self.model!r})'

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> OpenAiVlmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------------------- request

    def image_part(self, rgb: np.ndarray) -> tuple[dict, tuple[int, int]]:
        """The frame as a chat ``image_url`` content part, and the (w, h) of the image sent."""
        rgb = check_image(rgb, grey=False)
        rgb = resize_max_side(rgb, self.max_image_side)
        if self.box_format == 'qwen2.5-vl':
            # Send the size the Qwen2.5-VL processor would resize to: the model then sees (and
            # answers in pixels of) exactly the image sent, whose size the prompt states.
            w, h = regions.QWEN25_VL_RESIZE.size(rgb.shape[1], rgb.shape[0])
            if (w, h) != (rgb.shape[1], rgb.shape[0]):
                rgb = resize_to(rgb, w, h)
        h, w = rgb.shape[:2]
        jpeg = encode_jpeg(np.ascontiguousarray(rgb), self.jpeg_quality)
        data_url = 'data:image/jpeg;base64,' + base64.b64encode(jpeg).decode('ascii')
        return {'type': 'image_url', 'image_url': {'url': data_url}}, (w, h)

    def _prepare(self, rgb: np.ndarray, question: str) -> tuple[dict, tuple[int, int]]:
        rgb = check_image(rgb, grey=False)
        if not isinstance(question, str) or not question.strip():
            raise ValueError('question must be a non-empty string')
        image, (w, h) = self.image_part(rgb)
        body = {
            'model': self.model,
            'messages': [
                {'role': 'system', 'content': system_prompt(self.box_format)},
                {'role': 'user', 'content': [
                    image,
                    {'type': 'text', 'text': f'The image is {w}x{h} pixels.\n{question.strip()}'},
                ]},
            ],
            'max_tokens': self.max_tokens,
            'temperature': 0,
        }
        if self.structured_output == 'json_schema':
            body['response_format'] = {'type': 'json_schema', 'json_schema': {
                'name': 'grounded_answer', 'schema': reply_schema(self.box_format)}}
        elif self.structured_output == 'json_object':
            body['response_format'] = {'type': 'json_object'}
        return body, (w, h)

    def build_request(self, rgb: np.ndarray, question: str) -> dict:
        """Return the JSON body ``ask`` would send for this frame and question."""
        return self._prepare(rgb, question)[0]

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, '***')
        return text

    def _clip(self, server_text: str) -> str:
        """Shorten text from the server, after redaction (a cut key would escape it)."""
        return self._redact(server_text)[:MAX_ERROR_CHARS]

    # What the streaming asks (cloud.ask_stream) share with ``ask``: the connection pool, the
    # emulated network, key redaction, the breaker's open text.
    redact = _redact
    clip = _clip

    @property
    def http(self) -> httpx.AsyncClient:
        """The connection pool (of the loop that first used it)."""
        return self._client

    def network_delay(self, up_bytes: int) -> float | None:
        """The emulated round trip of a request sent now (0: no emulation; None: lost)."""
        return self._network_delay(up_bytes)

    def open_text(self) -> str:
        """Why nothing is sent while the breaker is open (with the next probe's time)."""
        return self._open_text()

    # ------------------------------------------------------------------------------- asking

    async def ask(self, rgb: np.ndarray, question: str,
                  deadline: float | None = None) -> CloudResult:
        """
        Send one frame + question; return the parsed answer, or a status saying what failed.

        `deadline` (the client's clock, time.monotonic by default) is the latest moment an
        attempt may start: the request is dropped if it is already past, and no retry starts
        after it.
        """
        body, size = self._prepare(rgb, question)
        t0 = self._clock()
        if deadline is not None and t0 > deadline:
            return self._finish(self._dropped('max_age', f'not sent: {t0 - deadline:.2f} s past '
                                              'its deadline'), t0)
        taken = acquired = False
        recorded = [False]  # an outcome went to the breaker (else a probe must be handed back)
        try:
            taken = await self._take_slot(deadline)
            if not taken:
                return self._finish(self._dropped(
                    'in_flight', f'not sent: {self.max_in_flight} requests in flight until its '
                    'deadline'), t0)
            # Asked only once a slot is free: the breaker may have opened while this waited.
            acquired = self.breaker is None or self.breaker.acquire()
            if not acquired:
                return self._finish(self._dropped('circuit_open', self._open_text()), t0)
            return self._finish(await self._attempts(body, size, deadline, recorded), t0)
        finally:
            if taken:
                await self._free_slot()
            if self.breaker is not None and acquired and not recorded[0]:
                self.breaker.release()

    async def _attempts(self, body: dict, size: tuple[int, int], deadline: float | None,
                        recorded: list[bool]) -> CloudResult:
        attempts = busy = 0
        retry = 0
        while True:
            if self.structured_output == 'off':
                body.pop('response_format', None)
            payload = json.dumps(body).encode()
            result = await self._attempt(payload, size)
            result.error = self._redact(result.error)
            attempts += 1
            refused = refused_busy(result.http_status, result.retry_after_s)
            busy += refused
            result.attempts, result.busy_tries = attempts, busy
            if result.ok:
                if self.breaker is not None:
                    self.breaker.record_success()
                    recorded[0] = True
                return result
            if 'response_format' in body and _rejects_response_format(
                    result.http_status, result.error):
                self._structured_rejected(result.error)
                if deadline is None or self._clock() <= deadline:
                    continue  # at once, without it (at most once: the mode is now 'off')
                result.error += (' (not asked again without response_format: past the request '
                                 'deadline)')
                return result
            if self.breaker is not None and not refused:  # busy: the send rate answers it
                self.breaker.record_failure(result.error)
                recorded[0] = True
            retry += 1
            wait = self.retry.delay(retry, result.fault, self._clock(), deadline,
                                    result.retry_after_s)
            if wait is None:
                if retry <= self.retry.max_retries and result.fault in RETRYABLE:
                    result.error += (' (not retried: the next try would start after the '
                                     'request deadline)')
                return result
            if not self._retry_allowed(result):
                return result
            await self._sleep(wait)
            if not self._retry_allowed(result):  # other requests may have opened it meanwhile
                return result

    def _retry_allowed(self, result: CloudResult) -> bool:
        if self.breaker is None or self.breaker.retry_allowed():
            return True
        result.error += ' (not retried: circuit open)'
        return False

    def _structured_rejected(self, error: str) -> None:
        if self.structured_output == 'off':
            return
        old, self.structured_output = self.structured_output, 'off'
        if self.on_notice is not None:
            self.on_notice(f'the server rejected response_format ({old}): {self._redact(error)};'
                           ' sending plain requests from now on and parsing the text')

    async def _attempt(self, payload: bytes, size: tuple[int, int]) -> CloudResult:
        result = CloudResult(status='ok', model=self.model, request_bytes=len(payload))
        delay = self._network_delay(len(payload))
        try:
            status_code, raw, retry_after = await self._within_timeout(
                self._emulated_exchange(payload, delay))
        except (TimeoutError, httpx.TimeoutException):
            result.status, result.fault = 'timeout', 'timeout'
            result.error = f'no reply within {self.timeout_s:g} s'
            if delay is None:
                result.error += ' (emulated network: request lost in an outage)'
            return result
        except _ResponseTooLarge as e:
            result.status, result.fault = 'parse_error', 'too_large'
            result.error = f'response too large (> {self.max_response_bytes} bytes)'
            result.response_bytes = int(e.args[0])
            return result
        except (httpx.HTTPError, OSError) as e:
            result.status = 'http_error'
            tls = _tls_error(e)
            if tls is not None:
                result.fault = 'tls'
                if isinstance(tls, ssl.SSLCertVerificationError):
                    result.error = (f'TLS certificate verification failed for {self.base_url}: '
                                    f'{tls.verify_message}; point ca_file at the CA that signed '
                                    'the server certificate')
                else:
                    reason = getattr(tls, 'reason', None) or str(tls)
                    result.error = f'TLS failure with {self.base_url}: {reason}'
            else:
                result.fault = 'connect'
                what = 'cannot connect to' if isinstance(e, (httpx.ConnectError, OSError)) \
                    else 'connection lost with'
                detail = f'{type(e).__name__}: {e}' if str(e) else type(e).__name__
                result.error = f'{what} {self.base_url}: {detail}'
            return result
        result.response_bytes = len(raw)
        result.http_status = status_code
        if not 200 <= status_code < 300:
            result.status, result.fault = 'http_error', fault_for_status(status_code)
            result.error = f'HTTP {status_code}: {self._clip(_error_text(raw))}'
            result.retry_after_s = retry_after
            return result
        try:
            decoded = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            decoded = None
        content = _message_content(decoded)
        if content is None:
            result.status, result.fault = 'parse_error', 'malformed'
            result.error = 'reply is not a chat completion: ' + \
                self._clip(raw.decode('utf-8', 'replace'))
            return result
        if isinstance(decoded.get('model'), str) and decoded['model']:
            result.model = decoded['model']
        reply = parse_lvlm_reply(content, size, self.box_format)
        result.answer, result.boxes = reply.answer, reply.boxes
        result.structured = reply.structured
        result.boxes_found, result.unparsed_boxes = reply.boxes_found, reply.unparsed_boxes
        result.drop_reasons = dict(reply.drop_reasons)
        return result

    async def _emulated_exchange(self, payload: bytes, delay: float | None
                                 ) -> tuple[int, bytes, float | None]:
        """The HTTP exchange behind the emulated network's delays (None: lost)."""
        if delay is None:
            await asyncio.Event().wait()  # lost: no reply ever comes, as on a real link
        if delay:
            await self._sleep(delay / 2)  # on the way up
        status_code, raw, retry_after = await self._exchange(payload)
        down = delay / 2 + self._download_s(len(raw))
        if down:
            await self._sleep(down)  # on the way down, the reply through its cap
        return status_code, raw, retry_after

    async def _within_timeout(self, work: Awaitable[Any]) -> Any:
        """Await `work` for at most timeout_s, counted on the clock `sleep` waits on."""
        if self._sleep is asyncio.sleep:
            async with asyncio.timeout(self.timeout_s):
                return await work
        # A simulated clock (a sped-up replay): the timeout runs on it, like the delays do.
        task = asyncio.ensure_future(work)
        timer = asyncio.ensure_future(self._sleep(self.timeout_s))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not task.done():
                task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise  # we are being cancelled ourselves
            raise TimeoutError from None

    def _network_delay(self, up_bytes: int) -> float | None:
        """The emulated round trip of an attempt sent now; None if the network loses it."""
        if self.network is None:
            return 0.0
        now = self._clock()
        if self._network_origin is None:
            # Trace time starts with the first request, not at construction: a simulated clock
            # may jump from 0 to the replay's time after the client exists.
            self._network_origin = now
        return self.network.sample(max(0.0, now - self._network_origin), up_bytes)

    def _download_s(self, down_bytes: int) -> float:
        """The emulated time the reply takes through the download cap (its size is known now)."""
        return 0.0 if self.network is None else self.network.transfer_s(0, down_bytes)

    async def _exchange(self, payload: bytes) -> tuple[int, bytes, float | None]:
        cap = self.max_response_bytes
        async with self._client.stream('POST', self.endpoint, content=payload) as response:
            declared = response.headers.get('Content-Length')
            if declared is not None and declared.isdigit() and int(declared) > cap:
                raise _ResponseTooLarge(int(declared))
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise _ResponseTooLarge(size)
                chunks.append(chunk)
            retry_after = parse_retry_after(response.headers.get('Retry-After'))
            return response.status_code, b''.join(chunks), retry_after

    # ------------------------------------------------------------------------------- slots

    async def _take_slot(self, deadline: float | None) -> bool:
        if self._slot_freed is None:
            self._slot_freed = asyncio.Condition()
        async with self._slot_freed:
            while self._in_flight >= self.max_in_flight:
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(self._slot_freed.wait(), remaining)
                except TimeoutError:
                    return False
            self._in_flight += 1
            return True

    async def _free_slot(self) -> None:
        assert self._slot_freed is not None
        async with self._slot_freed:
            self._in_flight -= 1
            self._slot_freed.notify()

    # ------------------------------------------------------------------------------- results

    def _dropped(self, reason: str, error: str) -> CloudResult:
        return CloudResult(status='dropped', model=self.model, fault=reason, error=error)

    def _open_text(self) -> str:
        assert self.breaker is not None
        last = self.breaker.last_error
        return (f'not sent: circuit open, next probe in {self.breaker.next_probe_in():.1f} s'
                + (f' (last error: {last})' if last else ''))

    def _finish(self, result: CloudResult, t0: float) -> CloudResult:
        result.round_trip_ms = (self._clock() - t0) * 1000.0
        result.error = self._redact(result.error)
        return result
