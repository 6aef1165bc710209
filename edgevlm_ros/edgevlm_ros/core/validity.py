# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
How long a cloud answer holds in this scene, learned while running and without ground truth.

A question's kind comes from its text (`question_kind`): 'attribute' (colour, shape), 'where',
'count', 'exists', or 'other' (free-form questions no rule matches, judged by the estimates
pooled over every kind).

Every step answered by the edge has up to three candidate answers (`CANDIDATES`): the edge
SVLM's own, the newest cloud answer as it stands (with its age), and that cloud answer carried
forward by its tracked objects (core.carry). No ground truth says which is right, but the cloud
later answers some of these very steps itself (the bridge sends about one step per round
trip). `SceneValidity` keeps every step's candidates (`propose`) and, when the step's own cloud
answer arrives (`add_cloud`), counts which candidates agree with it: a referee that is right
with probability ``r_cloud``, independently of the candidates' errors (its errors are drawn anew
per request), so

* the edge agrees with it ``r_cloud * r_edge`` of the time (plus chance agreement);
* a standing cloud answer of age a agrees ``r_cloud * r_cloud * S(a)`` of the time, ``S(a)``
  the chance that the answer has not changed in a seconds in this scene;
* a carried one ``r_cloud * r_carried``, how often tracking kept it right.

The factor ``r_cloud`` is the same for every candidate, so the candidate that agrees most often
with fresh cloud answers is the one likeliest right: a noisy cloud lowers the standing and
carried candidates (their own ``r_cloud``) and not the edge, a fast scene lowers ``S(a)``, and
neither is mistaken for the other. Shares are kept per kind of question and per age bin
(`AGE_BINS_S`), exponentially weighted (`ValidityParams.forget`), and shrunk towards the pooled
share of every kind, itself shrunk towards a prior (`PRIOR_AGREE`, `PRIOR_WEIGHT` steps), so a
kind with few refereed steps borrows from the others and a fresh start begins from the prior.

Bounded: the candidates of the newest `MAX_PROPOSALS` steps wait for their referee; the shares
are a few numbers per kind, candidate and age bin. ROS-free, torch-free.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
import math
import re

from edgevlm_ros.core.arbitration import same_answer

KINDS = ('attribute', 'where', 'count', 'exists', 'other')
CANDIDATES = ('edge', 'standing', 'carried')
# First match wins: "how many ... where" is a count. Written for free-form English questions.
_KIND_RULES = (
    ('count', re.compile(r'\bhow many\b|\bnumber of\b|\bcount the\b', re.I)),
    ('where', re.compile(r'^\s*where\b|\bwhich side\b|\bin which (part|half|third)\b|'
                         r'\bwhere (is|are)\b', re.I)),
    ('attribute', re.compile(r'\b(what|which) (colou?r|shape|material)\b|\bcolou?r of\b|'
                             r'\bshape of\b|\bwhat is the colou?r\b', re.I)),
    ('exists', re.compile(r'^\s*(is|are) there\b|^\s*(do|can) you see\b|'
                          r'^\s*(does|do) (it|the (scene|image|frame|picture)) (show|contain)',
                          re.I)),
)
# Upper edges of the age bins of standing and carried answers, s.
AGE_BINS_S = (0.75, 1.5, 3.0, 6.0, math.inf)
# Candidates of this many recent steps wait for the step's own cloud answer (64: 32 s at 2 Hz,
# longer than the bridge's max_age_s lets a request wait).
MAX_PROPOSALS = 64
# Prior agreement with a fresh cloud answer (right ~90 %): the edge right ~67 %, a standing
# answer right 85 % and then changing about every 4 s, a carried one right 75 %. Each is worth
# PRIOR_WEIGHT refereed steps, so a few real ones outweigh it.
PRIOR_AGREE = {'edge': 0.6, 'carried': 0.68}
PRIOR_STANDING_AT_0 = 0.77
PRIOR_RATE = 0.25
PRIOR_WEIGHT = 2.0


def question_kind(question: str) -> str:
    """'attribute', 'where', 'count', 'exists' or 'other', from the question's words."""
    for kind, pattern in _KIND_RULES:
        if pattern.search(question):
            return kind
    return 'other'


def age_bin(age_s: float) -> int:
    """The index of the AGE_BINS_S bin an age falls into."""
    return next(n for n, edge in enumerate(AGE_BINS_S) if max(0.0, age_s) < edge)


def _bin_middle(b: int) -> float:
    lo = 0.0 if b == 0 else AGE_BINS_S[b - 1]
    hi = AGE_BINS_S[b]
    return lo + 0.5 * (hi - lo) if math.isfinite(hi) else 1.5 * lo


