# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The edgevlm model commands: heldout on any edge backend, export-onnx, from a plain shell."""

import json
import os
from pathlib import Path
import subprocess
import sysconfig

from edgevlm_ros.eval import cli
import pytest


@pytest.fixture
def recorded(monkeypatch):
    """heldout.evaluate_heldout and onnx_export.export replaced by recorders."""
    from edgevlm_ros.models import onnx_export
    from edgevlm_ros.tooling.training import heldout

    calls = []

    def evaluate_heldout(model, **kwargs):
        calls.append(('heldout', model, kwargs))
        return {'summary': {'alone': 0.5}}

    def export(model, out, quantize='none', progress=True):
        calls.append(('export', model, {'out': out, 'quantize': quantize,
                                        'progress': progress}))
        return Path(out)

    monkeypatch.setattr(heldout, 'evaluate_heldout', evaluate_heldout)
    monkeypatch.setattr(onnx_export, 'export', export)
    return calls


def test_heldout_passes_the_backend_keywords_given(recorded, capsys):
    assert cli.main(['heldout', 'micro', '--images', '3', '--backend', 'onnxruntime',
                     '--quantize', 'int8', '--device', 'cuda:0', '--dtype', 'float16',
                     '--providers', 'CUDAExecutionProvider,CPUExecutionProvider']) == 0
    assert recorded == [('heldout', 'micro', dict(
        images=3, threads=2, backend='onnxruntime', write=True, quantize='int8',
        device='cuda:0', dtype='float16',
        providers=('CUDAExecutionProvider', 'CPUExecutionProvider')))]
    assert json.loads(capsys.readouterr().out) == {'alone': 0.5}


def test_heldout_by_default_is_the_plain_transformers_run(recorded):
    # No backend keywords: the run that writes heldout.json for the model card.
    assert cli.main(['heldout', '/models/mine', '--no-write']) == 0
    assert recorded == [('heldout', '/models/mine', dict(
        images=250, threads=2, backend='transformers', write=False))]


def test_export_onnx_calls_the_exporter(recorded, tmp_path, capsys):
    assert cli.main(['export-onnx', 'tiny', str(tmp_path / 'onnx'), '--quantize', 'int8',
                     '--no-progress']) == 0
    assert recorded == [('export', 'tiny', {'out': tmp_path / 'onnx', 'quantize': 'int8',
                                            'progress': False})]
    assert str(tmp_path / 'onnx') in capsys.readouterr().out


@pytest.mark.parametrize('argv, message', [
    (['heldout', 'micro', '--backend', 'tensorrt'], "invalid choice: 'tensorrt'"),
    (['heldout', 'micro', '--device', 'gpu'], 'device must be one of auto, cpu, cuda'),
    (['heldout', 'micro', '--quantize', 'int2'], "invalid choice: 'int2'"),
    (['export-onnx', 'micro'], 'the following arguments are required: out'),
])
def test_bad_model_command_lines_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_installed_edgevlm_finds_the_shipped_model_without_a_sourced_workspace(tmp_path):
    # A robot user's plain shell: no AMENT_PREFIX_PATH; the shipped micro SVLM must be found in
    # the installed package's share directory.
    script = Path(sysconfig.get_path('scripts')) / 'edgevlm'
    assert script.is_file(), f'{script}: install the package (make setup)'
    env = {k: v for k, v in os.environ.items() if k not in ('AMENT_PREFIX_PATH', 'PYTHONPATH')}
    env['HOME'] = str(tmp_path)
    done = subprocess.run([str(script), 'heldout', 'micro', '--images', '2', '--threads', '1',
                           '--no-write'], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout[done.stdout.index('{'):])
    assert 0.0 <= summary['alone'] <= 1.0 and 'late_cloud_history' in summary
