# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
int8 for the ONNX vision encoder: static (calibrated) QDQ against dynamic quantization.

Calibration frames: the synthetic world (sim/synthworld.py) and the photo pan (builtin:pan),
through the model's own processor (one 512 px tile). Evaluation frames: other frames of both.
For each variant prints the time per tile on ONNX Runtime (p50 of --repeats runs, after a
warm-up), the file size and the cosine similarity of its image features to the fp32 graph's
(mean and worst over the evaluation frames); also OpenVINO on the fp32 graph with NNCF int8
weight compression, and NNCF static int8 (weights and activations, the ``openvino`` backend's
``quantize='int8'`` vision encoder). Calibration frames are ``backends.calibration``'s.
Run it on an exported folder (``python -m edgevlm_ros.models.onnx_export
smolvlm-256m-random DIR --quantize int8``); static graphs are written to --work.

usage: python bench/onnx_quantize.py DIR [--calib 16] [--eval 6] [--repeats 3] [--threads 2]
"""

import argparse
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

from edgevlm_ros.backends.calibration import calibration_frames
from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.backends.onnx_backend import _OrtGraph, _OvGraph
from edgevlm_ros.models.compat import load_processor
import numpy as np
from PIL import Image


def pixels(processor, image: np.ndarray) -> dict[str, np.ndarray]:
    out = processor.image_processor([Image.fromarray(image)], return_tensors='np',
                                    do_image_splitting=False, size={'longest_edge': 512})
    return {'pixel_values': out['pixel_values'].astype(np.float32),
            'pixel_attention_mask': out['pixel_attention_mask'].astype(bool)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('folder', type=Path)
    parser.add_argument('--calib', type=int, default=16)
    parser.add_argument('--eval', type=int, default=6)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--work', type=Path, default=None)
    args = parser.parse_args()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    print(read_cpu().header(args.threads))
    print(f'load at start: {os.getloadavg()}', flush=True)
    processor = load_processor(str(args.folder))
    fp32 = args.folder / 'onnx' / 'vision_encoder.onnx'
    work = args.work or Path(tempfile.mkdtemp(prefix='onnx_quantize_'))
    work.mkdir(parents=True, exist_ok=True)
    calib = [pixels(processor, f) for f in calibration_frames(args.calib)]
    # Other frames than the calibration ones: another world seed, later in the pan.
    evals = [pixels(processor, f) for f in calibration_frames(args.eval, start=1000)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calib)

        def get_next(self):
            return next(self.items, None)

    variants = {'fp32': fp32, 'dynamic int8 (default)': args.folder / 'onnx' /
                'vision_encoder_int8.onnx'}
    for label, per_channel, act in (('static QDQ int8, per-channel', True, QuantType.QUInt8),
                                    ('static QDQ int8 s8s8, per-channel', True, QuantType.QInt8)):
        out = work / f'vision_static_{act.name}.onnx'
        t0 = time.perf_counter()
        quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=act,
                        weight_type=QuantType.QInt8, op_types_to_quantize=['MatMul', 'Gemm'],
                        calibrate_method=CalibrationMethod.MinMax)
        print(f'{label}: calibrated on {len(calib)} frames in {time.perf_counter() - t0:.0f} s',
              flush=True)
        variants[label] = out

    def measure(graph) -> tuple[list[np.ndarray], float]:
        outs = [next(iter(graph.run(e).values())) for e in evals]
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            graph.run(evals[0])
            times.append((time.perf_counter() - t0) * 1000.0)
        return outs, statistics.median(times)

    results = {}
    for label, path in variants.items():
        results[label] = measure(_OrtGraph(path, ['CPUExecutionProvider'], args.threads)) + (
            path.stat().st_size / 1e6,)
    results['OpenVINO NNCF int8 weights, default precision'] = measure(
        _OvGraph(fp32, args.threads, None, True)) + (float('nan'),)
    results['OpenVINO NNCF int8 weights, f32'] = measure(
        _OvGraph(fp32, args.threads, 'f32', True)) + (float('nan'),)
    results['OpenVINO NNCF static int8 (openvino int8)'] = measure(
        _OvGraph(fp32, args.threads, None, True, calibration=lambda: calib)) + (float('nan'),)
    ref = results['fp32'][0]
    print(f'\nvision encoder, one 512 px tile, {args.threads} threads; cosine to fp32 over '
          f'{len(evals)} frames (synthetic world + photo pan)')
    print(f'{"variant":48s} {"ms/tile":>8s} {"MB":>6s} {"cos mean":>9s} {"cos min":>8s}')
    for label, (outs, ms, mb) in results.items():
        cos = [float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))
               for a, b in zip(outs, ref)]
        print(f'{label:48s} {ms:8.0f} {mb:6.0f} {np.mean(cos):9.5f} {min(cos):8.5f}')
    print(f'load at end: {os.getloadavg()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
