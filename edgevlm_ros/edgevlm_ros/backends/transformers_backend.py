# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The edge SVLM: a transformers image-text-to-text model answering a frame after a text history.

Why one module of 521 lines: it is one backend, ``TransformersSvlm``: loading, device and
precision, prompts, the greedy loop and the history KV reuse with each architecture's positions
are one model's state under one lock; split, the KV cache would be read and written from two
modules.

Rules this backend enforces:

* The model loads once, in the constructor (eval mode), through ``compat.load_processor``
  (``AutoProcessor``, or the image-only processor where ``AutoProcessor`` needs torchvision) and
  ``AutoModelForImageTextToText``: the offline models of ``tiny`` and real checkpoints
  (SmolVLM-256M/500M = Idefics3, Qwen2-VL, Qwen2.5-VL, LLaVA) take the same path.
* Device and precision are chosen once: ``device`` 'auto' (CUDA when torch has it, else the
  CPU), 'cpu', 'cuda' or 'cuda:N' (a device that is not there is one OSError line naming those
  that are); ``dtype`` 'auto' (float16 on CUDA, float32 on the CPU) or float32/float16/bfloat16.
  The CUDA path is the standard one (``model.to(device)``, inputs moved to it); it has not run
  on this project's machines. ``quantize='int8'`` replaces every ``nn.Linear`` by a dynamic int8
  one (``torch.ao.quantization.quantize_dynamic``): CPU and float32 only.
* Past turns are text only (user: question, assistant: answer); the current user turn carries the
  one image. So history costs prefill tokens, never vision-encoder time. The model's own chat
  template renders the conversation (``chat.chat_messages``); turns that hold cloud text are
  marked for templates that show it (the micro SVLM's) and look like any other turn to the rest.
* Decoding is greedy and capped at ``max_new_tokens``, whatever the checkpoint's generation
  defaults, by the backend's own loop (one prefill, then one token per forward through the KV
  cache, logits of the last position only). It gives the tokens ``model.generate`` gives with the
  same greedy settings (``reference_generate``; tested per architecture).
* History KV reuse (``kv_reuse``, default on): the KV cache of the previous call is kept with the
  token ids it holds (that prompt and the answer but its last token, so never more than one
  prompt + answer). The next call crops it to the longest common token prefix with its prompt,
  never past the first image token (the frame changes every step; the vision tower runs on every
  call), and prefills only the rest. Context Replacement in history slot j keeps the cache up to
  slot j; a history that slides (its oldest turn dropped) shares only the template's first tokens.
  The cache is dropped when a model call fails. Exact per architecture: Idefics3/SmolVLM and
  LLaVA take positions 0..L-1 and merge the image features into the uncached part by the image
  token ids; Qwen2-VL/2.5-VL get their M-RoPE positions for the whole prompt from the model's own
  ``get_rope_index`` (text row + 3 rotary rows, as ``generate`` builds them) and the uncached part
  is given its slice (the model would otherwise offset a cached call by the previous call's
  ``rope_deltas``). Any other model type gets a full prefill every call with the positions the
  model infers itself (``cached_tokens`` stays 0).
