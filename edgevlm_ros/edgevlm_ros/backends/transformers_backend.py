# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The edge SVLM: a transformers image-text-to-text model answering a frame after a text history.

Rules this backend enforces:

* The model loads once, in the constructor (fp32, eval mode), through ``compat.load_processor``
  (``AutoProcessor``, or the image-only processor where ``AutoProcessor`` needs torchvision) and
  ``AutoModelForImageTextToText``: the offline models of ``tiny`` and real checkpoints
  (SmolVLM-256M/500M = Idefics3, Qwen2-VL, Qwen2.5-VL, LLaVA) take the same path.
* Past turns are text only (user: question, assistant: answer); the current user turn carries the
  one image. So history costs prefill tokens, never vision-encoder time. The model's own chat
  template renders the conversation (``chat.chat_messages``); turns that hold cloud text are
  marked for templates that show it (the micro SVLM's) and look like any other turn to the rest.
* Decoding is greedy and capped at ``max_new_tokens``, whatever the checkpoint's generation
  defaults.
* Visual Focus is applied only when boxes and a positive alpha are given and at least one image
  token falls under a box; ``SvlmResult.focus_applied`` says whether it was.
* Calls are serialised by a lock: one model, one answer at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
import copy
import logging
import math
import os
import threading
import time
from typing import Any

import numpy as np
from PIL import Image
import torch
from transformers import AutoModelForImageTextToText, GenerationConfig

from edgevlm_ros.backends import visual_focus
from edgevlm_ros.backends.base import SvlmResult
from edgevlm_ros.core.images import check_image
from edgevlm_ros.core.regions import Box
from edgevlm_ros.models.chat import chat_messages
from edgevlm_ros.models.compat import load_processor
from edgevlm_ros.models.registry import resolve_model

_LOG = logging.getLogger(__name__)

# Model types whose image-token geometry visual_focus knows.
FOCUS_MODEL_TYPES = frozenset({'idefics3', 'smolvlm', 'qwen2_vl', 'qwen2_5_vl', 'llava'})


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


class TransformersSvlm:
    """An image-text-to-text model answering a frame + question with a text-only history."""

    def __init__(self, model: str, *, max_new_tokens: int = 24, image_longest_edge: int = 512,
                 do_image_splitting: bool = False, num_threads: int = 0,
                 focus_layers: Sequence[int] | None = None) -> None:
        if not isinstance(image_longest_edge, int) or image_longest_edge < 16:
            raise ValueError(
                f'image_longest_edge must be an int >= 16, got {image_longest_edge!r}')
        if not isinstance(num_threads, int) or num_threads < 0:
            raise ValueError(f'num_threads must be an int >= 0, got {num_threads!r}')
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
                self.path, dtype=torch.float32).eval()
        except Exception as e:  # noqa: BLE001
            raise OSError(f'cannot load the model of {self.path!r}: {e}') from e
        self.tokenizer = getattr(self.processor, 'tokenizer', None)
        if self.tokenizer is None:
            raise OSError(f'the processor of {self.path!r} has no tokenizer')
        # A private copy for count_tokens: fast tokenizers must not be shared across threads
        # while the processor reconfigures padding/truncation inside answer().
        self._count_tokenizer = copy.deepcopy(self.tokenizer)
        self._count_lock = threading.Lock()

        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        pad = gen.pad_token_id if gen.pad_token_id is not None else self.tokenizer.pad_token_id
        if pad is None:
            pad = eos[0] if isinstance(eos, list) else eos
        # Greedy, whatever the checkpoint's sampling defaults; a fresh config per call carries
        # the token cap (transformers deprecates mixing a config with loose generate kwargs).
        self._generation_kwargs = dict(do_sample=False, num_beams=1, eos_token_id=eos,
                                       pad_token_id=pad, bos_token_id=gen.bos_token_id)
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
        text_config = getattr(self.model.config, 'text_config', self.model.config)
        self._num_layers = int(getattr(text_config, 'num_hidden_layers', 0))
        self._lock = threading.Lock()
        self.max_new_tokens = max_new_tokens
        self.focus_layers = focus_layers

    # ------------------------------------------------------------------------------ settings

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
        if layers is None:
            self._focus_layers = None
            return
        layers = tuple(int(i) for i in layers)
        bad = [i for i in layers if not 0 <= i < self._num_layers]
        if bad:
            raise ValueError(f'focus layers {bad} out of range: the model has '
                             f'{self._num_layers} decoder layers')
        self._focus_layers = layers

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
        """Return (model inputs, rendered prompt) for one frame, question and history."""
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

    def answer(self, image: np.ndarray, question: str,
               history: Sequence[tuple[str, str]] = (), focus: Sequence[Box] = (),
               focus_alpha: float = 0.0, *, max_new_tokens: int | None = None,
               history_sources: Sequence[bool] | None = None) -> SvlmResult:
        """
        Answer ``question`` about ``image`` after the text-only ``history``; greedy decoding.

        ``history_sources`` says which history turns hold cloud text (Context Replacement); the
        chat template shows it if it knows how (see ``chat``).
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
            with torch.inference_mode(), visual_focus.applied(bias, self.focus_layers):
                config = GenerationConfig(**self._generation_kwargs, max_new_tokens=limit)
                out = self.model.generate(**inputs, generation_config=config)
            generated = out[0, prompt_len:]
            text = self.tokenizer.decode(generated, skip_special_tokens=True).strip()
            model_ms = (time.perf_counter() - t0) * 1000.0
        return SvlmResult(text=text, model_ms=model_ms, prompt_tokens=prompt_len,
                          focus_applied=bias is not None, focused_tokens=focused, prompt=prompt,
                          completion_tokens=int(generated.numel()))
