# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
A small OpenAI-compatible LVLM server around any local transformers VLM (stdlib only).

Why one module of 500 lines: it is one small stdlib HTTP server: request parsing, the handler
with its OpenAI-style errors, start and stop, and its command line are one protocol. The model
itself comes from backends.registry.

It is the embedded cloud stand-in (default model: the tiny offline 'tiny-cloud') and a way to
self-host any local image-text-to-text checkpoint (on the device and in the precision that
``device`` / ``dtype``, ``--device`` / ``--dtype`` on the command line, choose; see
``backends.transformers_backend``). Endpoints:

* ``POST /v1/chat/completions``: OpenAI chat format. The LAST ``image_url`` part of the request
  (a ``data:image/...;base64,`` URL; no remote URLs are fetched) is the image, the text parts of
  the last user message are the question. The reply's ``message.content`` is a JSON string
  ``{"answer": <model text>, "objects": [{"label": str, "bbox_2d": [x1, y1, x2, y2]}]}`` with
  boxes in absolute pixels of the received image. Honours ``max_tokens`` /
  ``max_completion_tokens``. With ``"stream": true`` the reply is ``text/event-stream``
  (``lvlm.streaming``): ``chat.completion.chunk`` events whose content is the plain answer text
  (no JSON, no boxes: a streamed question wants prose), the role delta first, a finish_reason,
  the usage chunk if ``stream_options.include_usage``, then ``data: [DONE]``. A model that streams
  (the transformers backend's ``on_token``) sends it token by token; another one (the simulated
  LVLM, the doubles) sends its finished answer word by word, spread over ``service_ms``. A client
  that closes the connection mid-stream stops the generation and frees the model
  (``streams_stopped`` counts them).
* ``GET /v1/models`` lists the served name; ``GET /health`` answers 200.

Grounding: a random-weight tiny model cannot ground anything, so with ``grounding='saliency'``
the stand-in grounds with a classical saliency detector (``core.saliency.salient_boxes``) and
reports those boxes as the objects its answer relies on. ``grounding='none'`` returns no objects.

The model is made from ``model`` by the model table (``backends.registry.load_lvlm``).
Test doubles (``doubles.scripted``): ``model='oracle:<eval bag>'`` serves the oracle, which
answers the ground truth of the bag frame it is shown and reports that frame's ground-truth boxes
as its objects (instead of saliency boxes; ``grounding='none'`` still returns none);
``model='scripted:<json>'`` answers from an answer script (grounded as ``grounding`` says).
The simulated LVLM (``lvlm.simulated``, ``model='simulated:synth:<world keys>'`` or
``'simulated:<eval bag>'``) answers from the synthetic world's ground truth, wrong at a set rate,
and reports the true boxes of the objects its answer is about, as the oracle does.

Rules: errors are OpenAI-style JSON ``{"error": {"message", "type", "code"}}``: 404 for an
unknown path or a wrong ``model`` name, 400 for a malformed request or image, 413 for a body over
the size limit, 503 with Retry-After: 1 when more than ``max_pending`` requests wait for the
model, 500 if the model fails. Requests are read, decoded and answered on a thread each; model
calls are serialised (one at a time, as one model without batching). The server binds 127.0.0.1
unless told otherwise, and logs one DEBUG line per request through ``logging``.

