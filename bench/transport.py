# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
640x480 image transport between ROS nodes: raw Image vs JPEG CompressedImage vs the Step message.

A publisher process and a subscriber process (real DDS over loopback with the project's Fast DDS
profile: shared memory for large samples, UDP on lo) exchange --count frames of the built-in
camera pan at --rate Hz (0: as fast as the publisher can), after a few unmeasured warm-up frames.
Modes, each with the QoS the graph uses:

  raw   sensor_msgs/Image rgb8 (frame_source -> camera_node: sensor-data QoS -> newest-only)
  jpeg  sensor_msgs/CompressedImage, JPEG quality 90 (the same, compressed transport)
  step  edgevlm_msgs/Step with the rgb8 Image inside (camera_node -> edge: reliable -> best effort)

The stamp is taken before the message is built, so "received" (callback entry - stamp, one wall
clock) includes building it (JPEG encode, bytes copy), publish, DDS and deserialisation; "usable"
adds turning it into an RGB array (JPEG decode, raw copy). Build and decode are also given on their
own. Throughput: frames received per second between the first and the last one. The same again
with publisher and subscriber nodes in one process (one executor) unless --no-inproc. Prints
numbers only; nothing is asserted.

usage: .venv/bin/python bench/transport.py [--count 300] [--rate 30] [--modes raw,jpeg,step]
       [--domain 97] [--no-inproc]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

# Test suites take domains 1..90 (conftest); benches use 91..99.
DEFAULT_DOMAIN = 97
WARMUP = 10
QUALITY = 90
MODES = ('raw', 'jpeg', 'step')


def _env(domain: int) -> None:
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    from ament_index_python.packages import get_package_share_directory

    os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = os.path.join(
        get_package_share_directory('edgevlm_ros'), 'config', 'fastdds_localhost.xml')


def _topic_types(mode: str):
    from edgevlm_msgs.msg import Step
    from edgevlm_ros.ros.qos import LATEST_FRAME, STEP_PUBLISHER
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    if mode == 'raw':
        return Image, 'bench/image_raw', qos_profile_sensor_data, LATEST_FRAME
    if mode == 'jpeg':
        return CompressedImage, 'bench/image_raw/compressed', qos_profile_sensor_data, \
            LATEST_FRAME
    return Step, 'bench/step', STEP_PUBLISHER, LATEST_FRAME


class Publisher:
    """Builds and publishes frame i of the pan; records how long building took."""

    def __init__(self, node, mode: str) -> None:
        from edgevlm_ros.sim.frame_sources import open_source

        msg_type, topic, pub_qos, _ = _topic_types(mode)
        self.mode, self.node = mode, node
        self.pub = node.create_publisher(msg_type, topic, pub_qos)
        pan = open_source('builtin:pan', 640, 480, 4.0, True, '')
        self.frames = [next(pan) for _ in range(30)]
        self.build_ms: list[float] = []

    def publish(self, i: int) -> None:
        from edgevlm_msgs.msg import Step
        from edgevlm_ros.core.images import encode_jpeg
        from edgevlm_ros.ros.conversions import rgb_to_image
        from sensor_msgs.msg import CompressedImage
        from std_msgs.msg import Header

        rgb = self.frames[i % len(self.frames)]
        header = Header(frame_id=str(i), stamp=self.node.get_clock().now().to_msg())
        t0 = time.perf_counter()
        if self.mode == 'raw':
            msg = rgb_to_image(rgb, header)
        elif self.mode == 'jpeg':
            msg = CompressedImage(header=header, format='jpeg')
            msg.data = encode_jpeg(rgb, QUALITY)
        else:
            msg = Step(header=header, step_id=i, question='What is in front of the robot?',
                       image=rgb_to_image(rgb, header))
        if i >= WARMUP:
            self.build_ms.append((time.perf_counter() - t0) * 1000.0)
        self.pub.publish(msg)


