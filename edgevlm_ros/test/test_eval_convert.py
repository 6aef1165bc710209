# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""eval.convert: JSONL datasets of frames or a video read as Samples, and clear errors."""

import json
from pathlib import Path

import cv2
from edgevlm_ros.core.regions import Box
from edgevlm_ros.eval import bags
from edgevlm_ros.eval.convert import DatasetError, load_dataset
import numpy as np
import pytest


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
