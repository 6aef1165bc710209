# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Camera decoding without cv_bridge: every encoding, padding, endianness, bad input."""

import array

import cv2
from edgevlm_ros.core.images import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    decode_compressed,
    encode_jpeg,
    encode_png,
    raw_to_rgb,
    resize_max_side,
    resize_to,
    to_grey,
)
import numpy as np
import pytest

H, W = 6, 8
RGB = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _padded(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Row bytes with `pad` junk bytes at the end of each row, and the resulting step."""
    flat = rows.reshape(rows.shape[0], -1).view(np.uint8)
    junk = np.full((flat.shape[0], pad), 0xAB, np.uint8)
    out = np.hstack([flat, junk])
    return out.tobytes(), out.shape[1]


def test_supported_encodings_cover_the_common_camera_formats():
    assert {'rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', '8UC1', '8UC3', '8UC4', '16UC1',
            'rgb16', 'bgr16', 'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv', 'bayer_rggb8',
            'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8', '32FC1'} <= SUPPORTED_ENCODINGS


@pytest.mark.parametrize('encoding,pixels', [
    ('rgb8', RGB), ('bgr8', RGB[..., ::-1]), ('8UC3', RGB[..., ::-1]),
    ('rgba8', np.dstack([RGB, np.full((H, W), 7, np.uint8)])),
    ('bgra8', np.dstack([RGB[..., ::-1], np.full((H, W), 7, np.uint8)])),
    ('8UC4', np.dstack([RGB[..., ::-1], np.full((H, W), 7, np.uint8)])),
])
def test_8bit_colour_encodings_with_row_padding(encoding, pixels):
    data, step = _padded(np.ascontiguousarray(pixels), pad=5)
    out = raw_to_rgb(data, H, W, encoding, step, False)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('encoding,order', [('rgb16', 1), ('bgr16', -1)])
def test_16bit_colour_is_scaled_to_8bit(encoding, order, big_endian):
    wide = RGB[..., ::order].astype(np.uint16) * 257
    wide = wide.astype('>u2' if big_endian else '<u2')
    data, step = _padded(np.ascontiguousarray(wide), pad=2)
    np.testing.assert_array_equal(raw_to_rgb(data, H, W, encoding, step, big_endian), RGB)


def test_mono8_and_mono16_become_grey_rgb():
    grey = RGB[..., 0]
    out = raw_to_rgb(array.array('B', grey.tobytes()), H, W, 'mono8', W, False)
    assert (out == grey[..., None]).all()
    out16 = raw_to_rgb((grey.astype(np.uint16) * 257).tobytes(), H, W, 'mono16', 2 * W, False)
    assert (out16 == grey[..., None]).all()


def test_16uc1_depth_is_stretched_over_valid_pixels():
    depth = np.array([[0, 1000], [2000, 3000]], np.uint16)
    out = raw_to_rgb(depth.tobytes(), 2, 2, '16UC1', 4, False)[..., 0]
    np.testing.assert_array_equal(out, [[0, 0], [128, 255]])


def test_32fc1_is_normalised_min_to_max_and_nan_is_black():
    f = np.array([[np.nan, 1.0], [2.0, 3.0]], '>f4')
    out = raw_to_rgb(f.tobytes(), 2, 2, '32FC1', 8, True)[..., 0]
    np.testing.assert_array_equal(out, [[0, 0], [128, 255]])
    flat = raw_to_rgb(np.ones((2, 2), np.float32).tobytes(), 2, 2, '32FC1', 8, False)
    assert (flat == 0).all()


@pytest.mark.parametrize('encoding', ['uyvy', 'yuv422', 'yuyv', 'yuv422_yuy2'])
def test_yuv422_decodes_a_flat_colour(encoding):
    r, g, b = 200, 60, 30
    # BT.601 video range, as camera drivers emit it.
    y = round(16 + 0.257 * r + 0.504 * g + 0.098 * b)
    u = round(128 - 0.148 * r - 0.291 * g + 0.439 * b)
    v = round(128 + 0.439 * r - 0.368 * g - 0.071 * b)
    pair = [u, y, v, y] if encoding in ('uyvy', 'yuv422') else [y, u, y, v]
    data = np.tile(np.array(pair, np.uint8), H * W // 2).tobytes()
    out = raw_to_rgb(data, H, W, encoding, 2 * W, False)
    assert np.abs(out.astype(int) - [r, g, b]).max() <= 4


@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
def test_bayer_patterns_decode_to_the_scene_colour(pattern):
    scene = {'r': 200, 'g': 100, 'b': 30}
    mosaic = np.zeros((8, 8), np.uint8)
    for k, c in enumerate(pattern):
        mosaic[k // 2::2, k % 2::2] = scene[c]
    out = raw_to_rgb(mosaic.tobytes(), 8, 8, f'bayer_{pattern}8', 8, False)
    np.testing.assert_array_equal(out[4, 4], [200, 100, 30])


def test_encoding_names_are_case_insensitive():
    np.testing.assert_array_equal(raw_to_rgb(RGB.tobytes(), H, W, 'RGB8', 3 * W, False), RGB)


def test_result_does_not_alias_the_message_buffer():
    buf = bytearray(RGB.tobytes())
    out = raw_to_rgb(buf, H, W, 'rgb8', 3 * W, False)
    buf[:] = bytes(len(buf))
    np.testing.assert_array_equal(out, RGB)
    out[0, 0] = 0  # writable


@pytest.mark.parametrize('args,message', [
    ((RGB.tobytes(), H, W, 'yuv444_weird', 3 * W, False), 'unsupported image encoding'),
    ((b'', 0, W, 'rgb8', 3 * W, False), 'zero size'),
    ((RGB.tobytes()[:-1], H, W, 'rgb8', 3 * W, False), 'need height \\* step'),
    ((RGB.tobytes(), H, W, 'rgb8', 3 * W - 1, False), 'step'),
    ((bytes(2 * 3 * 5), 3, 5, 'uyvy', 10, False), 'even width'),
    ((None, H, W, 'rgb8', 3 * W, False), 'missing'),
])
def test_bad_raw_images_raise_a_clear_error(args, message):
    with pytest.raises(ImageDecodeError, match=message):
        raw_to_rgb(*args)


def test_png_round_trip_is_exact_and_jpeg_is_close():
    np.testing.assert_array_equal(decode_compressed(encode_png(RGB), 'png'), RGB)
    smooth = np.full((32, 48, 3), (200, 100, 50), np.uint8)
    out = decode_compressed(encode_jpeg(smooth, 95), 'jpeg')
    assert out.shape == (32, 48, 3) and np.abs(out.astype(int) - smooth).max() <= 3


def test_compressed_depth_is_decoded_and_stretched():
    depth = np.array([[0, 1000], [2000, 3000]], np.uint16)
    ok, png = cv2.imencode('.png', depth)
    assert ok
    out = decode_compressed(bytes(12) + png.tobytes(), '16UC1; compressedDepth png')
    np.testing.assert_array_equal(out[..., 0], [[0, 0], [128, 255]])


@pytest.mark.parametrize('data', [b'', b'not an image', encode_jpeg(RGB)[:20]])
def test_corrupt_or_empty_compressed_data_raises(data):
    with pytest.raises(ImageDecodeError):
        decode_compressed(data, 'jpeg')


def test_encode_rejects_bad_input():
    with pytest.raises(ValueError, match='quality'):
        encode_jpeg(RGB, 0)
    with pytest.raises(ValueError, match='uint8'):
        encode_png(RGB.astype(np.float32))
    with pytest.raises(ValueError, match='shape'):
        encode_png(np.zeros((4, 4, 2), np.uint8))


def test_resize_max_side_only_shrinks_and_keeps_aspect():
    img = np.zeros((480, 640, 3), np.uint8)
    assert resize_max_side(img, 320).shape == (240, 320, 3)
    assert resize_max_side(img, 1024) is img
    assert resize_max_side(np.zeros((640, 10, 3), np.uint8), 64).shape == (64, 1, 3)
    with pytest.raises(ValueError):
        resize_max_side(img, 0)


def test_resize_to_and_to_grey():
    assert resize_to(RGB, 16, 3).shape == (3, 16, 3)
    grey = to_grey(np.zeros((120, 200, 3), np.uint8), 100)
    assert grey.shape == (60, 100) and grey.dtype == np.uint8
    g = to_grey(RGB)
    assert g.shape == (H, W)
    src = RGB[..., 0].copy()
    same = to_grey(src)
    assert same is not src and (same == src).all()


# --- cv_bridge's conventions ------------------------------------------------------------------
# The nodes decode frames without cv_bridge (docs/design-decisions.md says why); what they get
# must be what `CvBridge().imgmsg_to_cv2(msg, desired_encoding='rgb8')` gives for every encoding
# both handle. cv_bridge's documented behaviour, restated here in plain numpy (no cv_bridge, no
# OpenCV) as the reference:
# * the buffer is `height` rows of `step` bytes; bytes past width * pixel size are padding;
# * multi-byte samples are in the byte order `is_bigendian` names (swapped when it is not the
#   machine's); one-byte samples ignore the flag;
# * the channel order is the encoding's (bgr* is blue first); rgba/bgra lose alpha; mono is
#   repeated into three channels;
# * 16-bit to 8-bit scales by 255 / 65535 (OpenCV convertTo rounds to the nearest value).
CV_BRIDGE_ORDER = {'rgb8': ('rgb', 1), 'bgr8': ('bgr', 1), 'rgba8': ('rgba', 1),
                   'bgra8': ('bgra', 1), 'mono8': ('l', 1), 'rgb16': ('rgb', 2),
                   'bgr16': ('bgr', 2), 'rgba16': ('rgba', 2), 'bgra16': ('bgra', 2),
                   'mono16': ('l', 2)}


def _cv_bridge_rgb8(data: bytes, height: int, width: int, encoding: str, step: int,
                    big_endian: bool) -> np.ndarray:
    """imgmsg_to_cv2(msg, 'rgb8') as cv_bridge documents it, for CV_BRIDGE_ORDER's encodings."""
    order, size = CV_BRIDGE_ORDER[encoding]
    channels = len(order)
    rows = np.frombuffer(data, np.uint8)[:height * step].reshape(height, step)
    rows = rows[:, :width * channels * size]
    if size == 2:
        first, second = rows[:, 0::2].astype(np.int64), rows[:, 1::2].astype(np.int64)
        samples = first * 256 + second if big_endian else second * 256 + first
        samples = np.floor(samples * 255 / 65535 + 0.5)
    else:
        samples = rows.astype(np.int64)
    pixels = samples.reshape(height, width, channels)
    rgb = np.stack([pixels[..., order.index(c) if c in order else 0] for c in 'rgb'], axis=-1)
    return rgb.astype(np.uint8)


@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('pad', [0, 3])
@pytest.mark.parametrize('encoding', sorted(CV_BRIDGE_ORDER))
def test_decoding_follows_cv_bridge_imgmsg_to_cv2_rgb8(encoding, pad, big_endian):
    order, size = CV_BRIDGE_ORDER[encoding]
    height, width = 5, 7
    rng = np.random.default_rng(len(encoding) * 10 + pad)
    row_bytes = width * len(order) * size
    # Every byte random, padding included: full 0..65535 range for the 16-bit encodings.
    data = rng.integers(0, 256, height * (row_bytes + pad), dtype=np.uint8).tobytes()
    out = raw_to_rgb(data, height, width, encoding, row_bytes + pad, big_endian)
    expected = _cv_bridge_rgb8(data, height, width, encoding, row_bytes + pad, big_endian)
    assert out.shape == (height, width, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


def test_cv_bridge_reference_itself_on_known_pixels():
    # The reference, checked by hand: a bgra8 pixel loses alpha and swaps; a big-endian mono16
    # 0x8000 is 32768 -> 127.5 -> 128; the same bytes read little-endian are 0x0080 = 128 -> 0.
    bgra = bytes([10, 20, 30, 99])
    assert _cv_bridge_rgb8(bgra, 1, 1, 'bgra8', 4, False).tolist() == [[[30, 20, 10]]]
    assert _cv_bridge_rgb8(bytes([0x80, 0x00]), 1, 1, 'mono16', 2, True).tolist() == \
        [[[128, 128, 128]]]
    assert _cv_bridge_rgb8(bytes([0x80, 0x00]), 1, 1, 'mono16', 2, False).tolist() == \
        [[[0, 0, 0]]]
