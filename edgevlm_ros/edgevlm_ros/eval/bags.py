# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Evaluation bags (the input of a replay) and record bags (what a replay heard), via rosbags only.

Why one module of 558 lines: it holds two bag formats (eval bags and record bags), each with its
writer and its reader; what a writer puts in and its reader takes out must agree field by field,
and the table below documents both.

No rclpy here: scoring and reports read bags on machines without ROS. Message bytes recorded from
rclpy (``serialize_message``) and written by rosbags are the same CDR; compare decoded values,
never bytes (Fast CDR leaves alignment padding uninitialised).

Eval bag: a rosbag2 directory (metadata.yaml + one .mcap, rosbag2 metadata version 9) with

=============================== =================================== ===========================
topic                           type                                written
=============================== =================================== ===========================
/camera/image_raw/compressed    sensor_msgs/msg/CompressedImage     one per frame, format
                                                                    'jpeg' (default)
/camera/image_raw               sensor_msgs/msg/Image               instead, rgb8, when written
                                                                    with compressed=False
/edgevlm/question               std_msgs/msg/String                 at the first frame and
                                                                    whenever the asked question
                                                                    text changes
/edgevlm/ground_truth           edgevlm_msgs/msg/GroundTruth        one per frame, for the
                                                                    question asked at it
=============================== =================================== ===========================

Every message's header.stamp (frames, truths) and bag log time (all three topics) is
EPOCH_NS + round(t_s * 1e9), t_s being the dataset time of its frame; header.frame_id is
'camera'. A stamp is never zero (camera_node reads a zero stamp as "no stamp").

Metadata: metadata.yaml's ``custom_data`` (string -> string, rosbag2 metadata v6+) may say where
the frames came from; `edgevlm synth` writes WORLD_SPEC_KEY = the exact
``sim.synthworld.WorldSpec`` text of the world it rendered, so the simulated LVLM can answer
from that world. Bags without it (older ones, converted datasets) read as before.

Record bag: whatever the replay's RecordWriter was handed (GroundTruth, Answer, CloudResponse,
ContextUpdate, FocusMask, DiagnosticArray), log time = when the evaluator received it on the
graph's clock. read_record() turns it into a core.records.RunRecord by message type (topic names
do not matter).

Memory: frames are streamed (one at a time); an EvalBag holds its truths and questions (one small
record per frame); read_record holds one record per message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
import contextlib
from dataclasses import dataclass
import functools
import operator
import os
from pathlib import Path
import shutil
import sys
import threading
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg
from rosbags.typesys.store import Typestore

from edgevlm_ros.core.images import check_image, decode_compressed, encode_jpeg, raw_to_rgb
from edgevlm_ros.core.records import (
    CLOUD_STATUSES,
    AnswerRecord,
    CloudRecord,
    RunRecord,
    Sample,
    Truth,
    UpdateRecord,
)
from edgevlm_ros.core.regions import Box

# 2026-01-01T00:00:00Z: dataset time 0 in every eval bag.
EPOCH_NS = 1_767_225_600 * 1_000_000_000

IMAGE_TOPIC = '/camera/image_raw'
COMPRESSED_TOPIC = '/camera/image_raw/compressed'
QUESTION_TOPIC = '/edgevlm/question'
TRUTH_TOPIC = '/edgevlm/ground_truth'
FRAME_ID = 'camera'

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
STRING_TYPE = 'std_msgs/msg/String'
TRUTH_TYPE = 'edgevlm_msgs/msg/GroundTruth'
ANSWER_TYPE = 'edgevlm_msgs/msg/Answer'
CLOUD_TYPE = 'edgevlm_msgs/msg/CloudResponse'
UPDATE_TYPE = 'edgevlm_msgs/msg/ContextUpdate'
FOCUS_TYPE = 'edgevlm_msgs/msg/FocusMask'
DIAGNOSTICS_TYPE = 'diagnostic_msgs/msg/DiagnosticArray'
RECORD_TYPES = frozenset({TRUTH_TYPE, ANSWER_TYPE, CLOUD_TYPE, UPDATE_TYPE, FOCUS_TYPE,
                          DIAGNOSTICS_TYPE})

