# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Which steps go to the cloud.

Rules, checked in this order for every step:

1. 'in_flight': no more than `max_in_flight` requests outstanding;
2. 'interval':  at least `min_interval_s` since the last send;
3. 'no_change': with `scene_change` > 0, send only when the frame differs from the last sent
   frame by more than `scene_change` (mean absolute grey difference, 0..1), but never stay
   quiet longer than `max_quiet_s`;
4. otherwise 'send'.

Time is whatever clock the caller uses (seconds). If it steps backwards (a looping bag, a sim
clock reset) the selector forgets the last send instead of waiting for the old time to return.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .images import to_grey

REASONS = ('send', 'in_flight', 'interval', 'no_change')
_THUMB_WIDTH = 64  # frames are compared as 64 px wide grey thumbnails (cheap, noise-tolerant)


class CloudSelector:
    """Decides per step whether to send it to the cloud; see the module docstring."""

    def __init__(self, max_in_flight: int = 1, min_interval_s: float = 0.0,
                 scene_change: float = 0.0, max_quiet_s: float = 5.0) -> None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) \
                or max_in_flight < 1:
            raise ValueError(f'max_in_flight must be an int >= 1, got {max_in_flight!r}')
        if not (math.isfinite(min_interval_s) and min_interval_s >= 0):
            raise ValueError(f'min_interval_s must be >= 0, got {min_interval_s}')
        if not 0.0 <= scene_change <= 1.0:
            raise ValueError(f'scene_change must be in [0, 1] (0 = off), got {scene_change}')
        if not max_quiet_s > 0:
            raise ValueError(f'max_quiet_s must be > 0, got {max_quiet_s}')
        self.max_in_flight = max_in_flight
        self.min_interval_s = float(min_interval_s)
        self.scene_change = float(scene_change)
        self.max_quiet_s = float(max_quiet_s)
        self._last_sent_s: float | None = None
        self._last_thumb: np.ndarray | None = None

    def decide(self, now_s: float, in_flight: int,
               grey: np.ndarray | None = None) -> tuple[bool, str]:
        """Return (send, reason); reason is one of REASONS. Does not record the send."""
        if in_flight >= self.max_in_flight:
            return False, 'in_flight'
        if self._last_sent_s is not None and now_s < self._last_sent_s:
            self.reset()  # the clock went backwards
        if self._last_sent_s is None:
            return True, 'send'
        elapsed = now_s - self._last_sent_s
        if elapsed < self.min_interval_s:
            return False, 'interval'
        if self.scene_change > 0 and grey is not None and self._last_thumb is not None \
                and elapsed < self.max_quiet_s:
            diff = _difference(_thumb(grey), self._last_thumb)
            if diff <= self.scene_change:
                return False, 'no_change'
        return True, 'send'

    def mark_sent(self, now_s: float, grey: np.ndarray | None = None) -> None:
        """Record that the step seen at now_s (with this frame) was sent."""
        self._last_sent_s = float(now_s)
        if grey is not None:
            self._last_thumb = _thumb(grey)

    def reset(self) -> None:
        self._last_sent_s = None
        self._last_thumb = None


def _thumb(image: np.ndarray) -> np.ndarray:
    """Grey thumbnail in 0..1 (uint8 images are scaled by 1/255, float ones taken as 0..1)."""
    if image.dtype != np.uint8:
        image = np.clip(np.nan_to_num(image.astype(np.float32)) * 255.0, 0, 255).astype(np.uint8)
    return to_grey(image, _THUMB_WIDTH).astype(np.float32) / 255.0


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:  # the camera changed resolution or aspect
        a = cv2.resize(a, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_AREA)
    return float(np.mean(np.abs(a - b)))