* ``SvlmResult.stages`` holds preprocess (processor, focus bias, copy to the device), vision
  (the vision tower's forward, timed by hooks; the connector/projector is in prefill), prefill
  and decode, in ms; ``cache_stats`` sums prompt and cached tokens over calls.
* Visual Focus is applied only when boxes and a positive alpha are given and at least one image
  token falls under a box; ``SvlmResult.focus_applied`` says whether it was. The bias sits on
  image positions only, so cached prefix keys/values never depend on it.
* Calls are serialised by a lock: one model, one answer at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
import copy
import inspect
import logging
import math
import os
import threading
import time
from typing import Any
import warnings

import numpy as np
from PIL import Image
import torch
from transformers import AutoModelForImageTextToText, GenerationConfig

from edgevlm_ros.backends import visual_focus
from edgevlm_ros.backends.base import (
    QUANTIZATIONS,
    BackendSettings,
    PrefixCacheStats,
    SvlmResult,
    TokenCallback,
    bound_word_cache,
    check_device,
    check_dtype,
    common_prefix_len,
    greedy_decode,
    parse_providers,
)
from edgevlm_ros.core.images import check_image
from edgevlm_ros.core.regions import Box
from edgevlm_ros.models.chat import chat_messages
from edgevlm_ros.models.compat import load_processor
from edgevlm_ros.models.registry import resolve_model

_LOG = logging.getLogger(__name__)

# Model types whose image-token geometry visual_focus knows.
FOCUS_MODEL_TYPES = frozenset({'idefics3', 'smolvlm', 'qwen2_vl', 'qwen2_5_vl', 'llava'})
# Model types whose positions this backend builds, so a cached prefix is exact (module docstring).
KV_REUSE_MODEL_TYPES = frozenset({'idefics3', 'smolvlm', 'qwen2_vl', 'qwen2_5_vl', 'llava'})
MROPE_MODEL_TYPES = frozenset({'qwen2_vl', 'qwen2_5_vl'})
# Where the vision tower sits inside ``model.model`` (Idefics3/SmolVLM, Qwen2-VL/2.5-VL, LLaVA).
_VISION_TOWERS = ('vision_model', 'visual', 'vision_tower')
# Inputs the prompt forward does not take as they come from the processor: the ids are sliced
# to the uncached part, the all-ones mask is implied, token types only serve position building.
_PROMPT_KEYS = ('input_ids', 'attention_mask', 'mm_token_type_ids')
_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


def _looks_like_path(spec: str) -> bool:
    # Hub ids are 'org/name'; anything rooted, relative-dotted or deeper is a local directory.
    return spec.startswith(('/', './', '../', '~')) or spec.count('/') > 1


def _validate_history(history: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    turns = []
    for i, turn in enumerate(history):
        if len(turn) != 2 or not all(isinstance(t, str) for t in turn):
            raise ValueError(f'history turn {i} must be a (question, answer) pair of str')
        turns.append((turn[0], turn[1]))
    return turns


def available_devices() -> list[str]:
    """Devices this torch can run on: 'cpu' and 'cuda:N' for every CUDA device it sees."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ['cpu'] + [f'cuda:{i}' for i in range(n)]


def resolve_device(device: str) -> torch.device:
    """
    The torch device for 'auto' / 'cpu' / 'cuda' / 'cuda:N'.

    Raises ValueError for a malformed name and OSError (one line, saying what is available)
    for a CUDA device this torch does not have.
    """
    reason = check_device(device)
    if reason:
        raise ValueError(reason)
    name = device.strip().lower()
    available = available_devices()
    if name == 'auto':
        return torch.device('cuda:0' if len(available) > 1 else 'cpu')
    if name == 'cpu':
        return torch.device('cpu')
    if len(available) == 1:
        raise OSError(f'device {device!r} requested but this torch has no CUDA device (torch '
                      f'{torch.__version__}); available: {", ".join(available)}')
    index = int(name.partition(':')[2] or 0)
    if f'cuda:{index}' not in available:
        raise OSError(f'device {device!r} requested but this machine has no CUDA device '
                      f'{index}; available: {", ".join(available)}')
    return torch.device('cuda', index)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The torch dtype for ``dtype``; 'auto' is float16 on CUDA and float32 on the CPU."""
    reason = check_dtype(dtype)
    if reason:
        raise ValueError(reason)
    if dtype == 'auto':
        return torch.float16 if device.type == 'cuda' else torch.float32
    return _DTYPES[dtype]


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """
    Replace every ``nn.Linear`` of ``model`` (in place) by a dynamic int8 one (CPU only).

    Weights are int8 per tensor, activations are quantized per call. torch marks
    ``torch.ao.quantization`` and its quantized tensor types deprecated (in favour of torchao)
    and warns on every load; those warnings are silenced here, and a torch without
    ``quantize_dynamic`` is one clear OSError.
    """
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as e:
        raise OSError(f"quantize='int8' needs torch.ao.quantization.quantize_dynamic, which "
                      f'torch {torch.__version__} does not have: {e}') from e
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='torch.quantize_per_tensor',
                                category=UserWarning)
        warnings.filterwarnings('ignore', message='torch.ao.quantization is deprecated',
                                category=DeprecationWarning)
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


class TransformersSvlm(BackendSettings):
    """An image-text-to-text model answering a frame + question with a text-only history."""

    def __init__(self, model: str, *, max_new_tokens: int = 24, image_longest_edge: int = 512,
                 do_image_splitting: bool = False, num_threads: int = 0,
                 focus_layers: Sequence[int] | None = None, device: str = 'auto',
                 dtype: str = 'auto', quantize: str = 'none',
                 providers: Sequence[str] | str = (), kv_reuse: bool = True) -> None:
        if not isinstance(image_longest_edge, int) or image_longest_edge < 16:
            raise ValueError(
                f'image_longest_edge must be an int >= 16, got {image_longest_edge!r}')
        if not isinstance(num_threads, int) or num_threads < 0:
            raise ValueError(f'num_threads must be an int >= 0, got {num_threads!r}')
        if quantize not in QUANTIZATIONS:
            raise ValueError(f'quantize must be one of {", ".join(QUANTIZATIONS)}, '
                             f'got {quantize!r}')
        if not isinstance(kv_reuse, bool):
            raise ValueError(f'kv_reuse must be True or False, got {kv_reuse!r}')
        # ONNX Runtime execution providers: accepted so one call makes any backend, unused here.
        self.providers = parse_providers(providers)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if quantize == 'int4':
            raise ValueError("quantize='int4' (a 4-bit MatMulNBits decoder) is for the "
                             "onnxruntime and openvino backends; use 'int8' or 'none' here")
        if quantize == 'int8':
            if self.device.type != 'cpu':
                raise ValueError(f"quantize='int8' (dynamic int8 Linear layers) runs on the CPU "
                                 f"only, not on {self.device}; use quantize='none' there")
            if self.dtype != torch.float32:
                raise ValueError(f"quantize='int8' needs dtype float32 (it replaces float32 "
                                 f'Linear layers), got {dtype!r}')
        self.quantize = quantize
        self.kv_reuse = kv_reuse
        self.name = model
        self.path = resolve_model(model)
        if _looks_like_path(self.path) and not os.path.isdir(os.path.expanduser(self.path)):
            raise FileNotFoundError(f'model directory {self.path!r} does not exist')
        self.path = os.path.expanduser(self.path)
        self.image_longest_edge = image_longest_edge
        self.do_image_splitting = bool(do_image_splitting)
        if num_threads > 0:
            torch.set_num_threads(num_threads)  # process-wide: torch has one intra-op pool

        try:
            self.processor = load_processor(self.path)
        except Exception as e:  # noqa: BLE001 - any loader failure becomes one clear error
            raise OSError(f'cannot load the processor of {self.path!r}: {e}. (Hub ids need a '
                          'populated HF cache offline.)') from e
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(
                self.path, dtype=self.dtype).eval()
        except Exception as e:  # noqa: BLE001
            raise OSError(f'cannot load the model of {self.path!r}: {e}') from e
        if self.device.type != 'cpu':
            self.model.to(self.device)
        self.tokenizer = getattr(self.processor, 'tokenizer', None)
        if self.tokenizer is None:
            raise OSError(f'the processor of {self.path!r} has no tokenizer')
        # A private copy for count_tokens: fast tokenizers must not be shared across threads
        # while the processor reconfigures padding/truncation inside answer().
        self._count_tokenizer = copy.deepcopy(self.tokenizer)
        self._count_lock = threading.Lock()
        bound_word_cache(self.tokenizer)
        bound_word_cache(self._count_tokenizer)

        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        pad = gen.pad_token_id if gen.pad_token_id is not None else self.tokenizer.pad_token_id
        if pad is None:
            pad = eos[0] if isinstance(eos, list) else eos
        # Greedy, whatever the checkpoint's sampling defaults; a fresh config per call carries
        # the token cap (transformers deprecates mixing a config with loose generate kwargs).
        self._generation_kwargs = dict(do_sample=False, num_beams=1, eos_token_id=eos,
                                       pad_token_id=pad, bos_token_id=gen.bos_token_id)
        self._eos = frozenset(eos if isinstance(eos, list) else [] if eos is None else [eos])
        image_processor = getattr(self.processor, 'image_processor', None)
        # Idefics3/SmolVLM tile the image; other processors get a frame no larger than the cap.
        self._tiling = hasattr(image_processor, 'do_image_splitting')

        self.model_type = self.model.config.model_type
        self.focus_supported = False
        if self.model_type in FOCUS_MODEL_TYPES:
            try:
                visual_focus.enable(self.model)
                self.focus_supported = True
            except (ValueError, RuntimeError) as e:
                _LOG.warning('Visual Focus disabled for %s: %s', self.name, e)
        else:
            _LOG.warning('Visual Focus disabled for %s: unknown image token layout of %r',
                         self.name, self.model_type)
        if quantize == 'int8':
            quantize_int8(self.model)
        text_config = getattr(self.model.config, 'text_config', self.model.config)
        self._num_layers = int(getattr(text_config, 'num_hidden_layers', 0))
        self._image_token_id = next(
            (v for v in (getattr(self.model.config, n, None)
                         for n in ('image_token_id', 'image_token_index')) if isinstance(v, int)),
            None)
        self._reuse_supported = self.model_type in KV_REUSE_MODEL_TYPES
        # Logits of the last position only, where the model's forward can be told so.
        self._last_logits = ({'logits_to_keep': 1} if 'logits_to_keep' in
                             inspect.signature(self.model.forward).parameters else {})
        if kv_reuse and not self._reuse_supported:
            _LOG.warning('KV reuse off for %s: positions of model type %r are not known here '
                         '(full prefill every call)', self.name, self.model_type)

        # The previous call's KV cache and the token ids it holds (kv_reuse only).
        self._cache: Any = None
        self._cache_ids: list[int] = []
        self.cache_stats = PrefixCacheStats()
        self._vision_s = 0.0
        self._vision_started: float | None = None
        self._hook_vision_tower()
        self._lock = threading.Lock()
        self.max_new_tokens = max_new_tokens
        self.focus_layers = focus_layers

    # ------------------------------------------------------------------------------ settings

    @property
    def cached_ids(self) -> tuple[int, ...]:
        """Token ids whose keys/values the kept KV cache holds (empty: no cache)."""
        return tuple(self._cache_ids)

    def clear_cache(self) -> None:
        """Drop the kept KV cache (the next call prefills its whole prompt)."""
        with self._lock:
            self._drop_cache()

    def _drop_cache(self) -> None:
        self._cache, self._cache_ids = None, []

    # ---------------------------------------------------------------------------------- text

    def render_prompt(self, question: str, history: Sequence[tuple[str, str]] = (),
                      history_sources: Sequence[bool] | None = None) -> str:
        """
        Return the chat-template prompt for ``question`` after ``history`` (one image slot).

        ``history_sources``: which history turns hold cloud text (None: none do).
        """
        if not isinstance(question, str) or not question.strip():
            raise ValueError('question must be a non-empty string')
        messages = chat_messages(question.strip(), _validate_history(history), history_sources)
        return self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                  tokenize=False)

    def count_tokens(self, text: str) -> int:
        """Return the number of tokens ``text`` costs in the prompt (no special tokens added)."""
        with self._count_lock:
            return len(self._count_tokenizer(text, add_special_tokens=False)['input_ids'])

    # -------------------------------------------------------------------------------- answer

    def build_inputs(self, image: np.ndarray, question: str,
                     history: Sequence[tuple[str, str]] = (),
                     history_sources: Sequence[bool] | None = None) -> tuple[Any, str]:
        """Return (model inputs, rendered prompt) for one frame, question and history (CPU)."""
        image = check_image(image, grey=False)  # HxWx3 uint8 RGB
        prompt = self.render_prompt(question, history, history_sources)
        pil = Image.fromarray(image)
        kwargs: dict[str, Any] = {}
        if self._tiling:
            kwargs['do_image_splitting'] = self.do_image_splitting
            kwargs['size'] = {'longest_edge': self.image_longest_edge}
        elif max(pil.size) > self.image_longest_edge:
            scale = self.image_longest_edge / max(pil.size)
            pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))),
                             Image.BILINEAR)
        inputs = self.processor(text=prompt, images=[pil], return_tensors='pt', **kwargs)
        return inputs, prompt

    def model_inputs(self, inputs: Any) -> dict[str, Any]:
        """Inputs on the model's device; floating ones (pixels) in the model's dtype."""
        moved = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, dtype=self.dtype if value.is_floating_point()
                                 else None)
            moved[key] = value
        return moved

    def reference_generate(self, inputs: Any, max_new_tokens: int) -> torch.Tensor:
        """
        Return the token ids [N] transformers' ``model.generate`` gives with these settings.

        Greedy, over the whole prompt, no kept cache: the path ``answer`` replaced, kept as the
        reference it is tested and measured against. A focus bias is the caller's to apply.
        """
        model_inputs = self.model_inputs(inputs)
        config = GenerationConfig(**self._generation_kwargs, max_new_tokens=max_new_tokens)
        with torch.inference_mode():
            out = self.model.generate(**model_inputs, generation_config=config)
        return out[0, model_inputs['input_ids'].shape[1]:].cpu()

    def answer(self, image: np.ndarray, question: str,
               history: Sequence[tuple[str, str]] = (), focus: Sequence[Box] = (),
               focus_alpha: float = 0.0, *, max_new_tokens: int | None = None,
               history_sources: Sequence[bool] | None = None,
               on_token: TokenCallback | None = None) -> SvlmResult:
        """
        Answer ``question`` about ``image`` after the text-only ``history``; greedy decoding.

        ``history_sources`` says which history turns hold cloud text (Context Replacement); the
        chat template shows it if it knows how (see ``chat``). ``on_token`` streams and stops
        the answer (``base.greedy_decode``).
        """
        if not math.isfinite(focus_alpha):
            raise ValueError(f'focus_alpha must be finite, got {focus_alpha}')
        limit = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f'max_new_tokens must be an int >= 1, got {limit!r}')
        with self._lock:
            t0 = time.perf_counter()
            inputs, prompt = self.build_inputs(image, question, history, history_sources)
            prompt_len = int(inputs['input_ids'].shape[1])
            bias, focused = None, 0
            if focus and focus_alpha > 0 and self.focus_supported:
                # The processor and frame size: LLaVA processors may crop or pad the frame.
                bias, focused = visual_focus.focus_bias(
                    self.model, inputs, self.processor, list(focus), focus_alpha,
                    image_size=(int(image.shape[0]), int(image.shape[1])))
                if focused == 0:
                    bias = None
            try:
                with torch.inference_mode(), visual_focus.applied(bias, self.focus_layers):
                    generated, cached, stages, stopped = self._greedy(inputs, limit, t0,
                                                                      on_token)
            except BaseException:
                self._drop_cache()  # a failed call may have left the cache half updated
                raise
            t_decoded = time.perf_counter()
            text = self.tokenizer.decode(generated, skip_special_tokens=True).strip()
            model_ms = (time.perf_counter() - t0) * 1000.0
            stages['decode'] += (time.perf_counter() - t_decoded) * 1000.0
            self.cache_stats.add(prompt_len, cached)
        return SvlmResult(text=text, model_ms=model_ms, prompt_tokens=prompt_len,
                          focus_applied=bias is not None, focused_tokens=focused, prompt=prompt,
                          completion_tokens=len(generated), cached_tokens=cached, stages=stages,
                          stopped=stopped)

    # ------------------------------------------------------------------------ greedy decoding

    def _positions(self, inputs: Any, ids: torch.Tensor) -> torch.Tensor | None:
        """
        Position ids of the whole prompt as ``generate`` builds them, None if not known here.

        Llama-like text models: 0..L-1 [1, L]. Qwen2-VL/2.5-VL: the text row and the three
        M-RoPE rows of the model's ``get_rope_index`` [4, 1, L].
        """
        length = ids.shape[1]
        text = torch.arange(length, device=ids.device)[None]
        if not self._reuse_supported:
            return None
        if self.model_type not in MROPE_MODEL_TYPES:
            return text
        types = inputs.get('mm_token_type_ids')
        if types is None:  # processors before transformers 5 do not return them: 1 = image
            types = (ids == self._image_token_id).int()
        rotary, _ = self.model.model.get_rope_index(
            ids, mm_token_type_ids=types, image_grid_thw=inputs.get('image_grid_thw'))
        return torch.cat([text[None], rotary.to(ids.device)], dim=0)

    def _reusable_prefix(self, ids: list[int]) -> int:
        """Tokens of the kept cache that the new prompt ``ids`` can reuse."""
        if not (self.kv_reuse and self._reuse_supported) or self._cache is None:
            return 0
        limit = len(ids) - 1  # at least the last prompt token is fed: its logits start decoding
        if self._image_token_id is not None and self._image_token_id in ids:
            limit = min(limit, ids.index(self._image_token_id))  # a new frame every call
        return min(common_prefix_len(self._cache_ids, ids), limit)

    def _greedy(self, inputs: Any, limit: int, t0: float, on_token: TokenCallback | None
                ) -> tuple[list[int], int, dict[str, float], bool]:
        """Prefill what the kept cache lacks, decode greedily: (ids, cached, stages, stopped)."""
        model_inputs = self.model_inputs(inputs)
        ids = model_inputs['input_ids']
        id_list = ids[0].tolist()
        cached = self._reusable_prefix(id_list)
        cache, self._cache, held = self._cache, None, len(self._cache_ids)
        self._cache_ids = []
        if cached > 0 and held > cached:
            cache.crop(cached - held)  # negative: remove that many tokens from the end
        if cached == 0 or cache.get_seq_length() != cached:
            cache, cached = None, 0
        positions = self._positions(model_inputs, ids)
        if self._reuse_supported:
            extra = {k: v for k, v in model_inputs.items() if k not in _PROMPT_KEYS}
        else:  # a full prefill with everything the processor made, as generate() passes it
            extra = {k: v for k, v in model_inputs.items() if k != 'input_ids'}
        if positions is not None:
            extra['position_ids'] = positions[..., cached:]
        t_prefill = self._sync_time()
        stages = {'preprocess': (t_prefill - t0) * 1000.0}
        self._vision_s = 0.0
        out = self.model(input_ids=ids[:, cached:], past_key_values=cache, use_cache=True,
                         **self._last_logits, **extra)
        cache = out.past_key_values
        logits = out.logits[0, -1].float()
        t_decode = self._sync_time()
        stages['vision'] = self._vision_s * 1000.0
        stages['prefill'] = (t_decode - t_prefill - self._vision_s) * 1000.0
        one = torch.empty((1, 1), dtype=ids.dtype, device=ids.device)

        def feed(token: int, n: int) -> torch.Tensor:
            nonlocal cache
            one.fill_(token)
            step = {}
            if positions is not None:
                step['position_ids'] = positions[..., -1:] + n
            out = self.model(input_ids=one, past_key_values=cache, use_cache=True,
                             **self._last_logits, **step)
            cache = out.past_key_values
            return out.logits[0, -1].float()

        generated, stopped = greedy_decode(logits, feed, self._eos, limit, self._decode_ids,
                                           on_token)
        stages['decode'] = (self._sync_time() - t_decode) * 1000.0
        if self.kv_reuse and self._reuse_supported:
            # The cache holds the prompt and every generated token but the last (never fed).
            held_ids = id_list + generated[:-1]
            if cache.get_seq_length() == len(held_ids):
                self._cache, self._cache_ids = cache, held_ids
        return generated, cached, stages, stopped

    def _decode_ids(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ------------------------------------------------------------------------------- timing

    def _sync_time(self) -> float:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)  # kernels run asynchronously
        return time.perf_counter()

    def _hook_vision_tower(self) -> None:
        inner = getattr(self.model, 'model', None)
        tower = next((getattr(inner, n) for n in _VISION_TOWERS
                      if isinstance(getattr(inner, n, None), torch.nn.Module)), None)
        if tower is None:
            return

        def started(*_: Any) -> None:
            self._vision_started = self._sync_time()

        def finished(*_: Any) -> None:
            if self._vision_started is not None:
                self._vision_s += self._sync_time() - self._vision_started
                self._vision_started = None

        tower.register_forward_pre_hook(started)
        tower.register_forward_hook(finished)
