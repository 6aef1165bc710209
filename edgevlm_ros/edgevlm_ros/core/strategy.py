# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The answering strategies (DESIGN.md §3): one graph, one parameter.

* edge_only:        the SVLM alone, no cloud;
* cloud_only:       the LVLM answer when it arrives (no edge model);
* cloud_stale:      the newest LVLM answer, reused unchanged (no edge model);
* offload:          per step, the cloud if its predicted round trip fits the deadline, else edge;
* edgevlm:          the SVLM with Context Replacement and Visual Focus;
* replacement_only: the SVLM with Context Replacement only;
* focus_only:       the SVLM with Visual Focus only;
* edgevlm_arbitrated: edgevlm, then the newest cloud answer stands for the step when it is fresh,
                    to the same question and the cloud is consistent (core.arbitration).
* edgevlm_carried:  edgevlm, then the newest cloud answer stands while the scene's learned
                    horizon or its tracked objects say it still holds (core.carry).
"""

from __future__ import annotations

from enum import StrEnum


class Strategy(StrEnum):
    """An answering strategy; a str subclass, so it compares equal to its name."""

    EDGE_ONLY = 'edge_only'
    CLOUD_ONLY = 'cloud_only'
    CLOUD_STALE = 'cloud_stale'
    OFFLOAD = 'offload'
    EDGEVLM = 'edgevlm'
    REPLACEMENT_ONLY = 'replacement_only'
    FOCUS_ONLY = 'focus_only'
    EDGEVLM_ARBITRATED = 'edgevlm_arbitrated'
    EDGEVLM_CARRIED = 'edgevlm_carried'

    @property
    def uses_replacement(self) -> bool:
        return self in (Strategy.EDGEVLM, Strategy.REPLACEMENT_ONLY, Strategy.EDGEVLM_ARBITRATED,
                        Strategy.EDGEVLM_CARRIED)

    @property
    def uses_focus(self) -> bool:
        return self in (Strategy.EDGEVLM, Strategy.FOCUS_ONLY, Strategy.EDGEVLM_ARBITRATED,
                        Strategy.EDGEVLM_CARRIED)

    @property
    def weighs_cloud(self) -> bool:
        """Whether a cloud answer may stand for an edge step (after the SVLM answered)."""
        return self in (Strategy.EDGEVLM_ARBITRATED, Strategy.EDGEVLM_CARRIED)

    @property
    def runs_edge_model(self) -> bool:
        return self not in (Strategy.CLOUD_ONLY, Strategy.CLOUD_STALE)

    @property
    def uses_cloud(self) -> bool:
        return self is not Strategy.EDGE_ONLY

    @classmethod
    def parse(cls, s: str | Strategy) -> Strategy:
        """Parse a strategy name (case and '-' vs '_' do not matter)."""
        if isinstance(s, Strategy):
            return s
        key = str(s).strip().lower().replace('-', '_')
        try:
            return cls(key)
        except ValueError:
            valid = ', '.join(m.value for m in cls)
            raise ValueError(f'unknown strategy {s!r}; valid: {valid}') from None