Capacity (``service_ms``, ``--service-ms``; 0 = off): every model call holds the model at least
that long, so a model that answers in a millisecond (the simulated LVLM) stands for a real LVLM's
compute: the server answers at most 1000 / service_ms requests a second, later ones queue, and
more than ``max_pending`` (``--max-pending``) at once get the 503. Nothing else changes.
"""

from __future__ import annotations

import argparse
import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import inspect
import json
import logging
import signal
import sys
import threading
import time
from typing import Any
import uuid

import numpy as np

from edgevlm_ros.backends.base import DEVICES_HELP, DTYPES, check_device, check_dtype
from edgevlm_ros.backends.registry import load_lvlm
from edgevlm_ros.core.images import ImageDecodeError, decode_compressed
from edgevlm_ros.core.saliency import salient_boxes
from edgevlm_ros.lvlm.streaming import (
    EventWriter,
    TokenDeltas,
    chunk_body,
    usage_body,
    word_pieces,
)

_LOG = logging.getLogger(__name__)

MAX_BODY_BYTES = 20 * 1024 * 1024
# Upper bound on max_tokens a client may ask for: a request must not pin the model for minutes.
MAX_TOKENS_CAP = 1024
GROUNDING_MODES = ('saliency', 'none')
SOCKET_TIMEOUT_S = 30.0
OVERLOADED_RETRY_AFTER_S = 1  # the 503 'overloaded' says when to come back
# stop() waits at most this long for a model call in progress to finish.
STOP_WAIT_S = 30.0
# How often a streamed reply holding the model for its service time looks at stop().
HOLD_POLL_S = 0.1


class ApiError(Exception):
    """An error the server reports to the client as OpenAI-style JSON."""

    def __init__(self, status: int, message: str, code: str,
                 type_: str = 'invalid_request_error', retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # sent as Retry-After (whole seconds)
        self.status = status
        self.message = message
        self.code = code
        self.type = type_

    def body(self) -> dict:
        return {'error': {'message': self.message, 'type': self.type, 'code': self.code}}


def _decode_data_url(url: Any) -> np.ndarray:
    if not isinstance(url, str) or not url.startswith('data:'):
        raise ApiError(400, 'image_url must be a data: URL (base64); remote URLs are not fetched',
                       'invalid_image')
    header, sep, payload = url.partition(',')
    if not sep or ';base64' not in header:
        raise ApiError(400, 'image data URL must be base64 encoded', 'invalid_image')
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(400, f'image data URL is not valid base64: {e}', 'invalid_image') from e
    try:
        return decode_compressed(data)
    except ImageDecodeError as e:
        raise ApiError(400, f'cannot decode the image: {e}', 'invalid_image') from e


def parse_chat_request(body: dict) -> tuple[str, str, int | None]:
    """Return (image data URL, question, max_tokens or None) from a chat-completions body."""
    if not isinstance(body.get('stream', False), bool):
        raise ApiError(400, '"stream" must be true or false', 'invalid_stream')
    messages = body.get('messages')
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, '"messages" must be a non-empty list', 'invalid_messages')
    image_url = None
    question = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(400, f'messages[{i}] must be an object', 'invalid_messages')
        content = message.get('content')
        texts: list[str] = []
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    raise ApiError(400, f'messages[{i}].content parts must be objects',
                                   'invalid_messages')
                if part.get('type') == 'text' and isinstance(part.get('text'), str):
                    texts.append(part['text'])
                elif part.get('type') == 'image_url':
                    ref = part.get('image_url')
                    image_url = ref.get('url') if isinstance(ref, dict) else ref
        elif content is not None:
            raise ApiError(400, f'messages[{i}].content must be a string or a list',
                           'invalid_messages')
        if message.get('role') == 'user':
            question = '\n'.join(t for t in texts if t.strip()).strip()
    if image_url is None:
        raise ApiError(400, 'the request has no image_url part: this server answers about an '
                       'image', 'missing_image')
    if not question:
        raise ApiError(400, 'the last user message has no text', 'invalid_messages')
    max_tokens = body.get('max_completion_tokens', body.get('max_tokens'))
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ApiError(400, '"max_tokens" must be a positive integer', 'invalid_max_tokens')
        max_tokens = min(max_tokens, MAX_TOKENS_CAP)
    return image_url, question, max_tokens


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    app: LvlmServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request (a timed-out bridge) is routine, not a traceback.
        err = sys.exc_info()[1]
        if isinstance(err, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            _LOG.debug('client %s went away: %s', client_address, err)
        else:
            _LOG.exception('error while serving %s', client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = 'HTTP/1.1'
    timeout = SOCKET_TIMEOUT_S  # a stalled client cannot hold a thread forever
    server_version = 'edgevlm-lvlm'
    # Headers and body go out in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (about 40 ms on loopback, measured), which would dominate a local round trip.
    disable_nagle_algorithm = True

    def log_request(self, code: int | str = '-', size: int | str = '-') -> None:
        pass  # one line per request is logged by _respond

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class name
        _LOG.debug('%s %s', self.address_string(), format % args)

    def _respond(self, status: int, body: dict, t0: float, close: bool = False,
                 retry_after_s: int | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        if retry_after_s is not None:
            self.send_header('Retry-After', str(retry_after_s))
        if close:
            self.send_header('Connection', 'close')
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)
        _LOG.debug('%s %s -> %d (%d bytes, %.1f ms)', self.command, self.path, status, len(data),
                   (time.perf_counter() - t0) * 1000.0)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        t0 = time.perf_counter()
        app = self.server.app
        path = self.path.split('?', 1)[0].rstrip('/')
        if path == '/health':
            self._respond(200, {'status': 'ok', 'model': app.served_name}, t0)
        elif path == '/v1/models':
            self._respond(200, app.models_body(), t0)
        else:
            err = ApiError(404, f'no such endpoint: GET {path}', 'not_found')
            self._respond(err.status, err.body(), t0)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        t0 = time.perf_counter()
        path = self.path.split('?', 1)[0].rstrip('/')
        self._body_consumed = False
        try:
            if path != '/v1/chat/completions':
                raise ApiError(404, f'no such endpoint: POST {path}', 'not_found')
            body = self._read_json()
            if body.get('stream'):
                self.server.app.stream(body, EventWriter(self))
                _LOG.debug('%s %s -> 200 stream (%.1f ms)', self.command, self.path,
                           (time.perf_counter() - t0) * 1000.0)
            else:
                self._respond(200, self.server.app.complete(body), t0)
        except ApiError as e:
            # An unread body would desync a kept-alive connection: close it instead.
            self._respond(e.status, e.body(), t0, close=not self._body_consumed,
                          retry_after_s=e.retry_after_s)

    def _read_json(self) -> dict:
        length = self.headers.get('Content-Length')
        if length is None:
            raise ApiError(411, 'a Content-Length header is required', 'length_required')
        try:
            n = int(length)
        except ValueError:
            raise ApiError(400, 'invalid Content-Length', 'invalid_request') from None
        limit = self.server.app.max_body_bytes
        if n < 0:
            raise ApiError(400, 'invalid Content-Length', 'invalid_request')
        if n > limit:
            raise ApiError(413, f'request body of {n} bytes exceeds the limit of {limit} bytes',
                           'payload_too_large')
        raw = self.rfile.read(n)
        self._body_consumed = True
        if len(raw) != n:
            raise ApiError(400, 'request body shorter than Content-Length', 'invalid_request')
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as e:
            raise ApiError(400, f'request body is not valid JSON: {e}', 'invalid_json') from e
        if not isinstance(body, dict):
            raise ApiError(400, 'request body must be a JSON object', 'invalid_json')
        return body


class LvlmServer:
    """An OpenAI-compatible chat-completions server for one local transformers VLM."""

    def __init__(self, model: str = 'tiny-cloud', host: str = '127.0.0.1', port: int = 0,
                 served_name: str = 'edgevlm-local-lvlm', grounding: str = 'saliency',
                 max_new_tokens: int = 32, *, max_boxes: int = 3, max_pending: int = 8,
                 max_body_bytes: int = MAX_BODY_BYTES, num_threads: int = 0,
                 device: str = 'auto', dtype: str = 'auto', service_ms: float = 0.0) -> None:
        if grounding not in GROUNDING_MODES:
            raise ValueError(f'grounding must be one of {GROUNDING_MODES}, got {grounding!r}')
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f'port must be 0..65535, got {port!r}')
        if not served_name:
            raise ValueError('served_name must not be empty')
        for name, value in (('max_new_tokens', max_new_tokens), ('max_boxes', max_boxes),
                            ('max_pending', max_pending), ('max_body_bytes', max_body_bytes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        if isinstance(service_ms, bool) or not isinstance(service_ms, (int, float)) \
                or not 0.0 <= service_ms <= 600_000.0:
            raise ValueError(f'service_ms must be a number in 0..600000, got {service_ms!r}')
        self.service_s = service_ms / 1000.0  # least time one model call holds the model
        self.model = model
        self.host = host
        self.served_name = served_name
        self.grounding = grounding
        if not isinstance(num_threads, int) or num_threads < 0:
            raise ValueError(f'num_threads must be an int >= 0, got {num_threads!r}')
        for reason in (check_device(device), check_dtype(dtype)):
            if reason:
                raise ValueError(reason)
        self.device = device  # a model's device and dtype (backends.base); doubles ignore them
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self.max_boxes = max_boxes
        self.max_body_bytes = max_body_bytes
        self.num_threads = num_threads  # torch CPU threads of the process (0 = torch default)
        self._port = port
        self._pending = threading.BoundedSemaphore(max_pending)
        self._model_lock = threading.Lock()  # one model call at a time
        # Model calls running now: stop() waits for them, since a process that exits while a
        # handler thread is inside torch aborts ("terminate called without an active exception").
        self._calls = 0
        self._calls_done = threading.Condition()
        self._svlm = None
        self._streams_tokens = False  # the model takes on_token (streams token by token)
        self._stopping = threading.Event()  # stop(): streams end at their next token or word
        self.streams = 0          # streamed replies started
        self.streams_stopped = 0  # ... of which the client left before the end
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._created = int(time.time())

    # ----------------------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._httpd.server_address[1] if self._httpd is not None else self._port

    @property
    def backend(self) -> Any:
        """The loaded model (a TransformersSvlm or a test double), None before start()."""
        return self._svlm

    @property
    def calls_running(self) -> int:
        """Model calls in progress (streams included): 0 when the model is free."""
        with self._calls_done:
            return self._calls

    @property
    def url(self) -> str:
        """Base URL of the OpenAI API, e.g. http://127.0.0.1:8000/v1."""
        return f'http://{self.host}:{self.port}/v1'

    def start(self) -> str:
        """Load the model (once), bind, serve in a daemon thread; return the base URL."""
        if self._httpd is not None:
            return self.url
        if self._svlm is None:
            self._svlm = load_lvlm(self.model, max_new_tokens=self.max_new_tokens,
                                   num_threads=self.num_threads, device=self.device,
                                   dtype=self.dtype)
            self._streams_tokens = 'on_token' in inspect.signature(self._svlm.answer).parameters
        self._stopping.clear()
        httpd = _HttpServer((self.host, self._port), _Handler)
        httpd.app = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.2},
                                        name='lvlm-server', daemon=True)
        self._thread.start()
        _LOG.info('serving %s (%s) at %s', self.served_name, self.model, self.url)
        return self.url

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
        with self._calls_done:
            self._calls_done.wait_for(lambda: self._calls == 0, timeout=STOP_WAIT_S)
        self._port = httpd.server_address[1]
        self._httpd = self._thread = None

    def __enter__(self) -> LvlmServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------------------------- bodies

    def models_body(self) -> dict:
        return {'object': 'list', 'data': [{'id': self.served_name, 'object': 'model',
                                            'created': self._created, 'owned_by': 'edgevlm_ros'}]}

    @contextmanager
    def _admitted(self, body: dict) -> Iterator[tuple[np.ndarray, str, int | None]]:
        """
        A request's frame, question and token cap, while it holds a place among the pending.

        Raises ApiError for the client's mistakes, and 503 when too many requests wait.
        """
        requested = body.get('model')
        if requested is not None and requested != self.served_name:
            raise ApiError(404, f'The model `{requested}` does not exist (this server serves '
                           f'`{self.served_name}`).', 'model_not_found')
        image_url, question, max_tokens = parse_chat_request(body)
        rgb = _decode_data_url(image_url)
        if not self._pending.acquire(blocking=False):
            # Retry-After says: up and shedding load, not down (clients pace, no breaker).
            raise ApiError(503, 'server busy: too many requests waiting for the model',
                           'overloaded', 'server_error', retry_after_s=OVERLOADED_RETRY_AFTER_S)
        with self._calls_done:
            self._calls += 1
        try:
            yield rgb, question, max_tokens
        finally:
            self._pending.release()
            with self._calls_done:
                self._calls -= 1
                self._calls_done.notify_all()

    @contextmanager
    def _model_turn(self) -> Iterator[None]:
        """
        The model, once the requests before this one are done; 503 once stop() has begun.

        A request that waited for the model while the server stops must not start it: stop()
        waits for the model calls it admitted, and a queue of them would hold it for their sum.
        """
        with self._model_lock:
            if self._stopping.is_set():
                raise ApiError(503, 'server shutting down', 'shutting_down', 'server_error')
            yield

    def complete(self, body: dict) -> dict:
        """Answer one chat-completions body; raises ApiError for the client's mistakes."""
        with self._admitted(body) as (rgb, question, max_tokens):
            try:
                with self._model_turn():
                    t_model = time.perf_counter()
                    result = self._svlm.answer(rgb, question, max_new_tokens=max_tokens)
                    left = self.service_s - (time.perf_counter() - t_model)
                    if left > 0:
                        self._stopping.wait(left)
            except ApiError:
                raise
            except ValueError as e:
                raise ApiError(400, str(e), 'invalid_request') from e
            except Exception as e:  # noqa: BLE001 - a model fault is a 500, not a dead thread
                _LOG.exception('model call failed')
                raise ApiError(500, f'model call failed: {type(e).__name__}', 'model_error',
                               'server_error') from e
        h, w = rgb.shape[:2]
        objects = []
        grounded = getattr(result, 'boxes', None)  # a backend that grounds itself (the oracle)
        if grounded is not None and self.grounding != 'none':
            for box in grounded:
                objects.append({'label': box.label or 'object',
                                'bbox_2d': list(box.to_pixels(w, h))})
        elif self.grounding == 'saliency':
            for box in salient_boxes(rgb, max_boxes=self.max_boxes):
                objects.append({'label': box.label or 'salient region',
                                'bbox_2d': list(box.to_pixels(w, h))})
        content = json.dumps({'answer': result.text, 'objects': objects})
        limit = max_tokens if max_tokens is not None else self.max_new_tokens
        return {
            'id': f'chatcmpl-{uuid.uuid4().hex}',
            'object': 'chat.completion',
            'created': int(time.time()),
            'model': self.served_name,
            'choices': [{
                'index': 0,
                'message': {'role': 'assistant', 'content': content},
                'finish_reason': 'length' if result.completion_tokens >= limit else 'stop',
            }],
            'usage': {'prompt_tokens': result.prompt_tokens,
                      'completion_tokens': result.completion_tokens,
                      'total_tokens': result.prompt_tokens + result.completion_tokens},
        }


    def stream(self, body: dict, out: EventWriter) -> None:
        """
        Answer one chat-completions body with ``"stream": true`` through `out`.

        Raises ApiError, as ``complete`` does, only before the reply has started; a model
        failure after that is an error event that ends the stream.
        """
        options = body.get('stream_options')
        with_usage = isinstance(options, dict) and options.get('include_usage') is True
        stream_id, created = f'chatcmpl-{uuid.uuid4().hex}', int(time.time())

        def send(text: str) -> bool:
            return out.send(chunk_body(stream_id, created, self.served_name, content=text))

        with self._admitted(body) as (rgb, question, max_tokens):
            try:
                with self._model_turn():
                    # Headers once the model is ours: a request waiting shows nothing.
                    out.start()
                    self.streams += 1
                    out.send(chunk_body(stream_id, created, self.served_name, role='assistant',
                                        content=''))
                    result, stopped = self._stream_answer(out, rgb, question, max_tokens, send)
            except ApiError:
                raise  # before the model ran: nothing was sent
            except Exception as e:  # noqa: BLE001 - a model fault ends the stream, not the thread
                if not out.started:
                    raise ApiError(500, f'model call failed: {type(e).__name__}', 'model_error',
                                   'server_error') from e
                _LOG.exception('model call failed mid-stream')
                out.send(ApiError(500, f'model call failed: {type(e).__name__}', 'model_error',
                                  'server_error').body())
                out.done()
                return
        if stopped:
            self.streams_stopped += 1
            _LOG.debug('stream stopped after %d events: the client left', out.events)
            return
        limit = max_tokens if max_tokens is not None else self.max_new_tokens
        out.send(chunk_body(stream_id, created, self.served_name, finish_reason=(
            'length' if result.completion_tokens >= limit else 'stop')))
        if with_usage:
            out.send(usage_body(stream_id, created, self.served_name, result.prompt_tokens,
                                result.completion_tokens))
        out.done()

    def _stream_answer(self, out: EventWriter, rgb: np.ndarray, question: str,
                       max_tokens: int | None, send: Any) -> tuple[Any, bool]:
        """Run the model for one streamed reply (model lock held): (result, client left)."""
        t_model = time.perf_counter()
        if self._streams_tokens:
            deltas = TokenDeltas(send, out.gone, self._stopping.is_set)
            result = self._svlm.answer(rgb, question, max_new_tokens=max_tokens,
                                       on_token=deltas)
            if not deltas.stopped:
                deltas.offer(result.text)
            left = self.service_s - (time.perf_counter() - t_model)
            return result, deltas.stopped or self._hold_gone(out, left)
        result = self._svlm.answer(rgb, question, max_new_tokens=max_tokens)
        pieces = word_pieces(result.text)
        # The words spread over the service time, as a model that takes that long sends them.
        pace = (self.service_s - (time.perf_counter() - t_model)) / max(1, len(pieces))
        for piece in pieces:
            if self._stopping.is_set() or not send(piece) or self._hold_gone(out, pace):
                return result, True
        return result, False

    def _hold_gone(self, out: EventWriter, seconds: float) -> bool:
        """
        Hold the model up to `seconds` (the service time): whether the client left meanwhile.

        Ends early once stop() has begun, which waits for this call.
        """
        end = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            if out.gone(min(left, HOLD_POLL_S)):
                return True
        return False


