# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Frame sources for the demo and evaluations: built-in pan, image folder, video file, rosbag2."""

import itertools

import cv2
from edgevlm_ros.sim.frame_sources import SynthSource, camera_pan, open_source
from edgevlm_ros.sim.synthworld import WorldSpec
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


# A small, fast world: 3 s at 5 fps, a new question every second, two episodes.
SMALL_WORLD = 'synth:seed=3,duration=3,fps=5,episode=2,question_every=1,width=128,height=96'


def _play(source, frames: int) -> list[tuple[str | None, object]]:
    """Play like frame_source_node: a question (or None) sent before each frame, then the frame."""
    played = [(source.question_to_send(), next(source))]
    for _ in range(frames - 1):
        sent = source.question_to_send()  # right after the previous frame, before this one
        played.append((sent, next(source)))
    return played


def test_synth_source_plays_the_worlds_frames_in_order():
    samples = list(WorldSpec.parse(SMALL_WORLD).generate())
    source = open_source(SMALL_WORLD, 640, 480)  # the world's own size, not builtin:pan's
    assert isinstance(source, SynthSource)
    for want in samples:
        np.testing.assert_array_equal(next(source), want.rgb)
        assert source.sample.question == want.question
        truth = source.truth(123)
        assert (truth.stamp_ns, truth.answer, truth.choices, truth.boxes) == (
            123, want.answer, want.choices, want.boxes)


def test_synth_source_sends_each_question_before_its_first_frame_and_only_on_change():
    samples = list(WorldSpec.parse(SMALL_WORLD).generate())
    played = _play(open_source(SMALL_WORLD, 0, 0, loop=False), len(samples))
    asked = None
    for (sent, _), want in zip(played, samples):
        asked = sent or asked
        assert asked == want.question  # what a camera would pair with this frame
    # A new question every second (5 frames), sent once, before its first frame.
    assert [i for i, (sent, _) in enumerate(played) if sent] == [0, 5, 10]
    assert len({s.question for s in samples}) == 3


def test_synth_source_loops_from_the_first_frame_or_ends():
    n = WorldSpec.parse(SMALL_WORLD).frames
    looping = open_source(SMALL_WORLD, 0, 0, loop=True)
    first = [next(looping) for _ in range(n)]
    again = next(looping)
    np.testing.assert_array_equal(again, first[0])
    assert looping.passes == 2 and looping.sample.t_s == 0.0
    once = open_source(SMALL_WORLD, 0, 0, loop=False)
    assert len(list(once)) == n
    assert once.question_to_send() is None  # nothing after the end


def test_synth_source_renders_at_most_one_frame_ahead(monkeypatch):
    generate = WorldSpec.generate
    rendered = []

    def counting(spec):
        for sample in generate(spec):
            rendered.append(sample.t_s)
            yield sample
    monkeypatch.setattr(WorldSpec, 'generate', counting)
    source = open_source('synth:duration=3600,width=128,height=96', 0, 0)
    assert rendered == []  # opening renders nothing
    for k in range(1, 4):
        next(source)
        source.question_to_send()
        assert len(rendered) == k + 1


def test_synth_spec_forms_and_errors():
    assert open_source('synth', 0, 0).spec == WorldSpec()  # bare 'synth' survives rcl's YAML
    assert open_source('synth:seed=2,pace=0.3', 0, 0).spec == WorldSpec(seed=2, pace=0.3)
    with pytest.raises(ValueError, match="frame source 'synth:seed=x'.*seed must be a number"):
        open_source('synth:seed=x', 0, 0)
    with pytest.raises(ValueError, match='colour'):
        open_source('synth:colour=red', 0, 0)
    with pytest.raises(ValueError, match='pace'):
        open_source('synth:pace=2', 0, 0)
