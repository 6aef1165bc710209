# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Visual Focus geometry: carry LVLM boxes from the frame they were drawn on to the newest frame.

Rules (DESIGN.md §1, item 2):

* Frames are kept as small grey images in a ring keyed by step id (at most `capacity`).
* Boxes drawn on frames[0] are carried to frames[-1] by sparse optical flow: corners inside each
  box are tracked frame to frame with pyramidal Lucas-Kanade, and only points that pass a
  forward-backward check are trusted. Per box, a robust (median) translation and scale move it.
  A box with too few surviving points follows the global motion of all tracked points (a
  RANSAC similarity fit), or stays in place when even that fails.
* Every box grows with age (`growth_per_s` of the frame size per second, split over both sides)
  and more when its tracking was weak. Confidence in [0, 1] falls linearly with age (0 at
  max_age_s) and with the share of lost points.
* Propagation older than `max_age_s` is refused (None): a stale mask must not be applied.
* Boxes are clipped to the frame; boxes that mostly leave it are dropped.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
import math
import threading

import cv2
import numpy as np

from .images import to_grey
from .regions import Box

# Lucas-Kanade settings for ~160 px wide frames: a 15 px window over 3 pyramid levels follows
# motions of up to ~40 px per frame pair.
_LK_WIN = (15, 15)
_LK_LEVELS = 3
_LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)
_GLOBAL_CORNERS = 100
_CORNER_QUALITY = 0.01
_CORNER_MIN_DISTANCE = 2
_MIN_BOX_SIDE_PX = 5          # smaller boxes get no corners of their own
_MIN_GLOBAL_POINTS = 6
_SCALE_LIMITS = (0.25, 4.0)   # one propagation cannot zoom more than this
_MAX_RESIDUAL_PX = 2.0        # median misfit of a box's points to its similarity move
_MIN_GLOBAL_INLIERS = 0.5     # share of points that must agree on the global motion


@dataclass
class Frame:
    """A small grey frame kept for flow."""

    step_id: int
    stamp_s: float
    grey: np.ndarray


class FrameRing:
    """
    The newest `capacity` frames by step id, stored grey at `width` pixels wide.

    Frames may arrive out of order; they are kept sorted by step id. A duplicate step id, or an
    id older than everything kept once the ring is full, is refused (add returns False).
    Thread-safe.
    """

    def __init__(self, capacity: int = 64, width: int = 160) -> None:
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        if width < 16:
            raise ValueError(f'width must be >= 16 px for optical flow, got {width}')
        self._capacity = int(capacity)
        self._width = int(width)
        self._ids: list[int] = []
        self._frames: dict[int, Frame] = {}
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def width(self) -> int:
        return self._width

    def add(self, step_id: int, stamp_s: float, rgb_or_grey: np.ndarray) -> bool:
        """Store a frame (downscaled grey); return False if refused (duplicate or too old)."""
        sid = int(step_id)
        grey = to_grey(rgb_or_grey, self._width)
        with self._lock:
            if sid in self._frames:
                return False
            if len(self._ids) >= self._capacity and sid < self._ids[0]:
                return False
            bisect.insort(self._ids, sid)
            self._frames[sid] = Frame(sid, float(stamp_s), grey)
            while len(self._ids) > self._capacity:
                del self._frames[self._ids.pop(0)]
            return True

    def get(self, step_id: int) -> Frame | None:
        with self._lock:
            return self._frames.get(int(step_id))

    def newest(self) -> Frame | None:
        with self._lock:
            return self._frames[self._ids[-1]] if self._ids else None

    def span(self, from_step: int, to_step: int) -> list[Frame]:
        """Kept frames with from_step <= step id <= to_step, ascending."""
        with self._lock:
            lo = bisect.bisect_left(self._ids, from_step)
            hi = bisect.bisect_right(self._ids, to_step)
            return [self._frames[sid] for sid in self._ids[lo:hi]]

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()
            self._frames.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)


@dataclass
class Propagation:
    """Boxes carried to the target frame, with how much to trust them."""

    boxes: list[Box]
    confidence: float
    age_s: float
    tracked_points: int  # points that survived tracking to the target frame (all boxes + global)
    # The same boxes moved but not grown (for carrying on frame by frame without the margins
    # adding up), and the mean tracking quality without the age factor.
    tracked: list[Box] = field(default_factory=list)
    quality: float = 0.0


