# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The model table: every model spec the package takes, and the loader that makes it.

One table (``SPEC_TO_LOADER``, in the manner of yolo_ros's ``type_to_model``) is the only place
where a spec becomes a model; the edge node, the LVLM server, the evaluation and the benches all
load through it. Its rules:

1. A spec is looked up by prefix, in table order: 'scripted:' (TEST DOUBLE, edge or cloud),
   'oracle:' (TEST DOUBLE of the cloud LVLM), 'simulated:' (the simulated LVLM of the synthetic
   world, the demo's cloud); every other spec ('micro', 'tiny', 'tiny-cloud', a tiny kind,
   a checkpoint or ONNX directory, a hub id) is a model for a runtime. Names become directories
   in ``models.registry.resolve_model``, which the runtimes call.
2. The edge (``load_svlm``) takes the rows that can be an edge SVLM (``base.EdgeSvlm``); a
   cloud-only spec is refused with a reason before anything loads.
3. The LVLM server (``load_lvlm``) takes every row; its models run on transformers.
4. The runtimes, the doubles and the simulation are imported inside their loaders, when a spec
   asks for them: importing this module loads no torch, no onnxruntime and no OpenCV.

Direction: ``backends.base`` (the interface) <- the runtimes, the doubles, the LVLMs <- this
table. Nothing here is imported by what it loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import logging
from typing import Any

from edgevlm_ros.backends.base import BACKENDS, EdgeSvlm, check_device, check_dtype, choose_backend

_LOG = logging.getLogger(__name__)


def _model(spec: str, *, backend: str = 'transformers', **options: Any) -> EdgeSvlm:
    """A model on ``backend``; 'auto' picks one with ``choose_backend`` and logs which and why."""
    if backend == 'auto':
        backend, why = choose_backend(spec, options.get('device', 'auto'))
        _LOG.info('edge SVLM %s: backend auto -> %s (%s)', spec, backend, why)
    if backend in ('onnxruntime', 'openvino'):
        from edgevlm_ros.backends.onnx_backend import OnnxSvlm
        return OnnxSvlm(spec, runtime=backend, **options)
    from edgevlm_ros.backends.transformers_backend import (
        TransformersSvlm,  # torch loads here, not at import
    )
    return TransformersSvlm(spec, **options)


def _scripted(spec: str, *, backend: str = 'transformers', **options: Any) -> EdgeSvlm:
    # Any backend: the double takes (and checks for form) every backend's keywords.
    from edgevlm_ros.doubles.scripted import ScriptedSvlm
    return ScriptedSvlm(spec, **options)


def _oracle(spec: str, *, backend: str = 'transformers', max_new_tokens: int = 1024,
            num_threads: int = 0, device: str = 'auto', dtype: str = 'auto') -> Any:
    # num_threads, device, dtype: the LVLM server's keywords; it runs no model, so they are
    # checked for form (load_lvlm) and ignored.
    from edgevlm_ros.doubles.scripted import OracleLvlm
    return OracleLvlm(spec, max_new_tokens=max_new_tokens)


def _simulated(spec: str, *, backend: str = 'transformers', max_new_tokens: int = 1024,
               num_threads: int = 0, device: str = 'auto', dtype: str = 'auto') -> Any:
    # As _oracle: a simulation, no model to place.
    from edgevlm_ros.lvlm.simulated import SimulatedLvlm
    return SimulatedLvlm(spec, max_new_tokens=max_new_tokens)


@dataclass(frozen=True)
class ModelKind:
    """One row of the model table."""

    what: str                     # said in errors
    load: Callable[..., Any]      # load(spec, *, backend, **options)
    edge: bool                    # can be the edge SVLM; False: a cloud LVLM only


# Spec prefix -> how to make it. Looked up in this order; '' (every other spec) comes last.
SPEC_TO_LOADER: dict[str, ModelKind] = {
    'scripted:': ModelKind('the scripted TEST DOUBLE', _scripted, edge=True),
    'oracle:': ModelKind('the oracle TEST DOUBLE of the cloud LVLM', _oracle, edge=False),
    'simulated:': ModelKind('the simulated LVLM of the synthetic world', _simulated, edge=False),
    '': ModelKind("a model ('micro', 'tiny', 'tiny-cloud', a tiny kind, a checkpoint or ONNX "
                  'directory, a hub id)', _model, edge=True),
}


def model_kind(spec: str) -> ModelKind:
    """The row of ``SPEC_TO_LOADER`` that makes ``spec``; ValueError for no spec at all."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f'model spec must be a non-empty string, got {spec!r}')
    return next(kind for prefix, kind in SPEC_TO_LOADER.items() if spec.startswith(prefix))


def load_svlm(spec: str, *, backend: str = 'transformers', **options: Any) -> EdgeSvlm:
    """
    Make the edge SVLM named by ``spec`` on ``backend``.

    ``options`` are the backend's keywords (``TransformersSvlm``'s: max_new_tokens,
    image_longest_edge, do_image_splitting, num_threads, focus_layers, device, dtype, quantize,
    kv_reuse; the ONNX backends add providers); the scripted test double accepts the same ones
    whatever the backend. ``backend='auto'`` picks one with ``choose_backend`` and logs which and
    why.
    """
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {", ".join(BACKENDS)}, got {backend!r}')
    kind = model_kind(spec)
    if not kind.edge:
        raise ValueError(f'{spec!r} is {kind.what}: a cloud LVLM, not an edge model (serve it '
                         "with edgevlm_lvlm_server or the cloud bridge's embedded_model)")
    return kind.load(spec, backend=backend, **options)


def load_lvlm(spec: str, *, max_new_tokens: int, num_threads: int = 0, device: str = 'auto',
              dtype: str = 'auto') -> Any:
    """
    The LVLM server's model for ``spec``: a model, the simulated LVLM or a test double.

    ``num_threads`` > 0 sets torch's CPU threads (for the whole process) for a model; ``device``
    and ``dtype`` place it (``TransformersSvlm``: a CUDA device that is not there is an OSError).
    They are checked for form first whatever the spec; the doubles and the simulation ignore them.
    """
    for reason in (check_device(device), check_dtype(dtype)):
        if reason:
            raise ValueError(reason)
    return model_kind(spec).load(spec, backend='transformers', max_new_tokens=max_new_tokens,
                                 num_threads=num_threads, device=device, dtype=dtype)
