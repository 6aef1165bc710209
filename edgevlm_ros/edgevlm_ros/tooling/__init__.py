# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Tooling that never runs on the robot.

The launch stand-in (``launch_runner``), the demo (``demo``), training (``training``). Nodes,
core, backends and cloud never import it.
"""
