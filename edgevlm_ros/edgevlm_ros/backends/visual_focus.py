# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Visual Focus: an additive attention-logit bias on the image tokens inside the cloud's boxes.

Why one module of 495 lines: the attention function that adds the bias and the per-architecture
token geometry that places it are two halves of one rule: ``focus_bias`` must give, position for
position, the keys the attention function biases, and test_models_architectures.py checks both
per architecture together.

The rule: while a bias is applied, every attention of the chosen decoder layers adds
``bias[b][k]`` to the logit of key position ``k`` (for every query and head). ``focus_bias`` sets
``bias = alpha * coverage / max(coverage)`` on image tokens, where coverage is the fraction of the
token's image cell that lies inside the union of the focus boxes, and 0 on every other position:
the token that holds most of the region gets the full alpha, the others in proportion. (Plain
``alpha * coverage`` starves regions smaller than a token: on a 6x6-token model a 50 px object in
a 640x480 frame covers at most ~30 % of one cell, so alpha 4 became a bias of ~1 and moved the
answer token's attention on the object from 8 % to 13 % of its image attention; scaled to the
best-covered token it reaches 66 %, see bench/visual_focus_effect.py.) Key positions
beyond the bias (tokens generated after the prompt, through the KV cache) get 0, so the bias stays
valid during ``generate``. Positions are absolute: a forward over the uncached part of a prompt
whose prefix comes from a kept KV cache gets a mask over all its keys (cached ones first), so the
bias still lands on the image tokens; it is 0 on text positions, so cached prefix keys/values are
the same with or without it. The bias is added in the attention's own dtype (float32, float16 or
bfloat16) to a float mask whose masked entries are that dtype's minimum.

Mechanics: a custom attention function, ``edgevlm_visual_focus``, is registered with
transformers' ``AttentionInterface`` (and ``eager_mask`` as its mask builder, so the causal mask
is always a float tensor the bias can be added to). ``enable(model)`` switches only the language
model (``text_config``) to it; the vision tower keeps its own attention. Without a bias the
function is plain SDPA; when ``output_attentions=True`` it takes the eager path so attention
weights can be read. The bias lives in thread-local state, set only inside ``applied(...)``,
which always restores the previous state, so a bias can never leak into another call or thread.
The biased float mask is built once per forward (every decoder layer receives the same mask
object) and reused by the other layers; that cache is thread-local too, holds at most
``MASK_CACHE_SIZE`` masks and is emptied when ``applied`` exits.

Token geometry (``image_token_boxes``) is read from the real processor output (and checked, for
every architecture below, against the pixels each token actually sees: see
test/test_models_architectures.py):

* idefics3 / smolvlm: 64 tokens per tile (8x8, row-major) after the pixel shuffle; tiles are
  found from the ``<row_r_col_c>`` / ``<global-img>`` marker before each run of image tokens; the
  valid (unpadded) part of each tile comes from ``pixel_attention_mask``, so tokens over padding
  cover nothing (in transformers 5.23 the no-split frame is resized to a full square, i.e. it has
  no padding).
* qwen2_vl / qwen2_5_vl: merged tokens on the ``image_grid_thw`` grid / ``spatial_merge_size``.
* llava: an ``image_size / patch_size`` square grid per image (``pixel_values`` rows), after
  the class token when the feature select strategy ``full`` keeps it (CLIP towers); that token
  shows no region and gets an empty box. The square shows the part of the frame the image
  processor keeps (``shown_window``: SigLIP stretches the whole frame, CLIP crops its centre,
  pad-to-square adds bands that no box can focus).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
import math
import re
import threading
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask
from transformers.models.llama.modeling_llama import eager_attention_forward

from edgevlm_ros.core.regions import Box

ATTN_NAME = 'edgevlm_visual_focus'
# Coverage of the union of boxes is exact but costs O(tokens x boxes^2); more boxes than this keep
# the highest-scoring ones (a cloud answer relies on a handful of objects, not hundreds).
MAX_FOCUS_BOXES = 32

_ROW_COL = re.compile(r'^<row_(\d+)_col_(\d+)>$')


