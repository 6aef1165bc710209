# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
A seeded synthetic robot-camera world: frames with exactly known answers that change over time.

Why one module of 722 lines: it is one world: the renderer, the visibility rule and the
questions' answers all read one episode's layout per frame, and a truth is exact only because
they are written against the same ``Episode``.

What a frame shows: a textured, low-saturation background (blocks and lines, so sparse optical
flow has corners to track) seen by a camera that drifts slowly; 4 or 5 flat-coloured objects
(circle, square, triangle in clearly distinct colours, see PALETTE) that move left and right in
lanes of their own (objects never overlap one another), leave the view at one side and come back
at the other; and one or two grey pillars in front of everything that hide objects passing
behind them.

Episodes: every `episode_s` seconds a new layout (objects, colours, speeds, pillars, background)
starts, named 'ep000', 'ep001', ... Each episode is drawn from its own generator seeded with
(seed, episode index), so the same seed always gives identical frames and truths, at any fps.

Visibility (the rule every answer follows): an object is visible when at least VISIBLE_SHARE of
its pixels are in the frame and not behind a pillar. Hidden or out-of-frame objects do not count.

Questions (every `question_every_s` the asked question switches; windows restart per episode):

=========== ===================================================== ===========================
question_id question                                              answer
=========== ===================================================== ===========================
count/C     How many C objects are there?                         '0', '1', '2', ...
exists/C-S  Is there a C S?                                       'yes' / 'no'
colour/S    What colour is the S? (S unique in the episode)       a colour name, or 'none'
where/C-S   Where is the C S? (a) left (b) centre (c) right       the option text, by the
            (d) not visible (C S unique in the episode)           visible part's centre x
=========== ===================================================== ===========================

For each window the question is picked (types in rotation) among those whose answer changes
most often inside the window, so a stale answer is a wrong answer. Ground-truth boxes are the
visible parts of the objects the answer depends on (normalised, label e.g. 'red circle').

