# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Camera frame decoding and resizing without ROS or cv_bridge.

Rule: every decoder returns a fresh, C-contiguous (H, W, 3) uint8 RGB array that does not alias
the message buffer (the middleware may reuse it), or raises ImageDecodeError with a message that
names the problem (unknown encoding, zero size, short data, corrupt compressed data).

Conversions to 8 bit:
* colour and mono 16-bit encodings (rgb16, mono16, bayer_*16, ...) are scaled by full range
  (65535 -> 255): they are intensities;
* 16UC1, 32FC1 and 64FC1 are almost always depth: they are stretched min..max over the valid
  pixels (non-zero for 16UC1, finite for floats) so that the scene stays visible; invalid
  pixels become black;
* alpha is dropped; 8UC3 / 8UC4 follow OpenCV's BGR(A) order, as cv_bridge does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


class ImageDecodeError(ValueError):
    """A camera frame could not be turned into an RGB image."""


@dataclass(frozen=True)
class _Encoding:
    layout: str          # rgb, bgr, rgba, bgra, mono, depth, float, uyvy, yuyv, bayer
    channels: int        # samples per pixel in the buffer
    itemsize: int        # bytes per sample
    bayer_code: int = -1  # cv2 demosaic code (RGB output)


# OpenCV names Bayer patterns after the second row, so ROS rggb is OpenCV's BG (as in
# cv_bridge); verified by test_bayer_patterns_decode_to_the_scene_colour.
_BAYER = {'rggb': cv2.COLOR_BayerBG2RGB, 'bggr': cv2.COLOR_BayerRG2RGB,
          'gbrg': cv2.COLOR_BayerGR2RGB, 'grbg': cv2.COLOR_BayerGB2RGB}

_ENCODINGS: dict[str, _Encoding] = {
    'rgb8': _Encoding('rgb', 3, 1), 'bgr8': _Encoding('bgr', 3, 1),
    'rgba8': _Encoding('rgba', 4, 1), 'bgra8': _Encoding('bgra', 4, 1),
    'rgb16': _Encoding('rgb', 3, 2), 'bgr16': _Encoding('bgr', 3, 2),
    'rgba16': _Encoding('rgba', 4, 2), 'bgra16': _Encoding('bgra', 4, 2),
    'mono8': _Encoding('mono', 1, 1), 'mono16': _Encoding('mono', 1, 2),
    '8UC1': _Encoding('mono', 1, 1), '8UC3': _Encoding('bgr', 3, 1),
    '8UC4': _Encoding('bgra', 4, 1), '16UC3': _Encoding('bgr', 3, 2),
    '16UC1': _Encoding('depth', 1, 2),
    '32FC1': _Encoding('float', 1, 4), '64FC1': _Encoding('float', 1, 8),
    'yuv422': _Encoding('uyvy', 2, 1), 'uyvy': _Encoding('uyvy', 2, 1),
    'yuv422_yuy2': _Encoding('yuyv', 2, 1), 'yuyv': _Encoding('yuyv', 2, 1),
    **{f'bayer_{p}8': _Encoding('bayer', 1, 1, code) for p, code in _BAYER.items()},
    **{f'bayer_{p}16': _Encoding('bayer', 1, 2, code) for p, code in _BAYER.items()},
}

SUPPORTED_ENCODINGS: frozenset[str] = frozenset(_ENCODINGS)
# ROS spells encodings exactly, but drivers in the wild vary the case ('RGB8', '8uc1').
_LOOKUP = {name.lower(): enc for name, enc in _ENCODINGS.items()}


