# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""backends.visual_focus: image-token geometry, the attention-logit bias, its scope and effect."""

import threading
from types import SimpleNamespace

from edgevlm_ros.backends import visual_focus
from edgevlm_ros.backends.transformers_backend import TransformersSvlm
from edgevlm_ros.core.regions import Box
import numpy as np
import pytest
import torch

CENTRE_BOX = Box(0.25, 0.25, 0.5, 0.5)  # 1/16 of the frame


@pytest.fixture(scope='module')
def svlm(tiny_edge_model) -> TransformersSvlm:
    return TransformersSvlm(str(tiny_edge_model), max_new_tokens=4)


@pytest.fixture
def frame() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)


def inputs_for(svlm: TransformersSvlm, image: np.ndarray, split: bool = False,
               longest_edge: int = 512):
    svlm.do_image_splitting, svlm.image_longest_edge = split, longest_edge
    try:
        return svlm.build_inputs(image, 'What is ahead?')[0]
    finally:
        svlm.do_image_splitting, svlm.image_longest_edge = False, 512


def image_token_count(svlm: TransformersSvlm, inputs) -> int:
    return int((inputs['input_ids'][0] == svlm.model.config.image_token_id).sum())


def area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def focus_share(attentions, positions: torch.Tensor, focused: torch.Tensor) -> float:
    """Attention mass of the last query on focused positions / mass on all image tokens."""
    att = torch.stack([layer[0, :, -1, :] for layer in attentions]).mean(dim=(0, 1))
    return float(att[focused].sum() / att[positions].sum())


# ------------------------------------------------------------------------------------ geometry


