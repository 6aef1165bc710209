# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The chat of one edge step, as the edge backends and the micro SVLM's training both build it.

Past turns are text only (user: question, assistant: answer); the current user turn carries the
one image. An assistant turn that holds cloud text (Context Replacement) carries
``'source': 'cloud'``: chat templates that do not know the key ignore it (SmolVLM, Qwen and LLaVA
render the turn as any other), the micro SVLM's template marks the turn so that the model can
tell the cloud's answers from its own.

No torch: the micro SVLM's batcher builds its training prompts with the same function.
"""

from __future__ import annotations

from collections.abc import Sequence

CLOUD_SOURCE = 'cloud'


def chat_messages(question: str, history: Sequence[tuple[str, str]] = (),
                  history_sources: Sequence[bool] | None = None) -> list[dict]:
    """Messages for a chat template: the history turns, then the image and the question."""
    if history_sources is not None and len(history_sources) != len(history):
        raise ValueError(f'history_sources has {len(history_sources)} entries for '
                         f'{len(history)} history turns')
    sources = history_sources if history_sources is not None else [False] * len(history)
    messages: list[dict] = []
    for (past_question, past_answer), cloud in zip(history, sources):
        messages.append({'role': 'user', 'content': [{'type': 'text', 'text': past_question}]})
        answer: dict = {'role': 'assistant', 'content': [{'type': 'text', 'text': past_answer}]}
        if cloud:
            answer['source'] = CLOUD_SOURCE
        messages.append(answer)
    messages.append({'role': 'user', 'content': [{'type': 'image'},
                                                 {'type': 'text', 'text': question}]})
    return messages
