# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Classical spectral-residual saliency, used to ground the embedded cloud stand-in.

A random-weight tiny LVLM cannot point at anything, so the embedded stand-in grounds its answers
with the regions that stand out in the frame. The map is Hou and Zhang's spectral residual (what
remains of the log amplitude spectrum after removing its local average marks the unexpected
parts of the image), computed with numpy's FFT on a 64 px wide grey copy. Spectral residual
lights up the corners and edges of large uniform objects rather than their inside, so it is
averaged with a global-contrast term (distance of the smoothed grey level from the frame's
median), which fills large objects. Regions are connected components above 3x the mean
saliency, each tightened to where it exceeds half its own peak. Deterministic: the same image
always gives the same boxes.
"""

from __future__ import annotations

import cv2
import numpy as np

from .images import to_grey
from .regions import Box

WORK_WIDTH = 64          # saliency is computed on a 64 px wide grey copy
LABEL = 'salient region'
_SR_SIGMA = 1.0          # px at work width: merges edge responses into blobs
_CONTRAST_SIGMA = 1.0
_CONTRAST_WEIGHT = 0.5   # share of the global-contrast term in the map
_THRESHOLD_X_MEAN = 3.0  # a pixel is salient above 3x the mean saliency (Hou and Zhang) ...
_THRESHOLD_CAP = 0.5     # ... or above half the peak when the mean is high
_TIGHTEN = 0.5           # a region's box covers where it exceeds this share of its peak
_MIN_CONTRAST = 2.0      # grey-level std below this (0..255) is a flat frame: nothing stands out


def saliency_map(rgb: np.ndarray) -> np.ndarray:
    """Return the saliency map (float32, peak 1) of a 64 px wide grey copy of the image."""
    return _saliency_of_grey(to_grey(rgb, WORK_WIDTH))


def _saliency_of_grey(grey_u8: np.ndarray) -> np.ndarray:
    grey = grey_u8.astype(np.float32)
    spectrum = np.fft.fft2(grey)
    log_amp = np.log(np.abs(spectrum) + 1e-6).astype(np.float32)
    residual = log_amp - cv2.blur(log_amp, (3, 3), borderType=cv2.BORDER_REPLICATE)
    sr = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    sr = _unit_peak(cv2.GaussianBlur(sr.astype(np.float32), (0, 0), _SR_SIGMA))
    smooth = cv2.GaussianBlur(grey, (0, 0), _CONTRAST_SIGMA)
    contrast = _unit_peak(np.abs(smooth - np.float32(np.median(smooth))))
    return _unit_peak((1.0 - _CONTRAST_WEIGHT) * sr + _CONTRAST_WEIGHT * contrast)


def salient_boxes(rgb: np.ndarray, max_boxes: int = 3, min_area: float = 0.01) -> list[Box]:
    """
    Return up to max_boxes salient regions (normalised boxes), most salient first.

    Regions whose box covers less than min_area of the frame are dropped. Sorted by saliency
    mass; score is the region's share of the frame's total saliency (0..1). A flat frame gives
    no boxes.
    """
    if max_boxes < 0:
        raise ValueError(f'max_boxes must be >= 0, got {max_boxes}')
    if not 0.0 <= min_area <= 1.0:
        raise ValueError(f'min_area must be in [0, 1], got {min_area}')
    if max_boxes == 0 or min(rgb.shape[:2]) < 8:
        return []
    grey = to_grey(rgb, WORK_WIDTH)
    if float(grey.std()) < _MIN_CONTRAST:
        return []
    sal = _saliency_of_grey(grey)
    h, w = sal.shape
    threshold = min(_THRESHOLD_X_MEAN * float(sal.mean()), _THRESHOLD_CAP)
    mask = (sal > threshold).astype(np.uint8)
    count, labels, _, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    total = float(sal.sum())
    if count <= 1 or total <= 0:
        return []
    masses = np.bincount(labels.ravel(), weights=sal.ravel(), minlength=count)
    found: list[tuple[float, Box]] = []
    for k in range(1, count):
        region = labels == k
        core = region & (sal >= _TIGHTEN * float(sal[region].max()))
        ys, xs = np.nonzero(core)
        box = Box(xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h, LABEL,
                  min(1.0, float(masses[k]) / total))
        if box.area >= min_area:
            found.append((float(masses[k]), box))
    # Mass descending; ties broken by position so that the order is fully deterministic.
    found.sort(key=lambda mb: (-mb[0], mb[1].y_min, mb[1].x_min))
    return [b for _, b in found[:max_boxes]]


def _unit_peak(a: np.ndarray) -> np.ndarray:
    peak = float(a.max())
    return (a / peak).astype(np.float32) if peak > 0 else np.zeros_like(a, dtype=np.float32)
