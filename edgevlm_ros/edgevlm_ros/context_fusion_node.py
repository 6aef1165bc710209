# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
context_fusion_node: turns late cloud answers into context the edge can use now.

It keeps a ring of small grey frames by step id. A CloudResponse for step j becomes a ContextUpdate
(the answer compressed to a token budget) for history slot j, and its boxes, drawn on frame j, are
carried frame by frame to the newest step by sparse optical flow (growing with age and uncertainty)
and published as a FocusMask for every new step until they are older than max_age_s.
"""

from dataclasses import dataclass

from edgevlm_msgs.msg import CloudResponse, ContextUpdate, FocusMask, Step
from rclpy.node import Node

from edgevlm_ros.core.context import COMPRESSION_MODES, compress_answer
from edgevlm_ros.core.focus import BoxPropagator, FrameRing
from edgevlm_ros.core.images import ImageDecodeError
from edgevlm_ros.core.regions import Box
from edgevlm_ros.core.stats import Counters
from edgevlm_ros.ros.conversions import (
    box_to_region,
    image_to_rgb,
    region_to_box,
    s_to_stamp,
    stamp_to_s,
)
from edgevlm_ros.ros.diagnostics import ACTIVE, StatusReporter
from edgevlm_ros.ros.entry import run_node
from edgevlm_ros.ros.params import ParamSet, ParamSpec
from edgevlm_ros.ros.qos import EVERY_FRAME, RESULTS

# Most cloud boxes carried at once (8 boxes cost about 2 ms per frame, see bench/fusion.py).
MAX_TRACKED_BOXES = 16

PARAMS = [
    ParamSpec('replacement.enabled', True, 'publish ContextUpdate for cloud answers'),
    ParamSpec('replacement.max_tokens', 24, 'budget of a compressed cloud answer, counted in '
              'words (this node has no SVLM tokenizer; the edge caps its history in tokens)',
              min=1, max=4096),
    ParamSpec('replacement.compression', 'smart', 'how a cloud answer is cut to the budget: '
              'smart (leading sentences, then the entities only the cut sentences named, box '
              'labels first), sentences (leading sentences only), truncate (word prefix)',
              choices=COMPRESSION_MODES),
    ParamSpec('focus.enabled', True, 'publish FocusMask from cloud boxes'),
    ParamSpec('focus.max_age_s', 5.0, 'stop carrying boxes older than this, s', min=0.01,
              max=600.0),
    ParamSpec('focus.growth_per_s', 0.05, 'box margin growth per second of age (fraction of '
              'the frame)', min=0.0, max=1.0),
    ParamSpec('frames.capacity', 64, 'small grey frames kept for motion compensation', min=2,
              max=4096, read_only=True),
    ParamSpec('frames.width', 160, 'width of the kept grey frames, px', min=32, max=1280,
              read_only=True),
]


@dataclass
class _Tracked:
    """Cloud boxes as carried so far: where they are (moved, not grown), how well tracked."""

    source_step_id: int
    source_stamp_s: float
    at_step_id: int
    boxes: list[Box]
    qualities: list[float]  # per box, from the newest hop (recovers after an occlusion)


class ContextFusionNode(Node):
    """Compresses cloud answers into ContextUpdates and carries cloud boxes to the newest frame."""

    def __init__(self) -> None:
        super().__init__('context_fusion')
        self.counters = Counters()
        self.params = ParamSet(self, PARAMS, on_change=self._on_params)
        self._ring = FrameRing(self.params['frames.capacity'], self.params['frames.width'])
        self._propagator = self._make_propagator()
        self._tracked: _Tracked | None = None
        self._newest_header = None
        self._update_pub = self.create_publisher(ContextUpdate, 'edgevlm/context_update',
                                                 RESULTS)
        self._mask_pub = self.create_publisher(FocusMask, 'edgevlm/focus_mask', RESULTS)
        self.create_subscription(Step, 'edgevlm/step', self._on_step, EVERY_FRAME)
        self.create_subscription(CloudResponse, 'edgevlm/cloud_response', self._on_cloud,
                                 RESULTS)
        # Gauges run on the heartbeat thread: read _tracked once, the executor may clear it.
        self._status = StatusReporter(self, self.counters, gauges=lambda: {
            'frames_kept': len(self._ring),
            'tracking_source_step': t.source_step_id if (t := self._tracked) else -1})
        self._status.set_state(ACTIVE)
        self.get_logger().info(
            f"context fusion: replacement {'on' if self.params['replacement.enabled'] else 'off'}"
            f", focus {'on' if self.params['focus.enabled'] else 'off'}, keeping "
            f"{self.params['frames.capacity']} frames")

    def _make_propagator(self) -> BoxPropagator:
        return BoxPropagator(growth_per_s=self.params['focus.growth_per_s'],
                             max_age_s=self.params['focus.max_age_s'])

    def _on_params(self, changed: dict) -> None:
        if 'focus.growth_per_s' in changed or 'focus.max_age_s' in changed:
            self._propagator = self._make_propagator()

    def _on_step(self, msg: Step) -> None:
        try:
            rgb = image_to_rgb(msg.image)
        except ImageDecodeError as e:
            self.counters.inc('bad_image')
            self.get_logger().warning(f'step {msg.step_id}: {e}', throttle_duration_sec=5.0)
            return
        newest = self._ring.newest()
        if newest is not None and msg.step_id <= newest.step_id:
            # Step ids went back: the camera node restarted. Old frames and boxes mean nothing now.
            self.counters.inc('step_id_resets')
            self.get_logger().info(f'step ids restarted at {msg.step_id}; clearing frames')
            self._ring.clear()
            self._tracked = None
        self._ring.add(msg.step_id, stamp_to_s(msg.header.stamp), rgb)
        self._newest_header = msg.header
        self.counters.inc('frames_received')
        if not self.params['focus.enabled']:
            self._tracked = None
        if self._tracked is not None:
            self._carry_to(msg.step_id)

    def _on_cloud(self, msg: CloudResponse) -> None:
        if msg.status != CloudResponse.STATUS_OK:
            if msg.status != CloudResponse.STATUS_DROPPED:
                self.counters.inc('cloud_failures_seen')
            return
        now = self.get_clock().now().nanoseconds * 1e-9
        source_stamp = stamp_to_s(msg.header.stamp)
        if self.params['replacement.enabled'] and msg.answer.strip():
            # The objects the cloud grounded are what its answer relied on: keep their names.
            text = compress_answer(msg.answer, self.params['replacement.max_tokens'],
                                   entities=[r.label for r in msg.regions if r.label],
                                   mode=self.params['replacement.compression'])
            self._update_pub.publish(ContextUpdate(
                header=msg.header, step_id=msg.step_id, question=msg.question, text=text,
                age_s=float(now - source_stamp)))
            self.counters.inc('context_updates_published')
        if not self.params['focus.enabled']:
            return
        if self._tracked is not None and msg.step_id < self._tracked.source_step_id:
            self.counters.inc('stale_boxes_ignored')  # a newer cloud answer already steers focus
            return
        if not msg.regions:
            self._clear_focus(msg, source_stamp, now)
            return
        if self._ring.get(msg.step_id) is None:
            self.counters.inc('boxes_without_frame')
            self.get_logger().warning(
                f'cloud boxes for step {msg.step_id}: its frame is no longer kept '
                f"(frames.capacity {self.params['frames.capacity']}); not focusing",
                throttle_duration_sec=10.0)
            return
        # Tracking cost grows with the boxes: keep the best-scoring ones (the parser keeps at
        # most 64, but any node may publish a CloudResponse).
        regions = sorted(msg.regions, key=lambda r: -r.score)[:MAX_TRACKED_BOXES]
        if len(regions) < len(msg.regions):
            self.counters.inc('boxes_over_cap', len(msg.regions) - len(regions))
        self._tracked = _Tracked(msg.step_id, source_stamp, msg.step_id,
                                 boxes := [region_to_box(r) for r in regions],
                                 [1.0] * len(boxes))
        self.counters.inc('boxes_received')
        newest = self._ring.newest()
        if newest is not None:
            self._carry_to(newest.step_id)

    def _clear_focus(self, msg: CloudResponse, source_stamp: float, now: float) -> None:
        """
        A newer cloud answer grounds nothing ("0", "no", "not visible"): stop steering.

        The older boxes showed what an older answer rested on; kept, they pull the SVLM towards
        a place the object has left (measured: a count went 0 -> 1 for 4 steps, 2.5-4 s after
        the object left the frame). An empty mask replaces the edge node's current one.
        """
        if self._tracked is None:
            return
        self._tracked = None
        mask = FocusMask(source_step_id=msg.step_id, target_step_id=msg.step_id, regions=[],
                         age_s=float(max(0.0, now - source_stamp)), confidence=0.0,
                         quality=0.0)
        mask.header.stamp = msg.header.stamp
        if self._newest_header is not None:
            mask.header.frame_id = self._newest_header.frame_id
        self._mask_pub.publish(mask)
        self.counters.inc('focus_cleared')

    def _carry_to(self, step_id: int) -> None:
        """Move the tracked boxes from the frame they are on to frame step_id and publish them."""
        tr = self._tracked
        frames = self._ring.span(tr.at_step_id, step_id)
        if not frames or frames[0].step_id != tr.at_step_id or frames[-1].step_id != step_id:
            self.counters.inc('tracks_lost')
            self._tracked = None
            return
        target = frames[-1]
        # A clock that steps back must not make a mask younger than 0 (its boxes would shrink).
        age = max(0.0, target.stamp_s - tr.source_stamp_s)
        if age > self.params['focus.max_age_s']:
            self.counters.inc('tracks_expired')
            self._tracked = None
            return
        if len(frames) > 1:
            result = self._propagator.propagate(tr.boxes, frames)
            if result is None or not result.tracked:
                self.counters.inc('tracks_lost')
                if result is not None and result.cut:
                    self.counters.inc('scene_cuts')  # the view changed to another scene
                self._tracked = None
                return
            # Carry the motion-only boxes; margins are applied once below, from the total age,
            # so they do not add up hop after hop. Quality is the newest hop's, per box: a box
            # whose object was hidden for a while is trusted again once it is tracked again.
            tr.boxes, tr.qualities = result.tracked, result.qualities
            tr.at_step_id = step_id
        grown = [g for g in (self._propagator.grow(b, age, q)
                             for b, q in zip(tr.boxes, tr.qualities)) if g]
        if not grown:
            self.counters.inc('tracks_lost')
            self._tracked = None
            return
        mask = FocusMask(source_step_id=tr.source_step_id, target_step_id=step_id,
                         regions=[box_to_region(b) for b in grown], age_s=float(age),
                         confidence=self._propagator.confidence(age, min(tr.qualities)),
                         quality=float(min(tr.qualities)))
        mask.header.stamp = s_to_stamp(target.stamp_s)
        if self._newest_header is not None:
            mask.header.frame_id = self._newest_header.frame_id
        self._mask_pub.publish(mask)
        self.counters.inc('focus_masks_published')

    def destroy_node(self) -> None:
        # The heartbeat thread must not publish into a node being destroyed. (A constructor
        # that failed early has none.)
        if getattr(self, '_status', None) is not None:
            self._status.destroy()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(ContextFusionNode, 'context_fusion', args)
