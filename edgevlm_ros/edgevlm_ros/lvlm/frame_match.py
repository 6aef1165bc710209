# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Recognising which known frame a request image is, for LVLMs that answer from ground truth.

The simulated LVLM (``lvlm.simulated``, the demo's cloud) and the oracle test double
(``doubles.scripted.OracleLvlm``) both answer a request by finding the frame of a known world or
evaluation bag it shows and reading that frame's truth. The rules they share:

1. A frame's signature is its grey image area-averaged to THUMB_W x THUMB_H (``thumbnail``);
   JPEG and resizing move it by a few grey levels, a moved object by far more.
2. The distance of two frames is the mean squared difference of their signatures, in grey
   levels squared. The nearest frame wins; equal distances go to the earliest frame.
3. Farther than ``max_distance`` from every frame, the image is no known frame ('unknown_image').
4. With truths (``FrameIndex``) only frames whose question the request asks
   (``question_matches``) can match; a frame in reach without that question is
   'unknown_question'.
5. Memory is bounded: one float32 thumbnail per frame (3 KB); more than ``max_frames`` frames are
   refused.

A request is checked as a real backend checks it (``check_request``) and answered with a
``GroundedResult``: the fields of ``backends.base.SvlmResult`` plus the boxes and the match.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import math

import cv2
import numpy as np

from edgevlm_ros.backends.base import SvlmResult
from edgevlm_ros.core.images import check_image, to_grey
from edgevlm_ros.core.records import Truth
from edgevlm_ros.core.regions import Box

# The answer when no frame (or no truth for the question) matched: never a guess.
UNKNOWN_ANSWER = 'unknown'

# Frame thumbnails: grey, area-averaged to this size (float32, 3 KB per frame). Averaging 20x20
# pixel blocks of a 640x480 frame removes JPEG noise and resampling differences almost entirely
# while keeping objects that moved between frames apart.
THUMB_W, THUMB_H = 32, 24
# Mean squared grey difference (0..255 levels) above which a request image is no known frame.
DEFAULT_MAX_DISTANCE = 25.0
# More frames are refused: the thumbnails must fit in memory (60k frames = 184 MB, 100 minutes at
# 10 fps).
DEFAULT_MAX_FRAMES = 60_000
_CHUNK = 4096  # frames compared at once (bounds the temporary difference array)


@dataclass(frozen=True)
class FrameMatch:
    """Which known frame a request image was taken for, and how sure that was."""

    reason: str            # 'matched', 'unknown_image' or 'unknown_question'
    stamp_ns: int = -1     # the matched frame (-1: none)
    distance: float = math.inf   # thumbnail MSE to the chosen frame (or the nearest frame)
    nearest_other: float = math.inf  # thumbnail MSE to the nearest other frame


@dataclass
class GroundedResult(SvlmResult):
    """An answer read off a recognised frame: ``SvlmResult`` plus its boxes and the match."""

    # Normalised boxes the LVLM server reports as objects; None = this backend does not ground
    # (the server grounds as configured).
    boxes: tuple[Box, ...] | None = None
    match: FrameMatch | None = None


def _norm(text: str) -> str:
    lines = (' '.join(line.casefold().split()) for line in text.splitlines())
    return '\n'.join(line for line in lines if line)


def question_matches(request: str, question: str) -> bool:
    """
    True if a request's text asks ``question``: equal, or its last lines are the question.

    Case, blank lines and runs of spaces are ignored. The line rule lets a client put context in
    front of the question (the project's cloud client sends a line "The image is WxH pixels."
    before it); a question ending in the same words does not match.
    """
    r, q = _norm(request), _norm(question)
    return bool(q) and (r == q or r.endswith('\n' + q))


def check_request(image: np.ndarray, question: str, default_limit: int,
                  max_new_tokens: int | None) -> int:
    """Reject what a real backend rejects (no RGB image, empty question); return the word cap."""
    check_image(image, grey=False)
    if not isinstance(question, str) or not question.strip():
        raise ValueError('question must be a non-empty string')
    limit = default_limit if max_new_tokens is None else max_new_tokens
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f'max_new_tokens must be an int >= 1, got {limit!r}')
    return limit


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A frame's signature: grey, area-averaged to THUMB_W x THUMB_H, float32."""
    grey = to_grey(check_image(rgb, grey=False)).astype(np.float32)
    return cv2.resize(grey, (THUMB_W, THUMB_H), interpolation=cv2.INTER_AREA)


