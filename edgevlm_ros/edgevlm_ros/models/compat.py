# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Image-only VLM processors: load a processor without its video processor (no torchvision).

Why: since transformers 5.4 the Qwen2-VL, Qwen2.5-VL and SmolVLM (``model_type=smolvlm``)
processors declare a ``video_processor`` sub-processor, and every video processor needs
torchvision. This project does not install torchvision (the only torch/torchvision pair that
imports on its machines is a 5.5 GB CUDA build), so ``AutoProcessor.from_pretrained`` fails on
those checkpoints although answering about images needs no video code at all.

``image_only(cls)`` returns a subclass of the processor class ``cls`` that

* does not list ``video_processor`` among its sub-processors, so nothing loads, type-checks or
  saves one;
* keeps ``cls.__init__`` unchanged: ``from_pretrained`` reads the constructor's parameter names to
  decide which saved settings (``image_seq_len`` ...) reach it, so a wrapper with ``*args`` would
  silently drop them; the missing video processor is passed positionally as ``None`` instead;
* answers video input and reads of the video processor's settings through ``NoVideoProcessor``
  (settings some processors read even for images; video input is a clear error);
* carries the name of ``cls``, so what it saves names the real class and loads anywhere.

``load_processor(path)`` tries ``AutoProcessor`` first and falls back to the image-only class
named by the checkpoint's ``processor_class``.
"""

from __future__ import annotations

import functools
import inspect
import json
from typing import Any

import transformers
from transformers import AutoProcessor
from transformers.processing_utils import ProcessorMixin

_VIDEO = 'video_processor'
# Files of a checkpoint that may name its processor class, in the order transformers writes them.
_CLASS_FILES = ('processor_config.json', 'preprocessor_config.json', 'tokenizer_config.json')


class NoVideoProcessor:
    """Stands in for the video processor of an image-only processor."""

    # Read by SmolVLMProcessor.apply_chat_template for every chat (its video defaults).
    num_frames = 64
    fps = 1
    valid_kwargs = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError('this processor was loaded image-only (torchvision is not installed): '
                         'it cannot process video')

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f'image-only processor: the video processor setting {name!r} '
                             'does not exist (torchvision is not installed)')

    def __repr__(self) -> str:
        return 'NoVideoProcessor()'


_NO_VIDEO = NoVideoProcessor()


def needs_video_processor(cls: type) -> bool:
    """Return True if the processor class ``cls`` declares a video sub-processor."""
    return isinstance(cls, type) and issubclass(cls, ProcessorMixin) and \
        _VIDEO in cls.get_attributes()


@functools.cache
def image_only(cls: type) -> type:
    """Return the image-only variant of processor class ``cls`` (``cls`` itself if it has none)."""
    if not needs_video_processor(cls):
        return cls
    # The position of video_processor among the constructor's positional parameters.
    positional = [name for name, p in inspect.signature(cls.__init__).parameters.items()
                  if p.kind is p.POSITIONAL_OR_KEYWORD][1:]
    video_index = positional.index(_VIDEO)

    class ImageOnly(cls):  # type: ignore[misc, valid-type]
        video_processor = _NO_VIDEO

        @classmethod
        def get_attributes(klass) -> list[str]:
            return [a for a in super().get_attributes() if a != _VIDEO]

        @classmethod
        def from_args_and_dict(klass, args: Any, processor_dict: dict[str, Any],
                               **kwargs: Any) -> Any:
            # ``args`` are the loaded sub-processors, in get_attributes() order: put the missing
            # video processor back in its constructor slot, and ignore any saved video settings.
            args = list(args)
            args.insert(video_index, None)
            processor_dict = {k: v for k, v in processor_dict.items() if k != _VIDEO}
            kwargs.pop(_VIDEO, None)
            return super().from_args_and_dict(args, processor_dict, **kwargs)

    ImageOnly.__name__ = cls.__name__
    ImageOnly.__qualname__ = cls.__qualname__
    ImageOnly.__doc__ = f'{cls.__name__} without a video processor (see edgevlm_ros compat).'
    return ImageOnly


def declared_processor_class(path: str) -> type | None:
    """Return the processor class a checkpoint names in its configs, or None if it names none."""
    from transformers.utils import cached_file

    for file_name in _CLASS_FILES:
        try:
            resolved = cached_file(path, file_name, _raise_exceptions_for_missing_entries=False,
                                   _raise_exceptions_for_connection_errors=False)
        except (OSError, ValueError):
            resolved = None
        if not resolved:
            continue
        try:
            with open(resolved, encoding='utf-8') as f:
                name = json.load(f).get('processor_class')
        except (OSError, ValueError, AttributeError):
            continue
        cls = getattr(transformers, name, None) if isinstance(name, str) else None
        if isinstance(cls, type) and issubclass(cls, ProcessorMixin):
            return cls
    return None


def load_processor(path: str, **kwargs: Any) -> Any:
    """
    Load the processor of checkpoint ``path`` (a directory or a cached hub id).

    ``AutoProcessor`` first; if it fails and the checkpoint's processor class declares a video
    processor, the image-only variant of that class. Raises OSError naming both failures when
    neither loads, and re-raises AutoProcessor's error unchanged when no fallback applies.
    """
    try:
        return AutoProcessor.from_pretrained(path, **kwargs)
    except Exception as auto_error:  # noqa: BLE001 - any loader failure may be the video one
        cls = declared_processor_class(path)
        if cls is None or not needs_video_processor(cls):
            raise
        try:
            return image_only(cls).from_pretrained(path, **kwargs)
        except Exception as e:  # noqa: BLE001
            raise OSError(f'AutoProcessor failed on {path!r} ({auto_error}) and so did the '
                          f'image-only {cls.__name__} ({e})') from e
