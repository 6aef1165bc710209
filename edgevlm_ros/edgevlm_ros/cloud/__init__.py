# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Cloud LVLM access: the OpenAI-compatible HTTP client used by the cloud bridge."""
