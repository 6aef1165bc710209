# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The LVLM server's streamed replies: ``chat.completion.chunk`` server-sent events over HTTP/1.1.

Stdlib only. ``lvlm.server`` answers a request with ``"stream": true`` through an
``EventWriter``: the role delta first, the answer text as content deltas (a model that streams
hands them over token by token through ``TokenDeltas``; another one's finished text goes out word
by word, ``word_pieces``), then a chunk with the finish_reason, the usage chunk if
``stream_options.include_usage`` asked for it, and ``data: [DONE]``. The body is sent with chunked
transfer encoding, so the connection stays usable afterwards.

A client that closes the connection is noticed (``EventWriter.gone``: the socket reads as closed,
or a write fails), so the server stops generating and frees its model.
"""

from __future__ import annotations

from collections.abc import Callable
import re
import select
import socket
import time
from typing import Any

from edgevlm_ros.cloud.stream import DONE, EVENT_STREAM, sse_event

_PIECE = re.compile(r'\s*\S+')


def word_pieces(text: str) -> list[str]:
    """The text as streamed deltas: each word with the white space before it (joined = text)."""
    return _PIECE.findall(text)


def chunk_body(stream_id: str, created: int, model: str, *, content: str | None = None,
               role: str | None = None, finish_reason: str | None = None) -> dict:
    """One chat.completion.chunk with a delta (empty delta: the finishing chunk)."""
    delta: dict[str, str] = {}
    if role is not None:
        delta['role'] = role
    if content is not None:
        delta['content'] = content
    return {'id': stream_id, 'object': 'chat.completion.chunk', 'created': created,
            'model': model, 'choices': [{'index': 0, 'delta': delta,
                                         'finish_reason': finish_reason}]}


def usage_body(stream_id: str, created: int, model: str, prompt_tokens: int,
               completion_tokens: int) -> dict:
    """The usage chunk OpenAI sends last with ``stream_options.include_usage``."""
    return {'id': stream_id, 'object': 'chat.completion.chunk', 'created': created,
            'model': model, 'choices': [],
            'usage': {'prompt_tokens': prompt_tokens, 'completion_tokens': completion_tokens,
                      'total_tokens': prompt_tokens + completion_tokens}}


class EventWriter:
    """Server-sent events on one HTTP/1.1 response, chunked; notices a client that left."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler  # a BaseHTTPRequestHandler
        self.started = False
        self.closed = False  # the client left (or a write failed)
        self.events = 0

    def start(self) -> None:
        h = self._handler
        h.send_response(200)
        h.send_header('Content-Type', EVENT_STREAM)
        h.send_header('Cache-Control', 'no-cache')
        h.send_header('Transfer-Encoding', 'chunked')
        h.end_headers()
        self.started = True

    def send(self, payload: dict | str) -> bool:
        """Write one event; False (and nothing written) once the client has left."""
        data = sse_event(payload)
        return self._write(b'%x\r\n%s\r\n' % (len(data), data))

    def done(self) -> bool:
        """``data: [DONE]`` and the end of the chunked body."""
        return self.send(DONE) and self._write(b'0\r\n\r\n')

    def gone(self, wait_s: float = 0.0) -> bool:
        """Whether the client closed its side, looking for up to `wait_s` (else just waits)."""
        if self.closed:
            return True
        end = time.monotonic() + wait_s
        sock = self._handler.connection
        while True:
            left = max(0.0, end - time.monotonic())
            try:
                readable, _, _ = select.select([sock], [], [], left)
                if readable and sock.recv(1, socket.MSG_PEEK) == b'':
                    return self._left()
            except (OSError, ValueError):
                return self._left()
            if not readable or left <= 0:
                return False
            # The client sent bytes (a next request on the connection): wait out the rest.
            time.sleep(left)
            return False

    def _left(self) -> bool:
        self.closed = True
        self._handler.close_connection = True  # nothing more goes over this connection
        return True

    def _write(self, data: bytes) -> bool:
        if self.closed:
            return False
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except OSError:
            self._left()
            return False
        self.events += 1
        return True


class TokenDeltas:
    """
    An ``on_token`` callback (backends.base) that streams each new piece of the answer.

    The text so far is decoded again after each token; only what extends the text already sent
    goes out (text that ends in a half-decoded character waits for the next token). It returns
    False, which stops generation, once the client is gone or `stop()` says so.
    """

    def __init__(self, send: Callable[[str], bool], gone: Callable[[], bool],
                 stop: Callable[[], bool]) -> None:
        self._send = send
        self._gone = gone
        self._stop = stop
        self.sent = ''
        self.stopped = False

    def __call__(self, partial: Any) -> bool:
        if self._stop() or self._gone():
            self.stopped = True
            return False
        self.offer(partial.text)
        return not self.stopped

    def offer(self, text: str) -> None:
        """Send what `text` adds to the text sent so far (the final text too)."""
        if text.endswith('\ufffd') or not text.startswith(self.sent) or text == self.sent:
            return
        if self._send(text[len(self.sent):]):
            self.sent = text
        else:
            self.stopped = True
