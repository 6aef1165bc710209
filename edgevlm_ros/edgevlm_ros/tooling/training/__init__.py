# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The micro SVLM: a SmolVLM-layout (Idefics3) model trained here, offline, on the synthetic world.

No pretrained VLM weights reach this project's machines, so the edge model that makes answers
meaningful is trained from scratch by `edgevlm train-svlm`:

* Architecture: Idefics3 (the SmolVLM-256M/500M layout: SigLIP vision tower, pixel-shuffle
  connector, Llama text model, SmolVLM chat template), narrowed so that it trains on two CPU
  cores: a 192 px image in 16 px patches, pixel shuffle 2 -> 6 x 6 = 36 image tokens, no image
  splitting. It is saved and loaded like any checkpoint (``save_pretrained`` / AutoProcessor /
  AutoModelForImageTextToText), so the edge node, Visual Focus and the token-geometry code see
  a real model.
* Tokenizer: byte-level BPE trained on the tiny corpus plus every question and answer of the
  world, so a world word is one token (answers are short: the model learns them quickly).
* Data (``sim.svlm_data``): curriculum from one large object to the evaluation world, four
  questions per frame (the frame goes through the vision tower once per batch item, and its
  features are shared by the questions), multi-turn histories about earlier frames with right or
  wrong answers, each turn the edge's own or a cloud answer (as Context Replacement leaves the
  history under a cloud latency). The chat template marks cloud turns ("Assistant (cloud):"),
  so the model can learn to trust them more than its own.
* Fine-tuning: ``TrainConfig.init`` starts from a trained checkpoint (its processor takes the
  micro chat template) and trains on the evaluation-world stage only.
* Loss: cross-entropy on the answer tokens (the end-of-utterance token included) plus, during
  training only, an auxiliary per-image-token loss (which colours and shapes each token's cell
  shows) on the connector output, which teaches the vision tower to see the objects early. The
  auxiliary head is not part of the saved model.

The run writes, into its output directory: the checkpoint (``model.safetensors`` + processor),
``curve.jsonl`` (loss, running answer accuracy and held-out accuracy with no, right and wrong
history over the steps), ``curve.png``, ``train.json`` (the command, settings, time taken) and,
once ``evaluate`` has run, ``heldout.json``. It checkpoints every ``eval_every`` steps, so a run
stopped early still leaves a usable model.

Modules by role: ``spec`` (the sizes, tokenizer, model build, loading a trained one),
``trainer`` (batches, the loss, the training loop, checkpoints, curves), ``heldout`` (the
held-out evaluation and the model card). Submodules are imported on demand so that importing
this package never loads torch. Nothing that runs on the robot imports this package.
"""