def prior(candidate: str, age_s: float = 0.0) -> float:
    """The prior agreement of a candidate with a fresh cloud answer (module docstring)."""
    if candidate == 'standing':
        return PRIOR_STANDING_AT_0 * math.exp(-PRIOR_RATE * _bin_middle(age_bin(age_s)))
    return PRIOR_AGREE[candidate]


@dataclass(frozen=True)
class ValidityParams:
    """How fast the shares forget, and how much a kind borrows from the pooled share."""

    forget: float = 0.01           # weight an old refereed step loses per new one of its share
    pool_weight: float = 4.0       # a kind's share is shrunk towards the pooled one by this many

    def __post_init__(self) -> None:
        if not 0 <= self.forget < 1:
            raise ValueError(f'forget must be in [0, 1), got {self.forget!r}')
        if not (math.isfinite(self.pool_weight) and self.pool_weight >= 0):
            raise ValueError(f'pool_weight must be a finite number >= 0, got '
                             f'{self.pool_weight!r}')


@dataclass(frozen=True)
class Candidate:
    """One answer a step could be given: who proposes it, and how old the cloud answer is."""

    name: str          # one of CANDIDATES
    answer: str
    age_s: float = 0.0


class _Share:
    """An exponentially weighted share of agreements."""

    __slots__ = ('hits', 'weight')

    def __init__(self) -> None:
        self.weight = 0.0
        self.hits = 0.0

    def add(self, hit: bool, forget: float) -> None:
        self.weight = self.weight * (1.0 - forget) + 1.0
        self.hits = self.hits * (1.0 - forget) + float(hit)

    def shrunk(self, towards: float, weight: float) -> float:
        return (self.hits + weight * towards) / (self.weight + weight)


def _bounded_put(d: OrderedDict, key: int, value: object) -> None:
    d[key] = value
    d.move_to_end(key)
    while len(d) > MAX_PROPOSALS:
        d.popitem(last=False)


class SceneValidity:
    """Referees each step's candidate answers against the step's own late cloud answer."""

    def __init__(self, params: ValidityParams = ValidityParams()) -> None:
        self.params = params
        self._proposals: OrderedDict[int, tuple[str, tuple[Candidate, ...]]] = OrderedDict()
        self._shares: dict[tuple[str, str, int], _Share] = {}   # (kind, candidate, age bin)
        # Cloud answers that came before their step's candidates (a cloud faster than the edge).
        self._early: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self.refereed = 0

    def reset(self) -> None:
        """Forget everything (the camera restarted: another scene)."""
        self.__init__(self.params)

    def propose(self, step_id: int, question: str, candidates: tuple[Candidate, ...]) -> None:
        """The candidates of a step, to be refereed when its own cloud answer arrives."""
        early = self._early.pop(int(step_id), None)
        _bounded_put(self._proposals, int(step_id), (question, tuple(candidates)))
        if early is not None:
            self.add_cloud(int(step_id), *early)

    def add_cloud(self, step_id: int, question: str, answer: str) -> bool:
        """The ok cloud answer of a step: referee its candidates; True when there were any."""
        got = self._proposals.pop(int(step_id), None)
        if got is None:
            _bounded_put(self._early, int(step_id), (question, answer))
            return False
        if got[0].strip() != question.strip() or not answer.strip():
            return False
        kind = question_kind(question)
        for c in got[1]:
            hit = same_answer(c.answer, answer, question)
            b = age_bin(c.age_s) if c.name != 'edge' else 0
            for k in (kind, 'all'):
                self._shares.setdefault((k, c.name, b), _Share()).add(hit, self.params.forget)
        self.refereed += 1
        return True

    def agreement(self, question: str, name: str, age_s: float = 0.0) -> float:
        """How often this candidate agrees with fresh cloud answers here (its score)."""
        b = age_bin(age_s) if name != 'edge' else 0
        pooled = self._shares.get(('all', name, b))
        p = prior(name, age_s)
        if pooled is not None:
            p = pooled.shrunk(p, PRIOR_WEIGHT)
        kind = question_kind(question)
        own = self._shares.get((kind, name, b)) if kind != 'other' else None
        return p if own is None else own.shrunk(p, self.params.pool_weight)

    def weight(self, question: str, name: str, age_s: float = 0.0) -> float:
        """Refereed steps (exponentially weighted) behind agreement() for the question's kind."""
        b = age_bin(age_s) if name != 'edge' else 0
        own = self._shares.get((question_kind(question), name, b))
        return 0.0 if own is None else own.weight

    def horizon_s(self, question: str) -> float:
        """The top of the oldest age bin in which a standing answer beats the edge (0: none)."""
        edge = self.agreement(question, 'edge')
        horizon = 0.0
        for b, top in enumerate(AGE_BINS_S):
            if self.agreement(question, 'standing', _bin_middle(b)) <= edge:
                break
            horizon = top
        return horizon