def test_pixel_shuffle_puts_token_k_on_row_major_cell_of_the_tile(svlm: TransformersSvlm) -> None:
    # Feed patch indices through the model's own connector shuffle and read them back.
    patches = torch.arange(32 * 32, dtype=torch.float32)[None, :, None]
    shuffled = svlm.model.model.connector.pixel_shuffle(patches, 4)[0]
    for k in range(64):
        covered = {(int(p) // 32, int(p) % 32) for p in shuffled[k]}
        rows, cols = 4 * (k // 8), 4 * (k % 8)
        assert covered == {(r, c) for r in range(rows, rows + 4) for c in range(cols, cols + 4)}


def test_boxes_match_the_processor_layout_without_splitting(svlm: TransformersSvlm,
                                                            frame: np.ndarray) -> None:
    inputs = inputs_for(svlm, frame)
    positions, boxes = visual_focus.image_token_boxes(svlm.model, inputs, svlm.tokenizer)
    assert positions.numel() == boxes.shape[0] == image_token_count(svlm, inputs) == 64
    assert torch.equal(inputs['input_ids'][0, positions],
                       torch.full((64,), svlm.model.config.image_token_id))
    assert torch.allclose(boxes[0], torch.tensor([0.0, 0.0, 0.125, 0.125]))
    assert torch.allclose(boxes[9], torch.tensor([0.125, 0.125, 0.25, 0.25]))  # row-major
    assert torch.isclose(area(boxes).sum(), torch.tensor(1.0))


@pytest.mark.parametrize(('longest_edge', 'rows', 'cols'), [(1024, 2, 2), (2048, 3, 4)])
def test_boxes_match_the_processor_layout_with_splitting(svlm: TransformersSvlm,
                                                         frame: np.ndarray, longest_edge: int,
                                                         rows: int, cols: int) -> None:
    inputs = inputs_for(svlm, frame, split=True, longest_edge=longest_edge)
    positions, boxes = visual_focus.image_token_boxes(svlm.model, inputs, svlm.tokenizer)
    assert positions.numel() == image_token_count(svlm, inputs) == (rows * cols + 1) * 64
    # Tiles cover the frame once and the global image covers it again.
    assert torch.isclose(area(boxes).sum(), torch.tensor(2.0))
    ids = inputs['input_ids'][0]
    tile_1_2 = int((ids == svlm.tokenizer.convert_tokens_to_ids('<row_1_col_2>')).nonzero())
    k = int((positions == tile_1_2 + 1).nonzero())
    assert torch.allclose(boxes[k], torch.tensor([1 / cols, 0, 1 / cols + 1 / (8 * cols),
                                                  1 / (8 * rows)]))
    glob = int((ids == svlm.tokenizer.convert_tokens_to_ids('<global-img>')).nonzero())
    k = int((positions == glob + 1).nonzero())
    assert torch.allclose(boxes[k], torch.tensor([0.0, 0.0, 0.125, 0.125]))


def test_no_split_frame_is_stretched_so_tokens_span_the_whole_image(
        svlm: TransformersSvlm, frame: np.ndarray) -> None:
    # transformers 5.23 resizes the single no-split frame to a full 512x512 square (no padding),
    # so the bottom quarter of a 4:3 frame is token rows 6-7.
    inputs = inputs_for(svlm, frame)
    assert bool(inputs['pixel_attention_mask'].all())
    bias, n = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer,
                                      [Box(0.0, 0.75, 1.0, 1.0)], 1.0)
    positions, _ = visual_focus.image_token_boxes(svlm.model, inputs, svlm.tokenizer)
    assert n == 16
    assert torch.equal(bias[0, positions] > 0, torch.arange(64) >= 48)


def test_tokens_over_padding_are_never_focused(svlm: TransformersSvlm, frame: np.ndarray) -> None:
    # A processor that pads a 4:3 frame to a square (512x384 valid, padding below) puts token
    # rows 6-7 on padding: they show nothing, so no box may focus them.
    inputs = dict(inputs_for(svlm, frame))
    mask = torch.zeros_like(inputs['pixel_attention_mask'])
    mask[..., :384, :] = 1
    inputs['pixel_attention_mask'] = mask
    positions, boxes = visual_focus.image_token_boxes(svlm.model, inputs, svlm.tokenizer)
    assert bool((area(boxes[48:]) == 0).all())
    assert torch.allclose(boxes[40], torch.tensor([0.0, 5 * 64 / 384, 0.125, 1.0]))

    _, n_all = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [Box(0, 0, 1, 1)], 1.0)
    assert n_all == 48
    bias, n = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer,
                                      [Box(0.0, 0.75, 1.0, 1.0)], 2.0)
    # The image's bottom quarter is tile pixels 288..384: half of row 4 and all of row 5.
    assert n == 16
    on = bias[0, positions]
    assert torch.allclose(on[32:40], torch.full((8,), 1.0))
    assert torch.allclose(on[40:48], torch.full((8,), 2.0))
    assert not bool(on[48:].any())


def test_coverage_counts_overlapping_boxes_once() -> None:
    cells = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.5, 1.0]])
    cov = visual_focus.union_coverage(cells, [Box(0, 0, 0.5, 1), Box(0.25, 0, 0.75, 1)])
    assert torch.allclose(cov, torch.tensor([0.75, 0.0]))  # an empty cell is covered by nothing
    assert torch.allclose(visual_focus.union_coverage(cells[:1], []), torch.zeros(1))


def test_only_the_highest_scoring_boxes_are_used_beyond_the_cap() -> None:
    cells = torch.tensor([[0.9, 0.9, 1.0, 1.0]])
    many = [Box(0.0, 0.0, 0.01, 0.01, score=0.9)] * visual_focus.MAX_FOCUS_BOXES
    low = Box(0.9, 0.9, 1.0, 1.0, score=0.1)
    assert float(visual_focus.union_coverage(cells, many + [low])[0]) == 0.0
    assert float(visual_focus.union_coverage(cells, many[:-1] + [low])[0]) == 1.0