No I/O, no ROS, no torch; numpy and OpenCV only. Memory: one episode's layout and states at a
time (a few kB per frame of state, frames are rendered one by one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
import math

import cv2
import numpy as np

from edgevlm_ros.core.records import Sample
from edgevlm_ros.core.regions import Box

# Clearly distinct, saturated colours (RGB). The background and pillars are near-grey (channel
# spread <= 2 * _TINT), so no background pixel ever equals a palette colour.
PALETTE: dict[str, tuple[int, int, int]] = {
    'red': (220, 30, 30),
    'green': (30, 170, 50),
    'blue': (40, 70, 230),
    'yellow': (235, 205, 20),
    'purple': (150, 50, 200),
}
SHAPES = ('circle', 'square', 'triangle')
LOCATIONS = ('left', 'centre', 'right')
NOT_VISIBLE = 'not visible'
WHERE_CHOICES = (*LOCATIONS, NOT_VISIBLE)
NONE_ANSWER = 'none'
# An object counts as visible when at least this share of its pixels can be seen.
VISIBLE_SHARE = 0.5
QUESTION_TYPES = ('count', 'exists', 'colour', 'where')
# Question mixes (WorldSpec.mix, generate(mix=...)): 'rotation' (the default, what every bag and
# the micro SVLM's training used) rotates the four kinds in a per-episode shuffled order;
# 'focus' asks 'where' and 'colour' every other window, about an object that is visible in at
# least half of the window when there is one, so that Visual Focus has boxes to steer by.
QUESTION_MIXES = ('rotation', 'focus')
_FOCUS_ORDER = ('where', 'count', 'colour', 'exists')
_FOCUS_KINDS = ('where', 'colour')
_FOCUS_VISIBLE_SHARE = 0.5

_LANES = 5
_TINT = 12           # most a background channel differs from grey
_PAN_X = 0.04        # camera drift amplitude, share of the width
_PAN_Y = 0.015       # and of the height
_WRAP_MARGIN = 0.35  # objects travel this share of the width beyond each side before wrapping
# Question choice: windows prefer questions whose answer changes about this often.
_SECONDS_PER_CHANGE = 1.5
_MIN_SIZE = (96, 96)  # smaller frames would not fit the lanes


@dataclass(frozen=True)
class Layout:
    """
    How crowded an episode is: the default is the evaluation world; simpler ones are curricula.

    `objects` and `pillars` are inclusive (min, max) counts, `size` scales every object's radius
    (1 = the evaluation world), `colours` is how many palette colours an episode draws its
    objects from. The default draws exactly what the world always drew, so seeds keep their frames.
    """

    objects: tuple[int, int] = (4, _LANES)
    pillars: tuple[int, int] = (1, 2)
    size: float = 1.0
    colours: int = 3

    def __post_init__(self) -> None:
        lo, hi = self.objects
        if not 1 <= lo <= hi <= _LANES:
            raise ValueError(f'objects must be 1 <= min <= max <= {_LANES}, got {self.objects}')
        lo, hi = self.pillars
        if not 0 <= lo <= hi <= 2:
            raise ValueError(f'pillars must be 0 <= min <= max <= 2, got {self.pillars}')
        if not 0.5 <= self.size <= 2.0:
            raise ValueError(f'size must be in [0.5, 2], got {self.size}')
        if not 1 <= self.colours <= len(PALETTE):
            raise ValueError(f'colours must be in [1, {len(PALETTE)}], got {self.colours}')


DEFAULT_LAYOUT = Layout()


@dataclass(frozen=True)
class ObjectView:
    """One object as the camera sees it at one instant."""

    name: str          # 'red circle'
    colour: str
    shape: str
    x: int             # top-left of the object's mask patch, screen pixels (may be off-frame)
    y: int
    visible_px: int    # pixels in the frame and not behind a pillar
    total_px: int      # pixels of the whole object
    box: Box | None    # normalised box of the visible pixels; None when none are visible

    @property
    def visible(self) -> bool:
        return self.total_px > 0 and self.visible_px >= VISIBLE_SHARE * self.total_px

    @property
    def location(self) -> str:
        """'left', 'centre' or 'right' by the visible part's centre; NOT_VISIBLE if hidden."""
        if not self.visible or self.box is None:
            return NOT_VISIBLE
        cx = (self.box.x_min + self.box.x_max) / 2
        return LOCATIONS[min(2, int(cx * 3))]


@dataclass(frozen=True)
class FrameState:
    """Everything true at one instant of an episode."""

    t_s: float                     # time since the episode started
    camera: tuple[int, int]        # integer camera offset (x, y) in pixels
    pillars: tuple[tuple[int, int], ...]  # screen columns [x0, x1) hidden by each pillar
    objects: tuple[ObjectView, ...]

    def visible(self) -> list[ObjectView]:
        return [o for o in self.objects if o.visible]


@dataclass(frozen=True)
class Question:
    """One question template bound to the objects it is about."""

    kind: str        # one of QUESTION_TYPES
    colour: str = ''
    shape: str = ''

    @property
    def question_id(self) -> str:
        if self.kind == 'count':
            return f'count/{self.colour}'
        if self.kind == 'colour':
            return f'colour/{self.shape}'
        return f'{self.kind}/{self.colour}-{self.shape}'

    @property
    def text(self) -> str:
        if self.kind == 'count':
            return f'How many {self.colour} objects are there?'
        if self.kind == 'exists':
            return f'Is there a {self.colour} {self.shape}?'
        if self.kind == 'colour':
            return f'What colour is the {self.shape}?'
        options = ' '.join(f'({chr(97 + i)}) {c}' for i, c in enumerate(WHERE_CHOICES))
        return f'Where is the {self.colour} {self.shape}? {options}'

    @property
    def choices(self) -> tuple[str, ...]:
        return WHERE_CHOICES if self.kind == 'where' else ()

    def relevant(self, state: FrameState) -> list[ObjectView]:
        """The visible objects the answer depends on (its ground-truth boxes)."""
        out = []
        for o in state.visible():
            if self.kind == 'count' and o.colour == self.colour:
                out.append(o)
            elif self.kind == 'colour' and o.shape == self.shape:
                out.append(o)
            elif self.kind in ('exists', 'where') and (o.colour, o.shape) == (
                    self.colour, self.shape):
                out.append(o)
        return out

    def answer(self, state: FrameState) -> tuple[str, tuple[str, ...]]:
        """The true answer at `state` and the other accepted forms."""
        objs = self.relevant(state)
        if self.kind == 'count':
            return str(len(objs)), ((NONE_ANSWER,) if not objs else ())
        if self.kind == 'exists':
            return ('yes' if objs else 'no'), ()
        if self.kind == 'colour':
            if not objs:
                return NONE_ANSWER, (NOT_VISIBLE, 'nothing', f'no {self.shape}',
                                     f'there is no {self.shape}')
            return objs[0].colour, ()
        loc = objs[0].location if objs else NOT_VISIBLE
        return loc, (('center',) if loc == 'centre' else ())


@dataclass(frozen=True)
class _Thing:
    colour: str
    shape: str
    mask: np.ndarray        # (2r+1, 2r+1) bool
    colsum: np.ndarray      # mask pixels per column
    lane_y: float           # world y of the patch centre
    bob: tuple[float, float, float]  # amplitude px, frequency Hz, phase
    seg_t: np.ndarray       # segment start times (s), seg_t[0] == 0
    seg_x: np.ndarray       # unwrapped world x of the patch centre at each segment start
    seg_v: np.ndarray       # velocity in px/s during each segment

    @property
    def name(self) -> str:
        return f'{self.colour} {self.shape}'


class Episode:
    """One episode's layout: background, pillars and moving objects; states and frames by time."""

    def __init__(self, seed: int, index: int, width: int, height: int,
                 duration_s: float, layout: Layout = DEFAULT_LAYOUT) -> None:
        self.index = index
        self.name = f'ep{index:03d}'
        self.width, self.height = width, height
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        self._pad = (math.ceil(_PAN_X * width) + 1, math.ceil(_PAN_Y * height) + 1)
        self._pan = (float(rng.uniform(0.6, 1.0) * _PAN_X * width),
                     float(rng.uniform(0.6, 1.0) * _PAN_Y * height),
                     float(rng.uniform(12.0, 25.0)), float(rng.uniform(8.0, 16.0)),
                     float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi)))
        self._background = _background(rng, width + 2 * self._pad[0],
                                       height + 2 * self._pad[1])
        self.pillars = _pillars(rng, width, layout.pillars)  # world columns [x0, x1)
        self._pillar_tex = [_pillar_texture(rng, x1 - x0, height + 2 * self._pad[1])
                            for x0, x1 in self.pillars]
        self.things = _things(rng, width, height, duration_s, layout)
        self._wrap = (-_WRAP_MARGIN * width, width * (1 + 2 * _WRAP_MARGIN))

    def questions(self) -> list[Question]:
        """Every question that has one well-defined answer in this episode's layout."""
        colours = sorted({t.colour for t in self.things})
        combos = [(t.colour, t.shape) for t in self.things]
        shapes = [t.shape for t in self.things]
        qs = [Question('count', colour=c) for c in colours]
        qs += [Question('exists', colour=c, shape=s) for c, s in sorted(set(combos))]
        qs += [Question('colour', shape=s) for s in SHAPES if shapes.count(s) == 1]
        qs += [Question('where', colour=c, shape=s) for c, s in sorted(set(combos))
               if combos.count((c, s)) == 1]
        return qs

    def camera(self, t: float) -> tuple[int, int]:
        ax, ay, tx, ty, px, py = self._pan
        return (round(ax * math.sin(2 * math.pi * t / tx + px)),
                round(ay * math.sin(2 * math.pi * t / ty + py)))

    def state(self, t: float) -> FrameState:
        """The world at `t` seconds into the episode (an analytic function of t)."""
        cx, cy = self.camera(t)
        w, h = self.width, self.height
        pillars = tuple((x0 - cx, x1 - cx) for x0, x1 in self.pillars)
        open_cols = np.ones(w, dtype=bool)
        for x0, x1 in pillars:
            open_cols[max(0, x0):max(0, x1)] = False
        views = []
        start, span = self._wrap
        for th in self.things:
            k = int(np.searchsorted(th.seg_t, t, side='right')) - 1
            x = th.seg_x[k] + th.seg_v[k] * (t - th.seg_t[k])
            x = start + (x - start) % span
            amp, freq, phase = th.bob
            y = th.lane_y + amp * math.sin(2 * math.pi * freq * t + phase)
            r = th.mask.shape[0] // 2
            sx, sy = round(x) - r - cx, round(y) - r - cy
            cols = np.arange(sx, sx + th.mask.shape[1])
            inside = (cols >= 0) & (cols < w)
            vis = np.zeros_like(inside)
            vis[inside] = open_cols[cols[inside]]
            visible_px = int(th.colsum[vis].sum())
            box = None
            if visible_px:
                rows = np.flatnonzero(th.mask[:, vis].any(axis=1))
                vcols = cols[vis][th.colsum[vis] > 0]
                box = Box(vcols[0] / w, (sy + rows[0]) / h, (vcols[-1] + 1) / w,
                          (sy + rows[-1] + 1) / h, label=th.name)
            views.append(ObjectView(th.name, th.colour, th.shape, sx, sy, visible_px,
                                    int(th.colsum.sum()), box))
        return FrameState(t, (cx, cy), pillars, tuple(views))

    def render(self, state: FrameState) -> np.ndarray:
        """The (H, W, 3) uint8 RGB frame of `state`."""
        w, h = self.width, self.height
        cx, cy = state.camera
        px, py = self._pad
        frame = self._background[py + cy:py + cy + h, px + cx:px + cx + w].copy()
        for th, view in zip(self.things, state.objects):
            ph, pw = th.mask.shape
            x0, y0 = max(0, view.x), max(0, view.y)
            x1, y1 = min(w, view.x + pw), min(h, view.y + ph)
            if x1 <= x0 or y1 <= y0:
                continue
            m = th.mask[y0 - view.y:y1 - view.y, x0 - view.x:x1 - view.x]
            frame[y0:y1, x0:x1][m] = PALETTE[th.colour]
        # Pillars are in front of everything: whatever they cover is hidden.
        for (x0, x1), tex in zip(state.pillars, self._pillar_tex):
            a, b = max(0, x0), min(w, x1)
            if b > a:
                frame[:, a:b] = tex[py + cy:py + cy + h, a - x0:b - x0]
        return frame


