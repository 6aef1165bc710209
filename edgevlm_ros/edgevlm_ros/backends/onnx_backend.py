# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The edge SVLM on ONNX graphs: ONNX Runtime or OpenVINO, for SmolVLM / Idefics3 checkpoints.

Why one module of 720 lines: it is one backend whose two runtimes (ONNX Runtime, OpenVINO) run
the same graphs behind ``OnnxSvlm``: graph loading, the int8 and calibration choice per graph,
the decode loop and KV reuse share one set of sessions under one lock, and must agree with the
layout models/onnx_export.py writes. The decoder and its cache are ``backends/onnx_decoder.py``.

``OnnxSvlm(spec, runtime='onnxruntime'|'openvino', **keywords)`` answers like
``TransformersSvlm`` (same processor, chat template with ``history_sources``, text-only history,
greedy decoding capped at ``max_new_tokens``, Visual Focus as an attention bias) from three
graphs in ``spec``/onnx/ (``models/onnx_export.py`` for the layout):

* ``spec`` may be a folder with ``onnx/`` (our export, or a folder published beside a SmolVLM
  checkpoint) or a checkpoint without one (a model name or directory): that is exported once
  into ``$EDGEVLM_CACHE/onnx`` (default ``~/.cache/edgevlm_ros/onnx``), keyed by the checkpoint
  and ``quantize``, atomically, and logged.
* ``quantize='int8'`` takes the ``*_int8.onnx`` graphs (or a published ``_quantized`` /
  ``_uint8`` one). On OpenVINO the vision encoder is the fp32 graph statically quantized to int8
  by NNCF, weights and activations, calibrated on ``backends.calibration`` frames (faster there
  than the ORT-quantized graph or int8 weights alone; the quantized model is kept as OpenVINO
  IR beside the graphs, or in ``$EDGEVLM_CACHE/openvino`` when their folder is read-only, so
  this happens once), the rest of it at bf16 where the CPU has it; the
  embeddings and the decoder run the ``*_int8.onnx`` graphs on ONNX Runtime when it is
  installed (its int8 decoder steps measured 2x faster than OpenVINO's; ``graph_runtimes``
  says which runtime runs which graph), else NNCF-compressed on OpenVINO too.