def test_qwen_tokens_lie_row_major_on_the_merged_grid() -> None:
    model = SimpleNamespace(config=SimpleNamespace(
        model_type='qwen2_5_vl', image_token_id=9, vision_config=SimpleNamespace(
            spatial_merge_size=2)))
    n = 17 * 23  # 640x480 -> grid_thw [1, 34, 46]
    ids = torch.tensor([[1, 2] + [9] * n + [3]])
    inputs = {'input_ids': ids, 'image_grid_thw': torch.tensor([[1, 34, 46]])}
    positions, boxes = visual_focus.image_token_boxes(model, inputs, None)
    assert positions.tolist() == list(range(2, 2 + n))
    assert torch.allclose(boxes[1], torch.tensor([1 / 23, 0.0, 2 / 23, 1 / 17]))
    assert torch.allclose(boxes[23], torch.tensor([0.0, 1 / 17, 1 / 23, 2 / 17]))


def test_llava_tokens_lie_on_a_square_grid() -> None:
    model = SimpleNamespace(config=SimpleNamespace(
        model_type='llava', image_token_index=5, vision_config=SimpleNamespace(
            image_size=384, patch_size=16)))
    inputs = {'input_ids': torch.tensor([[0] + [5] * 576 + [0]])}
    _, boxes = visual_focus.image_token_boxes(model, inputs, None)
    assert torch.allclose(boxes[25], torch.tensor([1 / 24, 1 / 24, 2 / 24, 2 / 24]))
    # Strategy 'full' on a CLIP tower keeps the class token, first: it shows no region.
    inputs = {'input_ids': torch.tensor([[0] + [5] * 577])}
    _, boxes = visual_focus.image_token_boxes(model, inputs, None)
    assert float(area(boxes[:1]).sum()) == 0.0
    assert torch.allclose(boxes[26], torch.tensor([1 / 24, 1 / 24, 2 / 24, 2 / 24]))
    inputs = {'input_ids': torch.tensor([[0] + [5] * 575])}
    with pytest.raises(ValueError, match='24x24 grid'):
        visual_focus.image_token_boxes(model, inputs, None)


def test_unknown_layouts_and_batches_are_rejected(svlm: TransformersSvlm,
                                                  frame: np.ndarray) -> None:
    model = SimpleNamespace(config=SimpleNamespace(model_type='paligemma', image_token_id=1))
    with pytest.raises(ValueError, match='paligemma'):
        visual_focus.image_token_boxes(model, {'input_ids': torch.ones(1, 3, dtype=torch.long)},
                                       None)
    inputs = inputs_for(svlm, frame)
    batch = {k: torch.cat([v, v]) for k, v in inputs.items()}
    with pytest.raises(ValueError, match='batch size 2'):
        visual_focus.focus_bias(svlm.model, batch, svlm.tokenizer, [CENTRE_BOX], 1.0)


# ---------------------------------------------------------------------------------- the bias


def test_attention_on_focused_tokens_rises_with_alpha(svlm: TransformersSvlm,
                                                      frame: np.ndarray) -> None:
    inputs = inputs_for(svlm, frame, split=True, longest_edge=1024)
    positions, _ = visual_focus.image_token_boxes(svlm.model, inputs, svlm.tokenizer)
    unit, n = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [CENTRE_BOX], 1.0)
    focused = (unit[0] > 0).nonzero().flatten()
    assert n == 20  # 4x4 of the 16x16 tile grid + 2x2 of the global 8x8
    shares = []
    for alpha in (0.0, 2.0, 4.0):
        bias, _ = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [CENTRE_BOX], alpha)
        with torch.no_grad(), visual_focus.applied(bias):
            out = svlm.model(**inputs, output_attentions=True)
        shares.append(focus_share(out.attentions, positions, focused))
    assert shares[0] < shares[1] < shares[2]
    assert shares[0] < 0.15 and shares[2] > 0.5  # 6 % of the tokens hold most of the mass


