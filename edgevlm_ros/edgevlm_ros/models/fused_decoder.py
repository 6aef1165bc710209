# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The text decoder as one ONNX graph of ONNX Runtime's fused CPU operators.

``onnx_export`` writes it beside the exported decoder (``decoder_model_fused[_int8].onnx``);
``backends/onnx_decoder.FusedDecoder`` runs it. It computes what the exported decoder computes
(the same weights, rotary, Visual Focus bias and last-position logits) with, per layer:
SimplifiedLayerNormalization / SkipSimplifiedLayerNormalization (the residual add inside), one
MatMul for q|k|v, com.microsoft GroupQueryAttention (rotary inside; the Visual Focus bias times
the layer's gate as its ``attention_bias``), one MatMul for gate|up, SiLU (QuickGelu with alpha
1) times up, and down. Its cache is one buffer per layer's keys and values that the caller binds
as both past and present: GroupQueryAttention writes the new positions in place, and
``seqlens_k`` says how many are valid, so nothing is copied per token (bench/gqa_decoder.py
measured the token step at 0.63x the exported graph's, docs/edge-backends.md).

Inputs: ``inputs_embeds`` [1, S, hidden] float32, ``attention_bias`` [1, T] float32,
``attention_bias_layers`` [layers] float32, ``seqlens_k`` [1] int32 (T - 1),
``total_sequence_length`` [] int32 (T), ``past_key_values.{i}.key`` / ``.value``
[1, kv heads, capacity, head dim]. Outputs: ``logits`` [1, 1, vocab], ``present.{i}.key`` /
``.value`` (the same buffers). One sequence, no padding (batch 1, as the backend runs).

Imports neither torch nor onnxruntime: ``weights_of`` takes the loaded checkpoint's modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

OPSET = 18
# ONNX Runtime's contrib operators (GroupQueryAttention, the fused norms, QuickGelu).
CONTRIB = 'com.microsoft'


@dataclass
class DecoderWeights:
    """A Llama-style text decoder's sizes and weights; projections as [in, out] for MatMul."""

    heads: int
    kv_heads: int
    head_dim: int
    max_positions: int
    inv_freq: np.ndarray  # [head dim / 2]
    rope_scale: float
    final_norm: np.ndarray
    final_eps: float
    lm_head: np.ndarray  # [hidden, vocab]
    layers: list[dict[str, Any]] = field(default_factory=list)


def weights_of(model: Any) -> DecoderWeights:
    """The weights of a loaded SmolVLM / Idefics3 model's text decoder, as float32 numpy."""
    text = model.model.text_model
    cfg = model.config.text_config
    # What the graph hard-codes: SiLU, and rotary angles fixed by inv_freq (no dynamic scaling).
    act = getattr(cfg, 'hidden_act', 'silu')
    rope = getattr(cfg, 'rope_parameters', None) or getattr(cfg, 'rope_scaling', None) or {}
    rope_type = rope.get('rope_type', rope.get('type', 'default'))
    if act != 'silu':
        raise ValueError(f'the fused decoder computes SiLU, this model uses {act!r}')
    if rope_type not in ('default', 'linear', 'llama3'):
        raise ValueError(f'the fused decoder has fixed rotary angles, this model uses '
                         f'{rope_type!r} rope scaling')

    def mat(linear: Any) -> np.ndarray:
        if getattr(linear, 'bias', None) is not None:
            raise ValueError('the fused decoder has no projection biases')
        return linear.weight.detach().float().numpy().T.copy()

    def vec(t: Any) -> np.ndarray:
        return t.detach().float().numpy().copy()

    rotary = text.rotary_emb
    heads = int(cfg.num_attention_heads)
    weights = DecoderWeights(
        heads=heads, kv_heads=int(cfg.num_key_value_heads),
        head_dim=int(getattr(cfg, 'head_dim', None) or cfg.hidden_size // heads),
        max_positions=int(cfg.max_position_embeddings), inv_freq=vec(rotary.inv_freq),
        rope_scale=float(getattr(rotary, 'attention_scaling', 1.0)),
        final_norm=vec(text.norm.weight), final_eps=float(text.norm.variance_epsilon),
        lm_head=mat(model.lm_head))
    for layer in text.layers:
        attn, mlp = layer.self_attn, layer.mlp
        weights.layers.append({
            'ln1': vec(layer.input_layernorm.weight),
            'eps1': float(layer.input_layernorm.variance_epsilon),
            'qkv': np.concatenate([mat(attn.q_proj), mat(attn.k_proj), mat(attn.v_proj)],
                                  axis=1),
            'o': mat(attn.o_proj),
            'ln2': vec(layer.post_attention_layernorm.weight),
            'eps2': float(layer.post_attention_layernorm.variance_epsilon),
            'gate_up': np.concatenate([mat(mlp.gate_proj), mat(mlp.up_proj)], axis=1),
            'down': mat(mlp.down_proj),
        })
    return weights


def build(w: DecoderWeights) -> Any:
    """The fused decoder graph (an ``onnx.ModelProto``) for weights ``w``."""
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []
    n_layers, hidden = len(w.layers), w.lm_head.shape[0]
    ffn = w.layers[0]['down'].shape[0]

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], outputs: list[str], domain: str = '', **attrs) -> None:
        nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0] + '_node',
                                      domain=domain, **attrs))

    f32, kv = TensorProto.FLOAT, [1, w.kv_heads, 'capacity', w.head_dim]
    inputs = [helper.make_tensor_value_info('inputs_embeds', f32, [1, 'S', hidden]),
              helper.make_tensor_value_info('attention_bias', f32, [1, 'T']),
              helper.make_tensor_value_info('attention_bias_layers', f32, [n_layers]),
              helper.make_tensor_value_info('seqlens_k', TensorProto.INT32, [1]),
              helper.make_tensor_value_info('total_sequence_length', TensorProto.INT32, [])]
    outputs = [helper.make_tensor_value_info('logits', f32, [1, 1, w.lm_head.shape[1]])]
    for i in range(n_layers):
        for kind in ('key', 'value'):
            inputs.append(helper.make_tensor_value_info(f'past_key_values.{i}.{kind}', f32, kv))
            outputs.append(helper.make_tensor_value_info(f'present.{i}.{kind}', f32, kv))

    # Rotary tables [positions, head dim / 2] in the rotate-half layout (rotary_interleaved 0),
    # scaled as the exported decoder scales cos and sin.
    angles = np.arange(w.max_positions, dtype=np.float32)[:, None] * w.inv_freq[None, :]
    const('cos_cache', (np.cos(angles) * w.rope_scale).astype(np.float32))
    const('sin_cache', (np.sin(angles) * w.rope_scale).astype(np.float32))
    # The bias row [1, T] as GroupQueryAttention's attention_bias [1, 1, S, T].
    node('Reshape', ['attention_bias', const('shape_1_1_1_t', np.array([1, 1, 1, -1]))],
         ['bias_row'])
    node('Shape', ['inputs_embeds'], ['embeds_len'], start=1, end=2)
    node('Shape', ['attention_bias'], ['bias_len'], start=1, end=2)
    node('Concat', [const('ones_2', np.array([1, 1])), 'embeds_len', 'bias_len'],
         ['bias_shape'], axis=0)
    node('Expand', ['bias_row', 'bias_shape'], ['bias_full'])
    const('split_ffn', np.array([ffn, ffn]))

    state, delta = 'inputs_embeds', None
    for i, layer in enumerate(w.layers):
        if delta is None:
            node('SimplifiedLayerNormalization', [state, const(f'ln1_{i}', layer['ln1'])],
                 [f'x1_{i}'], axis=-1, epsilon=layer['eps1'])
            residual = state
        else:
            node('SkipSimplifiedLayerNormalization',
                 [state, delta, const(f'ln1_{i}', layer['ln1'])],
                 [f'x1_{i}', '', '', f'res1_{i}'], domain=CONTRIB, epsilon=layer['eps1'])
            residual = f'res1_{i}'
        node('MatMul', [f'x1_{i}', const(f'w_qkv_{i}', layer['qkv'])], [f'qkv_{i}'])
        node('Gather', ['attention_bias_layers', const(f'layer_{i}', np.array(i))],
             [f'gate_{i}'], axis=0)
        node('Mul', ['bias_full', f'gate_{i}'], [f'bias_{i}'])
        node('GroupQueryAttention',
             [f'qkv_{i}', '', '', f'past_key_values.{i}.key', f'past_key_values.{i}.value',
              'seqlens_k', 'total_sequence_length', 'cos_cache', 'sin_cache', '',
              f'bias_{i}'],
             [f'attn_{i}', f'present.{i}.key', f'present.{i}.value'], domain=CONTRIB,
             num_heads=w.heads, kv_num_heads=w.kv_heads, do_rotary=1, rotary_interleaved=0)
        node('MatMul', [f'attn_{i}', const(f'w_o_{i}', layer['o'])], [f'o_{i}'])
        node('SkipSimplifiedLayerNormalization',
             [residual, f'o_{i}', const(f'ln2_{i}', layer['ln2'])],
             [f'x2_{i}', '', '', f'res2_{i}'], domain=CONTRIB, epsilon=layer['eps2'])
        node('MatMul', [f'x2_{i}', const(f'w_gu_{i}', layer['gate_up'])], [f'gu_{i}'])
        node('Split', [f'gu_{i}', 'split_ffn'], [f'g_{i}', f'u_{i}'], axis=-1)
        node('QuickGelu', [f'g_{i}'], [f'silu_{i}'], domain=CONTRIB, alpha=1.0)
        node('Mul', [f'silu_{i}', f'u_{i}'], [f'act_{i}'])
        node('MatMul', [f'act_{i}', const(f'w_down_{i}', layer['down'])], [f'down_{i}'])
        state, delta = f'res2_{i}', f'down_{i}'

    # The last position only: the final norm (with the last residual add) and the LM head.
    last, end, axis = (const('last', np.array([-1])), const('end', np.array([2 ** 62])),
                       const('seq_axis', np.array([1])))
    for name in (state, delta):
        node('Slice', [name, last, end, axis], [name + '_last'])
    node('SkipSimplifiedLayerNormalization',
         [state + '_last', delta + '_last', const('norm_w', w.final_norm)], ['final'],
         domain=CONTRIB, epsilon=w.final_eps)
    node('MatMul', ['final', const('lm_head', w.lm_head)], ['logits'])
    graph = helper.make_graph(nodes, 'decoder_fused', inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET),
                                                    helper.make_opsetid(CONTRIB, 1)])
    model.ir_version = 9
    return model
