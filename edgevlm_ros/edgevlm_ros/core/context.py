# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Context Replacement: the SVLM's multi-turn history, one slot per step id.

Rules this module enforces (DESIGN.md §1, item 1):

* Slots are keyed by step id and kept in step order. A slot holds (question, answer) and whether
  the answer is the cloud's.
* `record_edge` stores the SVLM's own answer; it never overwrites cloud text already in the slot.
* `apply_cloud` replaces a slot's answer by the LVLM answer. Out-of-order arrivals are fine. If
  the slot does not exist (the edge skipped that step or has not answered it yet) it is created
  in step order, unless the step is older than everything the store keeps: such a late answer
  is dropped and counted in `dropped_late`, and changes nothing else.
* Turn cap: at most `max_turns` slots are stored; the oldest step ids are evicted first, and an
  evicted step id never comes back (answers for it are late from then on).
* Token cap: `history()` is the newest run of slots whose question+answer tokens total at most
  `max_tokens`, so older slots are the first to go. Slots beyond the token budget stay stored
  (still at most `max_turns` of them) rather than being destroyed: a shorter cloud answer may
  make them fit again, and this keeps the result independent of the order in which cloud
  answers arrive. A single slot larger than the whole budget is truncated when stored (the
  answer is compressed first; the question keeps at most half the budget), so the newest turn
  is never lost to the cap.
* Memory is bounded: at most `max_turns` slots, each at most `max_tokens` tokens and
  `MAX_TEXT_CHARS` characters per field.

The store is thread-safe: nodes may record edge answers and apply cloud answers from
different callback threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import operator
import re
import threading

# Longest question or answer kept per slot, in characters. Guards memory against one huge
# "word" that a whitespace token counter would see as a single token.
MAX_TEXT_CHARS = 16_384

TokenCounter = Callable[[str], int]


@dataclass
class Turn:
    """One history turn as the SVLM sees it."""

    step_id: int
    question: str
    answer: str
    from_cloud: bool = False


def word_count(text: str) -> int:
    """Count whitespace-separated words: the default token counter."""
    return len(text.split())


@dataclass
class _Slot:
    question: str
    answer: str
    from_cloud: bool
    tokens: int


