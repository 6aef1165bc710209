# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Context Replacement: the SVLM's multi-turn history, one slot per step id.

Why one module of 535 lines: it is the history store and the answer compression the store
applies to a slot over the budget. ``compress_answer`` is also what context_fusion and the
replay engine use, so an LVLM answer is shortened by one rule wherever it is shortened.

Rules this module enforces (DESIGN.md §1, item 1):

* Slots are keyed by step id and kept in step order. A slot holds (question, answer) and whether
  the answer is the cloud's.
* `record_edge` stores the SVLM's own answer; it never overwrites cloud text already in the slot.
* `apply_cloud` replaces a slot's answer by the LVLM answer. Out-of-order arrivals are fine. If
  the slot does not exist (the edge skipped that step or has not answered it yet) it is created
  in step order, unless the step is older than everything the store keeps: such a late answer
  is dropped and counted in `dropped_late`, and changes nothing else.
* Turn cap: at most `max_turns` slots are stored; the oldest step ids are evicted first, in
  blocks of `evict_block` slots (below), and an evicted step id never comes back (answers for
  it are late from then on).
* Token cap: `history()` is the newest run of slots whose question+answer tokens total at most
  `max_tokens`, so older slots are the first to go; the run starts at a block boundary (below).
  Slots beyond the token budget stay stored (still at most `max_turns` of them) rather than
  being destroyed: a shorter cloud answer may make them fit again. A single slot larger than
  the whole budget is truncated when stored (the answer is compressed first; the question keeps
  at most half the budget), so the newest turn is never lost to the cap (`compression` picks
  how, see COMPRESSION_MODES).
* Block eviction (`evict_block` = b): a history that loses its oldest turn at every step
  changes the first tokens of every prompt, so a backend's KV cache of the prompt prefix never
  hits. When a new slot exceeds the turn cap, the oldest b slots go at once (the store then
  refills over b - 1 steps with its first turn unchanged); the token-cap view starts at the
  stored slot 0, b, 2b, ... (the first of those whose run fits; only when the newest block
  alone does not fit does it fall back to the newest run that fits). Between two evictions the
  edge's new turns only append to `history()`. A new slot that would fall into the block
  evicted at once is refused like a late answer. b = 1 is the window that slides by one turn.
* Order: with b = 1 the result does not depend on the order in which cloud answers arrive. With
  b > 1 it does not either as long as no answer is refused as late; a late answer's arrival
  time decides whether it was stored when its block left, and so which block left when.
* Memory is bounded: at most `max_turns` slots, each at most `max_tokens` tokens and
  `MAX_TEXT_CHARS` characters per field.

The store is thread-safe: nodes may record edge answers and apply cloud answers from
different callback threads.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
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
                 count_tokens: TokenCounter = word_count, compression: str = 'smart',
                 evict_block: int = 1) -> None:
        for name, value in (('max_turns', max_turns), ('max_tokens', max_tokens),
                            ('evict_block', evict_block)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f'{name} must be an int, got {value!r}')
            if value < 0:
                raise ValueError(f'{name} must be >= 0 (0 turns history off), got {value}')
        if evict_block < 1:
            raise ValueError(f'evict_block must be >= 1 (1 = slide by one turn), got '
                             f'{evict_block}')
        if not callable(count_tokens):
            raise ValueError('count_tokens must be callable: str -> int')
        if compression not in COMPRESSION_MODES:
            raise ValueError(f'compression must be one of {COMPRESSION_MODES}, got '
                             f'{compression!r}')
        self._compression = compression
        self._max_turns = max_turns
        self._max_tokens = max_tokens
        self._evict_block = evict_block
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

    @property
    def evict_block(self) -> int:
        return self._evict_block

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
    def stored_ids(self) -> tuple[int, ...]:
        """Step ids of the stored slots, oldest first (including those beyond the budget)."""
        with self._lock:
            return tuple(self._order)

    @property
    def total_tokens(self) -> int:
        """Tokens of question+answer over history()."""
        with self._lock:
            return sum(s.tokens for _, s in self._visible())

    # --- internals -------------------------------------------------------------------------

    def _visible(self) -> list[tuple[int, _Slot]]:
        order = self._order
        tokens = [self._slots[sid].tokens for sid in order]
        # suffix[i] = tokens of slots i.. (a zero-token slot costs nothing and hides nothing).
        suffix = [0] * (len(order) + 1)
        for i in range(len(order) - 1, -1, -1):
            suffix[i] = suffix[i + 1] + tokens[i]
        budget = self._max_tokens
        start = next((i for i in range(0, len(order), self._evict_block)
                      if suffix[i] <= budget), None)
        if start is None:
            # The newest block alone is over the budget: its newest run that fits.
            start = next(i for i in range(len(order) + 1) if suffix[i] <= budget)
        # A slot cut to nothing (a zero budget, empty text) is not a turn: never hand out
        # empty turns.
        return [(sid, self._slots[sid]) for sid, t in zip(order[start:], tokens[start:]) if t]

    def _block(self) -> int:
        """Slots evicted at once when a new one exceeds the turn cap."""
        return min(self._evict_block, self._max_turns)

    def _has_room_for(self, sid: int) -> bool:
        """Tell whether a new slot sid would survive the turn cap; remember refusals."""
        if sid <= self._evicted_upto:
            return False
        if len(self._order) >= self._max_turns and (
                bisect.bisect_left(self._order, sid) < self._block()):
            # It would be among the oldest block, evicted as soon as it is inserted.
            self._evicted_upto = max(self._evicted_upto, sid)
            return False
        return True

    def _insert(self, sid: int, slot: _Slot) -> None:
        bisect.insort(self._order, sid)  # sid is new: callers look it up first
        self._slots[sid] = slot
        if len(self._order) > self._max_turns:
            evicted = self._order[:self._block()]
            del self._order[:self._block()]
            for old in evicted:
                del self._slots[old]
            self._evicted_upto = max(self._evicted_upto, evicted[-1])

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
                a = compress_answer(a, a_budget, self._count, mode=self._compression)
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