class ThumbnailIndex:
    """
    Thumbnails of a sequence of frames, each under an integer key (a stamp), and their distances.

    Distance: mean squared grey difference of the thumbnails (``thumbnail``), in grey levels
    squared. Memory: one float32 thumbnail per frame (3 KB); more than ``max_frames`` frames are
    refused.
    """

    def __init__(self, frames: Iterable[tuple[int, np.ndarray]], *,
                 max_distance: float = DEFAULT_MAX_DISTANCE,
                 max_frames: int = DEFAULT_MAX_FRAMES, source: str = 'frames') -> None:
        if not (isinstance(max_distance, (int, float)) and math.isfinite(max_distance)
                and max_distance >= 0):
            raise ValueError(f'max_distance must be a finite number >= 0, got {max_distance!r}')
        if not isinstance(max_frames, int) or max_frames < 1:
            raise ValueError(f'max_frames must be a positive int, got {max_frames!r}')
        self.max_distance = float(max_distance)
        thumbs: list[np.ndarray] = []
        stamps: list[int] = []
        for stamp_ns, rgb in frames:
            if len(thumbs) >= max_frames:
                raise ValueError(f'{source}: more than {max_frames} frames (the bound on '
                                 'thumbnail memory)')
            thumbs.append(thumbnail(rgb).reshape(-1))
            stamps.append(int(stamp_ns))
        if not thumbs:
            raise ValueError(f'{source}: no camera frames')
        self._thumbs = np.stack(thumbs)
        self.stamps = np.asarray(stamps, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.stamps)

    def distances(self, rgb: np.ndarray) -> np.ndarray:
        """Thumbnail MSE of ``rgb`` to every frame, in frame order."""
        probe = thumbnail(rgb).reshape(-1)
        out = np.empty(len(self._thumbs), dtype=np.float32)
        for start in range(0, len(self._thumbs), _CHUNK):
            diff = self._thumbs[start:start + _CHUNK] - probe
            out[start:start + _CHUNK] = np.einsum('ij,ij->i', diff, diff) / diff.shape[1]
        return out

    def nearest(self, rgb: np.ndarray) -> FrameMatch:
        """
        The nearest frame of all (equal distances: the earliest), 'matched' within max_distance.

        Otherwise the reason is 'unknown_image' (stamp and distance still name the nearest).
        """
        dist = self.distances(rgb)
        best = int(np.argmin(dist))  # argmin takes the first of equal minima
        reason = 'matched' if dist[best] <= self.max_distance else 'unknown_image'
        return self._found(reason, best, dist)

    def _found(self, reason: str, i: int, dist: np.ndarray) -> FrameMatch:
        others = np.delete(dist, i)
        return FrameMatch(reason, int(self.stamps[i]), float(dist[i]),
                          float(others.min()) if len(others) else math.inf)


class FrameIndex(ThumbnailIndex):
    """
    Thumbnails and ground truth of a bag's frames, and the rule that recognises a frame.

    Matching rule: the request image's thumbnail is compared (mean squared grey difference, in
    grey levels squared) with the thumbnails of the frames whose ground-truth question the
    request asks (``question_matches``); the nearest one within ``max_distance`` is the frame.
    Equal distances go to the earliest frame. Otherwise there is no truth to answer:
    'unknown_question' when some frame is within ``max_distance`` but that question was not asked
    at any frame that close, 'unknown_image' when no frame is. Memory: one float32 thumbnail per
    frame (3 KB) plus the Truth records; more than ``max_frames`` frames are refused.
    """

    def __init__(self, frames: Iterable[tuple[int, np.ndarray]], truths: Iterable[Truth], *,
                 max_distance: float = DEFAULT_MAX_DISTANCE,
                 max_frames: int = DEFAULT_MAX_FRAMES, source: str = 'frames') -> None:
        super().__init__(frames, max_distance=max_distance, max_frames=max_frames,
                         source=source)
        by_stamp = {t.stamp_ns: t for t in truths}
        self.truths: list[Truth | None] = [by_stamp.get(int(s)) for s in self.stamps]
        groups: dict[str, list[int]] = {}
        for i, truth in enumerate(self.truths):
            if truth is not None:
                groups.setdefault(truth.question, []).append(i)
        # Frame indices per asked question (a bag asks few distinct questions).
        self._by_question = {q: np.asarray(ix, dtype=np.int64) for q, ix in groups.items()}

    @property
    def questions(self) -> list[str]:
        return list(self._by_question)

    def match(self, rgb: np.ndarray, question: str) -> tuple[FrameMatch, Truth | None]:
        """Apply the matching rule; return the match and the matched frame's truth (or None)."""
        dist = self.distances(rgb)
        asked = [ix for q, ix in self._by_question.items() if question_matches(question, q)]
        if asked:
            candidates = np.concatenate(asked)
            best = int(candidates[np.lexsort((candidates, dist[candidates]))[0]])
            if dist[best] <= self.max_distance:
                return self._found('matched', best, dist), self.truths[best]
        nearest = int(np.argmin(dist))
        reason = 'unknown_question' if dist[nearest] <= self.max_distance else 'unknown_image'
        return self._found(reason, nearest, dist), None
