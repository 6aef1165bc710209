# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
TEST DOUBLES: scripted model backends whose answers are known in advance.

They are not models. They exist so that the replay evaluation and its scoring can be tested end
to end through the real graph: random-weight tiny models answer noise, these answer what the test
(or the evaluation bag) says they will. Their names start with ``scripted-test-double:`` or
``oracle-test-double:`` and they log a warning when made, so a run that used one says so.

* ``ScriptedSvlm`` (spec ``scripted:<json>``) stands in for the edge SVLM (``base.EdgeSvlm``:
  same ``answer``, ``count_tokens``, ``name``, ``max_new_tokens``, ``focus_layers``,
  ``focus_supported``, ``cache_stats`` and the backends' keywords). It answers from a JSON
  script (format in ``load_script``); with ``echo_cloud`` it repeats the cloud answer that
  Context Replacement put into its history for the same question: an SVLM that uses corrected
  context perfectly. It never looks at the image
  and applies no attention focus (``focus_supported`` is False, ``focus_applied`` always False).
  It can also be served as a scripted cloud by the LVLM server.
* ``OracleLvlm`` (spec ``oracle:<eval bag>``) stands in for the cloud LVLM behind the project's
  LVLM server. It recognises which frame of the bag a request image is (nearest grey thumbnail,
  ``lvlm.frame_match``, the rule the simulated LVLM uses too) and answers that frame's ground
  truth with its ground-truth boxes: exactly right, and late only by what the network profile
  adds.

They are made from their specs by the model table (``backends.registry``), like every model.

Tokens here are whitespace-separated words (``core.context.word_count``); the answers are capped
at ``max_new_tokens`` words, as a model is capped at its token budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
import json
import logging
import math
import os
import threading
import time
from typing import Any

import numpy as np

from edgevlm_ros.backends.base import (
    QUANTIZATIONS,
    BackendSettings,
    PartialText,
    PrefixCacheStats,
    SvlmResult,
    TokenCallback,
    check_device,
    check_dtype,
    parse_providers,
)
from edgevlm_ros.core.context import truncate_to_tokens, word_count
from edgevlm_ros.core.images import check_image
from edgevlm_ros.core.regions import Box
from edgevlm_ros.lvlm.frame_match import (
    DEFAULT_MAX_DISTANCE,
    DEFAULT_MAX_FRAMES,
    UNKNOWN_ANSWER,
    FrameIndex,
    GroundedResult,
    check_request,
    question_matches,
)

_LOG = logging.getLogger(__name__)

SCRIPTED_PREFIX = 'scripted:'
ORACLE_PREFIX = 'oracle:'
SCRIPT_KEYS = ('answer', 'answers', 'echo_cloud', 'delay_ms')
MAX_DELAY_MS = 60_000.0


# ---------------------------------------------------------------------------------- script

@dataclass(frozen=True)
class Script:
    """A parsed answer script (see ``load_script``)."""

    answer: str
    answers: dict[str, str] = field(default_factory=dict)
    echo_cloud: bool = False
    delay_ms: float = 0.0

    def scripted_answer(self, question: str) -> str:
        """answers[question] (exact, else the longest key the question ends with), or answer."""
        if question in self.answers:
            return self.answers[question]
        keys = [k for k in self.answers if question_matches(question, k)]
        return self.answers[max(keys, key=len)] if keys else self.answer

    @property
    def own_texts(self) -> frozenset[str]:
        """Every text this script can answer (echo_cloud skips these in the history)."""
        return frozenset((self.answer, *self.answers.values()))


def load_script(path: str) -> Script:
    """
    Read and check an answer script; raise ValueError naming the file and key on any mistake.

    Format (JSON object)::

        {"answer": "no",                          # required: the default answer
         "answers": {"Is the path clear?": "yes"},  # optional: per-question answers
         "echo_cloud": false,                     # optional: repeat cloud answers in history
         "delay_ms": 150}                         # optional: emulated model time, 0..60000
    """
    try:
        with open(os.path.expanduser(path), encoding='utf-8') as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f'answer script {path!r} does not exist') from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f'answer script {path!r}: cannot read it: {e}') from e
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f'answer script {path!r}: not valid JSON: {e}') from e

    def bad(key: str, what: str, value: Any) -> ValueError:
        return ValueError(f'answer script {path!r}: key {key!r} {what}, got {value!r}')

    if not isinstance(data, dict):
        raise ValueError(f'answer script {path!r}: must be a JSON object with the keys '
                         f'{", ".join(SCRIPT_KEYS)}, got {type(data).__name__}')
    unknown = sorted(set(data) - set(SCRIPT_KEYS))
    if unknown:  # a typo ("anwsers") would otherwise silently answer the default everywhere
        raise ValueError(f'answer script {path!r}: unknown keys {unknown}; expected '
                         f'{", ".join(SCRIPT_KEYS)}')
    if 'answer' not in data:
        raise ValueError(f'answer script {path!r}: key "answer" (the default answer) is missing')
    answer = data['answer']
    if not isinstance(answer, str) or not answer.strip():
        raise bad('answer', 'must be a non-empty string', answer)
    answers = data.get('answers', {})
    if not isinstance(answers, dict):
        raise bad('answers', 'must be an object {question: answer}', answers)
    for question, text in answers.items():
        if not question.strip():
            raise bad('answers', 'must not have an empty question', question)
        if not isinstance(text, str) or not text.strip():
            raise bad(f'answers[{question!r}]', 'must be a non-empty string', text)
    echo = data.get('echo_cloud', False)
    if not isinstance(echo, bool):
        raise bad('echo_cloud', 'must be true or false', echo)
    delay = data.get('delay_ms', 0)
    if (isinstance(delay, bool) or not isinstance(delay, (int, float))
            or not 0.0 <= delay <= MAX_DELAY_MS):
        raise bad('delay_ms', f'must be a number 0..{MAX_DELAY_MS:g}', delay)
    return Script(answer.strip(), {q.strip(): a.strip() for q, a in answers.items()}, echo,
                  float(delay))


