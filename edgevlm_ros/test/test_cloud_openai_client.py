# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""cloud.openai_client: request shape, parsing, and a status (never an exception) per fault."""

import asyncio
import base64
from collections.abc import Callable, Iterator
from email.utils import formatdate
import json
from pathlib import Path
import time

from edgevlm_ros.cloud.openai_client import (
    MAX_RESPONSE_BYTES,
    CloudResult,
    OpenAiVlmClient,
    parse_retry_after,
    resolve_api_key,
)
from edgevlm_ros.core import regions
from edgevlm_ros.core.images import decode_compressed
from edgevlm_ros.core.regions import Box
from edgevlm_ros.lvlm.server import LvlmServer
from edgevlm_ros.models import tiny
import fault_server
from fault_server import FaultServer, free_port
import numpy as np
import pytest

API_KEY = 'sk-test-0123456789abcdef'
MODEL = 'stub-vlm'


def frame(h: int = 480, w: int = 640) -> np.ndarray:
    img = np.full((h, w, 3), 100, np.uint8)
    img[h // 4:h // 2, w // 2:3 * w // 4] = (240, 20, 20)
    return img


def ask(client: OpenAiVlmClient, rgb: np.ndarray, question: str = 'What is there?') -> CloudResult:
    async def run() -> CloudResult:
        try:
            return await client.ask(rgb, question)
        finally:
            await client.aclose()
    return asyncio.run(run())


def completion(content: str) -> bytes:
    return fault_server.completion(content, MODEL)


@pytest.fixture
def stub() -> Iterator[FaultServer]:
    """A real HTTP server whose reply (status, body) each test sets; it records what it got."""
    with FaultServer(served_model=MODEL).set('reply', status=200, body=completion('ok')) as s:
        yield s


@pytest.fixture
def client_for(stub: FaultServer) -> Callable[..., OpenAiVlmClient]:
    return lambda **kw: OpenAiVlmClient(stub.url, MODEL, **kw)


# ------------------------------------------------------------------------------------- request


def test_request_carries_a_downscaled_jpeg_and_asks_for_json_boxes() -> None:
    client = OpenAiVlmClient('http://127.0.0.1:9/v1', 'qwen2.5-vl-7b', max_tokens=64,
                             max_image_side=320)
    body = client.build_request(frame(960, 1280), 'Is the path clear?')
    assert body['model'] == 'qwen2.5-vl-7b' and body['max_tokens'] == 64
    system, user = body['messages']
    assert system['role'] == 'system' and 'bbox_2d' in system['content']
    image_part, text_part = user['content']
    url = image_part['image_url']['url']
    assert url.startswith('data:image/jpeg;base64,')
    sent = decode_compressed(base64.b64decode(url.split(',', 1)[1]))
    assert sent.shape == (240, 320, 3)
    assert '320x240' in text_part['text'] and 'Is the path clear?' in text_part['text']


def test_bad_arguments_raise_value_error() -> None:
    client = OpenAiVlmClient('http://127.0.0.1:9/v1', 'm')
    with pytest.raises(ValueError):
        client.build_request(np.zeros((10, 10), np.uint8), 'q')
    with pytest.raises(ValueError):
        client.build_request(frame(), ' ')
    with pytest.raises(ValueError):
        OpenAiVlmClient('ftp://host/v1', 'm')
    with pytest.raises(ValueError):
        OpenAiVlmClient('http://host/v1', 'm', box_format='polar')
    with pytest.raises(ValueError):
        OpenAiVlmClient('http://host/v1', 'm', timeout_s=0)


# ------------------------------------------------------------------------------- against stubs


def test_pixel_boxes_are_normalised_to_the_image_actually_sent(stub: FaultServer,
                                                               client_for) -> None:
    # The frame is 1280x960 but goes out as 640x480: boxes are in pixels of the sent image.
    stub.body = completion(json.dumps({'answer': 'a red box', 'objects': [
        {'label': 'box', 'bbox_2d': [320, 120, 480, 240]}]}))
    result = ask(client_for(), frame(960, 1280))
    assert result.status == 'ok' and result.answer == 'a red box'
    assert result.boxes == [Box(0.5, 0.25, 0.75, 0.5, 'box', 1.0)]
    assert result.model == 'stub-vlm'
    assert result.request_bytes == len(stub.raw_requests[0])
    assert result.response_bytes == len(stub.body)
    assert result.round_trip_ms > 0


def test_boxes_the_model_wrote_but_that_cannot_be_used_are_reported(stub: FaultServer,
                                                                    client_for) -> None:
    stub.body = completion(json.dumps({'answer': 'a cup', 'objects': [
        {'label': 'cup', 'bbox_2d': [10, 10, 100, 100]},
        {'label': 'ghost', 'bbox_2d': [1200, 1100, 1500, 1300]},  # outside the frame
        {'label': 'bad', 'bbox_2d': [1, 'two', 3]}]}))
    result = ask(client_for(), frame())
    assert result.status == 'ok' and [b.label for b in result.boxes] == ['cup']
    assert result.boxes_found == 3 and not result.unparsed_boxes
    assert result.drop_reasons == {'outside': 1, 'invalid': 1}
    stub.body = completion('{"answer": "a cup", "objects": [{"label": "cup", "bbox_2d": [10,')
    result = ask(client_for(), frame())
    assert result.status == 'ok' and result.answer == 'a cup' and result.unparsed_boxes


def test_plain_text_reply_is_ok_without_boxes(stub: FaultServer, client_for) -> None:
    stub.body = completion('The path ahead is clear.')
    result = ask(client_for(), frame())
    assert (result.status, result.answer, result.boxes) == ('ok', 'The path ahead is clear.', [])


def test_server_error_is_http_error_with_its_message(stub: FaultServer, client_for) -> None:
    stub.status = 500
    stub.body = json.dumps({'error': {'message': 'CUDA out of memory', 'type': 'server_error',
                                      'code': None}}).encode()
    result = ask(client_for(), frame())
    assert result.status == 'http_error'
    assert result.error == 'HTTP 500: CUDA out of memory'


@pytest.mark.parametrize('body', [b'<html>gateway</html>', b'{"choices": []}',
                                  json.dumps({'choices': [{'message': {}}]}).encode()])
def test_a_2xx_that_is_not_a_chat_completion_is_parse_error(stub: FaultServer, client_for,
                                                            body: bytes) -> None:
    stub.body = body
    result = ask(client_for(), frame())
    assert result.status == 'parse_error' and 'not a chat completion' in result.error


def test_oversized_response_is_parse_error(stub: FaultServer, client_for) -> None:
    stub.body = completion('x' * (MAX_RESPONSE_BYTES + 10))
    result = ask(client_for(), frame())
    assert result.status == 'parse_error' and 'response too large' in result.error


def test_api_key_is_sent_as_bearer_and_never_shown_in_errors(stub: FaultServer,
                                                             client_for) -> None:
    stub.status = 401
    stub.body = json.dumps(
        {'error': {'message': f'Incorrect API key provided: {API_KEY}'}}).encode()
    client = client_for(api_key=API_KEY)
    result = ask(client, frame())
    headers = {k.lower(): v for k, v in stub.headers[0].items()}
    assert headers['authorization'] == f'Bearer {API_KEY}'
    assert result.status == 'http_error' and 'HTTP 401' in result.error
    assert API_KEY not in result.error and API_KEY not in repr(client)
    assert API_KEY not in stub.raw_requests[0].decode()


def test_no_authorization_header_without_a_key(stub: FaultServer, client_for) -> None:
    ask(client_for(), frame())
    assert 'authorization' not in {k.lower() for k in stub.headers[0]}


# ----------------------------------------------------------------------------- network faults


def test_closed_port_is_http_error_at_once() -> None:
    port = free_port()  # nothing listens there once it is found
    t0 = time.monotonic()
    result = ask(OpenAiVlmClient(f'http://127.0.0.1:{port}/v1', 'm', timeout_s=30.0), frame())
    assert result.status == 'http_error' and 'Connect' in result.error
    assert time.monotonic() - t0 < 30.0  # a refused connection is not waited out to the timeout


def test_server_that_never_answers_is_timeout_within_the_budget() -> None:
    with FaultServer().set('hang') as server:
        client = OpenAiVlmClient(server.url, 'm', timeout_s=0.5)
        t0 = time.monotonic()
        result = ask(client, frame())
        elapsed = time.monotonic() - t0
    assert result.status == 'timeout' and '0.5 s' in result.error
    assert elapsed >= 0.45  # the client waited for its timeout, it did not give up early


# ------------------------------------------------------------------------ against the real one


@pytest.fixture(scope='module')
def lvlm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LvlmServer]:
    path: Path = tiny.ensure_tiny_model('smolvlm-tiny-cloud', tmp_path_factory.mktemp('cache'),
                                        progress=False)
    with LvlmServer(str(path), served_name='local-lvlm', max_new_tokens=4) as server:
        yield server


