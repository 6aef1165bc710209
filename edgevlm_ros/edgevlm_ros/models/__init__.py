# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Model backends: tiny offline VLMs, the transformers edge SVLM, Visual Focus, a local LVLM server.

Submodules are imported on demand (``from edgevlm_ros.models.svlm import TransformersSvlm``) so
that importing this package never loads torch.
"""
