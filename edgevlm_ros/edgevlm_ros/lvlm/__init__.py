# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Local LVLMs: the OpenAI-compatible ``server``, the ``simulated`` LVLM of the synthetic world."""
