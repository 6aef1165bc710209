# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The local OpenAI-compatible LVLM server: chat completions, grounding, errors, CLI."""

import base64
from collections.abc import Iterator
import json
import os
from pathlib import Path
import socket
import subprocess
import sys

from edgevlm_ros.backends.registry import load_lvlm
from edgevlm_ros.core.images import encode_jpeg
from edgevlm_ros.lvlm.server import LvlmServer, parse_args
from edgevlm_ros.models import tiny
import httpx
import numpy as np
import pytest
import torch

SERVED = 'test-lvlm'
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.ensure_tiny_model('smolvlm-tiny-cloud', tmp_path_factory.mktemp('cache'),
                                  progress=False)


@pytest.fixture(scope='module')
def server(model_dir: Path) -> Iterator[LvlmServer]:
    srv = LvlmServer(str(model_dir), served_name=SERVED, max_new_tokens=4)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope='module')
def http(server: LvlmServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


def scene() -> np.ndarray:
    """A grey 640x480 frame with one bright red box at x 300..420, y 100..220."""
    rng = np.random.default_rng(5)
    img = rng.normal(110, 6, (480, 640, 3)).clip(0, 255).astype(np.uint8)
    img[100:220, 300:420] = (230, 30, 30)
    return img


def data_url(rgb: np.ndarray) -> str:
    return 'data:image/jpeg;base64,' + base64.b64encode(encode_jpeg(rgb, 90)).decode()


def chat_body(image_url: str | None = None, text: str = 'What is on the table?',
              **extra: object) -> dict:
    content: list[dict] = []
    if image_url is not None:
        content.append({'type': 'image_url', 'image_url': {'url': image_url}})
    content.append({'type': 'text', 'text': text})
    return {'model': SERVED, 'messages': [
        {'role': 'system', 'content': 'Reply with JSON.'},
        {'role': 'user', 'content': content}], **extra}


def test_chat_completion_answers_with_json_and_pixel_boxes(http: httpx.Client) -> None:
    response = http.post('/chat/completions', json=chat_body(data_url(scene())))
    assert response.status_code == 200
    body = response.json()
    assert body['object'] == 'chat.completion' and body['model'] == SERVED
    assert body['id'].startswith('chatcmpl-') and isinstance(body['created'], int)
    reply = json.loads(body['choices'][0]['message']['content'])
    assert isinstance(reply['answer'], str)
    assert 1 <= len(reply['objects']) <= 3
    for obj in reply['objects']:
        x1, y1, x2, y2 = obj['bbox_2d']
        assert all(isinstance(v, int) for v in obj['bbox_2d'])
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
        assert obj['label']
    usage = body['usage']
    assert usage['prompt_tokens'] > 64 and 1 <= usage['completion_tokens'] <= 4
    assert usage['total_tokens'] == usage['prompt_tokens'] + usage['completion_tokens']


def test_the_last_image_of_the_request_is_answered(http: httpx.Client) -> None:
    small = np.full((120, 160, 3), 90, np.uint8)
    small[30:90, 40:120] = 250
    body = chat_body(data_url(scene()))
    body['messages'].append({'role': 'assistant', 'content': 'ok'})
    body['messages'].append({'role': 'user', 'content': [
        {'type': 'image_url', 'image_url': {'url': data_url(small)}},
        {'type': 'text', 'text': 'And now?'}]})
    reply = json.loads(http.post('/chat/completions', json=body).json()[
        'choices'][0]['message']['content'])
    assert all(o['bbox_2d'][2] <= 160 and o['bbox_2d'][3] <= 120 for o in reply['objects'])


def test_max_tokens_caps_the_completion(http: httpx.Client) -> None:
    body = http.post('/chat/completions', json=chat_body(data_url(scene()), max_tokens=1)).json()
    assert body['usage']['completion_tokens'] == 1
    assert body['choices'][0]['finish_reason'] == 'length'


def test_grounding_none_returns_no_objects(model_dir: Path) -> None:
    with LvlmServer(str(model_dir), served_name=SERVED, grounding='none',
                    max_new_tokens=2) as srv:
        body = httpx.post(f'{srv.url}/chat/completions', json=chat_body(data_url(scene())),
                          timeout=60.0).json()
    assert json.loads(body['choices'][0]['message']['content'])['objects'] == []


def test_wrong_model_name_is_404_with_openai_error(http: httpx.Client) -> None:
    body = chat_body(data_url(scene()))
    body['model'] = 'gpt-4o'
    response = http.post('/chat/completions', json=body)
    assert response.status_code == 404
    error = response.json()['error']
    assert error['code'] == 'model_not_found' and 'gpt-4o' in error['message']
    assert error['type'] == 'invalid_request_error'


@pytest.mark.parametrize(('body', 'code'), [
    (b'{"model": ', 'invalid_json'),
    (b'[1, 2]', 'invalid_json'),
    (json.dumps(chat_body(None)).encode(), 'missing_image'),
    (json.dumps(chat_body('data:image/jpeg;base64,AAAA')).encode(), 'invalid_image'),
    (json.dumps(chat_body('data:image/jpeg;base64,not base64!')).encode(), 'invalid_image'),
    (json.dumps(chat_body('https://example.com/cat.jpg')).encode(), 'invalid_image'),
    (json.dumps({'model': SERVED, 'messages': []}).encode(), 'invalid_messages'),
    (json.dumps({'model': SERVED, 'messages': 'hi'}).encode(), 'invalid_messages'),
    (json.dumps(chat_body('data:,', max_tokens=0)).encode(), 'invalid_max_tokens'),
    (json.dumps(chat_body('data:,', stream='yes')).encode(), 'invalid_stream'),
])
def test_malformed_requests_are_400_with_openai_error(http: httpx.Client, body: bytes,
                                                      code: str) -> None:
    response = http.post('/chat/completions', content=body,
                         headers={'Content-Type': 'application/json'})
    assert response.status_code == 400
    assert response.json()['error']['code'] == code


def test_body_over_the_limit_is_413_without_reading_it(server: LvlmServer) -> None:
    with socket.create_connection(('127.0.0.1', server.port), timeout=10) as sock:
        sock.sendall(b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n'
                     b'Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n')
        reply = b''
        while chunk := sock.recv(4096):
            reply += chunk
    head, _, payload = reply.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 413')
    assert json.loads(payload)['error']['code'] == 'payload_too_large'


def test_models_endpoint_lists_the_served_name_and_health_is_ok(http: httpx.Client,
                                                                server: LvlmServer) -> None:
    models = http.get('/models').json()
    assert [m['id'] for m in models['data']] == [SERVED]
    assert httpx.get(f'http://127.0.0.1:{server.port}/health').status_code == 200
    assert http.get('/nothing').status_code == 404


def test_binds_loopback_on_a_free_port_and_stops(model_dir: Path) -> None:
    srv = LvlmServer(str(model_dir))
    url = srv.start()
    port = srv.port
    assert port > 0 and url == f'http://127.0.0.1:{port}/v1'
    srv.stop()
    srv.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(f'http://127.0.0.1:{port}/health', timeout=2.0)


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match='grounding'):
        LvlmServer(grounding='yolo')
    with pytest.raises(ValueError, match='port'):
        LvlmServer(port=70000)
    with pytest.raises(ValueError, match='device must be one of'):
        LvlmServer(device='gpu')
    with pytest.raises(ValueError, match='dtype must be one of'):
        LvlmServer(dtype='fp16')
    with pytest.raises(ValueError, match='device must be one of'):
        load_lvlm('tiny', max_new_tokens=4, device='tpu')


