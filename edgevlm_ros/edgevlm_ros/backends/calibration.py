# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Frames that calibrate static int8 graphs: half synthetic world, half photo pan.

Static quantization fixes each activation's int8 range from what these frames produce, so they
cover both kinds of image the package meets: rendered scenes (the micro SVLM's world) and real
photos (the camera pan). The synthetic worlds come from the training seed range
(``svlm_data.TRAIN_SEED_BASE`` up): no held-out or evaluation scene calibrates a graph that is
then scored on it. No torch, no ROS.
"""

from __future__ import annotations

import numpy as np

from edgevlm_ros.sim.frame_sources import camera_pan
from edgevlm_ros.sim.svlm_data import TRAIN_SEED_BASE
from edgevlm_ros.sim.synthworld import generate

CALIBRATION_SEED = TRAIN_SEED_BASE + 7_777
CALIBRATION_FRAMES = 16
PAN_PX_PER_FRAME = 53.0  # far enough apart that the pan frames show different photos


def calibration_frames(n: int = CALIBRATION_FRAMES, start: int = 0,
                       width: int = 640, height: int = 480) -> list[np.ndarray]:
    """
    Return ``n`` RGB frames: ``n - n // 2`` of the synthetic world, then ``n // 2`` of the pan.

    ``start`` moves both to another stretch (another world seed, later pan frames), for frames
    that check a calibrated graph without being the ones it was calibrated on.
    """
    if n < 1:
        raise ValueError(f'n must be >= 1, got {n}')
    synth = [s.rgb for s in generate(seed=CALIBRATION_SEED + start, duration_s=float(n),
                                     fps=1.0, width=width, height=height)][:n - n // 2]
    pan = camera_pan(width, height, PAN_PX_PER_FRAME)
    for _ in range(start):
        next(pan)
    return synth + [next(pan) for _ in range(n // 2)]
