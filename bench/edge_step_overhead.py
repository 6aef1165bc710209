# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
What the edge node's own code costs per step, around the model: the edge step without the SVLM.

An edge_svlm node in this process, configured with the scripted SVLM (no model time: what is
left is the node's and core.edge_step's Python), answers --steps steps per strategy, each after
a ContextUpdate, a FocusMask and a CloudResponse, as in a running graph. Prints the median and
p90 per step in microseconds. To compare two versions of the package, run this file with each
one first on PYTHONPATH, alternating, in the same minutes (the machine is shared and noisy):

  PYTHONPATH=<checkout>/edgevlm_ros python bench/edge_step_overhead.py --label old
  python bench/edge_step_overhead.py --label new
"""

import argparse
import json
import os
import statistics
import tempfile
import time

from edgevlm_msgs.msg import CloudResponse, ContextUpdate, FocusMask, Region, Step
import numpy as np
import rclpy
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

WARMUP = 100
STRATEGIES = ('edge_only', 'edgevlm', 'edgevlm_arbitrated', 'edgevlm_carried', 'cloud_stale')


def _image(rgb: np.ndarray, header) -> Image:
    h, w = rgb.shape[:2]
    return Image(header=header, height=h, width=w, encoding='rgb8', step=w * 3,
                 data=rgb.tobytes())


def _stamp(msg, t_s: float) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(t_s), round(t_s % 1 * 1e9)


def run(strategy: str, steps: int) -> list[float]:
    from edgevlm_ros.edge_svlm_node import EdgeSvlmNode

    node = EdgeSvlmNode()  # model, autostart and focus.mode come from rclpy.init's arguments
    try:
        assert node.set_parameters([Parameter('strategy', value=strategy)])[0].successful
        node.trigger_configure()
        rgb = np.random.default_rng(0).integers(0, 255, (384, 512, 3), dtype=np.uint8)
        region = Region(label='cup', score=0.9, x_min=0.1, y_min=0.2, x_max=0.3, y_max=0.5)
        q = 'Where is the cup? (a) left (b) right'
        times = []
        for i in range(steps):
            t = 1000.0 + 0.5 * i
            step = Step(step_id=i, question=q)
            _stamp(step, t)
            step.image = _image(rgb, step.header)
            if i:
                cloud = CloudResponse(step_id=i - 1, question=q, answer='right',
                                      status=CloudResponse.STATUS_OK, round_trip_ms=400.0)
                _stamp(cloud, t - 0.5)
                mask = FocusMask(source_step_id=i - 1, target_step_id=i, regions=[region],
                                 age_s=0.5)
                _stamp(mask, t)
            t0 = time.perf_counter()
            if i:
                node._on_cloud_response(cloud)
                node._on_context_update(ContextUpdate(step_id=i - 1, question=q, text='right'))
                node._on_focus_mask(mask)
            node._on_step(step)
            # The step the model thread would take (older checkouts kept it in _pending).
            node._answer_step(getattr(node, '_pending', None) or node._newest_step)
            if hasattr(node, '_pending'):
                node._pending = None
            times.append((time.perf_counter() - t0) * 1e6)
        return times[WARMUP:]  # the first steps fill the history and warm the process
    finally:
        node.destroy_node()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--steps', type=int, default=600)
    ap.add_argument('--label', default='')
    ap.add_argument('--strategies', default=','.join(STRATEGIES),
                    help='comma-separated (an older package may not know every one)')
    args = ap.parse_args()
    try:
        from edgevlm_ros.backends.cpu import read_cpu
    except ImportError:  # an older checkout first on PYTHONPATH: its run has no CPU line
        pass
    else:
        print(read_cpu().header(), flush=True)
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as f:
        json.dump({'answer': 'left', 'echo_cloud': True}, f)
    rclpy.init(args=['--ros-args', '-p', f'model:=scripted:{f.name}', '-p', 'autostart:=false',
                     '-p', 'focus.mode:=attention'])
    try:
        for strategy in args.strategies.split(','):
            t = run(strategy, args.steps)
            q = statistics.quantiles(t, n=10)
            print(f'{args.label:>6} {strategy:<20} median {statistics.median(t):7.0f} us  '
                  f'p90 {q[-1]:7.0f} us  ({len(t)} steps)', flush=True)
    finally:
        rclpy.try_shutdown()
        os.unlink(f.name)


if __name__ == '__main__':
    main()