* ``quantize='int4'`` is int8 with a 4-bit decoder (``decoder_model_merged_int4.onnx``, ONNX
  Runtime's MatMulNBits, or a published ``_q4`` one), which runs on ONNX Runtime under either
  runtime: 0.57x the decoder's weight bytes of int8; faster token steps, slower prefill
  (docs/edge-backends.md).
* The decoder (``fused_decoder=True``): the export's fused graph (models/fused_decoder.py) where
  ONNX Runtime's CPU provider runs the decoder and the folder has one (not int4), else the
  exported graph (``backends/onnx_decoder.py``; ``decoder.fused`` says which).
* KV reuse (``kv_reuse=True``): the keys/values of the previous call are kept with the token ids
  they hold; a call prefills only what follows the longest common token prefix
  (``SvlmResult.cached_tokens``, ``cache_stats``). Image tokens match only when the image and
  the focus bias are the same too (their keys depend on both), so a new frame reuses the text
  before its first image token: the history.
* Visual Focus needs a decoder with the ``attention_bias`` input (ours); a published graph has
  none, so ``focus_supported`` is False and the node crops instead.
* Providers (ONNX Runtime): ``providers`` names them in order; otherwise ``device`` picks
  (cpu -> CPUExecutionProvider, cuda[:N] -> CUDAExecutionProvider on device N, auto -> CUDA
  when the installed build has it). A provider the session could not use is logged once with
  the providers it runs on instead.
* Calls are serialised by a lock: one set of sessions, one answer at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import copy
import hashlib
import json
import logging
import math
import os
from pathlib import Path
import threading
import time
from typing import Any

import numpy as np
from PIL import Image

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
from edgevlm_ros.backends.onnx_decoder import ExportedDecoder, FusedDecoder
from edgevlm_ros.core.images import check_image
from edgevlm_ros.core.regions import Box
from edgevlm_ros.models import onnx_export
from edgevlm_ros.models.chat import chat_messages

_LOG = logging.getLogger(__name__)

RUNTIMES = ('onnxruntime', 'openvino')
ONNX_CACHE_DIR = 'onnx'
# The kept static-int8 IR; a new calibration recipe gets a new suffix, so old caches are redone.
STATIC_IR_SUFFIX = '_ov_int8_static1'
# Under $EDGEVLM_CACHE: the int8 models of graphs in read-only folders.
OV_CACHE_DIR = 'openvino'
# ONNX Runtime's worker threads busy-wait after every run unless told not to (allow_spinning):
# on a 2-core robot they burnt 28-56 ms of CPU in the 200 ms after a run, slowing the next
# preprocessing 2-3x and the graph's other nodes (bench/ort_spinning.py, docs/edge-backends.md).
ORT_SPINNING = False
_WARNED: set[str] = set()
_WARN_LOCK = threading.Lock()
_EXPORT_LOCK = threading.Lock()


def _warn_once(key: str, message: str, *args: Any) -> None:
    with _WARN_LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    _LOG.warning(message, *args)


def _validate_history(history: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    turns = []
    for i, turn in enumerate(history):
        if len(turn) != 2 or not all(isinstance(t, str) for t in turn):
            raise ValueError(f'history turn {i} must be a (question, answer) pair of str')
        turns.append((turn[0], turn[1]))
    return turns


def onnx_cache_root() -> Path:
    """Where checkpoints without onnx/ are exported: $EDGEVLM_CACHE/onnx or ~/.cache/..."""
    from edgevlm_ros.models.tiny import default_cache_dir

    return default_cache_dir() / ONNX_CACHE_DIR


def _kept_ir_paths(graph: Path, suffix: str) -> tuple[Path, Path]:
    """Where a graph's OpenVINO int8 model is kept: (beside it, in the cache).

    The cache ($EDGEVLM_CACHE/openvino) is for graphs in read-only folders; its names hold the
    graph's path, size and time, so a changed graph is never matched with an old model.
    """
    from edgevlm_ros.models.tiny import default_cache_dir

    beside = graph.with_name(graph.stem + suffix + '.xml')
    st = graph.stat()
    h = hashlib.sha256(f'{graph.resolve()}:{st.st_size}:{st.st_mtime_ns}'.encode())
    cached = default_cache_dir() / OV_CACHE_DIR / (
        f'{graph.stem}-{h.hexdigest()[:12]}{suffix}.xml')
    return beside, cached


def _checkpoint_key(path: Path, quantize: str) -> str:
    # The checkpoint's absolute path and its weight files' sizes and times: a rebuilt or
    # retrained checkpoint gets a new export.
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in sorted(path.glob('*.safetensors')) + sorted(path.glob('*.bin')):
        st = f.stat()
        h.update(f'{f.name}:{st.st_size}:{st.st_mtime_ns}'.encode())
    h.update(f'v{onnx_export.EXPORT_VERSION}'.encode())
    return f'{path.name}-{h.hexdigest()[:12]}-{quantize}'


def resolve_onnx_folder(spec: str, quantize: str = 'none', progress: bool = False) -> Path:
    """
    The folder with onnx/ graphs for ``spec``: the spec itself, or its export in the cache.

    Raises FileNotFoundError for a folder that does not exist, OSError for one that is neither
    an ONNX folder nor a checkpoint.
    """
    from edgevlm_ros.models.registry import resolve_model

    path = Path(resolve_model(spec)).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f'model directory {str(path)!r} does not exist')
    if (path / onnx_export.ONNX_DIR).is_dir():
        return path
    if not (path / 'config.json').is_file():
        raise OSError(f'{path} has neither onnx/ graphs nor a checkpoint (config.json)')
    target = onnx_cache_root() / _checkpoint_key(path, quantize)
    with _EXPORT_LOCK:
        if not (target / onnx_export.MARKER_FILE).is_file():
            _LOG.warning('%s has no ONNX graphs: exporting it to %s (quantize=%s), once',
                         path, target, quantize)
            onnx_export.export(str(path), target, quantize=quantize, progress=progress)
    return target


# ---------------------------------------------------------------------------------- runtimes


class _OrtGraph:
    """One ONNX Runtime session: ``run(feed) -> {output name: array}``."""

    runtime = 'onnxruntime'

    def __init__(self, path: Path, providers: list[Any], threads: int,
                 dynamic_shapes: bool = False) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if dynamic_shapes:
            # ONNX Runtime plans one memory block per input shape it sees and keeps it; the
            # text graphs see a new shape nearly every step (prompt and cache lengths). The
            # 256M decoder's RSS took a +17 MB step at its first long prefill with the plans,
            # +2 MB without, at the same speed (docs/robustness.md, "What the edge's steps are").
            options.enable_mem_pattern = False
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3  # our own line says which provider is used
        if not ORT_SPINNING:
            options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # noqa: BLE001 - a corrupt or unreadable graph: one clear line
            raise OSError(f'cannot load ONNX graph {path}: {str(e).splitlines()[0]}') from e
        self.inputs = {i.name: (i.type, i.shape) for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(self.outputs, feed)))


