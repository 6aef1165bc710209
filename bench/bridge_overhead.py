# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
What the cloud bridge itself adds to a cloud round trip, server time excluded.

A zero-latency OpenAI-compatible server on 127.0.0.1 answers every request at once with a canned
completion (an answer and a few boxes) and measures its own time per request (request read ->
reply written). The client side is timed by phase: frame preparation (resize, JPEG encode,
base64, JSON body), reply parsing (JSON, box parser), the selector's per-step decision (grey
thumbnail + rules), and the whole ``ask`` against the server; overhead = ask - server time.
Prints numbers only; nothing is asserted.

usage: python bench/bridge_overhead.py [--requests 200] [--quality 85] [--max-side 640]
"""

import argparse
import asyncio
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import statistics
import threading
import time

from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.cloud.openai_client import OpenAiVlmClient
from edgevlm_ros.cloud.resilience import CircuitBreaker
from edgevlm_ros.core.regions import parse_lvlm_reply
from edgevlm_ros.core.selection import CloudSelector
import numpy as np

MODEL = 'bench-vlm'
REPLY = json.dumps({'answer': 'A red cup on the table, a person behind it, the path is clear.',
                    'objects': [{'label': 'red cup', 'bbox_2d': [40, 120, 180, 260]},
                                {'label': 'person', 'bbox_2d': [300, 40, 420, 400]},
                                {'label': 'table', 'bbox_2d': [10, 200, 630, 470]}]})
COMPLETION = json.dumps({'id': 'x', 'object': 'chat.completion', 'model': MODEL, 'choices': [
    {'index': 0, 'finish_reason': 'stop',
     'message': {'role': 'assistant', 'content': REPLY}}]}).encode()


class ZeroLatencyServer:
    """Answers every POST at once; records its own handling time per request."""

    def __init__(self) -> None:
        self.server_ms: list[float] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'
            # Headers and body go out as two writes: without this, Nagle holds the body until
            # the client's delayed ACK (~40 ms on Linux), which is the server's cost, not ours.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                t0 = time.perf_counter()
                self.rfile.read(int(self.headers['Content-Length']))
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(COMPLETION)))
                self.end_headers()
                self.wfile.write(COMPLETION)
                self.wfile.flush()
                server.server_ms.append((time.perf_counter() - t0) * 1000.0)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def _row(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f'  {name:<34} p50 {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   (n={len(ms)})'


def _frame(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    # Smooth gradients plus noise: compresses like a camera frame, not like a flat test card.
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 255 // max(1, width - 1)), (y * 255 // max(1, height - 1)),
                    ((x + y) * 127 // max(1, width + height))], axis=-1).astype(np.int16)
    img += rng.integers(-12, 13, img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


async def _asks(client: OpenAiVlmClient, rgb: np.ndarray, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        result = await client.ask(rgb, 'What is in front of the robot?')
        times.append((time.perf_counter() - t0) * 1000.0)
        if not result.ok:
            raise RuntimeError(f'bench request failed: {result.error}')
    return times


def _bench(server: ZeroLatencyServer, width: int, height: int, opts) -> None:
    rgb = _frame(width, height)

    async def run():
        async with OpenAiVlmClient(server.url, MODEL, jpeg_quality=opts.quality,
                                   max_image_side=opts.max_side, max_tokens=64,
                                   breaker=CircuitBreaker()) as client:
            size = len(json.dumps(client.build_request(rgb, 'q')).encode())
            prep = _timed(lambda: json.dumps(client.build_request(rgb, 'q')).encode(),
                          opts.requests)
            await _asks(client, rgb, 10)  # warm the connection pool
            server.server_ms.clear()
            asks = await _asks(client, rgb, opts.requests)
            return size, prep, asks

    size, prep, asks = asyncio.run(run())
    served = list(server.server_ms)[-len(asks):]
    content = json.loads(COMPLETION)['choices'][0]['message']['content']
    parse = _timed(lambda: parse_lvlm_reply(content, (640, 480)), opts.requests)
    selector = CloudSelector(max_in_flight=1_000_000, scene_change=0.05)
    clock = iter(range(10**9))
    select = _timed(lambda: selector.offer(next(clock) * 0.5, None, rgb), opts.requests)
    n = min(len(asks), len(served))
    overhead = [a - s for a, s in zip(asks[-n:], served[-n:])]
    print(f'{width}x{height} frame -> long side {opts.max_side}, JPEG q{opts.quality}, '
          f'request body {size / 1024:.0f} kB')
    print(_row('prepare (resize+JPEG+base64+JSON)', prep))
    print(_row('parse reply (JSON + boxes)', parse))
    print(_row('selector per step (thumb+rules)', select))
    print(_row('ask() round trip, loopback', asks))
    print(_row('  of which server handling', served))
    print(_row('bridge overhead (ask - server)', overhead))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('--requests', type=int, default=200, help='asks per frame size')
    ap.add_argument('--quality', type=int, default=85, help='JPEG quality')
    ap.add_argument('--max-side', type=int, default=640, help='uploaded long side, px')
    opts = ap.parse_args()
    print(read_cpu().header())
    server = ZeroLatencyServer()
    try:
        for width, height in ((640, 480), (1280, 720), (1920, 1080)):
            _bench(server, width, height, opts)
    finally:
        server.close()


if __name__ == '__main__':
    main()