class BoxPropagator:
    """Carries boxes across frames with sparse optical flow; see the module docstring."""

    def __init__(self, growth_per_s: float = 0.05, max_age_s: float = 5.0, min_points: int = 5,
                 max_corners: int = 40, weak_margin: float = 0.02,
                 fb_threshold_px: float = 1.0, min_visible: float = 0.25) -> None:
        if not (growth_per_s >= 0 and math.isfinite(growth_per_s)):
            raise ValueError(f'growth_per_s must be >= 0, got {growth_per_s}')
        if not max_age_s > 0:
            raise ValueError(f'max_age_s must be > 0, got {max_age_s}')
        if min_points < 2:
            raise ValueError(f'min_points must be >= 2 (scale needs pairs), got {min_points}')
        if max_corners < min_points:
            raise ValueError(f'max_corners ({max_corners}) must be >= min_points ({min_points})')
        if not 0 <= weak_margin <= 0.5:
            raise ValueError(f'weak_margin must be in [0, 0.5], got {weak_margin}')
        if not fb_threshold_px > 0:
            raise ValueError(f'fb_threshold_px must be > 0, got {fb_threshold_px}')
        if not 0 <= min_visible <= 1:
            raise ValueError(f'min_visible must be in [0, 1], got {min_visible}')
        self.growth_per_s = float(growth_per_s)
        self.max_age_s = float(max_age_s)
        self.min_points = int(min_points)
        self.max_corners = int(max_corners)
        self.weak_margin = float(weak_margin)
        self.fb_threshold_px = float(fb_threshold_px)
        self.min_visible = float(min_visible)

    def propagate(self, boxes: list[Box], frames: list[Frame]) -> Propagation | None:
        """
        Carry boxes drawn on frames[0] to frames[-1].

        Returns None for no frames or when the span is older than max_age_s. frames must be in
        step order (FrameRing.span gives that); a frame of another size is resized to the first.
        """
        if not frames:
            return None
        # A clock that steps back must not make a mask look younger than 0.
        age = max(0.0, float(frames[-1].stamp_s) - float(frames[0].stamp_s))
        if age > self.max_age_s:
            return None
        valid = [b.clipped() for b in boxes]
        valid = [b for b in valid if not b.is_empty]
        if len(frames) == 1:
            return Propagation(boxes=valid, confidence=1.0 if valid else 0.0, age_s=age,
                               tracked_points=0)
        if not valid:
            return Propagation(boxes=[], confidence=0.0, age_s=age, tracked_points=0)

        greys = _same_size([f.grey for f in frames])
        h, w = greys[0].shape
        start, owner, seeded = self._seed(greys[0], valid)
        end, alive = self._track(greys, start)
        global_tf, global_quality = self._global_motion(start[alive], end[alive])

        out: list[Box] = []
        tracked: list[Box] = []
        qualities: list[float] = []
        for i, box in enumerate(valid):
            mine = (owner == i) & alive
            n = int(mine.sum())
            moved: Box | None = None
            quality = 0.0
            if n >= self.min_points:
                moved, residual = _similarity_move(box, start[mine], end[mine], w, h)
                if residual <= _MAX_RESIDUAL_PX:
                    quality = n / max(1, seeded[i])
                else:
                    moved = None  # the points disagree: chance matches, not motion
            if moved is None and global_tf is not None:
                moved = _affine_move(box, global_tf, w, h)
                quality = 0.5 * global_quality
            if moved is None:
                moved = box
            grown = self.grow(moved, age, quality)
            if grown is None:
                continue  # the object has (mostly) left the frame
            out.append(Box(grown.x_min, grown.y_min, grown.x_max, grown.y_max,
                           box.label, box.score))
            tracked.append(moved.clipped())
            qualities.append(quality)

        quality = sum(qualities) / len(qualities) if qualities else 0.0
        return Propagation(boxes=out, confidence=self.confidence(age, quality) if qualities
                           else 0.0, age_s=age, tracked_points=int(alive.sum()),
                           tracked=tracked, quality=quality)

    def grow(self, box: Box, age_s: float, quality: float) -> Box | None:
        """
        Grow a moved box by its uncertainty; None when it has (mostly) left the frame.

        Margin per side: half of growth_per_s * age, plus up to weak_margin for weak tracking.
        """
        margin = 0.5 * self.growth_per_s * age_s + self.weak_margin * (1.0 - quality)
        grown = box.expanded(margin, margin)
        clipped = grown.clipped()
        if clipped.is_empty or clipped.area < self.min_visible * grown.area:
            return None
        return clipped

    def confidence(self, age_s: float, quality: float) -> float:
        """Trust in carried boxes: falls linearly with age to 0 at max_age_s, times quality."""
        return float(min(1.0, max(0.0, (1.0 - age_s / self.max_age_s) * quality)))

    # --- internals -------------------------------------------------------------------------

    def _seed(self, grey: np.ndarray, boxes: list[Box]
              ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Corners per box (owner = box index) plus global corners (owner = -1)."""
        h, w = grey.shape
        pts: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        seeded: list[int] = []
        for i, box in enumerate(boxes):
            x1, y1, x2, y2 = box.to_pixels(w, h)
            found = None
            if x2 - x1 >= _MIN_BOX_SIDE_PX and y2 - y1 >= _MIN_BOX_SIDE_PX:
                # Corners of the box's sub-image: cheaper than a full-frame mask.
                found = cv2.goodFeaturesToTrack(
                    grey[y1:y2, x1:x2], maxCorners=self.max_corners,
                    qualityLevel=_CORNER_QUALITY, minDistance=_CORNER_MIN_DISTANCE)
            if found is not None and len(found):
                p = found.reshape(-1, 2) + np.array([x1, y1], dtype=np.float32)
                pts.append(p)
                owners.append(np.full(len(p), i, dtype=np.int32))
                seeded.append(len(p))
            else:
                seeded.append(0)
        found = cv2.goodFeaturesToTrack(grey, maxCorners=_GLOBAL_CORNERS,
                                        qualityLevel=_CORNER_QUALITY, minDistance=4)
        if found is not None and len(found):
            p = found.reshape(-1, 2)
            pts.append(p)
            owners.append(np.full(len(p), -1, dtype=np.int32))
        if not pts:
            return np.zeros((0, 2), np.float32), np.zeros(0, np.int32), seeded
        return (np.concatenate(pts).astype(np.float32), np.concatenate(owners), seeded)

    def _track(self, greys: list[np.ndarray], start: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Track points frame to frame; return final positions and which survived."""
        cur = start.copy()
        alive = np.ones(len(start), dtype=bool)
        for prev_img, next_img in zip(greys[:-1], greys[1:]):
            idx = np.flatnonzero(alive)
            if len(idx) == 0:
                break
            p0 = cur[idx].reshape(-1, 1, 2)
            p1, st1, _ = cv2.calcOpticalFlowPyrLK(
                prev_img, next_img, p0, None, winSize=_LK_WIN, maxLevel=_LK_LEVELS,
                criteria=_LK_CRITERIA)
            back, st2, _ = cv2.calcOpticalFlowPyrLK(
                next_img, prev_img, p1, None, winSize=_LK_WIN, maxLevel=_LK_LEVELS,
                criteria=_LK_CRITERIA)
            fb = np.linalg.norm((p0 - back).reshape(-1, 2), axis=1)
            ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < self.fb_threshold_px)
            cur[idx[ok]] = p1.reshape(-1, 2)[ok]
            alive[idx[~ok]] = False
        return cur, alive

    def _global_motion(self, src: np.ndarray, dst: np.ndarray
                       ) -> tuple[np.ndarray | None, float]:
        """RANSAC similarity over all surviving points; (2x3 matrix, inlier share) or None."""
        if len(src) < _MIN_GLOBAL_POINTS:
            return None, 0.0
        tf, inliers = cv2.estimateAffinePartial2D(
            src.reshape(-1, 1, 2), dst.reshape(-1, 1, 2), method=cv2.RANSAC,
            ransacReprojThreshold=1.5)
        if tf is None or inliers is None or not np.all(np.isfinite(tf)):
            return None, 0.0
        share = float(inliers.mean())
        if share < _MIN_GLOBAL_INLIERS or int(inliers.sum()) < _MIN_GLOBAL_POINTS:
            return None, 0.0  # no motion most points agree on (e.g. the view was lost)
        return tf, share


