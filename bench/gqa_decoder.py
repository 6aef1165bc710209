# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The exported text decoder against one rebuilt from ONNX Runtime's fused contrib ops.

The fused decoder is built here with ``onnx.helper`` from the dimensions in FOLDER/config.json
and the weights of FOLDER/onnx/decoder_model_merged.onnx (the fp32 graph's initializers, read in
memory): per layer SimplifiedLayerNormalization / SkipSimplifiedLayerNormalization, one MatMul
for q|k|v, com.microsoft GroupQueryAttention (rotary inside, ``do_rotary``; the Visual Focus
bias times the layer's gate as its ``attention_bias``), one MatMul for gate|up, SiLU (QuickGelu
with alpha 1) and down; the final norm and the LM head on the last position only, like ours.
It is quantized to dynamic int8 with the arguments of ``onnx_export.quantize_int8`` (plus
``DefaultTensorType``, which the quantizer needs for the contrib ops' outputs).

First the numerics, on a short prefill and one step with a random Visual Focus bias and
per-layer gate: the fused fp32 graph against the exported fp32 graph (max abs difference and
cosine of the logits, same argmax), the fused int8 and the exported int8 graphs against fp32,
and the fused int8 graph with a shared KV buffer against without. Then, round-robin in one
process, the time of a prefill of --prefill tokens (no past) and of --steps single-token steps
from a past of --past tokens, for: the exported int8 graph (``session.run``, the past as numpy),
the fused int8 graph the same way, and the fused int8 graph with its KV cache in one buffer of
--max-len positions, bound with IO binding as both past and present (GroupQueryAttention writes
the new keys/values in place, nothing is copied per step). Ratios are the median over rounds of
each round's median divided by the exported graph's. The graphs are written to --work (default:
a temporary directory, removed at the end). Numbers only: nothing in the package uses this yet.

usage: python bench/gqa_decoder.py FOLDER [--rounds 8] [--threads 2] [--prefill 170]
       [--past 380] [--steps 16] [--max-len 1024] [--work DIR]
"""

import argparse
from dataclasses import dataclass
import json
import logging
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.backends.onnx_backend import _OrtGraph
from edgevlm_ros.models.onnx_export import DECODER_FILE, onnx_file
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort

PROVIDERS = ['CPUExecutionProvider']
ALPHA = 2.0  # Visual Focus bias on the focused keys
PROJECTIONS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')


@dataclass
class Dims:
    """The text model's sizes, from config.json's text_config."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    eps: float
    max_pos: int
    inv_freq: np.ndarray


def read_dims(folder: Path) -> Dims:
    """Sizes and rotary frequencies of the text model in ``folder``/config.json."""
    text = json.loads((folder / 'config.json').read_text())['text_config']
    rope = text.get('rope_parameters') or text.get('rope_scaling') or {}
    if rope.get('rope_type', 'default') != 'default':
        raise ValueError(f'rope_type {rope["rope_type"]!r}: only the default rotary is built')
    theta = float(rope.get('rope_theta', text.get('rope_theta', 10000.0)))
    head_dim = int(text.get('head_dim') or text['hidden_size'] // text['num_attention_heads'])
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim)
    return Dims(layers=int(text['num_hidden_layers']), hidden=int(text['hidden_size']),
                heads=int(text['num_attention_heads']),
                kv_heads=int(text['num_key_value_heads']), head_dim=head_dim,
                ffn=int(text['intermediate_size']), vocab=int(text['vocab_size']),
                eps=float(text['rms_norm_eps']), max_pos=int(text['max_position_embeddings']),
                inv_freq=inv_freq.astype(np.float32))


def read_weights(path: Path, dims: Dims) -> dict[str, np.ndarray]:
    """
    The decoder's weights, traced out of the exported fp32 graph.

    Projections are the B inputs of the MatMuls the exporter names ``/q_proj_3/MatMul`` etc.
    (``/lm_head/MatMul``); a norm weight is the constant factor of the Mul feeding a MatMul.
    """
    graph = onnx.load(str(path)).graph
    values = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    nodes = {node.name: node for node in graph.node}

    def constant(name: str) -> np.ndarray | None:
        while name not in values and name in producer and producer[name].op_type == 'Identity':
            name = producer[name].input[0]
        return numpy_helper.to_array(values[name]) if name in values else None

    def matmul(module: str, layer: int | None) -> onnx.NodeProto:
        return nodes[f'/{module}/MatMul' if not layer else f'/{module}_{layer}/MatMul']

    def norm_weight(node: onnx.NodeProto) -> np.ndarray:
        mul = producer[node.input[0]]
        found = [w for w in map(constant, mul.input) if w is not None]
        if mul.op_type != 'Mul' or len(found) != 1 or found[0].shape != (dims.hidden,):
            raise ValueError(f'{node.name}: no RMSNorm weight in front of it')
        return found[0]

    weights = {}
    for i in range(dims.layers):
        for name in PROJECTIONS:
            weights[f'{i}.{name}'] = constant(matmul(name, i).input[1])
        weights[f'{i}.ln1'] = norm_weight(matmul('q_proj', i))
        weights[f'{i}.ln2'] = norm_weight(matmul('gate_proj', i))
    weights['lm_head'] = constant(matmul('lm_head', None).input[1])
    weights['norm'] = norm_weight(matmul('lm_head', None))
    return weights


def build_fused(dims: Dims, w: dict[str, np.ndarray]) -> onnx.ModelProto:
    """
    The fused decoder graph.

    Inputs: inputs_embeds [1, S, hidden], attention_bias [1, T], attention_bias_layers
    [layers], seqlens_k [1] int32 (T - 1), total_sequence_length [] int32 (T),
    past_key_values.{i}.key / .value [1, kv heads, P, head dim]. Outputs: logits [1, 1, vocab]
    (last position), present.{i}.key / .value. With past and present bound to one buffer of
    any length >= T, GroupQueryAttention reads and writes the cache in place.
    """
    inits, nodes = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], outputs: list[str], domain: str = '', **attrs) -> None:
        nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0] + '_node',
                                      domain=domain, **attrs))

    f32, kv_shape = TensorProto.FLOAT, [1, dims.kv_heads, 'P', dims.head_dim]
    inputs = [helper.make_tensor_value_info('inputs_embeds', f32, [1, 'S', dims.hidden]),
              helper.make_tensor_value_info('attention_bias', f32, [1, 'T']),
              helper.make_tensor_value_info('attention_bias_layers', f32, [dims.layers]),
              helper.make_tensor_value_info('seqlens_k', TensorProto.INT32, [1]),
              helper.make_tensor_value_info('total_sequence_length', TensorProto.INT32, [])]
    outputs = [helper.make_tensor_value_info('logits', f32, [1, 1, dims.vocab])]
    for i in range(dims.layers):
        for kind in ('key', 'value'):
            inputs.append(helper.make_tensor_value_info(f'past_key_values.{i}.{kind}', f32,
                                                        kv_shape))
            outputs.append(helper.make_tensor_value_info(f'present.{i}.{kind}', f32,
                                                         kv_shape[:2] + ['T', dims.head_dim]))

    # Rotary tables [max positions, head dim / 2], rotate-half layout (rotary_interleaved=0).
    angles = np.arange(dims.max_pos, dtype=np.float32)[:, None] * dims.inv_freq[None, :]
    const('cos_cache', np.cos(angles))
    const('sin_cache', np.sin(angles))
    # The bias [1, T] as GroupQueryAttention's attention_bias [1, 1, S, T].
    node('Reshape', ['attention_bias', const('shape_11_1_t', np.array([1, 1, 1, -1]))],
         ['bias_row'])
    node('Shape', ['inputs_embeds'], ['embeds_shape'], start=1, end=2)
    node('Shape', ['attention_bias'], ['bias_shape'], start=1, end=2)
    node('Concat', [const('ones_2', np.array([1, 1])), 'embeds_shape', 'bias_shape'],
         ['bias_full_shape'], axis=0)
    node('Expand', ['bias_row', 'bias_full_shape'], ['bias_full'])
    const('split_ffn', np.array([dims.ffn, dims.ffn]))

    hidden, delta = 'inputs_embeds', None
    for i in range(dims.layers):
        if delta is None:
            node('SimplifiedLayerNormalization', [hidden, const(f'ln1_{i}', w[f'{i}.ln1'])],
                 [f'x1_{i}'], axis=-1, epsilon=dims.eps)
            residual = hidden
        else:
            node('SkipSimplifiedLayerNormalization',
                 [hidden, delta, const(f'ln1_{i}', w[f'{i}.ln1'])],
                 [f'x1_{i}', '', '', f'res1_{i}'], domain='com.microsoft', epsilon=dims.eps)
            residual = f'res1_{i}'
        qkv = np.concatenate([w[f'{i}.q_proj'], w[f'{i}.k_proj'], w[f'{i}.v_proj']], axis=1)
        node('MatMul', [f'x1_{i}', const(f'w_qkv_{i}', qkv)], [f'qkv_{i}'])
        node('Gather', ['attention_bias_layers', const(f'layer_{i}', np.array(i))],
             [f'gate_{i}'], axis=0)
        node('Mul', ['bias_full', f'gate_{i}'], [f'bias_{i}'])
        node('GroupQueryAttention',
             [f'qkv_{i}', '', '', f'past_key_values.{i}.key', f'past_key_values.{i}.value',
              'seqlens_k', 'total_sequence_length', 'cos_cache', 'sin_cache', '',
              f'bias_{i}'],
             [f'attn_{i}', f'present.{i}.key', f'present.{i}.value'], domain='com.microsoft',
             num_heads=dims.heads, kv_num_heads=dims.kv_heads, do_rotary=1,
             rotary_interleaved=0)
        node('MatMul', [f'attn_{i}', const(f'w_o_{i}', w[f'{i}.o_proj'])], [f'o_{i}'])
        node('SkipSimplifiedLayerNormalization',
             [residual, f'o_{i}', const(f'ln2_{i}', w[f'{i}.ln2'])],
             [f'x2_{i}', '', '', f'res2_{i}'], domain='com.microsoft', epsilon=dims.eps)
        gate_up = np.concatenate([w[f'{i}.gate_proj'], w[f'{i}.up_proj']], axis=1)
        node('MatMul', [f'x2_{i}', const(f'w_gu_{i}', gate_up)], [f'gu_{i}'])
        node('Split', [f'gu_{i}', 'split_ffn'], [f'g_{i}', f'u_{i}'], axis=-1)
        node('QuickGelu', [f'g_{i}'], [f'silu_{i}'], domain='com.microsoft', alpha=1.0)
        node('Mul', [f'silu_{i}', f'u_{i}'], [f'act_{i}'])
        node('MatMul', [f'act_{i}', const(f'w_down_{i}', w[f'{i}.down_proj'])], [f'down_{i}'])
        hidden, delta = f'res2_{i}', f'down_{i}'

    # Last position only, then the final norm (with the last residual add) and the LM head.
    starts, ends, axis = const('last', np.array([-1])), const('end', np.array([2 ** 62])), \
        const('seq_axis', np.array([1]))
    for name in (hidden, delta):
        node('Slice', [name, starts, ends, axis], [name + '_last'])
    node('SkipSimplifiedLayerNormalization',
         [hidden + '_last', delta + '_last', const('norm_w', w['norm'])], ['final'],
         domain='com.microsoft', epsilon=dims.eps)
    node('MatMul', ['final', const('lm_head', w['lm_head'])], ['logits'])
    graph = helper.make_graph(nodes, 'decoder_gqa', inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18),
                                                    helper.make_opsetid('com.microsoft', 1)])
    model.ir_version = 9
    return model


