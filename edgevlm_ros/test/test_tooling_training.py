# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Training the micro SVLM: on what the edge node sends, into a checkpoint the edge node loads."""

import json
from pathlib import Path

from edgevlm_ros.backends.transformers_backend import TransformersSvlm
from edgevlm_ros.models import registry
from edgevlm_ros.sim import svlm_data
from edgevlm_ros.tooling.training import heldout, spec, trainer
import numpy as np
import pytest
import torch

# Narrow widths keep the suite fast; the geometry (192 px, patch 16, shuffle 2) is the real one.
SMALL = spec.MicroSpec(vision_hidden=32, vision_layers=1, vision_heads=2, vision_intermediate=64,
                       text_hidden=32, text_layers=1, text_heads=2, text_kv_heads=1,
                       text_intermediate=64)
WORLD = svlm_data.CURRICULUM[-1]


@pytest.fixture(scope='module')
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp('micro')
    config = spec.TrainConfig(steps=3, images_per_step=2, questions_per_image=2, warmup=1,
                              eval_every=3, eval_images=2, threads=1)
    return trainer.train(out, config, SMALL, log=lambda _: None, progress=False)


def _examples(n: int = 2) -> list[svlm_data.Example]:
    rng = np.random.default_rng(0)
    plan = svlm_data.HistoryPlan(lag=1, stride=1, own_error=0.5, cloud_error=0.1)
    return [svlm_data.make_example(rng, 10_000 + i, WORLD, questions=2, history_turns=2,
                                   aux_grid=SMALL.grid, plan=plan) for i in range(n)]


def test_training_inputs_are_exactly_what_the_edge_node_builds(trained: Path) -> None:
    svlm = TransformersSvlm(str(trained), image_longest_edge=512)
    batcher = trainer.Batcher(svlm.processor)
    ex = _examples(1)[0]
    batch = batcher([ex])
    assert any(any(t.history_sources) for t in ex.turns)
    for row, turn in enumerate(ex.turns):
        inputs, prompt_text = svlm.build_inputs(ex.rgb, turn.question, turn.history,
                                                turn.history_sources)
        assert prompt_text.count('Assistant (cloud): ') == sum(turn.history_sources)
        prompt = inputs['input_ids'][0].tolist()
        answer = svlm.tokenizer(' ' + turn.answer, add_special_tokens=False)['input_ids']
        ids = batch['input_ids'][row][batch['attention_mask'][row] == 1].tolist()
        assert ids == prompt + answer + [svlm.tokenizer.convert_tokens_to_ids(
            '<end_of_utterance>')]
        labelled = batch['labels'][row][batch['labels'][row] != -100].tolist()
        assert labelled == ids[len(prompt):]  # loss on the answer and its end token only
        assert torch.equal(batch['pixel_values'][batch['owner'][row]], inputs['pixel_values'][0])


def test_shared_image_features_give_the_models_own_logits() -> None:
    model, processor = spec.build_untrained(SMALL)
    model.eval()
    batch = trainer.Batcher(processor)(_examples(2))
    with torch.inference_mode():
        _, _, logits = trainer.forward(model, batch)
        for row in range(batch['input_ids'].shape[0]):
            image = batch['owner'][row]
            own = model(input_ids=batch['input_ids'][row:row + 1],
                        attention_mask=batch['attention_mask'][row:row + 1],
                        pixel_values=batch['pixel_values'][image:image + 1],
                        pixel_attention_mask=batch['pixel_attention_mask'][image:image + 1])
            n = int(batch['attention_mask'][row].sum())
            assert torch.allclose(own.logits[0, :n - 1], logits[row, :n - 1], atol=1e-4)


def test_a_training_step_reaches_the_vision_tower_and_the_aux_head() -> None:
    model, processor = spec.build_untrained(SMALL)
    head = torch.nn.Linear(SMALL.text_hidden, len(svlm_data.AUX_CLASSES))
    batch = trainer.Batcher(processor)(_examples(2))
    loss, aux, _ = trainer.forward(model, batch, head)
    (loss + aux).backward()
    vision = model.model.vision_model.embeddings.patch_embedding.weight.grad
    assert vision is not None and vision.abs().sum() > 0
    assert head.weight.grad.abs().sum() > 0