def raw_to_rgb(data: Any, height: int, width: int, encoding: str, step: int,
               is_bigendian: bool) -> np.ndarray:
    """
    Decode the fields of a sensor_msgs/Image into (H, W, 3) uint8 RGB.

    `data` may be bytes, bytearray, memoryview, array.array('B') (what rclpy gives) or a numpy
    array. Row padding (step > width * bytes per pixel) is honoured.
    """
    enc = _LOOKUP.get(str(encoding).strip().lower())
    if enc is None:
        raise ImageDecodeError(
            f'unsupported image encoding {encoding!r}; supported: '
            + ', '.join(sorted(SUPPORTED_ENCODINGS)))
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f'image has zero size ({width}x{height})')
    row_bytes = width * enc.channels * enc.itemsize
    if step < row_bytes:
        raise ImageDecodeError(
            f'step {step} is smaller than width * bytes per pixel = {row_bytes} ({encoding})')
    if enc.layout in ('uyvy', 'yuyv') and width % 2:
        raise ImageDecodeError(f'{encoding} needs an even width, got {width}')
    buf = _as_bytes_array(data)
    need = height * step
    if buf.size < need:
        raise ImageDecodeError(
            f'image data has {buf.size} bytes, need height * step = {height} * {step} = {need}')
    rows = buf[:need].reshape(height, step)[:, :row_bytes]

    if enc.itemsize == 1:
        samples = rows
    else:
        kind = 'f' if enc.layout == 'float' else 'u'
        dtype = np.dtype(f'{">" if is_bigendian else "<"}{kind}{enc.itemsize}')
        samples = np.ascontiguousarray(rows).view(dtype)
    shape = (height, width, enc.channels) if enc.channels > 1 else (height, width)
    samples = samples.reshape(shape)

    if enc.layout == 'float':
        return _grey_to_rgb(_stretch(samples.astype(np.float64), valid=np.isfinite(samples)))
    if enc.layout == 'depth':
        return _grey_to_rgb(_stretch(samples.astype(np.float64), valid=samples > 0))
    if enc.itemsize == 2:
        samples = _full_range_to_8bit(samples)

    if enc.layout == 'rgb':
        out = samples
    elif enc.layout == 'bgr':
        out = samples[..., ::-1]
    elif enc.layout == 'rgba':
        out = samples[..., :3]
    elif enc.layout == 'bgra':
        out = samples[..., 2::-1]
    elif enc.layout == 'mono':
        return _grey_to_rgb(samples)
    elif enc.layout == 'uyvy':
        return cv2.cvtColor(np.ascontiguousarray(samples), cv2.COLOR_YUV2RGB_UYVY)
    elif enc.layout == 'yuyv':
        return cv2.cvtColor(np.ascontiguousarray(samples), cv2.COLOR_YUV2RGB_YUYV)
    else:  # bayer
        if height < 2 or width < 2:
            raise ImageDecodeError(f'{encoding} needs at least 2x2 pixels, got {width}x{height}')
        return cv2.cvtColor(np.ascontiguousarray(samples), enc.bayer_code)
    # A fresh array: never hand out a view of the middleware's buffer.
    return np.array(out, dtype=np.uint8, order='C', copy=True)


