# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""eval.strategy_replay: the sweep command writes results, a table and a plot."""

from edgevlm_ros.eval import cells as sweep_cells
from edgevlm_ros.eval import strategy_replay as sr
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
