# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Eval bags, dataset conversion and record bags: round trips and clear errors on bad input."""

import json
from pathlib import Path
import subprocess
import sys

import cv2
from edgevlm_ros.core.records import Sample
from edgevlm_ros.core.regions import Box
from edgevlm_ros.eval import bags
from edgevlm_ros.eval.convert import DatasetError, load_dataset
from edgevlm_ros.sim.synthworld import generate
import numpy as np
import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
SMALL = {'width': 160, 'height': 120}


def _synth(duration_s=6.0, fps=5.0):
    return list(generate(seed=11, duration_s=duration_s, fps=fps, episode_s=3.0,
                         question_every_s=1.5, **SMALL))


def _same_truth(truth, sample):
    assert truth.stamp_ns == bags.EPOCH_NS + round(sample.t_s * 1e9)
    assert (truth.episode, truth.question_id, truth.question, truth.answer, truth.accepted,
            truth.choices) == (sample.episode, sample.question_id, sample.question,
                               sample.answer, sample.accepted, sample.choices)
    assert len(truth.boxes) == len(sample.boxes)
    for a, b in zip(truth.boxes, sample.boxes):  # Region coordinates are float32
        assert a.label == b.label
        assert np.allclose([a.x_min, a.y_min, a.x_max, a.y_max],
                           [b.x_min, b.y_min, b.x_max, b.y_max], atol=1e-6)


# --- eval bags -------------------------------------------------------------------------------

def test_synthetic_world_round_trips_through_a_compressed_bag(tmp_path):
    samples = _synth()
    summary = bags.write_eval_bag(tmp_path / 'bag', samples)
    assert summary['frames'] == len(samples) == 30
    assert summary['episodes'] == ['ep000', 'ep001'] and summary['bytes'] > 0
    bag = bags.read_eval_bag(tmp_path / 'bag')
    info = bag.info
    assert (info.frames, info.start_ns, info.compressed) == (30, bags.EPOCH_NS, True)
    assert info.image_topic == bags.COMPRESSED_TOPIC
    assert info.duration_s == pytest.approx(samples[-1].t_s)
    assert info.episodes == ('ep000', 'ep001')
    assert len(bag.truths) == len(samples)
    for truth, sample in zip(bag.truths, samples):
        _same_truth(truth, sample)
    frames = list(bag.frames())
    assert [f[0] for f in frames] == [t.stamp_ns for t in bag.truths]
    for (_, msgtype, raw), sample in zip(frames, samples):
        rgb = bag.decode_rgb(msgtype, raw)
        assert rgb.shape == sample.rgb.shape
        assert np.abs(rgb.astype(int) - sample.rgb).mean() < 6  # JPEG quality 90
    # The asked question is written at the first frame and whenever it changes.
    expected = [(bags.EPOCH_NS + round(s.t_s * 1e9), s.question) for i, s in enumerate(samples)
                if i == 0 or s.question != samples[i - 1].question]
    assert bag.questions == expected and len(expected) == summary['questions'] >= 3


def test_raw_bag_keeps_frames_exact(tmp_path):
    samples = _synth(duration_s=1.0)
    bags.write_eval_bag(tmp_path / 'raw', samples, compressed=False)
    bag = bags.read_eval_bag(tmp_path / 'raw')
    assert bag.info.image_msgtype == bags.IMAGE_TYPE and not bag.info.compressed
    for (_, msgtype, raw), sample in zip(bag.frames(), samples):
        assert np.array_equal(bag.decode_rgb(msgtype, raw), sample.rgb)


