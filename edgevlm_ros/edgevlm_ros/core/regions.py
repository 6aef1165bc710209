# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Boxes in normalised frame coordinates and a robust parser for LVLM grounding replies.

Rule: every box that leaves this module is normalised to 0..1 of the frame it was drawn on
(x to the right, y down), ordered (min <= max), clipped to the frame and of non-zero area.
The parser never raises on model text: whatever the LVLM wrote, the caller gets an answer
string and a (possibly empty) list of valid boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import math
import re
from typing import Any

BOX_FORMATS = ('auto', 'pixels', 'grid1000', 'normalized')

# Longest model reply the parser looks at; beyond this the reply is truncated before the JSON
# search so that pathological replies cannot cost quadratic time.
MAX_REPLY_CHARS = 65_536
# Most JSON decode attempts per reply (one per '{' or '[' that could start a value).
_MAX_DECODE_ATTEMPTS = 256
# Most boxes kept from one reply (a focus mask with more regions than this focuses nothing).
MAX_BOXES = 64

_LIST_KEYS = ('objects', 'boxes', 'detections', 'regions', 'bboxes')
_BOX_KEYS = ('bbox_2d', 'box_2d', 'bbox', 'box', 'boxes')
_LABEL_KEYS = ('label', 'name', 'object', 'category', 'class')
_SCORE_KEYS = ('score', 'confidence', 'conf')
_ANSWER_KEYS = ('answer', 'response', 'text')

_FENCE_RE = re.compile(r'```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```', re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r',\s*([\]}])')
# Qwen2-VL's native grounding tokens: <|object_ref_start|>cup<|object_ref_end|>
# <|box_start|>(x1,y1),(x2,y2)<|box_end|>, always on the 0..1000 grid.
_QWEN_REF_RE = re.compile(
    r'(?:<\|object_ref_start\|>(?P<label>.*?)<\|object_ref_end\|>\s*)?'
    r'<\|box_start\|>\s*\(\s*(?P<x1>[-\d.]+)\s*,\s*(?P<y1>[-\d.]+)\s*\)\s*,\s*'
    r'\(\s*(?P<x2>[-\d.]+)\s*,\s*(?P<y2>[-\d.]+)\s*\)\s*<\|box_end\|>',
    re.DOTALL)
_ANSWER_SALVAGE_RE = re.compile(r'"answer"\s*:\s*"((?:[^"\\]|\\.)*)"')
_QWEN_TOKEN_RE = re.compile(r'<\|(?:object_ref_start|object_ref_end|box_start|box_end)\|>')


