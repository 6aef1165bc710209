# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
frame_source_node: publishes a camera pan, an image folder, a video, a bag or the synthetic world.

Stands in for a camera driver in the demo, tests and evaluations: raw sensor_msgs/Image on
camera/image_raw (rgb8, bgr8 or mono8) or JPEG sensor_msgs/CompressedImage on
camera/image_raw/compressed, stamped with the current time, at a fixed rate.

A synthetic world (source synth:...) also asks its questions: each new question goes out on
edgevlm/question right after the frame before the first frame it belongs to (as the evaluation
replay sends them), and again whenever a new subscriber matches (camera_node subscribes volatile,
so a late joiner would not get it otherwise). The true answer of every frame goes out on
edgevlm/ground_truth, stamped like the frame. Set rate_hz to the world's fps so that world time
runs at wall time; at another rate the frames are simply played faster or slower.
"""

import cv2
from edgevlm_msgs.msg import GroundTruth
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from edgevlm_ros.core.images import encode_jpeg
from edgevlm_ros.core.stats import Counters
from edgevlm_ros.ros.conversions import stamp_to_ns, truth_to_msg
from edgevlm_ros.ros.diagnostics import ACTIVE, StatusReporter
from edgevlm_ros.ros.entry import run_node
from edgevlm_ros.ros.params import ParamSet, ParamSpec
from edgevlm_ros.ros.qos import LATCHED, RESULTS
from edgevlm_ros.ros.resend import ResendOnMatch
from edgevlm_ros.sim.frame_sources import SynthSource, open_source

ENCODE = {'rgb8': None, 'bgr8': cv2.COLOR_RGB2BGR, 'mono8': cv2.COLOR_RGB2GRAY}

PARAMS = [
    ParamSpec('source', 'builtin:pan', 'builtin:pan (a camera pan over real photos), '
              'synth:<key=value,...> (the synthetic world, e.g. synth:seed=0,pace=0.3; bare '
              'synth is the default world), an image folder, a video file or a rosbag2',
              read_only=True),
    ParamSpec('rate_hz', 10.0, "frames per second (for synth: the world's fps plays it in real "
              'time)', min=0.1, max=240.0, read_only=True),
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
    ParamSpec('publish_questions', True, "synth: publish the world's questions on "
              'edgevlm/question as they change', read_only=True),
    ParamSpec('publish_ground_truth', True, 'synth: publish the true answer of every frame on '
              'edgevlm/ground_truth', read_only=True),
]


class FrameSourceNode(Node):
    """Publishes frames from a source as a camera topic (and a synthetic world's questions)."""

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
        self._synth = self._frames if isinstance(self._frames, SynthSource) else None
        self._question_pub = self._truth_pub = None
        if self._synth is not None and p['publish_questions']:
            # Latched, so transient-local subscribers get it too; volatile ones (the camera's)
            # get the current question again when they match.
            self._question_pub = ResendOnMatch(self, String, 'edgevlm/question', LATCHED)
            self._send_question()
        if self._synth is not None and p['publish_ground_truth']:
            self._truth_pub = self.create_publisher(GroundTruth, 'edgevlm/ground_truth',
                                                    RESULTS)
        self._count = 0
        self._timer = self.create_timer(1.0 / p['rate_hz'], self._tick)
        self._status = StatusReporter(self, Counters(),
                                      gauges=lambda: {'frames_published': self._count})
        self._status.set_state(ACTIVE)
        self.get_logger().info(f"publishing {p['source']} at {p['rate_hz']:g} Hz "
                               f"({p['transport']}, {p['encoding']})")
        if self._synth is not None:
            spec = self._synth.spec
            self.get_logger().info(
                f'synthetic world {spec}: {spec.frames} frames at {spec.fps:g} fps'
                f"{'' if spec.fps == p['rate_hz'] else ' (played at rate_hz, not in real time)'}"
                f"; questions {'on' if self._question_pub else 'off'}, ground truth "
                f"{'on' if self._truth_pub else 'off'}")

    def _send_question(self) -> None:
        """The next frame's question, if it is a new one (the synth source decides)."""
        text = self._synth.question_to_send()
        if text is not None:
            self._question_pub.publish(String(data=text))

    def _tick(self) -> None:
        rgb = next(self._frames, None)
        if rgb is None:
            self.get_logger().info(f'source finished after {self._count} frames')
            self._status.set_state(ACTIVE, f'source finished after {self._count} frames')
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
        if self._truth_pub is not None:
            truth = self._synth.truth(stamp_to_ns(header.stamp))
            self._truth_pub.publish(truth_to_msg(truth, header.frame_id))
        if self._question_pub is not None:
            # After this frame, before the next: the camera takes this one with the old question.
            self._send_question()

    def destroy_node(self) -> None:
        # The heartbeat thread must not publish into a node being destroyed. (A constructor
        # that failed early has none.)
        if getattr(self, '_status', None) is not None:
            self._status.destroy()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(FrameSourceNode, 'frame_source', args)
