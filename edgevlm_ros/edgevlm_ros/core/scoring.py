# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Scoring an evaluation run: is an answer right, and how fast and fresh were the answers.

ROS-free. Works on core.records (all times integer ns of the graph clock). The definitions:

* ``normalise``: NFKC, lower case, apostrophes dropped, other punctuation (and symbols, ``_``)
  turned into spaces except a decimal point between digits, the articles a/an/the dropped, the
  number words zero..twenty turned into digits, whitespace collapsed.
* An open question's answer is correct when its normalised text equals the normalised truth or an
  accepted form, or when its leading words are exactly the words of one of those ("Yes, the path
  is clear" matches "yes"; "not sure" does not match "no").
* A multiple-choice answer is correct when the option it picks (``pick_choice``) is the true
  one; naming several options or none is wrong.
* Steps: the step ids of the clouds (every step gets one CloudResponse) and of the answers. A
  step's truth is the Truth with exactly its stamp; steps without one are counted, not scored.
* accuracy: over answers, judged against the truth at the answer's own stamp.
* accuracy_at_deadline (the headline): over steps k, the robot's current answer at
  stamp_k + deadline (the latest published answer to the step's question, of any step) judged
  against step k's truth; no answer yet is wrong. An answer to another question is wrong too.
* deadline misses: steps whose own answer was not published within the deadline (or never).
* staleness: published time minus the stamp of the frame the answer's content is about (the
  newest cloud step for a cloud-sourced answer that names one, else the answer's own step).
* cloud: requests are clouds not 'dropped'; bytes are the bridge's final counters.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
import math
import re
import unicodedata

from edgevlm_ros.core.records import AnswerRecord, RunRecord, Truth
from edgevlm_ros.core.stats import percentile

ARTICLES = frozenset({'a', 'an', 'the'})
NUMBER_WORDS = {
    w: str(i) for i, w in enumerate((
        'zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten',
        'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen',
        'eighteen', 'nineteen', 'twenty'))
}
BRIDGE_COUNTERS = 'cloud_bridge'  # node suffix in RunRecord.counters

_APOSTROPHES = re.compile(r"['\u2019\u02bc]")
# Punctuation, symbols and '_' become spaces; a '.' survives only between two digits ("2.5").
_PUNCT = re.compile(r'[^\w\s.]|_|\.(?!\d)|(?<!\d)\.')
# An option letter at the start: "b", "(b)", "b)", "b.", "b:", "option b", "choice (b)", after an
# optional "answer:" / "the answer is". A bare letter followed by words ("a red car") is not one.
_ANSWER_PREFIX = re.compile(r'^\s*(?:the\s+)?(?:correct\s+)?answer(?:\s+is)?\s*[:\-]?\s*')
_LETTER = re.compile(
    r'^\s*(?:'
    r'(?:option|choice)(?:\s+\(?|\s*\()(?P<a>[a-z])\)?(?=[\s.:,;)]|$)'
    r'|\((?P<b>[a-z])\)'
    r'|(?P<c>[a-z])\)'
    r'|(?P<d>[a-z])[.:](?=\s|$)'
    r'|(?P<e>[a-z])\s*$'
    r')')


def normalise(text: str) -> str:
    """Return text normalised for comparison (see the module docstring); idempotent."""
    s = unicodedata.normalize('NFKC', str(text)).lower()
    s = unicodedata.normalize('NFKC', s)  # lower() can leave a decomposed sequence
    s = _APOSTROPHES.sub('', s)
    s = _PUNCT.sub(' ', s)
    words = [NUMBER_WORDS.get(w, w) for w in s.split() if w not in ARTICLES]
    return ' '.join(words)


def _find(words: Sequence[str], part: Sequence[str]) -> list[int]:
    """Start indices where part occurs as contiguous words in words."""
    n = len(part)
    if n == 0:
        return []
    return [i for i in range(len(words) - n + 1) if words[i] == part[0]
            and list(words[i:i + n]) == list(part)]


def _letter_choice(answer: str, n_choices: int) -> int | None:
    s = unicodedata.normalize('NFKC', answer).lower().strip()
    s = _ANSWER_PREFIX.sub('', s, count=1)
    m = _LETTER.match(s)
    if not m:
        return None
    letter = next(g for g in m.groups() if g)
    index = ord(letter) - ord('a')
    return index if index < n_choices else None


def pick_choice(answer: str, choices: Sequence[str]) -> int | None:
    """
    Return the index of the option answer picks, or None (no option, or several).

    An option letter at the start wins ("b", "(b)", "b)", "B.", "option b"; letters past the
    last option do not count). Otherwise the answer must contain exactly one option's text
    (normalised, whole words); an option found only inside a longer option's occurrence ("red"
    in "dark red") does not count as named.
    """
    if not choices:
        return None
    letter = _letter_choice(answer, len(choices))
    if letter is not None:
        return letter
    words = normalise(answer).split()
    spans: list[tuple[int, int, int]] = []  # (start, end, option)
    for index, option in enumerate(choices):
        part = normalise(option).split()
        spans.extend((i, i + len(part), index) for i in _find(words, part))
    named = set()
    for start, end, index in spans:
        inside_longer = any(s <= start and end <= e and (e - s) > (end - start)
                            for s, e, _ in spans)
        if not inside_longer:
            named.add(index)
    return named.pop() if len(named) == 1 else None


def _correct_choice(truth: Truth) -> int | None:
    target = normalise(truth.answer)
    for index, option in enumerate(truth.choices):
        if normalise(option) == target:
            return index
    return None


def is_correct(answer: str, truth: Truth) -> bool:
    """Return whether answer is right for truth (open or multiple choice; module docstring)."""
    if truth.choices:
        correct = _correct_choice(truth)
        if correct is not None:
            picked = pick_choice(answer, truth.choices)
            if picked is not None:
                return picked == correct
            # No option picked: an accepted synonym of the true option, named in the answer as
            # an option's text would be ("center", "It is in the center."), still counts.
            got = f' {normalise(answer)} '
            return any(f' {normalise(a)} ' in got for a in truth.accepted if normalise(a))
        # The truth names no option (a dataset slip): judge it as an open question.
    return _matches(answer, (truth.answer, *truth.accepted))


def _matches(answer: str, forms: Sequence[str]) -> bool:
    """Normalised exact match, or the answer's leading words are exactly one form's words."""
    got = normalise(answer)
    got_words = got.split()
    for form in forms:
        want = normalise(form)
        if got == want:
            return True
        want_words = want.split()
        if want_words and got_words[:len(want_words)] == want_words:
            return True
    return False


class _Judge:
    """is_correct with a per-run memo: runs repeat the same few answers and truths."""

    def __init__(self) -> None:
        self._memo: dict[tuple, bool] = {}

    def __call__(self, answer: AnswerRecord, truth: Truth) -> bool:
        if answer.question.strip() != truth.question.strip():
            return False  # an answer to another question is no answer to this one
        key = (answer.answer, truth.answer, truth.accepted, truth.choices)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = is_correct(answer.answer, truth)
        return hit


@dataclass(frozen=True)
class TimelineStep:
    """One step of a run as the robot saw it at the deadline."""

    step_id: int
    stamp_ns: int
    episode: str | None        # None: no truth at this stamp
    question: str | None       # the asked question (from the truth)
    truth: str | None          # the true answer
    answer: str | None         # the robot's current answer at stamp + deadline (None: none yet)
    answer_step_id: int | None  # the step that answer was published for
    source: str | None         # 'edge' / 'cloud' of that answer
    published_ns: int | None   # when that answer was published
    correct: bool | None       # None: no truth to judge against
    own_published_ns: int | None  # when this step's own first answer was published (None: never)
    missed_deadline: bool


def _deadline_ns(deadline_s: float) -> int:
    if not (isinstance(deadline_s, (int, float)) and math.isfinite(deadline_s)
            and deadline_s > 0):
        raise ValueError(f'deadline_s must be a finite number > 0, got {deadline_s!r}')
    return round(deadline_s * 1e9)


def step_stamps(run: RunRecord) -> dict[int, int]:
    """Return {step_id: camera stamp ns} for every step of the run (clouds first, then answers)."""
    stamps: dict[int, int] = {}
    for c in run.clouds:
        stamps.setdefault(c.step_id, c.stamp_ns)
    for a in run.answers:
        stamps.setdefault(a.step_id, a.stamp_ns)
    return stamps


def _truths_by_stamp(truths: Iterable[Truth]) -> dict[int, Truth]:
    out: dict[int, Truth] = {}
    for t in truths:
        out.setdefault(t.stamp_ns, t)  # one per frame; a duplicate cannot change the first
    return out


def _timeline(run: RunRecord, deadline_s: float, judge: _Judge, published: list[int],
              stamps: dict[int, int], truths: dict[int, Truth]) -> list[TimelineStep]:
    deadline_ns = _deadline_ns(deadline_s)
    # Per question, the answers in publish order (ties: arrival order), for bisecting.
    by_question: dict[str, tuple[list[int], list[AnswerRecord]]] = {}
    answers_all = run.answers
    order = sorted(range(len(answers_all)),
                   key=lambda i: (published[i], answers_all[i].received_ns, i))
    for i in order:
        a = answers_all[i]
        times, answers = by_question.setdefault(a.question.strip(), ([], []))
        times.append(published[i])
        answers.append(a)
    own: dict[int, int] = {}
    for a, t in zip(answers_all, published):
        if t < own.get(a.step_id, t + 1):
            own[a.step_id] = t
    rows = []
    for step_id, stamp in sorted(stamps.items(), key=lambda kv: (kv[1], kv[0])):
        truth = truths.get(stamp)
        at = stamp + deadline_ns
        current = None
        if truth is not None:
            times, answers = by_question.get(truth.question.strip(), ((), ()))
            i = bisect.bisect_right(times, at)
            current = answers[i - 1] if i else None
        own_ns = own.get(step_id)
        rows.append(TimelineStep(
            step_id=step_id, stamp_ns=stamp,
            episode=truth.episode if truth else None,
            question=truth.question if truth else None,
            truth=truth.answer if truth else None,
            answer=current.answer if current else None,
            answer_step_id=current.step_id if current else None,
            source=current.source if current else None,
            published_ns=current.published_ns if current else None,
            correct=None if truth is None else (current is not None and judge(current, truth)),
            own_published_ns=own_ns,
            missed_deadline=own_ns is None or own_ns - stamp > deadline_ns))
    return rows


def timeline(run: RunRecord, deadline_s: float) -> list[TimelineStep]:
    """Return every step of the run in stamp order with the robot's answer at its deadline."""
    return _timeline(run, deadline_s, _Judge(), [a.published_ns for a in run.answers],
                     step_stamps(run), _truths_by_stamp(run.truths))


@dataclass
class RunScore:
    """The scores of one run; NaN where a metric is undefined (no answers, no steps)."""

    strategy: str
    network_profile: str
    deadline_s: float
    steps: int = 0
    steps_scored: int = 0
    steps_without_truth: int = 0
    answers: int = 0
    answers_scored: int = 0
    accuracy: float = math.nan
    accuracy_at_deadline: float = math.nan
    latency_p50_ms: float = math.nan
    latency_p95_ms: float = math.nan
    latency_p99_ms: float = math.nan
    deadline_misses: int = 0
    deadline_miss_rate: float = math.nan
    staleness_p50_ms: float = math.nan
    staleness_p95_ms: float = math.nan
    cloud_requests: int = 0
    cloud_ok: int = 0
    cloud_rtt_p50_ms: float = math.nan  # median round trip of the ok clouds
    cloud_bytes_up: int = 0
    cloud_bytes_down: int = 0
    edge_answers: int = 0
    cloud_answers: int = 0
    answers_with_replacement: int = 0  # answers whose context held replaced (cloud) turns
    answers_with_focus: int = 0
    per_episode: dict[str, float] = field(default_factory=dict)  # episode: accuracy_at_deadline
    notes: list[str] = field(default_factory=list)  # problems met while scoring (bad counters)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-able dict; NaN becomes None (JSON has no NaN)."""
        def clean(v: object) -> object:
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v
        return {k: clean(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RunScore:
        """Inverse of to_dict (None back to NaN for float fields; unknown keys ignored)."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, object] = {}
        for name, value in data.items():
            if name not in known:
                continue
            if value is None:
                value = math.nan
            elif name == 'per_episode':
                value = {k: math.nan if v is None else float(v) for k, v in value.items()}
            elif name == 'notes':
                value = list(value)
            kwargs[name] = value
        return cls(**kwargs)


def _counter(run: RunRecord, node: str, key: str, notes: list[str]) -> int:
    values = run.counters.get(node)
    if values is None:  # tolerate full node names ('/x/cloud_bridge')
        values = next((v for k, v in run.counters.items() if k.endswith(node)), {})
    text = values.get(key)
    if text is None:
        return 0
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        notes.append(f'counter {node}.{key} is not a byte count: {text!r}; taken as 0')
        return 0
    return int(value)


def score_run(run: RunRecord, deadline_s: float) -> RunScore:
    """Score one run against its truths with the given deadline (seconds after each stamp)."""
    judge = _Judge()
    published = [a.published_ns for a in run.answers]
    stamps = step_stamps(run)
    truths = _truths_by_stamp(run.truths)
    rows = _timeline(run, deadline_s, judge, published, stamps, truths)
    score = RunScore(strategy=run.strategy, network_profile=run.network_profile,
                     deadline_s=float(deadline_s))
    score.steps = len(rows)
    scored = [r for r in rows if r.correct is not None]
    score.steps_scored = len(scored)
    score.steps_without_truth = score.steps - score.steps_scored
    if scored:
        score.accuracy_at_deadline = sum(r.correct for r in scored) / len(scored)
    episodes: dict[str, list[bool]] = {}
    for r in scored:
        episodes.setdefault(r.episode, []).append(r.correct)
    score.per_episode = {ep: sum(v) / len(v) for ep, v in sorted(episodes.items())}
    score.deadline_misses = sum(r.missed_deadline for r in rows)
    if rows:
        score.deadline_miss_rate = score.deadline_misses / len(rows)

    answers = run.answers
    score.answers = len(answers)
    judged = [judge(a, truths[a.stamp_ns]) for a in answers if a.stamp_ns in truths]
    score.answers_scored = len(judged)
    if judged:
        score.accuracy = sum(judged) / len(judged)
    latencies = [a.latency_ms for a in answers]
    score.latency_p50_ms = percentile(latencies, 50)
    score.latency_p95_ms = percentile(latencies, 95)
    score.latency_p99_ms = percentile(latencies, 99)
    staleness = []
    for a, t in zip(answers, published):
        about = a.newest_cloud_step if a.source == 'cloud' and a.newest_cloud_step >= 0 else None
        stamp = a.stamp_ns if about is None else stamps.get(about)
        if stamp is not None:
            staleness.append((t - stamp) / 1e6)
    score.staleness_p50_ms = percentile(staleness, 50)
    score.staleness_p95_ms = percentile(staleness, 95)
    score.edge_answers = sum(a.source == 'edge' for a in answers)
    score.cloud_answers = sum(a.source == 'cloud' for a in answers)
    score.answers_with_replacement = sum(a.replaced_turns > 0 for a in answers)
    score.answers_with_focus = sum(bool(a.focus_applied) for a in answers)

    score.cloud_requests = sum(c.status != 'dropped' for c in run.clouds)
    ok = [c for c in run.clouds if c.status == 'ok']
    score.cloud_ok = len(ok)
    score.cloud_rtt_p50_ms = percentile((c.round_trip_ms for c in ok), 50)
    score.cloud_bytes_up = _counter(run, BRIDGE_COUNTERS, 'bytes_sent', score.notes)
    score.cloud_bytes_down = _counter(run, BRIDGE_COUNTERS, 'bytes_received', score.notes)
    return score
