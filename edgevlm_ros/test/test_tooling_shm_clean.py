# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""`make shm-clean` frees a dead participant's shared memory, not a live one's."""

from pathlib import Path
import re
import signal
import subprocess
import sys

from rclpy.qos import QoSProfile

# A participant that publishes '<tag>:<n>' at 20 Hz until it is stopped.
TALKER = """
import sys
import rclpy
from std_msgs.msg import String
rclpy.init(args=[])
node = rclpy.create_node('shm_talker_' + sys.argv[1])
pub = node.create_publisher(String, 'shm_clean_probe', 10)
count = [0]
def tick():
    count[0] += 1
    pub.publish(String(data=f'{sys.argv[1]}:{count[0]}'))
node.create_timer(0.05, tick)
try:
    rclpy.spin(node)
except BaseException:
    pass
"""

# The command `make shm-clean` runs: Fast DDS's own cleaner, shipped in the ros-fastdds wheel.
CLEAN = [sys.executable, str(Path(sys.prefix) / 'tools' / 'fastdds' / 'fastdds.py'),
         'shm', 'clean']


def _talker(tag: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-c', TALKER, tag], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_the_clean_removes_a_killed_participants_segment_and_the_running_graph_goes_on(probe):
    from std_msgs.msg import String

    heard = probe.listen(String, 'shm_clean_probe', QoSProfile(depth=50))
    tags = lambda: {m.data.split(':')[0] for m in heard}  # noqa: E731
    live, victim = _talker('live'), _talker('victim')
    late = None
    try:
        assert probe.until(lambda: {'live', 'victim'} <= tags(), 30.0), tags()
        victim.send_signal(signal.SIGKILL)
        victim.wait()

        out = subprocess.run(CLEAN, capture_output=True, text=True, timeout=60, check=True).stdout
        zombies = int(re.search(r'(\d+) zombie segments cleaned', out).group(1))
        assert zombies >= 1, out   # the killed talker's (other suites' dead ones may add to it)

        # `rm /dev/shm/fastdds_*` here would leave the probe deaf: no more 'live' messages after
        # a moment, and a participant started afterwards never reaches it.
        heard.clear()
        late = _talker('late')
        assert probe.until(lambda: {'live', 'late'} <= tags(), 30.0), tags()
    finally:
        for p in (live, late):
            if p is not None:
                p.send_signal(signal.SIGINT)
        for p in (live, late):
            if p is not None:
                p.wait(timeout=15)