class SynthWorld:
    """The seeded world: episode layouts on demand (the last one is kept)."""

    def __init__(self, seed: int = 0, width: int = 640, height: int = 480,
                 episode_s: float = 20.0, layout: Layout = DEFAULT_LAYOUT) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f'seed must be a non-negative int, got {seed!r}')
        if width < _MIN_SIZE[0] or height < _MIN_SIZE[1]:
            raise ValueError(f'frame must be at least {_MIN_SIZE[0]}x{_MIN_SIZE[1]}, '
                             f'got {width}x{height}')
        _positive('episode_s', episode_s)
        self.seed, self.width, self.height = int(seed), int(width), int(height)
        self.episode_s = float(episode_s)
        self.layout = layout
        self._last: Episode | None = None

    def episode(self, index: int) -> Episode:
        if self._last is None or self._last.index != index:
            self._last = Episode(self.seed, index, self.width, self.height, self.episode_s,
                                 self.layout)
        return self._last


@dataclass(frozen=True)
class WorldSpec:
    """
    A synthetic world as one string, for sources and models that must agree on the same scene.

    Text form: ``synth:seed=0,duration=60,fps=10,pace=0.3,episode=20,question_every=10,
    width=640,height=480``; every key is optional (the defaults below are generate()'s) and
    ``synth:`` alone is the default world. ``generate()`` yields exactly what `edgevlm synth`
    writes for the same values.
    """

    seed: int = 0
    duration: float = 60.0
    fps: float = 10.0
    pace: float = 1.0
    episode: float = 20.0
    question_every: float = 5.0
    width: int = 640
    height: int = 480
    mix: str = 'rotation'  # one of QUESTION_MIXES; written out only when not the default

    PREFIX = 'synth:'

    @classmethod
    def parse(cls, text: str) -> WorldSpec:
        if not isinstance(text, str) or not text.startswith(cls.PREFIX):
            raise ValueError(f"a world spec starts with '{cls.PREFIX}', got {text!r}")
        values: dict[str, object] = {}
        types = {'seed': int, 'width': int, 'height': int, 'mix': str}
        for item in filter(None, (x.strip() for x in text[len(cls.PREFIX):].split(','))):
            key, sep, value = item.partition('=')
            key = key.strip()
            if not sep or key not in cls.__dataclass_fields__:
                raise ValueError(f'{text!r}: expected key=value with a key of '
                                 f'{", ".join(cls.__dataclass_fields__)}, got {item!r}')
            value = value.strip()
            if key == 'mix':  # `edgevlm synth` writes every value as its repr: 'rotation'
                value = value.strip('\'"')
            try:
                values[key] = types.get(key, float)(value)
            except ValueError:
                raise ValueError(f'{text!r}: {key} must be a number, got {value!r}') from None
        spec = cls(**values)  # type: ignore[arg-type]
        spec.check()
        return spec

    def check(self) -> None:
        if self.seed < 0:
            raise ValueError(f'seed must be >= 0, got {self.seed}')
        for name in ('duration', 'fps', 'episode', 'question_every'):
            _positive(name, getattr(self, name))
        if not 0 < self.pace <= 1:
            raise ValueError(f'pace must be in (0, 1], got {self.pace}')
        if self.mix not in QUESTION_MIXES:
            raise ValueError(f'mix must be one of {", ".join(QUESTION_MIXES)}, got {self.mix!r}')
        SynthWorld(self.seed, self.width, self.height, self.episode)

    def __str__(self) -> str:
        return (f'{self.PREFIX}seed={self.seed},duration={self.duration:g},fps={self.fps:g},'
                f'pace={self.pace:g},episode={self.episode:g},'
                f'question_every={self.question_every:g},width={self.width},'
                f'height={self.height}' + ('' if self.mix == 'rotation' else f',mix={self.mix}'))

    @property
    def frames(self) -> int:
        return frame_count(self.duration, self.fps)

    def generate(self, progress: Callable[[int, int], None] | None = None) -> Iterator[Sample]:
        return generate(self.seed, self.duration, self.fps, self.width, self.height,
                        self.episode, self.question_every, progress, self.pace, self.mix)

    def world(self) -> SynthWorld:
        """The world of this spec (it keeps the last episode built: reuse it across calls)."""
        return SynthWorld(self.seed, self.width, self.height, self.episode)

    def state_at(self, t_s: float, world: SynthWorld | None = None
                 ) -> tuple[Episode, FrameState]:
        """The episode and world state at dataset time `t_s` (what generate() renders there)."""
        world = world if world is not None else self.world()
        index = _index(t_s, self.episode)
        episode = world.episode(index)
        return episode, episode.state((t_s - index * self.episode) * self.pace)


