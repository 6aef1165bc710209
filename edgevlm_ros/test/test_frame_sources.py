# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Frame sources for the demo and evaluations: built-in pan, image folder, video file, rosbag2."""

import itertools

import cv2
from edgevlm_ros.frame_sources import camera_pan, open_source
import numpy as np
import pytest


def _frames(n: int) -> list[np.ndarray]:
    return [np.full((48, 64, 3), (10 * i, 100, 200 - 10 * i), np.uint8) for i in range(n)]


def test_builtin_pan_moves_by_the_set_speed_over_real_photos():
    a, b = itertools.islice(camera_pan(320, 240, px_per_frame=8.0), 2)
    assert a.shape == b.shape == (240, 320, 3)
    assert a.std() > 10, 'real photos, not a blank frame'
    np.testing.assert_array_equal(a[:, 8:], b[:, :-8])


def test_image_folder_is_played_in_name_order_and_loops(tmp_path):
    for i, f in enumerate(_frames(3)):
        cv2.imwrite(str(tmp_path / f'{i:03d}.png'), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (tmp_path / 'notes.txt').write_text('not an image')
    got = list(itertools.islice(open_source(str(tmp_path), 0, 0), 4))
    assert [int(g[0, 0, 0]) for g in got] == [0, 10, 20, 0]


def test_video_file_frames_are_rgb(tmp_path):
    path = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (64, 48))
    for f in _frames(5):
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    got = list(open_source(str(path), 0, 0, loop=False))
    assert len(got) == 5 and got[0].shape == (48, 64, 3)
    assert abs(int(got[0][10, 10, 2]) - 200) < 12  # blue channel stays blue (RGB order)


def test_rosbag2_mcap_image_topic_is_played(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    Image, Header, Time = (ts.types[t] for t in (
        'sensor_msgs/msg/Image', 'std_msgs/msg/Header', 'builtin_interfaces/msg/Time'))
    bag = tmp_path / 'bag'
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection('/cam/image_raw', Image.__msgtype__, typestore=ts)
        for i, f in enumerate(_frames(3)):
            bgr = np.ascontiguousarray(f[:, :, ::-1])
            msg = Image(header=Header(stamp=Time(sec=i, nanosec=0), frame_id='cam'), height=48,
                        width=64, encoding='bgr8', is_bigendian=0, step=64 * 3,
                        data=bgr.reshape(-1))
            w.write(conn, i * 10**9, ts.serialize_cdr(msg, Image.__msgtype__))
    got = list(open_source(str(bag), 0, 0, loop=False, topic='/cam/image_raw'))
    assert len(got) == 3
    np.testing.assert_array_equal(got[1], _frames(3)[1])


def test_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        open_source(str(tmp_path / 'nope'), 64, 48)
    (tmp_path / 'x.xyz').write_text('?')
    with pytest.raises(ValueError, match='cannot tell'):
        open_source(str(tmp_path / 'x.xyz'), 64, 48)
