# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Edge model backends: one interface, one module per runtime.

The interface is ``base.EdgeSvlm``; every model is made from its spec by the one model table,
``registry.load_svlm`` (edge) / ``registry.load_lvlm`` (LVLM server). Imports point one way:
``base`` <- the runtimes (and the doubles, the LVLMs) <- ``registry``.

* ``base``: the interface, ``SvlmResult``, option checks, ``choose_backend``, the prefix-cache
  bookkeeping (no torch; it imports no backend, test double or LVLM);
* ``registry``: model specs -> loaders (runtimes imported only when a spec asks for them);
* ``transformers_backend``: any AutoModelForImageTextToText checkpoint on CPU or CUDA;
* ``onnx_backend``: exported graphs (``edgevlm export-onnx``) on ONNX Runtime or OpenVINO;
* ``visual_focus``: the attention-logit bias for the transformers backend.

Model building and training live in ``edgevlm_ros.models``; test doubles in
``edgevlm_ros.doubles``; the local LVLM server and the simulated LVLM in ``edgevlm_ros.lvlm``.
Submodules are imported on demand so that importing this package never loads torch.
"""