def test_a_region_smaller_than_a_token_gets_the_full_alpha_on_its_best_token(
        svlm: TransformersSvlm, frame: np.ndarray) -> None:
    inputs = inputs_for(svlm, frame)  # 8x8 tokens, each 1/8 of the frame a side
    small = Box(0.52, 0.52, 0.56, 0.58)  # inside one cell, ~15 % of it
    bias, n = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [small], 4.0)
    assert n == 1 and float(bias.max()) == pytest.approx(4.0)
    # Two cells half-covered each: both get the full alpha; a box over whole cells keeps its own.
    halves = Box(0.5 - 1 / 32, 0.5, 0.5 + 1 / 32, 0.5 + 1 / 8)
    bias, n = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [halves], 2.0)
    assert n == 2 and sorted(bias[bias > 0].tolist()) == pytest.approx([2.0, 2.0])
    whole = Box(0.25, 0.25, 0.5, 0.5)
    bias, n = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [whole], 2.0)
    assert n == 4 and bias[bias > 0].tolist() == pytest.approx([2.0] * 4)


def test_focus_holds_through_generate_with_kv_cache_and_is_cleared(
        svlm: TransformersSvlm, frame: np.ndarray) -> None:
    inputs = inputs_for(svlm, frame)
    positions, _ = visual_focus.image_token_boxes(svlm.model, inputs, svlm.tokenizer)
    bias, _ = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [CENTRE_BOX], 4.0)
    focused = (bias[0] > 0).nonzero().flatten()

    def decode_shares(b: torch.Tensor | None) -> list[float]:
        with torch.no_grad(), visual_focus.applied(b):
            out = svlm.model.generate(**inputs, max_new_tokens=4, min_new_tokens=4,
                                      do_sample=False, output_attentions=True,
                                      return_dict_in_generate=True)
        assert out.sequences.shape[1] == inputs['input_ids'].shape[1] + 4
        # Steps after the first decode one token against the cache (query length 1).
        assert out.attentions[1][0].shape[-2] == 1
        return [focus_share(step, positions, focused) for step in out.attentions[1:]]

    plain, steered = decode_shares(None), decode_shares(bias)
    assert all(s > 4 * p for s, p in zip(steered, plain))
    assert visual_focus.current_bias() is None
    assert svlm.answer(frame, 'What is ahead?', focus=[CENTRE_BOX], focus_alpha=4.0).focus_applied
    assert visual_focus.current_bias() is None


def test_bias_reaches_only_the_chosen_layers(svlm: TransformersSvlm, frame: np.ndarray) -> None:
    inputs = inputs_for(svlm, frame)
    bias, _ = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [CENTRE_BOX], 4.0)
    with torch.no_grad():
        plain = svlm.model(**inputs, output_attentions=True).attentions
        with visual_focus.applied(bias, layers=[1]):
            steered = svlm.model(**inputs, output_attentions=True).attentions
    assert torch.allclose(plain[0], steered[0])
    assert not torch.allclose(plain[1], steered[1])


def test_applied_restores_state_on_error_and_is_per_thread() -> None:
    bias = torch.ones(1, 8)
    seen: list[object] = []
    with pytest.raises(RuntimeError):
        with visual_focus.applied(bias, layers=[0]):
            assert visual_focus.current_bias() is bias
            worker = threading.Thread(target=lambda: seen.append(visual_focus.current_bias()))
            worker.start()
            worker.join()
            raise RuntimeError('model failed')
    assert seen == [None]
    assert visual_focus.current_bias() is None
    with pytest.raises(ValueError):
        with visual_focus.applied(torch.full((1, 4), float('inf'))):
            pass


def test_without_bias_the_enabled_model_matches_plain_sdpa(svlm: TransformersSvlm,
                                                           frame: np.ndarray) -> None:
    inputs = inputs_for(svlm, frame)
    assert visual_focus.is_enabled(svlm.model)
    with torch.no_grad():
        focus_logits = svlm.model(**inputs).logits
        svlm.model.set_attn_implementation({'text_config': 'sdpa'})
        try:
            sdpa_logits = svlm.model(**inputs).logits
        finally:
            visual_focus.enable(svlm.model)
    assert torch.allclose(focus_logits, sdpa_logits, atol=1e-5)