def _spec_path(spec: str, prefix: str) -> str:
    path = spec[len(prefix):] if spec.startswith(prefix) else spec
    if not path.strip():
        raise ValueError(f'{prefix}<path>: the path is empty in {spec!r}')
    return path.strip()


def _render_prompt(question: str, history: Sequence[tuple[str, str]]) -> str:
    lines = [f'User: {q}\nAssistant: {a}' for q, a in history]
    lines.append(f'User: <image>{question}\nAssistant:')
    return '\n'.join(lines)


class ScriptedSvlm(BackendSettings):
    """TEST DOUBLE for the edge SVLM: answers from a JSON script, never from the image."""

    focus_supported = False  # it cannot bias attention; the edge's 'auto' focus mode crops

    def __init__(self, spec: str, *, max_new_tokens: int = 24, image_longest_edge: int = 512,
                 do_image_splitting: bool = False, num_threads: int = 0,
                 focus_layers: Sequence[int] | None = None, device: str = 'auto',
                 dtype: str = 'auto', quantize: str = 'none',
                 providers: Sequence[str] | str = (), kv_reuse: bool = True) -> None:
        # image_longest_edge, do_image_splitting, num_threads, device, dtype, quantize,
        # providers, kv_reuse: the backends' keywords, accepted (and checked for form) so one
        # call makes any backend; nothing here processes an image or runs on a device.
        for reason in (check_device(device), check_dtype(dtype)):
            if reason:
                raise ValueError(reason)
        if quantize not in QUANTIZATIONS:
            raise ValueError(f'quantize must be one of {", ".join(QUANTIZATIONS)}, '
                             f'got {quantize!r}')
        if not isinstance(kv_reuse, bool):
            raise ValueError(f'kv_reuse must be True or False, got {kv_reuse!r}')
        self.providers = parse_providers(providers)
        self.cache_stats = PrefixCacheStats()  # every call is a miss: there is no cache
        self.path = _spec_path(spec, SCRIPTED_PREFIX)
        self.script = load_script(self.path)
        self.name = f'scripted-test-double:{self.path}'
        self.max_new_tokens = max_new_tokens
        self.focus_layers = focus_layers
        self._lock = threading.Lock()  # one answer at a time, like one model
        _LOG.warning('TEST DOUBLE %s: answers come from a script, not from a model',
                     self.name)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text``: whitespace-separated words."""
        return word_count(text)

    def text_for(self, question: str, history: Sequence[tuple[str, str]] = (),
                 sources: Sequence[bool] | None = None) -> str:
        """
        The answer the script gives (before the length cap); no delay.

        With echo_cloud: the newest turn for the question that holds cloud text. `sources` says
        which turns do (the edge node passes them); without it, a turn whose text the script
        does not produce is taken for cloud text (the double's own earlier echoes then count
        too, so callers that can should pass `sources`).
        """
        if self.script.echo_cloud:
            own = self.script.own_texts
            flags = list(sources) if sources is not None else [None] * len(history)
            if len(flags) != len(history):
                raise ValueError(f'history_sources has {len(flags)} entries for '
                                 f'{len(history)} history turns')
            for (past_question, past_answer), from_cloud in reversed(list(zip(history, flags))):
                cloud = from_cloud if from_cloud is not None else past_answer not in own
                if question_matches(question, past_question) and past_answer.strip() and cloud:
                    return past_answer
        return self.script.scripted_answer(question)

    def answer(self, image: np.ndarray, question: str,
               history: Sequence[tuple[str, str]] = (), focus: Sequence[Box] = (),
               focus_alpha: float = 0.0, *, max_new_tokens: int | None = None,
               history_sources: Sequence[bool] | None = None,
               on_token: TokenCallback | None = None) -> SvlmResult:
        """
        Answer as scripted after ``delay_ms`` of emulated model time; focus is ignored.

        ``history_sources``: which history turns hold cloud text (see ``text_for``). With
        ``on_token`` the answer comes word by word (a word is a token here), the emulated time
        spread over the words, and stops when it returns False, as a real backend's.
        """
        check_image(image, grey=False)  # the same rejections as the real backend
        if not isinstance(question, str) or not question.strip():
            raise ValueError('question must be a non-empty string')
        if not math.isfinite(focus_alpha):
            raise ValueError(f'focus_alpha must be finite, got {focus_alpha}')
        limit = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f'max_new_tokens must be an int >= 1, got {limit!r}')
        turns = _check_history(history)
        question = question.strip()
        with self._lock:
            t0 = time.perf_counter()
            text = truncate_to_tokens(self.text_for(question, turns, history_sources), limit)
            prompt = _render_prompt(question, turns)
            stopped = False
            if on_token is None:
                remaining = self.script.delay_ms / 1000.0 - (time.perf_counter() - t0)
                if remaining > 0:
                    time.sleep(remaining)  # emulated compute time of a model, not synchronisation
            else:
                text, stopped = self._stream(text, on_token)
            model_ms = (time.perf_counter() - t0) * 1000.0
            self.cache_stats.add(word_count(prompt), 0)
        return SvlmResult(text=text, model_ms=model_ms, prompt_tokens=word_count(prompt),
                          focus_applied=False, focused_tokens=0, prompt=prompt,
                          completion_tokens=word_count(text), stopped=stopped)

    def _stream(self, text: str, on_token: TokenCallback) -> tuple[str, bool]:
        """Hand out ``text`` word by word over ``delay_ms``; (the text given, stopped)."""
        words = text.split()
        per_word = self.script.delay_ms / 1000.0 / max(1, len(words))
        for n in range(1, len(words) + 1):
            time.sleep(per_word)  # emulated compute time of one token, not synchronisation
            if not on_token(PartialText(words[:n], ' '.join)) and n < len(words):
                return ' '.join(words[:n]), True
        return text, False


def _check_history(history: Iterable[Any]) -> list[tuple[str, str]]:
    turns = []
    for i, turn in enumerate(history):
        if len(turn) != 2 or not all(isinstance(t, str) for t in turn):
            raise ValueError(f'history turn {i} must be a (question, answer) pair of str')
        turns.append((turn[0], turn[1]))
    return turns


# ---------------------------------------------------------------------------------- oracle

class OracleLvlm:
    """
    TEST DOUBLE for the cloud LVLM: answers the ground truth of the bag frame it is shown.

    The frame is found by ``FrameIndex``'s rule. Matched: the reply is that frame's ground-truth
    answer (for multiple choice the option text) and its ground-truth boxes. Not matched (an image
    from elsewhere, or a question not asked at that frame): ``UNKNOWN_ANSWER`` and no boxes; the
    oracle never answers what it has no ground truth for. History and focus are ignored.
    """

    focus_supported = False

    def __init__(self, spec: str, *, max_distance: float = DEFAULT_MAX_DISTANCE,
                 max_frames: int = DEFAULT_MAX_FRAMES, max_new_tokens: int = 1024) -> None:
        from edgevlm_ros.eval.bags import read_eval_bag

        self.path = _spec_path(spec, ORACLE_PREFIX)
        self.name = f'oracle-test-double:{self.path}'
        self.max_new_tokens = max_new_tokens
        self.focus_layers = None
        path = os.path.expanduser(self.path)
        if not os.path.exists(path):
            raise FileNotFoundError(f'oracle: evaluation bag {self.path!r} does not exist')
        t0 = time.perf_counter()
        bag = read_eval_bag(path)
        self.index = FrameIndex(
            ((stamp, bag.decode_rgb(msgtype, raw)) for stamp, msgtype, raw in bag.frames()),
            bag.truths, max_distance=max_distance, max_frames=max_frames,
            source=f'oracle: {self.path!r}')
        self._stats_lock = threading.Lock()
        self.stats = {'matched': 0, 'unknown_image': 0, 'unknown_question': 0}
        _LOG.warning('TEST DOUBLE %s: answers the ground truth of %d frames (%d with truth, '
                     '%d questions), indexed in %.1f s', self.name, len(self.index),
                     sum(t is not None for t in self.index.truths), len(self.index.questions),
                     time.perf_counter() - t0)

    def count_tokens(self, text: str) -> int:
        return word_count(text)

    def answer(self, image: np.ndarray, question: str,
               history: Sequence[tuple[str, str]] = (), focus: Sequence[Box] = (),
               focus_alpha: float = 0.0, *, max_new_tokens: int | None = None
               ) -> GroundedResult:
        """The ground truth of the frame ``image`` is, or 'unknown'."""
        limit = check_request(image, question, self.max_new_tokens, max_new_tokens)
        t0 = time.perf_counter()
        found, truth = self.index.match(image, question)
        with self._stats_lock:
            self.stats[found.reason] += 1
        if truth is None:
            _LOG.warning('%s: %s (nearest frame %d at distance %.1f, limit %.1f); answering '
                         '%r', self.name, found.reason, found.stamp_ns, found.distance,
                         self.index.max_distance, UNKNOWN_ANSWER)
            text, boxes = UNKNOWN_ANSWER, ()
        else:
            _LOG.debug('%s: frame %d at distance %.2f (next %.2f)', self.name, found.stamp_ns,
                       found.distance, found.nearest_other)
            text, boxes = truncate_to_tokens(truth.answer, limit), tuple(truth.boxes)
        return GroundedResult(text=text, model_ms=(time.perf_counter() - t0) * 1000.0,
                              prompt_tokens=word_count(question), focus_applied=False,
                              focused_tokens=0, prompt=question,
                              completion_tokens=word_count(text), boxes=boxes, match=found)


def is_scripted_spec(spec: str) -> bool:
    """True for the specs of the test doubles ('scripted:...', 'oracle:...')."""
    return isinstance(spec, str) and spec.startswith((SCRIPTED_PREFIX, ORACLE_PREFIX))
