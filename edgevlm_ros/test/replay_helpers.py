# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""A small world and an echoing edge model for the replay engine, cells and sweep tests."""

from dataclasses import dataclass

from edgevlm_ros.core.context import word_count
from edgevlm_ros.eval import replay_engine as eng
from edgevlm_ros.sim.synthworld import WorldSpec

SPEC = WorldSpec(seed=3, duration=12, pace=0.4, question_every=6, width=160, height=120)


@dataclass
class _Result:
    text: str


class EchoSvlm:
    """A stand-in edge model: repeats the newest cloud turn for the question, else 'unknown'."""

    def __init__(self) -> None:
        self.calls = []

    def count_tokens(self, text: str) -> int:
        return word_count(text)

    def answer(self, image, question, history=(), focus=(), focus_alpha=0.0,
               history_sources=None):
        self.calls.append((question, list(history), list(focus)))
        cloud = [a for (q, a), c in zip(history, history_sources or []) if c and q == question]
        return _Result(cloud[-1] if cloud else 'unknown')


def replay(world, strategy, network='fixed:200', error=0.0, cfg=None, svlm=None):
    """One strategy replayed by the engine on `world`, with the engine's own inputs."""
    cfg = cfg or eng.EngineConfig()
    answers = eng.cloud_answers(world, error)
    events = eng.cloud_timeline(world.steps, network, 0, cfg.overhead_ms)
    masks = eng.focus_masks(world.steps, events, answers, cfg)
    cache = eng.SvlmCache(svlm or EchoSvlm())
    return eng.replay_strategy(strategy, world, events, answers, masks, cache, cfg, network)