def _same_size(greys: list[np.ndarray]) -> list[np.ndarray]:
    h, w = greys[0].shape
    return [g if g.shape == (h, w) else cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA)
            for g in greys]


def _similarity_move(box: Box, src: np.ndarray, dst: np.ndarray, w: int, h: int
                     ) -> tuple[Box, float]:
    """
    Move a box by the median scale and translation of its points.

    Returns the moved box and the median misfit of the points to that move (pixels).
    """
    scale = 1.0
    if len(src) >= 2:
        i, j = np.triu_indices(len(src), k=1)
        d0 = np.linalg.norm(src[i] - src[j], axis=1)
        d1 = np.linalg.norm(dst[i] - dst[j], axis=1)
        usable = d0 > 2.0  # ratios of near-coincident points are noise
        if usable.any():
            scale = float(np.median(d1[usable] / d0[usable]))
    scale = min(_SCALE_LIMITS[1], max(_SCALE_LIMITS[0], scale))
    cx, cy = box.center()
    c = np.array([cx * w, cy * h])
    # Each point predicts where the centre went: dst - scale * (src - c).
    votes = dst - scale * (src - c)
    new_c = np.median(votes, axis=0)
    residual = float(np.median(np.linalg.norm(votes - new_c, axis=1)))
    half_w = 0.5 * box.width * scale
    half_h = 0.5 * box.height * scale
    nx, ny = new_c[0] / w, new_c[1] / h
    return Box(nx - half_w, ny - half_h, nx + half_w, ny + half_h, box.label, box.score), residual


def _affine_move(box: Box, tf: np.ndarray, w: int, h: int) -> Box:
    """Apply a 2x3 pixel transform to the box corners; return their bounding box."""
    x1, y1, x2, y2 = box.x_min * w, box.y_min * h, box.x_max * w, box.y_max * h
    corners = np.array([[x1, y1, 1.0], [x2, y1, 1.0], [x1, y2, 1.0], [x2, y2, 1.0]])
    moved = corners @ tf.T
    xs, ys = moved[:, 0] / w, moved[:, 1] / h
    return Box(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()),
               box.label, box.score)
