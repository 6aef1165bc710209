# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Datasets you can write by hand or script, read as evaluation Samples (then written as an eval bag).

Why one module of 407 lines: it is one dataset format and its parser: the format is specified in
this docstring and the parser checks every key of it with a ``file:line`` error. The
specification and its checks change together.

A dataset is one UTF-8 JSONL file (one JSON object per line; blank lines are skipped), or a
folder holding exactly one ``*.jsonl`` file at its top level. Relative paths in it are relative
to the folder of the JSONL file. Times ``t`` are seconds (JSON numbers >= 0) from the start of
the dataset. Each line is one of three kinds, told apart by its keys:

Frame line: one image file (anything OpenCV reads: JPEG, PNG, BMP, ...) shown at ``t``::

    {"frame": "frames/000001.jpg", "t": 0.0}

Frame lines' ``t`` strictly increase in file order.

Video line: a video file (anything this OpenCV decodes, e.g. MJPG .avi or mp4v .mp4); its frame
``i`` is shown at ``t0 + i / fps``::

    {"video": "drive.mp4", "fps": 10.0, "t0": 0.0}

``fps``: the ``fps`` argument of load_dataset if given, else this line's ``"fps"``, else the
container's frame rate (an error if none is known). ``t0`` is optional (default 0). A dataset has
either frame lines or exactly one video line.

Annotation line: from ``t`` on, the question asked and its true answer::

    {"t": 0.0, "question": "Where is the green ball? (a) left (b) centre (c) right",
     "answer": "left", "choices": ["left", "centre", "right"],
     "accepted": [], "boxes": [{"box": [0.10, 0.40, 0.22, 0.58], "label": "green ball"}],
     "question_id": "where/green-ball", "episode": "kitchen"}

* ``question`` (non-empty) and ``answer`` (a string) are required;
* ``choices``: optional, at least 2 distinct non-empty strings (multiple choice); then ``answer``
  must be exactly one of them (the correct option's text);
* ``accepted``: optional list of other correct answers (synonyms);
* ``boxes``: optional list of where the objects the answer depends on are, each
  ``{"box": [x0, y0, x1, y1], "label": "...", "score": 1.0}`` (label and score optional) or a
  bare ``[x0, y0, x1, y1]``, normalised: ``0 <= x0 < x1 <= 1`` and ``0 <= y0 < y1 <= 1``;
* ``question_id``: optional; by default derived from the question text (the same text always
  gets the same id);
* ``episode``: optional; by default the previous annotation's episode, ``"ep000"`` for the first;
* ``meta``: optional, anything; ignored (for your own bookkeeping). Other keys are errors.

Annotation lines' ``t`` strictly increase in file order (they may be interleaved with frame
lines in any way). A frame line may carry annotation keys too: it is then also an annotation at
its own ``t``.

Which truth a frame gets: the annotation with the greatest ``t`` <= the frame's ``t`` (exactly
one question is asked at each frame: the one whose annotation started most recently; an answer
holds until the next annotation). A frame before the first annotation is an error.

Errors: DatasetError (a ValueError) naming ``file:line`` for a missing file, bad JSON, an unknown
or mistyped key, a box out of range, times that do not increase, frames without an annotation,
and an image or video that cannot be read (found while streaming, at that frame).

Memory: the JSONL's lines are parsed up front (small records); images and video frames are read
one at a time while iterating.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import hashlib
import json
import math
import os
from pathlib import Path
import re
from typing import Any

import cv2
import numpy as np

from edgevlm_ros.core.records import Sample
from edgevlm_ros.core.regions import Box

DEFAULT_EPISODE = 'ep000'
_ANNOTATION_KEYS = {'question', 'answer', 'choices', 'accepted', 'boxes', 'question_id',
                    'episode'}
_KEYS = {'frame': {'frame', 't', 'meta'} | _ANNOTATION_KEYS,
         'video': {'video', 'fps', 't0', 'meta'},
         'annotation': {'t', 'meta'} | _ANNOTATION_KEYS}


class DatasetError(ValueError):
    """A dataset line (or the file it names) is not what the format says."""


