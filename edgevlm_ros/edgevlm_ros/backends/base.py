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
* decodes greedily in ``greedy_decode``, which hands the answer so far to an ``on_token``
  callback after every token (streaming) and stops when it returns False (cancel), leaving the
  KV cache usable by the next call.

This is the interface: it imports no backend, no test double and no LVLM (they import it).
Backends are made from a model spec by the one model table, ``backends.registry.load_svlm``.
No torch and no onnxruntime here: the option parsing below is used by nodes before any model
runtime is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
import re
from typing import Any, Protocol

from edgevlm_ros.core.regions import Box

# Runtimes a model can run on. 'auto' picks per model and machine (see ``choose_backend``).
BACKENDS = ('auto', 'transformers', 'onnxruntime', 'openvino')
DEVICES_HELP = 'auto, cpu, cuda or cuda:N'
DTYPES = ('auto', 'float32', 'float16', 'bfloat16')
QUANTIZATIONS = ('none', 'int8', 'int4')

_DEVICE = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')

# Stages of one answer, in the order they run.
STAGES = ('preprocess', 'vision', 'prefill', 'decode')

# Words a BPE tokenizer keeps in its word cache. The tokenizers library's default is 10,000
# per tokenizer, filled by every new word of the history (new cloud answers, and a random-weight
# model's own answers): ~5 MB each, still filling 15 minutes into a soak (docs/robustness.md).
# 1,000 words fill in the first minute; a word not cached is split again, microseconds.
WORD_CACHE_WORDS = 1000


def bound_word_cache(tokenizer: Any, words: int = WORD_CACHE_WORDS) -> bool:
    """Cap a fast tokenizer's word cache at `words`; False when it has none to cap."""
    model = getattr(getattr(tokenizer, 'backend_tokenizer', None), 'model', None)
    resize = getattr(model, '_resize_cache', None)  # tokenizers >= 0.20, BPE and friends
    if resize is None:
        return False
    resize(words)
    return True


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


def providers_option(text: str) -> tuple[str, ...]:
    """A providers parameter as the backend keyword: 'auto' or '' -> () (runtime default)."""
    return () if text.strip().lower() in ('', 'auto') else parse_providers(text)


def check_providers(text: str) -> str | None:
    """A reason when a providers parameter names something other than execution providers."""
    bad = [p for p in providers_option(text) if not p.endswith('ExecutionProvider')]
    if bad:
        return ('providers must be auto or ONNX Runtime execution provider names '
                f"(CUDAExecutionProvider, CPUExecutionProvider, ...), got {', '.join(bad)}")
    return None


def parse_layers(text: str) -> list[int] | None:
    """Visual Focus decoder layers: 'all' -> None (every layer); '0,2,5' -> [0, 2, 5]."""
    text = text.strip().lower()
    if text in ('', 'all'):
        return None
    layers = [int(x) for x in text.split(',') if x.strip()]
    if any(x < 0 for x in layers):
        raise ValueError('layer indices must be >= 0')
    return layers


def check_layers(text: str) -> str | None:
    """A reason when a focus.layers parameter is not "all" or layer indices."""
    try:
        parse_layers(text)
    except ValueError as e:
        return f'focus.layers must be "all" or comma-separated layer indices: {e}'
    return None


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
    stopped: bool = False      # on_token stopped it before eos or the cap (a cancelled answer)


class PartialText:
    """
    The answer so far, as an ``on_token`` callback sees it after each new token.

    ``text`` is decoded on demand, so a callback that streams every few tokens pays the
    detokeniser only then. Valid during the call: the ids go on growing after it.
    """

    __slots__ = ('_decode', '_ids')

    def __init__(self, ids: Sequence[int], decode: Callable[[Sequence[int]], str]) -> None:
        self._ids = ids
        self._decode = decode

    @property
    def tokens(self) -> int:
        return len(self._ids)

    @property
    def text(self) -> str:
        return self._decode(self._ids).strip()


# Called with the answer so far after every generated token; False stops generating (a cancel).
TokenCallback = Callable[[PartialText], bool]


def greedy_decode(logits: Any, feed: Callable[[int, int], Any], eos: Collection[int],
                  limit: int, decode: Callable[[Sequence[int]], str],
                  on_token: TokenCallback | None = None) -> tuple[list[int], bool]:
    """
    The greedy decode loop every backend runs: (generated ids, stopped by ``on_token``).

    ``logits`` are the prefill's last-position logits (a torch tensor or a numpy array);
    ``feed(token, n)`` feeds the n-th generated token and returns the next logits. Generation
    ends at an eos token, at ``limit`` tokens, or when ``on_token`` returns False; the last
    token is never fed, so a backend's KV cache holds the prompt and ``generated[:-1]`` however
    it ended, and the next call can reuse it.
    """
    generated: list[int] = []
    partial = PartialText(generated, decode)
    while True:
        token = int(logits.argmax())
        generated.append(token)
        finished = token in eos or len(generated) >= limit
        if on_token is not None and not on_token(partial) and not finished:
            return generated, True
        if finished:
            return generated, False
        logits = feed(token, len(generated))


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


