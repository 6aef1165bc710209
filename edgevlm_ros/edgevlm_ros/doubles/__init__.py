# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""TEST DOUBLES: scripted stand-ins for the edge SVLM and the cloud LVLM (``scripted``)."""