@dataclass(frozen=True)
class Box:
    """An axis-aligned box, normalised 0..1 of the frame (x right, y down)."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    label: str = ''
    score: float = 1.0

    def __post_init__(self) -> None:
        # Coerce numpy scalars and ints so that equality and JSON output behave; a non-numeric
        # coordinate is a programming error and fails here, not deep inside the geometry.
        for name in ('x_min', 'y_min', 'x_max', 'y_max', 'score'):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, 'label', str(self.label))

    @property
    def is_finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.x_min, self.y_min, self.x_max, self.y_max))

    @property
    def width(self) -> float:
        return max(0.0, self.x_max - self.x_min) if self.is_finite else 0.0

    @property
    def height(self) -> float:
        return max(0.0, self.y_max - self.y_min) if self.is_finite else 0.0

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def is_empty(self) -> bool:
        """True for zero or negative area and for non-finite coordinates."""
        return self.width <= 0.0 or self.height <= 0.0

    def center(self) -> tuple[float, float]:
        return ((self.x_min + self.x_max) / 2.0, (self.y_min + self.y_max) / 2.0)

    def clipped(self) -> Box:
        """Return the box ordered (min <= max) and clamped to [0, 1]; NaN becomes 0."""
        def clamp(v: float) -> float:
            return 0.0 if math.isnan(v) else min(1.0, max(0.0, v))

        x1, x2 = sorted((clamp(self.x_min), clamp(self.x_max)))
        y1, y2 = sorted((clamp(self.y_min), clamp(self.y_max)))
        return Box(x1, y1, x2, y2, self.label, self.score)

    def to_pixels(self, w: int, h: int) -> tuple[int, int, int, int]:
        """Return (x1, y1, x2, y2) in pixels of a w x h image, rounded and clamped to it."""
        if w <= 0 or h <= 0:
            raise ValueError(f'image size must be positive, got {w}x{h}')
        b = self.clipped()
        return (int(round(b.x_min * w)), int(round(b.y_min * h)),
                int(round(b.x_max * w)), int(round(b.y_max * h)))

    @classmethod
    def from_pixels(cls, x1: float, y1: float, x2: float, y2: float, w: int, h: int,
                    label: str = '', score: float = 1.0) -> Box:
        """Build a box from pixel corners of a w x h image (not clipped; call clipped())."""
        if w <= 0 or h <= 0:
            raise ValueError(f'image size must be positive, got {w}x{h}')
        return cls(float(x1) / w, float(y1) / h, float(x2) / w, float(y2) / h, label, score)

    def iou(self, other: Box) -> float:
        """Intersection over union; 0.0 when either box is empty."""
        if self.is_empty or other.is_empty:
            return 0.0
        iw = min(self.x_max, other.x_max) - max(self.x_min, other.x_min)
        ih = min(self.y_max, other.y_max) - max(self.y_min, other.y_min)
        if iw <= 0.0 or ih <= 0.0:
            return 0.0
        inter = iw * ih
        return inter / (self.area + other.area - inter)

    def expanded(self, dx: float, dy: float) -> Box:
        """Return the box with each side moved outwards by dx (left/right) and dy (top/bottom)."""
        return Box(self.x_min - dx, self.y_min - dy, self.x_max + dx, self.y_max + dy,
                   self.label, self.score)


@dataclass
class LvlmReply:
    """What the parser made of one LVLM reply."""

    answer: str
    boxes: list[Box]
    structured: bool  # a JSON value in the reply schema (answer and/or objects) was parsed


def parse_lvlm_reply(text: str, image_size: tuple[int, int],
                     box_format: str = 'auto') -> LvlmReply:
    """
    Parse an LVLM reply into an answer and boxes normalised to the image the LVLM saw.

    `image_size` is (width, height) of the image sent to the LVLM (for Qwen2.5-VL: the
    processor-resized image). `box_format` says how the model writes coordinates:
    'pixels' (absolute pixels, Qwen2.5-VL), 'grid1000' (0..1000, Qwen2-VL / Qwen3-VL),
    'normalized' (0..1) or 'auto' (decided once per reply: all coordinates <= 1 -> normalized;
    else any coordinate beyond the image side -> grid1000 if all are <= 1000, else pixels).

    Never raises on the text. Raises ValueError for an unknown box_format or an image_size
    that is not two positive numbers (those are caller bugs, not model output).
    """
    if box_format not in BOX_FORMATS:
        raise ValueError(f'box_format must be one of {BOX_FORMATS}, got {box_format!r}')
    try:
        width, height = (float(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f'image_size must be (width, height), got {image_size!r}') from None
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        raise ValueError(f'image_size must be positive, got {image_size!r}')
    if not isinstance(text, str):
        text = '' if text is None else str(text)
    text = text[:MAX_REPLY_CHARS]

    found = _find_json(text)
    if found is not None:
        value, outside = found
        answer, raw_boxes, has_answer = _interpret(value)
        boxes = _normalise_boxes(raw_boxes, width, height, box_format)
        if not has_answer:
            answer = _clean_prose(outside)
            if not answer:
                answer = ', '.join(dict.fromkeys(b.label for b in boxes if b.label))
        return LvlmReply(answer=answer.strip(), boxes=boxes, structured=True)

    qwen = list(_QWEN_REF_RE.finditer(text))
    if qwen:
        raw = [(m.group('label') or '', [m.group(k) for k in ('x1', 'y1', 'x2', 'y2')], 1.0)
               for m in qwen]
        # Qwen2-VL tokens are always on the 0..1000 grid unless the caller says otherwise.
        fmt = 'grid1000' if box_format == 'auto' else box_format
        boxes = _normalise_boxes(raw, width, height, fmt)
        answer = _QWEN_TOKEN_RE.sub('', _QWEN_REF_RE.sub(
            lambda m: m.group('label') or '', text))
        return LvlmReply(answer=' '.join(answer.split()), boxes=boxes, structured=False)

    # A reply cut off by the token limit still carries a usable answer string.
    m = _ANSWER_SALVAGE_RE.search(text)
    if m is not None:
        try:
            return LvlmReply(answer=json.loads(f'"{m.group(1)}"').strip(), boxes=[],
                             structured=False)
        except ValueError:
            pass
    return LvlmReply(answer=text.strip(), boxes=[], structured=False)


# --- JSON discovery -------------------------------------------------------------------------

_NOTHING = object()  # 'no value' sentinel: None is a valid JSON value


def _loads_lenient(s: str) -> Any:
    """json.loads, then once more without trailing commas (a common LLM slip)."""
    try:
        return json.loads(s)
    except (ValueError, RecursionError):
        pass
    fixed = _TRAILING_COMMA_RE.sub(r'\1', s)
    if fixed != s:
        try:
            return json.loads(fixed)
        except (ValueError, RecursionError):
            pass
    return _NOTHING



def _is_reply_value(value: Any) -> bool:
    """Tell whether a decoded JSON value is an answer object or a list of box objects."""
    if isinstance(value, dict):
        if any(k in value for k in _ANSWER_KEYS + _LIST_KEYS):
            return True
        return any(k in value for k in _BOX_KEYS)
    if isinstance(value, list):
        return any(isinstance(v, dict) and any(k in v for k in _BOX_KEYS) for v in value)
    return False


def _find_reply_in(value: Any, depth: int = 0) -> Any:
    """Return the value if reply-shaped, else the first reply-shaped value nested in it."""
    if _is_reply_value(value):
        return value
    if depth >= 4:
        return _NOTHING
    children = value.values() if isinstance(value, dict) else (
        value if isinstance(value, list) else ())
    for child in children:
        found = _find_reply_in(child, depth + 1)
        if found is not _NOTHING:
            return found
    return _NOTHING


def _find_json(text: str) -> tuple[Any, str] | None:
    """Return (value, text outside it) for the first reply-shaped JSON value, else None."""
    for m in _FENCE_RE.finditer(text):
        value = _loads_lenient(m.group(1).strip())
        if value is not _NOTHING:
            value = _find_reply_in(value)
        if value is not _NOTHING:
            return value, text[:m.start()] + ' ' + text[m.end():]

    found = _scan(text)
    if found is None:
        # Second chance without trailing commas (a common LLM slip), over the whole text once.
        fixed = _TRAILING_COMMA_RE.sub(r'\1', text)
        if fixed != text:
            found = _scan(fixed)
    return found


def _scan(text: str) -> tuple[Any, str] | None:
    """Try to decode a JSON value at each '{' or '[' (bounded number of attempts)."""
    decoder = json.JSONDecoder()
    pos = 0
    for _ in range(_MAX_DECODE_ATTEMPTS):
        starts = [i for i in (text.find('{', pos), text.find('[', pos)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            pos = start + 1
            continue
        found = _find_reply_in(value)
        if found is not _NOTHING:
            return found, text[:start] + ' ' + text[end:]
        pos = max(end, start + 1)
    return None


def _clean_prose(outside: str) -> str:
    # Leftover fences and 'json' markers are formatting, not part of the answer.
    s = outside.replace('```json', ' ').replace('```JSON', ' ').replace('```', ' ')
    return ' '.join(s.split())


# --- interpretation ------------------------------------------------------------------------

RawBox = tuple[str, list[Any], Any]


def _first(d: dict, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def _interpret(value: Any) -> tuple[str, list[RawBox], bool]:
    """Return (answer, raw boxes, whether an answer key was present)."""
    answer = ''
    has_answer = False
    items: list[Any] = []
    if isinstance(value, dict):
        a = _first(value, _ANSWER_KEYS)
        if a is not None:
            has_answer = True
            answer = a if isinstance(a, str) else json.dumps(a)
        objs = _first(value, _LIST_KEYS)
        if isinstance(objs, list) and not _looks_like_coords(objs):
            items = objs
        elif isinstance(objs, dict):  # a single object instead of a list of one
            items = [objs]
        elif objs is not None or any(k in value for k in _BOX_KEYS):
            # {"answer": ..., "boxes": [x1, y1, x2, y2]} or a single object at the top level.
            items = [value if objs is None else {'bbox_2d': objs, 'label': _first(
                value, _LABEL_KEYS) or ''}]
    elif isinstance(value, list):
        items = value

    raw: list[RawBox] = []
    for item in items:
        if len(raw) >= MAX_BOXES:
            break
        if isinstance(item, list):  # a bare [x1, y1, x2, y2] without a label
            raw.append(('', item, None))
            continue
        if not isinstance(item, dict):
            continue
        coords = _first(item, _BOX_KEYS)
        label = _first(item, _LABEL_KEYS)
        score = _first(item, _SCORE_KEYS)
        raw.append(('' if label is None else str(label), coords, score))
    return answer, raw, has_answer


def _looks_like_coords(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 4 and all(
        isinstance(c, (int, float)) and not isinstance(c, bool) for c in v)


def _to_float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _coords(raw: Any) -> list[float] | None:
    """Four finite numbers from [x1, y1, x2, y2] or [[x1, y1], [x2, y2]], else None."""
    if isinstance(raw, dict):
        raw = [raw.get(k) for k in ('x1', 'y1', 'x2', 'y2')]
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in raw):
        raw = [raw[0][0], raw[0][1], raw[1][0], raw[1][1]]
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        return None
    vals = [_to_float(c) for c in raw]
    if any(v is None for v in vals):
        return None
    return vals  # type: ignore[return-value]


def _resolve_format(all_coords: list[list[float]], width: float, height: float) -> str:
    if not all_coords:
        return 'normalized'
    flat = [c for cs in all_coords for c in cs]
    if all(c <= 1.0 for c in flat):
        return 'normalized'
    beyond = any(cs[0] > width or cs[2] > width or cs[1] > height or cs[3] > height
                 for cs in all_coords)
    if beyond and all(c <= 1000.0 for c in flat):
        return 'grid1000'
    return 'pixels'


def _normalise_boxes(raw: list[RawBox], width: float, height: float, fmt: str) -> list[Box]:
    parsed = [(label, cs, score) for label, c, score in raw if (cs := _coords(c)) is not None]
    if fmt == 'auto':
        fmt = _resolve_format([cs for _, cs, _ in parsed], width, height)
    sx, sy = {'pixels': (width, height), 'grid1000': (1000.0, 1000.0),
              'normalized': (1.0, 1.0)}[fmt]
    boxes: list[Box] = []
    for label, (x1, y1, x2, y2), score in parsed:
        s = _to_float(score)
        s = 1.0 if s is None else min(1.0, max(0.0, s))
        box = Box(x1 / sx, y1 / sy, x2 / sx, y2 / sy, label.strip(), s).clipped()
        if not box.is_empty:
            boxes.append(box)
    return boxes
