# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Visual Focus geometry: carry LVLM boxes from the frame they were drawn on to the newest frame.

Why one module of 900 lines: it is one tracker: ``BoxTracker`` and its optical-flow helpers are
most of it, and ``FrameRing`` and ``BoxPropagator`` are the small interface that
context_fusion_node and the replay engine call around it.

Rules (DESIGN.md §1, item 2):

* Frames are kept as small grey images in a ring keyed by step id (at most `capacity`).
* Boxes drawn on one frame are carried frame by frame (`BoxTracker`): each box by a robust
  similarity (median scale, rotation, translation) of corners inside it, tracked with pyramidal
  Lucas-Kanade and a forward-backward check. Points that stop moving with their box are dropped
  and new ones join only if they move with it, so an occluder passing in front of an object
  neither drags its box nor takes it over. A box with too few points of its own (hidden, or no
  texture) follows the global motion of all points (a RANSAC similarity: the camera), plus its
  own recent motion for a short while, or stays in place when even that fails.
* Each box also keeps its look from the frame it was drawn on (`_Template`: grey levels of its
  object's pixels, the silhouette when the object is flat-coloured) and looks for it every step
  within _SEARCH_PX of where it is predicted. A strong, distinct match moves a box that its own
  points do not carry (a flat-coloured object has no corners), or that they carry where its
  object is not seen; never onto a place another box holds. A box whose object is seen where it
  is has at least the match's score as quality; one whose object is not seen there (hidden,
  lost) at most _UNSEEN_QUALITY, whatever points (background) moved with it.
* Every box grows with age (`growth_per_s` of the frame size per second, split over both sides)
  and more when its tracking was weak. Confidence in [0, 1] falls linearly with age (0 at
  max_age_s) and with tracking quality (the share of the box's points still moving with it,
  raised by a strong match of its look, capped when its look is not found where it is).
* Propagation older than `max_age_s` is refused (None): a stale mask must not be applied.
* Boxes are clipped to the frame; boxes that mostly leave it are dropped.
* A scene cut (the global motion is lost and the global corners neither pass the
  forward-backward check nor find their patches any more) ends the track: no boxes, quality 0,
  and `Propagation.cut` says why. Callers end a track whose `tracked` is empty.
* Memory: the ring holds `capacity` small frames; a propagator keeps one track (one grey frame,
  at most max_corners points and one template the box's size per box, plus _GLOBAL_CORNERS).
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

# Lucas-Kanade settings for ~160 px wide frames: an 11 px window over 3 pyramid levels
# follows motions of up to ~40 px per frame pair.
_LK_WIN = (11, 11)
_LK_LEVELS = 3
_LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)
_GLOBAL_CORNERS = 40          # points kept for the camera's motion (refilled below half)
_GLOBAL_GRID = (5, 4)         # ... found per cell of this grid, so no one object dominates
_CORNER_QUALITY = 0.01
_CORNER_MIN_DISTANCE = 2
_MIN_BOX_SIDE_PX = 5          # smaller boxes get no corners of their own
_MIN_GLOBAL_POINTS = 6
_SCALE_LIMITS = (0.5, 2.0)    # one step cannot zoom more than this
_MAX_TURN = math.radians(30)  # nor turn more than this
_MAX_RESIDUAL_PX = 2.0        # median misfit of a box's points to its similarity move
_INLIER_PX = 1.0              # a point fits the box's move this step
_DRIFT_DECAY = 0.7            # per step; a steady misfit of 0.3 px/step drops a point
_DRIFT_PX = 1.0
_MIN_GLOBAL_INLIERS = 0.5     # share of points that must agree on the global motion
_REFILL_BELOW = 0.75          # a box looks for new points when it has fewer (x max_corners)
_ERR_FACTOR = 3.0             # LK patch error above this x the median (and the floor, grey
_ERR_FLOOR = 6.0              # levels per pixel) marks a point as unreliable this step
_SEED_INSET = 0.15            # new points are found this share of the box away from its rim
_MIN_SUPPORT = 0.3            # a box moves by its own points only with this share of them
_FULL_SUPPORT = 0.5           # below this share its own motion must agree with where it went
# Scene cut (another view: a camera cut, a new episode): no global motion, and fewer than
# _CUT_SHARE of the global corners pass the forward-backward check and fewer than that find a
# patch like their own (forward LK error <= _CUT_ERR grey levels per pixel). Both must
# collapse: a flat wall covering 3/8 of the view at once fails the backward flow of 92 % of
# the points (LK diverges next to it) but 38 % still find their patches beside it; a step of
# +40 grey levels in brightness changes every patch but a third still pass forward-backward.
# Measured at 160 px: normal synthetic-world steps (2 per second, 8 seeds) keep >= 0.65 of
# both, its episode switches <= 0.18 of both; median patch errors are 1-4 on normal steps and
# 17-35 across a cut.
_CUT_SHARE = 0.3
_CUT_ERR = 12.0
# Appearance (core.focus._Template): a flat-coloured object has no corners of its own, so points
# alone cannot follow it, and a box that lost its object gets background points that vouch for
# it. Each box keeps its look from the frame it was drawn on (the grey levels of its object's
# pixels) and looks for it every step around where it is predicted. Measured on the synthetic
# world at 160 px (flat objects of 10-15 px, JPEG 90), one step apart: a template's score at
# its object's true place has median 0.94 (0.72 at the 25th percentile), the best place more
# than _MISPLACED_PX away 0.32 at the 75th percentile (0.8 at the 90th: same-coloured
# objects), a hidden object's best place in the search window 0.46 at the 75th. (Grey
# correlation, TM_CCOEFF_NORMED, of the whole box and margin: median 0.73 at the true place,
# 0.58 elsewhere; the changing background around a small object rules it.)
_TEMPLATE_MARGIN_PX = 2       # around the box, so the object's silhouette is inside
_FLAT_STD = 6.0               # grey levels: a box's middle this even is a flat-coloured object,
_FLAT_TOL = 5.0               # ... whose silhouette is the pixels this near its grey level (at
#                               12 it took in background of a like grey: truth scores 0.74-0.92)
_MIN_MASK_PX = 12             # fewer pixels to compare say nothing
_MISPLACED_PX = 3             # a match's error is scaled by the template's misplaced this far
_MIN_CONTRAST = 8.0           # grey levels that misplacement must cost, else no template
_SEARCH_PX = 40               # around the prediction: the motion the LK settings follow
_MATCH_STRONG = 0.7           # a match this good moves a box short of own points, and vouches
_MATCH_DISTINCT = 0.2         # ... if the best other place (a look-alike) scores this much less
_MATCH_LOST = 0.3             # below this the object is not where its box is: the box's own
#                               points (background that joined it) cannot vouch for it
_UNSEEN_QUALITY = 0.5         # quality cap of a box whose object is not seen (what following
#                               the camera gives), below core.carry's 0.6
_TEMPLATE_UPDATE = 0.9        # a match this good renews the template (appearance drifts slowly)
_AGREE_PX = 2.0               # own points this close to a strong match keep their finer motion


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
    qualities: list[float] = field(default_factory=list)  # per box of `tracked`
    # The view changed to another scene on the way (see BoxTracker): no box was carried past it.
    cut: bool = False