def _checked(check: Any) -> Any:
    """An argparse type that rejects what ``check`` (backends.base) gives a reason for."""
    def parse(text: str) -> str:
        reason = check(text)
        if reason:
            raise argparse.ArgumentTypeError(reason)
        return text
    return parse


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='edgevlm_lvlm_server',
        description='OpenAI-compatible chat-completions server for a local transformers VLM.')
    parser.add_argument('--model', default='tiny-cloud',
                        help="'tiny-cloud', 'tiny', a local model directory or a hub id; "
                        "test doubles: 'oracle:<eval bag>', 'scripted:<answer script .json>'; "
                        "simulation: 'simulated:synth:<world keys>[,error=0.1][,error_seed=0]' "
                        "or 'simulated:<eval bag>[,error=..]'")
    parser.add_argument('--host', default='127.0.0.1', help='bind address (default: loopback)')
    parser.add_argument('--port', type=int, default=8000, help='TCP port, 0 = any free port')
    parser.add_argument('--served-name', default='edgevlm-local-lvlm',
                        help='the model name clients must send')
    parser.add_argument('--grounding', choices=GROUNDING_MODES, default='saliency',
                        help='how reply boxes are made (the tiny model cannot ground)')
    parser.add_argument('--max-new-tokens', type=int, default=32,
                        help='default answer length cap (requests may lower or raise it)')
    parser.add_argument('--device', type=_checked(check_device), default='auto',
                        help=f'where the model runs: {DEVICES_HELP} (default auto: CUDA if '
                        'torch has it, else the CPU)')
    parser.add_argument('--dtype', type=_checked(check_dtype), default='auto',
                        help=f'model precision: {", ".join(DTYPES)} (default auto: float16 on '
                        'CUDA, float32 on the CPU)')
    parser.add_argument('--max-pending', type=int, default=8,
                        help='requests in or waiting for the model at once; more get a 503')
    parser.add_argument('--service-ms', type=float, default=0.0,
                        help='least time each model call holds the model (one at a time): '
                        'gives a fast model (simulated:...) the capacity of a real LVLM, '
                        '1000/service_ms requests a second; 0 = off')
    parser.add_argument('--log-level', default='INFO',
                        choices=['DEBUG', 'INFO', 'WARNING', 'ERROR'])
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line, ignoring everything from ``--ros-args`` on (ROS launch adds it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if '--ros-args' in args:
        args = args[:args.index('--ros-args')]
    return build_arg_parser().parse_args(args)


def main(argv: list[str] | None = None) -> int:
    """Console entry: edgevlm_lvlm_server --model tiny-cloud --host 127.0.0.1 --port 8000."""
    opts = parse_args(argv)
    logging.basicConfig(level=opts.log_level,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = LvlmServer(opts.model, host=opts.host, port=opts.port,
                            served_name=opts.served_name, grounding=opts.grounding,
                            max_new_tokens=opts.max_new_tokens, device=opts.device,
                            dtype=opts.dtype, max_pending=opts.max_pending,
                            service_ms=opts.service_ms)
        server.start()
    except (OSError, ValueError) as e:
        _LOG.error('cannot start: %s', e)
        return 1
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