# Biased masks kept per thread while a bias is applied. Every decoder layer of one forward gets
# the same mask object, so the first layer builds the biased mask and the others reuse it; a few
# entries cover models that alternate mask kinds (sliding / full) between layers.
MASK_CACHE_SIZE = 4


class _FocusState(threading.local):
    def __init__(self) -> None:
        self.bias: torch.Tensor | None = None      # [B, L] additive logit bias on key positions
        self.layers: frozenset[int] | None = None  # None = every decoder layer
        # (source mask, bias, signature, biased mask); the references keep the ids unique.
        self.masks: list[tuple[Any, torch.Tensor, tuple, torch.Tensor]] = []


_STATE = _FocusState()


def _biased_mask(attention_mask: torch.Tensor | None, bias: torch.Tensor, query: torch.Tensor,
                 key: torch.Tensor) -> torch.Tensor:
    kv_len = attention_mask.shape[-1] if attention_mask is not None else key.shape[-2]
    full = torch.zeros(bias.shape[0], kv_len, dtype=query.dtype, device=query.device)
    n = min(kv_len, bias.shape[1])
    full[:, :n] = bias[:, :n].to(device=query.device, dtype=query.dtype)
    full = full[:, None, None, :]
    if attention_mask is None:
        # No mask means "causal" to SDPA; adding a bias must not silently drop causality.
        q_len = query.shape[-2]
        if q_len > 1:
            q_pos = torch.arange(kv_len - q_len, kv_len, device=query.device)[:, None]
            k_pos = torch.arange(kv_len, device=query.device)[None, :]
            causal = torch.zeros(q_len, kv_len, dtype=query.dtype, device=query.device)
            causal = causal.masked_fill(k_pos > q_pos, torch.finfo(query.dtype).min)
            attention_mask = causal[None, None]
        else:
            return full
    elif attention_mask.dtype == torch.bool:
        attention_mask = torch.zeros_like(attention_mask, dtype=query.dtype).masked_fill(
            ~attention_mask, torch.finfo(query.dtype).min)
    return attention_mask + full


def _version(tensor: torch.Tensor | None) -> int | None:
    if tensor is None:
        return None
    try:
        return tensor._version
    except RuntimeError:
        return -1  # an inference-mode tensor: no version counter (masks are never edited in place)


def _cached_biased_mask(attention_mask: torch.Tensor | None, bias: torch.Tensor,
                        query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    # The biased mask depends on the source mask (identity and in-place version), the bias, and
    # the query/key lengths, dtype and device: equal signatures give the same tensor.
    signature = (_version(attention_mask), query.shape[-2], key.shape[-2], query.dtype,
                 query.device)
    for source, cached_bias, cached_signature, biased in _STATE.masks:
        if source is attention_mask and cached_bias is bias and cached_signature == signature:
            return biased
    biased = _biased_mask(attention_mask, bias, query, key)
    _STATE.masks = [(attention_mask, bias, signature, biased)] + \
        _STATE.masks[:MASK_CACHE_SIZE - 1]
    return biased


def visual_focus_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                           value: torch.Tensor, attention_mask: torch.Tensor | None,
                           dropout: float = 0.0, scaling: float | None = None,
                           **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention with the thread-local Visual Focus bias added to the key logits."""
    bias = _STATE.bias
    layers = _STATE.layers
    if bias is not None and (layers is None or getattr(module, 'layer_idx', None) in layers):
        attention_mask = _cached_biased_mask(attention_mask, bias, query, key)
    if kwargs.get('output_attentions'):
        if scaling is None:
            scaling = query.shape[-1] ** -0.5
        return eager_attention_forward(module, query, key, value, attention_mask,
                                       scaling=scaling, dropout=dropout)
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                  scaling=scaling, **kwargs)


AttentionInterface.register(ATTN_NAME, visual_focus_attention)
AttentionMaskInterface.register(ATTN_NAME, eager_mask)


def enable(model: torch.nn.Module) -> torch.nn.Module:
    """Switch the model's language model (text_config only) to the Visual Focus attention."""
    config = getattr(model, 'config', None)
    if getattr(config, 'text_config', None) is None:
        raise ValueError(f'{type(model).__name__} has no text_config: not a supported VLM')
    model.set_attn_implementation({'text_config': ATTN_NAME})
    if model.config.text_config._attn_implementation != ATTN_NAME:
        raise RuntimeError(f'{type(model).__name__} refused the {ATTN_NAME} attention; it does '
                           'not use transformers AttentionInterface')
    return model


def is_enabled(model: torch.nn.Module) -> bool:
    """Return True if ``enable(model)`` is in effect."""
    text_config = getattr(getattr(model, 'config', None), 'text_config', None)
    return getattr(text_config, '_attn_implementation', None) == ATTN_NAME


@contextmanager
def applied(bias: torch.Tensor | None, layers: Iterable[int] | None = None) -> Iterator[None]:
    """
    Apply ``bias`` ([B, L] or [L]) to the chosen decoder layers (None = all) inside the block.

    The previous state (normally: no bias) is restored on exit, also when the block raises.
    """
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f'bias must be a torch.Tensor, got {type(bias).__name__}')
        if bias.dim() == 1:
            bias = bias[None]
        if bias.dim() != 2:
            raise ValueError(f'bias must have shape [B, L], got {tuple(bias.shape)}')
        if not torch.isfinite(bias).all():
            raise ValueError('bias must be finite')
    layer_set = None if layers is None else frozenset(int(i) for i in layers)
    previous = (_STATE.bias, _STATE.layers)
    _STATE.bias, _STATE.layers, _STATE.masks = bias, layer_set, []
    try:
        yield
    finally:
        # Cached masks belong to this block's bias: drop them (and the memory they hold).
        _STATE.bias, _STATE.layers = previous
        _STATE.masks = []


