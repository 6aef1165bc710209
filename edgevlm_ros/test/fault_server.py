# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
A real OpenAI-compatible HTTP server on 127.0.0.1 whose faults a test switches at run time.

Modes (``FaultServer.mode``, or one per request from ``FaultServer.script``):

* 'ok'         a chat completion with an answer and one box (pixels of the image received); a
  request for another model than ``served_model`` gets 404, like vLLM;
* 'status'     HTTP ``status`` with an OpenAI-style error body (and ``retry_after`` if set);
* 'hang'       reads the request and never answers (until the server stops);
* 'slow'       answers 'ok' after ``delay_s``;
* 'malformed'  200 with a truncated JSON body;
* 'no_boxes'   a completion whose content is plain text, no JSON, no boxes;
* 'huge'       200 streaming ``huge_bytes`` of body without a Content-Length;
* 'drop'       reads the request and closes the connection without a reply (a server dying
  mid-request);
* 'no_response_format'  400 "response_format is not supported" when the request carries one,
  else 'ok';
* 'reply'      HTTP ``status`` with ``body`` (bytes) as they are: any reply the other modes do
  not make.

Requests with ``"stream": true`` in mode 'ok' are served as ``stream_mode`` says (None: one plain
completion, a server that does not stream):

* 'sse'        ``answer`` word by word as chat.completion.chunk events, ``stream_delay_s`` apart,
  then finish_reason and ``data: [DONE]``;
* 'sse_broken' the first ``break_after`` words, then the connection is closed mid-body;
* 'sse_malformed' the first ``break_after`` words, then an event that is not JSON.

``disconnects`` counts streams whose client closed the connection before the end.

``stop()`` takes the server down (open connections cut, new ones refused, hanging handlers
released); ``start()``
brings it back on the same port. ``tls`` serves https with the given server-side SSLContext.
Everything it remembers is bounded (the newest MAX_RECORDED requests: parsed bodies, raw bodies,
headers and arrival times).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
from pathlib import Path
import shutil
import socket
import ssl
import subprocess
import threading
import time

MAX_RECORDED = 256
MODES = ('ok', 'status', 'hang', 'slow', 'malformed', 'no_boxes', 'huge', 'drop',
         'no_response_format', 'reply')
STREAM_MODES = ('sse', 'sse_broken', 'sse_malformed')


