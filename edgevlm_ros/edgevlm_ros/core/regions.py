# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Boxes in normalised frame coordinates and a robust parser for LVLM grounding replies.

Why one module of 635 lines: it is one parser with its many cases: whatever an LVLM writes
(JSON, broken JSON, prose, native grounding tokens, seven box formats, the Qwen2.5-VL resize)
ends as a ``Box`` under the one rule stated below.

Rule: every box that leaves this module is normalised to 0..1 of the frame it was drawn on
(x to the right, y down), ordered (min <= max), clipped to the frame and of non-zero area.
The parser never raises on model text: whatever the LVLM wrote, the caller gets an answer
string, a (possibly empty) list of valid boxes and counts of what was found and dropped.

Box formats (`box_format`), named after the model families that use them:

============== ======================================================================
'qwen2.5-vl'   absolute pixels on the *processor-resized* input: the server's processor
               smart-resizes the image it receives (sides rounded to multiples of 28,
               area within min/max pixels, see `SmartResize`), and Qwen2.5-VL answers in
               pixels of that resized image, not of the image sent.
'qwen2-vl'     0..1000 grid, [x1, y1, x2, y2] (also Qwen-VL's <box>(x1,y1),(x2,y2)</box>).
'qwen3-vl'     0..1000 grid, [x1, y1, x2, y2].
'gemini'       0..1000 grid, [y1, x1, y2, x2] (Gemini's documented box_2d order).
'pixels'       absolute pixels of the image sent (servers that do not resize, or that map
               boxes back to the request image; the project's own LVLM server).
'grid1000'     0..1000 grid, [x1, y1, x2, y2] (any other model on that grid).
'normalized'   0..1 floats, [x1, y1, x2, y2].
'auto'         guessed once per reply: all coordinates <= 1 -> normalized; else any
               coordinate beyond the image (with the Qwen2.5-VL rounding and a 5 % overshoot
               allowed) -> grid1000 if all are <= 1000, else pixels of the image sent. A
               guess: name the model family when it is known.
============== ======================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import math
import re
from typing import Any

BOX_FORMATS = ('auto', 'pixels', 'grid1000', 'normalized', 'qwen2.5-vl', 'qwen2-vl',
               'qwen3-vl', 'gemini')
# What each format's coordinates are divided by ('resized' = the smart-resized input), and
# whether the list order is y first.
_FORMAT_SCALE = {'pixels': 'sent', 'qwen2.5-vl': 'resized', 'grid1000': 1000.0,
                 'qwen2-vl': 1000.0, 'qwen3-vl': 1000.0, 'gemini': 1000.0, 'normalized': 1.0}
_YX_FORMATS = ('gemini',)
# 'auto' allows pixel boxes to overshoot the image by this share before reading them as grid.
_AUTO_OVERSHOOT = 1.05

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
# Corner keys of a box written as an object, x first.
_CORNER_KEYS = (('x1', 'y1', 'x2', 'y2'), ('x_min', 'y_min', 'x_max', 'y_max'),
                ('xmin', 'ymin', 'xmax', 'ymax'), ('left', 'top', 'right', 'bottom'))

_FENCE_RE = re.compile(r'```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```', re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r',\s*([\]}])')
_NUM = r'\s*(-?\d+(?:\.\d+)?)\s*'
# Native grounding tokens. Qwen2-VL: <|object_ref_start|>cup<|object_ref_end|>
# <|box_start|>(x1,y1),(x2,y2)<|box_end|>; Qwen-VL: <ref>cup</ref><box>(x1,y1),(x2,y2)</box>.
# Both are on the 0..1000 grid unless the caller names another format.
_QWEN_REF_RE = re.compile(
    r'(?:(?:<\|object_ref_start\|>|<ref>)(?P<label>[^<]{0,200})'
    r'(?:<\|object_ref_end\|>|</ref>)\s*)?'
    rf'(?:<\|box_start\|>|<box>)\s*\({_NUM},{_NUM}\)\s*,\s*\({_NUM},{_NUM}\)\s*'
    r'(?:<\|box_end\|>|</box>)')
_QWEN_TOKEN_RE = re.compile(
    r'<\|(?:object_ref_start|object_ref_end|box_start|box_end)\|>|</?(?:ref|box)>')
# A bare [x1, y1, x2, y2] (or with parentheses) in prose, optionally after 'label:'.
_PROSE_BOX_RE = re.compile(rf'[\[(]{_NUM},{_NUM},{_NUM},{_NUM}[\])]')
_LABEL_BEFORE_RE = re.compile(r'(?:^|(?<=[^\w\- ]))\s*([A-Za-z][\w\- ]{0,40}?)\s*:\s*$')
_SPACE_BEFORE_PUNCT_RE = re.compile(r'\s+([.,;:!?])')
_ARTICLE_RE = re.compile(r'^(?:the|an?)\s+', re.IGNORECASE)
# Text that shows the model tried to write boxes (used to flag replies we could not read).
_BOX_LIKE_RE = re.compile(
    r'"(?:bbox_2d|box_2d|bbox|box)"\s*:|"(?:objects|boxes|detections|regions|bboxes)"\s*:\s*\['
    r'|<\|box_start\|>|<box>')
_ANSWER_SALVAGE_RE = re.compile(r'"answer"\s*:\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class SmartResize:
    """
    How a Qwen2-VL / Qwen2.5-VL processor resizes an image before the model sees it.

    Sides become multiples of `factor` (patch 14 x merge 2 = 28) with the area kept within
    [min_pixels, max_pixels]. The defaults are the transformers processor defaults
    (min 56*56, max 28*28*1280). Some checkpoints' preprocessor_config.json and many servers
    set another max_pixels (e.g. 12845056 or a vLLM --mm-processor-kwargs cap): set it to what
    the server uses. It only matters when the image sent has more than max_pixels pixels; below
    that (e.g. any image up to 1000x1000 with the defaults) only the rounding to 28 applies.
    """

    factor: int = 28
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280

    def __post_init__(self) -> None:
        for name in ('factor', 'min_pixels', 'max_pixels'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        if self.min_pixels > self.max_pixels:
            raise ValueError(f'min_pixels ({self.min_pixels}) must be <= max_pixels '
                             f'({self.max_pixels})')

    def size(self, width: int, height: int) -> tuple[int, int]:
        """Return (width, height) of the resized image (note: width first, like image_size)."""
        h, w = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return w, h


QWEN25_VL_RESIZE = SmartResize()


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """
    Return (height, width) as the Qwen2-VL / Qwen2.5-VL image processor resizes them.

    Same argument order, rounding (Python's round, i.e. half to even) and limits as
    transformers' `smart_resize`: both sides multiples of factor, area within
    [min_pixels, max_pixels] where possible, aspect ratio kept as closely as the rounding allows.
    Raises ValueError for non-positive sizes or an aspect ratio above 200 (the processor
    refuses those images too).
    """
    if not (height > 0 and width > 0):
        raise ValueError(f'height and width must be positive, got {height}x{width}')
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f'aspect ratio must be at most 200, got {height}x{width}')
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return int(h_bar), int(w_bar)


def coordinate_frame(box_format: str, image_size: tuple[float, float],
                     resize: SmartResize = QWEN25_VL_RESIZE) -> tuple[float, float]:
    """
    Return (sx, sy): what x and y coordinates of `box_format` are divided by to get 0..1.

    E.g. (644, 476) for 'qwen2.5-vl' on a 640x480 image, (1000, 1000) for the grids. Raises
    ValueError for 'auto' (decided per reply) and unknown formats.
    """
    scale = _FORMAT_SCALE.get(box_format)
    if scale is None:
        raise ValueError(f'box_format must be one of {BOX_FORMATS[1:]} here, got {box_format!r}')
    width, height = image_size
    if scale == 'sent':
        return float(width), float(height)
    if scale == 'resized':
        w, h = resize.size(max(1, round(width)), max(1, round(height)))
        return float(w), float(h)
    return float(scale), float(scale)


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
    """
    What the parser made of one LVLM reply.

    Counts for the caller's counters: `boxes_found` box entries were in the reply (objects with
    or without usable coordinates, bare coordinate lists, grounding tokens); `boxes_dropped` of
    them were discarded, by reason in `drop_reasons` ('invalid': not four finite numbers,
    'empty': zero area as written, 'outside': nothing left after clipping to the image,
    'over_cap': beyond MAX_BOXES). Always boxes_found == len(boxes) + boxes_dropped.
    `unparsed_boxes` is True when the text shows box syntax (a box key such as "bbox_2d", a
    grounding token) but no box entry could be read from it, e.g. JSON cut off by the token
    limit or broken beyond repair.
    """

    answer: str
    boxes: list[Box]
    structured: bool  # a JSON value in the reply schema (answer and/or objects) was parsed
    boxes_found: int = 0
    boxes_dropped: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    unparsed_boxes: bool = False


def parse_lvlm_reply(text: str, image_size: tuple[int, int], box_format: str = 'auto', *,
                     resize: SmartResize = QWEN25_VL_RESIZE) -> LvlmReply:
    """
    Parse an LVLM reply into an answer and boxes normalised to the image the LVLM was sent.

    `image_size` is (width, height) of the image sent to the LVLM. `box_format` names how the
    model writes coordinates (see the module docstring: 'qwen2.5-vl', 'qwen2-vl', 'qwen3-vl',
    'gemini', 'pixels', 'grid1000', 'normalized' or 'auto'). `resize` is the server's
    smart-resize setting, used by 'qwen2.5-vl' (and by 'auto' to tolerate its rounding).

    Never raises on the text. Raises ValueError for an unknown box_format, an image_size
    that is not two positive numbers, or (for 'qwen2.5-vl') one with an aspect ratio over 200
    that the Qwen processor refuses (those are caller bugs, not model output).
    """
    if box_format not in BOX_FORMATS:
        raise ValueError(f'box_format must be one of {BOX_FORMATS}, got {box_format!r}')
    if not isinstance(resize, SmartResize):
        raise ValueError(f'resize must be a SmartResize, got {resize!r}')
    try:
        width, height = (float(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f'image_size must be (width, height), got {image_size!r}') from None
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        raise ValueError(f'image_size must be positive, got {image_size!r}')
    if not isinstance(text, str):
        text = '' if text is None else str(text)
    text = text[:MAX_REPLY_CHARS]
    if box_format == 'qwen2.5-vl':
        # Fails here, whatever the text, for an image the Qwen processor would refuse.
        coordinate_frame(box_format, (width, height), resize)
    frame = _Frame(width, height, box_format, resize)

    found = _find_json(text)
    if found is not None:
        value, outside = found
        answer, raw_boxes, has_answer, over_cap = _interpret(value)
        reply = frame.reply('', raw_boxes, structured=True, over_cap=over_cap)
        if not has_answer:
            answer = _clean_prose(outside)
            if not answer:
                answer = ', '.join(dict.fromkeys(b.label for b in reply.boxes if b.label))
        reply.answer = answer.strip()
        return reply

    qwen = list(_QWEN_REF_RE.finditer(text))
    if qwen:
        raw = [(m.group('label') or '', [m.group(i) for i in (2, 3, 4, 5)], None)
               for m in qwen]
        # Grounding tokens are on the 0..1000 grid unless the caller says otherwise.
        fmt = 'grid1000' if box_format == 'auto' else box_format
        answer = _QWEN_TOKEN_RE.sub('', _QWEN_REF_RE.sub(lambda m: m.group('label') or '', text))
        return _Frame(width, height, fmt, resize).reply(
            ' '.join(answer.split()), raw[:MAX_BOXES], structured=False,
            over_cap=max(0, len(raw) - MAX_BOXES))

    unparsed = _BOX_LIKE_RE.search(text) is not None
    # A reply cut off by the token limit still carries a usable answer string.
    m = _ANSWER_SALVAGE_RE.search(text)
    if m is not None:
        try:
            return LvlmReply(answer=json.loads(f'"{m.group(1)}"').strip(), boxes=[],
                             structured=False, unparsed_boxes=unparsed)
        except ValueError:
            pass

    if not unparsed:
        prose = _prose_boxes(text)
        if prose is not None:
            answer, raw = prose
            return frame.reply(answer, raw[:MAX_BOXES], structured=False,
                               over_cap=max(0, len(raw) - MAX_BOXES))
    return LvlmReply(answer=text.strip(), boxes=[], structured=False, unparsed_boxes=unparsed)


def _prose_boxes(text: str) -> tuple[str, list[RawBox]] | None:
    """Boxes written as bare coordinate lists in prose, labelled by a 'label:' before them."""
    raw: list[RawBox] = []
    parts: list[str] = []
    pos = 0
    for m in _PROSE_BOX_RE.finditer(text):
        before = text[pos:m.start()]
        label = _LABEL_BEFORE_RE.search(before[-64:])
        if label is not None:
            # Keep the label words in the answer, drop the colon and the coordinates.
            before = before[:len(before) - len(before[-64:]) + label.start(1)] + label.group(1)
        parts.append(before)
        raw.append((_ARTICLE_RE.sub('', label.group(1).strip()) if label else '',
                    [m.group(i) for i in (1, 2, 3, 4)], None))
        pos = m.end()
    if not raw:
        return None
    parts.append(text[pos:])
    return _SPACE_BEFORE_PUNCT_RE.sub(r'\1', ' '.join(''.join(parts).split())), raw


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

RawBox = tuple[str, Any, Any]


def _first(d: dict, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def _interpret(value: Any) -> tuple[str, list[RawBox], bool, int]:
    """Return (answer, raw boxes, whether an answer key was present, entries over MAX_BOXES)."""
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
        elif isinstance(objs, list):  # {"answer": ..., "boxes": [x1, y1, x2, y2]}
            items = [{'bbox_2d': objs, 'label': _first(value, _LABEL_KEYS) or ''}]
        elif objs is None and _first(value, _BOX_KEYS) is not None:
            items = [value]  # a single object at the top level
        # Else no box entry: "boxes": null / "none" / 0 is how models say "nothing found".
    elif isinstance(value, list):
        items = value

    raw: list[RawBox] = []
    over_cap = 0
    for item in items:
        if isinstance(item, list):  # a bare [x1, y1, x2, y2] without a label
            entry: RawBox = ('', item, None)
        elif isinstance(item, dict):
            label = _first(item, _LABEL_KEYS)
            coords = _first(item, _BOX_KEYS)
            if coords is None and any(k in item for k, *_ in _CORNER_KEYS):
                coords = item  # corners written as keys of the object itself
            entry = ('' if label is None else str(label), coords, _first(item, _SCORE_KEYS))
        else:
            continue  # strings, numbers: not box entries
        if len(raw) >= MAX_BOXES:
            over_cap += 1
        else:
            raw.append(entry)
    return answer, raw, has_answer, over_cap


def _looks_like_coords(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 4 and all(
        isinstance(c, (int, float)) and not isinstance(c, bool) for c in v)


def _to_float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _coords(raw: Any, yx: bool) -> list[float] | None:
    """
    Four finite numbers x1, y1, x2, y2, else None.

    Accepts [a, b, c, d], [[a, b], [c, d]] (y first when yx) and objects with corner keys.
    """
    if isinstance(raw, dict):
        for keys in _CORNER_KEYS:
            if all(k in raw for k in keys):
                raw = [raw[k] for k in keys]
                yx = False  # named keys say which is which
                break
        else:
            return None
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in raw):
        raw = [raw[0][0], raw[0][1], raw[1][0], raw[1][1]]
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        return None
    vals = [_to_float(c) for c in raw]
    if any(v is None for v in vals):
        return None
    if yx:
        vals = [vals[1], vals[0], vals[3], vals[2]]
    return vals  # type: ignore[return-value]


@dataclass(frozen=True)
class _Frame:
    """The image the boxes were drawn on and how the model writes coordinates."""

    width: float
    height: float
    box_format: str
    resize: SmartResize

    def resolve(self, all_coords: list[list[float]]) -> str:
        """The concrete format: box_format itself, or the 'auto' guess for these coordinates."""
        if self.box_format != 'auto':
            return self.box_format
        if not all_coords:
            return 'normalized'
        flat = [c for cs in all_coords for c in cs]
        if all(c <= 1.0 for c in flat):
            return 'normalized'
        # Pixel boxes may be on the Qwen2.5-VL resized input and may overshoot the edge a bit.
        try:
            rw, rh = coordinate_frame('qwen2.5-vl', (self.width, self.height), self.resize)
        except ValueError:  # an aspect ratio no Qwen processor takes: not its boxes
            rw, rh = self.width, self.height
        bw = _AUTO_OVERSHOOT * max(self.width, rw)
        bh = _AUTO_OVERSHOOT * max(self.height, rh)
        beyond = any(cs[0] > bw or cs[2] > bw or cs[1] > bh or cs[3] > bh for cs in all_coords)
        if beyond and all(c <= 1000.0 for c in flat):
            return 'grid1000'
        return 'pixels'

    def reply(self, answer: str, raw: list[RawBox], structured: bool, over_cap: int
              ) -> LvlmReply:
        """Normalise raw boxes, counting each one that is dropped and why."""
        yx = self.box_format in _YX_FORMATS
        reasons: dict[str, int] = {}

        def drop(reason: str, n: int = 1) -> None:
            if n:
                reasons[reason] = reasons.get(reason, 0) + n

        parsed = []
        for label, c, score in raw:
            cs = _coords(c, yx)
            if cs is None:
                drop('invalid')
            else:
                parsed.append((label, cs, score))
        fmt = self.resolve([cs for _, cs, _ in parsed])
        sx, sy = coordinate_frame(fmt, (self.width, self.height), self.resize)
        boxes: list[Box] = []
        for label, (x1, y1, x2, y2), score in parsed:
            s = _to_float(score)
            s = 1.0 if s is None else min(1.0, max(0.0, s))
            if x1 == x2 or y1 == y2:
                drop('empty')  # zero area as written
                continue
            box = Box(x1 / sx, y1 / sy, x2 / sx, y2 / sy, label.strip(), s).clipped()
            if box.is_empty:
                drop('outside')  # nothing of it is on the image
                continue
            boxes.append(box)
        drop('over_cap', over_cap)
        found = len(raw) + over_cap
        return LvlmReply(answer=answer, boxes=boxes, structured=structured, boxes_found=found,
                         boxes_dropped=found - len(boxes), drop_reasons=reasons)
