# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Visual Focus for edge backends without attention access: zoom in on, or mark, the focus boxes.

An ONNX or HTTP edge model cannot take an attention bias, but it can be shown a different image:

* 'crop': the part of the frame around the focus boxes, with some context, sent instead of the
  frame (the model's own resize then spends its pixels where the cloud looked). The crop
  rectangle comes back with it so that boxes can be mapped between crop and frame.
* 'overlay': the whole frame with the boxes outlined and everything outside them dimmed.
* 'off': the frame as it is.

Rules for the crop: the union of the boxes (or of the best-scoring cluster of them), grown by a
context margin, at least `min_side` of the frame on each side, its aspect ratio within
`max_aspect`, moved (not cut) to lie inside the frame. When that covers nearly the whole frame
(`max_cover`) there is nothing to zoom into and the whole frame is used. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import math

import numpy as np

from .images import check_image
from .regions import Box

ZOOM_MODES = ('off', 'crop', 'overlay')
SELECT_MODES = ('union', 'best')
# Images the fallback takes: grey, grey with a channel axis, RGB, RGBA.
_CHANNELS = (1, 3, 4)


@dataclass(frozen=True)
class Crop:
    """
    A rectangle of a frame (pixels, x1/y1 exclusive) and the image inside it.

    `zoomed` is False when the rectangle is the whole frame; `reason` says why: 'zoom' (a real
    crop), 'no_boxes' (nothing to focus on), 'covers_frame' (the boxes cover nearly all of it),
    'off' or 'overlay' (another mode was asked for).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    frame_size: tuple[int, int]  # (width, height)
    zoomed: bool
    reason: str
    image: np.ndarray = field(repr=False, compare=False)

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def rect(self) -> Box:
        """The crop rectangle normalised to the frame."""
        w, h = self.frame_size
        return Box(self.x0 / w, self.y0 / h, self.x1 / w, self.y1 / h)

    def to_frame(self, box: Box) -> Box:
        """Map a box normalised to the crop (e.g. from the edge model's answer) to the frame."""
        w, h = self.frame_size
        sx, sy = self.width / w, self.height / h
        ox, oy = self.x0 / w, self.y0 / h
        return Box(ox + box.x_min * sx, oy + box.y_min * sy, ox + box.x_max * sx,
                   oy + box.y_max * sy, box.label, box.score)

    def to_crop(self, box: Box) -> Box:
        """Map a frame box into the crop, clipped to it (empty when it lies outside)."""
        w, h = self.frame_size
        sx, sy = w / self.width, h / self.height
        ox, oy = self.x0 / w, self.y0 / h
        return Box((box.x_min - ox) * sx, (box.y_min - oy) * sy, (box.x_max - ox) * sx,
                   (box.y_max - oy) * sy, box.label, box.score).clipped()


def focus_crop(image: np.ndarray, boxes: Sequence[Box], *, margin: float = 0.25,
               min_side: float = 0.3, max_aspect: float = 2.0, max_cover: float = 0.8,
               min_score: float = 0.0, select: str = 'union') -> Crop:
    """
    Return the crop of `image` (H x W or H x W x C) to send instead of it; see the module rules.

    margin: context added on each side, as a share of the boxes' own width/height.
    min_side: smallest crop side as a share of the frame's side.
    max_aspect: longest / shortest side of the crop at most this (>= 1), where the frame allows.
    max_cover: a crop with at least this share of the frame's area is not worth it: the whole
      frame is returned (zoomed False, reason 'covers_frame').
    min_score: boxes scoring below this are ignored.
    select: 'union' of all boxes, or the 'best' cluster (boxes whose margins touch are one
      cluster; the cluster with the highest total score wins).
    The crop image is a copy; the whole-frame result carries `image` itself.
    """
    check_image(image, channels=_CHANNELS)
    if not (margin >= 0 and math.isfinite(margin)):
        raise ValueError(f'margin must be >= 0, got {margin}')
    if not 0 <= min_side <= 1:
        raise ValueError(f'min_side must be in [0, 1], got {min_side}')
    if not (max_aspect >= 1 and math.isfinite(max_aspect)):
        raise ValueError(f'max_aspect must be >= 1, got {max_aspect}')
    if not 0 < max_cover <= 1:
        raise ValueError(f'max_cover must be in (0, 1], got {max_cover}')
    if select not in SELECT_MODES:
        raise ValueError(f'select must be one of {SELECT_MODES}, got {select!r}')
    h, w = image.shape[:2]
    chosen = _valid(boxes, min_score)
    if not chosen:
        return _whole(image, 'no_boxes')
    if select == 'best':
        chosen = _best_cluster(chosen, margin)

    # Work in pixels: aspect limits are about the picture the model sees.
    x1 = min(b.x_min for b in chosen) * w
    y1 = min(b.y_min for b in chosen) * h
    x2 = max(b.x_max for b in chosen) * w
    y2 = max(b.y_max for b in chosen) * h
    cw, ch = (x2 - x1) * (1 + 2 * margin), (y2 - y1) * (1 + 2 * margin)
    cw, ch = max(cw, min_side * w, 1.0), max(ch, min_side * h, 1.0)
    if cw > max_aspect * ch:
        ch = cw / max_aspect
    elif ch > max_aspect * cw:
        cw = ch / max_aspect
    cw, ch = min(cw, w), min(ch, h)
    if cw * ch >= max_cover * w * h:
        return _whole(image, 'covers_frame')
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    # Move the rectangle inside the frame rather than cutting it.
    left = min(max(cx - cw / 2, 0.0), w - cw)
    top = min(max(cy - ch / 2, 0.0), h - ch)
    c0, r0 = int(math.floor(left)), int(math.floor(top))
    c1, r1 = min(w, int(math.ceil(left + cw))), min(h, int(math.ceil(top + ch)))
    return Crop(c0, r0, c1, r1, (w, h), True, 'zoom', image[r0:r1, c0:c1].copy())


def overlay_focus(image: np.ndarray, boxes: Sequence[Box], *, dim: float = 0.5,
                  colour: tuple[int, int, int] = (255, 200, 0), thickness: int | None = None,
                  min_score: float = 0.0) -> np.ndarray:
    """
    Return a copy of `image` with the boxes outlined and everything outside them dimmed.

    dim: share of brightness taken from pixels outside every box (0: none, 1: black).
    thickness: outline width in pixels (default: 1 per 240 px of the shorter side, at least 1;
      0: no outline). A grey image gets the outline in the colour's mean grey level.
    """
    check_image(image, channels=_CHANNELS)
    if not 0 <= dim <= 1:
        raise ValueError(f'dim must be in [0, 1], got {dim}')
    h, w = image.shape[:2]
    if thickness is None:
        thickness = max(1, round(min(h, w) / 240))
    if thickness < 0:
        raise ValueError(f'thickness must be >= 0, got {thickness}')
    chosen = _valid(boxes, min_score)
    if not chosen:
        return image.copy()
    rects = [b.to_pixels(w, h) for b in chosen]
    if dim > 0:
        # Dim everything through a lookup table (integers, one pass), then put the boxes back.
        lut = np.round(np.arange(256) * (1.0 - dim)).astype(np.uint8)
        out = lut[image]
        for x1, y1, x2, y2 in rects:
            out[y1:y2, x1:x2] = image[y1:y2, x1:x2]
    else:
        out = image.copy()
    if thickness > 0:
        paint = np.asarray(colour, np.uint8)
        if out.ndim == 2:
            paint = np.uint8(round(float(np.mean(colour))))
        elif out.shape[2] == 4:
            paint = np.append(paint, 255).astype(np.uint8)
        for x1, y1, x2, y2 in rects:
            t = min(thickness, max(1, (x2 - x1) // 2), max(1, (y2 - y1) // 2))
            out[y1:y1 + t, x1:x2] = paint
            out[max(y1, y2 - t):y2, x1:x2] = paint
            out[y1:y2, x1:x1 + t] = paint
            out[y1:y2, max(x1, x2 - t):x2] = paint
    return out


def focus_view(image: np.ndarray, boxes: Sequence[Box], mode: str = 'crop', **kwargs
               ) -> tuple[np.ndarray, Crop]:
    """
    The image to give an edge model for `mode` (see ZOOM_MODES), and the crop it came from.

    'crop' passes kwargs to focus_crop, 'overlay' to overlay_focus; for 'off' and 'overlay'
    the crop is the whole frame. Map boxes the model returns with crop.to_frame.
    """
    if mode not in ZOOM_MODES:
        raise ValueError(f'mode must be one of {ZOOM_MODES}, got {mode!r}')
    if mode == 'crop':
        crop = focus_crop(image, boxes, **kwargs)
        return crop.image, crop
    check_image(image, channels=_CHANNELS)
    if mode == 'overlay':
        marked = overlay_focus(image, boxes, **kwargs)
        return marked, _whole(marked, 'overlay')
    return image, _whole(image, 'off')


# --- internals -------------------------------------------------------------------------------

def _whole(image: np.ndarray, reason: str) -> Crop:
    h, w = image.shape[:2]
    return Crop(0, 0, w, h, (w, h), False, reason, image)


def _valid(boxes: Sequence[Box], min_score: float) -> list[Box]:
    out = []
    for b in boxes:
        c = b.clipped()
        if not c.is_empty and c.score >= min_score:
            out.append(c)
    return out


def _best_cluster(boxes: list[Box], margin: float) -> list[Box]:
    """The cluster (boxes whose margin-grown rectangles overlap, transitively) scoring most."""
    grown = [b.expanded(margin * b.width, margin * b.height) for b in boxes]
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = grown[i], grown[j]
            if a.x_min < b.x_max and b.x_min < a.x_max and a.y_min < b.y_max \
                    and b.y_min < a.y_max:
                parent[root(i)] = root(j)
    clusters: dict[int, list[Box]] = {}
    for i, b in enumerate(boxes):
        clusters.setdefault(root(i), []).append(b)
    # Highest total score; ties go to the cluster listed first.
    return max(clusters.values(), key=lambda c: sum(b.score for b in c))