def test_writing_refuses_to_overwrite_and_removes_a_failed_bag(tmp_path):
    samples = _synth(duration_s=1.0)
    bags.write_eval_bag(tmp_path / 'bag', samples)
    with pytest.raises(FileExistsError, match='refusing to overwrite'):
        bags.write_eval_bag(tmp_path / 'bag', samples)
    bad = [*samples[:3], Sample(t_s=9.0, rgb=samples[0].rgb, episode='e', question_id='q',
                                question='Where? (a) up (b) down', answer='left',
                                choices=('up', 'down'))]
    with pytest.raises(ValueError, match=r'frame 3 \(t=9.0 s\).*not one of the choices'):
        bags.write_eval_bag(tmp_path / 'bad', bad)
    assert not (tmp_path / 'bad').exists()
    with pytest.raises(ValueError, match='time must increase'):
        bags.write_eval_bag(tmp_path / 'bad', [samples[1], samples[0]])
    with pytest.raises(ValueError, match='at least one frame'):
        bags.write_eval_bag(tmp_path / 'bad', [])
    assert not (tmp_path / 'bad').exists()


def test_reading_something_that_is_not_an_eval_bag_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        bags.read_eval_bag(tmp_path / 'nope')
    with pytest.raises(bags.BagError, match='metadata.yaml'):
        bags.read_eval_bag(tmp_path)
    with bags.RecordWriter(tmp_path / 'rec') as w:
        w.write('/x', bags.UPDATE_TYPE, _rclpy_update(), 5)
    with pytest.raises(bags.BagError, match='not an eval bag.*camera frames.*/edgevlm/question'
                       r'.*/edgevlm/ground_truth.*topics: /x \(edgevlm_msgs/msg/ContextUpdate'):
        bags.read_eval_bag(tmp_path / 'rec')


# --- dataset conversion ----------------------------------------------------------------------