class BackendSettings:
    """
    The two settings every backend shares, checked the same way.

    ``max_new_tokens`` is >= 1; ``focus_layers`` is None (every decoder layer) or indices that
    must exist when ``_num_layers`` is known.

    A backend sets ``_num_layers`` before assigning ``focus_layers`` (None where it has no layers)
    and may extend ``_check_focus_layers`` with rules of its own.
    """

    _num_layers: int | None = None

    @property
    def max_new_tokens(self) -> int:
        """Cap on generated tokens per answer (>= 1)."""
        return self._max_new_tokens

    @max_new_tokens.setter
    def max_new_tokens(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f'max_new_tokens must be an int >= 1, got {value!r}')
        self._max_new_tokens = value

    @property
    def focus_layers(self) -> tuple[int, ...] | None:
        """Decoder layers that get the Visual Focus bias (None = all)."""
        return self._focus_layers

    @focus_layers.setter
    def focus_layers(self, layers: Sequence[int] | None) -> None:
        if layers is not None:
            layers = tuple(int(i) for i in layers)
            self._check_focus_layers(layers)
        self._focus_layers = layers

    def _check_focus_layers(self, layers: tuple[int, ...]) -> None:
        if self._num_layers is None:
            if any(i < 0 for i in layers):
                raise ValueError(f'focus layers must be >= 0, got {list(layers)}')
            return
        bad = [i for i in layers if not 0 <= i < self._num_layers]
        if bad:
            raise ValueError(f'focus layers {bad} out of range: the model has '
                             f'{self._num_layers} decoder layers')


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
               history_sources: Sequence[bool] | None = None,
               on_token: TokenCallback | None = None) -> SvlmResult: ...


# Architectures the ONNX backends export and run (SmolVLM-256M/500M are Idefics3 checkpoints).
ONNX_MODEL_TYPES = ('idefics3', 'smolvlm')


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _model_type(spec: str) -> str | None:
    """model_type of the checkpoint or ONNX folder ``spec`` names (None if unreadable)."""
    import json
    from pathlib import Path

    from edgevlm_ros.models.registry import resolve_model

    try:
        path = Path(resolve_model(spec)).expanduser()
        return json.loads((path / 'config.json').read_text()).get('model_type')
    except (OSError, ValueError, AttributeError):
        return None


# Checkpoints with less weight than this run fastest on transformers with KV reuse: the ONNX
# runtimes' fixed costs per call outweigh what they save. Measured on a 2-core x86 CPU
# (bench/edge_speed.py): the micro SVLM (11 MB) 46 ms on transformers against 76-91 ms on the
# ONNX paths; SmolVLM-256M (1 GB) 3.1 s against 1.1 s on OpenVINO int8. Between the two the
# crossover was not measured.
SMALL_CHECKPOINT_BYTES = 100 * 1024 * 1024


def _checkpoint_bytes(spec: str) -> int | None:
    """Bytes of the torch weights of checkpoint ``spec`` (None: no checkpoint, e.g. ONNX only)."""
    from pathlib import Path

    from edgevlm_ros.models.registry import resolve_model

    try:
        path = Path(resolve_model(spec)).expanduser()
        files = list(path.glob('*.safetensors')) + list(path.glob('*.bin'))
        return sum(f.stat().st_size for f in files) if files else None
    except (OSError, ValueError):
        return None


def choose_backend(spec: str, device: str = 'auto') -> tuple[str, str]:
    """
    (backend, why) that ``backend='auto'`` picks for ``spec`` on this machine.

    SmolVLM / Idefics3 on an x86 CPU: OpenVINO when installed (its static int8 vision encoder
    and ONNX Runtime's int8 decoder measured the fastest edge step on this CPU kind,
    docs/edge-backends.md), else ONNX Runtime; but transformers for checkpoints under
    SMALL_CHECKPOINT_BYTES, other architectures, CUDA devices, other CPUs or no ONNX runtime.
    """
    import platform

    device = (device or 'auto').strip().lower()
    model_type = _model_type(spec)
    if model_type not in ONNX_MODEL_TYPES:
        return 'transformers', f'{model_type or "unknown"} architecture: only transformers runs it'
    size = _checkpoint_bytes(spec)
    if size is not None and size < SMALL_CHECKPOINT_BYTES:
        return 'transformers', (f'a small checkpoint ({size / 2**20:.0f} MB of weights): '
                                'transformers with KV reuse is the fastest for those')
    if device.startswith('cuda'):
        return 'transformers', f'device {device}'
    if device == 'auto' and _installed('torch'):
        import torch

        if torch.cuda.is_available():
            return 'transformers', 'a CUDA device is available'
    if platform.machine().lower() not in ('x86_64', 'amd64'):
        return 'transformers', f'{platform.machine()} CPU (the ONNX paths were measured on x86)'
    from edgevlm_ros.backends.cpu import read_cpu

    kind = read_cpu().kind
    if _installed('openvino') and _installed('onnx'):
        return 'openvino', (f'{model_type} on an x86 CPU of kind {kind}, OpenVINO installed '
                            '(fastest measured on both kinds measured, amx and avx512_vnni)')
    if _installed('onnxruntime') and _installed('onnx'):
        return 'onnxruntime', f'{model_type} on an x86 CPU of kind {kind}, ONNX Runtime installed'
    return 'transformers', 'neither openvino nor onnxruntime is installed'
