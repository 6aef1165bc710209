# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The cloud bridge's HTTP client: a frame + question to an OpenAI-compatible chat completion.

Works with vLLM, SGLang, Ollama, llama.cpp server, OpenAI and the project's own ``lvlm_server``.
The frame goes as a JPEG data URL, no larger than ``max_image_side``; the prompt asks for JSON
``{"answer": ..., "objects": [{"label", "bbox_2d": [x1, y1, x2, y2]}]}`` in pixels of the image
sent, and the reply is parsed with ``parse_lvlm_reply`` against that image's size, so boxes come
back normalised to the frame.

Rules:

* ``ask`` never raises for network, server or reply faults; it returns a ``CloudResult`` whose
  ``status`` says what happened: 'ok' (also for a plain-text reply without boxes), 'timeout' (no
  complete reply within ``timeout_s``, counted over the whole exchange), 'http_error' (connection
  refused/reset, DNS, TLS, or a non-2xx status) or 'parse_error' (2xx but not a chat-completions
  body, or a body over ``MAX_RESPONSE_BYTES``). Bad *arguments* (not an RGB image, empty
  question) raise ValueError.
* The API key is sent only as ``Authorization: Bearer``; it never appears in an error message.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
import json
import math
import time
from typing import Any

import httpx
import numpy as np

from edgevlm_ros.core.images import encode_jpeg, resize_max_side
from edgevlm_ros.core.regions import BOX_FORMATS, Box, parse_lvlm_reply

# Largest response body read; a chat completion with a short answer and a few boxes is < 10 kB.
MAX_RESPONSE_BYTES = 1024 * 1024
# Longest server error text quoted in CloudResult.error.
MAX_ERROR_CHARS = 300

SYSTEM_PROMPT = (
    'You are the vision system of a robot. Answer the question about the image briefly and '
    'ground the objects your answer relies on. Reply with JSON only, in this form: '
    '{"answer": "<short answer>", "objects": [{"label": "<object>", '
    '"bbox_2d": [x1, y1, x2, y2]}]}. bbox_2d is in absolute pixel coordinates of the image '
    'you were given (x to the right, y down). Use an empty list when no object is relevant.'
)


@dataclass
class CloudResult:
    """What one cloud request produced."""

    status: str  # 'ok' | 'timeout' | 'http_error' | 'parse_error'
    answer: str = ''
    boxes: list[Box] = field(default_factory=list)
    round_trip_ms: float = 0.0
    model: str = ''
    error: str = ''
    request_bytes: int = 0
    response_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 'ok'


class _ResponseTooLarge(Exception):
    pass


def _validate_rgb(rgb: Any) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 \
            or rgb.dtype != np.uint8 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        shape = getattr(rgb, 'shape', None)
        raise ValueError(f'rgb must be an HxWx3 uint8 array, got {type(rgb).__name__} {shape}')
    return rgb


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
    """Return the server's error message (OpenAI-style JSON or raw text), shortened."""
    try:
        body = json.loads(response_body)
    except (UnicodeDecodeError, ValueError):
        body = None
    error = body.get('error') if isinstance(body, dict) else None
    message = error.get('message') if isinstance(error, dict) else error
    if isinstance(message, str) and message:
        return message[:MAX_ERROR_CHARS]
    return response_body[:MAX_ERROR_CHARS].decode('utf-8', 'replace').strip()


