# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Start a camera_node executable, feed it frames and wait for a Step: proves an install works."""

import subprocess
import sys
import time

from edgevlm_msgs.msg import Step
import numpy as np
import rclpy
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image


def main() -> int:
    node_exe = sys.argv[1]
    proc = subprocess.Popen([node_exe, '--ros-args', '-p', 'step_rate_hz:=50.0'])
    rclpy.init()
    node = rclpy.create_node('colcon_smoke')
    got = []
    node.create_subscription(Step, 'edgevlm/step', got.append, QoSProfile(depth=10))
    pub = node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    frame = Image(height=24, width=32, encoding='bgr8', step=96)
    frame.data = np.full((24, 32, 3), 77, np.uint8).tobytes()
    end = time.monotonic() + 60
    try:
        while not got and time.monotonic() < end and proc.poll() is None:
            frame.header.stamp = node.get_clock().now().to_msg()
            pub.publish(frame)
            rclpy.spin_once(node, timeout_sec=0.2)
    finally:
        proc.send_signal(2)
        code = proc.wait(15)
        node.destroy_node()
        rclpy.try_shutdown()
    if not got:
        print(f'colcon smoke: no Step from {node_exe} (exit code {code})')
        return 1
    print(f'colcon smoke: {node_exe} turned a frame into step {got[0].step_id} '
          f'({got[0].image.width}x{got[0].image.height} {got[0].image.encoding}); exit {code}')
    return 0 if code == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
