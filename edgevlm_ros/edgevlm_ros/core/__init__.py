# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""ROS-free core of edgevlm_ros: context, focus geometry, images, latency (no rclpy, no torch)."""