class ContextStore:
    """The SVLM's history with Context Replacement; see the module docstring for the rules."""

    def __init__(self, max_turns: int = 8, max_tokens: int = 512,
                 count_tokens: TokenCounter = word_count) -> None:
        for name, value in (('max_turns', max_turns), ('max_tokens', max_tokens)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f'{name} must be an int, got {value!r}')
            if value < 0:
                raise ValueError(f'{name} must be >= 0 (0 turns history off), got {value}')
        if not callable(count_tokens):
            raise ValueError('count_tokens must be callable: str -> int')
        self._max_turns = max_turns
        self._max_tokens = max_tokens
        self._count = count_tokens
        self._slots: dict[int, _Slot] = {}
        self._order: list[int] = []  # stored step ids, ascending
        # Highest step id ever evicted or refused: answers for ids <= it are late.
        self._evicted_upto = -1
        self._dropped_late = 0
        self._lock = threading.RLock()

    # --- configuration ---------------------------------------------------------------------

    @property
    def max_turns(self) -> int:
        return self._max_turns

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    # --- updates ---------------------------------------------------------------------------

    def record_edge(self, step_id: int, question: str, answer: str) -> None:
        """Store the SVLM's own answer for step_id; cloud text already in the slot stays."""
        sid = _check_step(step_id)
        if self._max_turns == 0:
            return
        with self._lock:
            slot = self._slots.get(sid)
            if slot is not None:
                if not slot.from_cloud:
                    self._slots[sid] = self._make_slot(question, answer, from_cloud=False)
                return
            if not self._has_room_for(sid):
                return
            self._insert(sid, self._make_slot(question, answer, from_cloud=False))

    def apply_cloud(self, step_id: int, question: str, text: str) -> bool:
        """
        Replace slot step_id's answer by the cloud's text; return True if the store holds it.

        Returns False (and changes nothing) for empty text, when history is off, and for a late
        answer whose slot was evicted or would be evicted at once; only the last case counts in
        `dropped_late`.
        """
        sid = _check_step(step_id)
        if self._max_turns == 0 or not text or not text.strip():
            return False
        with self._lock:
            slot = self._slots.get(sid)
            if slot is not None:
                q = slot.question if not question or not question.strip() else question
                self._slots[sid] = self._make_slot(q, text, from_cloud=True)
                return True
            if not self._has_room_for(sid):
                self._dropped_late += 1
                return False
            self._insert(sid, self._make_slot(question, text, from_cloud=True))
            return True

    def clear(self) -> None:
        """
        Forget every slot (e.g. when the question changes).

        Cloud answers still in flight for steps recorded before the clear are late from then on.
        Counters are not reset.
        """
        with self._lock:
            if self._order:
                self._evicted_upto = max(self._evicted_upto, self._order[-1])
            self._slots.clear()
            self._order.clear()

    # --- views -----------------------------------------------------------------------------

    def history(self) -> list[Turn]:
        """Return the turns the SVLM sees, oldest first (both caps hold)."""
        with self._lock:
            return [Turn(sid, s.question, s.answer, s.from_cloud)
                    for sid, s in self._visible()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._visible())

    @property
    def replaced_turns(self) -> int:
        """Turns in history() that hold cloud text."""
        with self._lock:
            return sum(1 for _, s in self._visible() if s.from_cloud)

    @property
    def newest_cloud_step(self) -> int:
        """Newest step id in history() holding cloud text, -1 if none."""
        with self._lock:
            ids = [sid for sid, s in self._visible() if s.from_cloud]
            return ids[-1] if ids else -1

    @property
    def dropped_late(self) -> int:
        """Cloud answers dropped because their slot was already evicted."""
        return self._dropped_late

    @property
    def stored_turns(self) -> int:
        """Slots stored, including those beyond the token budget (<= max_turns)."""
        with self._lock:
            return len(self._order)

    @property
    def total_tokens(self) -> int:
        """Tokens of question+answer over history()."""
        with self._lock:
            return sum(s.tokens for _, s in self._visible())

    # --- internals -------------------------------------------------------------------------

    def _visible(self) -> list[tuple[int, _Slot]]:
        out: list[tuple[int, _Slot]] = []
        budget = self._max_tokens
        for sid in reversed(self._order):
            slot = self._slots[sid]
            # A slot cut to nothing (a zero budget) is not a turn: never hand out empty turns.
            if slot.tokens > budget or slot.tokens == 0:
                break
            budget -= slot.tokens
            out.append((sid, slot))
        out.reverse()
        return out

    def _has_room_for(self, sid: int) -> bool:
        """Tell whether a new slot sid would survive the turn cap; remember refusals."""
        if sid <= self._evicted_upto:
            return False
        if len(self._order) >= self._max_turns and sid < self._order[0]:
            self._evicted_upto = max(self._evicted_upto, sid)
            return False
        return True

    def _insert(self, sid: int, slot: _Slot) -> None:
        # Step ids mostly arrive in order: append is the common case.
        if not self._order or sid > self._order[-1]:
            self._order.append(sid)
        else:
            lo = 0
            hi = len(self._order)
            while lo < hi:
                mid = (lo + hi) // 2
                if self._order[mid] < sid:
                    lo = mid + 1
                else:
                    hi = mid
            self._order.insert(lo, sid)
        self._slots[sid] = slot
        while len(self._order) > self._max_turns:
            old = self._order.pop(0)
            del self._slots[old]
            self._evicted_upto = max(self._evicted_upto, old)

    def _make_slot(self, question: str, answer: str, from_cloud: bool) -> _Slot:
        q = _clean_text(question)
        a = _clean_text(answer)
        budget = self._max_tokens
        qt, at = self._count(q), self._count(a)
        if qt + at > budget:
            # The answer is what the history is for; the question keeps at most half.
            q_budget = max(budget - at, budget // 2)
            if qt > q_budget:
                q = truncate_to_tokens(q, q_budget, self._count)
                qt = self._count(q)
            a_budget = max(0, budget - qt)
            if at > a_budget:
                a = compress_answer(a, a_budget, self._count)
                at = self._count(a)
        return _Slot(q, a, from_cloud, qt + at)


def _check_step(step_id: int) -> int:
    try:
        sid = operator.index(step_id)
    except TypeError:
        raise ValueError(f'step_id must be an int, got {step_id!r}') from None
    if sid < 0:
        raise ValueError(f'step_id must be >= 0, got {sid}')
    return sid


def _clean_text(text: str) -> str:
    if not isinstance(text, str):
        text = '' if text is None else str(text)
    return text[:MAX_TEXT_CHARS].strip()


# --- answer compression ----------------------------------------------------------------------

# Openers that carry no information ("Sure! ", "Based on the image, ").
_LEAD_FILLER_RE = re.compile(
    r'^(?:(?:sure|certainly|of course|absolutely|okay|ok|yes, of course)[,.!:]?\s+'
    r'|(?:based on|looking at|from|in) (?:the|this) (?:provided )?(?:image|picture|photo|frame)'
    r'(?: provided)?,\s*)+',
    re.IGNORECASE)
# Whole sentences that are politeness or self-reference, not answer.
_FILLER_SENTENCE_RE = re.compile(
    r'^(?:i hope (?:this|that) helps|let me know\b|feel free\b|if you have any\b'
    r'|please let me know\b|is there anything else\b|hope this helps'
    r'|as an ai\b|here is (?:the|my) (?:answer|description)\b|great question\b'
    r'|(?:sure|certainly|of course|absolutely|okay|ok)[.!]?$)',
    re.IGNORECASE)
_SENTENCE_SPLIT_RE = re.compile(r'(?<=[.!?])\s+(?=[A-Z0-9"\'(])')
_BULLET_RE = re.compile(r'^\s*(?:[-*\u2022]|\d+[.)])\s+')
_MARKUP_RE = re.compile(r'\*\*|__|^#+\s*', re.MULTILINE)


def truncate_to_tokens(text: str, max_tokens: int, count_tokens: TokenCounter = word_count
                       ) -> str:
    """
    Return the longest word prefix of text within max_tokens tokens.

    Falls back to a character prefix when the first word alone is too long; '' when nothing
    fits.
    """
    if max_tokens <= 0 or not text:
        return ''
    if count_tokens(text) <= max_tokens:
        return text
    words = text.split()

    def fits(s: str) -> bool:
        return count_tokens(s) <= max_tokens

    lo, hi = 0, len(words)  # invariant: prefix of lo words fits (0 words: '' by definition)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(' '.join(words[:mid])):
            lo = mid
        else:
            hi = mid - 1
    if lo > 0:
        return ' '.join(words[:lo])
    first = words[0] if words else ''
    lo, hi = 0, len(first)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(first[:mid]):
            lo = mid
        else:
            hi = mid - 1
    out = first[:lo]
    return out if out and fits(out) else ''


def compress_answer(text: str, max_tokens: int, count_tokens: TokenCounter = word_count) -> str:
    """
    Compress an LVLM answer to at most max_tokens tokens.

    Drops markup and filler (openers like "Sure!", "Based on the image,", closing politeness),
    then keeps whole leading sentences while they fit; if the first sentence alone is too long
    it is cut at a word boundary. Never returns more than max_tokens; empty in, empty out.
    """
    if max_tokens <= 0 or not text or not text.strip():
        return ''
    lines = []
    for line in _MARKUP_RE.sub('', text[:MAX_TEXT_CHARS]).splitlines():
        line = _BULLET_RE.sub('', line).strip()
        if line:
            # A list item or heading without a full stop still ends a thought.
            lines.append(line if line[-1] in '.!?:;,' else line + '.')
    flat = ' '.join(' '.join(lines).split())
    if not flat:
        return ''

    sentences = [s for s in _SENTENCE_SPLIT_RE.split(flat) if s]
    kept: list[str] = []
    for sentence in sentences:
        if _FILLER_SENTENCE_RE.match(sentence):
            continue
        if not kept:
            stripped = _LEAD_FILLER_RE.sub('', sentence).strip()
            if not stripped:
                continue
            if stripped != sentence:
                sentence = stripped[0].upper() + stripped[1:]
        kept.append(sentence)
    if not kept:  # the whole reply was filler: keep it rather than say nothing
        kept = sentences

    out = ''
    for sentence in kept:
        candidate = f'{out} {sentence}' if out else sentence
        if count_tokens(candidate) > max_tokens:
            break
        out = candidate
    if out:
        return out
    return truncate_to_tokens(kept[0], max_tokens, count_tokens)