def frame_count(duration_s: float, fps: float) -> int:
    """Frames generate() yields: t = i / fps for every t < duration_s (at least one)."""
    return max(1, math.ceil(duration_s * fps - 1e-9))


def generate(seed: int = 0, duration_s: float = 60.0, fps: float = 10.0, width: int = 640,
             height: int = 480, episode_s: float = 20.0, question_every_s: float = 5.0,
             progress: Callable[[int, int], None] | None = None,
             pace: float = 1.0, mix: str = 'rotation') -> Iterator[Sample]:
    """
    Yield the frames of a seeded synthetic dataset with the question asked at each and its truth.

    Frames are at t = i / fps (seconds from the start), i = 0 .. frame_count - 1. `pace` (0..1]
    slows the whole scene down (objects, camera, answer changes): at 0.5 everything moves half
    as fast, so an answer holds about twice as long. `mix` is the question mix (QUESTION_MIXES;
    it changes which questions are asked, never the frames). `progress`, if
    given, is called after every frame with (frames done, frames in all). The returned iterator
    supports operator.length_hint (frames left), so writers can show a progress bar.
    """
    for name, value in (('duration_s', duration_s), ('fps', fps),
                        ('question_every_s', question_every_s), ('pace', pace)):
        _positive(name, value)
    if pace > 1.0:
        raise ValueError(f'pace must be in (0, 1] (1 = the default scene speed), got {pace}')
    if mix not in QUESTION_MIXES:
        raise ValueError(f'mix must be one of {", ".join(QUESTION_MIXES)}, got {mix!r}')
    world = SynthWorld(seed, width, height, episode_s)
    return _Stream(world, frame_count(duration_s, fps), float(fps), float(question_every_s),
                   progress, float(pace), mix)