_OV_TYPES = {'f32': 'tensor(float)', 'f16': 'tensor(float16)', 'i64': 'tensor(int64)',
             'boolean': 'tensor(bool)', 'i32': 'tensor(int32)'}


def _port_name(port: Any) -> str:
    # A port can carry several tensor names (graph names and ones passes gave it): the ONNX
    # input/output name is the one without the exporter's '/node_output' form.
    names = sorted(port.get_names(), key=lambda n: (n.startswith('/'), len(n)))
    return names[0] if names else port.get_any_name()


class _OvGraph:
    """
    One OpenVINO compiled model on the CPU: ``run(feed) -> {output name: array}``.

    ``compress_int8``: int8 weights through NNCF (``nncf.compress_weights``); with
    ``calibration`` (a callable returning feeds), static int8 instead: weights and activations
    (``nncf.quantize``, transformer preset), which runs the matrix products on the CPU's int8
    units. Either way the result is kept as OpenVINO IR beside the graph, so it is made once.
    """

    runtime = 'openvino'

    def __init__(self, path: Path, threads: int, precision: str | None,
                 compress_int8: bool,
                 calibration: Callable[[], list[dict[str, np.ndarray]]] | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        model = None
        static = compress_int8 and calibration is not None
        beside, cached = _kept_ir_paths(path, STATIC_IR_SUFFIX if static else '_ov_int8')
        ir = beside
        # A kept compressed model counts only if it is newer than the graph it came from (the
        # cached one's name holds the graph's time).
        if compress_int8 and beside.is_file() and beside.stat().st_mtime >= path.stat().st_mtime:
            model = core.read_model(str(beside))
        elif compress_int8 and cached.is_file():
            model = core.read_model(str(cached))
        if model is None:
            try:
                model = core.read_model(str(path))
            except Exception as e:  # noqa: BLE001
                raise OSError(f'cannot load ONNX graph {path}: {str(e).splitlines()[0]}') from e
            if compress_int8:
                import nncf

                if static:
                    feeds = [_conform(f, model.inputs) for f in calibration()]
                    _LOG.warning('calibrating static int8 %s on %d frames (once: it is kept as '
                                 '%s)', path.name, len(feeds), ir.name)
                    model = nncf.quantize(model, nncf.Dataset(feeds), subset_size=len(feeds),
                                          model_type=nncf.ModelType.TRANSFORMER)
                else:
                    model = nncf.compress_weights(model,
                                                  mode=nncf.CompressWeightsMode.INT8_ASYM)
                for ir in (beside, cached):  # keep it: the next load skips the compression
                    try:
                        ir.parent.mkdir(parents=True, exist_ok=True)
                        tmp = ir.with_name(f'.{ir.stem}.{os.getpid()}.xml')
                        ov.save_model(model, str(tmp), compress_to_fp16=False)
                        tmp.with_suffix('.bin').replace(ir.with_suffix('.bin'))
                        tmp.replace(ir)
                        break
                    except (OSError, RuntimeError) as e:  # a read-only folder: the cache next
                        _LOG.info('OpenVINO int8 model of %s not kept at %s (%s)', path, ir, e)
        self.static_int8 = static
        config: dict[str, Any] = {'PERFORMANCE_HINT': 'LATENCY'}
        if threads > 0:
            config['INFERENCE_NUM_THREADS'] = threads
        if precision:
            config['INFERENCE_PRECISION_HINT'] = precision
        try:
            self.compiled = core.compile_model(model, 'CPU', config)
        except Exception as e:  # noqa: BLE001
            raise OSError(f'OpenVINO cannot compile {path}: {str(e).splitlines()[0]}') from e
        self.request = self.compiled.create_infer_request()
        self.inputs = {_port_name(p): (_OV_TYPES.get(p.get_element_type().get_type_name(),
                                                     'tensor(float)'),
                                       list(p.get_partial_shape()))
                       for p in self.compiled.inputs}
        self.outputs = [_port_name(p) for p in self.compiled.outputs]
        self.providers = ['OpenVINO CPU']

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self.request.infer(feed, share_inputs=False)
        return {name: np.array(result[port]) for name, port in
                zip(self.outputs, self.compiled.outputs)}


def _conform(feed: dict[str, np.ndarray], ports: Sequence[Any]) -> dict[str, np.ndarray]:
    """``feed`` restricted to the model's inputs, each in the element type the input takes."""
    out = {}
    for port in ports:
        name = _port_name(port)
        if name in feed:
            out[name] = np.asarray(feed[name]).astype(port.get_element_type().to_dtype())
    return out


def _ort_providers(device: str, providers: Sequence[str]) -> list[Any]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    device = device.strip().lower()
    if providers:
        wanted: list[Any] = list(providers)
    elif device.startswith('cuda'):
        index = int(device.split(':')[1]) if ':' in device else 0
        wanted = [('CUDAExecutionProvider', {'device_id': index})]
    elif device == 'auto' and 'CUDAExecutionProvider' in available:
        wanted = ['CUDAExecutionProvider']
    else:
        wanted = []
    names = [p[0] if isinstance(p, tuple) else p for p in wanted]
    for name in names:
        if name not in available:
            _warn_once(f'provider:{name}', 'ONNX Runtime provider %s is not available in this '
                       'onnxruntime build (it has %s): using %s', name, ', '.join(available),
                       ', '.join(n for n in names if n in available) or 'CPUExecutionProvider')
    usable = [p for p, n in zip(wanted, names) if n in available]
    if 'CPUExecutionProvider' not in [p[0] if isinstance(p, tuple) else p for p in usable]:
        usable.append('CPUExecutionProvider')
    return usable


# ------------------------------------------------------------------------------------ backend


class OnnxSvlm(BackendSettings):
    """A SmolVLM / Idefics3 model on ONNX graphs answering a frame after a text history."""

    def __init__(self, spec: str, runtime: str = 'onnxruntime', *, max_new_tokens: int = 24,
                 image_longest_edge: int = 512, do_image_splitting: bool = False,
                 num_threads: int = 0, focus_layers: Sequence[int] | None = None,
                 device: str = 'auto', dtype: str = 'auto', quantize: str = 'none',
                 providers: Sequence[str] | str = (), kv_reuse: bool = True,
                 fused_decoder: bool = True) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f'runtime must be one of {", ".join(RUNTIMES)}, got {runtime!r}')
        if not isinstance(image_longest_edge, int) or image_longest_edge < 16:
            raise ValueError(
                f'image_longest_edge must be an int >= 16, got {image_longest_edge!r}')
        if not isinstance(num_threads, int) or num_threads < 0:
            raise ValueError(f'num_threads must be an int >= 0, got {num_threads!r}')
        for reason in (check_device(device), check_dtype(dtype)):
            if reason:
                raise ValueError(reason)
        if quantize not in QUANTIZATIONS:
            raise ValueError(f'quantize must be one of {", ".join(QUANTIZATIONS)}, '
                             f'got {quantize!r}')
        if runtime == 'onnxruntime' and dtype in ('float16', 'bfloat16'):
            raise ValueError(f'dtype {dtype} is not available on onnxruntime (it runs the '
                             "graphs' float32, int8 or int4); use quantize='int8', or the "
                             'openvino backend for bfloat16')
        if runtime == 'openvino' and device.strip().lower().startswith('cuda'):
            raise ValueError('the openvino backend runs on the CPU here; use device cpu/auto')
        if runtime == 'openvino' and dtype == 'float16':
            raise ValueError('dtype float16 is not available on the OpenVINO CPU backend; '
                             'use float32 or bfloat16')
        self.name = spec
        self.runtime = runtime
        self.quantize = quantize
        self.kv_reuse = bool(kv_reuse)
        self.image_longest_edge = image_longest_edge
        self.do_image_splitting = bool(do_image_splitting)
        self.cache_stats = PrefixCacheStats()
        self.path = resolve_onnx_folder(spec, quantize)
        self._load_text_side()
        self._load_graphs(runtime, device, dtype, quantize, parse_providers(providers),
                          num_threads, bool(fused_decoder))
        self._lock = threading.Lock()
        self._cache: dict[str, Any] | None = None
        self.max_new_tokens = max_new_tokens
        self.focus_layers = focus_layers

    # ------------------------------------------------------------------------------ loading

    def _load_text_side(self) -> None:
        from transformers import AutoConfig

        from edgevlm_ros.models.compat import load_processor

        try:
            self.config = AutoConfig.from_pretrained(str(self.path))
        except Exception as e:  # noqa: BLE001
            raise OSError(f'cannot read the config of {self.path}: {e}') from e
        if self.config.model_type not in ('idefics3', 'smolvlm'):
            raise ValueError(f'the ONNX backends run SmolVLM / Idefics3 models, {self.path} '
                             f'is {self.config.model_type!r}')
        try:
            self.processor = load_processor(str(self.path))
        except Exception as e:  # noqa: BLE001
            raise OSError(f'cannot load the processor of {self.path}: {e}') from e
        self.tokenizer = getattr(self.processor, 'tokenizer', None)
        if self.tokenizer is None:
            raise OSError(f'the processor of {self.path} has no tokenizer')
        self._count_tokenizer = copy.deepcopy(self.tokenizer)
        self._count_lock = threading.Lock()
        bound_word_cache(self.tokenizer)
        bound_word_cache(self._count_tokenizer)
        eos: Any = None
        gen_file = self.path / 'generation_config.json'
        if gen_file.is_file():
            eos = json.loads(gen_file.read_text()).get('eos_token_id')
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos]) - {None}
        text = self.config.text_config
        self._num_layers = int(text.num_hidden_layers)
        self._kv_heads = int(text.num_key_value_heads)
        self._head_dim = int(getattr(text, 'head_dim', None)
                             or text.hidden_size // text.num_attention_heads)
        self._max_positions = int(text.max_position_embeddings)
        self._image_token = int(self.config.image_token_id)
        self.model_type = self.config.model_type

    def _graph_path(self, stem: str, quantize: str) -> Path:
        # int4 is the decoder's alone: its vision encoder is the int8 one (compute-bound).
        kind = 'int8' if quantize == 'int4' and stem == onnx_export.VISION_FILE else quantize
        path = onnx_export.onnx_file(self.path, stem, kind)
        if path is None and kind != 'none' and stem == onnx_export.EMBED_FILE:
            path = onnx_export.onnx_file(self.path, stem)  # embeddings stay float
        if path is None:
            hint = f' (export with --quantize {quantize})' if quantize != 'none' else ''
            raise FileNotFoundError(f'{self.path}/onnx has no {stem} graph for quantize='
                                    f'{quantize}{hint}')
        return path

    def _ort_text_graphs(self, quantize: str, providers: list[Any], threads: int,
                         fused_path: Path | None) -> list[_OrtGraph]:
        """The token embedding and the decoder on ONNX Runtime (the fused decoder if given)."""
        return [_OrtGraph(path, providers, threads, dynamic_shapes=True) for path in (
            self._graph_path(onnx_export.EMBED_FILE, quantize),
            fused_path or self._graph_path(onnx_export.DECODER_FILE, quantize))]

    def _load_graphs(self, runtime: str, device: str, dtype: str, quantize: str,
                     providers: tuple[str, ...], threads: int, fused: bool) -> None:
        stems = (onnx_export.VISION_FILE, onnx_export.EMBED_FILE, onnx_export.DECODER_FILE)
        fused_path = None  # the fused decoder's graph, where ONNX Runtime runs the decoder
        if runtime == 'onnxruntime':
            chosen = _ort_providers(device, providers)
            fused_path = self._fused_path(quantize, chosen, fused)
            graphs = [_OrtGraph(self._graph_path(stems[0], quantize), chosen, threads),
                      *self._ort_text_graphs(quantize, chosen, threads, fused_path)]
            used = graphs[-1].providers
            wanted = [p[0] if isinstance(p, tuple) else p for p in chosen]
            if wanted[0] not in used:
                _warn_once(f'session:{wanted[0]}', 'ONNX Runtime could not use %s: running '
                           'on %s', wanted[0], ', '.join(used))
        else:
            precision = {'float32': 'f32', 'bfloat16': 'bf16'}.get(dtype)
            # dtype auto: the vision encoder at OpenVINO's default precision (bf16 on CPUs with
            # AMX / avx512_bf16), the decoder at f32: its int8-weight token steps measured 2x
            # faster at f32 than at bf16 here (docs/edge-backends.md).
            # int8: the vision encoder statically quantized (weights and activations, calibrated
            # on frames of the synthetic world and the photo pan): 0.71x the time of int8
            # weights alone on this CPU, cosine to fp32 0.994-0.998 (docs/edge-backends.md).
            graphs = [_OvGraph(self._graph_path(stems[0], 'none'), threads, precision,
                               compress_int8=quantize != 'none',
                               calibration=self._vision_calibration)]
            if self._text_on_onnxruntime(quantize, dtype):
                # int8: ONNX Runtime's dynamic-int8 decoder measured 1.5x faster prefill and 2x
                # faster token steps than OpenVINO's int8-weight one on this CPU, while
                # OpenVINO's bf16 vision encoder is 2x faster than ONNX Runtime's
                # (docs/edge-backends.md): each graph on the runtime that runs it fastest.
                chosen = _ort_providers('cpu', ())
                fused_path = self._fused_path(quantize, chosen, fused)
                graphs += self._ort_text_graphs(quantize, chosen, threads, fused_path)
            else:
                graphs += [_OvGraph(self._graph_path(s, 'none'), threads, precision or 'f32',
                                    compress_int8=(quantize == 'int8'
                                                   and s != onnx_export.EMBED_FILE))
                           for s in stems[1:]]
        self.graph_runtimes = {stem: g.runtime for stem, g in zip(stems, graphs)}
        self.providers = tuple(dict.fromkeys(p for g in graphs for p in g.providers))
        self._vision, self._embed, decoder = graphs
        if fused_path is not None:
            self.decoder = FusedDecoder(decoder, self._num_layers, self._kv_heads,
                                        self._head_dim, self._max_positions)
        else:
            try:
                self.decoder = ExportedDecoder(decoder, self._num_layers, self._kv_heads,
                                               self._head_dim)
            except OSError as e:
                raise OSError(f'{self.path}: {e}') from e
        self.focus_supported = self.decoder.focus_supported
        self._bias_gate = self.decoder.bias_gate
        if not self.focus_supported:
            _LOG.info('%s: the decoder has no %s input: Visual Focus falls back to cropping',
                      self.path, onnx_export.BIAS_INPUT)
        _LOG.info('ONNX edge SVLM %s on %s (%s, quantize=%s, %s decoder)', self.path, runtime,
                  ', '.join(self.providers), quantize,
                  'fused' if self.decoder.fused else 'exported')

    def _fused_path(self, quantize: str, providers: list[Any], fused: bool) -> Path | None:
        """The fused decoder graph ONNX Runtime runs here, or None (the exported one runs).

        The fused graph runs on the CPU provider only (GroupQueryAttention on CUDA wants fp16);
        int4 has no fused graph (its MatMulNBits decoder is the exported one).
        """
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        if not fused or quantize not in ('none', 'int8') or names != ['CPUExecutionProvider']:
            return None
        return onnx_export.onnx_file(self.path, onnx_export.FUSED_DECODER_FILE, quantize)

    def _text_on_onnxruntime(self, quantize: str, dtype: str) -> bool:
        """Whether the openvino backend runs embeddings and decoder on ONNX Runtime."""
        if quantize == 'int4':
            try:
                import onnxruntime  # noqa: F401
            except ImportError as e:
                raise OSError("quantize='int4' runs its 4-bit decoder (MatMulNBits) on ONNX "
                              'Runtime: pip install onnxruntime') from e
            return True
        if quantize != 'int8' or dtype == 'bfloat16':
            return False  # measured only for int8; ONNX Runtime has no bf16 here
        if onnx_export.onnx_file(self.path, onnx_export.DECODER_FILE, 'int8') is None:
            return False  # a folder without an ORT int8 decoder: NNCF compresses the fp32 one
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False
        return True

    # ------------------------------------------------------------------------------ settings

    def _check_focus_layers(self, layers: tuple[int, ...]) -> None:
        super()._check_focus_layers(layers)
        if not self._bias_gate and len(set(layers)) != self._num_layers:
            raise ValueError('this decoder biases every layer: it has no '
                             f'{onnx_export.BIAS_LAYERS_INPUT} input')

    def clear_cache(self) -> None:
        """Drop the kept keys/values (the next call prefills the whole prompt)."""
        with self._lock:
            self._cache = None
            self.decoder.keep(0)

    # ---------------------------------------------------------------------------------- text

    def render_prompt(self, question: str, history: Sequence[tuple[str, str]] = (),
                      history_sources: Sequence[bool] | None = None) -> str:
        """Return the chat-template prompt for ``question`` after ``history`` (one image)."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError('question must be a non-empty string')
        messages = chat_messages(question.strip(), _validate_history(history), history_sources)
        return self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                  tokenize=False)

    def count_tokens(self, text: str) -> int:
        """Return the number of tokens ``text`` costs in the prompt (no special tokens added)."""
        with self._count_lock:
            return len(self._count_tokenizer(text, add_special_tokens=False)['input_ids'])

    def build_inputs(self, image: np.ndarray, question: str,
                     history: Sequence[tuple[str, str]] = (),
                     history_sources: Sequence[bool] | None = None) -> tuple[Any, str]:
        """Return (processor output as numpy arrays, rendered prompt), as TransformersSvlm."""
        image = check_image(image, grey=False)
        prompt = self.render_prompt(question, history, history_sources)
        pil = Image.fromarray(image)
        inputs = self.processor(text=prompt, images=[pil], return_tensors='np',
                                do_image_splitting=self.do_image_splitting,
                                size={'longest_edge': self.image_longest_edge})
        return inputs, prompt

    # -------------------------------------------------------------------------------- answer

    def _vision_calibration(self) -> list[dict[str, np.ndarray]]:
        """Vision encoder feeds of the calibration frames, preprocessed as answers are."""
        from edgevlm_ros.backends.calibration import calibration_frames

        return [self._vision_feed(self.processor.image_processor(
            [Image.fromarray(f)], return_tensors='np', do_image_splitting=self.do_image_splitting,
            size={'longest_edge': self.image_longest_edge})) for f in calibration_frames()]

    def _vision_feed(self, inputs: Any) -> dict[str, np.ndarray]:
        """Pixel values and their boolean mask, without the all-zero padding images."""
        pixels = np.asarray(inputs['pixel_values'], dtype=np.float32)
        mask = inputs.get('pixel_attention_mask')
        mask = (np.ones(pixels.shape[:2] + pixels.shape[3:], dtype=bool) if mask is None
                else np.asarray(mask).astype(bool))
        # Padding images (all zero) carry no image tokens: the model drops them too.
        real = pixels.reshape(pixels.shape[0] * pixels.shape[1], -1).any(axis=1)
        if not real.all():
            pixels = pixels.reshape(-1, *pixels.shape[2:])[real][None]
            mask = mask.reshape(-1, *mask.shape[2:])[real][None]
        return {'pixel_values': pixels, 'pixel_attention_mask': mask}

    def _image_features(self, inputs: Any) -> np.ndarray:
        feed = self._vision_feed(inputs)
        mask = feed['pixel_attention_mask']
        if self._vision.inputs.get('pixel_attention_mask', ('',))[0] != 'tensor(bool)':
            feed['pixel_attention_mask'] = mask.astype(np.int64)
        out = self._vision.run({k: v for k, v in feed.items() if k in self._vision.inputs})
        features = next(iter(out.values()))
        return features.reshape(-1, features.shape[-1]).astype(np.float32)

    def _focus_bias(self, inputs: Any, focus: Sequence[Box], alpha: float,
                    image: np.ndarray) -> tuple[np.ndarray | None, int]:
        import types

        import torch

        from edgevlm_ros.backends import visual_focus

        as_torch = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()
                    if k in ('input_ids', 'pixel_values', 'pixel_attention_mask')}
        model = types.SimpleNamespace(config=self.config)
        bias, focused = visual_focus.focus_bias(
            model, as_torch, self.processor, list(focus), alpha,
            image_size=(int(image.shape[0]), int(image.shape[1])))
        if focused == 0:
            return None, 0
        return bias.numpy().astype(np.float32), focused

    def _embed_ids(self, ids: np.ndarray) -> np.ndarray:
        out = self._embed.run({'input_ids': ids.astype(np.int64)[None]})
        return next(iter(out.values())).astype(np.float32)

    def answer(self, image: np.ndarray, question: str,
               history: Sequence[tuple[str, str]] = (), focus: Sequence[Box] = (),
               focus_alpha: float = 0.0, *, max_new_tokens: int | None = None,
               history_sources: Sequence[bool] | None = None,
               on_token: TokenCallback | None = None) -> SvlmResult:
        """
        Answer ``question`` about ``image`` after the text-only ``history``; greedy.

        ``on_token`` streams and stops the answer (``base.greedy_decode``).
        """
        if not math.isfinite(focus_alpha):
            raise ValueError(f'focus_alpha must be finite, got {focus_alpha}')
        limit = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f'max_new_tokens must be an int >= 1, got {limit!r}')
        with self._lock:
            return self._answer(image, question, history, focus, focus_alpha, limit,
                                history_sources, on_token)

    def _answer(self, image: np.ndarray, question: str, history: Sequence[tuple[str, str]],
                focus: Sequence[Box], focus_alpha: float, limit: int,
                history_sources: Sequence[bool] | None,
                on_token: TokenCallback | None) -> SvlmResult:
        stages: dict[str, float] = {}
        t0 = time.perf_counter()
        inputs, prompt = self.build_inputs(image, question, history, history_sources)
        ids = np.asarray(inputs['input_ids'])[0].astype(np.int64)
        n = len(ids)
        bias, focused = None, 0
        if focus and focus_alpha > 0 and self.focus_supported:
            bias, focused = self._focus_bias(inputs, focus, focus_alpha, image)
        t1 = time.perf_counter()
        stages['preprocess'] = (t1 - t0) * 1000.0

        features = self._image_features(inputs)
        image_pos = np.flatnonzero(ids == self._image_token)
        if len(image_pos) != features.shape[0]:
            raise RuntimeError(f'{len(image_pos)} image tokens in the prompt but the vision '
                               f'encoder gave {features.shape[0]} features')
        t2 = time.perf_counter()
        stages['vision'] = (t2 - t1) * 1000.0

        gate = np.zeros(self._num_layers, dtype=np.float32)
        gate[list(self.focus_layers) if self.focus_layers is not None else slice(None)] = 1.0
        # What the keys of image tokens (and every token after them) depend on.
        context_key = (hashlib.sha1(features.tobytes()).hexdigest(),
                       None if bias is None else hashlib.sha1(bias.tobytes()).hexdigest(),
                       None if bias is None else gate.tobytes())
        cached = 0
        if self.kv_reuse and self._cache is not None:
            cached = common_prefix_len(self._cache['ids'], ids.tolist())
            if self._cache['context'] != context_key and len(image_pos):
                cached = min(cached, int(image_pos[0]))
            cached = min(cached, n - 1)  # at least one token to prefill: its logits answer
        # A failure below must not leave keys that do not match their ids.
        self._cache = None
        self.decoder.keep(cached)

        embeds = self._embed_ids(ids[cached:])
        later = image_pos >= cached
        embeds[0, image_pos[later] - cached] = features[later]
        logits = self.decoder.run(embeds, bias, gate)
        t3 = time.perf_counter()
        stages['prefill'] = (t3 - t2) * 1000.0

        fed = list(ids.tolist())

        def feed(token: int, _n: int) -> np.ndarray:
            fed.append(token)
            return self.decoder.run(self._embed_ids(np.array([token], dtype=np.int64)), bias,
                                    gate)

        generated, stopped = greedy_decode(logits, feed, self._eos, limit, self._decode_ids,
                                           on_token)
        t4 = time.perf_counter()
        stages['decode'] = (t4 - t3) * 1000.0
        if self.kv_reuse:
            self._cache = {'ids': fed, 'context': context_key}
        else:
            self.decoder.keep(0)  # nothing is reused: keep no keys between calls
        self.cache_stats.add(n, cached)
        text = self.tokenizer.decode(generated, skip_special_tokens=True).strip()
        model_ms = (time.perf_counter() - t0) * 1000.0
        return SvlmResult(text=text, model_ms=model_ms, prompt_tokens=n,
                          focus_applied=bias is not None, focused_tokens=focused, prompt=prompt,
                          completion_tokens=len(generated), cached_tokens=cached,
                          stages=stages, stopped=stopped)

    def _decode_ids(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)