def _write_frames(folder: Path, n: int, size=(64, 48)) -> list[np.ndarray]:
    (folder / 'frames').mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = []
    for i in range(n):
        rgb = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        cv2.imwrite(str(folder / 'frames' / f'{i:03d}.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        images.append(rgb)
    return images


def _jsonl(path: Path, lines: list) -> Path:
    path.write_text(''.join((ln if isinstance(ln, str) else json.dumps(ln)) + '\n'
                            for ln in lines), encoding='utf-8')
    return path


ANN0 = {'t': 0.0, 'question': 'How many cups?', 'answer': '2', 'accepted': ['two'],
        'episode': 'kitchen', 'boxes': [{'box': [0.1, 0.2, 0.3, 0.4], 'label': 'cup'},
                                        [0.5, 0.5, 0.6, 0.7]]}
ANN1 = {'t': 1.0, 'question': 'Where is the cup? (a) left (b) right', 'answer': 'right',
        'choices': ['left', 'right'], 'question_id': 'where/cup'}
ANN2 = {'t': 1.5, 'question': 'How many cups?', 'answer': '3', 'episode': 'hall'}


def test_frames_dataset_gives_each_frame_the_newest_annotation(tmp_path):
    images = _write_frames(tmp_path, 5)
    lines = [ANN0, *({'frame': f'frames/{i:03d}.png', 't': i * 0.5} for i in range(5)),
             ANN1, ANN2]
    path = _jsonl(tmp_path / 'data.jsonl', lines)
    samples = list(load_dataset(path))
    assert [s.t_s for s in samples] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert all(np.array_equal(s.rgb, img) for s, img in zip(samples, images))
    assert [s.answer for s in samples] == ['2', '2', 'right', '3', '3']
    assert [s.episode for s in samples] == ['kitchen', 'kitchen', 'kitchen', 'hall', 'hall']
    assert samples[0].boxes == (Box(0.1, 0.2, 0.3, 0.4, label='cup'), Box(0.5, 0.5, 0.6, 0.7))
    assert samples[0].accepted == ('two',) and samples[2].choices == ('left', 'right')
    assert samples[2].question_id == 'where/cup'
    # The same question text keeps one derived id.
    assert samples[0].question_id == samples[3].question_id != samples[2].question_id
    # A folder holding the JSONL reads the same.
    assert [s.answer for s in load_dataset(tmp_path)] == [s.answer for s in samples]


def test_frame_line_may_carry_its_own_annotation_and_round_trips_to_a_bag(tmp_path):
    _write_frames(tmp_path, 3)
    path = _jsonl(tmp_path / 'd.jsonl', [
        {'frame': 'frames/000.png', 't': 0.0, 'question': 'Is the door open?', 'answer': 'no'},
        {'frame': 'frames/001.png', 't': 0.1},
        {'frame': 'frames/002.png', 't': 0.2, 'question': 'Is the door open?', 'answer': 'yes'},
    ])
    summary = bags.write_eval_bag(tmp_path / 'bag', load_dataset(path), compressed=False)
    assert summary['frames'] == 3 and summary['episodes'] == ['ep000']
    assert summary['questions'] == 1  # one question text, its answer changes
    bag = bags.read_eval_bag(tmp_path / 'bag')
    assert [t.answer for t in bag.truths] == ['no', 'no', 'yes']
    assert [t.stamp_ns - bags.EPOCH_NS for t in bag.truths] == [0, 100_000_000, 200_000_000]


@pytest.mark.parametrize('fourcc, ext', [('MJPG', 'avi'), ('mp4v', 'mp4')])
def test_video_dataset_uses_the_container_rate_or_the_given_fps(tmp_path, fourcc, ext):
    writer = cv2.VideoWriter(str(tmp_path / f'clip.{ext}'), cv2.VideoWriter_fourcc(*fourcc),
                             4.0, (64, 48))
    assert writer.isOpened(), f'this OpenCV cannot write {fourcc}'
    for i in range(8):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    path = _jsonl(tmp_path / 'v.jsonl', [{'video': f'clip.{ext}', 't0': 0.5},
                                         {**ANN0, 't': 0.5}, {**ANN2, 't': 1.0}])
    samples = list(load_dataset(path))
    assert [s.t_s for s in samples] == [0.5 + i / 4 for i in range(8)]
    assert [s.answer for s in samples] == ['2', '2'] + ['3'] * 6
    assert samples[0].rgb.shape == (48, 64, 3)
    # Frames in order, each its own grey level (codecs shift levels by a few units).
    assert all(abs(s.rgb.mean() - 30 * i) < 8 for i, s in enumerate(samples))
    assert [s.t_s for s in load_dataset(tmp_path, fps=8.0)] == [0.5 + i / 8 for i in range(8)]


def _bad_case(tmp_path: Path, case: str) -> tuple[Path, int]:
    """A dataset broken in one way, and the line number the error must name."""
    _write_frames(tmp_path, 2)
    f0, f1 = ({'frame': f'frames/{i:03d}.png', 't': i * 0.5} for i in range(2))
    lines: list = [ANN0, f0, f1]
    bad_line = 2
    if case == 'missing image':
        lines[2] = {**f1, 'frame': 'frames/missing.png'}
        bad_line = 3
    elif case == 'bad json':
        lines.insert(1, '{"t": 0.2, "question": "x", ')
    elif case == 'box out of range':
        lines.insert(1, {**ANN1, 'boxes': [[0.2, 0.1, 1.5, 0.3]]})
    elif case == 'frame t not increasing':
        lines[2] = {**f1, 't': 0.0}
        bad_line = 3
    elif case == 'annotation t not increasing':
        lines.append({**ANN2, 't': 0.0})
        bad_line = 4
    elif case == 'frame before any annotation':
        lines[0] = {**ANN0, 't': 0.25}
    elif case == 'unknown key':
        lines.insert(1, {**ANN1, 'anwser': 'left'})
    elif case == 'answer not a choice':
        lines.insert(1, {**ANN1, 'answer': 'up'})
    elif case == 'unreadable image':
        (tmp_path / 'frames' / '001.png').write_bytes(b'not a png at all')
        bad_line = 3
    elif case == 'unreadable video':
        (tmp_path / 'clip.avi').write_bytes(b'\x00' * 2048)
        lines = [{'video': 'clip.avi', 'fps': 5}, ANN0]
        bad_line = 1
    return _jsonl(tmp_path / 'bad.jsonl', lines), bad_line


@pytest.mark.parametrize('case, match', [
    ('missing image', 'does not exist'), ('bad json', 'bad JSON'),
    ('box out of range', 'out of range'), ('frame t not increasing', 'does not come after'),
    ('annotation t not increasing', 'does not come after'),
    ('frame before any annotation', 'has no annotation'), ('unknown key', 'anwser'),
    ('answer not a choice', 'not one of the choices'), ('unreadable image', 'cannot read image'),
    ('unreadable video', 'cannot open video'),
])
def test_bad_dataset_input_names_file_and_line(tmp_path, case, match):
    path, line = _bad_case(tmp_path, case)
    with pytest.raises(DatasetError, match=match) as err:
        list(load_dataset(path))
    assert f'{path}:{line}:' in str(err.value)


def test_bad_dataset_locations_fail_clearly(tmp_path):
    with pytest.raises(DatasetError, match='no such file'):
        load_dataset(tmp_path / 'nothing')
    with pytest.raises(DatasetError, match='exactly one \\*.jsonl file, found none'):
        load_dataset(tmp_path)
    _write_frames(tmp_path, 1)
    _jsonl(tmp_path / 'd.jsonl', [ANN0, {'frame': 'frames/000.png', 't': 0.0}])
    with pytest.raises(DatasetError, match='fps=10.0 applies to a video'):
        load_dataset(tmp_path, fps=10.0)
    _jsonl(tmp_path / 'e.jsonl', [ANN0])
    with pytest.raises(DatasetError, match='found d.jsonl, e.jsonl'):
        load_dataset(tmp_path)
    with pytest.raises(DatasetError, match='no frame or video lines'):
        load_dataset(tmp_path / 'e.jsonl')


# --- record bags -----------------------------------------------------------------------------

def _stamp(ns: int):
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _rclpy_update() -> bytes:
    from edgevlm_msgs.msg import ContextUpdate
    from rclpy.serialization import serialize_message

    msg = ContextUpdate(step_id=4, question='q', text='two cups', age_s=1.25)
    msg.header.stamp = _stamp(bags.EPOCH_NS)
    return serialize_message(msg)


def test_record_of_rclpy_messages_reads_back_as_run_records(tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from edgevlm_msgs.msg import Answer, CloudResponse, FocusMask, GroundTruth, Region
    from rclpy.serialization import serialize_message

    t0 = bags.EPOCH_NS + 2_000_000_000
    truth = GroundTruth(episode='ep001', question_id='count/red',
                        question='How many red objects are there?', answer='2',
                        accepted=['two'], choices=[],
                        regions=[Region(label='red circle', score=1.0, x_min=0.25, y_min=0.5,
                                        x_max=0.375, y_max=0.75)])
    truth.header.stamp = _stamp(t0)
    answers = []
    for step, source in ((7, Answer.SOURCE_EDGE), (8, Answer.SOURCE_CLOUD)):
        a = Answer(step_id=step, question=truth.question, answer='two', strategy='edgevlm',
                   source=source, latency_ms=812.5, model_ms=700.25, history_turns=3,
                   replaced_turns=1, newest_cloud_step=5, focus_applied=True,
                   focus_source_step=5, focus_age_s=0.5)
        a.header.stamp = _stamp(t0 + step)
        answers.append(a)
    clouds = []
    for status in range(5):
        c = CloudResponse(step_id=status, question='q', answer='2 red', round_trip_ms=1500.0,
                          model='m', status=status, error='' if status == 0 else 'late',
                          regions=[Region(label='red circle', score=0.5, x_min=0.0, y_min=0.0,
                                          x_max=0.5, y_max=0.5)])
        c.header.stamp = _stamp(t0)
        clouds.append(c)
    focus = FocusMask(source_step_id=1, target_step_id=2, age_s=0.5, confidence=0.75)
    diag = DiagnosticArray(status=[DiagnosticStatus(
        name='/eval/edge_svlm', values=[KeyValue(key='answers', value='12')])])
    with bags.RecordWriter(tmp_path / 'rec') as w:
        log = t0 + 10_000_000
        w.write('/edgevlm/ground_truth', bags.TRUTH_TYPE, serialize_message(truth), t0)
        for i, a in enumerate(answers):
            w.write('/eval/edgevlm/answer', bags.ANSWER_TYPE, serialize_message(a), log + i)
        for i, c in enumerate(clouds):
            w.write('/eval/edgevlm/cloud_response', bags.CLOUD_TYPE, serialize_message(c),
                    log + 10 + i)
        w.write('/eval/edgevlm/context_update', bags.UPDATE_TYPE, _rclpy_update(), log + 20)
        w.write('/eval/edgevlm/focus_mask', bags.FOCUS_TYPE, serialize_message(focus), log + 21)
        w.write('/diagnostics', bags.DIAGNOSTICS_TYPE, serialize_message(diag), log + 22)
        assert w.messages == 11
    run = bags.read_record(tmp_path / 'rec', strategy='edgevlm', network_profile='fixed:900')
    assert (run.strategy, run.network_profile) == ('edgevlm', 'fixed:900')
    [t] = run.truths
    assert (t.stamp_ns, t.episode, t.question_id, t.answer, t.accepted, t.choices) == (
        t0, 'ep001', 'count/red', '2', ('two',), ())
    assert t.boxes == (Box(0.25, 0.5, 0.375, 0.75, label='red circle'),)
    assert [a.source for a in run.answers] == ['edge', 'cloud']
    a = run.answers[1]
    assert (a.stamp_ns, a.step_id, a.answer, a.latency_ms, a.model_ms, a.received_ns) == (
        t0 + 8, 8, 'two', 812.5, 700.25, log + 1)
    assert (a.history_turns, a.replaced_turns, a.newest_cloud_step, a.focus_applied,
            a.focus_source_step, a.focus_age_s) == (3, 1, 5, True, 5, 0.5)
    assert a.published_ns == t0 + 8 + 812_500_000
    assert [c.status for c in run.clouds] == ['ok', 'timeout', 'http_error', 'parse_error',
                                              'dropped']
    assert run.clouds[1].error == 'late' and run.clouds[0].round_trip_ms == 1500.0
    assert run.clouds[0].boxes == (Box(0.0, 0.0, 0.5, 0.5, label='red circle', score=0.5),)
    assert [c.received_ns for c in run.clouds] == [log + 10 + i for i in range(5)]
    [u] = run.updates
    assert (u.step_id, u.text, u.age_s, u.received_ns) == (4, 'two cups', 1.25, log + 20)
    assert run.counters == {'edge_svlm': {'answers': '12'}}
    assert run.meta['focus_masks'] == 1


def test_record_writer_refuses_what_is_not_a_record(tmp_path):
    from edgevlm_msgs.msg import CloudResponse
    from rclpy.serialization import serialize_message

    (tmp_path / 'taken').mkdir()
    with pytest.raises(FileExistsError):
        bags.RecordWriter(tmp_path / 'taken')
    with bags.RecordWriter(tmp_path / 'rec') as w:
        with pytest.raises(ValueError, match='std_msgs/msg/String is not recorded'):
            w.write('/q', 'std_msgs/msg/String', b'', 1)
        w.write('/u', bags.UPDATE_TYPE, _rclpy_update(), 1)
        with pytest.raises(ValueError, match='/u was recorded as edgevlm_msgs/msg/ContextUpdate'):
            w.write('/u', bags.ANSWER_TYPE, b'', 2)
        c = CloudResponse(step_id=1, status=9)
        w.write('/c', bags.CLOUD_TYPE, serialize_message(c), 3)
    with pytest.raises(bags.BagError, match='/c message at log time 3: unknown '
                       'CloudResponse.status 9'):
        bags.read_record(tmp_path / 'rec')


def test_bags_and_convert_do_not_import_rclpy():
    code = ('import sys\n'
            'import edgevlm_ros.eval.bags, edgevlm_ros.eval.convert\n'
            'edgevlm_ros.eval.bags.typestore()\n'
            "assert 'rclpy' not in sys.modules, 'rclpy imported'\n")
    done = subprocess.run([sys.executable, '-c', code], cwd=PACKAGE_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