def test_real_server_round_trip_gives_normalised_boxes(lvlm: LvlmServer) -> None:
    client = OpenAiVlmClient(lvlm.url, 'local-lvlm', max_tokens=4, timeout_s=60.0)
    result = ask(client, frame(960, 1280))
    assert result.status == 'ok', result.error
    assert result.model == 'local-lvlm'
    assert isinstance(result.answer, str)
    assert result.boxes and all(0.0 <= b.x_min < b.x_max <= 1.0 and 0.0 <= b.y_min < b.y_max <= 1.0
                                for b in result.boxes)


def test_real_server_wrong_model_is_http_error_404(lvlm: LvlmServer) -> None:
    result = ask(OpenAiVlmClient(lvlm.url, 'gpt-4o', timeout_s=60.0), frame())
    assert result.status == 'http_error' and result.error.startswith('HTTP 404')


# ------------------------------------------------------------------------------- configuration


def test_api_key_comes_from_a_file_before_the_environment(tmp_path) -> None:
    env = {'MY_KEY': f' {API_KEY}\n'}
    assert resolve_api_key('MY_KEY', '', env) == (API_KEY, '$MY_KEY')
    key_file = tmp_path / 'key'
    key_file.write_text('sk-from-file\nignored second line\n')
    key, source = resolve_api_key('MY_KEY', str(key_file), env)
    assert key == 'sk-from-file' and 'sk-from-file' not in source and str(key_file) in source
    key, source = resolve_api_key('UNSET_KEY', '', env)
    assert key is None and 'UNSET_KEY' in source


