# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
camera_node: any camera topic in, Steps out.

Decodes each frame once (raw in any supported encoding, or JPEG/PNG), samples at the step rate by
the camera's own stamps, resizes to the working resolution, stamps a step id that increases by one
per Step, pairs it with the current question and publishes edgevlm/step.

Step ids start at the node's start time in milliseconds since the epoch, not at 0: a camera node
that is restarted (respawn) goes on with larger ids, so the edge sees no camera restart and keeps
its history and KV cache, and late cloud answers of the old ids still find their slots. (Ids grow
by one per Step, at most a few per second: they cannot catch up with the clock's milliseconds.)
"""

from collections.abc import Callable
import time

from edgevlm_msgs.msg import Step
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from edgevlm_ros.core.images import ImageDecodeError, resize_max_side
from edgevlm_ros.core.sampling import StepSampler
from edgevlm_ros.core.stats import Counters
from edgevlm_ros.ros.conversions import compressed_to_rgb, image_to_rgb, rgb_to_image, stamp_to_s
from edgevlm_ros.ros.diagnostics import ACTIVE, StatusReporter
from edgevlm_ros.ros.entry import run_node
from edgevlm_ros.ros.params import ParamSet, ParamSpec
from edgevlm_ros.ros.qos import LATEST_FRAME, QUESTION, STEP_PUBLISHER


def _non_empty(value: str) -> str | None:
    return None if value.strip() else 'question must not be empty'


PARAMS = [
    ParamSpec('input_transport', 'raw', 'camera input: raw sensor_msgs/Image on camera/image_raw, '
              'or compressed sensor_msgs/CompressedImage on camera/image_raw/compressed',
              choices=('raw', 'compressed'), read_only=True),
    ParamSpec('step_rate_hz', 2.0, 'Steps per second of camera time (frames in between are '
              'dropped here, never queued)', min=0.01, max=120.0),
    ParamSpec('max_side', 512, 'working resolution: the longer image side after resizing, px',
              min=32, max=4096),
    ParamSpec('question', 'What is in front of the robot?', 'question paired with every step '
              'until one arrives on edgevlm/question', check=_non_empty),
    ParamSpec('first_step_wait_s', 1.0, 'after a (re)start, frames are dropped for up to this '
              'long while nothing subscribes to edgevlm/step yet: a Step published before the '
              'edge has matched this new publisher is lost (0 = publish at once)',
              min=0.0, max=10.0),
]


class CameraNode(Node):
    """Turns a camera stream into numbered, sampled, resized Steps with a question."""

    def __init__(self) -> None:
        super().__init__('camera')
        self.counters = Counters()
        self.params = ParamSet(self, PARAMS)
        self._question = self.params['question']
        self._first_step_id = time.time_ns() // 1_000_000
        self._next_step_id = self._first_step_id
        self._first_frame_at: float | None = None  # monotonic, for first_step_wait_s
        self._sampler = StepSampler(self.params['step_rate_hz'])
        self._step_pub = self.create_publisher(Step, 'edgevlm/step', STEP_PUBLISHER)
        if self.params['input_transport'] == 'raw':
            self.create_subscription(Image, 'camera/image_raw', self._on_image, LATEST_FRAME)
        else:
            self.create_subscription(CompressedImage, 'camera/image_raw/compressed',
                                     self._on_compressed, LATEST_FRAME)
        self.create_subscription(String, 'edgevlm/question', self._on_question, QUESTION)
        self.add_post_set_parameters_callback(self._on_params)
        self._status = StatusReporter(self, self.counters, gauges=lambda: {
            'next_step_id': self._next_step_id, 'question': self._question})
        self._status.set_state(ACTIVE)
        self.get_logger().info(
            f"camera: {self.params['input_transport']} frames -> steps at "
            f"{self.params['step_rate_hz']:g} Hz, max side {self.params['max_side']} px")

    def _on_params(self, params) -> None:
        for p in params:
            if p.name == 'question':
                self._question = p.value

    def _on_question(self, msg: String) -> None:
        if not msg.data.strip():
            self.counters.inc('empty_question')
            self.get_logger().warning(
                f'ignored an empty question on edgevlm/question; still asking "{self._question}"')
            return
        if msg.data.strip() == self._question:
            return  # a publisher sent it again to a reader that matched later (ResendOnMatch)
        self._question = msg.data.strip()
        self.get_logger().info(f'question is now "{self._question}"')

    def _on_image(self, msg: Image) -> None:
        self._on_frame(msg.header, lambda: image_to_rgb(msg))

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._on_frame(msg.header, lambda: compressed_to_rgb(msg))

    def _on_frame(self, header, decode: Callable[[], np.ndarray]) -> None:
        """Sample first, decode only the frames that become steps."""
        self.counters.inc('frames_received')
        self._stamp_if_missing(header)
        if self._nobody_listens_yet():
            return
        if not self._due(header):
            return
        try:
            rgb = decode()
        except ImageDecodeError as e:
            self.counters.inc('bad_image')
            self.get_logger().warning(f'dropped a camera frame: {e}', throttle_duration_sec=5.0)
            return
        self._publish_step(header, rgb)

    def _nobody_listens_yet(self) -> bool:
        """Hold the first Step (up to first_step_wait_s) until a subscriber has matched.

        A respawned camera has a new Step publisher; the running edge matches it only after
        discovery (0.1-1 s here). The question, re-sent to new readers, often arrives meanwhile.
        """
        if self._next_step_id != self._first_step_id or self._step_pub.get_subscription_count():
            return False
        now = time.monotonic()
        if self._first_frame_at is None:
            self._first_frame_at = now
        if now - self._first_frame_at >= self.params['first_step_wait_s']:
            return False
        self.counters.inc('frames_before_subscriber')
        return True

    def _stamp_if_missing(self, header) -> None:
        # Some drivers leave stamps at zero; latency and sampling need a time, so use arrival.
        if header.stamp.sec == 0 and header.stamp.nanosec == 0:
            header.stamp = self.get_clock().now().to_msg()
            if self.counters.inc('unstamped_frames') == 1:
                self.get_logger().warning('camera frames carry no stamp; using arrival time')

    def _due(self, header) -> bool:
        """Sample by camera time so that replays at any speed give the same steps."""
        self._sampler.rate_hz = self.params['step_rate_hz']
        if not self._sampler.due(stamp_to_s(header.stamp)):
            self.counters.inc('frames_between_steps')
            return False
        return True

    def _publish_step(self, header, rgb) -> None:
        rgb = resize_max_side(rgb, self.params['max_side'])
        step = Step(header=header, step_id=self._next_step_id, question=self._question,
                    image=rgb_to_image(rgb, header))
        self._step_pub.publish(step)
        if self._next_step_id == self._first_step_id:
            self.get_logger().info(f'first step published ({rgb.shape[1]}x{rgb.shape[0]})')
        self._next_step_id += 1
        self.counters.inc('steps_published')

    def destroy_node(self) -> None:
        # The heartbeat thread must not publish into a node being destroyed. (A constructor
        # that failed early has none.)
        if getattr(self, '_status', None) is not None:
            self._status.destroy()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(CameraNode, 'camera', args)