def completion(content: str, model: str) -> bytes:
    return json.dumps({'id': 'chatcmpl-fault', 'object': 'chat.completion', 'model': model,
                       'choices': [{'index': 0, 'finish_reason': 'stop', 'message': {
                           'role': 'assistant', 'content': content}}]}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class FaultServer:
    """See the module docstring."""

    def __init__(self, port: int = 0, served_model: str = 'fault-vlm',
                 tls: ssl.SSLContext | None = None) -> None:
        self.port = port or free_port()
        self.served_model = served_model
        self.tls = tls
        self.mode = 'ok'
        self.status = 503
        self.message = 'server overloaded'
        self.retry_after: str | None = None
        self.delay_s = 10.0
        self.huge_bytes = 4 * 1024 * 1024
        self.answer = 'a red box on a grey floor'
        self.body = b''  # mode 'reply'
        self.stream_mode: str | None = None
        self.stream_delay_s = 0.0
        self.break_after = 2
        self.disconnects = 0
        self._script: deque[str] = deque()
        self.requests: deque[dict] = deque(maxlen=MAX_RECORDED)  # newest request bodies
        self.raw_requests: deque[bytes] = deque(maxlen=MAX_RECORDED)  # the same, as sent
        self.times: deque[float] = deque(maxlen=MAX_RECORDED)    # their arrival (monotonic)
        self.headers: deque[dict] = deque(maxlen=MAX_RECORDED)
        self.count = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._connections: set[socket.socket] = set()  # open ones only: removed when they end
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        scheme = 'https' if self.tls is not None else 'http'
        return f'{scheme}://127.0.0.1:{self.port}/v1'

    def set(self, mode: str, **options: object) -> FaultServer:
        """Switch the behaviour of every later request (options: status, retry_after, ...)."""
        if mode not in MODES:
            raise ValueError(f'unknown mode {mode!r}; one of {MODES}')
        if options.get('stream_mode') not in (None, *STREAM_MODES):
            raise ValueError(f"unknown stream_mode {options['stream_mode']!r}")
        with self._lock:
            for k, v in options.items():
                if not hasattr(self, k):
                    raise ValueError(f'unknown option {k!r}')
                setattr(self, k, v)
            self.mode = mode
            self._script.clear()
        return self

    def script(self, *modes: str) -> FaultServer:
        """The next len(modes) requests get these modes in turn, then ``mode`` again."""
        for m in modes:
            if m not in MODES:
                raise ValueError(f'unknown mode {m!r}')
        with self._lock:
            self._script.extend(modes)
        return self

    def wait_for_requests(self, n: int, timeout_s: float = 10.0) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.count >= n:
                return True
            time.sleep(0.01)
        return self.count >= n

    def start(self) -> FaultServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                mode = server._record(raw, body, dict(self.headers))
                server._serve(self, mode, body)

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                super().finish()

            def log_message(self, *args: object) -> None:
                pass

        self._release.clear()
        httpd = ThreadingHTTPServer(('127.0.0.1', self.port), Handler)
        httpd.daemon_threads = True
        if self.tls is not None:
            httpd.socket = self.tls.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name='fault_server',
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take the server down: release hanging requests, close the listening socket."""
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._lock:  # a dead server's kept-alive connections die with it
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ serving

    def _record(self, raw: bytes, body: dict, headers: dict) -> str:
        with self._lock:
            self.requests.append(body)
            self.raw_requests.append(raw)
            self.headers.append(headers)
            self.times.append(time.monotonic())
            self.count += 1
            return self._script.popleft() if self._script else self.mode

    def _ok_body(self, body: dict) -> tuple[int, bytes]:
        model = body.get('model')
        if self.served_model and model != self.served_model:
            return 404, json.dumps({'error': {
                'message': f'The model `{model}` does not exist.', 'type': 'NotFoundError',
                'code': 404}}).encode()
        content = json.dumps({'answer': self.answer, 'objects': [
            {'label': 'red box', 'bbox_2d': [32, 24, 96, 72]}]})
        return 200, completion(content, self.served_model or str(model))

    def _serve(self, h: BaseHTTPRequestHandler, mode: str, body: dict) -> None:
        if body.get('stream') and self.stream_mode is not None and mode == 'ok':
            self._stream(h, self.stream_mode)
            return
        try:
            if mode == 'hang':
                self._release.wait()
                h.close_connection = True
                return
            if mode == 'drop':
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return
            if mode == 'slow':
                if self._release.wait(self.delay_s):
                    h.close_connection = True
                    return
                mode = 'ok'
            if mode == 'no_response_format':
                mode = 'status' if 'response_format' in body else 'ok'
                if mode == 'status':
                    _send(h, 400, json.dumps({'error': {
                        'message': 'response_format is not supported by this server',
                        'type': 'invalid_request_error', 'code': 400}}).encode())
                    return
            if mode == 'ok':
                _send(h, *self._ok_body(body))
            elif mode == 'status':
                extra = {'Retry-After': self.retry_after} if self.retry_after is not None else {}
                _send(h, self.status, json.dumps({'error': {
                    'message': self.message, 'type': 'server_error',
                    'code': self.status}}).encode(), extra)
            elif mode == 'reply':
                _send(h, self.status, self.body)
            elif mode == 'malformed':
                _send(h, 200, b'{"id": "x", "choices": [{"message": {"content": "trunc')
            elif mode == 'no_boxes':
                _send(h, 200, completion('There is a red box on the floor.', self.served_model))
            elif mode == 'huge':
                h.send_response(200)
                h.send_header('Content-Type', 'application/json')
                h.send_header('Connection', 'close')
                h.end_headers()
                chunk = b'x' * 65536
                sent = 0
                while sent < self.huge_bytes and not self._release.is_set():
                    h.wfile.write(chunk)
                    sent += len(chunk)
                h.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            h.close_connection = True  # the client gave up (timeout, size cap): expected


    def _stream(self, h: BaseHTTPRequestHandler, mode: str) -> None:
        from edgevlm_ros.lvlm.streaming import EventWriter, chunk_body, word_pieces

        out = EventWriter(h)
        out.start()
        model = self.served_model or 'fault-vlm'
        pieces = word_pieces(self.answer)
        if mode != 'sse':
            pieces = pieces[:self.break_after]
        out.send(chunk_body('chatcmpl-fault', 0, model, role='assistant', content=''))
        for piece in pieces:
            if out.gone(self.stream_delay_s) or not out.send(
                    chunk_body('chatcmpl-fault', 0, model, content=piece)):
                with self._lock:
                    self.disconnects += 1
                return
        if mode == 'sse_broken':
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == 'sse_malformed':
            out.send('{"choices": [{"delta": {"content": "trunc')
            out.done()
            return
        out.send(chunk_body('chatcmpl-fault', 0, model, finish_reason='stop'))
        out.done()


def _send(h: BaseHTTPRequestHandler, status: int, payload: bytes,
          extra: dict | None = None) -> None:
    h.send_response(status)
    h.send_header('Content-Type', 'application/json')
    h.send_header('Content-Length', str(len(payload)))
    for k, v in (extra or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(payload)


# ------------------------------------------------------------------ TLS


def self_signed_cert(directory: Path) -> tuple[Path, Path] | str:
    """
    Write a self-signed certificate for 127.0.0.1 and its key into directory.

    Uses the `cryptography` package if it is installed, else the `openssl` command. Returns
    (cert, key), or the reason neither is available.
    """
    cert, key = directory / 'cert.pem', directory / 'key.pem'
    maker = _cryptography_maker() or _openssl_maker()
    if isinstance(maker, str):
        return maker
    maker(cert, key)
    return cert, key


def _cryptography_maker() -> Callable[[Path, Path], None] | None:
    try:
        from cryptography import x509  # noqa: F401
    except ImportError:
        return None

    def make(cert: Path, key: Path) -> None:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        private = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.1')])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(private, hashes.SHA256()))
        cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return make


def _openssl_maker() -> Callable[[Path, Path], None] | str:
    exe = shutil.which('openssl')
    if exe is None:
        return 'neither the cryptography package nor the openssl command is available'

    def make(cert: Path, key: Path) -> None:
        subprocess.run(
            [exe, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
             '-nodes', '-keyout', str(key), '-out', str(cert), '-days', '1',
             '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
             '-addext', 'basicConstraints=critical,CA:TRUE'],
            check=True, capture_output=True, timeout=60)
    return make


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx
