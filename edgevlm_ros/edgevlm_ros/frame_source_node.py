# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
frame_source_node: publishes a built-in camera pan, an image folder, a video or a bag as a camera.

Stands in for a camera driver in the demo, tests and evaluations: raw sensor_msgs/Image on
camera/image_raw (rgb8, bgr8 or mono8) or JPEG sensor_msgs/CompressedImage on
camera/image_raw/compressed, stamped with the current time, at a fixed rate.
"""

import cv2
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from edgevlm_ros.core.images import encode_jpeg
from edgevlm_ros.frame_sources import open_source
from edgevlm_ros.ros_entry import run_node
from edgevlm_ros.ros_params import ParamSet, ParamSpec

ENCODE = {'rgb8': None, 'bgr8': cv2.COLOR_RGB2BGR, 'mono8': cv2.COLOR_RGB2GRAY}

PARAMS = [
    ParamSpec('source', 'builtin:pan', 'builtin:pan (a camera pan over real photos), an image '
              'folder, a video file or a rosbag2', read_only=True),
    ParamSpec('rate_hz', 10.0, 'frames per second', min=0.1, max=240.0, read_only=True),
    ParamSpec('width', 640, 'frame width of builtin:pan, px', min=32, max=8192, read_only=True),
    ParamSpec('height', 480, 'frame height of builtin:pan, px', min=32, max=8192,
              read_only=True),
    ParamSpec('pan_px_per_frame', 4.0, 'builtin:pan speed, px per frame', min=0.0, max=512.0,
              read_only=True),
    ParamSpec('transport', 'raw', 'raw Image or JPEG CompressedImage',
              choices=('raw', 'compressed'), read_only=True),
    ParamSpec('encoding', 'rgb8', 'raw image encoding', choices=tuple(ENCODE), read_only=True),
    ParamSpec('loop', True, 'start again at the end', read_only=True),
    ParamSpec('bag_topic', '', 'image topic to read from a bag (empty: the first one)',
              read_only=True),
    ParamSpec('frame_id', 'camera', 'header.frame_id of published frames', read_only=True),
]


class FrameSourceNode(Node):
    """Publishes frames from a file-backed source as a camera topic."""

    def __init__(self) -> None:
        super().__init__('frame_source')
        self.params = ParamSet(self, PARAMS)
        p = self.params
        self._frames = open_source(p['source'], p['width'], p['height'], p['pan_px_per_frame'],
                                   p['loop'], p['bag_topic'])
        if p['transport'] == 'raw':
            self._pub = self.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
        else:
            self._pub = self.create_publisher(CompressedImage, 'camera/image_raw/compressed',
                                              qos_profile_sensor_data)
        self._count = 0
        self._timer = self.create_timer(1.0 / p['rate_hz'], self._tick)
        self.get_logger().info(f"publishing {p['source']} at {p['rate_hz']:g} Hz "
                               f"({p['transport']}, {p['encoding']})")

    def _tick(self) -> None:
        rgb = next(self._frames, None)
        if rgb is None:
            self.get_logger().info(f'source finished after {self._count} frames')
            self._timer.cancel()
            return
        header = Header(frame_id=self.params['frame_id'],
                        stamp=self.get_clock().now().to_msg())
        if self.params['transport'] == 'compressed':
            msg = CompressedImage(header=header, format='jpeg')
            msg.data = encode_jpeg(rgb, 90)
        else:
            encoding = self.params['encoding']
            img = rgb if ENCODE[encoding] is None else cv2.cvtColor(rgb, ENCODE[encoding])
            channels = 1 if img.ndim == 2 else img.shape[2]
            msg = Image(header=header, height=img.shape[0], width=img.shape[1],
                        encoding=encoding, is_bigendian=0, step=img.shape[1] * channels)
            msg.data = img.tobytes()
        self._pub.publish(msg)
        self._count += 1


def main(args=None) -> int:
    return run_node(FrameSourceNode, 'frame_source', args)
