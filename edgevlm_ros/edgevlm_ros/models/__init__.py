# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Making models, not running them.

Names -> directories (``registry``), random-weight models of real architectures (``tiny``),
processors without torchvision (``compat``), the chat both training and inference build
(``chat``), the ONNX export (``onnx_export``). Training the micro SVLM is tooling
(``edgevlm_ros.tooling.training``).

The runtimes that answer with these models are in ``edgevlm_ros.backends``. Submodules are
imported on demand so that importing this package never loads torch.
"""
