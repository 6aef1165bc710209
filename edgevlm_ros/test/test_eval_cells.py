# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""eval.cells: a cell scores the engine's answers with core.scoring; cell names, networks."""

from edgevlm_ros.core.scoring import timeline
from edgevlm_ros.eval import cells as sweep_cells
from edgevlm_ros.eval import replay_engine as eng
import pytest
from replay_helpers import SPEC, EchoSvlm, replay


@pytest.fixture(scope='module')
def world():
    return eng.make_world(SPEC)


def test_scores_are_core_scoring_of_the_replayed_answers(world):
    cells = sweep_cells.run_cell([world], 'fixed:200', 0.0, ['edge_only', 'cloud_stale'],
                                 eng.SvlmCache(EchoSvlm()), eng.EngineConfig())
    res = replay(world, 'cloud_stale', 'fixed:200')
    rows = [r for r in timeline(res.run, 1.0) if r.correct is not None]
    assert cells['cloud_stale'].correct == [int(r.correct) for r in rows]
    assert cells['edge_only'].accuracy < cells['cloud_stale'].accuracy


def test_cell_names_and_network_specs():
    assert sweep_cells.network_spec(0.2, 0) == 'fixed:200'
    assert sweep_cells.network_spec(2, 0.5) == 'jitter:2000,1000'
    assert sweep_cells.cell_name(2, 0.5, 0.1) == '2 s f0.5'
    assert sweep_cells.cell_name(0.5, 0, 0.3) == '0.5 s e30%'
