# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The edge backend interface: what the edge node and the embedded LVLM server call.

A backend answers one frame + question after a text-only history (one image per step), with
optional Visual Focus boxes, greedily and capped at ``max_new_tokens``. Every backend:

* loads once, in its constructor, and raises ``OSError``/``ValueError`` with one clear line when
  it cannot (a missing directory, a device that is not there, an option it does not take);
* renders the conversation with the model's own chat template (``models.chat.chat_messages``);
* keeps the KV cache of the longest unchanged token prefix of the prompt between calls, so a step
  pays the vision encoder, what changed in the history, the new turn and the answer
  (``SvlmResult.cached_tokens`` says how many prompt tokens came from the cache);
* reports what each stage cost (``SvlmResult.stages``: preprocess, vision, prefill, decode, in ms);
* says whether Visual Focus reached the model (``focus_applied``) and which ways it can
  (``focus_supported``: an attention bias; otherwise the node crops).

No torch and no onnxruntime here: the option parsing below is used by nodes before any model
runtime is imported, and ``load_svlm`` imports the runtime a spec asks for only when it is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import re
from typing import Any, Protocol

from edgevlm_ros.core.regions import Box

# Runtimes a model can run on. 'auto' picks per model and machine (see ``choose_backend``).
BACKENDS = ('auto', 'transformers', 'onnxruntime', 'openvino')
DEVICES_HELP = 'auto, cpu, cuda or cuda:N'
DTYPES = ('auto', 'float32', 'float16', 'bfloat16')
QUANTIZATIONS = ('none', 'int8')

_DEVICE = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')

# Stages of one answer, in the order they run.
STAGES = ('preprocess', 'vision', 'prefill', 'decode')


def check_device(device: str) -> str | None:
    """A reason when ``device`` is not auto/cpu/cuda/cuda:N, else None."""
    if not isinstance(device, str) or not _DEVICE.match(device.strip().lower()):
        return f'device must be one of {DEVICES_HELP}, got {device!r}'
    return None


def check_dtype(dtype: str) -> str | None:
    """A reason when ``dtype`` is not one of ``DTYPES``, else None."""
    if dtype not in DTYPES:
        return f'dtype must be one of {", ".join(DTYPES)}, got {dtype!r}'
    return None


def parse_providers(text: str | Sequence[str]) -> tuple[str, ...]:
    """'CUDAExecutionProvider,CPUExecutionProvider' (or a list) -> a tuple; '' -> ()."""
    items = text.split(',') if isinstance(text, str) else list(text)
    return tuple(p.strip() for p in items if p.strip())


@dataclass
class SvlmResult:
    """One SVLM answer and what it cost."""

    text: str
    model_ms: float            # preprocessing + vision + prefill + decode + detokenise, wall
    prompt_tokens: int         # tokens of the expanded prompt (image tokens included)
    focus_applied: bool
    focused_tokens: int        # image tokens that got a non-zero bias
    prompt: str                # the rendered chat template (image placeholder not expanded)
    completion_tokens: int = 0
    cached_tokens: int = 0     # prompt tokens whose keys/values came from the previous call
    stages: dict[str, float] = field(default_factory=dict)  # STAGES -> ms (what a backend knows)


@dataclass
class PrefixCacheStats:
    """How much of the prompts the history KV cache served (for /diagnostics and the demo)."""

    calls: int = 0
    hits: int = 0              # calls that reused at least one cached token
    prompt_tokens: int = 0
    cached_tokens: int = 0

    def add(self, prompt_tokens: int, cached_tokens: int) -> None:
        self.calls += 1
        self.hits += cached_tokens > 0
        self.prompt_tokens += prompt_tokens
        self.cached_tokens += cached_tokens

    @property
    def token_hit_rate(self) -> float:
        """Fraction of all prompt tokens served from the cache (0 before the first call)."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token id sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class EdgeSvlm(Protocol):
    """What the edge node needs of a backend (transformers, ONNX Runtime, OpenVINO, doubles)."""

    name: str
    focus_supported: bool      # True: ``answer(focus=...)`` biases attention; False: crop instead
    max_new_tokens: int
    focus_layers: tuple[int, ...] | None
    cache_stats: PrefixCacheStats

    def count_tokens(self, text: str) -> int: ...

    def render_prompt(self, question: str, history: Sequence[tuple[str, str]] = (),
                      history_sources: Sequence[bool] | None = None) -> str: ...

    def answer(self, image: Any, question: str, history: Sequence[tuple[str, str]] = (),
               focus: Sequence[Box] = (), focus_alpha: float = 0.0, *,
               max_new_tokens: int | None = None,
               history_sources: Sequence[bool] | None = None) -> SvlmResult: ...


def load_svlm(spec: str, *, backend: str = 'transformers', **kwargs: Any) -> EdgeSvlm:
    """
    Make the edge SVLM named by ``spec`` on ``backend``.

    'scripted:<json>' is the scripted TEST DOUBLE whatever the backend. ``kwargs`` are the
    backend's keywords (``TransformersSvlm``'s: max_new_tokens, image_longest_edge,
    do_image_splitting, num_threads, focus_layers, device, dtype, quantize; the ONNX backends add
    providers); the test double accepts the same ones.
    """
    from edgevlm_ros.doubles.scripted import SCRIPTED_PREFIX, ScriptedSvlm

    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {", ".join(BACKENDS)}, got {backend!r}')
    if isinstance(spec, str) and spec.startswith(SCRIPTED_PREFIX):
        return ScriptedSvlm(spec, **kwargs)
    if backend in ('onnxruntime', 'openvino'):
        from edgevlm_ros.backends.onnx_backend import OnnxSvlm
        return OnnxSvlm(spec, runtime=backend, **kwargs)
    from edgevlm_ros.backends.transformers_backend import TransformersSvlm
    return TransformersSvlm(spec, **kwargs)