class Subscriber:
    """Records receive latency, decode time and arrival times of measured frames."""

    def __init__(self, node, mode: str) -> None:
        msg_type, topic, _, sub_qos = _topic_types(mode)
        self.mode = mode
        self.received_ms: list[float] = []
        self.usable_ms: list[float] = []
        self.decode_ms: list[float] = []
        self.arrivals: list[float] = []
        self.last_index = -1
        self.bytes = 0
        node.create_subscription(msg_type, topic, self._on_msg, sub_qos)

    def _on_msg(self, msg) -> None:
        from edgevlm_ros.ros.conversions import compressed_to_rgb, image_to_rgb, stamp_to_s

        now = time.time()
        i = int(msg.header.frame_id)
        self.last_index = max(self.last_index, i)
        if i < WARMUP:
            return
        stamp = stamp_to_s(msg.header.stamp)
        t0 = time.perf_counter()
        if self.mode == 'raw':
            rgb = image_to_rgb(msg)
        elif self.mode == 'jpeg':
            rgb = compressed_to_rgb(msg)
        else:
            rgb = image_to_rgb(msg.image)
        decode = (time.perf_counter() - t0) * 1000.0
        self.bytes += len(msg.data) if self.mode != 'step' else len(msg.image.data)
        assert rgb.shape == (480, 640, 3)
        self.received_ms.append((now - stamp) * 1000.0)
        self.decode_ms.append(decode)
        self.usable_ms.append((time.time() - stamp) * 1000.0)
        self.arrivals.append(now)

    def result(self) -> dict:
        return {'received_ms': self.received_ms, 'usable_ms': self.usable_ms,
                'decode_ms': self.decode_ms, 'arrivals': self.arrivals, 'bytes': self.bytes}


def _spin_until(executor, predicate, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.01)
    return predicate()


def _paced(executor, publisher: Publisher, count: int, rate: float) -> None:
    """Publish WARMUP + count frames at rate (0: back to back), spinning in between."""
    period = 1.0 / rate if rate > 0 else 0.0
    t_next = time.monotonic()
    for i in range(WARMUP + count):
        while period and time.monotonic() < t_next:
            executor.spin_once(timeout_sec=max(0.0, t_next - time.monotonic()))
        publisher.publish(i)
        t_next += period
        if not period:
            executor.spin_once(timeout_sec=0.0)


