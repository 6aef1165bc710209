# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""edgevlm_ros: an edge SVLM answers every step; a late cloud LVLM corrects it."""