def current_bias() -> torch.Tensor | None:
    """Return the bias applied in this thread right now (None outside ``applied``)."""
    return _STATE.bias


# ------------------------------------------------------------------------------------ geometry


def _image_token_id(config: Any) -> int:
    for name in ('image_token_id', 'image_token_index'):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise ValueError(f'{config.model_type} config has no image token id')


def _first_row(inputs: Any, name: str) -> torch.Tensor:
    value = inputs[name]
    if value.shape[0] != 1:
        raise ValueError(f'Visual Focus geometry is per sample: {name} has batch size '
                         f'{value.shape[0]}, expected 1')
    return value[0]


def _grid_boxes(rows: int, cols: int, x0: float = 0.0, y0: float = 0.0, w: float = 1.0,
                h: float = 1.0) -> list[tuple[float, float, float, float]]:
    return [(x0 + w * j / cols, y0 + h * i / rows,
             x0 + w * (j + 1) / cols, y0 + h * (i + 1) / rows)
            for i in range(rows) for j in range(cols)]


def _runs(positions: torch.Tensor) -> list[tuple[int, int]]:
    """Split sorted positions into runs of consecutive positions: [(start, length)]."""
    if positions.numel() == 0:
        return []
    breaks = (torch.diff(positions) != 1).nonzero().flatten() + 1
    starts = [0] + breaks.tolist()
    ends = breaks.tolist() + [positions.numel()]
    return [(int(positions[s]), e - s) for s, e in zip(starts, ends)]


def _valid_extent(mask: torch.Tensor | None, height: int, width: int) -> tuple[int, int]:
    """Return (valid_h, valid_w) of a tile whose padding is at the bottom/right."""
    if mask is None:
        return height, width
    valid = mask.bool()
    valid_h = int(valid.any(dim=1).nonzero().max()) + 1 if valid.any() else 0
    valid_w = int(valid.any(dim=0).nonzero().max()) + 1 if valid.any() else 0
    return valid_h, valid_w


def _cell_edges(side: int, tile_px: int, valid_px: int) -> list[float]:
    """
    Edges of a tile's `side` cells along one axis, as fractions of the tile's valid part.

    Clipped at 1: a cell over padding becomes an empty box (it shows no part of the image).
    """
    if not valid_px:
        return [1.0] * (side + 1)
    return [min(k * tile_px / side / valid_px, 1.0) for k in range(side + 1)]


