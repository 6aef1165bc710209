# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""ROS helpers of the nodes: message conversions, diagnostics, entry, parameters, QoS."""
