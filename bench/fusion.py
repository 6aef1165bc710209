# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Context fusion on synthetic 640x480 motion: box error in pixels, cost per frame (prints only).

For each sequence (translation, zoom, rotation, camera shake, an occluder passing over a still
object, an object moving behind a still occluder) the boxes drawn on frame 0 are carried frame by
frame as the fusion node does (ring add, then one propagation hop per new frame, continuing the
track), and compared with the true boxes. Errors are the largest corner difference of the moved
(not grown) box, in pixels of the 640x480 frame. Then the cost of one frame: ring add (downscale
to grey) plus one hop for 1/3/8 boxes, and of carrying fresh boxes over 1/5/20 frames at once (a
cloud answer arriving late).

usage: PYTHONPATH=edgevlm_ros .venv/bin/python bench/fusion.py [--width 160] [--frames 30]
       [--repeat 30]   (without PYTHONPATH: the installed package, after make .venv/.stamp-pkg)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import statistics
import time

import cv2
from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.core.focus import BoxPropagator, FrameRing
from edgevlm_ros.core.regions import Box
import numpy as np

W, H = 640, 480


def texture(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """Smoothed colour noise: corners everywhere and no repeating pattern."""
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), sigma), None, 0, 255, cv2.NORM_MINMAX)


@dataclass
class Sequence:
    name: str
    frames: list[np.ndarray]        # RGB 640x480
    truth: list[list[np.ndarray]]   # per frame, per box: x1, y1, x2, y2 in pixels
    occluded: list[bool]            # per frame: the tracked object is (partly) hidden


BOXES_PX = [np.array([240.0, 180.0, 400.0, 300.0]), np.array([60.0, 60.0, 180.0, 160.0]),
            np.array([440.0, 300.0, 580.0, 420.0])]


