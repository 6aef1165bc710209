# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""eval.bags: eval bags and record bags, round trips and clear errors on bad input."""

from pathlib import Path
import subprocess
import sys

from edgevlm_ros.core.records import Sample
from edgevlm_ros.core.regions import Box
from edgevlm_ros.eval import bags
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
