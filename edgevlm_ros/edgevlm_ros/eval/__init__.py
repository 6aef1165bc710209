# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Evaluation: datasets into bags, rosbag replay through the live graph, scoring, reports."""
