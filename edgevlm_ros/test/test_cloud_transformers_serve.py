# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The cloud side against a server this project does not write: ``transformers serve``.

One ``transformers serve`` process per module, bound to 127.0.0.1 on a free port, pinned to the
tiny SmolVLM (random weights, so answers are random words). It shows that the request the
project's client builds (system prompt, JPEG data URL, ``max_tokens``, ``temperature``) is
accepted by a third-party OpenAI-compatible server, that the image really reaches the model, and
that the bridge node works against it from two robot namespaces sharing the one endpoint.
"""

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
import os
from pathlib import Path
import subprocess
import sys
import time

from edgevlm_ros.cloud.openai_client import OpenAiVlmClient
import edgevlm_ros.tooling.launch_runner as launch_runner
from fault_server import free_port
import httpx
import numpy as np
import pytest

START_TIMEOUT_S = 120.0  # a cold import of torch + transformers on two busy cores
REQUEST_TIMEOUT_S = 60.0
QUESTION = 'What is in front of the robot?'


@dataclass
class Served:
    base_url: str  # OpenAI API root, ending in /v1
    model: str  # the name the server is pinned to (the model directory)
    log: Path


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f'http://127.0.0.1:{port}/health', timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False


def _frame(seed: int = 0, h: int = 96, w: int = 128) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def served(tiny_edge_model, tmp_path_factory) -> Iterator[Served]:
    """``transformers serve`` of the tiny SmolVLM on 127.0.0.1; always stopped at the end."""
    port = free_port()
    log_dir = tmp_path_factory.mktemp('transformers_serve')
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
    # The model argument pins the server: it preloads that model and refuses any other name.
    proc = launch_runner.Process('transformers_serve', [
        sys.executable, '-m', 'transformers.cli.transformers', 'serve', str(tiny_edge_model),
        '--host', '127.0.0.1', '--port', str(port), '--device', 'cpu'], env)
    popen = launch_runner.start([proc], log_dir)[0]
    log = log_dir / 'transformers_serve.log'
    try:
        # /v1/models scans the hub cache (HTTP 500 offline); /health answers once the model is in.
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(port):
            assert time.monotonic() < deadline, f'not up in time:\n{log.read_text()}'
            try:  # the pause between two polls doubles as a watch on the process
                code = popen.wait(0.1)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f'transformers serve exited with {code}:\n{log.read_text()}')
        yield Served(f'http://127.0.0.1:{port}/v1', str(tiny_edge_model), log)
    finally:
        launch_runner.stop([popen])


def _ask(served: Served, rgb: np.ndarray, model: str | None = None):
    async def run():
        async with OpenAiVlmClient(served.base_url, model or served.model, max_tokens=8,
                                   timeout_s=REQUEST_TIMEOUT_S) as client:
            return await client.ask(rgb, QUESTION)
    return asyncio.run(run())


def test_client_gets_an_answer_from_transformers_serve(served):
    result = _ask(served, _frame())
    assert result.status == 'ok', (result.error, served.log.read_text())
    assert result.answer.strip()
    assert result.error == ''
    assert result.round_trip_ms > 0
    assert result.request_bytes > 0 and result.response_bytes > 0
    # transformers serve reports the model as '<name>@<revision>'.
    assert result.model.startswith(served.model)


def test_the_image_in_the_clients_request_reaches_the_model(served):
    client = OpenAiVlmClient(served.base_url, served.model, max_tokens=1)
    body = client.build_request(_frame(1), QUESTION)
    without_image = {**body, 'messages': [
        body['messages'][0],
        {'role': 'user', 'content': [p for p in body['messages'][1]['content']
                                     if p['type'] != 'image_url']}]}
    usage = {}
    for name, b in (('with', body), ('without', without_image)):
        r = httpx.post(f'{served.base_url}/chat/completions', json=b, timeout=REQUEST_TIMEOUT_S)
        assert r.status_code == 200, r.text
        usage[name] = r.json()['usage']['prompt_tokens']
    # SmolVLM's image is at least one tile of 64 image tokens plus its markers.
    assert usage['with'] >= usage['without'] + 64, usage


def test_a_model_the_server_does_not_serve_is_a_clean_http_error(served):
    result = _ask(served, _frame(), model='no-such-model')
    assert result.status == 'http_error'
    assert 'HTTP 400' in result.error and 'no-such-model' in result.error
    assert result.answer == '' and result.boxes == []
    assert result.model == 'no-such-model'
    # The server keeps serving the model it has.
    assert _ask(served, _frame()).status == 'ok'


@pytest.mark.ros
def test_two_robot_namespaces_share_one_transformers_serve_endpoint(served, graph, probe):
    from edgevlm_msgs.msg import CloudResponse, Step
    from edgevlm_ros.ros.conversions import rgb_to_image
    from edgevlm_ros.ros.qos import RESULTS, STEP_PUBLISHER
    from std_msgs.msg import Header

    robots = {'robot1': 1000, 'robot2': 2000}  # namespace -> first step id
    bridges = [launch_runner.Node(
        package='edgevlm_ros', executable='cloud_bridge_node', name='cloud_bridge',
        namespace=ns, parameters=[{'base_url': served.base_url, 'model': served.model,
                                   'max_tokens': 8, 'timeout_s': REQUEST_TIMEOUT_S}])
        for ns in robots]
    procs, _, _ = launch_runner.plan(launch_runner.LaunchDescription(bridges), {})
    for proc, ns in zip(procs, robots):
        proc.name = f'cloud_bridge_{ns}'  # one log file per robot
    graph.start(procs)

    responses = {ns: probe.listen(CloudResponse, f'/{ns}/edgevlm/cloud_response', RESULTS)
                 for ns in robots}
    publishers = {ns: probe.node.create_publisher(Step, f'/{ns}/edgevlm/step', STEP_PUBLISHER)
                  for ns in robots}
    next_id = dict(robots)
    image = rgb_to_image(_frame(2), Header(frame_id='camera'))

    def publish_steps() -> None:
        for ns, pub in publishers.items():
            pub.publish(Step(header=Header(stamp=probe.node.get_clock().now().to_msg()),
                             step_id=next_id[ns], question=QUESTION, image=image))
            next_id[ns] += 1

    # Steps keep coming, like a camera's; the bridges drop those that find a request in flight.
    probe.node.create_timer(0.2, publish_steps)

    def ok(ns: str) -> list:
        return [r for r in responses[ns] if r.status == CloudResponse.STATUS_OK]
    assert probe.until(lambda: all(ok(ns) for ns in robots), 90), (
        {ns: (len(responses[ns]), [(r.status, r.error) for r in responses[ns][-3:]],
              graph.popen(f'cloud_bridge_{ns}').poll(), graph.log(f'cloud_bridge_{ns}'))
         for ns in robots}, served.log.read_text()[-2000:])

    for ns, first_id in robots.items():
        # Each robot hears only answers about its own steps.
        assert all(first_id <= r.step_id < first_id + 1000 for r in responses[ns])
        answer = ok(ns)[0]
        assert answer.answer.strip()
        assert answer.model.startswith(served.model)
        assert answer.round_trip_ms > 0
        assert answer.question == QUESTION
