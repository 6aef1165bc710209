# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The edgevlm_ros graph: camera_node, edge_svlm_node, cloud_bridge_node, context_fusion_node.

ros2 launch edgevlm_ros edgevlm.launch.py camera_topic:=/my_camera/image_raw
    edge_model:=/models/SmolVLM-256M-Instruct cloud_url:=http://gpu-box:8000/v1
    cloud_model:=Qwen/Qwen2.5-VL-7B-Instruct

On a robot camera edge_model must be given: the shipped micro SVLM knows only the synthetic world,
so without it the launch stops with one line saying what to set. With use_frame_source:=true the
edge model defaults to micro. The strategy defaults to edgevlm_arbitrated, as in `make demo`.

Every node is respawned when it exits (respawn:=true), respawn_delay:=1.0 s later, at most
respawn_max_retries:=5 times over the launch (-1: no limit), with launch's own ExecuteProcess
rules. launch takes respawn_delay and respawn_max_retries as numbers, not substitutions, so the
nodes are made in an OpaqueFunction that reads those arguments.

The edge runtime: edge_backend (transformers, onnxruntime, openvino, auto), edge_device (auto,
cpu, cuda, cuda:N), edge_dtype, edge_quantize (none, int8, int4), edge_providers (ONNX Runtime
execution providers, comma-separated). Their defaults are config/edgevlm.yaml's; like every
launch argument they win over the params file.

With use_frame_source:=true a frame_source_node stands in for the camera (built-in pan by default;
source:=synth:seed=0,pace=0.3 plays the synthetic world and asks its questions).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, TextSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

STRATEGIES = ['edge_only', 'cloud_only', 'cloud_stale', 'offload', 'edgevlm',
              'replacement_only', 'focus_only', 'edgevlm_arbitrated', 'edgevlm_carried']
# backends/base.py's BACKENDS, DTYPES and QUANTIZATIONS (a launch file imports no package code).
BACKENDS = ['auto', 'transformers', 'onnxruntime', 'openvino']
DTYPES = ['auto', 'float32', 'float16', 'bfloat16']
QUANTIZATIONS = ['none', 'int8', 'int4']
# The edge model when edge_model is not given and the camera is the frame source.
FRAME_SOURCE_EDGE_MODEL = 'micro'


def _number(context, name, kind):
    """A launch argument as the number launch wants (respawn_delay, respawn_max_retries)."""
    text = LaunchConfiguration(name).perform(context)
    try:
        return kind(text)
    except ValueError:
        what = 'an integer' if kind is int else 'a number'
        raise ValueError(f'launch argument {name}:={text} is not {what}') from None


def _edge_model(context):
    """edge_model, or micro on the frame source; on a robot camera, one line naming what to set."""
    if LaunchConfiguration('edge_model').perform(context):
        return LaunchConfiguration('edge_model')
    if LaunchConfiguration('use_frame_source').perform(context) == 'true':
        return TextSubstitution(text=FRAME_SOURCE_EDGE_MODEL)
    raise RuntimeError('edge_model is not set: give edge_model:=<SmolVLM checkpoint dir or hub '
                       'id> for the robot camera (the shipped micro SVLM knows only the '
                       'synthetic world: use_frame_source:=true source:=synth:seed=0 shows it)')