class BoxPropagator:
    """
    Carries boxes across frames with sparse optical flow; see the module docstring.

    `propagate` keeps the track it last computed: when it is called with that call's `tracked`
    boxes and a span starting at that call's last frame (the same Frame object, as
    FrameRing.span returns it), it continues the track instead of starting again. Carrying boxes
    frame by frame then costs one flow step per frame, and the points, their history and the
    boxes' motion survive between calls (which is what keeps a box on its object while
    something passes in front of it). Only the newest track is kept. Thread-safe.
    """

    def __init__(self, growth_per_s: float = 0.05, max_age_s: float = 5.0, min_points: int = 5,
                 max_corners: int = 16, weak_margin: float = 0.02,
                 fb_threshold_px: float = 1.0, min_visible: float = 0.25,
                 max_coast_s: float = 1.5) -> None:
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
        if not (max_coast_s >= 0 and math.isfinite(max_coast_s)):
            raise ValueError(f'max_coast_s must be >= 0, got {max_coast_s}')
        self.growth_per_s = float(growth_per_s)
        self.max_age_s = float(max_age_s)
        self.min_points = int(min_points)
        self.max_corners = int(max_corners)
        self.weak_margin = float(weak_margin)
        self.fb_threshold_px = float(fb_threshold_px)
        self.min_visible = float(min_visible)
        self.max_coast_s = float(max_coast_s)
        self._track: BoxTracker | None = None
        self._lock = threading.Lock()

    def propagate(self, boxes: list[Box], frames: list[Frame]) -> Propagation | None:
        """
        Carry boxes drawn on frames[0] to frames[-1].

        Returns None for no frames or when the span is older than max_age_s. frames must be in
        step order (FrameRing.span gives that); a frame of another size is resized to the first.
        Ages, margins and confidence are those of this span (frames[0] to frames[-1]).
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
            # Nothing to carry: the boxes are where they were drawn, fully trusted.
            return Propagation(boxes=valid, confidence=1.0 if valid else 0.0, age_s=age,
                               tracked_points=0, tracked=list(valid),
                               quality=1.0 if valid else 0.0, qualities=[1.0] * len(valid))
        if not valid:
            return Propagation(boxes=[], confidence=0.0, age_s=age, tracked_points=0)
        with self._lock:
            track = self._track
            if track is None or track.frame is not frames[0] or track.boxes() != valid:
                track = BoxTracker(valid, frames[0], self)
            for frame in frames[1:]:
                track.step(frame)
            self._track = track
            return track.result(age)

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


@dataclass
class _Track:
    """One box being carried: its corners (an oriented box, pixels) and its own points."""

    label: str
    score: float
    corners: np.ndarray   # 4x2: the box as drawn, moved by every step's similarity
    points: np.ndarray    # Nx2 float32: corners of the image inside the box that moved with it
    drift: np.ndarray     # Nx2: each point's leaky sum of misfit to the box's motion
    ref: int              # points the box had when first seen (quality 1 at or above it)
    quality: float = 1.0
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # own motion, px/s
    measured: bool = False  # velocity was measured (else its 0 is only the prior of a new box)
    coast_s: float = 0.0  # time since the box last moved by its own points or its look
    template: _Template | None = None  # its look, to find it again; None: not usable


class BoxTracker:
    """
    Carries boxes frame by frame from the frame they were drawn on; `step` adds one frame.

    Per step, each box moves by a robust similarity (median scale, rotation and translation)
    of its own points, tracked with pyramidal Lucas-Kanade and a forward-backward check. Rules
    that keep a box on its object when something passes in front of it:

    * A point stays with its box only while it moves with the box: its misfit to the box's
      motion is summed with decay (`_DRIFT_DECAY`) and the point is dropped once that exceeds
      `_DRIFT_PX`. Points carried onto an occluder fall out within a step or two.
    * New points (seeded in the box when it has fewer than max_corners) join only if they moved
      with the box in their first step: corners of an occluder entering the box never join.
    * A point whose image patch changed much more than most (`_ERR_FACTOR`) is not trusted
      for that step: it is being covered or uncovered, its flow mixes two motions.
    * With too few own points (hidden object, no texture), or few that disagree with where the
      box was going, the box follows the global motion (a RANSAC similarity of corners spread
      over the image: the camera's motion), plus its own recent motion relative to it for up to
      max_coast_s (an object moving behind a pillar keeps going), else it stays.
    * Appearance: then its template is searched for within _SEARCH_PX of that prediction. A
      match scoring at least _MATCH_STRONG, and _MATCH_DISTINCT above any place more than
      _MISPLACED_PX away (no look-alike as good), moves the box there when its own points do
      not carry it (fewer than _FULL_SUPPORT), or carry it where its object is not seen
      (below _MATCH_LOST) while the match is more than _AGREE_PX off; it counts as the box's
      own motion (velocity, coasting). Boxes carried by their points are placed first, then
      the better seen: a match inside a box already placed this step is not taken (the
      object of a box hidden behind a look-alike is not that look-alike). Templates are
      renewed from matches of at least _TEMPLATE_UPDATE.
    * Quality: share of the box's first point count still moving with it (capped at 1), or half
      the global inlier share when it follows the global motion, 0 when it stays; at least the
      match score when its object is seen where the box is (>= _MATCH_STRONG within a pixel),
      at most _UNSEEN_QUALITY when it is not (< _MATCH_LOST). It falls while the object is
      hidden and recovers when it is seen again (or new points on it join again).
    * A box whose tracked extent is mostly outside the frame (less than min_visible) is dropped.
    * A scene cut drops every box and sets `cut`; later steps carry nothing (see _CUT_SHARE).
    """

    def __init__(self, boxes: list[Box], frame: Frame,
                 propagator: BoxPropagator | None = None) -> None:
        self._p = propagator if propagator is not None else BoxPropagator()
        self.frame = frame
        self.source_step_id = frame.step_id
        self.source_stamp_s = float(frame.stamp_s)
        self._grey = np.ascontiguousarray(frame.grey)
        h, w = self._grey.shape
        self._size = (w, h)
        self._tracks: list[_Track] = []
        for box in boxes:
            b = box.clipped()
            if b.is_empty:
                continue
            x1, y1, x2, y2 = b.x_min * w, b.y_min * h, b.x_max * w, b.y_max * h
            corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)
            pts = self._corners_in(corners, np.zeros((0, 2), np.float32), self._p.max_corners)
            self._tracks.append(_Track(b.label, b.score, corners, pts, np.zeros((len(pts), 2)),
                                       ref=max(self._p.min_points, len(pts)),
                                       template=_Template.take(self._grey, corners)))
        self._global = _spread_corners(self._grey, _GLOBAL_CORNERS)
        self.tracked_points = 0
        self.cut = False  # a scene cut was seen: the boxes were dropped there

    # --- views -----------------------------------------------------------------------------

    def moved(self) -> list[Box]:
        """The boxes now (axis-aligned around each moved box), normalised, not clipped."""
        w, h = self._size
        return [Box(float(t.corners[:, 0].min()) / w, float(t.corners[:, 1].min()) / h,
                    float(t.corners[:, 0].max()) / w, float(t.corners[:, 1].max()) / h,
                    t.label, t.score) for t in self._tracks]

    def boxes(self) -> list[Box]:
        """The boxes now, clipped to the frame (what Propagation.tracked reports)."""
        return [b.clipped() for b in self.moved()]

    def qualities(self) -> list[float]:
        return [t.quality for t in self._tracks]

    @property
    def age_s(self) -> float:
        """Seconds from the frame the boxes were drawn on to the current frame."""
        return max(0.0, float(self.frame.stamp_s) - self.source_stamp_s)

    def result(self, age_s: float | None = None) -> Propagation:
        """
        The boxes on the current frame, grown and trusted by their age.

        The age is the time since the source frame unless `age_s` gives another.
        """
        p = self._p
        age = self.age_s if age_s is None else float(age_s)
        moved, qualities = self.moved(), self.qualities()
        tracked = [b.clipped() for b in moved]
        # grow() clips the moved box itself and keeps its label and score.
        out = [g for g in (p.grow(m, age, q) for m, q in zip(moved, qualities)) if g is not None]
        quality = sum(qualities) / len(qualities) if qualities else 0.0
        return Propagation(boxes=out, confidence=p.confidence(age, quality) if qualities
                           else 0.0, age_s=age, tracked_points=self.tracked_points,
                           tracked=tracked, quality=quality, qualities=qualities, cut=self.cut)

    # --- one step --------------------------------------------------------------------------

    def step(self, frame: Frame) -> None:
        """Carry every box from the current frame to `frame` (the next one kept)."""
        nxt = frame.grey
        if nxt.shape != self._grey.shape:
            nxt = cv2.resize(nxt, self._size, interpolation=cv2.INTER_AREA)
        nxt = np.ascontiguousarray(nxt)
        dt = float(frame.stamp_s) - float(self.frame.stamp_s)
        dt = dt if dt > 0 and math.isfinite(dt) else 0.0
        p = self._p
        if self.cut:
            self._grey, self.frame, self.tracked_points = nxt, frame, 0
            return

        # Refill: candidates for boxes short of points, fresh global corners when few are left.
        candidates = [self._corners_in(t.corners, t.points, p.max_corners - len(t.points),
                                       inner=len(t.points) >= p.min_points)
                      if len(t.points) < _REFILL_BELOW * p.max_corners
                      else np.zeros((0, 2), np.float32) for t in self._tracks]
        if len(self._global) < _GLOBAL_CORNERS // 2:
            self._global = _spread_corners(self._grey, _GLOBAL_CORNERS)
        groups = [self._global] + [g for t, c in zip(self._tracks, candidates)
                                   for g in (t.points, c)]
        sizes = [len(g) for g in groups]
        start = np.concatenate(groups).astype(np.float32) if sum(sizes) else \
            np.zeros((0, 2), np.float32)
        end, ok, alike = _flow(self._grey, nxt, start, p.fb_threshold_px)
        # For the cut test: shares of the global corners that passed, and that found their patch.
        n_global = sizes[0]
        passed = float(ok[:n_global].mean()) if n_global else 1.0
        matched = float(alike[:n_global].mean()) if n_global else 1.0
        # Points whose flow window reaches over the image border next time are unreliable.
        m = _LK_WIN[0] // 2
        ok &= ((end[:, 0] >= m) & (end[:, 0] < self._size[0] - m)
               & (end[:, 1] >= m) & (end[:, 1] < self._size[1] - m))
        self.tracked_points = int(ok.sum())
        bounds = np.cumsum([0] + sizes)

        def part(k: int) -> slice:
            return slice(int(bounds[k]), int(bounds[k + 1]))

        # The camera's motion, from the points spread over the whole image only: box points
        # sit on the objects of interest, which may be the ones moving.
        g = part(0)
        global_tf, global_share = _global_motion(start[g][ok[g]], end[g][ok[g]])
        self._global = end[g][ok[g]]
        if (global_tf is None and n_global >= _MIN_GLOBAL_POINTS
                and max(passed, matched) < _CUT_SHARE):
            # Another scene: nothing here is where any box's object went.
            self.cut = True
            self._tracks = []
            self._grey, self.frame = nxt, frame
            return

        plans = [self._predict(t, start[part(1 + 2 * i)], end[part(1 + 2 * i)],
                               ok[part(1 + 2 * i)], global_tf, global_share, dt, nxt)
                 for i, t in enumerate(self._tracks)]
        # Boxes carried by their own points go first, then the better seen where predicted: a
        # place another box holds cannot be claimed by the look of one whose object is hidden
        # (a look-alike passing in front of it).
        order = sorted(range(len(plans)), key=lambda i: (not plans[i].anchored,
                                                          -plans[i].seen))
        taken: list[np.ndarray] = []
        for i in order:
            new = part(2 + 2 * i)
            self._move(self._tracks[i], plans[i], start[new], end[new], ok[new], taken)
            taken.append(self._tracks[i].corners)
        self._tracks = [t for t in self._tracks
                        if self._visible_share(t.corners) >= p.min_visible]
        self._grey = nxt
        self.frame = frame

    def _predict(self, t: _Track, src: np.ndarray, dst: np.ndarray, ok: np.ndarray,
                 global_tf: np.ndarray | None, global_share: float, dt: float,
                 nxt: np.ndarray) -> _Plan:
        """Where the box's points (or the camera and its coasting) take it, and its look there."""
        p = self._p
        centre = t.corners.mean(axis=0)
        drift = t.drift[ok]
        src, dst = src[ok], dst[ok]
        motion: np.ndarray | None = None
        support = 0.0
        if len(src) >= p.min_points:
            tf, residuals = _similarity(src, dst, centre)
            inliers = residuals <= _INLIER_PX
            if (int(inliers.sum()) >= max(p.min_points, _MIN_SUPPORT * t.ref)
                    and inliers.mean() >= 0.5 and float(np.median(residuals)) <= _MAX_RESIDUAL_PX):
                motion = tf
        coasting = t.velocity * dt if t.coast_s + dt <= p.max_coast_s else np.zeros(2)
        bg_shift = (_apply(global_tf, centre[None])[0] - centre if global_tf is not None
                    else np.zeros(2))
        if motion is not None:
            support = int(inliers.sum()) / t.ref
            own_shift = _apply(motion, centre[None])[0] - centre
            if support < _FULL_SUPPORT and np.linalg.norm(
                    own_shift - bg_shift - coasting) > _INLIER_PX:
                # Most of the object is hidden and its few visible points disagree with where
                # it was going: they are more likely dragged by the occluder than right.
                motion = None
        own = motion is not None
        fallback_quality = 0.0
        if motion is None:
            # Hidden or textureless: follow the camera, and the box's own recent motion for a
            # while; points that did not move that way are dropped by the drift rule.
            if global_tf is not None:
                motion = global_tf.copy()
                fallback_quality = 0.5 * global_share
            else:
                motion = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
            motion[:, 2] += coasting
        predicted = _apply(motion, centre[None])[0]
        look = _Look.find(t.template, nxt, predicted)
        return _Plan(src, dst, drift, motion, own, support, fallback_quality, bg_shift, dt,
                     look, look.score_at(predicted) if look is not None else 0.0)

    def _move(self, t: _Track, plan: _Plan, c_src: np.ndarray, c_dst: np.ndarray,
              c_ok: np.ndarray, taken: list[np.ndarray]) -> None:
        """Move the box by its plan (or to its look), update its quality, points and template."""
        p = self._p
        src, dst, drift, motion, look, dt = (plan.src, plan.dst, plan.drift, plan.motion,
                                             plan.look, plan.dt)
        centre = t.corners.mean(axis=0)
        # Appearance: a strong, distinct match of the box's template moves the box there when
        # its own points do not carry it, or carry it where its object is not seen (points on
        # something else); never onto a place another box already holds this step.
        by_look = False
        if look is not None and look.score >= _MATCH_STRONG and look.distinct:
            predicted = _apply(motion, centre[None])[0]
            off = look.centre - predicted
            free = not any(np.all((look.centre >= c.min(axis=0)) & (look.centre <= c.max(axis=0)))
                           for c in taken)
            if free and (not plan.anchored or (np.linalg.norm(off) > _AGREE_PX
                                               and plan.seen < _MATCH_LOST)):
                motion = motion.copy()
                motion[:, 2] += off
                by_look = True
        if plan.own or by_look:
            drift = _DRIFT_DECAY * drift + (dst - _apply(motion, src)) if len(src) else drift
            stay = np.linalg.norm(drift, axis=1) <= _DRIFT_PX
            t.quality = min(1.0, int(stay.sum()) / t.ref)
            shift = _apply(motion, centre[None])[0] - centre
            if dt > 0 and (by_look or plan.anchored):
                rel = (shift - plan.bg_shift) / dt
                # The first measurement replaces the prior: averaged with it, an object hidden
                # right after its box was drawn was followed at half its speed.
                t.velocity = 0.5 * t.velocity + 0.5 * rel if t.measured else rel
                t.measured = True
            t.coast_s = 0.0
        else:
            t.quality = plan.fallback_quality
            t.coast_s += dt
            if t.coast_s > p.max_coast_s:
                t.velocity = np.zeros(2)
                t.measured = False
            drift = _DRIFT_DECAY * drift + (dst - _apply(motion, src)) if len(src) else drift
            stay = np.linalg.norm(drift, axis=1) <= _DRIFT_PX
        t.corners = _apply(motion, t.corners)
        if look is not None:
            seen = look.score_at(t.corners.mean(axis=0))
            if seen >= _MATCH_STRONG:
                t.quality = max(t.quality, seen)  # its object is seen where the box is
            elif seen < _MATCH_LOST:
                # Its object is not where the box is: points there (background that joined a
                # box left behind) do not vouch for it.
                t.quality = min(t.quality, _UNSEEN_QUALITY)
            if seen >= _TEMPLATE_UPDATE and look.distinct:
                renewed = _Template.take(look.grey, t.corners, t.template)
                if renewed is not None:
                    t.template = renewed
        points, drift = dst[stay], drift[stay]
        # Candidates join only if they moved with the box in their first step.
        c_src, c_dst = c_src[c_ok], c_dst[c_ok]
        if len(c_src):
            miss = c_dst - _apply(motion, c_src)
            join = np.linalg.norm(miss, axis=1) <= 0.5 * _DRIFT_PX
            points = np.concatenate([points, c_dst[join]])
            drift = np.concatenate([drift, miss[join]])
        t.points = points[:p.max_corners].astype(np.float32)
        t.drift = drift[:p.max_corners]

    # --- helpers ---------------------------------------------------------------------------

    def _corners_in(self, corners: np.ndarray, existing: np.ndarray, n: int,
                    inner: bool = True) -> np.ndarray:
        """Up to n new image corners inside the box's inner part, away from existing points."""
        w, h = self._size
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        # The box's rim is mostly background and the object's outline, whose corners mix
        # two motions: seed inside it, unless that leaves too little or the box has lost its
        # points (an object coming out from behind something shows its edge first).
        inset = _SEED_INSET * (hi - lo)
        if inner and np.all(hi - lo - 2 * inset >= 2 * _MIN_BOX_SIDE_PX):
            lo, hi = lo + inset, hi - inset
        x1, y1 = np.floor(lo).astype(int)
        x2, y2 = np.ceil(hi).astype(int)
        # Flow windows that reach over the image border see a made-up border: keep away.
        m = _LK_WIN[0] // 2
        x1, y1, x2, y2 = max(m, x1), max(m, y1), min(w - m, x2), min(h - m, y2)
        if n <= 0 or x2 - x1 < _MIN_BOX_SIDE_PX or y2 - y1 < _MIN_BOX_SIDE_PX:
            return np.zeros((0, 2), np.float32)
        found = _find_corners(self._grey[y1:y2, x1:x2], n + len(existing),
                              _CORNER_MIN_DISTANCE)
        found = found + np.array([x1, y1], np.float32)
        if len(existing) and len(found):
            d = np.linalg.norm(found[:, None, :] - existing[None, :, :], axis=2).min(axis=1)
            found = found[d >= _CORNER_MIN_DISTANCE]
        return found[:n]

    def _visible_share(self, corners: np.ndarray) -> float:
        w, h = self._size
        x1, y1 = corners.min(axis=0)
        x2, y2 = corners.max(axis=0)
        area = (x2 - x1) * (y2 - y1)
        if not area > 0:
            return 0.0
        vis = max(0.0, min(x2, w) - max(x1, 0)) * max(0.0, min(y2, h) - max(y1, 0))
        return float(vis / area)


def _spread_corners(grey: np.ndarray, n: int) -> np.ndarray:
    """
    About n corners spread over a grid of the image, away from its border.

    The strongest corners of the whole image could all lie on one highly textured object (an
    occluder); the camera's motion needs points everywhere.
    """
    h, w = grey.shape
    m = _LK_WIN[0] // 2
    cols, rows = _GLOBAL_GRID
    per_cell = max(1, n // (cols * rows))
    xs = np.linspace(m, w - m, cols + 1).astype(int)
    ys = np.linspace(m, h - m, rows + 1).astype(int)
    found = []
    for y1, y2 in zip(ys[:-1], ys[1:]):
        for x1, x2 in zip(xs[:-1], xs[1:]):
            if x2 - x1 >= _MIN_BOX_SIDE_PX and y2 - y1 >= _MIN_BOX_SIDE_PX:
                found.append(_find_corners(grey[y1:y2, x1:x2], per_cell, 4)
                             + np.array([x1, y1], np.float32))
    return np.concatenate(found) if found else np.zeros((0, 2), np.float32)


def _find_corners(grey: np.ndarray, n: int, min_distance: int) -> np.ndarray:
    found = cv2.goodFeaturesToTrack(grey, maxCorners=max(1, n), qualityLevel=_CORNER_QUALITY,
                                    minDistance=min_distance)
    return np.zeros((0, 2), np.float32) if found is None else found.reshape(-1, 2)


def _flow(prev: np.ndarray, nxt: np.ndarray, start: np.ndarray, fb_threshold: float
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Track points one frame with LK.

    Returns end positions, which points passed forward-backward (and the patch error check),
    and which found a patch like their own going forward (error <= _CUT_ERR; for the cut test).
    """
    if len(start) == 0:
        return start.copy(), np.zeros(0, bool), np.zeros(0, bool)
    p0 = start.reshape(-1, 1, 2)
    p1, st1, err = cv2.calcOpticalFlowPyrLK(prev, nxt, p0, None, winSize=_LK_WIN,
                                            maxLevel=_LK_LEVELS, criteria=_LK_CRITERIA)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(nxt, prev, p1, None, winSize=_LK_WIN,
                                            maxLevel=_LK_LEVELS, criteria=_LK_CRITERIA)
    fb = np.linalg.norm((p0 - back).reshape(-1, 2), axis=1)
    end = p1.reshape(-1, 2)
    ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < fb_threshold)
    ok &= np.all(np.isfinite(end), axis=1)
    # A patch that changed much more than most did is being covered or uncovered (its window
    # straddles an occluder's edge): its flow mixes two motions even when it passes FB.
    err = err.ravel()
    alike = (st1.ravel() == 1) & np.isfinite(err) & (err <= _CUT_ERR)
    if ok.any():
        ok &= err <= max(_ERR_FLOOR, _ERR_FACTOR * float(np.median(err[ok])))
    return end, ok, alike


def _global_motion(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray | None, float]:
    """RANSAC similarity over all trusted points; (2x3 matrix, inlier share) or None."""
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
    return tf.astype(np.float64), share


def _similarity(src: np.ndarray, dst: np.ndarray, centre: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """
    Robust similarity about `centre`: median scale and rotation over point pairs, median centre.

    Returns the 2x3 pixel transform and each point's misfit to it (pixels).
    """
    # Points as complex numbers: a pair's turn and stretch is one complex ratio.
    z0 = src[:, 0] + 1j * src[:, 1]
    z1 = dst[:, 0] + 1j * dst[:, 1]
    ratio = 1.0 + 0.0j
    if len(src) >= 2:
        i, j = np.triu_indices(len(src), k=1)
        d0, d1 = z0[j] - z0[i], z1[j] - z1[i]
        usable = np.abs(d0) > 2.0  # ratios of near-coincident points are noise
        if usable.any():
            r = d1[usable] / d0[usable]
            scale = min(_SCALE_LIMITS[1], max(_SCALE_LIMITS[0], float(np.median(np.abs(r)))))
            angle = min(_MAX_TURN, max(-_MAX_TURN, float(np.median(np.angle(r)))))
            ratio = scale * np.exp(1j * angle)
    c = complex(centre[0], centre[1])
    # Each point predicts where the centre went: dst - ratio * (src - centre).
    votes = z1 - ratio * (z0 - c)
    new_c = complex(np.median(votes.real), np.median(votes.imag))
    a = np.array([[ratio.real, -ratio.imag], [ratio.imag, ratio.real]])
    shift = new_c - ratio * c
    tf = np.array([[a[0, 0], a[0, 1], shift.real], [a[1, 0], a[1, 1], shift.imag]])
    return tf, np.abs(votes - new_c)


def _apply(tf: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ tf[:, :2].T + tf[:, 2]


@dataclass
class _Template:
    """
    A box's look on the frame it was drawn on, to find its object again.

    Grey correlation of the whole box would be ruled by the background around a small flat
    object (it changes as the object moves) and blind to its grey level, so the template
    compares grey levels (squared error) over the object's pixels only: its silhouette when the
    box's middle is flat (the pixels near its grey level), the whole box when it is textured.
    A match's score is 1 minus its RMS error over `scale`, the error of the template misplaced
    by _MISPLACED_PX on its own frame: 1 is a perfect match, 0 as bad as that misplacement.
    """

    patch: np.ndarray   # float32, the box and a _TEMPLATE_MARGIN_PX margin
    mask: np.ndarray    # float32 0/1, the pixels compared
    scale: float        # grey levels

    @staticmethod
    def take(grey: np.ndarray, corners: np.ndarray, like: _Template | None = None
             ) -> _Template | None:
        """
        The template of the box `corners` on `grey`, or None when unusable.

        With `like`, a renewal: the new grey levels with its size, mask and scale. None when
        the patch is not wholly inside the frame, has too few pixels to compare or its
        object differs too little from its surroundings (_MIN_CONTRAST).
        """
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        m = _TEMPLATE_MARGIN_PX
        if like is None:
            w, h = (int(round(v)) + 2 * m for v in hi - lo)
        else:
            h, w = like.patch.shape
        c = (lo + hi) / 2
        fh, fw = grey.shape
        if (w - 2 * m < _MIN_BOX_SIDE_PX or h - 2 * m < _MIN_BOX_SIDE_PX or c[0] - w / 2 < 0
                or c[1] - h / 2 < 0 or c[0] + w / 2 > fw or c[1] + h / 2 > fh):
            return None

        def cut(at: np.ndarray) -> np.ndarray:
            # Box corners are pixel edges (pixel i spans [i, i + 1)); getRectSubPix takes the
            # centre in pixel-centre coordinates.
            return cv2.getRectSubPix(grey, (w, h), (float(at[0]) - 0.5, float(at[1]) - 0.5),
                                     patchType=cv2.CV_32F)

        patch = cut(c)
        if like is not None:
            return _Template(patch, like.mask, like.scale)
        box = patch[m:h - m, m:w - m]
        bh, bw = box.shape
        # The middle of the box (a quarter of each side, at least 3 px): on the object, also
        # for a triangle or a ring-less blob whose box corners are background.
        qy, qx = max(3, bh // 4), max(3, bw // 4)
        y0, x0 = (bh - qy) // 2, (bw - qx) // 2
        middle = box[y0:y0 + qy, x0:x0 + qx]
        mask = np.zeros((h, w), np.float32)
        if float(middle.std()) <= _FLAT_STD:
            # Flat: the pixels near its grey level that connect to the middle.
            near = (np.abs(box - float(np.median(middle))) <= _FLAT_TOL).astype(np.uint8)
            _, labels = cv2.connectedComponents(near, connectivity=4)
            mask[m:h - m, m:w - m] = labels == labels[y0 + qy // 2, x0 + qx // 2]
        else:
            mask[m:h - m, m:w - m] = 1.0
        n = float(mask.sum())
        if n < _MIN_MASK_PX:
            return None
        d = _MISPLACED_PX
        scale = min(math.sqrt(float((mask * (cut(c + off) - patch) ** 2).sum()) / n)
                    for off in ((d, 0), (-d, 0), (0, d), (0, -d)))
        return _Template(patch, mask, scale) if scale >= _MIN_CONTRAST else None


@dataclass
class _Plan:
    """One box's step before it is taken: its points' (or fallback) motion and its look."""

    src: np.ndarray       # its points that passed tracking, before and after
    dst: np.ndarray
    drift: np.ndarray
    motion: np.ndarray    # 2x3: by its own points, else the camera's plus its coasting
    own: bool             # motion is by its own points
    support: float        # share of its first point count that moved with it
    fallback_quality: float
    bg_shift: np.ndarray  # the camera's motion at the box's centre
    dt: float
    look: _Look | None
    seen: float           # the look's score where the motion puts the box

    @property
    def anchored(self) -> bool:
        """Carried by enough of its own points that they need not agree with its coasting."""
        return self.own and self.support >= _FULL_SUPPORT


@dataclass
class _Look:
    """Where a box's template matches best near a predicted centre, and how well."""

    grey: np.ndarray      # the frame searched
    scores: np.ndarray    # _Template scores over the search window
    origin: np.ndarray    # pixel centre of scores[0, 0]
    centre: np.ndarray    # the best match's centre (sub-pixel)
    score: float
    distinct: bool        # the best other place scores at least _MATCH_DISTINCT less

    @staticmethod
    def find(template: _Template | None, grey: np.ndarray, centre: np.ndarray
             ) -> _Look | None:
        """Search `_SEARCH_PX` around `centre`; None without a template or room to search."""
        if template is None or not np.all(np.isfinite(centre)):
            return None
        th, tw = template.patch.shape
        fh, fw = grey.shape
        # Top-left corners of the template placements searched, clipped to the frame.
        x1 = max(0, int(math.floor(centre[0] - tw / 2 - _SEARCH_PX)))
        y1 = max(0, int(math.floor(centre[1] - th / 2 - _SEARCH_PX)))
        x2 = min(fw, int(math.ceil(centre[0] + tw / 2 + _SEARCH_PX)))
        y2 = min(fh, int(math.ceil(centre[1] + th / 2 + _SEARCH_PX)))
        if x2 - x1 < tw or y2 - y1 < th:
            return None
        err = cv2.matchTemplate(grey[y1:y2, x1:x2].astype(np.float32), template.patch,
                                cv2.TM_SQDIFF, mask=template.mask)
        rms = np.sqrt(np.maximum(np.nan_to_num(err, nan=np.inf), 0.0) / template.mask.sum())
        scores = (1.0 - rms / template.scale).astype(np.float32)
        _, best, _, (bx, by) = cv2.minMaxLoc(scores)
        # Sub-pixel peak: a parabola through the best score and its neighbours, per axis.
        sub = np.zeros(2)
        for axis, (i, n) in enumerate(((bx, scores.shape[1]), (by, scores.shape[0]))):
            if 0 < i < n - 1:
                a, b, c = ((scores[by, i - 1], best, scores[by, i + 1]) if axis == 0
                           else (scores[i - 1, bx], best, scores[i + 1, bx]))
                den = a - 2 * b + c
                if den < 0:
                    sub[axis] = min(0.5, max(-0.5, 0.5 * (a - c) / den))
        # The best other place: more than _MISPLACED_PX from the best (where its score is 0
        # by the template's scale), so a look-alike a little way off counts.
        r = _MISPLACED_PX
        rest = scores.copy()
        rest[max(0, by - r):by + r + 1, max(0, bx - r):bx + r + 1] = -np.inf
        second = float(rest.max())
        origin = np.array([x1 + tw / 2, y1 + th / 2])  # in pixel edges, as box corners
        return _Look(grey, scores, origin, origin + np.array([bx, by]) + sub, float(best),
                     float(best) - second >= _MATCH_DISTINCT)

    def score_at(self, centre: np.ndarray) -> float:
        """
        The best score of the template within a pixel of `centre` (placements searched).

        Within a pixel: a flat object's score falls by about half a pixel off its place, so
        the nearest placement alone would say more about rounding than about the object.
        """
        x, y = np.round(centre - self.origin).astype(int)
        rows, cols = self.scores.shape
        if not (0 <= x < cols and 0 <= y < rows):
            return -1.0
        return float(self.scores[max(0, y - 1):y + 2, max(0, x - 1):x + 2].max())