def test_device_and_dtype_reach_the_model(model_dir: Path) -> None:
    svlm = load_lvlm(str(model_dir), max_new_tokens=4, device='cpu', dtype='bfloat16')
    assert svlm.device.type == 'cpu' and svlm.model.dtype == torch.bfloat16
    with LvlmServer(str(model_dir), served_name=SERVED, max_new_tokens=2, device='auto',
                    dtype='bfloat16') as srv:
        assert srv.backend.model.dtype == torch.bfloat16
        reply = httpx.post(f'{srv.url}/chat/completions', json=chat_body(data_url(scene())),
                           timeout=60.0)
        assert reply.status_code == 200
        assert reply.json()['usage']['completion_tokens'] <= 2
    if not torch.cuda.is_available():
        srv = LvlmServer(str(model_dir), device='cuda')
        with pytest.raises(OSError, match="device 'cuda' requested but this torch has no CUDA"):
            srv.start()
        assert srv.backend is None


def test_command_line_device_and_dtype_are_checked(capsys: pytest.CaptureFixture) -> None:
    opts = parse_args(['--device', 'cuda:1', '--dtype', 'bfloat16'])
    assert (opts.device, opts.dtype) == ('cuda:1', 'bfloat16')
    assert (parse_args([]).device, parse_args([]).dtype) == ('auto', 'auto')
    for argv, match in ((['--device', 'gpu'], 'device must be one of'),
                        (['--dtype', 'half'], 'dtype must be one of')):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert match in capsys.readouterr().err