def _warp_truth(m: np.ndarray, box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    pts = np.array([[x1, y1, 1], [x2, y1, 1], [x1, y2, 1], [x2, y2, 1]], float) @ m.T
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def _warped(name: str, n: int, motion) -> Sequence:
    """The scene moves by the 2x3 transform motion(i) (camera motion)."""
    rng = np.random.default_rng(1)
    big = texture(rng, H + 400, W + 400, 3.0)
    frames, truth = [], []
    for i in range(n):
        m = motion(i)
        shifted = m.copy()
        shifted[:, 2] += m[:, :2] @ np.array([-200.0, -200.0])  # the canvas is 200 px larger
        frames.append(cv2.warpAffine(big, shifted, (W, H), flags=cv2.INTER_LINEAR))
        truth.append([_warp_truth(m, b) for b in BOXES_PX])
    return Sequence(name, frames, truth, [False] * n)


def translation(n: int) -> Sequence:
    return _warped('translation 6 px/frame', n,
                   lambda i: np.array([[1.0, 0, 6.0 * i], [0, 1.0, -2.0 * i]]))


def zoom(n: int) -> Sequence:
    return _warped('zoom in 1.5 %/frame', n,
                   lambda i: cv2.getRotationMatrix2D((W / 2, H / 2), 0, 1.015 ** i))


def rotation(n: int) -> Sequence:
    return _warped('rotation 0.5 deg/frame', n,
                   lambda i: cv2.getRotationMatrix2D((W / 2, H / 2), 0.5 * i, 1.0))


def shake(n: int) -> Sequence:
    rng = np.random.default_rng(5)
    jitter = [(0.0, 0.0, 0.0)] + [(rng.normal(0, 6), rng.normal(0, 6), rng.normal(0, 0.4))
                                  for _ in range(n - 1)]

    def motion(i: int) -> np.ndarray:
        dx, dy, deg = jitter[i]
        m = cv2.getRotationMatrix2D((W / 2, H / 2), deg, 1.0)
        m[:, 2] += (dx, dy)
        return m

    return _warped('camera shake 6 px, 0.4 deg', n, motion)


def occluder_passes(n: int) -> Sequence:
    """A textured bar (a person walking by) slides across the still object at 20 px/frame."""
    rng = np.random.default_rng(2)
    scene = texture(rng, H, W, 3.0)
    bar = texture(rng, H, 110, 1.5)
    frames, occluded = [], []
    box = BOXES_PX[0]
    for i in range(n):
        img = scene.copy()
        x0 = -110 + 20 * i
        lo, hi = max(0, x0), min(W, x0 + bar.shape[1])
        if lo < hi:
            img[:, lo:hi] = bar[:, lo - x0:hi - x0]
        frames.append(img)
        occluded.append(bool(hi > box[0] and lo < box[2]))
    return Sequence('occluder passes a still object', frames,
                    [[b.copy() for b in BOXES_PX] for _ in range(n)], occluded)


def object_behind_pillar(n: int) -> Sequence:
    """A textured object moves 6 px/frame right and passes behind a still pillar."""
    rng = np.random.default_rng(3)
    scene = texture(rng, H, W, 3.0)
    obj = texture(rng, 120, 160, 1.5)
    pillar = np.full((H, 60, 3), 90, np.uint8)
    pillar[:, ::8] = 200  # a few vertical edges, no corners
    frames, truth, occluded = [], [], []
    for i in range(n):
        img = scene.copy()
        x = 150 + 6 * i
        img[180:300, x:x + 160] = obj
        img[:, 380:440] = pillar
        frames.append(img)
        truth.append([np.array([x, 180.0, x + 160, 300.0])])
        occluded.append(x + 160 > 380 and x < 440)
    return Sequence('object moves behind a pillar', frames, truth, occluded)


SEQUENCES = (translation, zoom, rotation, shake, occluder_passes, object_behind_pillar)


def _clip(t: np.ndarray) -> np.ndarray:
    return np.clip(t, 0, [W, H, W, H])


def carry(seq: Sequence, width: int) -> tuple[list[float], list[float], int]:
    """
    Run the node's loop over a sequence.

    Returns per-frame largest corner error (px, over the boxes still carried, against the true
    box clipped to the frame), per-frame tracking quality of box 0, and how many boxes were
    dropped while at least half of their true box was still in view.
    """
    ring = FrameRing(capacity=64, width=width)
    prop = BoxPropagator()
    boxes = [Box.from_pixels(*b, W, H, str(k)) for k, b in enumerate(seq.truth[0])]
    errors, qualities = [], []
    lost = 0
    for i, rgb in enumerate(seq.frames):
        ring.add(i, 0.1 * i, rgb)
        if i == 0:
            continue
        result = prop.propagate(boxes, ring.span(i - 1, i))
        kept = {b.label for b in result.tracked}
        for b in boxes:
            t = seq.truth[i][int(b.label)]
            inside = np.prod(np.maximum(0, _clip(t)[2:] - _clip(t)[:2]))
            if b.label not in kept and inside >= 0.5 * np.prod(t[2:] - t[:2]):
                lost += 1
        boxes = result.tracked
        if not boxes:
            break
        errors.append(max(float(np.abs(np.array(b.to_pixels(W, H), float)
                                       - _clip(seq.truth[i][int(b.label)])).max())
                          for b in boxes))
        # Quality of box 0, the one the occluded flags are about.
        qualities.append(next((q for b, q in zip(boxes, result.qualities) if b.label == '0'),
                              0.0))
    return errors, qualities, lost


def _ms(fn, repeat: int) -> tuple[float, float]:
    """Median and minimum wall time of fn in ms (the minimum: least disturbed by other load)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--width', type=int, default=160, help='ring width (fusion node default)')
    ap.add_argument('--frames', type=int, default=30)
    ap.add_argument('--repeat', type=int, default=30)
    opts = ap.parse_args()
    print(read_cpu().header(cv2.getNumThreads()))
    print(f'ring width {opts.width} px, {opts.frames} frames per sequence, errors in px at '
          f'{W}x{H}, cv2 threads {cv2.getNumThreads()}\n')
    print(f'{"sequence":34s} {"mean err":>8s} {"max err":>8s} {"final":>7s} {"lost":>4s} '
          f'{"min quality":>11s} {"quality hidden/visible":>22s}')
    for make in SEQUENCES:
        seq = make(opts.frames)
        errors, qualities, lost = carry(seq, opts.width)
        hidden = [q for q, o in zip(qualities, seq.occluded[1:]) if o]
        visible = [q for q, o in zip(qualities, seq.occluded[1:]) if not o]
        split = (f'{statistics.mean(hidden):.2f}/{statistics.mean(visible):.2f}'
                 if hidden else '-')
        print(f'{seq.name:34s} {statistics.mean(errors):8.1f} {max(errors):8.1f} '
              f'{errors[-1]:7.1f} {lost:4d} {min(qualities or [0]):11.2f} {split:>22s}')

    seq = translation(25)
    ring = FrameRing(capacity=64, width=opts.width)
    add_ms, add_min = _ms(lambda: FrameRing(capacity=4, width=opts.width).add(
        0, 0.0, seq.frames[0]), opts.repeat)
    for i, rgb in enumerate(seq.frames):
        ring.add(i, 0.1 * i, rgb)
    rng = np.random.default_rng(0)
    print(f'\ncost in ms, median (min) of {opts.repeat} runs; ring add (640x480 RGB -> '
          f'{opts.width} px grey): {add_ms:.2f} ({add_min:.2f})')
    print(f'{"boxes":>5s} {"hop (per frame)":>16s} {"add + hop":>14s}   '
          + '   '.join(f'{f"fresh over {n} frames: total, per frame":>24s}' for n in (1, 5, 20)))
    for n_boxes in (1, 3, 8):
        boxes = []
        for _ in range(n_boxes):
            x, y = rng.uniform(0.05, 0.7), rng.uniform(0.05, 0.7)
            boxes.append(Box(x, y, x + rng.uniform(0.1, 0.25), y + rng.uniform(0.1, 0.25)))
        hop_ms, hop_min = _ms(_hops(ring, boxes, len(seq.frames)), max(opts.repeat, 48))
        fresh = [_ms(lambda n=n, b=boxes: BoxPropagator().propagate(b, ring.span(0, n)),
                     opts.repeat)[0] for n in (1, 5, 20)]
        print(f'{n_boxes:5d} {hop_ms:9.2f} ({hop_min:.2f}) {add_ms + hop_ms:7.2f} '
              f'({add_min + hop_min:.2f})'
              + ''.join(f'   {t:14.2f}, {t / n:6.2f}' for t, n in zip(fresh, (1, 5, 20))))


def _hops(ring: FrameRing, boxes: list[Box], n_frames: int):
    """One hop per call, continuing one track as the node does per frame (wraps around)."""
    prop = BoxPropagator()
    state = {'i': 1, 'boxes': boxes}

    def hop() -> None:
        i = state['i']
        if i == 1:
            state['boxes'] = boxes  # wrapped around: start again from frame 0
        r = prop.propagate(state['boxes'], ring.span(i - 1, i))
        state['boxes'] = r.tracked if r is not None and r.tracked else boxes
        state['i'] = i + 1 if i + 1 < n_frames else 1

    return hop


if __name__ == '__main__':
    main()