def test_training_writes_a_loadable_checkpoint_curve_and_record(trained: Path) -> None:
    info = json.loads((trained / 'train.json').read_text())
    assert info['config']['steps'] == 3 and info['frames_seen'] == 6
    rows = [json.loads(x) for x in (trained / 'curve.jsonl').read_text().splitlines()]
    assert [r['step'] for r in rows] == [3]
    assert set(rows[0]['valid']) == set(svlm_data.HISTORY_KINDS)
    assert (trained / 'curve.png').stat().st_size > 0
    assert not (trained / '.saving').exists()
    svlm = TransformersSvlm(str(trained), max_new_tokens=4)
    ex = _examples(1)[0]
    result = svlm.answer(ex.rgb, ex.turns[0].question, ex.turns[0].history)
    assert isinstance(result.text, str)
    assert result.prompt_tokens > SMALL.image_seq_len


def test_heldout_evaluation_scores_every_history_condition(trained: Path) -> None:
    result = heldout.evaluate_heldout(str(trained), images=2, threads=1, write=True,
                                      log=lambda _: None)
    summary = result['summary']
    assert summary['questions'] == 8 and summary['seeds'] == [0, 1]
    for name in ('alone', 'right_history', 'wrong_history', 'own_wrong_history',
                 'late_cloud_history', 'majority_baseline'):
        assert 0.0 <= summary[name] <= 1.0
    assert json.loads((trained / 'heldout.json').read_text())['summary'] == summary
    row = result['rows'][0]
    assert {*svlm_data.HISTORY_KINDS, 'none_ok', 'late-cloud_ok', 'truth'} <= set(row)
    card = heldout.write_model_card(trained).read_text()
    assert '| wrong own history |' in card and 'Base run' not in card


def test_fine_tune_starts_from_a_trained_model_and_keeps_its_record(
        trained: Path, tmp_path: Path) -> None:
    config = spec.TrainConfig(steps=1, images_per_step=1, questions_per_image=2, warmup=1,
                              eval_every=1, eval_images=1, threads=1, init=str(trained))
    out = trainer.train(tmp_path / 'fine', config, log=lambda _: None, progress=False)
    info = json.loads((out / 'train.json').read_text())
    base = json.loads((trained / 'train.json').read_text())
    assert info['base'] == base
    assert info['spec']['text_hidden'] == SMALL.text_hidden  # the trained model's sizes
    assert info['frames_seen'] == 1  # its own frames; world seeds go on after the base's
    assert (out / 'base_curve.jsonl').read_text() == (trained / 'curve.jsonl').read_text()
    svlm = TransformersSvlm(str(out))
    prompt = svlm.render_prompt('How many red objects are there?', [('Q?', '2'), ('Q?', '1')],
                                [True, False])
    assert 'Assistant (cloud): 2<end_of_utterance>' in prompt
    assert 'Assistant: 1<end_of_utterance>' in prompt
    card = heldout.write_model_card(out).read_text()
    assert 'Base run' in card and 'Fine-tune' in card


# ------------------------------------------------------------------------ the shipped weights

def _shipped_scores(frames: int = 24) -> dict[str, float]:
    from edgevlm_ros.core.scoring import normalise

    svlm = TransformersSvlm('micro', max_new_tokens=6)
    rng, wrong_rng = np.random.default_rng(31), np.random.default_rng(32)
    right: dict[str, list[bool]] = {kind: [] for kind in heldout.HISTORY_KINDS}
    for i in range(frames):  # held-out seeds: never trained on (training uses 10,000 and up)
        ex = svlm_data.make_example(rng, 900 + i, WORLD, history_turns=4,
                                    plan=svlm_data.ALL_CLOUD)
        for turn in ex.turns:
            for kind in heldout.HISTORY_KINDS:
                t = turn.with_history(kind, wrong_rng)
                text = svlm.answer(ex.rgb, t.question, t.history,
                                   history_sources=t.history_sources).text
                right[kind].append(normalise(text) == normalise(turn.answer))
    return {kind: float(np.mean(v)) for kind, v in right.items()}


def test_the_shipped_micro_svlm_reads_held_out_scenes_and_uses_its_history() -> None:
    path = registry.shipped_model_dir()
    assert (path / 'model.safetensors').stat().st_size <= 30e6
    assert '## Held-out accuracy' in (path / 'README.md').read_text()
    scores = _shipped_scores()
    # 96 held-out questions; thresholds sit below what the shipped weights measure (see the
    # model card) and far above answering the most common answer of each kind (~50 %).
    assert scores['none'] >= 0.6  # measured 69.8 %
    # Right cloud turns help, wrong ones cost little: measured 79.2 % vs 68.8 %.
    assert scores['as-is'] >= scores['wrong'] + 0.06
    # A right cloud turn under wrong own turns still helps (76.0 % vs 70.8 %) ...
    assert scores['late-cloud'] > scores['own-wrong']
    # ... and the model's own (unmarked) turns do not drag it down: 70.8 % vs 69.8 % alone.
    assert scores['own-wrong'] >= scores['none'] - 0.05
