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
answer arrives (`add_cloud`), lets it referee every pair of candidates that disagree: a duel
counts for the one the fresh answer sides with (for neither when it sides with none).

Only disagreements count: where two candidates say the same, choosing between them changes
nothing, and counting those steps would drown the difference (the edge, which repeats cloud
answers from its history, agrees with a fresh one most of the time for that reason alone). A
referee that is right with probability ``r_cloud``, independently of the candidates (its errors
are drawn anew per request), sides with the right one of two disagreeing candidates more often
than with the wrong one whenever ``r_cloud > 0.5``, so the candidate that wins more duels is the
one likelier right when it matters: a noisy cloud makes its standing and carried answers lose
more duels (they are its own answers), a fast scene makes old standing answers lose, and the
two are not mistaken for each other. (A real LVLM that repeats its own mistake on nearly the same
frame breaks the independence and flatters its standing answers; the simulated one does not.)

Duels are kept per kind of question, pair of candidates and age bin of the cloud answer
(`AGE_BINS_S`), exponentially weighted (`ValidityParams.forget`), and shrunk towards the duels
of every kind pooled, themselves shrunk towards a prior (`PRIOR_WIN`, `PRIOR_WEIGHT` duels), so a
kind with few duels borrows from the others and a fresh start begins from the prior.

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
# Prior chance that the challenger is right when it disagrees with the incumbent, per age bin:
# a young cloud answer beats the edge, an old one does not; a carried answer beats both while
# young and is a coin toss later. Each is worth PRIOR_WEIGHT duels, so a few real ones win.
PRIOR_WIN = {
    ('standing', 'edge'): (0.75, 0.6, 0.45, 0.35, 0.3),
    ('carried', 'edge'): (0.7, 0.65, 0.6, 0.55, 0.5),
    ('carried', 'standing'): (0.55, 0.6, 0.6, 0.6, 0.6),
}
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


@dataclass(frozen=True)
class ValidityParams:
    """How fast duels are forgotten, and how much a kind borrows from the pooled duels."""

    forget: float = 0.01           # weight an old duel loses per new one of its pair
    pool_weight: float = 4.0       # a kind's duels are shrunk towards the pooled ones by this many

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


class _Duels:
    """Exponentially weighted wins of a challenger over an incumbent when they disagreed."""

    __slots__ = ('weight', 'wins')

    def __init__(self) -> None:
        self.weight = 0.0
        self.wins = 0.0

    def add(self, win: float, forget: float) -> None:
        self.weight = self.weight * (1.0 - forget) + 1.0
        self.wins = self.wins * (1.0 - forget) + win

    def shrunk(self, towards: float, weight: float) -> float:
        return (self.wins + weight * towards) / (self.weight + weight)


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
        # (kind, challenger, incumbent, age bin) -> duels; kind 'all' pools every kind.
        self._duels: dict[tuple[str, str, str, int], _Duels] = {}
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
        by_name = {c.name: c for c in got[1]}
        for challenger, incumbent in PRIOR_WIN:
            a, b = by_name.get(challenger), by_name.get(incumbent)
            if a is None or b is None or same_answer(a.answer, b.answer, question):
                continue
            a_hit = same_answer(a.answer, answer, question)
            b_hit = same_answer(b.answer, answer, question)
            if a_hit == b_hit:
                continue   # the referee sides with neither: no information on this pair
            key = (challenger, incumbent, age_bin(a.age_s))
            for k in (kind, 'all'):
                self._duels.setdefault((k, *key), _Duels()).add(float(a_hit),
                                                               self.params.forget)
        self.refereed += 1
        return True

    def win_chance(self, question: str, challenger: str, incumbent: str,
                   age_s: float) -> float:
        """Chance that `challenger` is the right one where it disagrees with `incumbent`."""
        return self._win(question_kind(question), challenger, incumbent, age_bin(age_s))

    def _win(self, kind: str, challenger: str, incumbent: str, b: int) -> float:
        p = PRIOR_WIN[(challenger, incumbent)][b]
        pooled = self._duels.get(('all', challenger, incumbent, b))
        if pooled is not None:
            p = pooled.shrunk(p, PRIOR_WEIGHT)
        own = self._duels.get((kind, challenger, incumbent, b)) if kind != 'other' else None
        return p if own is None else own.shrunk(p, self.params.pool_weight)

    def duels(self, question: str, challenger: str, incumbent: str, age_s: float) -> float:
        """Duels (exponentially weighted) of this kind behind win_chance()."""
        own = self._duels.get((question_kind(question), challenger, incumbent, age_bin(age_s)))
        return 0.0 if own is None else own.weight

    def choose(self, question: str, candidates: tuple[Candidate, ...], holder: str = 'edge'
               ) -> tuple[Candidate, list[str]]:
        """
        The candidate to answer with, and the duels that decided it (for the reason).

        `holder` (the edge, or a fresh standing answer) holds unless a challenger is likelier
        right where they disagree: first the standing answer, then the carried one against
        whichever holds.
        """
        by_name = {c.name: c for c in candidates}
        best = by_name[holder]
        said = [] if holder == 'edge' else [f'{holder} is fresh']
        for name in ('standing', 'carried'):
            c = by_name.get(name)
            if c is None or c is best or same_answer(c.answer, best.answer, question):
                continue
            p = self.win_chance(question, c.name, best.name, c.age_s)
            said.append(f'{c.name} over {best.name} {p:.0%}')
            if p > 0.5:
                best = c
        return best, said

    def summary(self) -> dict[str, str]:
        """One line per kind of question with duels: how long a standing answer holds."""
        out = {}
        for kind in KINDS[:-1]:
            n = self._duel_weight(kind)
            if n:
                carried = self._win(kind, 'carried', 'edge', age_bin(2.0))
                out[f'holds_s.{kind}'] = (f'{self._horizon(kind):g} (carried over edge '
                                          f'{carried:.0%} at 2 s; {n:.0f} duels)')
        return out

    def horizon_s(self, question: str) -> float:
        """The top of the oldest age bin in which a standing answer beats the edge (0: none)."""
        return self._horizon(question_kind(question))

    def hold(self, question: str) -> tuple[str, float, float]:
        """(kind, horizon_s, duels of that kind): what the bridge's send policy is told."""
        kind = question_kind(question)
        return kind, self._horizon(kind), self._duel_weight(kind)

    def _duel_weight(self, kind: str) -> float:
        return sum(d.weight for (k, *_), d in self._duels.items() if k == kind)

    def _horizon(self, kind: str) -> float:
        horizon = 0.0
        for b, top in enumerate(AGE_BINS_S):
            if self._win(kind, 'standing', 'edge', b) <= 0.5:
                break
            horizon = top
        return horizon
