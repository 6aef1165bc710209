# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""cloud_bridge_node's embedded stand-in: where and in which precision it runs its model."""

import pytest

pytestmark = pytest.mark.ros


@pytest.fixture
def made(monkeypatch):
    """LvlmServer replaced by a recorder that serves nothing (the bridge only needs its URL)."""
    from edgevlm_ros.lvlm import server

    servers = []

    class RecordedServer:
        def __init__(self, **kwargs) -> None:
            self.kwargs = kwargs
            self.stopped = False
            servers.append(self)

        def start(self) -> str:
            return 'http://127.0.0.1:9/v1'

        def stop(self) -> None:
            self.stopped = True

    monkeypatch.setattr(server, 'LvlmServer', RecordedServer)
    return servers


def _bridge(*params: str):
    from edgevlm_ros.cloud_bridge_node import CloudBridgeNode
    import rclpy

    args = ['--ros-args']
    for p in params:
        args += ['-p', p]
    rclpy.init(args=args)
    try:
        return CloudBridgeNode()
    except BaseException:
        rclpy.try_shutdown()
        raise


def test_embedded_device_and_dtype_reach_the_lvlm_server(made):
    import rclpy

    node = _bridge('embedded_device:=cuda:1', 'embedded_dtype:=bfloat16',
                   'embedded_model:=tiny-cloud', 'embedded_threads:=2')
    try:
        (server,) = made
        assert server.kwargs == dict(model='tiny-cloud', host='127.0.0.1', port=0,
                                     served_name='edgevlm-local-lvlm', num_threads=2,
                                     device='cuda:1', dtype='bfloat16')
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    assert server.stopped


def test_embedded_defaults_are_auto(made):
    import rclpy

    node = _bridge()
    try:
        assert (made[0].kwargs['device'], made[0].kwargs['dtype']) == ('auto', 'auto')
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


@pytest.mark.parametrize(('param', 'reason'), [
    ('embedded_device:=gpu0', "device must be one of auto, cpu, cuda or cuda:N, got 'gpu0'"),
    ('embedded_dtype:=int8', "embedded_dtype='int8' is not one of auto, float32"),
])
def test_a_bad_embedded_device_or_dtype_stops_the_bridge_with_the_reason(made, param, reason):
    with pytest.raises(ValueError, match='invalid parameters') as e:
        _bridge(param)
    assert reason in str(e.value) and not made