def _nodes(context):
    arg = LaunchConfiguration
    params_file = arg('params_file')
    sim = {'use_sim_time': arg('use_sim_time')}
    camera_remap = [('camera/image_raw', arg('camera_topic')),
                    ('camera/image_raw/compressed', [arg('camera_topic'), '/compressed'])]
    # launch's respawn knobs on every node (respawn_delay and respawn_max_retries as numbers).
    keep = {'respawn': arg('respawn'), 'respawn_delay': _number(context, 'respawn_delay', float),
            'respawn_max_retries': _number(context, 'respawn_max_retries', int)}
    return [
        Node(package='edgevlm_ros', executable='frame_source_node', name='frame_source',
             namespace=arg('namespace'), output='screen',
             parameters=[params_file, sim, {'source': arg('source'),
                                            'transport': arg('input_transport')}],
             remappings=camera_remap, condition=IfCondition(arg('use_frame_source')), **keep),
        Node(package='edgevlm_ros', executable='camera_node', name='camera',
             namespace=arg('namespace'), output='screen',
             parameters=[params_file, sim, {'input_transport': arg('input_transport')}],
             remappings=camera_remap, **keep),
        Node(package='edgevlm_ros', executable='edge_svlm_node', name='edge_svlm',
             namespace=arg('namespace'), output='screen',
             parameters=[params_file, sim, {'model': _edge_model(context),
                                            'strategy': arg('strategy'),
                                            'backend': arg('edge_backend'),
                                            'device': arg('edge_device'),
                                            'dtype': arg('edge_dtype'),
                                            'quantize': arg('edge_quantize'),
                                            'providers': arg('edge_providers')}], **keep),
        Node(package='edgevlm_ros', executable='cloud_bridge_node', name='cloud_bridge',
             namespace=arg('namespace'), output='screen',
             parameters=[params_file, sim, {'base_url': arg('cloud_url'),
                                            'model': arg('cloud_model'),
                                            'network_profile': arg('network_profile'),
                                            'embedded_model': arg('embedded_model'),
                                            'strategy': arg('strategy')}], **keep),
        Node(package='edgevlm_ros', executable='context_fusion_node', name='context_fusion',
             namespace=arg('namespace'), output='screen', parameters=[params_file, sim], **keep),
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of every node and edgevlm/ topic'),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([FindPackageShare('edgevlm_ros'), 'config',
                                                'edgevlm.yaml']),
            description='YAML parameters of all nodes'),
        DeclareLaunchArgument('strategy', default_value='edgevlm_arbitrated', choices=STRATEGIES,
                              description='how answers are produced'),
        DeclareLaunchArgument('edge_model', default_value='',
                              description='edge SVLM: a local checkpoint dir or a hub id; micro '
                                          '(shipped, knows only the synthetic world) or tiny '
                                          '(random weights). Required with a robot camera; '
                                          'micro with use_frame_source:=true'),
        DeclareLaunchArgument('edge_backend', default_value='transformers', choices=BACKENDS,
                              description='runtime of the edge model (onnxruntime/openvino run '
                                          'an ONNX export: edgevlm export-onnx)'),
        DeclareLaunchArgument('edge_device', default_value='auto',
                              description='where the edge model runs: auto, cpu, cuda, cuda:N'),
        DeclareLaunchArgument('edge_dtype', default_value='auto', choices=DTYPES,
                              description='edge model dtype (auto: float16 on cuda, float32 on '
                                          'cpu)'),
        DeclareLaunchArgument('edge_quantize', default_value='none', choices=QUANTIZATIONS,
                              description='edge model weight quantization'),
        DeclareLaunchArgument('edge_providers', default_value='auto',
                              description='ONNX Runtime execution providers, comma-separated '
                                          '(auto = the runtime default for the device)'),
        DeclareLaunchArgument('cloud_url', default_value='embedded',
                              description='OpenAI-compatible API root, or embedded'),
        DeclareLaunchArgument('embedded_model', default_value='tiny-cloud',
                              description='what the embedded cloud serves (cloud_url:=embedded): '
                                          'tiny-cloud, a checkpoint dir, simulated:synth:<world> '
                                          'or simulated:<bag> (the simulated LVLM, ground truth '
                                          'of the synthetic world)'),
        DeclareLaunchArgument('cloud_model', default_value='edgevlm-local-lvlm',
                              description='model name the cloud server knows'),
        DeclareLaunchArgument('network_profile', default_value='none',
                              description='emulated network: none, fixed:<ms>, '
                                          'jitter:<mean_ms>,<std_ms>, trace:<name|csv> '
                                          '(+ @<Mbit/s>, +outage:<a>-<b>)'),
        DeclareLaunchArgument('use_sim_time', default_value='false', choices=['true', 'false'],
                              description='run every node on /clock (a bag replay at a '
                                          'speed-up)'),
        DeclareLaunchArgument('camera_topic', default_value='camera/image_raw',
                              description='camera image topic (compressed: <topic>/compressed)'),
        DeclareLaunchArgument('input_transport', default_value='raw',
                              choices=['raw', 'compressed'],
                              description='subscribe raw Image or CompressedImage'),
        DeclareLaunchArgument('use_frame_source', default_value='false',
                              choices=['true', 'false'],
                              description='start frame_source_node as the camera'),
        DeclareLaunchArgument('source', default_value='builtin:pan',
                              description='frame_source_node source: builtin:pan, '
                                          'synth:<key=value,...> (the synthetic world with its '
                                          'questions; no spaces), an image folder, a video or '
                                          'a bag'),
        DeclareLaunchArgument('respawn', default_value='true', choices=['true', 'false'],
                              description='start a node again when it exits, on any exit while '
                                          "launch runs (ros2 launch's respawn)"),
        DeclareLaunchArgument('respawn_delay', default_value='1.0',
                              description='seconds between a node exiting and its respawn'),
        DeclareLaunchArgument('respawn_max_retries', default_value='5',
                              description='respawns of each node over the whole launch (never '
                                          'reset); -1: no limit'),
        OpaqueFunction(function=_nodes),
    ])