class _Stream(Iterator[Sample]):
    """generate()'s iterator: renders one frame per next(), knows how many are left."""

    def __init__(self, world: SynthWorld, total: int, fps: float, every_s: float,
                 progress: Callable[[int, int], None] | None, pace: float = 1.0,
                 mix: str = 'rotation') -> None:
        self._world, self._total, self._fps, self._every = world, total, fps, every_s
        self._progress = progress
        self._mix = mix
        self._pace = pace  # scene time = dataset time x pace (slow motion below 1)
        self._done = 0
        self._plan: dict[int, Question] = {}  # frame index -> question (current episode)
        self._plan_episode = -1

    def __length_hint__(self) -> int:
        return self._total - self._done

    def __next__(self) -> Sample:
        i = self._done
        if i >= self._total:
            raise StopIteration
        t = i / self._fps
        ep_index = _index(t, self._world.episode_s)
        episode = self._world.episode(ep_index)
        if ep_index != self._plan_episode:
            self._plan = self._plan_questions(episode, ep_index)
            self._plan_episode = ep_index
        local = t - ep_index * self._world.episode_s
        state = episode.state(local * self._pace)
        q = self._plan[i]
        answer, accepted = q.answer(state)
        boxes = tuple(o.box for o in q.relevant(state) if o.box is not None)
        sample = Sample(t_s=t, rgb=episode.render(state), episode=episode.name,
                        question_id=q.question_id, question=q.text, answer=answer,
                        accepted=accepted, choices=q.choices, boxes=boxes)
        self._done += 1
        if self._progress is not None:
            self._progress(self._done, self._total)
        return sample

    def _plan_questions(self, episode: Episode, ep_index: int) -> dict[int, Question]:
        """Pick each question window's question from the episode's states (no rendering)."""
        ep_s = self._world.episode_s
        windows: dict[int, list[tuple[int, FrameState]]] = {}
        i = self._done
        while i < self._total and _index(i / self._fps, ep_s) == ep_index:
            local = i / self._fps - ep_index * ep_s
            windows.setdefault(_index(local, self._every), []).append(
                (i, episode.state(local * self._pace)))
            i += 1
        # Its own generator: the layout's draws do not depend on the question plan.
        rng = np.random.default_rng(np.random.SeedSequence([self._world.seed, ep_index, 1]))
        candidates = episode.questions()
        order = [str(k) for k in rng.permutation(QUESTION_TYPES) if
                 any(q.kind == k for q in candidates)]
        if self._mix == 'focus':  # drawn above all the same: the default's draws stay put
            order = [k for k in _FOCUS_ORDER if any(q.kind == k for q in candidates)]
        plan: dict[int, Question] = {}
        previous: Question | None = None
        for n, key in enumerate(sorted(windows)):
            states = [s for _, s in windows[key]]
            changes = {q: _changes([q.answer(s)[0] for s in states]) for q in candidates}
            kind = order[n % len(order)]
            pool = [q for q in candidates if q.kind == kind and q != previous]
            seen: list[Question] = []
            if self._mix == 'focus' and kind in _FOCUS_KINDS:
                # An object in view, even if its answer holds all window: focus needs boxes.
                seen = [q for q in pool if _visible_share(q, states) >= _FOCUS_VISIBLE_SHARE]
                pool = seen or pool
            if not seen and (not pool or max(changes[q] for q in pool) == 0):
                pool = [q for q in candidates if q != previous] or candidates
            # Enough changes that staleness matters, but not always the busiest question.
            cap = max(1, round(len(states) / self._fps * self._pace / _SECONDS_PER_CHANGE))
            best = min(cap, max(changes[q] for q in pool))
            top = [q for q in pool if min(cap, changes[q]) == best]
            chosen = top[int(rng.integers(len(top)))]
            plan.update((i, chosen) for i, _ in windows[key])
            previous = chosen
        return plan