def run_role(opts) -> None:
    """One side (pub or sub) or both in this process; writes a JSON result to opts.out."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init(args=[])  # argv holds launch arguments (k:=v), not ROS arguments
    node = rclpy.create_node(f'bench_transport_{opts.role}')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    out: dict = {}
    try:
        total = WARMUP + opts.count
        if opts.role in ('sub', 'both'):
            sub = Subscriber(node, opts.mode)
        if opts.role in ('pub', 'both'):
            pub = Publisher(node, opts.mode)
            if not _spin_until(executor, lambda: pub.pub.get_subscription_count() > 0, 30.0):
                raise RuntimeError('no subscriber matched within 30 s')
            # The reader also has to match this writer; give discovery a moment to finish.
            _spin_until(executor, lambda: False, 0.5)
            _paced(executor, pub, opts.count, opts.rate)
            out['build_ms'] = pub.build_ms
        if opts.role in ('sub', 'both'):
            budget = 30.0 + total / (opts.rate or 100.0)
            # Done at the last frame, or once frames stop coming (best effort may drop the last).
            end = time.monotonic() + budget
            while time.monotonic() < end and sub.last_index < total - 1:
                executor.spin_once(timeout_sec=0.05)
                if sub.arrivals and time.time() - sub.arrivals[-1] > 2.0:
                    break
            out.update(sub.result())
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    Path(opts.out).write_text(json.dumps(out))


def _child(role: str, mode: str, opts, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, __file__, '--role', role, '--mode', mode, '--count', str(opts.count),
           '--rate', str(opts.rate), '--domain', str(opts.domain), '--out', str(out)]
    return subprocess.Popen(cmd)


def _measure(mode: str, opts, inproc: bool, tmp: Path) -> dict:
    if inproc:
        both = _child('both', mode, opts, tmp / f'{mode}_both.json')
        if both.wait(timeout=600):
            raise RuntimeError(f'{mode} in-process run failed ({both.returncode})')
        return json.loads((tmp / f'{mode}_both.json').read_text())
    sub = _child('sub', mode, opts, tmp / f'{mode}_sub.json')
    pub = _child('pub', mode, opts, tmp / f'{mode}_pub.json')
    try:
        if pub.wait(timeout=600) or sub.wait(timeout=120):
            raise RuntimeError(f'{mode}: publisher {pub.returncode}, subscriber {sub.returncode}')
    finally:
        for p in (pub, sub):
            if p.poll() is None:
                p.kill()
                p.wait()
    result = json.loads((tmp / f'{mode}_sub.json').read_text())
    result['build_ms'] = json.loads((tmp / f'{mode}_pub.json').read_text())['build_ms']
    return result


def _load() -> str:
    return 'load average {:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())


def _p(values: list[float], q: float) -> float:
    from edgevlm_ros.core.stats import percentile

    return percentile(values, q)


def _print_table(title: str, rows: list[tuple[str, dict]], count: int) -> None:
    print(f'\n{title}')
    print(f'  {"mode":<5} {"what, ms":<10} {"p50":>7} {"p95":>7} {"p99":>7} {"max":>7}   '
          f'{"got":>7} {"frames/s":>8} {"MB/s":>6} {"kB/frame":>8}')
    for mode, r in rows:
        n = len(r['received_ms'])
        span = (r['arrivals'][-1] - r['arrivals'][0]) if n > 1 else float('nan')
        fps = (n - 1) / span if n > 1 and span > 0 else float('nan')
        kb = r['bytes'] / max(1, n) / 1024
        first = True
        for what in ('received', 'usable', 'build', 'decode'):
            v = r[f'{what}_ms']
            if not v:
                continue
            stats = f'{_p(v, 50):7.2f} {_p(v, 95):7.2f} {_p(v, 99):7.2f} {max(v):7.2f}'
            tail = (f'   {n:>3}/{count:<3} {fps:8.1f} {fps * kb / 1024:6.1f} {kb:8.0f}'
                    if first else '')
            print(f'  {mode if first else "":<5} {what:<10} {stats}{tail}')
            first = False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('--count', type=int, default=300, help='measured frames per mode')
    ap.add_argument('--rate', type=float, default=30.0, help='frames per second; 0: flat out')
    ap.add_argument('--modes', default=','.join(MODES), help='comma-separated: raw,jpeg,step')
    ap.add_argument('--domain', type=int, default=DEFAULT_DOMAIN,
                    help='ROS_DOMAIN_ID (tests use 1..90)')
    ap.add_argument('--no-inproc', action='store_true', help='skip the one-process runs')
    ap.add_argument('--role', choices=('pub', 'sub', 'both'), help=argparse.SUPPRESS)
    ap.add_argument('--mode', choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument('--out', help=argparse.SUPPRESS)
    opts = ap.parse_args()
    _env(opts.domain)
    if opts.role:
        run_role(opts)
        return 0
    modes = [m.strip() for m in opts.modes.split(',') if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        ap.error(f'unknown modes: {sorted(unknown)}')
    from edgevlm_ros.backends.cpu import read_cpu

    print(read_cpu().header(), flush=True)
    rate = f'{opts.rate:g} Hz' if opts.rate > 0 else 'flat out'
    print(f'640x480 rgb8 frames of the built-in pan, {opts.count} per mode at {rate} '
          f'(+{WARMUP} warm-up), JPEG q{QUALITY}, domain {opts.domain}; {_load()}', flush=True)
    with tempfile.TemporaryDirectory(prefix='edgevlm_transport_') as tmp:
        layouts = [('two processes (publisher | subscriber)', False)]
        if not opts.no_inproc:
            layouts.append(('one process (both nodes, one executor)', True))
        for title, inproc in layouts:
            rows = [(m, _measure(m, opts, inproc, Path(tmp))) for m in modes]
            _print_table(title, rows, opts.count)
    print(f'\n{_load()} (at the end)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
