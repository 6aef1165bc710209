# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The edgevlm_ros graph: camera_node, edge_svlm_node, cloud_bridge_node, context_fusion_node.

ros2 launch edgevlm_ros edgevlm.launch.py camera_topic:=/my_camera/image_raw
    edge_model:=/models/SmolVLM-256M-Instruct cloud_url:=http://gpu-box:8000/v1
    cloud_model:=Qwen/Qwen2.5-VL-7B-Instruct

The edge runtime: edge_backend (transformers, onnxruntime, openvino, auto), edge_device (auto,
cpu, cuda, cuda:N), edge_dtype, edge_quantize (none, int8), edge_providers (ONNX Runtime execution
providers, comma-separated). Their defaults are config/edgevlm.yaml's; like every launch argument
they win over the params file.

With use_frame_source:=true a frame_source_node stands in for the camera (built-in pan by default;
source:=synth:seed=0,pace=0.3 plays the synthetic world and asks its questions).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

STRATEGIES = ['edge_only', 'cloud_only', 'cloud_stale', 'offload', 'edgevlm',
              'replacement_only', 'focus_only', 'edgevlm_arbitrated']
# backends/base.py's BACKENDS, DTYPES and QUANTIZATIONS (a launch file imports no package code).
BACKENDS = ['auto', 'transformers', 'onnxruntime', 'openvino']
DTYPES = ['auto', 'float32', 'float16', 'bfloat16']
QUANTIZATIONS = ['none', 'int8']


def generate_launch_description():
    arg = LaunchConfiguration
    params_file = arg('params_file')
    sim = {'use_sim_time': arg('use_sim_time')}
    camera_remap = [('camera/image_raw', arg('camera_topic')),
                    ('camera/image_raw/compressed', [arg('camera_topic'), '/compressed'])]
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of every node and edgevlm/ topic'),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([FindPackageShare('edgevlm_ros'), 'config',
                                                'edgevlm.yaml']),
            description='YAML parameters of all nodes'),
        DeclareLaunchArgument('strategy', default_value='edgevlm', choices=STRATEGIES,
                              description='how answers are produced'),
        DeclareLaunchArgument('edge_model', default_value='tiny',
                              description='edge SVLM: tiny, a local checkpoint dir or a hub id'),
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
        Node(package='edgevlm_ros', executable='frame_source_node', name='frame_source',
             namespace=arg('namespace'), output='screen',
             parameters=[params_file, sim, {'source': arg('source'),
                                            'transport': arg('input_transport')}],
             remappings=camera_remap, condition=IfCondition(arg('use_frame_source'))),
        Node(package='edgevlm_ros', executable='camera_node', name='camera',
             namespace=arg('namespace'), output='screen',
             parameters=[params_file, sim, {'input_transport': arg('input_transport')}],
             remappings=camera_remap),
        Node(package='edgevlm_ros', executable='edge_svlm_node', name='edge_svlm',
             namespace=arg('namespace'), output='screen',
             parameters=[params_file, sim, {'model': arg('edge_model'),
                                            'strategy': arg('strategy'),
                                            'backend': arg('edge_backend'),
                                            'device': arg('edge_device'),
                                            'dtype': arg('edge_dtype'),
                                            'quantize': arg('edge_quantize'),
                                            'providers': arg('edge_providers')}]),
        Node(package='edgevlm_ros', executable='cloud_bridge_node', name='cloud_bridge',
             namespace=arg('namespace'), output='screen',
             parameters=[params_file, sim, {'base_url': arg('cloud_url'),
                                            'model': arg('cloud_model'),
                                            'network_profile': arg('network_profile'),
                                            'embedded_model': arg('embedded_model'),
                                            'strategy': arg('strategy')}]),
        Node(package='edgevlm_ros', executable='context_fusion_node', name='context_fusion',
             namespace=arg('namespace'), output='screen', parameters=[params_file, sim]),
    ])
