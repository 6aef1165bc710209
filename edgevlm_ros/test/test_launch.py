# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The package's launch files, executed against launch_runner's stand-in for the launch API."""

import os
from pathlib import Path
import subprocess
import sys

from edgevlm_ros.tooling import launch_runner
import pytest

LAUNCH_DIR = Path(__file__).resolve().parents[1] / 'launch'


def _plan(**args):
    desc = launch_runner.load(LAUNCH_DIR / 'edgevlm.launch.py')
    procs, _, resolved = launch_runner.plan(desc, args, env={'AMENT_PREFIX_PATH': ''})
    return {p.name: p for p in procs}, resolved


def _ros_args(proc) -> list[str]:
    return proc.cmd[proc.cmd.index('--ros-args') + 1:]


def test_default_graph_is_the_four_nodes_without_a_frame_source():
    procs, resolved = _plan(params_file='/tmp/p.yaml', edge_model='/models/m')
    assert list(procs) == ['camera', 'edge_svlm', 'cloud_bridge', 'context_fusion']
    assert resolved['cloud_url'] == 'embedded'


def test_defaults_are_the_demos_strategy_and_the_micro_svlm_on_the_frame_source():
    from edgevlm_ros.tooling.demo import DEMO_ARGS

    procs, resolved = _plan(params_file='/tmp/p.yaml', use_frame_source='true')
    assert resolved['strategy'] == DEMO_ARGS['strategy'] == 'edgevlm_arbitrated'
    edge = _ros_args(procs['edge_svlm'])
    assert f"model:={DEMO_ARGS['edge_model']}" in edge and 'strategy:=edgevlm_arbitrated' in edge


def test_a_robot_camera_without_edge_model_stops_with_one_line_naming_it(tmp_path):
    # The shipped models know only the synthetic world: on a robot camera the first launch says
    # what to set instead of answering noise.
    done = _launcher(tmp_path, 'edgevlm_ros', 'edgevlm.launch.py',
                     'camera_topic:=/camera/color/image_raw')
    assert done.returncode == 1 and done.stdout == ''
    assert done.stderr.startswith('[ERROR] [launch]: edge_model is not set: give edge_model:=')
    assert len(done.stderr.splitlines()) == 1


def test_a_bad_choice_stops_with_one_line_and_nothing_started(tmp_path):
    done = _launcher(tmp_path, 'edgevlm_ros', 'edgevlm.launch.py', 'use_frame_source:=true',
                     'strategy:=bogus')
    assert done.returncode == 1 and done.stdout == ''  # no process planned, none started
    assert done.stderr.splitlines() == [
        '[ERROR] [launch]: Argument "strategy" provided value "bogus" is not valid. Valid '
        'options are: edge_only, cloud_only, cloud_stale, offload, edgevlm, replacement_only, '
        'focus_only, edgevlm_arbitrated, edgevlm_carried']


def test_every_node_gets_the_respawn_arguments():
    procs, _ = _plan(params_file='/tmp/p.yaml', use_frame_source='true')
    assert len(procs) == 5
    for p in procs.values():
        assert (p.respawn, p.respawn_delay, p.respawn_max_retries) == (True, 1.0, 5), p.name
    procs, _ = _plan(params_file='/tmp/p.yaml', use_frame_source='true', respawn='false',
                     respawn_delay='0.25', respawn_max_retries='-1')
    for p in procs.values():
        assert (p.respawn, p.respawn_delay, p.respawn_max_retries) == (False, 0.25, -1), p.name
    with pytest.raises(ValueError, match='respawn_max_retries:=2.5 is not an integer'):
        _plan(params_file='/tmp/p.yaml', use_frame_source='true', respawn_max_retries='2.5')


def test_launch_arguments_reach_node_parameters_after_the_params_file():
    procs, _ = _plan(params_file='/tmp/p.yaml', use_frame_source='true', strategy='edge_only',
                     edge_model='/models/SmolVLM-256M-Instruct', namespace='robot1',
                     cloud_url='http://127.0.0.1:9/v1', camera_topic='/front/image_raw')
    assert 'frame_source' in procs
    edge = _ros_args(procs['edge_svlm'])
    assert edge.index('--params-file') < edge.index('strategy:=edge_only')
    assert 'model:=/models/SmolVLM-256M-Instruct' in edge
    assert '__ns:=/robot1' in edge and '__node:=edge_svlm' in edge
    assert 'base_url:=http://127.0.0.1:9/v1' in _ros_args(procs['cloud_bridge'])
    camera = _ros_args(procs['camera'])
    assert 'camera/image_raw:=/front/image_raw' in camera
    assert 'camera/image_raw/compressed:=/front/image_raw/compressed' in camera


def test_invalid_strategy_and_unknown_arguments_are_refused():
    with pytest.raises(ValueError, match='strategy'):
        _plan(params_file='/tmp/p.yaml', strategy='magic')
    with pytest.raises(launch_runner.LaunchArgumentError, match='stratgy'):
        _plan(params_file='/tmp/p.yaml', stratgy='edge_only')


