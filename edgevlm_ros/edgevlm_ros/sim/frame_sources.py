# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Where demo and test frames come from: a built-in pan, image folder, video, bag, synthetic world.

ROS-free: every source yields RGB uint8 frames; frame_source_node turns them into camera topics.
A synthetic world (SynthSource) also knows the question and its true answer at each frame, and
which question to publish before which frame.
"""

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edgevlm_ros.core.images import decode_compressed, raw_to_rgb
from edgevlm_ros.core.records import Sample, Truth
from edgevlm_ros.sim.synthworld import WorldSpec

# Real photos shipped inside the scikit-image wheel, in pan order.
PAN_PHOTOS = ('astronaut.png', 'coffee.png', 'chelsea.png', 'rocket.jpg', 'motorcycle_left.png')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff')
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v')


def panorama(height: int) -> np.ndarray:
    """The pan's scene: the photos side by side at one height (RGB)."""
    import skimage.data

    root = Path(skimage.data.__file__).parent
    parts = []
    for name in PAN_PHOTOS:
        bgr = cv2.imread(str(root / name), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f'scikit-image photo {name} is missing from {root}')
        w = round(bgr.shape[1] * height / bgr.shape[0])
        parts.append(cv2.cvtColor(cv2.resize(bgr, (w, height), interpolation=cv2.INTER_AREA),
                                  cv2.COLOR_BGR2RGB))
    return np.concatenate(parts, axis=1)


def camera_pan(width: int, height: int, px_per_frame: float, loop: bool = True
               ) -> Iterator[np.ndarray]:
    """A slow horizontal camera pan over real photos; wraps around seamlessly when looping."""
    pano = panorama(height)
    if pano.shape[1] < width:
        raise ValueError(f'pan width {width} is wider than the scene ({pano.shape[1]} px)')
    wrapped = np.concatenate([pano, pano[:, :width]], axis=1)
    x, span = 0.0, pano.shape[1]
    while True:
        i = int(x)
        yield np.ascontiguousarray(wrapped[:, i:i + width])
        x += px_per_frame
        if x >= span:
            if not loop:
                return
            x -= span


def image_folder(path: Path, loop: bool = True) -> Iterator[np.ndarray]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {path}')
    while True:
        for f in files:
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is not None:
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if not loop:
            return


def video_file(path: Path, loop: bool = True) -> Iterator[np.ndarray]:
    while True:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise FileNotFoundError(f'cannot open video {path}')
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        if not loop:
            return


def bag_images(path: Path, topic: str = '', loop: bool = True) -> Iterator[np.ndarray]:
    """Camera frames of a rosbag2 (MCAP or sqlite3): Image or CompressedImage on `topic`."""
    from rosbags.highlevel import AnyReader

    kinds = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
    while True:
        with AnyReader([path]) as reader:
            conns = [c for c in reader.connections if c.msgtype in kinds
                     and (not topic or c.topic == topic)]
            if not conns:
                raise ValueError(f'no Image/CompressedImage topic {topic or ""} in bag {path}')
            for conn, _, raw in reader.messages(connections=conns[:1]):
                m = reader.deserialize(raw, conn.msgtype)
                if conn.msgtype.endswith('CompressedImage'):
                    yield decode_compressed(bytes(m.data), m.format)
                else:
                    yield raw_to_rgb(m.data.tobytes(), m.height, m.width, m.encoding, m.step,
                                     bool(m.is_bigendian))
        if not loop:
            return


class SynthSource(Iterator[np.ndarray]):
    """
    The synthetic world's frames in order (from the start again when looping), rendered lazily.

    `sample` is the Sample of the frame last returned (its question and true answer). The
    question of each frame goes out *before* that frame: after playing a frame, a player calls
    question_to_send(), which names the next frame's question when it differs from the last one
    sent (the first call names the first frame's). A camera that takes frames and questions in
    arrival order then pairs every frame with its own question, as the evaluation replay does.

    Memory: the frame last returned and at most one rendered ahead (to know the next question).
    """

    def __init__(self, spec: WorldSpec, loop: bool = True) -> None:
        self.spec = spec
        self.loop = loop
        self.sample: Sample | None = None
        self.passes = 0  # times the world started from its first frame
        self._stream: Iterator[Sample] = iter(())
        self._ahead: Sample | None = None
        self._ended = False
        self._sent: str | None = None

    def _peek(self) -> Sample | None:
        """The next frame's Sample, rendered once, on first need."""
        if self._ahead is None and not self._ended:
            self._ahead = next(self._stream, None)
            if self._ahead is None and (self.loop or self.passes == 0):
                self._stream = self.spec.generate()
                self.passes += 1
                self._ahead = next(self._stream)
            self._ended = self._ahead is None
        return self._ahead

    def __next__(self) -> np.ndarray:
        sample = self._peek()
        if sample is None:
            raise StopIteration
        self.sample, self._ahead = sample, None
        return sample.rgb

    def question_to_send(self) -> str | None:
        """The next frame's question if it is not the one sent last (None: nothing to send)."""
        upcoming = self._peek()
        if upcoming is None or upcoming.question == self._sent:
            return None
        self._sent = upcoming.question
        return self._sent

    def truth(self, stamp_ns: int) -> Truth:
        """The true answer at the frame last returned, stamped as the player stamped it."""
        if self.sample is None:
            raise RuntimeError('no frame has been played yet')
        s = self.sample
        return Truth(stamp_ns=stamp_ns, episode=s.episode, question_id=s.question_id,
                     question=s.question, answer=s.answer, accepted=s.accepted,
                     choices=s.choices, boxes=s.boxes)


def synth_source(spec: str, loop: bool = True) -> SynthSource:
    """
    A synthetic world: 'synth:<key=value,...>', or bare 'synth' for the default world.

    Keys are WorldSpec's: seed, duration, fps, pace, episode, question_every, width, height.
    """
    if spec.strip() == 'synth':
        spec = WorldSpec.PREFIX
    try:
        return SynthSource(WorldSpec.parse(spec.strip()), loop)
    except ValueError as e:
        raise ValueError(f'frame source {spec!r}: {e}') from None


def open_source(spec: str, width: int, height: int, px_per_frame: float = 4.0,
                loop: bool = True, topic: str = '') -> Iterator[np.ndarray]:
    """
    Frames of 'builtin:pan', 'synth:<world>', an image folder, a video file or a rosbag2.

    A synthetic world is a SynthSource (its frame size is part of its spec); a rosbag2 is a
    directory or a .mcap/.db3 file. `width`, `height` and `px_per_frame` are builtin:pan's.
    """
    if spec == 'builtin:pan':
        return camera_pan(width, height, px_per_frame, loop)
    if spec.strip() == 'synth' or spec.strip().startswith(WorldSpec.PREFIX):
        return synth_source(spec, loop)
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f'frame source {spec!r} does not exist (and is neither '
                                'builtin:pan nor synth:...)')
    if path.is_dir() and (path / 'metadata.yaml').exists() or path.suffix in ('.mcap', '.db3'):
        return bag_images(path, topic, loop)
    if path.is_dir():
        return image_folder(path, loop)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return video_file(path, loop)
    raise ValueError(f'cannot tell what kind of frame source {spec!r} is')
