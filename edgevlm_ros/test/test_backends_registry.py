# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The model table (backends/registry.py): one place where a model spec becomes a model."""

import json
from pathlib import Path
import subprocess
import sys

from edgevlm_ros.backends import registry
from edgevlm_ros.doubles.scripted import ORACLE_PREFIX, SCRIPTED_PREFIX, ScriptedSvlm
from edgevlm_ros.lvlm.simulated import SIMULATED_PREFIX
import pytest


def script(tmp_path: Path) -> str:
    path = tmp_path / 'script.json'
    path.write_text(json.dumps({'answer': 'a'}))
    return str(path)


def test_table_prefixes_are_the_ones_the_loaded_modules_parse() -> None:
    assert list(registry.SPEC_TO_LOADER) == [SCRIPTED_PREFIX, ORACLE_PREFIX, SIMULATED_PREFIX, '']


@pytest.mark.parametrize('spec, row', [
    ('scripted:/a.json', 'scripted:'), ('oracle:/bag', 'oracle:'),
    ('simulated:synth', 'simulated:'), ('micro', ''), ('tiny', ''), ('tiny-cloud', ''),
    ('/models/edge', ''), ('HuggingFaceTB/SmolVLM-256M-Instruct', ''),
])
def test_every_spec_has_one_row(spec: str, row: str) -> None:
    assert registry.model_kind(spec) is registry.SPEC_TO_LOADER[row]


def test_load_svlm_dispatches_scripted_specs(tmp_path: Path) -> None:
    svlm = registry.load_svlm('scripted:' + script(tmp_path), max_new_tokens=5,
                              image_longest_edge=512, do_image_splitting=False, num_threads=0,
                              focus_layers=None)
    assert isinstance(svlm, ScriptedSvlm) and svlm.max_new_tokens == 5


def test_load_svlm_refuses_cloud_only_specs_and_bad_options_before_loading(
        tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='oracle TEST DOUBLE.*not an edge model'):
        registry.load_svlm(f'oracle:{tmp_path}/no-bag')
    with pytest.raises(ValueError, match='simulated LVLM.*not an edge model'):
        registry.load_svlm('simulated:synth')
    with pytest.raises(ValueError, match='backend must be one of'):
        registry.load_svlm('scripted:' + script(tmp_path), backend='tensorflow')
    with pytest.raises(ValueError, match='non-empty string'):
        registry.load_svlm('  ')


def test_load_lvlm_checks_device_and_dtype_for_every_spec(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='device must be one of'):
        registry.load_lvlm('scripted:' + script(tmp_path), max_new_tokens=4, device='tpu')
    with pytest.raises(ValueError, match='dtype must be one of'):
        registry.load_lvlm('simulated:synth', max_new_tokens=4, dtype='fp16')
    double = registry.load_lvlm('scripted:' + script(tmp_path), max_new_tokens=4, num_threads=2,
                                device='cuda:3', dtype='bfloat16')
    assert isinstance(double, ScriptedSvlm) and double.max_new_tokens == 4


def test_importing_the_table_loads_no_runtime() -> None:
    code = ('import sys; import edgevlm_ros.backends.registry; '
            "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'cv2', 'transformers') "
            'if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == '[]'
