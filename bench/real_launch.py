# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The launch file under the real `launch` / `launch_ros`, as `ros2 launch` runs it.

For a machine where a ROS 2 install is sourced (this package built with colcon into it), or
where `launch` and `launch_ros` are importable some other way. It starts
`ros2 launch edgevlm_ros edgevlm.launch.py` with the demo's arguments through the real
`LaunchService` (what `ros2 launch` calls) in its own process group, waits until answers flow,
SIGKILLs each node once, and ends with a SIGINT to the whole process group (what Ctrl-C in a
terminal does: launch and every node get it, and launch then SIGINTs each node again). It
prints, per node: the seconds from the kill to the next Answer and to the respawned process,
and how each process ended on Ctrl-C, as launch reported it ("finished cleanly" or "died" with
its exit code).

Prints numbers only; nothing is asserted. The stand-in (`make demo`, `edgevlm_launch`) is what
CI tests; this is the check of the same file under the real packages, which PyPI does not have.

usage: python bench/real_launch.py [--domain 95] [--timeout 120] [--out build/real_launch.txt]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import threading
import time

NODES = ('camera_node', 'cloud_bridge_node', 'context_fusion_node', 'frame_source_node',
         'edge_svlm_node')
# What ros2launch.api.launch_a_launch_file does with `ros2 launch <package> <file> k:=v ...`.
LAUNCH = """
import os, sys
import launch
from ament_index_python.packages import get_package_share_directory
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import AnyLaunchDescriptionSource
path = os.path.join(get_package_share_directory('edgevlm_ros'), 'launch', 'edgevlm.launch.py')
args = [tuple(a.split(':=', 1)) for a in sys.argv[1:]]
service = launch.LaunchService(argv=sys.argv[1:], noninteractive=True)
service.include_launch_description(launch.LaunchDescription([
    IncludeLaunchDescription(AnyLaunchDescriptionSource(path), launch_arguments=args)]))
sys.exit(service.run())
"""


def until(predicate, timeout_s: float, poll_s: float = 0.05):
    """Poll predicate until it returns something truthy; None after timeout_s."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    return None


def node_pid(launch_pid: int, executable: str) -> int | None:
    from edgevlm_ros.tooling import launch_runner  # after the check that launch is importable

    try:
        return launch_runner.child_pid(launch_pid, executable)
    except LookupError:
        return None


def kill_once(launch_pid: int, exe: str, pid: int, answers: list[float],
              timeout_s: float) -> tuple[str, str, str]:
    """SIGKILL one node: (s to the next answer, s to its respawned process, the new pid)."""
    os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic()
    seen = len(answers)

    def respawned() -> int | None:
        new = node_pid(launch_pid, exe)
        return new if new not in (None, pid) else None

    back = until(respawned, timeout_s)
    t_back = time.monotonic() - t_kill if back else float('nan')
    nxt = until(lambda: len(answers) > seen, timeout_s)
    t_next = answers[seen] - t_kill if nxt else float('nan')
    return f'{t_next:.1f}', f'{t_back:.1f}', str(back or '-')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[1])
    parser.add_argument('--domain', type=int, default=95)
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='seconds to wait for the first answers, and for each recovery')
    parser.add_argument('--out', type=Path, default=Path('build/real_launch.txt'),
                        help="launch's own output")
    opts = parser.parse_args()
    try:
        import launch  # noqa: F401
        import launch_ros  # noqa: F401
    except ImportError as e:
        print(f'the real launch packages are not importable ({e}): source a ROS 2 install')
        return 2
    from edgevlm_msgs.msg import Answer
    from edgevlm_ros.backends.cpu import read_cpu
    from edgevlm_ros.ros.qos import RESULTS
    from edgevlm_ros.tooling import demo, launch_runner
    import rclpy
    from rclpy.node import Node

    os.environ['ROS_DOMAIN_ID'] = str(opts.domain)
    launch_runner.local_ros_environment()
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    out = opts.out.open('w')
    args = [f'{k}:={v}' for k, v in demo.DEMO_ARGS.items()]
    print(read_cpu().header(), flush=True)
    print(f'launch: {launch.__file__}', flush=True)
    proc = subprocess.Popen([sys.executable, '-c', LAUNCH, *args], stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    rclpy.init(args=[])  # argv holds launch arguments (k:=v), not ROS arguments
    probe = Node('real_launch_probe')
    answers: list[float] = []
    probe.create_subscription(Answer, 'edgevlm/answer',
                              lambda _m: answers.append(time.monotonic()), RESULTS)
    threading.Thread(target=rclpy.spin, args=(probe,), daemon=True).start()
    rows = []
    try:
        t0 = time.monotonic()
        if not until(lambda: len(answers) >= 3, opts.timeout):
            print(f'no answers within {opts.timeout:.0f} s; see {opts.out}')
            return 1
        print(f'first answer {answers[0] - t0:.1f} s after the start')
        for exe in NODES:
            pid = node_pid(proc.pid, exe)
            if pid is None:
                rows.append((exe, 'not running', '', ''))
                continue
            rows.append((exe, *kill_once(proc.pid, exe, pid, answers, opts.timeout)))
        seen = len(answers)
        ok = until(lambda: len(answers) >= seen + 3, opts.timeout)
        print('answers flowing after the last restart:', 'yes' if ok else 'no')
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole group
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = f'{proc.wait()} (killed: still running 60 s after the SIGINT)'
        probe.destroy_node()
        rclpy.try_shutdown()
        out.close()
    text = opts.out.read_text(errors='replace')
    endings = {}
    after_ctrl_c = text.split('user interrupted with ctrl-c', 1)[-1]
    for m in re.finditer(r'\[(\w+)-\d+\]: process (has finished cleanly|has died \[pid \d+, '
                         r'exit code (-?\d+))', after_ctrl_c):
        endings[m.group(1)] = 'cleanly' if m.group(3) is None else f'exit code {m.group(3)}'
    print(f"\n{'node':<22}{'next answer s':>14}{'respawned s':>13}  new pid   on Ctrl-C")
    for exe, t_next, t_back, pid in rows:
        print(f'{exe:<22}{t_next:>14}{t_back:>13}  {pid:<9} {endings.get(exe, "?")}')
    print(f'launch exited {code}; {len(answers)} answers; its output: {opts.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