COMPRESSION_MODES = ('smart', 'sentences', 'truncate')
"""
How `compress_answer` fits an LVLM answer into a token budget:

* 'smart' (default): drop markup and filler, keep whole leading sentences while they fit, then,
  if sentences were cut, append the entities those cut sentences name and the kept text does
  not, as " (also: red cup, door)", as many as fit. Entities are the caller's (e.g. the LVLM's
  box labels) first, then ones found in the text (quoted or **bold** phrases, capitalised words
  inside a sentence).
* 'sentences': the same without the entity list (keeps the answer, loses what the cut named).
* 'truncate': the first words of the raw reply, nothing removed (the baseline for ablations).
"""

# Most entities considered per answer, and the longest kept (characters): bounds the work.
MAX_ENTITIES = 32
MAX_ENTITY_CHARS = 64

# Quotes open after a space or bracket; a closing single quote must end the word (not "it's").
_QUOTED_RE = re.compile(r'(?:^|(?<=[\s(\[]))(?:"([^"\n]{1,60})"|\u201c([^\u201d\n]{1,60})\u201d'
                        r"|'([^'\n]{1,60})'(?=[\s.,;:!?)\]]|$))")
_BOLD_RE = re.compile(r'\*\*([^*\n]{1,60})\*\*|__([^_\n]{1,60})__')
_CAPS_RUN_RE = re.compile(r"\b[A-Z][\w'\-]*(?:\s+[A-Z][\w'\-]*)*")
_POSSESSIVE_RE = re.compile(r"'s?$")
# Capitalised words that are not names even inside a sentence.
_NOT_ENTITIES = frozenset({'i', "i'm", "i've", "i'd", "i'll", 'ok', 'okay', 'yes', 'no'})


def find_entities(text: str) -> list[str]:
    """
    Cheap entity candidates in text, in order of appearance, without duplicates.

    Quoted phrases ("EXIT", 'Room 2'), **bold** phrases (headings ending in ':' excluded) and
    runs of capitalised words that do not start a sentence (a sentence's first word is
    capitalised anyway). No NLP: it finds names and labels, not every noun.
    """
    if not text:
        return []
    text = text[:MAX_TEXT_CHARS]
    found: list[tuple[int, str]] = []
    for rx in (_QUOTED_RE, _BOLD_RE):
        for m in rx.finditer(text):
            phrase = next(g for g in m.groups() if g is not None).strip()
            if phrase and not phrase.endswith(':') and len(phrase.split()) <= 5:
                found.append((m.start(), phrase))
    plain = _MARKUP_RE.sub('', text)
    for line in plain.splitlines():
        line = _BULLET_RE.sub('', line)
        for sentence in _SENTENCE_SPLIT_RE.split(line):
            lead = len(sentence) - len(sentence.lstrip(' "\'(*'))
            for m in _CAPS_RUN_RE.finditer(sentence):
                words = m.group(0).split()
                if m.start() <= lead:
                    words = words[1:]  # the sentence's first word
                while words and words[0].lower() in _NOT_ENTITIES:
                    words = words[1:]
                if words:
                    # Position in the original text is approximate; order is what matters.
                    found.append((text.find(words[0]), _POSSESSIVE_RE.sub('', ' '.join(words))))
    found.sort(key=lambda f: f[0])
    return _dedupe(p for _, p in found)


