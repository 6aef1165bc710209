# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Export a SmolVLM / Idefics3 checkpoint to ONNX, in the layout of the published ONNX folders.

Why one module of 512 lines: the export and backends.onnx_backend must agree on file names,
tensor names and shapes (the layout below); the wrapper modules (``_modules``) and the three
graph exports write that layout in one place.

``export(model, out)`` writes::

    OUT/config.json, generation_config.json, processor/tokenizer/chat-template files (copied)
    OUT/onnx/vision_encoder.onnx        pixel_values [batch, images, 3, H, W] float32,
                                        pixel_attention_mask [batch, images, H, W] bool
                                        -> image_features [batch*images*tokens, text hidden]
    OUT/onnx/embed_tokens.onnx          input_ids [batch, seq] int64 -> inputs_embeds
    OUT/onnx/decoder_model_merged.onnx  inputs_embeds, attention_mask [batch, total] int64,
                                        position_ids [batch, seq] int64,
                                        past_key_values.{i}.key / .value
                                        [batch, kv heads, past, head dim]
                                        (+ ours: attention_bias [batch, total] float32,
                                        attention_bias_layers [layers] float32)
                                        -> logits [batch, 1, vocab], present.{i}.key / .value
    OUT/onnx/decoder_model_fused.onnx   the same decoder of ONNX Runtime's fused operators,
                                        its KV cache bound in place (models/fused_decoder.py)
    OUT/onnx/*_int8.onnx                with quantize='int8' (vision encoder, both decoders)
    OUT/onnx/decoder_model_merged_int4.onnx (+ .onnx.data) and vision_encoder_int8.onnx
                                        with quantize='int4'
    OUT/edgevlm_onnx.json               what was exported (written last: marks OUT complete)

The file and tensor names are those of the ONNX folders published beside the SmolVLM
checkpoints (``onnx/vision_encoder.onnx`` ...), so ``OnnxSvlm`` loads either. Ours differs in
two ways a reader can detect from the graph: the decoder computes the logits of the last position
only (a prefill of 150 tokens pays one LM-head row, not 150), and it takes ``attention_bias``,
added to the attention logit of every query at each key position in the layers whose
``attention_bias_layers`` entry is 1 (Visual Focus as an attention bias, like
``backends/visual_focus.py`` does in torch).

How: the vision tower + connector go through ``torch.onnx.export(dynamo=True)`` (the TorchScript
exporter makes an invalid graph of SigLIP's position bucketing), with eager attention; the
decoder is a plain Llama forward written here from the checkpoint's own modules (RMSNorm,
rotary embedding, grouped-query attention, SiLU MLP), exported by the TorchScript exporter with
dynamic batch/sequence/past axes, which gives a small graph with one MatMul per projection.

int8: dynamic quantization (``onnxruntime.quantization.quantize_dynamic``, per-channel int8
weights, activations quantized at run time) of the vision encoder and of the decoder's MatMuls.
Static (calibrated) QDQ was measured against it on this machine kind (bench/onnx_quantize.py);
see docs/edge-backends.md for the numbers and why the default is what it is.

int4: the decoder's MatMuls (the LM head included) as ONNX Runtime ``MatMulNBits``: 4-bit
symmetric weights in blocks of ``INT4_BLOCK`` along the input dimension, int8 compute
(``accuracy_level`` 4). The vision encoder stays int8: it is compute-bound, where 4-bit weights
do not pay. Measured against int8 in docs/edge-backends.md.

Writes are atomic: OUT is built in a temporary directory beside it and renamed into place.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
import contextlib
import json
import logging
import os
from pathlib import Path
import shutil
import sys
import tempfile
import time
from typing import Any
import warnings

_LOG = logging.getLogger(__name__)

# 2: grouped-query attention without per-head copies of the keys/values (faster steps);
# 3: the vision encoder exported with eager attention (faster on OpenVINO);
# 4: the fused decoder beside the exported one (models/fused_decoder.py).
EXPORT_VERSION = 4
MARKER_FILE = 'edgevlm_onnx.json'
ONNX_DIR = 'onnx'
VISION_FILE = 'vision_encoder'
EMBED_FILE = 'embed_tokens'
DECODER_FILE = 'decoder_model_merged'
# Ours only: the decoder of ONNX Runtime's fused operators (models/fused_decoder.py).
FUSED_DECODER_FILE = 'decoder_model_fused'
# Suffixes of quantized files in published folders, in the order an int8 request tries them.
INT8_SUFFIXES = ('_int8', '_quantized', '_uint8')
# The same for int4 (ours, then the published folders' 4-bit MatMulNBits decoder).
INT4_SUFFIXES = ('_int4', '_q4')
# MatMulNBits block: 128 prefilled 1.4x faster than 32 for the same token steps (edge-backends.md).
INT4_BLOCK = 128
BIAS_INPUT = 'attention_bias'
BIAS_LAYERS_INPUT = 'attention_bias_layers'
QUANTIZATIONS = ('none', 'int8', 'int4')
OPSET = 18
# Larger graphs keep their weights in external data beside them (protobuf's limit is 2 GB).
SINGLE_FILE_MAX_BYTES = 1.8e9
# Files of a checkpoint that the ONNX folder needs beside the graphs (no weights).
_COPY_NAMES = ('config.json', 'generation_config.json', 'processor_config.json',
               'preprocessor_config.json', 'special_tokens_map.json', 'added_tokens.json',
               'vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json',
               'tokenizer.model', 'chat_template.jinja', 'chat_template.json')


def onnx_file(folder: Path, stem: str, quantize: str = 'none') -> Path | None:
    """The graph ``stem`` in ``folder``/onnx for ``quantize`` (None when there is none)."""
    suffixes = {'int8': INT8_SUFFIXES, 'int4': INT4_SUFFIXES}.get(quantize, ('',))
    for suffix in suffixes:
        path = Path(folder) / ONNX_DIR / f'{stem}{suffix}.onnx'
        if path.is_file():
            return path
    return None


def is_exported(folder: Path) -> bool:
    """True when ``folder`` has the three fp32 graphs (ours or a published folder)."""
    return all(onnx_file(Path(folder), s) is not None
               for s in (VISION_FILE, EMBED_FILE, DECODER_FILE))


# ---------------------------------------------------------------------------------- modules


def _modules():
    """Torch modules of the export (defined lazily: importing this file needs no torch)."""
    import torch
    from torch import nn

    class VisionEncoder(nn.Module):
        """Vision tower + connector: (pixel_values, pixel_attention_mask) -> image features."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            inner = model.model
            self.vision = inner.vision_model
            self.connector = inner.connector
            self.patch = int(model.config.vision_config.patch_size)

        def forward(self, pixel_values: torch.Tensor,
                    pixel_attention_mask: torch.Tensor) -> torch.Tensor:
            b, n, c, h, w = pixel_values.shape
            pixels = pixel_values.reshape(b * n, c, h, w)
            mask = pixel_attention_mask.reshape(b * n, h // self.patch, self.patch,
                                                w // self.patch, self.patch)
            # A patch is valid when any of its pixels is (the processor pads bottom/right).
            patch_mask = mask.to(torch.float32).sum(dim=(2, 4)) > 0
            hidden = self.vision(pixel_values=pixels, patch_attention_mask=patch_mask,
                                 return_dict=True).last_hidden_state
            features = self.connector(hidden)
            return features.reshape(-1, features.shape[-1])

    class EmbedTokens(nn.Module):
        def __init__(self, embedding: nn.Module) -> None:
            super().__init__()
            self.embedding = embedding

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.embedding(input_ids)

    class LlamaDecoder(nn.Module):
        """
        The text model's forward with an explicit KV cache, written from its modules.

        Inputs follow the published decoder (inputs_embeds, attention_mask, position_ids, then
        the past keys/values per layer) plus the Visual Focus bias and its per-layer gate.
        """

        def __init__(self, model: Any) -> None:
            super().__init__()
            text = model.model.text_model
            cfg = model.config.text_config
            self.layers = text.layers
            self.norm = text.norm
            self.lm_head = model.lm_head
            self.heads = int(cfg.num_attention_heads)
            self.kv_heads = int(cfg.num_key_value_heads)
            self.head_dim = int(getattr(cfg, 'head_dim', None)
                                or cfg.hidden_size // cfg.num_attention_heads)
            rotary = text.rotary_emb
            self.register_buffer('inv_freq', rotary.inv_freq.detach().clone().float(),
                                 persistent=False)
            self.rope_scale = float(getattr(rotary, 'attention_scaling', 1.0))
            self.eps = [float(layer.input_layernorm.variance_epsilon) for layer in self.layers]

        @staticmethod
        def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
            return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

        @staticmethod
        def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
            half = x.shape[-1] // 2
            rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
            return x * cos + rotated * sin

        def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                    position_ids: torch.Tensor, attention_bias: torch.Tensor,
                    attention_bias_layers: torch.Tensor, *past: torch.Tensor,
                    all_logits: bool = False):
            b, s, _ = inputs_embeds.shape
            total = attention_mask.shape[1]
            past_len = total - s
            # Rotary angles of the new positions.
            freqs = position_ids.to(torch.float32)[:, :, None] * self.inv_freq[None, None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            cos = (emb.cos() * self.rope_scale)[:, None]
            sin = (emb.sin() * self.rope_scale)[:, None]
            # Additive mask [b, 1, s, total]: causal over absolute positions, padding keys off.
            q_pos = torch.arange(s, device=inputs_embeds.device)[:, None] + past_len
            k_pos = torch.arange(total, device=inputs_embeds.device)[None, :]
            allowed = (k_pos <= q_pos)[None, None] & (attention_mask[:, None, None, :] > 0)
            floor = torch.finfo(torch.float32).min
            mask = torch.where(allowed, torch.zeros((), dtype=torch.float32),
                               torch.full((), floor, dtype=torch.float32))
            bias = attention_bias.to(torch.float32)[:, None, None, :]
            rep = self.heads // self.kv_heads
            hidden = inputs_embeds
            presents = []
            for i, layer in enumerate(self.layers):
                attn = layer.self_attn
                x = self._rms(hidden, layer.input_layernorm.weight, self.eps[i])
                q = attn.q_proj(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
                k = attn.k_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
                v = attn.v_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
                q = self._rotate(q, cos, sin)
                k = self._rotate(k, cos, sin)
                k = torch.cat((past[2 * i], k), dim=2)
                v = torch.cat((past[2 * i + 1], v), dim=2)
                presents += [k, v]
                # Grouped-query attention without copying the keys/values per query head: the
                # `rep` query heads of one KV head are stacked as rows of one matrix product.
                qq = (q * self.head_dim ** -0.5).reshape(b, self.kv_heads, rep * s,
                                                         self.head_dim)
                scores = torch.matmul(qq, k.transpose(2, 3)).view(
                    b, self.kv_heads, rep, s, total)
                scores = scores + mask[:, :, None] + bias[:, :, None] * attention_bias_layers[i]
                probs = torch.softmax(scores, dim=-1).view(b, self.kv_heads, rep * s, total)
                out = torch.matmul(probs, v).view(b, self.heads, s, self.head_dim)
                out = out.transpose(1, 2).reshape(b, s, -1)
                hidden = hidden + attn.o_proj(out)
                x = self._rms(hidden, layer.post_attention_layernorm.weight, self.eps[i])
                mlp = layer.mlp
                hidden = hidden + mlp.down_proj(
                    torch.nn.functional.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
            last = self._rms(hidden if all_logits else hidden[:, -1:, :], self.norm.weight,
                             float(self.norm.variance_epsilon))
            return (self.lm_head(last), *presents)

    class PlainDecoder(nn.Module):
        """The decoder as published (no attention bias, logits at every position)."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.decoder = LlamaDecoder(model)
            self.layers, self.kv_heads = self.decoder.layers, self.decoder.kv_heads
            self.head_dim = self.decoder.head_dim

        def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                    position_ids: torch.Tensor, *past: torch.Tensor):
            b = inputs_embeds.shape[0]
            bias = torch.zeros(b, attention_mask.shape[1], dtype=torch.float32)
            gate = torch.zeros(len(self.layers), dtype=torch.float32)
            return self.decoder(inputs_embeds, attention_mask, position_ids, bias, gate, *past,
                                all_logits=True)

    _modules.plain_decoder = PlainDecoder
    return VisionEncoder, EmbedTokens, LlamaDecoder


# ---------------------------------------------------------------------------------- export


def _check_supported(model: Any) -> None:
    cfg = model.config
    if cfg.model_type not in ('idefics3', 'smolvlm'):
        raise ValueError(f'ONNX export supports SmolVLM / Idefics3 checkpoints, not '
                         f'{cfg.model_type!r}')
    text = cfg.text_config
    if getattr(text, 'model_type', 'llama') != 'llama':
        raise ValueError(f'ONNX export writes a Llama decoder, the text model is '
                         f'{text.model_type!r}')
    for name in ('attention_bias', 'mlp_bias'):
        if getattr(text, name, False):
            raise ValueError(f'ONNX export: text_config.{name}=True is not supported')
    if getattr(text, 'hidden_act', 'silu') != 'silu':
        raise ValueError(f'ONNX export: text hidden_act {text.hidden_act!r} is not silu')


def _single_file(path: Path) -> None:
    """Fold a graph's external data back in when it fits under protobuf's 2 GB."""
    import onnx

    data = [p for p in path.parent.iterdir() if p.name.startswith(path.name + '.')
            or p.name.startswith(path.stem + '.onnx_data')]
    if not data:
        return
    size = sum(p.stat().st_size for p in data) + path.stat().st_size
    if size > SINGLE_FILE_MAX_BYTES:
        return  # too large for one protobuf: keep the external data beside it
    model = onnx.load(str(path), load_external_data=True)
    for p in data:
        p.unlink()
    onnx.save_model(model, str(path), save_as_external_data=False)


def _export_vision(model: Any, path: Path, vision_cls: Any) -> None:
    import torch

    v = model.config.vision_config
    side = int(v.image_size)
    module = vision_cls(model).eval()
    pixels = torch.randn(1, 2, 3, side, side)
    mask = torch.ones(1, 2, side, side, dtype=torch.bool)
    images = torch.export.Dim('images', min=1, max=64)
    # Eager attention: the SDPA path exports with NaN guards (IsNaN / Where) around the softmax
    # that keep OpenVINO from fusing its attention kernel; the eager graph ran the 256M vision
    # encoder 1.45x faster there, same features (docs/edge-backends.md).
    config = module.vision.config
    saved = config._attn_implementation
    config._attn_implementation = 'eager'
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(
                module, (pixels, mask), str(path), dynamo=True, opset_version=OPSET,
                input_names=['pixel_values', 'pixel_attention_mask'],
                output_names=['image_features'],
                dynamic_shapes={'pixel_values': {1: images}, 'pixel_attention_mask': {1: images}},
                verbose=False, report=False)
    finally:
        config._attn_implementation = saved
    _single_file(path)


def _export_embed(model: Any, path: Path, embed_cls: Any) -> None:
    import torch

    module = embed_cls(model.model.text_model.embed_tokens).eval()
    ids = torch.tensor([[1, 2, 3]], dtype=torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, (ids,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=['input_ids'], output_names=['inputs_embeds'],
                          dynamic_axes={'input_ids': {0: 'batch_size', 1: 'sequence_length'},
                                        'inputs_embeds': {0: 'batch_size',
                                                          1: 'sequence_length'}})
    _single_file(path)


def _export_decoder(model: Any, path: Path, decoder_cls: Any, published: bool = False) -> None:
    import torch

    module = decoder_cls(model).eval()
    cfg = model.config.text_config
    n_layers = len(module.layers)
    b, s, p = 1, 3, 2
    embeds = torch.randn(b, s, cfg.hidden_size)
    mask = torch.ones(b, p + s, dtype=torch.long)
    positions = torch.arange(p, p + s, dtype=torch.long)[None]
    bias = torch.zeros(b, p + s)
    gate = torch.ones(n_layers)
    past = []
    names_in = ['inputs_embeds', 'attention_mask', 'position_ids']
    names_out = ['logits']
    axes: dict[str, dict[int, str]] = {
        'inputs_embeds': {0: 'batch_size', 1: 'sequence_length'},
        'attention_mask': {0: 'batch_size', 1: 'total_sequence_length'},
        'position_ids': {0: 'batch_size', 1: 'sequence_length'},
        'logits': {0: 'batch_size', 1: 'sequence_length'} if published else {0: 'batch_size'},
    }
    extra: tuple = ()
    if not published:
        names_in += [BIAS_INPUT, BIAS_LAYERS_INPUT]
        axes[BIAS_INPUT] = {0: 'batch_size', 1: 'total_sequence_length'}
        extra = (bias, gate)
    for i in range(n_layers):
        for kind in ('key', 'value'):
            past.append(torch.randn(b, module.kv_heads, p, module.head_dim))
            names_in.append(f'past_key_values.{i}.{kind}')
            names_out.append(f'present.{i}.{kind}')
            axes[names_in[-1]] = {0: 'batch_size', 2: 'past_sequence_length'}
            axes[names_out[-1]] = {0: 'batch_size', 2: 'total_sequence_length'}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter's deprecation and tracer notes: this graph has no
        # data-dependent control flow, so tracing records it exactly.
        warnings.simplefilter('ignore')
        torch.onnx.export(module, (embeds, mask, positions, *extra, *past), str(path),
                          dynamo=False, opset_version=OPSET, input_names=names_in,
                          output_names=names_out, dynamic_axes=axes)
    _single_file(path)


def export_published_decoder(model: str, path: Path) -> Path:
    """
    Write the decoder of checkpoint ``model`` as the published folders have it, to ``path``.

    No ``attention_bias`` inputs and logits at every position: what ``OnnxSvlm`` meets in a
    folder published beside a checkpoint (the tests build one with this).
    """
    import torch
    from transformers import AutoModelForImageTextToText

    from edgevlm_ros.models.registry import resolve_model

    hf = AutoModelForImageTextToText.from_pretrained(resolve_model(model),
                                                     dtype=torch.float32).eval()
    _check_supported(hf)
    _modules()
    _export_decoder(hf, Path(path), _modules.plain_decoder, published=True)
    return Path(path)


def quantize_int8(src: Path, dst: Path, per_channel: bool = True) -> Path:
    """
    Dynamic int8 quantization of a graph's MatMul/Gemm weights (activations at run time).

    The vision encoder's patch convolution stays fp32 (int8 ConvInteger is slow on CPU). The
    contrib operators' outputs have no inferred type: the quantizer takes them as float.
    """
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                     per_channel=per_channel, op_types_to_quantize=['MatMul', 'Gemm'],
                     extra_options={'MatMulConstBOnly': True,
                                    'DefaultTensorType': TensorProto.FLOAT})
    return dst


def _export_fused_decoder(model: Any, path: Path) -> None:
    import onnx

    from edgevlm_ros.models import fused_decoder

    try:
        graph = fused_decoder.build(fused_decoder.weights_of(model))
    except ValueError as e:  # the exported decoder serves it alone
        _LOG.warning('no fused decoder for this model: %s', e)
        return
    size = sum(t.ByteSize() for t in graph.graph.initializer)
    onnx.save_model(graph, str(path), save_as_external_data=size > SINGLE_FILE_MAX_BYTES,
                    all_tensors_to_one_file=True, location=f'{path.name}.data')


def quantize_int4(src: Path, dst: Path, block_size: int = INT4_BLOCK) -> Path:
    """4-bit MatMulNBits weights for every MatMul with a constant weight (int8 compute)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True,
                                          accuracy_level=4)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), algo_config=config)
    with _quiet_logger('onnxruntime.quantization.matmul_nbits_quantizer'):
        quantizer.process()
    onnx.save_model(quantizer.model.model, str(dst), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=f'{dst.name}.data')
    return dst


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Warnings only from a logger for a block (the int4 quantizer logs a line per graph node)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _copy_checkpoint_files(src: Path, dst: Path) -> None:
    for name in _COPY_NAMES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)


def export(model: str, out: Path, quantize: str = 'none', progress: bool = True) -> Path:
    """
    Export checkpoint ``model`` (a spec ``registry.resolve_model`` knows) to ONNX in ``out``.

    Returns ``out``. Raises ValueError for an unsupported architecture or quantization,
    OSError when the checkpoint cannot be loaded, FileExistsError when ``out`` holds something
    that is not an export of ours.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f'quantize must be one of {", ".join(QUANTIZATIONS)}, got {quantize!r}')
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForImageTextToText

    from edgevlm_ros.models.registry import resolve_model

    out = Path(out).expanduser()
    src = Path(resolve_model(model)).expanduser()
    if not src.is_dir():
        raise FileNotFoundError(f'model directory {str(src)!r} does not exist')
    if out.exists() and any(out.iterdir()) and not (out / MARKER_FILE).is_file():
        raise FileExistsError(f'{out} exists and is not an ONNX export of edgevlm_ros')
    steps = ['load', 'vision encoder', 'embeddings', 'decoder', 'fused decoder']
    if quantize != 'none':
        steps += ['int8 vision encoder', f'{quantize} decoder']
    if quantize == 'int8':
        steps += ['int8 fused decoder']
    started = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.tmp-{out.name}-', dir=out.parent))
    try:
        with tqdm(total=len(steps), desc=f'export {model} to ONNX', disable=not progress,
                  leave=False, file=sys.stderr) as bar:
            bar.set_postfix_str(steps[0])
            try:
                hf = AutoModelForImageTextToText.from_pretrained(
                    str(src), dtype=torch.float32).eval()
            except Exception as e:  # noqa: BLE001 - any loader failure is one clear error
                raise OSError(f'cannot load the model of {str(src)!r}: {e}') from e
            _check_supported(hf)
            vision_cls, embed_cls, decoder_cls = _modules()
            graphs = tmp / ONNX_DIR
            graphs.mkdir()
            bar.update()
            for step, fn, stem, cls in ((1, _export_vision, VISION_FILE, vision_cls),
                                        (2, _export_embed, EMBED_FILE, embed_cls),
                                        (3, _export_decoder, DECODER_FILE, decoder_cls)):
                bar.set_postfix_str(steps[step])
                fn(hf, graphs / f'{stem}.onnx', cls)
                bar.update()
            bar.set_postfix_str(steps[4])
            fused = graphs / f'{FUSED_DECODER_FILE}.onnx'
            _export_fused_decoder(hf, fused)
            bar.update()
            if quantize != 'none':
                writers = [(VISION_FILE, 'int8', quantize_int8),
                           (DECODER_FILE, quantize,
                            quantize_int8 if quantize == 'int8' else quantize_int4)]
                if quantize == 'int8' and fused.is_file():  # int4's decoder is the exported one
                    writers.append((FUSED_DECODER_FILE, 'int8', quantize_int8))
                for step, (stem, kind, write) in enumerate(writers, start=5):
                    bar.set_postfix_str(steps[step])
                    write(graphs / f'{stem}.onnx', graphs / f'{stem}_{kind}.onnx')
                    bar.update()
        _copy_checkpoint_files(src, tmp)
        text = hf.config.text_config
        marker = {
            'export_version': EXPORT_VERSION, 'source': str(src), 'spec': model,
            'quantize': quantize, 'model_type': hf.config.model_type,
            'num_layers': int(text.num_hidden_layers),
            'attention_bias': True, 'logits': 'last', 'fused_decoder': fused.is_file(),
            'seconds': round(time.monotonic() - started, 1),
        }
        (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + '\n')
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _LOG.info('exported %s to %s (%s) in %.0f s', model, out, quantize,
              time.monotonic() - started)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m edgevlm_ros.models.onnx_export MODEL OUT [--quantize int8|int4]``."""
    parser = argparse.ArgumentParser(
        prog='python -m edgevlm_ros.models.onnx_export',
        description='Export a SmolVLM / Idefics3 checkpoint to ONNX (vision encoder, token '
                    'embeddings, decoder with KV cache), in the published onnx/ folder layout.')
    parser.add_argument('model', help="a checkpoint directory or a model name ('micro', "
                                      "'tiny', 'smolvlm-256m-random')")
    parser.add_argument('out', type=Path, help='output folder (created; replaced if it is an '
                                               'earlier export)')
    parser.add_argument('--quantize', choices=QUANTIZATIONS, default='none',
                        help='also write quantized graphs: int8 (*_int8.onnx) or int4 (an int8 '
                        'vision encoder and a 4-bit decoder, *_int4.onnx)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        path = export(args.model, args.out, args.quantize, progress=sys.stderr.isatty())
    except (OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