MSG_PACKAGE = 'edgevlm_msgs'
# custom_data key: the synthetic world's spec (WorldSpec text) of a bag `edgevlm synth` wrote.
WORLD_SPEC_KEY = 'edgevlm.world_spec'
# Answer.SOURCE_* (Answer.msg): index = the number on the wire.
ANSWER_SOURCES = ('edge', 'cloud')


class BagError(ValueError):
    """A bag is missing, is not the kind of bag expected, or holds messages that make no sense."""


@functools.cache
def typestore() -> Typestore:
    """ROS 2 Kilted types plus every edgevlm_msgs message, from the installed .msg files."""
    from rosbags.typesys import get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    msg_dir = _msg_dir()
    types: dict[str, Any] = {}
    for path in sorted(msg_dir.glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(encoding='utf-8'),
                                        f'{MSG_PACKAGE}/msg/{path.stem}'))
    store.register(types)  # one call: rosbags resolves Region before GroundTruth itself
    missing = [t for t in (TRUTH_TYPE, ANSWER_TYPE, CLOUD_TYPE, UPDATE_TYPE, FOCUS_TYPE)
               if t not in store.types]
    if missing:
        raise BagError(f'{msg_dir} lacks the message definitions of {", ".join(missing)}')
    return store


def stamp_ns(t_s: float) -> int:
    """The bag stamp of dataset time t_s (seconds from the start)."""
    return EPOCH_NS + round(t_s * 1e9)


def write_eval_bag(path: str | os.PathLike, samples: Iterable[Sample], *,
                   compressed: bool = True, jpeg_quality: int = 90,
                   progress: bool = False,
                   custom_data: Mapping[str, str] | None = None) -> dict[str, object]:
    """
    Write samples (in time order) as an eval bag at `path`, a directory that must not exist.

    `custom_data` (str -> str) goes into metadata.yaml's custom_data (e.g. WORLD_SPEC_KEY).

    Returns a summary: path, frames, duration_s (last frame time - first), episodes (names in
    order of appearance), questions (question messages written: asked-question switches),
    question_ids (distinct), image_topic and bytes (the bag's size on disk). On any error the
    partly written bag is removed and the error raised (a sample error names the frame).
    """
    out = Path(path)
    if out.exists() or out.is_symlink():
        raise FileExistsError(f'{out} already exists; refusing to overwrite it (remove it or '
                              'choose another output path)')
    if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int) \
            or not 1 <= jpeg_quality <= 100:
        raise ValueError(f'jpeg_quality must be an int in 1..100, got {jpeg_quality!r}')
    custom = dict(custom_data or {})
    for key, value in custom.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise ValueError(f'custom_data must map non-empty str to str, got {key!r}: '
                             f'{value!r}')
    ts = typestore()
    image_topic, image_type = ((COMPRESSED_TOPIC, COMPRESSED_TYPE) if compressed
                               else (IMAGE_TOPIC, IMAGE_TYPE))
    bar = None
    if progress:
        from tqdm import tqdm

        total = operator.length_hint(samples, 0) or None
        bar = tqdm(total=total, unit='frame', desc=f'writing {out.name}')
    summary: dict[str, object] = {}
    try:
        with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            for key, value in custom.items():
                writer.set_custom_data(key, value)
            conns = {
                'image': writer.add_connection(image_topic, image_type, typestore=ts),
                'question': writer.add_connection(QUESTION_TOPIC, STRING_TYPE, typestore=ts),
                'truth': writer.add_connection(TRUTH_TOPIC, TRUTH_TYPE, typestore=ts),
            }
            summary = _write_samples(writer, conns, ts, samples, compressed, jpeg_quality, bar)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    return {'path': str(out), **summary, 'image_topic': image_topic, 'bytes': size}


@dataclass(frozen=True)
class BagInfo:
    """What an eval bag holds."""

    path: str
    frames: int
    duration_s: float          # last frame stamp - first, seconds
    start_ns: int              # first frame stamp (EPOCH_NS in bags written here)
    end_ns: int                # last frame stamp
    image_topic: str
    image_msgtype: str         # sensor_msgs/msg/CompressedImage or sensor_msgs/msg/Image
    episodes: tuple[str, ...]  # in order of first appearance
    questions: int             # messages on the question topic

    @property
    def compressed(self) -> bool:
        return self.image_msgtype == COMPRESSED_TYPE