def _dedupe(phrases) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for p in phrases:
        p = ' '.join(str(p).split()).strip(' .,;:!?()[]')[:MAX_ENTITY_CHARS]
        key = p.lower()
        if p and key not in seen:
            seen.add(key)
            out.append(p)
            if len(out) >= MAX_ENTITIES:
                break
    return out


def _names(text: str, entity: str) -> bool:
    """Tell whether text names entity as whole words, ignoring case."""
    return re.search(rf'(?<!\w){re.escape(entity)}(?!\w)', text, re.IGNORECASE) is not None


def compress_answer(text: str, max_tokens: int, count_tokens: TokenCounter = word_count, *,
                    entities: Sequence[str] = (), mode: str = 'smart') -> str:
    """
    Compress an LVLM answer to at most max_tokens tokens (see COMPRESSION_MODES).

    'smart' and 'sentences' drop markup and filler (openers like "Sure!", "Based on the image,",
    closing politeness), then keep whole leading sentences while they fit; if the first sentence
    alone is too long it is cut at a word boundary. 'smart' then lists the entities that only
    the cut sentences named: `entities` (the LVLM's box labels) first, then `find_entities`.
    Never returns more than max_tokens; empty in, empty out. Raises ValueError for an unknown
    mode.
    """
    if mode not in COMPRESSION_MODES:
        raise ValueError(f'mode must be one of {COMPRESSION_MODES}, got {mode!r}')
    if max_tokens <= 0 or not text or not text.strip():
        return ''
    if mode == 'truncate':
        return truncate_to_tokens(' '.join(text[:MAX_TEXT_CHARS].split()), max_tokens,
                                  count_tokens)
    kept = _answer_sentences(text)
    if not kept:
        return ''

    out = ''
    n_kept = 0
    for sentence in kept:
        candidate = f'{out} {sentence}' if out else sentence
        if count_tokens(candidate) > max_tokens:
            break
        out = candidate
        n_kept += 1
    if not out:
        out = truncate_to_tokens(kept[0], max_tokens, count_tokens)
    if mode == 'sentences' or n_kept == len(kept):
        return out
    cut = ' '.join(kept[n_kept:]) if n_kept else kept[0][len(out):] + ' ' + ' '.join(kept[1:])
    return _with_entities(out, cut, text, entities, max_tokens, count_tokens)


def _answer_sentences(text: str) -> list[str]:
    """The reply as plain sentences, markup and filler removed (all of it if all is filler)."""
    lines = [line for line in (_BULLET_RE.sub('', raw).strip() for raw in
                               _MARKUP_RE.sub('', text[:MAX_TEXT_CHARS]).splitlines()) if line]
    if len(lines) > 1:
        # A list item or heading without a full stop still ends a thought. A one-line reply
        # keeps its form: a short answer ("not visible") must reach the SVLM's history as the
        # SVLM itself would say it, not as "not visible.".
        lines = [line if line[-1] in '.!?:;,' else line + '.' for line in lines]
    flat = ' '.join(' '.join(lines).split())
    if not flat:
        return []
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
    return kept or sentences  # a reply that is all filler: keep it rather than say nothing


def _with_entities(out: str, cut: str, text: str, entities: Sequence[str], max_tokens: int,
                   count_tokens: TokenCounter) -> str:
    """Append ' (also: a, b)' with the entities only `cut` names, as many as fit."""
    if isinstance(entities, str):
        entities = [entities]
    # Found in the whole reply (bold markup is gone from the sentences), named in the cut part.
    candidates = _dedupe(list(entities)[:MAX_ENTITIES] + find_entities(text))
    listed: list[str] = []
    best = out
    for entity in candidates:
        if not _names(cut, entity) or _names(out, entity):
            continue
        if any(_names(e, entity) for e in listed):
            continue  # part of a longer name already listed
        # A longer name replaces the shorter ones it contains ('red cup' for 'cup').
        trial = [e for e in listed if not _names(entity, e)] + [entity]
        candidate = f'{out} (also: {", ".join(trial)})'
        if count_tokens(candidate) <= max_tokens:
            listed, best = trial, candidate
    return best