def decode_compressed(data: Any, fmt: str = '') -> np.ndarray:
    """
    Decode a sensor_msgs/CompressedImage payload (JPEG, PNG, ...) into (H, W, 3) uint8 RGB.

    `fmt` is the message's format field; 'compressedDepth' payloads (image_transport's 12-byte
    header + 16-bit PNG) are decoded as depth and stretched like 16UC1.
    """
    buf = _as_bytes_array(data)
    if buf.size == 0:
        raise ImageDecodeError('compressed image is empty')
    f = (fmt or '').lower()
    if 'compresseddepth' in f:
        if 'rvl' in f:
            raise ImageDecodeError(f'compressedDepth RVL is not supported (format {fmt!r})')
        depth = _imdecode(buf[12:], cv2.IMREAD_UNCHANGED, fmt)
        if depth.ndim != 2:
            raise ImageDecodeError(f'compressedDepth payload is not single-channel ({fmt!r})')
        valid = np.isfinite(depth) & (depth > 0)
        return _grey_to_rgb(_stretch(depth.astype(np.float64), valid=valid))
    bgr = _imdecode(buf, cv2.IMREAD_COLOR, fmt)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """Encode an (H, W, 3) RGB or (H, W) grey uint8 image as JPEG."""
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f'JPEG quality must be an int in 1..100, got {quality!r}')
    return _encode('.jpg', rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, 3) RGB or (H, W) grey uint8 image as PNG (lossless)."""
    return _encode('.png', rgb, [])


def resize_max_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """
    Shrink so that the longer side is at most max_side, keeping the aspect ratio.

    Never enlarges: an image already small enough is returned as is (the same object).
    """
    img = check_image(rgb)
    if max_side <= 0:
        raise ValueError(f'max_side must be positive, got {max_side}')
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def resize_to(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to exactly width x height (area filter to shrink, bilinear to enlarge)."""
    img = check_image(rgb)
    if width <= 0 or height <= 0:
        raise ValueError(f'target size must be positive, got {width}x{height}')
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img.copy()
    shrink = width * height < w * h
    return cv2.resize(img, (int(width), int(height)),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def to_grey(rgb: np.ndarray, width: int | None = None) -> np.ndarray:
    """
    Return a new (H, W) uint8 grey copy of an RGB, RGBA or grey image.

    With `width`, the result is resized to exactly that width, keeping the aspect ratio (used to
    keep small, equally sized frames for optical flow).
    """
    img = check_image(rgb, channels=(3, 4))
    if img.ndim == 2:
        grey = img
    elif img.shape[2] == 4:
        grey = cv2.cvtColor(img, cv2.COLOR_RGBA2GRAY)
    else:
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if width is not None:
        if width <= 0:
            raise ValueError(f'width must be positive, got {width}')
        h, w = grey.shape
        if w != width:
            height = max(1, round(h * width / w))
            interp = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
            return cv2.resize(grey, (int(width), height), interpolation=interp)
    return grey.copy() if grey is img else grey


def check_image(img: Any, channels: tuple[int, ...] = (3,), grey: bool = True) -> np.ndarray:
    """
    Return img if it is a non-empty uint8 numpy image, else raise ValueError saying why.

    Accepted shapes: (H, W, c) for c in `channels`, and (H, W) when `grey`. The project's one
    image check: resizing and encoding here, the zoom fallback and the SVLM backend use it.
    """
    if not isinstance(img, np.ndarray):
        raise ValueError(f'expected a numpy image, got {type(img).__name__}')
    if img.dtype != np.uint8:
        raise ValueError(f'expected a uint8 image, got {img.dtype}')
    if not ((grey and img.ndim == 2) or (img.ndim == 3 and img.shape[2] in channels)):
        shapes = (['(H, W)'] if grey else []) + [f'(H, W, {c})' for c in channels]
        raise ValueError(f'expected an {" or ".join(shapes)} image, got shape {img.shape}')
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f'image has zero size {img.shape}')
    return img


# --- internals -------------------------------------------------------------------------------

def _as_bytes_array(data: Any) -> np.ndarray:
    """View any buffer (or sequence of ints) as a flat uint8 array."""
    if data is None:
        raise ImageDecodeError('image data is missing')
    try:
        mv = memoryview(data)
    except TypeError:
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ImageDecodeError(f'image data is not bytes: {type(data).__name__}') from exc
    if not mv.c_contiguous:
        mv = memoryview(mv.tobytes())
    if mv.format != 'B' or mv.ndim != 1:
        mv = mv.cast('B')
    return np.frombuffer(mv, dtype=np.uint8)


def _full_range_to_8bit(samples: np.ndarray) -> np.ndarray:
    # Rounded 65535 -> 255 scaling.
    return ((samples.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _stretch(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Map valid values min..max to 0..255; invalid pixels and flat images become 0."""
    out = np.zeros(values.shape, dtype=np.uint8)
    if not valid.any():
        return out
    v = values[valid]
    lo, hi = float(v.min()), float(v.max())
    if hi > lo:
        out[valid] = np.clip(np.rint((v - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
    return out


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2RGB)


def _imdecode(buf: np.ndarray, flags: int, fmt: str) -> np.ndarray:
    if buf.size == 0:
        raise ImageDecodeError(f'compressed image has no payload (format {fmt!r})')
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as exc:
        raise ImageDecodeError(f'could not decode {buf.size}-byte image ({fmt!r}): {exc}') \
            from exc
    if img is None or img.size == 0:
        raise ImageDecodeError(
            f'could not decode {buf.size}-byte compressed image (format {fmt!r}): corrupt or '
            'not a JPEG/PNG')
    return img


def _encode(ext: str, rgb: np.ndarray, params: list[int]) -> bytes:
    img = check_image(rgb)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(ext, img, params)
    if not ok:
        raise ValueError(f'OpenCV could not encode a {img.shape} image as {ext}')
    return encoded.tobytes()
