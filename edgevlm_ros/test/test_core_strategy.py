# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""core.strategy: what each strategy uses, and parsing a strategy name."""

from edgevlm_ros.core.strategy import Strategy
import pytest


def test_strategy_properties():
    assert {s for s in Strategy if s.uses_replacement} == {
        Strategy.EDGEVLM, Strategy.REPLACEMENT_ONLY, Strategy.EDGEVLM_ARBITRATED,
        Strategy.EDGEVLM_CARRIED}
    assert {s for s in Strategy if s.uses_focus} == {
        Strategy.EDGEVLM, Strategy.FOCUS_ONLY, Strategy.EDGEVLM_ARBITRATED,
        Strategy.EDGEVLM_CARRIED}
    assert {s for s in Strategy if s.weighs_cloud} == {
        Strategy.EDGEVLM_ARBITRATED, Strategy.EDGEVLM_CARRIED}
    assert {s for s in Strategy if not s.runs_edge_model} == {Strategy.CLOUD_ONLY,
                                                               Strategy.CLOUD_STALE}
    assert {s for s in Strategy if not s.uses_cloud} == {Strategy.EDGE_ONLY}


def test_strategy_parse():
    assert Strategy.parse('EdgeVLM') is Strategy.EDGEVLM
    assert Strategy.parse('replacement-only') is Strategy.REPLACEMENT_ONLY
    assert Strategy.parse(Strategy.OFFLOAD) is Strategy.OFFLOAD
    assert Strategy.EDGE_ONLY == 'edge_only' and str(Strategy.CLOUD_STALE) == 'cloud_stale'
    with pytest.raises(ValueError, match='edge_only, cloud_only'):
        Strategy.parse('magic')