def test_command_line_ignores_ros_arguments() -> None:
    opts = parse_args(['--model', 'tiny', '--port', '0', '--served-name', 'x',
                       '--ros-args', '-r', '__node:=lvlm', '--params-file', '/p.yaml'])
    assert (opts.model, opts.port, opts.served_name, opts.host) == ('tiny', 0, 'x', '127.0.0.1')


def test_console_entry_serves_until_terminated(model_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT))
    proc = subprocess.Popen(
        [sys.executable, '-m', 'edgevlm_ros.lvlm.server', '--model', str(model_dir),
         '--port', str(port), '--ros-args', '-r', '__node:=lvlm'],
        env=env, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # the server logs its URL once it is listening
            if 'serving' in line:
                break
        assert httpx.get(f'http://127.0.0.1:{port}/health', timeout=10).status_code == 200
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_service_time_serialises_model_calls_and_bounds_the_queue() -> None:
    """
    Concurrent requests: one model call at a time, each holding the model service_ms.

    More than max_pending at once get the 503 ('overloaded'); the command line sets both.
    """
    import threading
    import time

    fast = 'simulated:synth:duration=1,fps=2,width=128,height=96,error=0'  # ~1 ms a call
    opts = parse_args(['--max-pending', '3', '--service-ms', '150'])
    assert (opts.max_pending, opts.service_ms) == (3, 150.0)
    assert (parse_args([]).max_pending, parse_args([]).service_ms) == (8, 0.0)
    with pytest.raises(ValueError, match='service_ms'):
        LvlmServer(fast, service_ms=-1)
    body = chat_body(data_url(scene()))
    with LvlmServer(fast, served_name=SERVED, max_pending=3, service_ms=300) as srv:
        results: list[tuple[int, float]] = []
        retry_after: list[str | None] = []
        lock = threading.Lock()

        def ask() -> None:
            t0 = time.monotonic()
            r = httpx.post(f'{srv.url}/chat/completions', json=body, timeout=30.0)
            with lock:
                results.append((r.status_code, time.monotonic() - t0))
                if r.status_code == 503:  # busy, not down: it says when to come back
                    retry_after.append(r.headers.get('Retry-After'))

        t0 = time.monotonic()
        threads = [threading.Thread(target=ask) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
    ok = sorted(s for code, s in results if code == 200)
    busy = [code for code, _ in results if code != 200]
    assert busy and set(busy) == {503} and len(ok) >= 3
    assert set(retry_after) == {'1'}
    assert ok[0] >= 0.29                          # every call holds the model 300 ms
    assert ok[-1] >= 0.29 * len(ok) and wall >= 0.29 * len(ok)  # ... one after the other


def test_stop_ends_the_call_in_progress_and_refuses_the_queued_ones() -> None:
    """
    stop() waits for the model call in progress only; the requests queued behind it get 503.

    Each call holds the model for 10 minutes here: a stop that waited for the queue (as once:
    every admitted request, up to 30 s) or for the hold would hang this test.
    """
    import threading
    import time

    fast = 'simulated:synth:duration=1,fps=2,width=128,height=96,error=0'
    body = chat_body(data_url(scene()))
    results: list[httpx.Response] = []
    lock = threading.Lock()
    with LvlmServer(fast, served_name=SERVED, max_pending=3, service_ms=600_000) as srv:
        def ask() -> None:
            r = httpx.post(f'{srv.url}/chat/completions', json=body, timeout=60.0)
            with lock:
                results.append(r)

        threads = [threading.Thread(target=ask) for _ in range(3)]
        for t in threads:
            t.start()
        def one_holds_the_model_and_two_wait() -> bool:
            return srv.calls_running == 3 and srv._model_lock.locked()

        wait_until = time.monotonic() + 30
        while not one_holds_the_model_and_two_wait() and time.monotonic() < wait_until:
            time.sleep(0.01)  # polling for the state, not waiting for it to happen
        assert one_holds_the_model_and_two_wait()
    for t in threads:
        t.join(30)
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 503, 503]
    refused = [r.json()['error'] for r in results if r.status_code == 503]
    assert [e['code'] for e in refused] == ['shutting_down', 'shutting_down']
