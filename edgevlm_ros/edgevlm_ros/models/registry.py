# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Model names -> model directories: the one place that knows the package's named models.

* 'micro' (or 'micro-svlm'): the trained micro SVLM that ships with the package;
* 'tiny', 'tiny-cloud' and the tiny kind names (``tiny.TINY_KINDS``): random-weight models of
  real architectures, built offline on first use;
* anything else (a local checkpoint directory, a hub id) is returned unchanged.

No torch at import: the builders load only when a tiny kind is asked for.
"""

from __future__ import annotations

from pathlib import Path
import sys

MICRO_NAME = 'micro-svlm'
MICRO_ALIASES = ('micro', MICRO_NAME)


def shipped_model_dir() -> Path:
    """
    The trained micro SVLM that ships with the package (model spec 'micro').

    Looked for, in order: the ament share directory (``AMENT_PREFIX_PATH``, a sourced ROS
    workspace), the share directory of the running Python's prefix (a venv or ``pip install``:
    setup.py's data_files land there, so a plain shell finds it without sourcing anything), and
    edgevlm_ros/weights next to the Python package (a source tree).
    """
    candidates = []
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
        try:
            candidates.append(Path(get_package_share_directory('edgevlm_ros')) / 'weights'
                              / MICRO_NAME)
        except (PackageNotFoundError, OSError, ValueError):  # no AMENT_PREFIX_PATH
            pass
    except ImportError:
        pass
    candidates.append(Path(sys.prefix) / 'share' / 'edgevlm_ros' / 'weights' / MICRO_NAME)
    candidates.append(Path(__file__).resolve().parents[2] / 'weights' / MICRO_NAME)
    for path in candidates:
        if (path / 'model.safetensors').is_file():
            return path
    raise FileNotFoundError(
        f'the micro SVLM is not installed (looked in {", ".join(map(str, candidates))}); '
        'reinstall the package, or train one: edgevlm train-svlm DIR')


def resolve_model(spec: str) -> str:
    """
    Map a model spec to a directory ``from_pretrained`` can load (or a hub id, unchanged).

    'micro' -> ``shipped_model_dir()``; 'tiny' -> the edge tiny model, 'tiny-cloud' -> the cloud
    stand-in (both built on first use); a tiny kind name ('smolvlm-tiny', ...) works too.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f'model spec must be a non-empty string, got {spec!r}')
    spec = spec.strip()
    if spec in MICRO_ALIASES:
        return str(shipped_model_dir())
    from edgevlm_ros.models import tiny

    kind = tiny.TINY_ALIASES.get(spec, spec if spec in tiny.TINY_KINDS else None)
    if kind is None:
        return spec
    return str(tiny.ensure_tiny_model(kind, progress=sys.stderr.isatty()))