class EvalBag:
    """
    An eval bag opened for a replay: info, truths and questions in memory, frames streamed.

    frames() opens the bag again on every call, so it can be iterated more than once and holds
    no file open between calls. custom_data: metadata.yaml's custom_data ({} when none).
    """

    def __init__(self, path: Path, info: BagInfo, truths: list[Truth],
                 questions: list[tuple[int, str]],
                 custom_data: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.info = info
        self.truths = truths
        self.questions = questions
        self.custom_data = dict(custom_data or {})

    def frames(self) -> Iterator[tuple[int, str, bytes]]:
        """(stamp_ns = log time, msgtype, raw CDR bytes) of every frame, in time order."""
        with Reader(self.path) as reader:
            conns = [c for c in reader.connections if c.topic == self.info.image_topic]
            for conn, log_ns, raw in reader.messages(connections=conns):
                yield log_ns, conn.msgtype, bytes(raw)

    @staticmethod
    def decode_rgb(msgtype: str, raw: bytes) -> np.ndarray:
        """Decode one frame's raw CDR (Image or CompressedImage) to (H, W, 3) uint8 RGB."""
        msg = typestore().deserialize_cdr(raw, msgtype)
        if msgtype == COMPRESSED_TYPE:
            return decode_compressed(msg.data, msg.format)
        if msgtype == IMAGE_TYPE:
            return raw_to_rgb(msg.data, msg.height, msg.width, msg.encoding, msg.step,
                              bool(msg.is_bigendian))
        raise BagError(f'{msgtype} is not an image message type')


def read_eval_bag(path: str | os.PathLike) -> EvalBag:
    """Open an eval bag; BagError names what is missing when `path` is not one."""
    bag_path = Path(path)
    ts = typestore()
    with _open(bag_path) as reader:
        by_topic = {c.topic: c for c in reader.connections}
        images = [by_topic[t] for t in (COMPRESSED_TOPIC, IMAGE_TOPIC) if t in by_topic]
        missing = []
        if not images:
            missing.append(f'camera frames ({COMPRESSED_TOPIC} {COMPRESSED_TYPE} or '
                           f'{IMAGE_TOPIC} {IMAGE_TYPE})')
        for topic, msgtype in ((QUESTION_TOPIC, STRING_TYPE), (TRUTH_TOPIC, TRUTH_TYPE)):
            if topic not in by_topic:
                missing.append(f'{topic} ({msgtype})')
        if missing:
            have = ', '.join(f'{c.topic} ({c.msgtype})' for c in reader.connections) or 'none'
            raise BagError(f'{bag_path} is not an eval bag: it has no {"; no ".join(missing)} '
                           f'(topics: {have})')
        if len(images) > 1:
            raise BagError(f'{bag_path} has frames on both {COMPRESSED_TOPIC} and '
                           f'{IMAGE_TOPIC}; an eval bag has one camera stream')
        image = images[0]
        expected = {image.topic: COMPRESSED_TYPE if image.topic == COMPRESSED_TOPIC
                    else IMAGE_TYPE, QUESTION_TOPIC: STRING_TYPE, TRUTH_TOPIC: TRUTH_TYPE}
        for topic, msgtype in expected.items():
            if by_topic[topic].msgtype != msgtype:
                raise BagError(f'{bag_path}: {topic} carries {by_topic[topic].msgtype}, '
                               f'expected {msgtype}')
        truths: list[Truth] = []
        questions: list[tuple[int, str]] = []
        frames, first, last = 0, 0, 0
        # One pass (frames share the chunks): frame stamps are kept, their pixels are not.
        conns = [image, by_topic[QUESTION_TOPIC], by_topic[TRUTH_TOPIC]]
        for conn, log_ns, raw in reader.messages(connections=conns):
            if conn is image:
                first = log_ns if not frames else first
                last, frames = log_ns, frames + 1
                continue
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            if conn.topic == QUESTION_TOPIC:
                questions.append((log_ns, msg.data))
            else:
                truths.append(_truth(msg))
    if not frames:
        raise BagError(f'{bag_path} is not an eval bag: {image.topic} holds no frames')
    episodes = tuple(dict.fromkeys(t.episode for t in truths))
    info = BagInfo(str(bag_path), frames, (last - first) / 1e9, first, last, image.topic,
                   image.msgtype, episodes, len(questions))
    return EvalBag(bag_path, info, truths, questions, _custom_data(bag_path))


class RecordWriter:
    """
    Writes what a replay heard to a new MCAP bag: raw CDR bytes (e.g. from rclpy), as is.

    Connections are added on first use of each topic; a topic keeps the message type it started
    with. Only RECORD_TYPES are accepted. Thread-safe (the recorder's callbacks may run on
    several executor threads).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.exists() or self.path.is_symlink():
            raise FileExistsError(f'{self.path} already exists; refusing to overwrite it')
        self._writer: Writer | None = None
        self._conns: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.messages = 0

    def __enter__(self) -> RecordWriter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        with self._lock:
            if self._writer is None:
                typestore()  # fail early if the message definitions cannot be found
                self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
                self._writer.open()

    def write(self, topic: str, msgtype: str, raw: bytes, log_ns: int) -> None:
        """Record one serialized message received at log_ns (graph clock, ns)."""
        if msgtype not in RECORD_TYPES:
            raise ValueError(f'{msgtype} is not recorded; allowed: '
                             f'{", ".join(sorted(RECORD_TYPES))}')
        if isinstance(log_ns, bool) or not isinstance(log_ns, int) or log_ns < 0:
            raise ValueError(f'log_ns must be a non-negative int, got {log_ns!r}')
        with self._lock:
            if self._writer is None:
                raise RuntimeError(f'RecordWriter({self.path}) is not open')
            conn = self._conns.get(topic)
            if conn is None:
                conn = self._writer.add_connection(topic, msgtype, typestore=typestore())
                self._conns[topic] = conn
            elif conn.msgtype != msgtype:
                raise ValueError(f'{topic} was recorded as {conn.msgtype}, not {msgtype}')
            self._writer.write(conn, log_ns, raw)
            self.messages += 1

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


def read_record(path: str | os.PathLike, *, strategy: str = '',
                network_profile: str = '') -> RunRecord:
    """
    A record bag as a RunRecord: truths, answers, clouds, updates in log-time order.

    received_ns is each message's log time. counters come from the last DiagnosticArray status
    of each node (keyed by the last part of its name), when any were recorded. FocusMasks are
    counted in meta['focus_masks']. Unknown Answer.source or CloudResponse.status numbers raise
    BagError naming the message.
    """
    bag_path = Path(path)
    ts = typestore()
    run = RunRecord(strategy=strategy, network_profile=network_profile)
    focus_masks = 0
    with _open(bag_path) as reader:
        conns = [c for c in reader.connections if c.msgtype in RECORD_TYPES]
        for conn, log_ns, raw in reader.messages(connections=conns):
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            where = f'{bag_path}: {conn.topic} message at log time {log_ns}'
            if conn.msgtype == TRUTH_TYPE:
                run.truths.append(_truth(msg))
            elif conn.msgtype == ANSWER_TYPE:
                run.answers.append(_answer(msg, log_ns, where))
            elif conn.msgtype == CLOUD_TYPE:
                run.clouds.append(_cloud(msg, log_ns, where))
            elif conn.msgtype == UPDATE_TYPE:
                run.updates.append(UpdateRecord(step_id=int(msg.step_id), text=msg.text,
                                                received_ns=log_ns, age_s=float(msg.age_s)))
            elif conn.msgtype == FOCUS_TYPE:
                focus_masks += 1
            else:
                for status in msg.status:
                    run.counters[status.name.rsplit('/', 1)[-1]] = {
                        kv.key: kv.value for kv in status.values}
    run.meta['focus_masks'] = focus_masks
    return run


# --- internals -------------------------------------------------------------------------------

def _msg_dir() -> Path:
    """share/edgevlm_msgs/msg of the first prefix that has it: AMENT_PREFIX_PATH, sys.prefix."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    tried = []
    for prefix in [*prefixes, sys.prefix]:
        d = Path(prefix) / 'share' / MSG_PACKAGE / 'msg'
        if (d / 'GroundTruth.msg').is_file():
            return d
        tried.append(str(d))
    raise BagError(f'cannot find the {MSG_PACKAGE} message definitions (GroundTruth.msg); '
                   f'looked in {", ".join(tried)}; build the interfaces (make setup) or set '
                   'AMENT_PREFIX_PATH')


@contextlib.contextmanager
def _open(path: Path) -> Iterator[Reader]:
    """An open rosbags Reader, or FileNotFoundError / BagError saying what `path` is instead."""
    if not path.exists():
        raise FileNotFoundError(f'{path} does not exist')
    if not path.is_dir() or not (path / 'metadata.yaml').is_file():
        raise BagError(f'{path} is not a rosbag2 bag: expected a directory with metadata.yaml')
    reader = Reader(path)
    try:
        reader.open()
    except Exception as exc:  # rosbags raises several types for broken bags
        raise BagError(f'{path} could not be read as a rosbag2 bag: {exc}') from exc
    try:
        yield reader
    finally:
        reader.close()


def _custom_data(path: Path) -> dict[str, str]:
    """metadata.yaml's custom_data ({} when absent; rosbags' Reader does not expose it)."""
    import yaml

    try:
        with open(path / 'metadata.yaml', encoding='utf-8') as f:
            meta = yaml.safe_load(f)
        custom = meta['rosbag2_bagfile_information'].get('custom_data') or {}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        raise BagError(f'{path}/metadata.yaml: cannot read its custom_data: {e}') from e
    if not isinstance(custom, dict):
        raise BagError(f'{path}/metadata.yaml: custom_data must be a mapping, got '
                       f'{type(custom).__name__}')
    return {str(k): str(v) for k, v in custom.items()}


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _boxes(regions: Iterable[Any]) -> tuple[Box, ...]:
    return tuple(Box(r.x_min, r.y_min, r.x_max, r.y_max, label=r.label, score=r.score)
                 for r in regions)


def _truth(msg: Any) -> Truth:
    return Truth(stamp_ns=_ns(msg.header.stamp), episode=msg.episode,
                 question_id=msg.question_id, question=msg.question, answer=msg.answer,
                 accepted=tuple(msg.accepted), choices=tuple(msg.choices),
                 boxes=_boxes(msg.regions))


def _answer(msg: Any, log_ns: int, where: str) -> AnswerRecord:
    if not 0 <= msg.source < len(ANSWER_SOURCES):
        raise BagError(f'{where}: unknown Answer.source {msg.source} (expected '
                       f'0..{len(ANSWER_SOURCES) - 1})')
    return AnswerRecord(
        stamp_ns=_ns(msg.header.stamp), step_id=int(msg.step_id), question=msg.question,
        answer=msg.answer, source=ANSWER_SOURCES[msg.source], latency_ms=float(msg.latency_ms),
        received_ns=log_ns, model_ms=float(msg.model_ms), history_turns=int(msg.history_turns),
        replaced_turns=int(msg.replaced_turns), newest_cloud_step=int(msg.newest_cloud_step),
        focus_applied=bool(msg.focus_applied), focus_source_step=int(msg.focus_source_step),
        focus_age_s=float(msg.focus_age_s), reason=msg.reason)


def _cloud(msg: Any, log_ns: int, where: str) -> CloudRecord:
    # CloudResponse.STATUS_* are 0..4 in the order of CLOUD_STATUSES.
    if not 0 <= msg.status < len(CLOUD_STATUSES):
        raise BagError(f'{where}: unknown CloudResponse.status {msg.status} (expected '
                       f'0..{len(CLOUD_STATUSES) - 1})')
    return CloudRecord(
        stamp_ns=_ns(msg.header.stamp), step_id=int(msg.step_id), question=msg.question,
        status=CLOUD_STATUSES[msg.status], received_ns=log_ns, answer=msg.answer,
        round_trip_ms=float(msg.round_trip_ms), error=msg.error, boxes=_boxes(msg.regions))


def _write_samples(writer: Writer, conns: dict[str, Any], ts: Typestore,
                   samples: Iterable[Sample], compressed: bool, jpeg_quality: int,
                   bar: Any) -> dict[str, object]:
    types = ts.types
    header_t, time_t = types['std_msgs/msg/Header'], types['builtin_interfaces/msg/Time']
    string_t, truth_t = types[STRING_TYPE], types[TRUTH_TYPE]
    region_t = types[f'{MSG_PACKAGE}/msg/Region']
    image_t = types[COMPRESSED_TYPE if compressed else IMAGE_TYPE]
    frames = 0
    first_t = last_t = None
    episodes: dict[str, None] = {}
    question_ids: set[str] = set()
    questions = 0
    asked = None
    for n, s in enumerate(samples):
        where = f'frame {n} (t={getattr(s, "t_s", "?")} s)'
        _check_sample(s, where)
        if last_t is not None and s.t_s <= last_t:
            raise ValueError(f'{where}: time must increase (previous frame t={last_t} s)')
        stamp = stamp_ns(s.t_s)
        header = header_t(stamp=time_t(sec=stamp // 1_000_000_000,
                                       nanosec=stamp % 1_000_000_000), frame_id=FRAME_ID)
        if compressed:
            data = np.frombuffer(encode_jpeg(s.rgb, jpeg_quality), np.uint8)
            image = image_t(header=header, format='jpeg', data=data)
        else:
            rgb = np.ascontiguousarray(s.rgb)
            h, w = rgb.shape[:2]
            image = image_t(header=header, height=h, width=w, encoding='rgb8', is_bigendian=0,
                            step=w * 3, data=rgb.reshape(-1))
        msgtype = COMPRESSED_TYPE if compressed else IMAGE_TYPE
        writer.write(conns['image'], stamp, ts.serialize_cdr(image, msgtype))
        if s.question != asked:
            writer.write(conns['question'], stamp,
                         ts.serialize_cdr(string_t(data=s.question), STRING_TYPE))
            asked = s.question
            questions += 1
        regions = [region_t(label=b.label, score=b.score, x_min=b.x_min, y_min=b.y_min,
                            x_max=b.x_max, y_max=b.y_max) for b in s.boxes]
        truth = truth_t(header=header, episode=s.episode, question_id=s.question_id,
                        question=s.question, answer=s.answer, accepted=list(s.accepted),
                        choices=list(s.choices), regions=regions)
        writer.write(conns['truth'], stamp, ts.serialize_cdr(truth, TRUTH_TYPE))
        frames += 1
        first_t = s.t_s if first_t is None else first_t
        last_t = s.t_s
        episodes[s.episode] = None
        question_ids.add(s.question_id)
        if bar is not None:
            bar.update(1)
    if not frames:
        raise ValueError('no samples to write: an eval bag needs at least one frame')
    return {'frames': frames, 'duration_s': last_t - first_t, 'episodes': list(episodes),
            'questions': questions, 'question_ids': len(question_ids)}


def _check_sample(s: Sample, where: str) -> None:
    if not isinstance(s, Sample):
        raise TypeError(f'{where}: expected a Sample, got {type(s).__name__}')
    if not isinstance(s.t_s, int | float) or not np.isfinite(s.t_s) or s.t_s < 0:
        raise ValueError(f'{where}: t_s must be a finite number >= 0')
    try:
        check_image(s.rgb, grey=False)
    except ValueError as exc:
        raise ValueError(f'{where}: {exc}') from None
    for name in ('episode', 'question_id', 'question'):
        if not isinstance(getattr(s, name), str) or not getattr(s, name).strip():
            raise ValueError(f'{where}: {name} must be a non-empty string')
    if not isinstance(s.answer, str):
        raise ValueError(f'{where}: answer must be a string')
    if s.choices and s.answer not in s.choices:
        raise ValueError(f'{where}: answer {s.answer!r} is not one of the choices '
                         f'{list(s.choices)}')
    for b in s.boxes:
        if not (b.is_finite and 0 <= b.x_min < b.x_max <= 1 and 0 <= b.y_min < b.y_max <= 1):
            raise ValueError(f'{where}: box {b} is not normalised (0 <= min < max <= 1)')