def test_unsupported_launch_actions_fail_loudly():
    class Include(launch_runner.Action):
        pass

    desc = launch_runner.LaunchDescription([Include()])
    with pytest.raises(NotImplementedError, match='Include'):
        launch_runner.plan(desc, {})


def test_substitutions_and_conditions_resolve_like_launch():
    L = launch_runner
    desc = L.LaunchDescription([
        L.DeclareLaunchArgument('flag', default_value='false'),
        L.DeclareLaunchArgument('name', default_value=L.EnvironmentVariable('WHO',
                                                                            default_value='x')),
        L.SetEnvironmentVariable('GREETING', ['hi ', L.LaunchConfiguration('name')]),
        L.LogInfo(msg=['name is ', L.LaunchConfiguration('name')]),
        L.ExecuteProcess(cmd=['echo', L.LaunchConfiguration('name')], name='on',
                         condition=L.IfCondition(L.LaunchConfiguration('flag'))),
        L.ExecuteProcess(cmd=['echo', 'off'], name='off',
                         condition=L.UnlessCondition(L.LaunchConfiguration('flag'))),
    ])
    procs, logs, args = L.plan(desc, {'flag': 'true'}, env={'WHO': 'robot'})
    assert [p.name for p in procs] == ['on'] and procs[0].cmd == ['echo', 'robot']
    assert procs[0].env['GREETING'] == 'hi robot'
    assert logs == ['name is robot'] and args == {'flag': 'true', 'name': 'robot'}


def test_launch_cli_dry_run_prints_every_process(capsys):
    code = launch_runner.main([str(LAUNCH_DIR / 'edgevlm.launch.py'), 'params_file:=/tmp/p.yaml',
                               'use_frame_source:=true', '--dry-run'])
    out = capsys.readouterr().out
    assert code == 0
    for name in ('frame_source', 'camera', 'edge_svlm', 'cloud_bridge', 'context_fusion'):
        assert f'[launch] {name}:' in out


def _launcher(cwd, *args):
    """The installed edgevlm_launch from a plain shell (no AMENT_PREFIX_PATH), --dry-run."""
    env = {k: v for k, v in os.environ.items() if k != 'AMENT_PREFIX_PATH'}
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), 'edgevlm_launch'),
                           *args, '--dry-run'],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_installed_launcher_finds_the_package_from_a_plain_shell(tmp_path):
    done = _launcher(tmp_path, 'edgevlm_ros', 'edgevlm.launch.py', 'use_frame_source:=true')
    assert done.returncode == 0, done.stderr
    assert '[launch] edge_svlm:' in done.stdout


EDGE_RUNTIME_ARGS = {'edge_backend': 'backend', 'edge_device': 'device', 'edge_dtype': 'dtype',
                     'edge_quantize': 'quantize', 'edge_providers': 'providers'}


def test_edge_runtime_arguments_default_to_the_yaml_and_reach_the_edge_node():
    import yaml

    config = yaml.safe_load((LAUNCH_DIR.parent / 'config' / 'edgevlm.yaml').read_text())
    edge_yaml = config['/**/edge_svlm']['ros__parameters']
    procs, resolved = _plan(params_file='/tmp/p.yaml', edge_model='/models/m')
    edge = _ros_args(procs['edge_svlm'])
    for arg, param in EDGE_RUNTIME_ARGS.items():
        # The launch argument always wins over the params file: its default must be the yaml's.
        assert resolved[arg] == str(edge_yaml[param]), arg
        assert f'{param}:={edge_yaml[param]}' in edge
    procs, _ = _plan(params_file='/tmp/p.yaml', edge_model='/models/m', edge_backend='onnxruntime',
                     edge_device='cuda:0',
                     edge_dtype='float16', edge_quantize='int8',
                     edge_providers='CUDAExecutionProvider,CPUExecutionProvider')
    edge = _ros_args(procs['edge_svlm'])
    for text in ('backend:=onnxruntime', 'device:=cuda:0', 'dtype:=float16', 'quantize:=int8',
                 'providers:=CUDAExecutionProvider,CPUExecutionProvider'):
        assert text in edge
    assert edge.index('--params-file') < edge.index('backend:=onnxruntime')


def test_edge_runtime_choices_are_the_backend_interfaces():
    from edgevlm_ros.backends import base

    desc = launch_runner.load(LAUNCH_DIR / 'edgevlm.launch.py')
    declared = {a.name: a for a in desc.entities
                if isinstance(a, launch_runner.DeclareLaunchArgument)}
    assert tuple(declared['edge_backend'].choices) == base.BACKENDS
    assert tuple(declared['edge_dtype'].choices) == base.DTYPES
    assert tuple(declared['edge_quantize'].choices) == base.QUANTIZATIONS
    with pytest.raises(ValueError, match='edge_backend'):
        _plan(params_file='/tmp/p.yaml', edge_backend='tensorrt')
    with pytest.raises(ValueError, match='edge_quantize'):
        _plan(params_file='/tmp/p.yaml', edge_quantize='int2')
