# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Classical spectral-residual saliency, used to ground the embedded cloud stand-in.

A random-weight tiny LVLM cannot point at anything, so the embedded stand-in grounds its answers
with the regions that stand out in the frame (Hou and Zhang's spectral residual: what remains of
the log amplitude spectrum after removing its local average marks the unexpected parts of the
image). Deterministic: the same image always gives the same boxes.
"""

from __future__ import annotations

import cv2
import numpy as np

from .images import to_grey
from .regions import Box

_WORK_WIDTH = 64        # saliency is computed on a 64 px wide grey copy
_SMOOTH_SIGMA = 2.0     # px at work width: turns edge responses into blobs
_THRESHOLD_X_MEAN = 3.0  # a pixel is salient above 3x the mean saliency (Hou and Zhang)
_MIN_CONTRAST = 2.0     # grey-level std below this (0..255) is a flat frame: nothing stands out
LABEL = 'salient region'


def saliency_map(rgb: np.ndarray) -> np.ndarray:
    """Return the spectral-residual saliency map (float32 in 0..1) of a 64 px wide grey copy."""
    grey = to_grey(rgb, _WORK_WIDTH).astype(np.float32)
    spectrum = np.fft.fft2(grey)
    log_amp = np.log(np.abs(spectrum) + 1e-6).astype(np.float32)
    residual = log_amp - cv2.blur(log_amp, (3, 3), borderType=cv2.BORDER_REPLICATE)
    phase = np.angle(spectrum)
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * phase))) ** 2
    sal = cv2.GaussianBlur(sal.astype(np.float32), (0, 0), _SMOOTH_SIGMA)
    peak = float(sal.max())
    return sal / peak if peak > 0 else np.zeros_like(sal)


def salient_boxes(rgb: np.ndarray, max_boxes: int = 3, min_area: float = 0.01) -> list[Box]:
    """
    Return up to max_boxes salient regions, most salient first.

    A region is a connected component of the saliency map above 3x its mean; components whose
    box covers less than min_area of the frame are dropped. Sorted by saliency mass; score is
    the region's share of the frame's total saliency (0..1). A flat frame gives no boxes.
    """
    if max_boxes < 0:
        raise ValueError(f'max_boxes must be >= 0, got {max_boxes}')
    if not 0.0 <= min_area <= 1.0:
        raise ValueError(f'min_area must be in [0, 1], got {min_area}')
    if max_boxes == 0:
        return []
    if min(rgb.shape[:2]) < 8 or float(to_grey(rgb, _WORK_WIDTH).std()) < _MIN_CONTRAST:
        return []
    sal = saliency_map(rgb)
    h, w = sal.shape
    mask = (sal > _THRESHOLD_X_MEAN * float(sal.mean())).astype(np.uint8)
    # Close small gaps so that one object's edges form one region.
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return []
    total = float(sal.sum())
    masses = np.bincount(labels.ravel(), weights=sal.ravel(), minlength=count)
    found: list[tuple[float, Box]] = []
    for k in range(1, count):
        x, y, bw, bh = (int(v) for v in stats[k, :4])
        box = Box(x / w, y / h, (x + bw) / w, (y + bh) / h, LABEL,
                  min(1.0, float(masses[k]) / total) if total > 0 else 0.0)
        if box.area >= min_area:
            found.append((float(masses[k]), box))
    # Mass descending; ties broken by position so the order is fully deterministic.
    found.sort(key=lambda mb: (-mb[0], mb[1].y_min, mb[1].x_min))
    return [b for _, b in found[:max_boxes]]