def _idefics3_boxes(model: Any, inputs: Any, tokenizer: Any,
                    positions: torch.Tensor) -> list[tuple[float, float, float, float]]:
    cfg = model.config
    side = (cfg.vision_config.image_size // cfg.vision_config.patch_size) // cfg.scale_factor
    per_tile = side * side
    ids = _first_row(inputs, 'input_ids')
    pixel_values = inputs.get('pixel_values')
    tile_h, tile_w = (int(pixel_values.shape[-2]), int(pixel_values.shape[-1])) \
        if pixel_values is not None else (cfg.vision_config.image_size,) * 2
    masks = inputs.get('pixel_attention_mask')
    masks = _first_row(inputs, 'pixel_attention_mask') if masks is not None else None

    # (row, col) of each tile, None for the global/single tile that closes an image.
    tiles: list[tuple[int, int] | None] = []
    for start, length in _runs(positions):
        if length != per_tile:
            raise ValueError(f'image token run of {length} tokens at {start}, expected '
                             f'{per_tile} per tile: processor and model disagree')
        marker = tokenizer.convert_ids_to_tokens(int(ids[start - 1])) if start > 0 else ''
        match = _ROW_COL.match(marker or '')
        tiles.append((int(match.group(1)), int(match.group(2))) if match else None)

    boxes: list[tuple[float, float, float, float]] = []
    image_tiles: list[tuple[int, tuple[int, int] | None]] = []
    for index, tile in enumerate(tiles):
        image_tiles.append((index, tile))
        if tile is not None:
            continue
        # A global tile closes one image: its grid is the largest row/col seen.
        n_rows = max((t[0] for _, t in image_tiles if t is not None), default=1)
        n_cols = max((t[1] for _, t in image_tiles if t is not None), default=1)
        for k, rc in image_tiles:
            r, c = (rc[0] - 1, rc[1] - 1) if rc is not None else (0, 0)
            rows, cols = (n_rows, n_cols) if rc is not None else (1, 1)
            mask = masks[k] if masks is not None and k < masks.shape[0] else None
            valid_h, valid_w = _valid_extent(mask, tile_h, tile_w)
            ys, xs = _cell_edges(side, tile_h, valid_h), _cell_edges(side, tile_w, valid_w)
            boxes.extend(((c + xs[j]) / cols, (r + ys[i]) / rows, (c + xs[j + 1]) / cols,
                          (r + ys[i + 1]) / rows) for i in range(side) for j in range(side))
        image_tiles = []
    if image_tiles:
        raise ValueError('image tokens after the last <global-img> tile: unknown Idefics3 layout')
    return boxes


def _qwen_boxes(model: Any, inputs: Any) -> list[tuple[float, float, float, float]]:
    grid = inputs.get('image_grid_thw')
    if grid is None:
        raise ValueError('qwen2-vl inputs have no image_grid_thw')
    merge = int(model.config.vision_config.spatial_merge_size)
    boxes: list[tuple[float, float, float, float]] = []
    for t, h, w in grid.tolist():
        # Merged tokens lie row-major on the (h/merge) x (w/merge) grid, once per temporal slice.
        boxes.extend(_grid_boxes(h // merge, w // merge) * int(t))
    return boxes


def _size_entry(size: Any, key: str) -> float | None:
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return float(value) if value else None


def shown_window(image_processor: Any, height: int,
                 width: int) -> tuple[float, float, float, float]:
    """
    Return the part (x0, y0, x1, y1) of a height x width frame that a LLaVA-style square shows.

    Fractions of the frame; beyond [0, 1] where the square shows padding. Follows the image
    processor's steps: ``do_pad`` pads the frame to a centred square, ``size`` resizes
    (``shortest_edge`` keeps the aspect ratio, ``height``/``width`` stretch), and
    ``do_center_crop`` keeps the centred ``crop_size``. A processor with none of these (SigLIP's
    plain resize) shows the whole frame.
    """
    x0, y0, x1, y1 = 0.0, 0.0, 1.0, 1.0
    h, w = float(height), float(width)
    if getattr(image_processor, 'do_pad', False) and h != w:
        side = max(h, w)
        x0, x1 = (w - side) / 2 / w, (w + side) / 2 / w
        y0, y1 = (h - side) / 2 / h, (h + side) / 2 / h
        h = w = side
    size = getattr(image_processor, 'size', None) or {}
    if getattr(image_processor, 'do_resize', True) and size:
        shortest = _size_entry(size, 'shortest_edge')
        if shortest:
            scale = shortest / min(h, w)
            h, w = h * scale, w * scale
        elif _size_entry(size, 'height') and _size_entry(size, 'width'):
            h, w = _size_entry(size, 'height'), _size_entry(size, 'width')
    crop = getattr(image_processor, 'crop_size', None) or {}
    if getattr(image_processor, 'do_center_crop', False) and crop:
        crop_h, crop_w = _size_entry(crop, 'height') or h, _size_entry(crop, 'width') or w
        # The centred crop as fractions of what it is cut from, mapped into the frame window.
        cx0, cx1 = (w - crop_w) / 2 / w, (w + crop_w) / 2 / w
        cy0, cy1 = (h - crop_h) / 2 / h, (h + crop_h) / 2 / h
        x0, x1 = x0 + cx0 * (x1 - x0), x0 + cx1 * (x1 - x0)
        y0, y1 = y0 + cy0 * (y1 - y0), y0 + cy1 * (y1 - y0)
    return x0, y0, x1, y1


def _llava_boxes(model: Any, inputs: Any, n_tokens: int, image_processor: Any,
                 image_size: tuple[int, int] | None) -> list[tuple[float, float, float, float]]:
    vision = model.config.vision_config
    side = vision.image_size // vision.patch_size
    per_image = side * side
    pixel_values = inputs.get('pixel_values')
    n_images = int(pixel_values.shape[0]) if pixel_values is not None else 1
    tokens_per_image = n_tokens // n_images if n_images else 0
    # Strategy 'full' on a tower with a class token (CLIP) keeps that token, first in each image:
    # it summarises the whole image and shows no region of it, so it gets an empty box.
    prefix = tokens_per_image - per_image
    if n_images * tokens_per_image != n_tokens or prefix not in (0, 1):
        raise ValueError(f'{n_tokens} llava image tokens for {n_images} image(s) do not match a '
                         f'{side}x{side} grid: only single-resolution llava layouts are supported')
    window = (0.0, 0.0, 1.0, 1.0)
    if image_processor is not None:
        window = shown_window(image_processor, *(image_size or (1, 1)))
        if image_size is None and window != shown_window(image_processor, 1, 2):
            raise ValueError('this llava processor crops or pads non-square frames: the token '
                             'geometry needs the frame size (image_size)')
    x0, y0, x1, y1 = window
    cells = []
    for cx0, cy0, cx1, cy1 in _grid_boxes(side, side):
        # The cell in frame fractions, clipped to the frame: a cell over padding shows nothing.
        # Rounded so a cell that ends exactly at the frame's edge is exactly empty.
        bx0, bx1 = (round(min(max(x0 + c * (x1 - x0), 0.0), 1.0), 9) for c in (cx0, cx1))
        by0, by1 = (round(min(max(y0 + c * (y1 - y0), 0.0), 1.0), 9) for c in (cy0, cy1))
        cells.append((bx0, by0, bx1, by1))
    return ([(0.0, 0.0, 0.0, 0.0)] * prefix + cells) * n_images


def image_token_boxes(model: Any, inputs: Any, tokenizer: Any,
                      image_size: tuple[int, int] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Return (positions LongTensor[N], boxes FloatTensor[N, 4]) of the image tokens of sample 0.

    Boxes are (x0, y0, x1, y1), normalised to the image each token belongs to; a token that shows
    only padding has an empty box. ``tokenizer`` may be the processor: its tokenizer is used, and
    for LLaVA its image processor tells which part of the frame the square input shows (CLIP's
    centre crop, pad-to-square); that needs ``image_size`` = (height, width) of the frame given to
    the processor. Raises ValueError for an unsupported model type, when the layout does not add
    up, or when a cropping/padding LLaVA processor comes without ``image_size``.
    """
    image_processor = getattr(tokenizer, 'image_processor', None)
    tokenizer = getattr(tokenizer, 'tokenizer', tokenizer)
    cfg = model.config
    ids = _first_row(inputs, 'input_ids')
    positions = (ids == _image_token_id(cfg)).nonzero().flatten()
    model_type = cfg.model_type
    if model_type in ('idefics3', 'smolvlm'):
        if tokenizer is None:
            raise ValueError('idefics3 geometry needs the tokenizer (tile markers)')
        boxes = _idefics3_boxes(model, inputs, tokenizer, positions)
    elif model_type in ('qwen2_vl', 'qwen2_5_vl'):
        boxes = _qwen_boxes(model, inputs)
    elif model_type == 'llava':
        boxes = _llava_boxes(model, inputs, positions.numel(), image_processor, image_size)
    else:
        raise ValueError(f'Visual Focus does not know the image token layout of {model_type!r}')
    if len(boxes) != positions.numel():
        raise ValueError(f'{positions.numel()} image tokens in the prompt but the {model_type} '
                         f'layout gives {len(boxes)}')
    return positions, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def _disjoint_cover(boxes: Sequence[Box]) -> torch.Tensor:
    """Return disjoint rectangles [M, 4] whose union is the union of ``boxes``."""
    xs = sorted({v for b in boxes for v in (b.x_min, b.x_max)})
    ys = sorted({v for b in boxes for v in (b.y_min, b.y_max)})
    rects = []
    for x0, x1 in zip(xs, xs[1:]):
        cx = 0.5 * (x0 + x1)
        for y0, y1 in zip(ys, ys[1:]):
            cy = 0.5 * (y0 + y1)
            if any(b.x_min <= cx <= b.x_max and b.y_min <= cy <= b.y_max for b in boxes):
                rects.append((x0, y0, x1, y1))
    return torch.tensor(rects, dtype=torch.float32).reshape(-1, 4)


def union_coverage(cells: torch.Tensor, boxes: Sequence[Box]) -> torch.Tensor:
    """Return, per cell [N, 4] as (x0, y0, x1, y1), the fraction of it inside the boxes' union."""
    usable = [b for b in (b.clipped() for b in boxes)
              if b.x_max > b.x_min and b.y_max > b.y_min]
    if len(usable) > MAX_FOCUS_BOXES:
        usable = sorted(usable, key=lambda b: b.score, reverse=True)[:MAX_FOCUS_BOXES]
    if not usable or cells.numel() == 0:
        return torch.zeros(cells.shape[0])
    rects = _disjoint_cover(usable)
    ix = (torch.minimum(cells[:, None, 2], rects[None, :, 2])
          - torch.maximum(cells[:, None, 0], rects[None, :, 0])).clamp(min=0)
    iy = (torch.minimum(cells[:, None, 3], rects[None, :, 3])
          - torch.maximum(cells[:, None, 1], rects[None, :, 1])).clamp(min=0)
    inter = (ix * iy).sum(dim=1)
    area = (cells[:, 2] - cells[:, 0]) * (cells[:, 3] - cells[:, 1])
    return torch.where(area > 0, inter / area.clamp(min=1e-12), torch.zeros_like(area)).clamp(0, 1)


def focus_bias(model: Any, inputs: Any, tokenizer: Any, boxes: Sequence[Box],
               alpha: float, image_size: tuple[int, int] | None = None
               ) -> tuple[torch.Tensor, int]:
    """
    Return (bias [1, L], n_focused): alpha x coverage / max coverage on image tokens, 0 elsewhere.

    ``n_focused`` counts image tokens with a non-zero bias. At most ``MAX_FOCUS_BOXES`` boxes are
    used (the highest-scoring ones). ``tokenizer`` and ``image_size`` as for
    ``image_token_boxes``.
    """
    if not math.isfinite(alpha):
        raise ValueError(f'alpha must be finite, got {alpha}')
    if not all(isinstance(b, Box) for b in boxes):
        raise TypeError('focus boxes must be edgevlm_ros.core.regions.Box instances')
    seq_len = int(inputs['input_ids'].shape[1])
    bias = torch.zeros(1, seq_len, dtype=torch.float32)
    if alpha == 0.0 or not boxes:
        return bias, 0
    positions, cells = image_token_boxes(model, inputs, tokenizer, image_size)
    coverage = union_coverage(cells, boxes)
    peak = float(coverage.max()) if coverage.numel() else 0.0
    if peak > 0:
        coverage = coverage / peak  # the region's best-covered token gets the full alpha
    bias[0, positions] = float(alpha) * coverage
    return bias, int((coverage > 0).sum())
