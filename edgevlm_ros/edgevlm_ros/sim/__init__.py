# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
What stands in for the robot's world; ROS-free and torch-free.

The synthetic world (``synthworld``), a video or image folder played as a camera
(``frame_sources``), the SVLM data drawn from the world (``svlm_data``).
"""
