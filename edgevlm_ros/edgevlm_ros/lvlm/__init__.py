# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Local LVLMs: the OpenAI-compatible server, the simulated LVLM, the frame recognition they share.

``server``: the OpenAI-compatible server; ``simulated``: the simulated LVLM of the synthetic world;
``frame_match``: the frame recognition it answers by (shared with the oracle test double).
"""