def describe(items: Iterable[object]) -> dict[str, object]:
    """
    Answer-change statistics of a dataset (Samples) or of recorded truths (Truths).

    A window is a run of frames of one episode asking one question_id. Returns frames, episodes,
    windows, questions per type (question_id prefix), answer changes, mean changes per window,
    the share of windows whose answer changes at least once, the mean time an answer stays
    the same (s) and the share of frames per answer for each type. Streams: holds one value per
    window and per answer, never the images.
    """
    frames = 0
    episodes: list[str] = []
    windows: list[int] = []  # answer changes per window
    kinds: dict[str, int] = {}
    answers: dict[str, dict[str, int]] = {}
    runs: list[float] = []   # durations of constant-answer runs (closed by a change)
    key = None
    last_answer = None
    run_start = 0.0
    for item in items:
        t = item.t_s if hasattr(item, 't_s') else item.stamp_ns / 1e9
        frames += 1
        if not episodes or episodes[-1] != item.episode:
            episodes.append(item.episode)
        kind = item.question_id.split('/', 1)[0]
        per = answers.setdefault(kind, {})
        per[item.answer] = per.get(item.answer, 0) + 1
        if (item.episode, item.question_id) != key:
            key = (item.episode, item.question_id)
            windows.append(0)
            kinds[kind] = kinds.get(kind, 0) + 1
            last_answer, run_start = item.answer, t
        elif item.answer != last_answer:
            windows[-1] += 1
            runs.append(t - run_start)
            last_answer, run_start = item.answer, t
    changes = sum(windows)
    return {
        'frames': frames,
        'episodes': len(episodes),
        'windows': len(windows),
        'questions_per_type': kinds,
        'answer_changes': changes,
        'changes_per_window': changes / len(windows) if windows else 0.0,
        'windows_with_change': (sum(1 for c in windows if c) / len(windows)
                                if windows else 0.0),
        'mean_answer_run_s': sum(runs) / len(runs) if runs else float('nan'),
        'answer_share': {k: {a: n / sum(v.values()) for a, n in sorted(v.items())}
                         for k, v in sorted(answers.items())},
    }