class OpenAiVlmClient:
    """
    Async client for one OpenAI-compatible VLM endpoint (one model).

    Its connection pool belongs to the event loop that first uses it: create one client per loop
    (e.g. in the bridge's asyncio worker thread) and ``aclose`` it there.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 timeout_s: float = 10.0, max_tokens: int = 128, jpeg_quality: int = 85,
                 max_image_side: int = 640, box_format: str = 'auto',
                 verify_tls: bool = True) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(('http://', 'https://')):
            raise ValueError(f'base_url must start with http:// or https://, got {base_url!r}')
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
        if box_format not in BOX_FORMATS:
            raise ValueError(f'box_format must be one of {BOX_FORMATS}, got {box_format!r}')
        self.base_url = base_url.rstrip('/')
        self.endpoint = f'{self.base_url}/chat/completions'
        self.model = model
        self.timeout_s = float(timeout_s)
        self.max_tokens = max_tokens
        self.jpeg_quality = jpeg_quality
        self.max_image_side = max_image_side
        self.box_format = box_format
        self._api_key = api_key or None
        headers = {'Content-Type': 'application/json', 'Accept': 'application/json'}
        if self._api_key:
            headers['Authorization'] = f'Bearer {self._api_key}'
        # Per-phase timeouts guard each socket operation; ask() also bounds the whole exchange.
        self._client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self.timeout_s),
                                         verify=verify_tls, follow_redirects=False)

    def __repr__(self) -> str:  # never shows the key
        return f'OpenAiVlmClient({self.base_url!r}, model={self.model!r})'

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> OpenAiVlmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------------------- request

    def _prepare(self, rgb: np.ndarray, question: str) -> tuple[dict, tuple[int, int]]:
        rgb = _validate_rgb(rgb)
        if not isinstance(question, str) or not question.strip():
            raise ValueError('question must be a non-empty string')
        rgb = resize_max_side(rgb, self.max_image_side)
        h, w = rgb.shape[:2]
        jpeg = encode_jpeg(np.ascontiguousarray(rgb), self.jpeg_quality)
        data_url = 'data:image/jpeg;base64,' + base64.b64encode(jpeg).decode('ascii')
        body = {
            'model': self.model,
            'messages': [
                {'role': 'system', 'content': SYSTEM_PROMPT},
                {'role': 'user', 'content': [
                    {'type': 'image_url', 'image_url': {'url': data_url}},
                    {'type': 'text', 'text': f'The image is {w}x{h} pixels.\n{question.strip()}'},
                ]},
            ],
            'max_tokens': self.max_tokens,
            'temperature': 0,
        }
        return body, (w, h)

    def build_request(self, rgb: np.ndarray, question: str) -> dict:
        """Return the JSON body ``ask`` would send for this frame and question."""
        return self._prepare(rgb, question)[0]

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, '***')
        return text

    async def _exchange(self, payload: bytes) -> tuple[int, bytes]:
        async with self._client.stream('POST', self.endpoint, content=payload) as response:
            declared = response.headers.get('Content-Length')
            if declared is not None and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
                raise _ResponseTooLarge(int(declared))
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise _ResponseTooLarge(size)
                chunks.append(chunk)
            return response.status_code, b''.join(chunks)

    async def ask(self, rgb: np.ndarray, question: str) -> CloudResult:
        """Send one frame + question; return the parsed answer, or a status saying what failed."""
        body, (w, h) = self._prepare(rgb, question)
        payload = json.dumps(body).encode()
        result = CloudResult(status='ok', model=self.model, request_bytes=len(payload))
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                status_code, raw = await self._exchange(payload)
        except (TimeoutError, httpx.TimeoutException):
            result.status, result.error = 'timeout', f'no reply within {self.timeout_s:g} s'
            return self._finish(result, t0)
        except _ResponseTooLarge as e:
            result.status = 'parse_error'
            result.error = f'response too large (> {MAX_RESPONSE_BYTES} bytes)'
            result.response_bytes = int(e.args[0])
            return self._finish(result, t0)
        except httpx.HTTPError as e:
            result.status = 'http_error'
            result.error = f'{type(e).__name__}: {e}' if str(e) else type(e).__name__
            return self._finish(result, t0)
        except OSError as e:  # sockets below httpx (rare: most are wrapped as httpx errors)
            result.status, result.error = 'http_error', f'{type(e).__name__}: {e}'
            return self._finish(result, t0)
        result.response_bytes = len(raw)
        if not 200 <= status_code < 300:
            result.status = 'http_error'
            result.error = f'HTTP {status_code}: {_error_text(raw)}'
            return self._finish(result, t0)
        try:
            decoded = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            decoded = None
        content = _message_content(decoded)
        if content is None:
            result.status = 'parse_error'
            result.error = 'reply is not a chat completion: ' + \
                raw[:MAX_ERROR_CHARS].decode('utf-8', 'replace')
            return self._finish(result, t0)
        if isinstance(decoded.get('model'), str) and decoded['model']:
            result.model = decoded['model']
        reply = parse_lvlm_reply(content, (w, h), self.box_format)
        result.answer, result.boxes = reply.answer, reply.boxes
        return self._finish(result, t0)

    def _finish(self, result: CloudResult, t0: float) -> CloudResult:
        result.round_trip_ms = (time.perf_counter() - t0) * 1000.0
        result.error = self._redact(result.error)
        return result
