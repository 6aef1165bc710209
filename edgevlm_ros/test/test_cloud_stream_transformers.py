# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The embedded LVLM server around a real transformers model streams token by token (on_token).

It stops generating when the asker goes away. The model is the tiny random-weight SmolVLM
('smolvlm-tiny-cloud'), built offline: its words are noise, its tokens are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import json
from pathlib import Path
import time

from edgevlm_ros.cloud.ask_stream import StreamingAsker
from edgevlm_ros.cloud.openai_client import OpenAiVlmClient
from edgevlm_ros.lvlm.server import LvlmServer
from edgevlm_ros.models import tiny
import httpx
import numpy as np
import pytest

SERVED = 'test-lvlm'
TOKENS = 12


@pytest.fixture(scope='module')
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LvlmServer]:
    model_dir: Path = tiny.ensure_tiny_model('smolvlm-tiny-cloud',
                                             tmp_path_factory.mktemp('cache'), progress=False)
    srv = LvlmServer(str(model_dir), served_name=SERVED, max_new_tokens=TOKENS)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def scene() -> np.ndarray:
    rng = np.random.default_rng(5)
    img = rng.normal(110, 6, (240, 320, 3)).clip(0, 255).astype(np.uint8)
    img[50:110, 150:210] = (230, 30, 30)
    return img


def test_the_transformers_backed_server_streams_token_by_token(server):
    seen: list[tuple[str, int]] = []

    async def main():
        client = OpenAiVlmClient(server.url, SERVED, timeout_s=120.0)
        asker = StreamingAsker(client)
        try:
            result = await asker.ask(scene(), 'What is on the table?', max_tokens=TOKENS,
                                     on_text=lambda t, n: seen.append((t, n)))
            body = asker.build_request(scene(), 'What is on the table?', max_tokens=TOKENS)
            return result, body
        finally:
            await client.aclose()
    result, body = asyncio.run(main())
    assert (result.ending, result.streamed, result.fault) == ('done', True, '')
    assert result.chunks >= 2 and len(seen) == result.chunks
    assert result.completion_tokens is not None and result.chunks <= result.completion_tokens
    # The streamed text is the answer the same request gets without streaming.
    del body['stream'], body['stream_options']
    with httpx.Client(base_url=server.url, timeout=120.0) as http:
        reply = http.post('/chat/completions', json=body).json()
    assert json.loads(reply['choices'][0]['message']['content'])['answer'] == result.text.strip()


def test_a_client_that_leaves_stops_the_generation(server):
    stopped = server.streams_stopped

    async def main():
        client = OpenAiVlmClient(server.url, SERVED, timeout_s=120.0)
        first = asyncio.Event()
        task = asyncio.ensure_future(StreamingAsker(client).ask(
            scene(), 'Describe the scene.', max_tokens=1024,
            on_text=lambda t, n: first.set()))
        await asyncio.wait_for(first.wait(), 120)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.aclose()
    asyncio.run(main())
    end = time.monotonic() + 30
    while time.monotonic() < end and not (server.streams_stopped > stopped
                                          and server.calls_running == 0):
        time.sleep(0.01)
    assert server.streams_stopped == stopped + 1 and server.calls_running == 0
