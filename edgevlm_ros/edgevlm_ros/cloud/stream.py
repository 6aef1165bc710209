# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The wire format of a streamed chat completion: server-sent events of ``chat.completion.chunk``.

ROS-free and I/O-free: bytes in, events and chunks out, so every rule is unit-tested without a
socket. ``cloud.ask_stream`` feeds it what the server sends; ``lvlm.server`` writes the same
format with ``sse_event``.

Rules (the parts of the WHATWG server-sent events format OpenAI-compatible servers use):

1. A line ends at CR LF, LF or CR, also when a chunk of bytes ends between CR and LF.
2. ``data:`` lines (one optional space after the colon) make up an event; several data lines of
   one event are joined with LF; a blank line dispatches it. Comment lines (``:``) and other
   fields (``event``, ``id``, ``retry``) are ignored.
3. At the end of the stream, an event without its blank line is still dispatched (a lenient
   reading: a server that closes right after ``data: [DONE]`` has said everything).
4. A line longer than ``max_line_bytes`` is a fault (``SseError``), not a growing buffer.
5. ``data: [DONE]`` ends the stream (``DONE``). Any other event is a JSON chunk:
   ``parse_chunk`` takes ``choices[0].delta.content`` (text, possibly empty), ``finish_reason``,
   ``model`` and ``usage.completion_tokens``; a chunk with an ``error`` object is a server error
   reported mid-stream (vLLM does that); ``choices`` may be empty (the usage chunk); anything
   else (not JSON, not an object, no ``choices`` list) is malformed (None).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from typing import Any

DONE = '[DONE]'
# Longest SSE line accepted; a chunk with a few words of delta is ~300 bytes.
MAX_LINE_BYTES = 256 * 1024
EVENT_STREAM = 'text/event-stream'


class SseError(ValueError):
    """The byte stream is not server-sent events (rule 4)."""


class SseDecoder:
    """Incremental server-sent events decoder: ``feed`` bytes, get the complete events' data."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._buffer = b''
        self._data: list[str] = []
        self._cr_pending = False  # the last chunk ended with CR: a LF next is its pair

    def feed(self, chunk: bytes) -> list[str]:
        """The data of every event completed by `chunk` (rules 1, 2, 4)."""
        if self._cr_pending and chunk.startswith(b'\n'):
            chunk = chunk[1:]
        self._cr_pending = chunk.endswith(b'\r')
        buffer = self._buffer + chunk
        lines = buffer.replace(b'\r\n', b'\n').replace(b'\r', b'\n').split(b'\n')
        self._buffer = lines.pop()  # the incomplete last line ('' after a line end)
        if len(self._buffer) > self.max_line_bytes:
            raise SseError(f'an event stream line longer than {self.max_line_bytes} bytes')
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[str]:
        """The event left at the end of the stream, if any (rule 3)."""
        events = self.feed(b'\n') if self._buffer else []
        if self._data:
            events.append('\n'.join(self._data))
            self._data = []
        return events

    def _line(self, raw: bytes) -> str | None:
        if not raw:
            if not self._data:
                return None
            event, self._data = '\n'.join(self._data), []
            return event
        line = raw.decode('utf-8', 'replace')
        field, _, value = line.partition(':')
        if not field:  # a comment (keep-alive)
            return None
        if field == 'data':
            self._data.append(value[1:] if value.startswith(' ') else value)
        return None


@dataclass
class Chunk:
    """What one chat.completion.chunk says (rule 5)."""

    content: str = ''
    role: str = ''
    finish_reason: str = ''
    model: str = ''
    completion_tokens: int | None = None
    error: str = ''  # a server error reported mid-stream


def parse_chunk(data: str) -> Chunk | None:
    """Read one event's data as a chat.completion.chunk; None if it is not one (rule 5)."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    chunk = Chunk()
    error = body.get('error')
    if error is not None:
        message = error.get('message') if isinstance(error, dict) else error
        chunk.error = message if isinstance(message, str) and message else json.dumps(error)
        return chunk
    choices = body.get('choices')
    if not isinstance(choices, list):
        return None
    if isinstance(body.get('model'), str):
        chunk.model = body['model']
    usage = body.get('usage')
    if isinstance(usage, dict) and isinstance(usage.get('completion_tokens'), int):
        chunk.completion_tokens = usage['completion_tokens']
    if not choices:
        return chunk
    first = choices[0]
    if not isinstance(first, dict):
        return None
    delta = first.get('delta')
    if delta is None:
        delta = {}
    if not isinstance(delta, dict):
        return None
    content = delta.get('content')
    if isinstance(content, str):
        chunk.content = content
    elif content is not None:
        return None
    if isinstance(delta.get('role'), str):
        chunk.role = delta['role']
    if isinstance(first.get('finish_reason'), str):
        chunk.finish_reason = first['finish_reason']
    return chunk


def sse_event(payload: dict[str, Any] | str) -> bytes:
    """One event as a server writes it: ``data: <json or [DONE]>`` and a blank line."""
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f'data: {data}\n\n'.encode()
