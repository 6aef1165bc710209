# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
from glob import glob

from setuptools import find_packages, setup

package_name = 'edgevlm_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
        ('share/' + package_name + '/config/traces', glob('config/traces/*.csv')),
        # The trained micro SVLM (model spec 'micro'): checkpoint, processor and model card.
        ('share/' + package_name + '/weights/micro-svlm', glob('weights/micro-svlm/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='edgevlm_ros developers',
    maintainer_email='edgevlm@example.com',
    description='Edge SVLM + cloud LVLM with Context Transfer for ROS 2',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'camera_node = edgevlm_ros.camera_node:main',
            'edge_svlm_node = edgevlm_ros.edge_svlm_node:main',
            'cloud_bridge_node = edgevlm_ros.cloud_bridge_node:main',
            'context_fusion_node = edgevlm_ros.context_fusion_node:main',
            'frame_source_node = edgevlm_ros.frame_source_node:main',
            'lvlm_server = edgevlm_ros.lvlm.server:main',
            'edgevlm_demo = edgevlm_ros.tooling.demo:main',
            'edgevlm_launch = edgevlm_ros.tooling.launch_runner:main',
            'edgevlm = edgevlm_ros.eval.cli:main',
        ],
    },
)
