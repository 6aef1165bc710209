# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""eval.strategy_replay: the sweep command writes results, a table and a plot."""

import argparse

from edgevlm_ros.eval import cells as sweep_cells
from edgevlm_ros.eval import grid_sweep
from edgevlm_ros.eval import strategy_replay as sr
import pytest
from replay_helpers import EchoSvlm


def test_the_cli_writes_results_a_table_and_a_plot(tmp_path, monkeypatch):
    monkeypatch.setattr(sr, 'load_model', lambda spec, threads=1: EchoSvlm())
    out = tmp_path / 'run'
    assert sr.main(['sweep', str(out), '--seeds', '3', '--duration', '6', '--latencies',
                    '0.2,2', '--fluctuations', '0', '--extra-errors', '',
                    '--strategies',
                    'edge_only,cloud_stale,offload,cloud_only,' + sweep_cells.ARBITRATED,
                    '--mix', 'rotation']) == 0
    assert (out / 'results.json').exists()
    assert (out / 'accuracy_vs_latency.png').stat().st_size > 1000
    text = (out / 'table.md').read_text()
    assert '| edgevlm_arbitrated |' in text and '0.2 s' in text


def test_the_grid_writes_one_result_per_kind_and_a_report_over_all(tmp_path, monkeypatch):
    monkeypatch.setattr(sr, 'load_model', lambda spec, threads=1: EchoSvlm())
    out = tmp_path / 'grid'
    parser = argparse.ArgumentParser()
    grid_sweep.add_parsers(parser.add_subparsers())
    for kinds in ('0', '5'):   # two processes, as make strategy-grid runs them
        args = parser.parse_args(['strategy-grid', str(out), '--kinds', kinds, '--seeds', '3',
                                  '--duration', '8', '--latencies', '0.5,2'])
        assert args.func(args) == 0
    assert sorted(p.name for p in out.glob('results.*.json')) == [
        f'results.{grid_sweep.GRID[0].key}.json', f'results.{grid_sweep.GRID[5].key}.json']
    args = parser.parse_args(['strategy-grid-report', str(out)])
    assert args.func(args) == 0
    text = (out / 'table.md').read_text()
    assert text.startswith('2 world kinds, 4 cells')
    assert f'| {grid_sweep.GRID[5].name} | 2 s |' in text
    assert 'edgevlm_carried minus edge_only' in text
    assert (out / 'accuracy_vs_latency.png').stat().st_size > 1000


def test_a_kind_of_ones_own_is_swept_and_a_malformed_one_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sr, 'load_model', lambda spec, threads=1: EchoSvlm())
    parser = argparse.ArgumentParser()
    grid_sweep.add_parsers(parser.add_subparsers())
    out = tmp_path / 'own'
    args = parser.parse_args(['strategy-grid', str(out), '--kind', '0.3,30,0.1,0,60', '--seeds',
                              '3', '--duration', '8', '--latencies', '9'])
    assert args.func(args) == 0
    assert [p.name for p in out.glob('results.*.json')] == ['results.p0.3-q30-e10-f0-ep60.json']
    for bad in ('0.3,30,0.1', '0.3,30,1.5,0', '0.3,30,0.1,0,60,1', '2,30,0.1,0'):
        with pytest.raises(SystemExit):
            parser.parse_args(['strategy-grid', str(out), '--kind', bad])
        assert 'a world kind' in capsys.readouterr().err
    both = parser.parse_args(['strategy-grid', str(out), '--kind', '0.3,30,0.1,0', '--kinds', '0'])
    with pytest.raises(ValueError, match='not both'):
        both.func(both)