@dataclass(frozen=True)
class Annotation:
    t_s: float
    where: str  # file:line
    episode: str
    question_id: str
    question: str
    answer: str
    accepted: tuple[str, ...]
    choices: tuple[str, ...]
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class _Frame:
    t_s: float
    path: Path
    where: str


@dataclass(frozen=True)
class _Video:
    path: Path
    fps: float | None
    t0: float
    where: str


def find_jsonl(path: str | os.PathLike) -> Path:
    """The dataset's JSONL file: `path` itself, or the one *.jsonl in the folder `path`."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f'{p}: no such file or folder')
    if p.is_file():
        return p
    found = sorted(q for q in p.glob('*.jsonl') if q.is_file())
    if len(found) != 1:
        names = ', '.join(q.name for q in found) or 'none'
        raise DatasetError(f'{p}: a dataset folder must hold exactly one *.jsonl file, found '
                           f'{names}')
    return found[0]


def load_dataset(path: str | os.PathLike, *, fps: float | None = None) -> Iterator[Sample]:
    """
    The dataset at `path` (a JSONL file or a folder holding one) as Samples in time order.

    The JSONL is parsed and checked before this returns (DatasetError on bad lines); images and
    video frames are decoded while iterating. `fps` sets a video's frame rate (see the module
    docstring); it is an error for a dataset of frame lines, whose times are given.
    """
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, int | float)
                            or not math.isfinite(fps) or fps <= 0):
        raise ValueError(f'fps must be a positive number, got {fps!r}')
    jsonl = find_jsonl(path)
    frames, videos, annotations = _parse(jsonl)
    if videos:
        if frames:
            raise DatasetError(f'{frames[0].where}: a dataset has frame lines or one video '
                               f'line, not both (video at {videos[0].where})')
        if len(videos) > 1:
            raise DatasetError(f'{videos[1].where}: a dataset has at most one video line '
                               f'(the first is at {videos[0].where})')
    elif not frames:
        raise DatasetError(f'{jsonl}: no frame or video lines')
    elif fps is not None:
        raise DatasetError(f"{jsonl}: fps={fps} applies to a video; this dataset's frame "
                           'lines carry their own times')
    if not annotations:
        raise DatasetError(f'{jsonl}: no annotation lines (every frame needs a question and '
                           'its answer)')
    if frames:
        first = frames[0]
        if first.t_s < annotations[0].t_s:
            raise DatasetError(f'{first.where}: frame at t={first.t_s} s has no annotation: '
                               f'the first one starts at t={annotations[0].t_s} s '
                               f'({annotations[0].where})')
        return _Stream(_frame_images(frames), annotations, len(frames))
    video = videos[0]
    cap, rate, count = _open_video(video, fps)
    if video.t0 < annotations[0].t_s:
        cap.release()
        raise DatasetError(f'{video.where}: the video starts at t={video.t0} s, before the '
                           f'first annotation (t={annotations[0].t_s} s, '
                           f'{annotations[0].where}), so its first frames have no annotation')
    return _Stream(_video_images(cap, video, rate), annotations, count)


# --- internals -------------------------------------------------------------------------------

class _Stream(Iterator[Sample]):
    """Pairs each (t, rgb) with the newest annotation; knows how many frames are left."""

    def __init__(self, images: Iterator[tuple[float, np.ndarray]],
                 annotations: list[Annotation], total: int) -> None:
        self._images, self._annotations, self._left = images, annotations, total
        self._k = 0

    def __length_hint__(self) -> int:
        return max(0, self._left)

    def __next__(self) -> Sample:
        t, rgb = next(self._images)
        self._left -= 1
        anns = self._annotations
        while self._k + 1 < len(anns) and anns[self._k + 1].t_s <= t:
            self._k += 1
        a = anns[self._k]
        return Sample(t_s=t, rgb=rgb, episode=a.episode, question_id=a.question_id,
                      question=a.question, answer=a.answer, accepted=a.accepted,
                      choices=a.choices, boxes=a.boxes)


def _frame_images(frames: list[_Frame]) -> Iterator[tuple[float, np.ndarray]]:
    for f in frames:
        try:
            bgr = cv2.imread(str(f.path), cv2.IMREAD_COLOR)
        except cv2.error as exc:
            raise DatasetError(f'{f.where}: cannot read image {f.path}: {exc}') from exc
        if bgr is None or bgr.size == 0:
            raise DatasetError(f'{f.where}: cannot read image {f.path} (corrupt, empty or not '
                               'an image format OpenCV knows)')
        yield f.t_s, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _open_video(video: _Video, fps: float | None) -> tuple[Any, float, int]:
    cap = cv2.VideoCapture(str(video.path))
    if not cap.isOpened():
        raise DatasetError(f'{video.where}: cannot open video {video.path} (not a video this '
                           'OpenCV can decode)')
    rate = fps if fps is not None else video.fps
    if rate is None:
        rate = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(rate) or rate <= 0:
            cap.release()
            raise DatasetError(f'{video.where}: {video.path} does not say its frame rate; '
                               'give "fps" in the video line or the fps argument')
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return cap, float(rate), max(0, count)


def _video_images(cap: Any, video: _Video, rate: float) -> Iterator[tuple[float, np.ndarray]]:
    i = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break
            yield video.t0 + i / rate, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()
    if i == 0:
        raise DatasetError(f'{video.where}: no frame of {video.path} could be decoded')


def _parse(jsonl: Path) -> tuple[list[_Frame], list[_Video], list[Annotation]]:
    frames: list[_Frame] = []
    videos: list[_Video] = []
    annotations: list[Annotation] = []
    base = jsonl.parent
    try:
        f = jsonl.open(encoding='utf-8')
    except OSError as exc:
        raise DatasetError(f'{jsonl}: cannot open: {exc}') from exc
    with f:
        for n, line in enumerate(_lines(f, jsonl), start=1):
            if not line.strip():
                continue
            where = f'{jsonl}:{n}'
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f'{where}: bad JSON: {exc.msg} (column {exc.colno})') \
                    from None
            if not isinstance(obj, dict):
                raise DatasetError(f'{where}: expected a JSON object, got '
                                   f'{type(obj).__name__}')
            kind = 'frame' if 'frame' in obj else 'video' if 'video' in obj else 'annotation'
            unknown = sorted(set(obj) - _KEYS[kind])
            if unknown:
                raise DatasetError(f'{where}: unknown key(s) {", ".join(unknown)} in a {kind} '
                                   f'line (allowed: {", ".join(sorted(_KEYS[kind]))})')
            if kind == 'video':
                videos.append(_Video(_file(obj, 'video', base, where),
                                     _number(obj, 'fps', where, positive=True, default=None),
                                     _number(obj, 't0', where, default=0.0), where))
                continue
            if kind == 'frame':
                t = _number(obj, 't', where)
                if frames and t <= frames[-1].t_s:
                    raise DatasetError(f'{where}: frame t={t} s does not come after the '
                                       f'previous frame (t={frames[-1].t_s} s, '
                                       f'{frames[-1].where})')
                frames.append(_Frame(t, _file(obj, 'frame', base, where), where))
                if not _ANNOTATION_KEYS & set(obj):
                    continue
            previous = annotations[-1] if annotations else None
            ann = _annotation(obj, where, previous)
            if previous is not None and ann.t_s <= previous.t_s:
                raise DatasetError(f'{where}: annotation t={ann.t_s} s does not come after the '
                                   f'previous annotation (t={previous.t_s} s, '
                                   f'{previous.where})')
            annotations.append(ann)
    return frames, videos, annotations


def _lines(f: Any, jsonl: Path) -> Iterator[str]:
    try:
        yield from f
    except UnicodeDecodeError as exc:
        raise DatasetError(f'{jsonl}: not UTF-8 text ({exc.reason} at byte {exc.start})') \
            from None


def _annotation(obj: dict, where: str, previous: Annotation | None) -> Annotation:
    t = _number(obj, 't', where)
    question = obj.get('question')
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f'{where}: "question" must be a non-empty string'
                           + ('' if 'question' in obj else ' (missing)'))
    answer = obj.get('answer')
    if not isinstance(answer, str):
        raise DatasetError(f'{where}: "answer" must be a string'
                           + ('' if 'answer' in obj else ' (missing)'))
    choices = _strings(obj, 'choices', where)
    if choices:
        if len(choices) < 2 or len(set(choices)) != len(choices) \
                or not all(c.strip() for c in choices):
            raise DatasetError(f'{where}: "choices" must be at least 2 distinct non-empty '
                               f'strings, got {list(choices)}')
        if answer not in choices:
            raise DatasetError(f'{where}: answer {answer!r} is not one of the choices '
                               f"{list(choices)} (give the correct option's text)")
    episode = obj.get('episode', previous.episode if previous else DEFAULT_EPISODE)
    if not isinstance(episode, str) or not episode.strip():
        raise DatasetError(f'{where}: "episode" must be a non-empty string')
    qid = obj.get('question_id', _question_id(question))
    if not isinstance(qid, str) or not qid.strip():
        raise DatasetError(f'{where}: "question_id" must be a non-empty string')
    return Annotation(t, where, episode, qid, question, answer,
                      _strings(obj, 'accepted', where), choices, _boxes(obj, where))


def _question_id(question: str) -> str:
    slug = re.sub(r'[^a-z0-9]+', '-', question.lower()).strip('-')[:40].rstrip('-')
    digest = hashlib.sha1(question.encode('utf-8')).hexdigest()[:8]
    return f'{slug}-{digest}' if slug else f'q-{digest}'


def _number(obj: dict, key: str, where: str, *, positive: bool = False,
            default: Any = ...) -> Any:
    if key not in obj:
        if default is ...:
            raise DatasetError(f'{where}: "{key}" is missing')
        return default
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
            or v < 0 or (positive and v == 0):
        need = 'a positive number' if positive else 'a number >= 0'
        raise DatasetError(f'{where}: "{key}" must be {need}, got {v!r}')
    return float(v)


def _file(obj: dict, key: str, base: Path, where: str) -> Path:
    name = obj[key]
    if not isinstance(name, str) or not name.strip():
        raise DatasetError(f'{where}: "{key}" must be a file path')
    p = Path(name).expanduser()
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise DatasetError(f'{where}: {key} file {p} does not exist')
    return p


def _strings(obj: dict, key: str, where: str) -> tuple[str, ...]:
    v = obj.get(key, [])
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise DatasetError(f'{where}: "{key}" must be a list of strings')
    return tuple(v)


def _boxes(obj: dict, where: str) -> tuple[Box, ...]:
    raw = obj.get('boxes', [])
    if not isinstance(raw, list):
        raise DatasetError(f'{where}: "boxes" must be a list')
    out = []
    for i, b in enumerate(raw):
        label, score = '', 1.0
        if isinstance(b, dict):
            extra = sorted(set(b) - {'box', 'label', 'score'})
            if extra or 'box' not in b:
                raise DatasetError(f'{where}: boxes[{i}] must have "box" and optionally '
                                   f'"label", "score" (got keys {sorted(b)})')
            label, score, coords = b.get('label', ''), b.get('score', 1.0), b['box']
            if not isinstance(label, str):
                raise DatasetError(f'{where}: boxes[{i}].label must be a string')
            if isinstance(score, bool) or not isinstance(score, int | float) \
                    or not math.isfinite(score):
                raise DatasetError(f'{where}: boxes[{i}].score must be a number')
        else:
            coords = b
        if not isinstance(coords, list) or len(coords) != 4 or not all(
                isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c)
                for c in coords):
            raise DatasetError(f'{where}: boxes[{i}] must be 4 numbers [x0, y0, x1, y1], '
                               f'got {coords!r}')
        x0, y0, x1, y1 = (float(c) for c in coords)
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise DatasetError(f'{where}: boxes[{i}] {coords} is out of range: need '
                               '0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (normalised)')
        out.append(Box(x0, y0, x1, y1, label=label, score=float(score)))
    return tuple(out)