def test_an_unreadable_or_empty_key_file_is_a_clear_error_that_shows_no_content(tmp_path) -> None:
    with pytest.raises(ValueError, match='cannot read the API key file'):
        resolve_api_key('', str(tmp_path / 'missing'))
    empty = tmp_path / 'empty'
    empty.write_text('\n  \n')
    with pytest.raises(ValueError, match='is empty'):
        resolve_api_key('', str(empty))
    binary = tmp_path / 'binary'
    binary.write_bytes(b'\xff\xfe' + API_KEY.encode())
    with pytest.raises(ValueError) as e:
        resolve_api_key('', str(binary))
    assert API_KEY not in str(e.value)


@pytest.mark.parametrize(('value', 'seconds'), [('3', 3.0), (' 0.5 ', 0.5), ('-4', 0.0),
                                                ('soon', None), (None, None), ('inf', None)])
def test_retry_after_seconds(value, seconds) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 7, usegmt=True), now_epoch_s=now) == 7.0


def test_the_prompt_names_the_coordinates_the_model_family_uses(monkeypatch) -> None:
    def request(fmt: str) -> dict:
        return OpenAiVlmClient('http://127.0.0.1:9/v1', 'm', box_format=fmt).build_request(
            frame(), 'q')

    def prompt(fmt: str) -> str:
        return request(fmt)['messages'][0]['content']
    for fmt in ('pixels', 'auto', 'qwen2.5-vl'):
        assert 'absolute pixel' in prompt(fmt) and '[x1, y1, x2, y2]' in prompt(fmt)
    for fmt in ('grid1000', 'qwen2-vl', 'qwen3-vl'):
        assert '0-1000 grid' in prompt(fmt) and '"bbox_2d": [x1, y1, x2, y2]' in prompt(fmt)
    assert '"box_2d": [y1, x1, y2, x2]' in prompt('gemini') and '0-1000 grid' in prompt('gemini')
    schema = request('gemini')['response_format']['json_schema']['schema']
    assert schema['properties']['objects']['items']['required'] == ['label', 'box_2d']
    assert 'fractions 0-1' in prompt('normalized')
    # Formats the parser learns later are accepted without a change in the client.
    monkeypatch.setattr(regions, 'BOX_FORMATS', (*regions.BOX_FORMATS, 'future-vl'))
    assert 'absolute pixel' in prompt('future-vl')


