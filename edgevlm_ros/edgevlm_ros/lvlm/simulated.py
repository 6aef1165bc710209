# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
SIMULATED cloud LVLM for the synthetic world: a large model that is usually right.

Why one module of 468 lines: it is one simulation, specified in this docstring: its spec string,
the question patterns it reads back from sim.synthworld's question texts and the error model
over their answer spaces. Patterns, answer spaces and wrong boxes must agree with each other and
with the world, so they are kept together.

It is a simulation, not a model. It recognises which frame of a known synthetic world (or of an
evaluation bag) a request image is, reads the answer off that frame's ground truth, and is wrong
on purpose at a configurable rate. Its name starts with ``simulated-lvlm:`` and it logs one INFO
line saying what it is when made. It has the interface of the cloud backends (``answer``,
``count_tokens``, ``name``, ``max_new_tokens``, ``focus_layers``, ``focus_supported`` = False), so
the LVLM server serves it in-process (the cloud bridge's ``embedded_model``) and over the
OpenAI-compatible API (``edgevlm_lvlm_server --model simulated:...``), behind the same network
latency profiles as a real LVLM; a real LVLM plugs in where it is, unchanged.

Spec (one comma-separated list; ``,`` survives a shell, ``name:=value`` launch arguments and
YAML parameter files unquoted, where ``;`` would end a shell command)::

    simulated:synth:<world keys>[,error=0.1][,error_seed=0]
    simulated:synth                         (the default world, = simulated:synth:)
    simulated:<eval bag dir>[,error=0.1][,error_seed=0]

World keys are ``sim.synthworld.WorldSpec``'s (``seed``, ``duration``, ``fps``, ``pace``,
``episode``, ``question_every``, ``width``, ``height``); ``seed`` is the world's seed,
``error_seed`` the seed of the error draws. A bag written by ``edgevlm synth`` records its
WorldSpec (``eval.bags.WORLD_SPEC_KEY`` in metadata.yaml's custom_data): the simulation then
answers from that world. Any other bag (older synth bags, converted datasets) is answered from
its per-frame ground truth, for the question asked at that frame only, as the oracle does.

Recognising the frame: nearest 32x24 grey thumbnail of all frames (``lvlm.frame_match``, the
rule the oracle test double uses too; JPEG and resizing do not confuse it); farther than
``max_distance`` from every frame = 'unknown', no boxes (counted as ``unknown_image``).

Answering (world): the request's question (its last line; a client may put context before it)
is read as one of the world's questions, exactly ``synthworld.Question.text`` up to case,
whitespace, trailing punctuation and, for 'where', the options suffix, about a palette colour and
one of the three shapes:

* How many C objects are there? / Is there a C S? / What colour is the S? / Where is the C S?
  -> ``Question.answer`` at the matched frame (for 'where' the option text) with the true boxes
  of the visible objects it depends on (``Question.relevant``).
* Any other text ("What is in front of the robot?", "Describe the scene") -> a description of
  the visible objects left to right, e.g. "a red circle on the left, a blue square in the centre
  and a green triangle on the right" ("nothing" when none is visible), with all their boxes.

Error model: each world question is answered wrong with probability ``error`` (default 0.1;
draws from a generator seeded with ``error_seed``, so a run repeats exactly for the same
sequence of requests). The wrong answer is drawn uniformly from the question's answer space
without the true answer and its accepted forms: counts 0-4, yes/no, the palette colours and
'none', the four 'where' options. Its boxes are those of the objects it implies where that is
easy, else the true ones: a count k below the truth keeps k of the true boxes, above it adds
other visible objects; 'no', 'none', 'not visible' and 0 have none; a wrong 'yes' shows the
visible objects of that colour or shape; a wrong colour or side keeps the true boxes (a wrong
colour with no such shape in view shows the objects of that colour). Descriptions are never
falsified. In bag-truth mode the same spaces apply when the question is a world question; else a
multiple-choice truth gets another option, yes/no is flipped, a number gets another of 0-4, and
free text is left right (not counted as wrong).

Counters (``stats``): matched, unknown_image, unknown_question (bag-truth mode: no truth for
that question at that frame), described, wrong_on_purpose.

Limits: one 3 KB thumbnail and one float per frame; worlds and bags over ``max_frames`` (60,000
by default, the oracle's bound) are refused before anything is rendered or decoded. A world
spec renders every frame once at start (about 1 ms a frame at 640x480).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
import logging
import math
import os
import re
import threading
import time

import numpy as np

from edgevlm_ros.core.context import truncate_to_tokens, word_count
from edgevlm_ros.core.records import Truth
from edgevlm_ros.core.regions import Box
from edgevlm_ros.lvlm.frame_match import (
    DEFAULT_MAX_DISTANCE,
    DEFAULT_MAX_FRAMES,
    UNKNOWN_ANSWER,
    FrameIndex,
    FrameMatch,
    GroundedResult,
    ThumbnailIndex,
    check_request,
)
from edgevlm_ros.sim.synthworld import (
    NONE_ANSWER,
    NOT_VISIBLE,
    PALETTE,
    SHAPES,
    WHERE_CHOICES,
    Episode,
    FrameState,
    ObjectView,
    Question,
    SynthWorld,
    WorldSpec,
)

_LOG = logging.getLogger(__name__)

SIMULATED_PREFIX = 'simulated:'
NAME_PREFIX = 'simulated-lvlm:'
OPTION_KEYS = ('error', 'error_seed')
DEFAULT_ERROR = 0.1
NOTHING = 'nothing'
COUNT_SPACE = tuple(str(n) for n in range(5))
STATS_KEYS = ('matched', 'unknown_image', 'unknown_question', 'described', 'wrong_on_purpose')
# Answers that point at no object: a wrong answer of these carries no boxes.
_EMPTY_ANSWERS = frozenset({'0', 'no', NONE_ANSWER, NOT_VISIBLE})
_WORLD_KEYS = tuple(f.name for f in fields(WorldSpec))
_PHRASE = {'left': 'on the left', 'centre': 'in the centre', 'right': 'on the right'}


@dataclass(frozen=True)
class SimulatedSpec:
    """A parsed ``simulated:`` spec: a world (WorldSpec) or a bag path, and the error model."""

    world: WorldSpec | None
    bag: str | None
    error: float = DEFAULT_ERROR
    error_seed: int = 0


def parse_spec(spec: str) -> SimulatedSpec:
    """Parse a ``simulated:`` spec (module docstring); ValueError names the bad part."""
    if not isinstance(spec, str) or not spec.startswith(SIMULATED_PREFIX):
        raise ValueError(f"a simulated LVLM spec starts with '{SIMULATED_PREFIX}', got {spec!r}")
    rest = spec[len(SIMULATED_PREFIX):].strip()
    if not rest:
        raise ValueError(f'{spec!r}: expected simulated:synth:<world keys> or '
                         'simulated:<eval bag dir> after the prefix')
    options: dict[str, str] = {}

    def take(item: str) -> None:
        key, _, value = item.partition('=')
        key = key.strip()
        if key in options:
            raise ValueError(f'{spec!r}: {key} is given twice')
        options[key] = value.strip()

    if rest == 'synth' or rest.startswith(WorldSpec.PREFIX):
        world_items = []
        for item in filter(None, (x.strip() for x in rest[len('synth:'):].split(','))):
            key, sep, _ = item.partition('=')
            key = key.strip()
            if not sep or key not in _WORLD_KEYS + OPTION_KEYS:
                raise ValueError(f'{spec!r}: expected key=value with a world key '
                                 f'({", ".join(_WORLD_KEYS)}) or a simulation key '
                                 f'({", ".join(OPTION_KEYS)}), got {item!r}')
            if key in OPTION_KEYS:
                take(item)
            else:
                world_items.append(item)
        try:
            world = WorldSpec.parse(WorldSpec.PREFIX + ','.join(world_items))
        except ValueError as e:
            raise ValueError(f'{spec!r}: bad world: {e}') from None
        bag = None
    else:
        items = rest.split(',')
        # Options trail the path; a path may hold commas itself.
        while len(items) > 1 and items[-1].partition('=')[0].strip() in OPTION_KEYS \
                and '=' in items[-1]:
            take(items.pop())
        world, bag = None, ','.join(items).strip()
        if not bag:
            raise ValueError(f'{spec!r}: the eval bag path is empty')
    error, seed = DEFAULT_ERROR, 0
    if 'error' in options:
        try:
            error = float(options['error'])
        except ValueError:
            error = math.nan
        if not 0.0 <= error <= 1.0:  # also catches nan
            raise ValueError(f'{spec!r}: error must be a probability in [0, 1], got '
                             f'{options["error"]!r}')
    if 'error_seed' in options:
        try:
            seed = int(options['error_seed'])
        except ValueError:
            seed = -1
        if seed < 0:
            raise ValueError(f'{spec!r}: error_seed must be an int >= 0, got '
                             f'{options["error_seed"]!r}')
    return SimulatedSpec(world, bag, error, seed)


def is_simulated_spec(spec: str) -> bool:
    return isinstance(spec, str) and spec.startswith(SIMULATED_PREFIX)


# ------------------------------------------------------------------------------- questions

_COLOUR = '|'.join(PALETTE)
_SHAPE = '|'.join(SHAPES)
_OPTIONS = r'(?:\s*\(a\) left \(b\) cent(?:re|er) \(c\) right \(d\) not visible)?'
_PATTERNS = (
    ('count', re.compile(rf'how many (?P<colour>{_COLOUR}) objects are there')),
    ('exists', re.compile(rf'is there an? (?P<colour>{_COLOUR}) (?P<shape>{_SHAPE})')),
    ('colour', re.compile(rf'what colou?r is the (?P<shape>{_SHAPE})')),
    ('where', re.compile(rf'where is the (?P<colour>{_COLOUR}) (?P<shape>{_SHAPE})\??'
                         rf'{_OPTIONS}')),
)


def _plain(text: str) -> str:
    """Casefolded, single-spaced, without trailing punctuation."""
    return re.sub(r'[\s?.!]+$', '', ' '.join(text.casefold().split()))


def parse_question(text: str) -> Question | None:
    """
    The world question ``text`` asks, or None when it is no world question.

    Read from its last line (a client may put context before the question), or its last two
    lines for options put on a line of their own.
    """
    lines = [line for line in (x.strip() for x in text.splitlines()) if line]
    for k in (1, 2):
        if len(lines) < k:
            break
        candidate = _plain(' '.join(lines[-k:]))
        for kind, pattern in _PATTERNS:
            m = pattern.fullmatch(candidate)
            if m:
                return Question(kind, colour=m.groupdict().get('colour') or '',
                                shape=m.groupdict().get('shape') or '')
    return None


def describe(state: FrameState) -> tuple[str, tuple[Box, ...]]:
    """The visible objects, left to right, as one phrase, and their boxes."""
    objs = sorted((o for o in state.visible() if o.box is not None),
                  key=lambda o: (o.box.center()[0], o.name))
    if not objs:
        return NOTHING, ()
    parts = [f'{"an" if o.name[0] in "aeiou" else "a"} {o.name} {_PHRASE[o.location]}'
             for o in objs]
    text = parts[0] if len(parts) == 1 else ', '.join(parts[:-1]) + ' and ' + parts[-1]
    return text, tuple(o.box for o in objs)


def answer_space(question: Question | None, truth: str,
                 choices: Sequence[str] = ()) -> tuple[str, ...]:
    """Every answer to the question a wrong one is drawn from (empty: no space known)."""
    if question is not None:
        return {'count': COUNT_SPACE, 'exists': ('yes', 'no'),
                'colour': (*PALETTE, NONE_ANSWER), 'where': WHERE_CHOICES}[question.kind]
    if choices:
        return tuple(choices)
    t = truth.strip().casefold()
    if t in ('yes', 'no'):
        return ('yes', 'no')
    if t.isdigit():
        return COUNT_SPACE
    return ()


def _wrong_boxes_world(q: Question, wrong: str, state: FrameState) -> tuple[Box, ...]:
    """Boxes of the objects a wrong answer implies (see the module docstring)."""
    def boxes(objs: Sequence[ObjectView]) -> tuple[Box, ...]:
        return tuple(o.box for o in objs if o.box is not None)

    relevant = q.relevant(state)
    if wrong in _EMPTY_ANSWERS:
        return ()
    if q.kind == 'count':
        k = int(wrong)
        others = [o for o in state.visible() if o not in relevant]
        return boxes((relevant + sorted(others, key=lambda o: o.x))[:k])
    if q.kind == 'exists':  # a 'yes' that is wrong: what it took for the object
        return boxes([o for o in state.visible() if o.colour == q.colour or o.shape == q.shape])
    if q.kind == 'colour' and not relevant:
        return boxes([o for o in state.visible() if o.colour == wrong])
    return boxes(relevant)


def _wrong_boxes_truth(truth: Truth, wrong: str) -> tuple[Box, ...]:
    if wrong.casefold() in _EMPTY_ANSWERS:
        return ()
    if wrong.isdigit():
        return tuple(truth.boxes)[:int(wrong)]
    return tuple(truth.boxes)


# ----------------------------------------------------------------------------------- model

class SimulatedLvlm:
    """
    SIMULATED cloud LVLM: answers the synthetic world's ground truth, wrong at rate ``error``.

    See the module docstring for the spec, the answering rules and the error model. History and
    focus are ignored; one answer at a time.
    """

    focus_supported = False

    def __init__(self, spec: str, *, max_distance: float = DEFAULT_MAX_DISTANCE,
                 max_frames: int = DEFAULT_MAX_FRAMES, max_new_tokens: int = 1024) -> None:
        self.spec = parse_spec(spec)
        self.name = NAME_PREFIX + spec[len(SIMULATED_PREFIX):].strip()
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f'max_new_tokens must be an int >= 1, got {max_new_tokens!r}')
        self.max_new_tokens = max_new_tokens
        self.focus_layers = None
        self.world: WorldSpec | None = self.spec.world
        self._synth: SynthWorld | None = None
        self._times = np.empty(0)          # dataset time (s) of each indexed frame
        self.index: ThumbnailIndex
        t0 = time.perf_counter()
        if self.spec.bag is None:
            source = 'the synthetic world ' + str(self.world)
            self._index_world(max_distance, max_frames)
        else:
            source = f'the eval bag {self.spec.bag!r}'
            self._index_bag(max_distance, max_frames)
            if self.world is not None:
                source += f' (world {self.world})'
        self._rng = np.random.default_rng(self.spec.error_seed)
        self._lock = threading.Lock()
        self.stats = dict.fromkeys(STATS_KEYS, 0)
        mode = 'ground truth' if self.world is not None else 'per-frame ground truth'
        _LOG.info("%s is a SIMULATION, not a model: it answers from the synthetic world's %s "
                  'with error rate %g (error_seed %d); %d frames of %s indexed in %.1f s',
                  self.name, mode, self.spec.error, self.spec.error_seed, len(self.index),
                  source, time.perf_counter() - t0)

    # ------------------------------------------------------------------------------ sources

    def _state_at(self, t_s: float) -> tuple[Episode, FrameState]:
        if self._synth is None:
            self._synth = self.world.world()  # keeps the last episode built
        return self.world.state_at(t_s, self._synth)

    def _render(self, t_s: float) -> np.ndarray:
        episode, state = self._state_at(t_s)
        return episode.render(state)

    def _index_world(self, max_distance: float, max_frames: int) -> None:
        w = self.world
        n = w.frames
        if n > max_frames:
            raise ValueError(f'{self.name}: the world has {n} frames, more than {max_frames} '
                             '(the bound on thumbnail memory); shorten duration or lower fps')
        self._times = np.arange(n) / w.fps  # generate()'s frame times
        # Keyed by dataset time in ns (a bag's stamps are that plus eval.bags.EPOCH_NS).
        self.index = ThumbnailIndex(((round(t * 1e9), self._render(float(t)))
                                     for t in self._times),
                                    max_distance=max_distance, max_frames=max_frames,
                                    source=self.name)

    def _index_bag(self, max_distance: float, max_frames: int) -> None:
        from edgevlm_ros.eval.bags import EPOCH_NS, WORLD_SPEC_KEY, read_eval_bag

        path = os.path.expanduser(self.spec.bag)
        if not os.path.exists(path):
            raise FileNotFoundError(f'{self.name}: evaluation bag {self.spec.bag!r} does not '
                                    'exist')
        bag = read_eval_bag(path)
        if bag.info.frames > max_frames:
            raise ValueError(f'{self.name}: the bag has {bag.info.frames} frames, more than '
                             f'{max_frames} (the bound on thumbnail memory)')
        frames = ((stamp, bag.decode_rgb(msgtype, raw)) for stamp, msgtype, raw in bag.frames())
        text = bag.custom_data.get(WORLD_SPEC_KEY)
        if text is None:
            self.index = FrameIndex(frames, bag.truths, max_distance=max_distance,
                                    max_frames=max_frames, source=self.name)
            return
        try:
            self.world = WorldSpec.parse(text)
        except ValueError as e:
            raise ValueError(f"{self.name}: the bag's {WORLD_SPEC_KEY} is no world: {e}") \
                from None
        self.index = ThumbnailIndex(frames, max_distance=max_distance, max_frames=max_frames,
                                    source=self.name)
        # Frame i of the world is at i / fps; the bag stamp holds that rounded to 1 ns.
        ticks = np.rint((self.index.stamps - EPOCH_NS) / 1e9 * self.world.fps)
        self._times = ticks / self.world.fps
        first = self.index.distances(self._render(float(self._times[0])))[0]
        if first > self.index.max_distance:
            raise ValueError(f"{self.name}: the bag's {WORLD_SPEC_KEY} {text!r} does not "
                             f'render its first frame (thumbnail distance {first:.1f})')

    # ------------------------------------------------------------------------------ answers

    def count_tokens(self, text: str) -> int:
        return word_count(text)

    def answer(self, image: np.ndarray, question: str,
               history: Sequence[tuple[str, str]] = (), focus: Sequence[Box] = (),
               focus_alpha: float = 0.0, *, max_new_tokens: int | None = None
               ) -> GroundedResult:
        """The (usually right) answer about the frame ``image`` is, or 'unknown'."""
        limit = check_request(image, question, self.max_new_tokens, max_new_tokens)
        t0 = time.perf_counter()
        with self._lock:
            if isinstance(self.index, FrameIndex):
                found, text, boxes = self._from_truth(image, question)
            else:
                found, text, boxes = self._from_world(image, question)
        if found.reason != 'matched':
            _LOG.warning('%s: %s (nearest frame %d at distance %.1f, limit %.1f); answering '
                         '%r', self.name, found.reason, found.stamp_ns, found.distance,
                         self.index.max_distance, UNKNOWN_ANSWER)
        text = truncate_to_tokens(text, limit)
        return GroundedResult(text=text, model_ms=(time.perf_counter() - t0) * 1000.0,
                              prompt_tokens=word_count(question), focus_applied=False,
                              focused_tokens=0, prompt=question,
                              completion_tokens=word_count(text), boxes=boxes, match=found)

    def _count(self, key: str) -> None:
        self.stats[key] += 1

    def _draw_wrong(self, space: Sequence[str], truth: str,
                    accepted: Sequence[str] = ()) -> str | None:
        """A wrong answer with probability error (None: stay right)."""
        if self.spec.error <= 0.0:
            return None
        hit = self._rng.random() < self.spec.error
        right = {truth.casefold(), *(a.casefold() for a in accepted)}
        options = [a for a in space if a.casefold() not in right]
        if not hit or not options:
            return None
        self._count('wrong_on_purpose')
        return options[int(self._rng.integers(len(options)))]

    def _from_world(self, image: np.ndarray, question: str
                    ) -> tuple[FrameMatch, str, tuple[Box, ...]]:
        found = self.index.nearest(image)
        self._count(found.reason)
        if found.reason != 'matched':
            return found, UNKNOWN_ANSWER, ()
        i = int(np.searchsorted(self.index.stamps, found.stamp_ns))  # stamps are in order
        _, state = self._state_at(float(self._times[i]))
        q = parse_question(question)
        if q is None:
            self._count('described')
            text, boxes = describe(state)
            return found, text, boxes
        truth, accepted = q.answer(state)
        wrong = self._draw_wrong(answer_space(q, truth), truth, accepted)
        if wrong is not None:
            return found, wrong, _wrong_boxes_world(q, wrong, state)
        return found, truth, tuple(o.box for o in q.relevant(state) if o.box is not None)

    def _from_truth(self, image: np.ndarray, question: str
                    ) -> tuple[FrameMatch, str, tuple[Box, ...]]:
        found, truth = self.index.match(image, question)
        self._count(found.reason)
        if truth is None:
            return found, UNKNOWN_ANSWER, ()
        space = answer_space(parse_question(truth.question), truth.answer, truth.choices)
        wrong = self._draw_wrong(space, truth.answer, truth.accepted)
        if wrong is not None:
            return found, wrong, _wrong_boxes_truth(truth, wrong)
        return found, truth.answer, tuple(truth.boxes)