# --- internals -------------------------------------------------------------------------------

def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f'{name} must be a positive number, got {value!r}')


def _index(t: float, period: float) -> int:
    # Tolerate float error at exact boundaries (t = 20.000000000000004 / 20 is episode 1).
    return int(math.floor(t / period + 1e-9))


def _visible_share(q: Question, states: list[FrameState]) -> float:
    """Share of the states in which an object the question is about is visible."""
    return sum(1 for s in states if q.relevant(s)) / len(states) if states else 0.0


def _changes(values: list[str]) -> int:
    return sum(1 for a, b in zip(values, values[1:]) if a != b)


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Blocky, near-grey texture with lines: many corners for optical flow, no vivid colour."""
    base = rng.uniform(90, 160)
    block = int(rng.integers(12, 24))
    small = rng.normal(0.0, 22.0, (h // block + 2, w // block + 2)).astype(np.float32)
    grey = cv2.resize(small, (small.shape[1] * block, small.shape[0] * block),
                      interpolation=cv2.INTER_NEAREST)[:h, :w] + base
    # Floor below a horizon is darker, as a robot camera would see it.
    horizon = int(h * rng.uniform(0.45, 0.6))
    grey[horizon:] -= 25.0
    for _ in range(int(rng.integers(25, 45))):
        p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        q = (p[0] + int(rng.integers(-w // 4, w // 4)), p[1] + int(rng.integers(-h // 4, h // 4)))
        cv2.line(grey, p, q, float(rng.uniform(40, 210)), int(rng.integers(1, 4)))
    grey = np.clip(grey, 30, 225)
    tint = rng.integers(-_TINT, _TINT + 1, 3)
    return np.ascontiguousarray(
        np.clip(grey[..., None] + tint, 0, 255).astype(np.uint8))


def _pillars(rng: np.random.Generator, w: int,
             count: tuple[int, int] = (1, 2)) -> list[tuple[int, int]]:
    n = int(rng.integers(count[0], count[1] + 1))
    out = []
    for k in range(n):
        pw = int(round(w * rng.uniform(0.07, 0.12)))
        lo, hi = (0.15 + 0.7 * k / n) * w, (0.15 + 0.7 * (k + 1) / n) * w - pw
        x0 = int(rng.uniform(lo, max(lo + 1, hi)))
        out.append((x0, x0 + pw))
    return out


def _pillar_texture(rng: np.random.Generator, pw: int, h: int) -> np.ndarray:
    """A grey pillar: vertical shading with horizontal joints (corners for flow)."""
    shade = 70 + 40 * np.sin(np.linspace(0.2, math.pi - 0.2, pw))
    tex = np.repeat(shade[None, :], h, axis=0).astype(np.float32)
    tex += rng.normal(0, 4, (h, 1)).astype(np.float32)
    step = int(rng.integers(25, 45))
    tex[::step] -= 35.0
    tex[:, :2] = 40.0
    tex[:, -2:] = 40.0
    grey = np.clip(tex, 20, 200)
    tint = rng.integers(-_TINT // 2, _TINT // 2 + 1, 3)
    return np.clip(grey[..., None] + tint, 0, 255).astype(np.uint8)


def _mask(shape: str, r: int) -> np.ndarray:
    size = 2 * r + 1
    m = np.zeros((size, size), np.uint8)
    if shape == 'circle':
        cv2.circle(m, (r, r), r, 1, -1, cv2.LINE_8)
    elif shape == 'square':
        a = round(r * 0.85)
        cv2.rectangle(m, (r - a, r - a), (r + a, r + a), 1, -1, cv2.LINE_8)
    else:
        pts = np.array([[r, 0], [2 * r, 2 * r - round(0.25 * r)],
                        [0, 2 * r - round(0.25 * r)]], np.int32)
        cv2.fillPoly(m, [pts], 1, cv2.LINE_8)
    return m.astype(bool)


def _things(rng: np.random.Generator, w: int, h: int, duration_s: float,
            layout: Layout = DEFAULT_LAYOUT) -> list[_Thing]:
    pan_y = math.ceil(_PAN_Y * h) + 1
    lane_h = (h - 2 * pan_y) / _LANES
    n = int(rng.integers(layout.objects[0], layout.objects[1] + 1))
    lanes = sorted(rng.choice(_LANES, size=n, replace=False).tolist())
    # Three colours for 4 or 5 objects: some colour always appears at least twice.
    colours = rng.choice(list(PALETTE), size=layout.colours, replace=False).tolist()
    picks = [colours[int(rng.integers(layout.colours))] for _ in range(n)]
    span = w * (1 + 2 * _WRAP_MARGIN)
    out = []
    for lane, colour in zip(lanes, picks):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        r = max(2, int(lane_h * rng.uniform(0.24, 0.32) * layout.size))
        amp = 0.08 * lane_h
        bob = (amp, float(rng.uniform(0.1, 0.3)), float(rng.uniform(0, 2 * math.pi)))
        # Piecewise-constant velocity: moves, turns round, sometimes stops.
        seg_t, seg_v = [0.0], []
        direction = 1.0 if rng.random() < 0.5 else -1.0
        while True:
            if rng.random() < 0.3:
                direction = -direction
            speed = 0.0 if rng.random() < 0.12 else rng.uniform(0.06, 0.22) * w
            seg_v.append(direction * speed)
            nxt = seg_t[-1] + rng.uniform(1.0, 3.5)
            if nxt > duration_s + 1.0:
                break
            seg_t.append(nxt)
        x0 = -_WRAP_MARGIN * w + rng.uniform(0, span)
        seg_x = [x0]
        for k in range(1, len(seg_t)):
            seg_x.append(seg_x[-1] + seg_v[k - 1] * (seg_t[k] - seg_t[k - 1]))
        mask = _mask(shape, r)
        out.append(_Thing(colour, shape, mask, mask.sum(axis=0), pan_y + (lane + 0.5) * lane_h,
                          bob, np.array(seg_t), np.array(seg_x), np.array(seg_v)))
    return out