def test_qwen25_vl_gets_the_image_size_its_processor_would_use(stub: FaultServer,
                                                               client_for) -> None:
    # 1280x960 -> 640x480 by max_image_side -> 644x476, both sides multiples of 28, so the
    # model answers in pixels of exactly the image sent.
    stub.body = completion(json.dumps({'answer': 'a box', 'objects': [
        {'label': 'box', 'bbox_2d': [161, 119, 483, 357]}]}))
    client = client_for(box_format='qwen2.5-vl')
    body = client.build_request(frame(960, 1280), 'q')
    sent = decode_compressed(base64.b64decode(
        body['messages'][1]['content'][0]['image_url']['url'].split(',', 1)[1]))
    assert sent.shape == (476, 644, 3) and '644x476' in body['messages'][1]['content'][1]['text']
    result = ask(client, frame(960, 1280))
    assert result.ok and len(result.boxes) == 1
    box = result.boxes[0]
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == pytest.approx((0.25, 0.25, 0.75, 0.75),
                                                                          abs=1e-3)


def test_structured_output_off_sends_no_response_format() -> None:
    client = OpenAiVlmClient('http://127.0.0.1:9/v1', 'm', structured_output='off')
    assert 'response_format' not in client.build_request(frame(), 'q')
    client = OpenAiVlmClient('http://127.0.0.1:9/v1', 'm', structured_output='json_object')
    assert client.build_request(frame(), 'q')['response_format'] == {'type': 'json_object'}
    with pytest.raises(ValueError):
        OpenAiVlmClient('http://127.0.0.1:9/v1', 'm', structured_output='xml')


def test_on_a_simulated_clock_delays_and_the_timeout_are_counted_on_it(stub: FaultServer,
                                                                        client_for) -> None:
    # A sped-up replay hands the client its clock and a sleep on that clock. Here that clock
    # runs 50x faster than the wall: a 20 s emulated round trip is past the 10 s timeout of that
    # clock (a wall-clock timeout would let it through), a 4 s one is measured as 4 s.
    from edgevlm_ros.core.netem import NetworkProfile

    now = [1000.0]

    async def sim_sleep(seconds: float) -> None:
        end = now[0] + seconds
        while now[0] < end:
            await asyncio.sleep(0.001)

    def run(network: str) -> CloudResult:
        client = client_for(timeout_s=10.0, network=NetworkProfile.parse(network),
                            clock=lambda: now[0], sleep=sim_sleep)

        async def go() -> CloudResult:
            async def tick() -> None:
                while True:
                    now[0] += 0.05
                    await asyncio.sleep(0.001)
            ticker = asyncio.create_task(tick())
            try:
                return await client.ask(frame(), 'What is there?')
            finally:
                ticker.cancel()
                await client.aclose()
        return asyncio.run(go())

    late = run('fixed:20000')
    assert (late.status, late.fault) == ('timeout', 'timeout')
    assert 'no reply within 10 s' in late.error
    ok = run('fixed:4000')
    assert ok.status == 'ok'
    assert 4000.0 <= ok.round_trip_ms < 10000.0  # measured on that clock