def quantize(src: Path, dst: Path) -> Path:
    """Dynamic int8 as ``onnx_export.quantize_int8`` does, plus the contrib ops' tensor type."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process the graph
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=['MatMul', 'Gemm'],
                     extra_options={'MatMulConstBOnly': True,
                                    'DefaultTensorType': TensorProto.FLOAT})
    return dst


@dataclass
class Stream:
    """The token embeddings, Visual Focus bias and per-layer gate every decoder is fed."""

    embeds: np.ndarray  # [1, N, hidden]
    bias: np.ndarray  # [1, N]
    gates: np.ndarray  # [layers]

    @classmethod
    def random(cls, dims: Dims, length: int, seed: int) -> 'Stream':
        rng = np.random.default_rng(seed)
        embeds = rng.standard_normal((1, length, dims.hidden)) * 0.05
        bias = ALPHA * (rng.random((1, length)) < 0.25)
        gates = (rng.random(dims.layers) < 0.5).astype(np.float32)
        gates[rng.integers(dims.layers)] = 1.0
        return cls(embeds.astype(np.float32), bias.astype(np.float32), gates)


class Decoder:
    """
    ``session.run`` with numpy in and out; the present keys/values are the next past.

    ``fused``: the graph built here (seqlens_k / total_sequence_length) rather than the
    exported one (attention_mask / position_ids).
    """

    def __init__(self, path: Path, dims: Dims, stream: Stream, threads: int,
                 fused: bool) -> None:
        self.session = _OrtGraph(path, PROVIDERS, threads).session
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.dims, self.stream, self.fused = dims, stream, fused
        self.past, self.length = {}, 0

    def _feed(self, start: int, end: int) -> dict[str, np.ndarray]:
        feed = {'inputs_embeds': self.stream.embeds[:, start:end],
                'attention_bias': self.stream.bias[:, :end],
                'attention_bias_layers': self.stream.gates}
        if self.fused:
            feed['seqlens_k'] = np.array([end - 1], np.int32)
            feed['total_sequence_length'] = np.array(end, np.int32)
        else:
            feed['attention_mask'] = np.ones((1, end), np.int64)
            feed['position_ids'] = np.arange(start, end, dtype=np.int64)[None]
        return feed | self.past

    def _run(self, start: int, end: int) -> np.ndarray:
        outs = self.session.run(self.outputs, self._feed(start, end))
        self.past = {name.replace('present.', 'past_key_values.'): out
                     for name, out in zip(self.outputs, outs) if name.startswith('present.')}
        self.length = end
        return outs[0].reshape(-1)

    def prefill(self, tokens: int) -> np.ndarray:
        """Logits after the first ``tokens`` positions, from no past."""
        shape = (1, self.dims.kv_heads, 0, self.dims.head_dim)
        self.past = {f'past_key_values.{i}.{kind}': np.zeros(shape, np.float32)
                     for i in range(self.dims.layers) for kind in ('key', 'value')}
        return self._run(0, tokens)

    def step(self) -> np.ndarray:
        """Logits after one more position."""
        return self._run(self.length, self.length + 1)

    def key(self, layer: int) -> np.ndarray:
        """The cached keys of ``layer``, [1, kv heads, length, head dim]."""
        return self.past[f'past_key_values.{layer}.key']


class SharedDecoder(Decoder):
    """
    The fused graph with IO binding and the KV cache in one shared buffer.

    The cache is one array [layers, 2, 1, kv heads, max_len, head dim]; each layer's key and
    value slices are bound as both its past and its present.
    """

    def __init__(self, path: Path, dims: Dims, stream: Stream, threads: int,
                 max_len: int) -> None:
        super().__init__(path, dims, stream, threads, fused=True)
        self.cache = np.zeros((dims.layers, 2, 1, dims.kv_heads, max_len, dims.head_dim),
                              np.float32)
        self.logits = np.zeros((1, 1, dims.vocab), np.float32)
        self.binding = self.session.io_binding()
        for i in range(dims.layers):
            for k, kind in enumerate(('key', 'value')):
                value = ort.OrtValue.ortvalue_from_numpy(self.cache[i, k])
                self.binding.bind_ortvalue_input(f'past_key_values.{i}.{kind}', value)
                self.binding.bind_ortvalue_output(f'present.{i}.{kind}', value)
        self.binding.bind_ortvalue_output('logits',
                                          ort.OrtValue.ortvalue_from_numpy(self.logits))

    def _run(self, start: int, end: int) -> np.ndarray:
        for name, value in self._feed(start, end).items():
            self.binding.bind_cpu_input(name, np.ascontiguousarray(value))
        self.session.run_with_iobinding(self.binding)
        self.length = end
        return self.logits.reshape(-1).copy()

    def prefill(self, tokens: int) -> np.ndarray:
        self.past = {}
        return self._run(0, tokens)

    def key(self, layer: int) -> np.ndarray:
        return self.cache[layer, 0, :, :, :self.length]


def compare(label: str, ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    """Print max abs difference, cosine and argmax agreement per phase; worst cosine."""
    worst = 1.0
    for phase, a, b in zip(('prefill', 'step'), ref, got):
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        cos = float(a64 @ b64 / np.linalg.norm(a64) / np.linalg.norm(b64))
        worst = min(worst, cos)
        print(f'  {label:36s} {phase:8s} {np.abs(a - b).max():10.3g} {cos:10.6f} '
              f'{"yes" if a.argmax() == b.argmax() else "NO":>7s}')
    return worst


def check(graphs: dict[str, Path], dims: Dims, threads: int, max_len: int) -> bool:
    """Numerics of every graph against the exported fp32 one; False if fused fp32 is off."""
    stream = Stream.random(dims, 41, seed=0)
    runs = {'exported fp32': Decoder(graphs['exported fp32'], dims, stream, threads, False),
            'exported int8': Decoder(graphs['exported int8'], dims, stream, threads, False),
            'fused fp32': Decoder(graphs['fused fp32'], dims, stream, threads, True),
            'fused int8': Decoder(graphs['fused int8'], dims, stream, threads, True),
            'fused int8 shared': SharedDecoder(graphs['fused int8'], dims, stream, threads,
                                               max_len)}
    logits = {name: [run.prefill(40), run.step()] for name, run in runs.items()}
    print(f'\nnumerics: prefill 40 + 1 step, logits of the last position, Visual Focus bias '
          f'{ALPHA} on {int((stream.bias > 0).sum())}/41 keys, gate on in '
          f'{int(stream.gates.sum())}/{dims.layers} layers')
    print(f'  {"graph vs reference":36s} {"phase":8s} {"max |diff|":>10s} {"cosine":>10s} '
          f'{"argmax":>7s}')
    ref = logits['exported fp32']
    fp32_cos = compare('fused fp32 vs exported fp32', ref, logits['fused fp32'])
    compare('fused int8 vs exported fp32', ref, logits['fused int8'])
    compare('exported int8 vs exported fp32', ref, logits['exported int8'])
    compare('fused int8 shared vs fused int8', logits['fused int8'],
            logits['fused int8 shared'])
    last = dims.layers - 1
    kv_diff = np.abs(runs['fused int8'].key(last) - runs['fused int8 shared'].key(last)).max()
    print(f'  keys of layer {last}, shared vs not: max |diff| {kv_diff:.3g}')
    return fp32_cos > 0.999


def bench(runs: dict[str, Decoder], rounds: int, prefill: int, past: int,
          steps: int) -> dict[str, dict[str, list]]:
    """Per variant and round: the prefill time and the step times, ms."""
    for run in runs.values():  # warm-up
        run.prefill(prefill)
        for _ in range(3):
            run.step()
    times = {name: {'prefill': [], 'step': []} for name in runs}
    for r in range(rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run.prefill(prefill)
            times[name]['prefill'].append((time.perf_counter() - t0) * 1e3)
            run.prefill(past)
            step_ms = []
            for _ in range(steps):
                t0 = time.perf_counter()
                run.step()
                step_ms.append((time.perf_counter() - t0) * 1e3)
            times[name]['step'].append(step_ms)
        print(f'round {r + 1}/{rounds}: step ms (median) '
              + ', '.join(f'{name} {statistics.median(t["step"][-1]):.2f}'
                          for name, t in times.items()),
              flush=True)
    return times


def run(args: argparse.Namespace, dims: Dims, work: Path, needed: int) -> int:
    """Build, check and time; the graphs go to ``work``."""
    graphs = {'exported fp32': onnx_file(args.folder, DECODER_FILE),
              'exported int8': onnx_file(args.folder, DECODER_FILE, 'int8'),
              'fused fp32': work / 'decoder_gqa.onnx',
              'fused int8': work / 'decoder_gqa_int8.onnx'}
    t0 = time.perf_counter()
    onnx.save(build_fused(dims, read_weights(graphs['exported fp32'], dims)),
              str(graphs['fused fp32']))
    quantize(graphs['fused fp32'], graphs['fused int8'])
    print(f'built and quantized the fused graph in {time.perf_counter() - t0:.0f} s: '
          f'{graphs["fused int8"]}', flush=True)

    if not check(graphs, dims, args.threads, args.max_len):
        print('fused fp32 logits differ from the exported graph: not timing it')
        return 1

    stream = Stream.random(dims, needed, seed=1)
    runs = {'exported int8': Decoder(graphs['exported int8'], dims, stream, args.threads,
                                     False),
            'fused int8': Decoder(graphs['fused int8'], dims, stream, args.threads, True),
            'fused int8 shared KV + IO binding': SharedDecoder(
                graphs['fused int8'], dims, stream, args.threads, args.max_len)}
    print(f'\ntiming: {args.rounds} rounds, {args.threads} threads, prefill {args.prefill} '
          f'tokens; {args.steps} steps from a past of {args.past}', flush=True)
    times = bench(runs, args.rounds, args.prefill, args.past, args.steps)
    base = times['exported int8']
    print('\nmedians; a ratio is the median over rounds of (round median / exported int8)')
    print(f'{"variant":36s} {"step ms":>8s} {"prefill ms":>11s} {"step ratio":>11s} '
          f'{"prefill ratio":>14s}')
    for name, t in times.items():
        step_ratio = statistics.median(statistics.median(a) / statistics.median(b)
                                       for a, b in zip(t['step'], base['step']))
        prefill_ratio = statistics.median(a / b for a, b in zip(t['prefill'], base['prefill']))
        all_steps = [ms for round_ms in t['step'] for ms in round_ms]
        print(f'{name:36s} {statistics.median(all_steps):8.2f} '
              f'{statistics.median(t["prefill"]):11.1f} {step_ratio:11.3f} '
              f'{prefill_ratio:14.3f}')
    return 0



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('folder', type=Path)
    parser.add_argument('--rounds', type=int, default=8)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--prefill', type=int, default=170)
    parser.add_argument('--past', type=int, default=380)
    parser.add_argument('--steps', type=int, default=16)
    parser.add_argument('--max-len', type=int, default=1024,
                        help='positions of the shared KV buffer')
    parser.add_argument('--work', type=Path, default=None)
    args = parser.parse_args()
    ort.set_default_logger_severity(3)
    print(read_cpu().header(args.threads))
    print(f'load at start: {os.getloadavg()}', flush=True)
    dims = read_dims(args.folder)
    needed = max(args.prefill, args.past + args.steps)
    if needed > min(args.max_len, dims.max_pos):
        parser.error(f'{needed} positions do not fit --max-len {args.max_len} / '
                     f'max_position_embeddings {dims.max_pos}')
    print(f'{args.folder.name}: {dims.layers} layers, hidden {dims.hidden}, heads {dims.heads}'
          f' (kv {dims.kv_heads}) x {dims.head_dim}, ffn {dims.ffn}, vocab {dims.vocab}')
    with tempfile.TemporaryDirectory(prefix='gqa_decoder_') as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        status = run(args, dims, work, needed)
    print(f'load at end: {os.getloadavg()}')
    return status

if __name__ == '__main__':
    sys.exit(main())
