# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Edge model backends: one interface, one module per runtime.

The interface is ``base.EdgeSvlm``, made by ``base.load_svlm``.

* ``base``: the interface, ``SvlmResult``, option checks, the prefix-cache bookkeeping (no torch);
* ``transformers_backend``: any AutoModelForImageTextToText checkpoint on CPU or CUDA;
* ``onnx_backend``: exported graphs (``edgevlm export-onnx``) on ONNX Runtime or OpenVINO;
* ``visual_focus``: the attention-logit bias for the transformers backend.

Model building and training live in ``edgevlm_ros.models``; test doubles in
``edgevlm_ros.doubles``; the local LVLM server and the simulated LVLM in ``edgevlm_ros.lvlm``.
Submodules are imported on demand so that importing this package never loads torch.
"""
