# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The text decoder of ``OnnxSvlm`` with its KV cache: the exported graph, or the fused one.

Both answer the same three calls, so the backend's prefill, decode loop and prefix reuse are
written once:

* ``keep(n)``: keep the keys/values of the first ``n`` positions (prefix reuse), drop the rest;
* ``run(embeds, bias, gate) -> logits``: append ``embeds`` [1, S, hidden] as the next S
  positions and return the last position's logits; ``bias`` is the prompt's Visual Focus row
  [1, prompt] (None: no focus), ``gate`` the per-layer switch of it;
* ``length``: how many positions the cache holds.

``ExportedDecoder`` runs the exported (or a published) graph: the past goes in as arrays and
the presents come back as new arrays, so every token copies the whole cache. ``FusedDecoder``
runs ``models/fused_decoder.py``'s graph on ONNX Runtime with one buffer per layer's keys and
values bound as both past and present (IO binding): GroupQueryAttention writes the new
positions in place and nothing is copied per token. Its buffer starts at
``FUSED_INITIAL_POSITIONS`` and doubles when a prompt needs more, up to the model's
``max_position_embeddings``: it never shrinks, so its size is that of the longest prompt seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgevlm_ros.models import onnx_export

# The fused decoder's first buffer: 512 positions (the edge's prompts are 170-650 tokens); it
# doubles on demand. 46 KB per position on SmolVLM-256M, 82 KB on SmolVLM-500M.
FUSED_INITIAL_POSITIONS = 512


def _bias_row(bias: np.ndarray | None, total: int) -> np.ndarray:
    """The Visual Focus bias over ``total`` key positions (0 past the prompt, and without it)."""
    row = np.zeros((1, total), dtype=np.float32)
    if bias is not None:
        n = min(total, bias.shape[1])
        row[:, :n] = bias[:, :n]
    return row


class ExportedDecoder:
    """The exported decoder graph (``_OrtGraph`` or ``_OvGraph``); the cache as arrays."""

    fused = False

    def __init__(self, graph: Any, layers: int, kv_heads: int, head_dim: int) -> None:
        self.graph = graph
        names = graph.inputs
        self.focus_supported = onnx_export.BIAS_INPUT in names
        self.bias_gate = onnx_export.BIAS_LAYERS_INPUT in names
        past = [n for n in names if n.startswith('past_key_values.')]
        if len(past) != 2 * layers:
            raise OSError(f'the decoder has {len(past)} past key/value inputs, the config '
                          f'says {layers} layers')
        known = {'inputs_embeds', 'attention_mask', 'position_ids', onnx_export.BIAS_INPUT,
                 onnx_export.BIAS_LAYERS_INPUT, *past}
        unknown = sorted(set(names) - known)
        if unknown:
            raise OSError(f'the decoder takes inputs this backend does not know: '
                          f'{", ".join(unknown)}')
        self._embeds_type = (np.float16 if names['inputs_embeds'][0] == 'tensor(float16)'
                             else np.float32)
        past_type = np.float16 if names[past[0]][0] == 'tensor(float16)' else np.float32
        self._empty = [np.zeros((1, kv_heads, 0, head_dim), dtype=past_type)
                       for _ in range(2 * layers)]
        self._layers = layers
        self._past = list(self._empty)

    @property
    def length(self) -> int:
        return int(self._past[0].shape[2])

    def keep(self, n: int) -> None:
        self._past = ([np.ascontiguousarray(p[:, :, :n]) for p in self._past] if n > 0
                      else list(self._empty))

    def run(self, embeds: np.ndarray, bias: np.ndarray | None, gate: np.ndarray) -> np.ndarray:
        start, s = self.length, embeds.shape[1]
        total = start + s
        feed: dict[str, np.ndarray] = {
            'inputs_embeds': embeds.astype(self._embeds_type),
            'attention_mask': np.ones((1, total), dtype=np.int64),
            'position_ids': np.arange(start, total, dtype=np.int64)[None],
        }
        if self.focus_supported:
            feed[onnx_export.BIAS_INPUT] = _bias_row(bias, total)
            if self.bias_gate:
                feed[onnx_export.BIAS_LAYERS_INPUT] = gate
        for i in range(self._layers):
            feed[f'past_key_values.{i}.key'] = self._past[2 * i]
            feed[f'past_key_values.{i}.value'] = self._past[2 * i + 1]
        out = self.graph.run({k: v for k, v in feed.items() if k in self.graph.inputs})
        self._past = [out[f'present.{i}.{kind}'] for i in range(self._layers)
                      for kind in ('key', 'value')]
        logits = out.get('logits')
        if logits is None:
            logits = next(iter(out.values()))
        return logits[0, -1].astype(np.float32)


class FusedDecoder:
    """``models/fused_decoder.py``'s graph in an ``_OrtGraph``; the cache bound in place."""

    fused = True
    focus_supported = True
    bias_gate = True

    def __init__(self, graph: Any, layers: int, kv_heads: int, head_dim: int,
                 max_positions: int) -> None:
        self.graph = graph
        self._session = graph.session
        self._shape = (layers, 2, 1, kv_heads, 0, head_dim)
        self._max_positions = max_positions
        vocab = next(o.shape[-1] for o in self._session.get_outputs() if o.name == 'logits')
        self._logits = np.zeros((1, 1, vocab), dtype=np.float32)
        self._cache = np.zeros(self._shape, dtype=np.float32)
        self.length = 0
        self._bind(min(FUSED_INITIAL_POSITIONS, max_positions))

    @property
    def capacity(self) -> int:
        return int(self._cache.shape[4])

    def _bind(self, capacity: int) -> None:
        """A buffer of ``capacity`` positions holding the current cache, bound past = present."""
        import onnxruntime as ort

        cache = np.zeros(self._shape[:4] + (capacity,) + self._shape[5:], dtype=np.float32)
        cache[:, :, :, :, :self.length] = self._cache[:, :, :, :, :self.length]
        self._cache = cache
        self._binding = self._session.io_binding()
        for i in range(self._shape[0]):
            for k, kind in enumerate(('key', 'value')):
                value = ort.OrtValue.ortvalue_from_numpy(self._cache[i, k])
                self._binding.bind_ortvalue_input(f'past_key_values.{i}.{kind}', value)
                self._binding.bind_ortvalue_output(f'present.{i}.{kind}', value)
        self._binding.bind_ortvalue_output('logits',
                                           ort.OrtValue.ortvalue_from_numpy(self._logits))

    def keep(self, n: int) -> None:
        self.length = max(0, min(n, self.length))

    def run(self, embeds: np.ndarray, bias: np.ndarray | None, gate: np.ndarray) -> np.ndarray:
        total = self.length + embeds.shape[1]
        if total > self._max_positions:
            raise ValueError(f"{total} positions exceed the model's {self._max_positions}")
        if total > self.capacity:
            self._bind(min(self._max_positions, max(total, 2 * self.capacity)))
        feed = {'inputs_embeds': np.ascontiguousarray(embeds, dtype=np.float32),
                onnx_export.BIAS_INPUT: _bias_row(bias, total),
                onnx_export.BIAS_LAYERS_INPUT: np.ascontiguousarray(gate, dtype=np.float32),
                'seqlens_k': np.array([total - 1], dtype=np.int32),
                'total_sequence_length': np.array(total, dtype=np.int32)}
        for name, value in feed.items():
            self._binding.bind_cpu_input(name, value)
        self._session.run_with_iobinding(self._binding)
        self.length = total
        return self._logits[0, -1].copy()