def test_biased_mask_is_built_once_per_forward_not_per_layer(
        svlm: TransformersSvlm, frame: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = inputs_for(svlm, frame)
    bias, _ = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [CENTRE_BOX], 4.0)
    with torch.no_grad(), visual_focus.applied(bias):
        cached_logits = svlm.model(**inputs).logits
    builds: list[int] = []
    build = visual_focus._biased_mask

    def counted(*args: object) -> torch.Tensor:
        builds.append(1)
        return build(*args)

    monkeypatch.setattr(visual_focus, '_biased_mask', counted)
    with torch.no_grad(), visual_focus.applied(bias):
        svlm.model(**inputs)
        assert len(builds) == 1  # two decoder layers, one mask
        svlm.model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
        assert len(builds) == 1 + 3  # prefill + two decode steps, one mask each
    assert visual_focus._STATE.masks == []  # nothing kept once the block ends
    # Rebuilding in every layer (the uncached path) gives the same answer.
    monkeypatch.setattr(visual_focus, '_cached_biased_mask', visual_focus._biased_mask)
    with torch.no_grad(), visual_focus.applied(bias):
        assert torch.equal(svlm.model(**inputs).logits, cached_logits)


def test_threads_with_different_biases_get_their_own_masks(svlm: TransformersSvlm,
                                                          frame: np.ndarray) -> None:
    inputs = inputs_for(svlm, frame)
    biases = [visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [box], 4.0)[0]
              for box in (CENTRE_BOX, Box(0.5, 0.5, 1.0, 1.0))]
    expected = []
    for bias in biases:
        with torch.no_grad(), visual_focus.applied(bias):
            expected.append(svlm.model(**inputs).logits[0, -1])
    assert not torch.allclose(expected[0], expected[1])
    results: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(i: int) -> None:
        try:
            start.wait(timeout=30)
            for _ in range(5):
                with torch.no_grad(), visual_focus.applied(biases[i]):
                    results[i].append(svlm.model(**inputs).logits[0, -1])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    for i in (0, 1):
        assert len(results[i]) == 5
        assert all(torch.allclose(r, expected[i], atol=1e-5) for r in results[i])


@pytest.mark.parametrize(('dtype', 'quantize'), [('bfloat16', 'none'), ('float32', 'int8')])
def test_focus_works_in_bfloat16_and_with_int8_linears(tiny_edge_model, frame: np.ndarray,
                                                       dtype: str, quantize: str) -> None:
    svlm = TransformersSvlm(str(tiny_edge_model), max_new_tokens=4, dtype=dtype,
                            quantize=quantize)
    inputs = inputs_for(svlm, frame, split=True, longest_edge=1024)
    positions, _ = visual_focus.image_token_boxes(svlm.model, inputs, svlm.tokenizer)
    unit, n = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [CENTRE_BOX], 1.0)
    focused = (unit[0] > 0).nonzero().flatten()
    assert n == 20
    shares = []
    with torch.no_grad():
        for alpha in (0.0, 2.0, 4.0):
            with visual_focus.applied(unit * alpha):
                out = svlm.model(**svlm.model_inputs(inputs), output_attentions=True)
            assert out.attentions[0].dtype == svlm.dtype
            shares.append(focus_share([a.float() for a in out.attentions], positions, focused))
    assert shares[0] < shares[1] < shares[2]
    assert shares[0] < 0.15 and shares[2] > 0.5
    result = svlm.answer(frame, 'What is ahead?', focus=[CENTRE_BOX], focus_alpha=4.0)
    assert result.focus_applied and result.focused_tokens == 4
    assert 1 <= result.completion_tokens <= 4 and isinstance(result.text, str)
    assert visual_focus.current_bias() is None
