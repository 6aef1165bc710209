# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Every supported edge architecture against its real processor and model.

Named for the architectures, not a module: each test runs models/tiny.py's model through
models/compat.py, backends/transformers_backend.py and backends/visual_focus.py.

Visual Focus maps each image token to an image region. These tests check that map against the
pixels each token really sees: the frame is a coordinate ramp (red = x, green = y), and a probe
finds which pixel_values entries feed which image token through the model's own path (patch
embedding, Qwen's 2x2 merger and window reordering, Idefics3's pixel shuffle and tile order,
LLaVA's projector, the scatter into the prompt). The coordinates those pixels carry must span the
token's box.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from edgevlm_ros.backends import visual_focus
from edgevlm_ros.backends.base import common_prefix_len
from edgevlm_ros.backends.transformers_backend import TransformersSvlm
from edgevlm_ros.core.regions import Box
from edgevlm_ros.models import compat
from edgevlm_ros.models.tiny import ensure_tiny_model
import numpy as np
from PIL import Image
import pytest
import torch
from transformers import AutoProcessor

CENTRE_BOX = Box(0.25, 0.25, 0.5, 0.5)  # 1/16 of the frame
HISTORY = [('Is the path clear?', 'yes, the corridor is clear'),
           ('What is on the left?', 'a door')]
KINDS = {'idefics3': 'smolvlm-tiny', 'qwen2-vl': 'qwen2-vl-tiny',
         'qwen2.5-vl': 'qwen2.5-vl-tiny', 'llava': 'llava-tiny'}
# (architecture, image splitting, longest edge): SmolVLM's real default splits at 2048 px.
# llava-1.5: the LLaVA-1.5 layout (CLIP 336/14, class token dropped, centre crop); llava-pad:
# CLIP with the class token kept ('full') and the frame padded to a square.
LAYOUTS = {'idefics3': ('idefics3', False, 512), 'idefics3-split': ('idefics3', True, 2048),
           'qwen2-vl': ('qwen2-vl', False, 512), 'qwen2.5-vl': ('qwen2.5-vl', False, 512),
           'llava': ('llava', False, 512), 'llava-1.5': ('llava-1.5', False, 512),
           'llava-pad': ('llava-pad', False, 512)}
SIZES = [(640, 480), (480, 640), (512, 512)]
# A token's pixels carry coordinates within a resized pixel, two 8-bit steps and (pad-to-square)
# the resampling blend at the frame's edge of its box; the smallest token cell tested is 1/32 of
# the frame, so a one-cell error is well beyond this.
EDGE_TOL = 0.012
# Where the vision towers' blocks live.
_VISION_BLOCKS = ('model.vision_model.encoder.layers', 'model.visual.blocks',
                  'model.vision_tower.encoder.layers')


def clip_llava(path: Path, tokenizer_dir: Path, strategy: str, image_processor) -> Path:
    """Save a tiny LLaVA with a CLIP 336/14 tower (24x24 patches + a class token) at ``path``."""
    from transformers import (
        AutoTokenizer,
        GenerationConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    vision = dict(model_type='clip_vision_model', hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=4, image_size=336, patch_size=14)
    text = dict(model_type='qwen2', vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_id=tok.convert_tokens_to_ids('<image>'),
                         vision_feature_select_strategy=strategy, vision_feature_layer=-2,
                         projector_hidden_act='gelu')
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(15)
        model = LlavaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14,
                               vision_feature_select_strategy=strategy,
                               num_additional_image_tokens=1, chat_template=tok.chat_template)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def clip_llava_dir(model_cache: Path, arch: str) -> Path:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    path = model_cache / f'test-{arch}'
    if path.is_dir():
        return path
    tokenizer_dir = ensure_tiny_model('llava-tiny', model_cache, progress=False)
    clip = dict(size={'shortest_edge': 336}, crop_size={'height': 336, 'width': 336},
                do_center_crop=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
                image_std=[0.26862954, 0.26130258, 0.27577711])
    if arch == 'llava-1.5':
        return clip_llava(path, tokenizer_dir, 'default', CLIPImageProcessorPil(**clip))
    return clip_llava(path, tokenizer_dir, 'full', LlavaImageProcessorPil(do_pad=True, **clip))


@pytest.fixture(scope='session')
def svlms(model_cache: Path) -> dict[str, TransformersSvlm]:
    """One TransformersSvlm per architecture, loaded on first use and kept for the session."""

    class Lazy(dict):
        def __missing__(self, arch: str) -> TransformersSvlm:
            path = ensure_tiny_model(KINDS[arch], model_cache, progress=False) \
                if arch in KINDS else clip_llava_dir(model_cache, arch)
            self[arch] = TransformersSvlm(str(path), max_new_tokens=4)
            return self[arch]

    return Lazy()


def ramp(width: int, height: int) -> np.ndarray:
    """A frame whose red is the pixel centre's x, green its y (1/255 steps), blue full."""
    x = np.round((np.arange(width) + 0.5) / width * 255).astype(np.uint8)
    y = np.round((np.arange(height) + 0.5) / height * 255).astype(np.uint8)
    image = np.full((height, width, 3), 255, np.uint8)
    image[..., 0] = x[None, :]
    image[..., 1] = y[:, None]
    return image


def build(svlm: TransformersSvlm, image: np.ndarray, split: bool = False, edge: int = 512,
          history: list[tuple[str, str]] | None = None):
    old = svlm.do_image_splitting, svlm.image_longest_edge
    svlm.do_image_splitting, svlm.image_longest_edge = split, edge
    try:
        return svlm.build_inputs(image, 'What is ahead?', history or [])[0]
    finally:
        svlm.do_image_splitting, svlm.image_longest_edge = old


def channels_first(model_type: str, t: torch.Tensor) -> torch.Tensor:
    """pixel_values-shaped tensor -> [3, M]: the RGB values of every pixel sample."""
    if model_type == 'idefics3':           # [1, tiles, 3, H, W]
        return t[0].transpose(0, 1).reshape(3, -1)
    if model_type == 'llava':              # [1, 3, H, W]
        return t[0].reshape(3, -1)
    return t.reshape(t.shape[0], 3, -1).transpose(0, 1).reshape(3, -1)  # qwen [N, 3*T*P*P]


def _identity(hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return hidden_states


class _Captured(Exception):
    def __init__(self, embeds: torch.Tensor) -> None:
        super().__init__('captured')
        self.embeds = embeds


def token_of_each_pixel(model, inputs, positions: torch.Tensor) -> tuple[torch.Tensor, float]:
    """
    Return ([M] index of the image token each pixel sample feeds, worst separation error).

    A float64 copy of the model whose vision blocks are made identities keeps the rest of the
    path (patch embedding, position embeddings, window reordering, merger or connector, the
    scatter into the prompt), so every image token depends on its own pixels only. The language
    model's input embeddings are captured; d(sum_k w_k * f_k)/d(pixel) equals
    w_owner * d f_owner/d(pixel), so the ratio of the gradients for w_k = k + 1 and w_k = 1
    names the token each pixel feeds.
    """
    local = copy.deepcopy(model).double()
    stripped = 0
    for dotted in _VISION_BLOCKS:
        *parents, leaf = dotted.split('.')
        owner = local
        for name in parents:
            owner = getattr(owner, name, None)
        if owner is None or not hasattr(owner, leaf):
            continue
        for block in getattr(owner, leaf):
            # The block becomes an identity (its hooks still run: LLaVA reads their capture).
            block.forward = _identity
            stripped += 1
    assert stripped > 0, 'unknown vision tower layout'

    def capture(module, args, kwargs):
        raise _Captured(kwargs['inputs_embeds'])

    hook = local.get_decoder().register_forward_pre_hook(capture, with_kwargs=True)
    pixels = inputs['pixel_values'].double().requires_grad_(True)
    try:
        local(**{**inputs, 'pixel_values': pixels})
        raise AssertionError('the language model was never called')
    except _Captured as c:
        embeds = c.embeds
    finally:
        hook.remove()
    feats = embeds[0, positions]
    project = torch.randn(feats.shape[1], dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0))
    score = feats @ project
    g1, = torch.autograd.grad(score.sum(), pixels, retain_graph=True)
    weights = torch.arange(1, len(score) + 1, dtype=torch.float64)
    gk, = torch.autograd.grad((score * weights).sum(), pixels)
    model_type = model.config.model_type
    g1, gk = channels_first(model_type, g1), channels_first(model_type, gk)
    # Per pixel, use the channel with the largest gradient (a near-zero one is imprecise).
    magnitude = g1.abs()
    best_g1, best_gk = g1[0], gk[0]
    for c in (1, 2):
        larger = magnitude[c] > best_g1.abs()
        best_g1 = torch.where(larger, g1[c], best_g1)
        best_gk = torch.where(larger, gk[c], best_gk)
    ratio = best_gk / best_g1
    return ratio.round().long() - 1, float((ratio - ratio.round()).abs().max())


def area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def focus_share(attentions, rows, positions: torch.Tensor, focused: torch.Tensor) -> float:
    """Attention mass of query ``rows`` on focused positions / mass on all image tokens."""
    att = torch.stack([layer[0][:, rows, :] for layer in attentions]).mean(dim=(0, 1, 2))
    return float(att[focused].sum() / att[positions].sum())


# ------------------------------------------------------------------------------------ geometry


@pytest.mark.parametrize('size', SIZES, ids=[f'{w}x{h}' for w, h in SIZES])
@pytest.mark.parametrize('layout', list(LAYOUTS))
def test_each_image_token_box_is_where_its_pixels_come_from(
        svlms: dict[str, TransformersSvlm], layout: str, size: tuple[int, int]) -> None:
    arch, split, edge = LAYOUTS[layout]
    if split and size[0] == size[1]:
        edge = 1024  # 2x2 tiles: a square frame makes 4x4 + 1 tiles at 2048, 5 s of probing
    svlm = svlms[arch]
    inputs = build(svlm, ramp(*size), split, edge)
    frame = (size[1], size[0])
    positions, boxes = visual_focus.image_token_boxes(svlm.model, inputs, svlm.processor,
                                                      image_size=frame)
    n = positions.numel()
    assert n == boxes.shape[0] == int(
        (inputs['input_ids'][0] == visual_focus._image_token_id(svlm.model.config)).sum())

    owner, separation = token_of_each_pixel(svlm.model, inputs, positions)
    assert separation < 0.01, 'a pixel feeds more than one image token: the probe is invalid'
    assert 0 <= int(owner.min()) and int(owner.max()) < n

    image_processor = svlm.processor.image_processor
    mean = torch.tensor(image_processor.image_mean, dtype=torch.float64)[:, None]
    std = torch.tensor(image_processor.image_std, dtype=torch.float64)[:, None]
    values = channels_first(svlm.model.config.model_type,
                            inputs['pixel_values'].double()) * std + mean
    # The frame's blue is full; padding (and its blend with the frame's edge) is not.
    of_frame = values[2] > 0.99
    frame_owner = owner[of_frame]

    def reduce(channel: int, how: str) -> torch.Tensor:
        start = torch.full((n,), float('inf') if how == 'amin' else -float('inf'),
                           dtype=torch.float64)
        return start.scatter_reduce(0, frame_owner, values[channel][of_frame], how)

    # The coordinates the token's frame pixels carry: red is x, green is y.
    seen = torch.stack([reduce(0, 'amin'), reduce(1, 'amin'), reduce(0, 'amax'),
                        reduce(1, 'amax')], dim=1).float()
    shows_frame = torch.bincount(frame_owner, minlength=n) > 0
    has_box = area(boxes) > 0
    # A token with a box sees frame pixels; one without (class token, padding) sees none.
    assert torch.equal(shows_frame, has_box), (
        f'{int((shows_frame & ~has_box).sum())} tokens see the frame but have no box, '
        f'{int((has_box & ~shows_frame).sum())} have a box but see no frame pixel')
    worst = int((seen[has_box] - boxes[has_box]).abs().max(dim=1).values.argmax())
    assert torch.allclose(seen[has_box], boxes[has_box], atol=EDGE_TOL), (
        f'token {worst}: map says {boxes[has_box][worst].tolist()}, its pixels span '
        f'{seen[has_box][worst].tolist()}')
    # The boxes tile what the model sees of the frame, once per view (tiles + global image).
    xs, ys = values[0][of_frame], values[1][of_frame]
    shown = float((xs.max() - xs.min()) * (ys.max() - ys.min()))
    assert float(area(boxes).sum()) == pytest.approx((2 if split else 1) * shown, abs=0.02)


def test_idefics3_split_grid_follows_the_aspect_ratio(
        svlms: dict[str, TransformersSvlm]) -> None:
    svlm = svlms['idefics3']
    wide = build(svlm, ramp(640, 480), True, 2048)
    tall = build(svlm, ramp(480, 640), True, 2048)
    assert wide['pixel_values'].shape[1] == tall['pixel_values'].shape[1] == 3 * 4 + 1
    tok = svlm.tokenizer
    assert (wide['input_ids'] == tok.convert_tokens_to_ids('<row_3_col_4>')).any()
    assert (tall['input_ids'] == tok.convert_tokens_to_ids('<row_4_col_3>')).any()


# ---------------------------------------------------------------------------------- attention


STEERED = ['idefics3', 'qwen2-vl', 'qwen2.5-vl', 'llava']


@pytest.mark.parametrize('arch', STEERED)
def test_attention_on_focused_tokens_rises_with_alpha(svlms: dict[str, TransformersSvlm],
                                                      arch: str) -> None:
    svlm = svlms[arch]
    inputs = build(svlm, ramp(640, 480))
    positions, _ = visual_focus.image_token_boxes(svlm.model, inputs, svlm.tokenizer)
    unit, n = visual_focus.focus_bias(svlm.model, inputs, svlm.tokenizer, [CENTRE_BOX], 1.0)
    focused = (unit[0] > 0).nonzero().flatten()
    assert 0 < n == focused.numel() < positions.numel() // 8
    shares = []
    for alpha in (0.0, 1.0, 2.0, 4.0):
        with torch.no_grad(), visual_focus.applied(unit * alpha):
            out = svlm.model(**inputs, output_attentions=True)
        shares.append(focus_share(out.attentions, [-1], positions, focused))
    assert shares == sorted(shares) and len(set(shares)) == 4, shares
    assert shares[0] < 0.2 and shares[3] > 0.5, shares


@pytest.mark.parametrize('arch', STEERED)
def test_bias_holds_in_cached_decoding_and_only_in_the_chosen_layer(
        svlms: dict[str, TransformersSvlm], arch: str) -> None:
    svlm = svlms[arch]
    model = svlm.model
    inputs = build(svlm, ramp(640, 480))
    prompt_len = int(inputs['input_ids'].shape[1])
    positions, _ = visual_focus.image_token_boxes(model, inputs, svlm.tokenizer)
    bias, _ = visual_focus.focus_bias(model, inputs, svlm.tokenizer, [CENTRE_BOX], 4.0)
    focused = (bias[0] > 0).nonzero().flatten()
    steps = 4
    with torch.no_grad(), visual_focus.applied(bias, layers=[1]):
        generated = model.generate(**inputs, max_new_tokens=steps, min_new_tokens=steps,
                                   do_sample=False, output_attentions=True,
                                   return_dict_in_generate=True)
    sequence = generated.sequences
    assert sequence.shape[1] == prompt_len + steps
    assert generated.attentions[1][0].shape[-2] == 1  # decode steps read the KV cache

    # The same sequence in one forward pass (no cache), with and without the bias.
    full = {**inputs, 'input_ids': sequence, 'attention_mask': torch.ones_like(sequence)}
    if 'mm_token_type_ids' in inputs:
        full['mm_token_type_ids'] = torch.nn.functional.pad(inputs['mm_token_type_ids'],
                                                            (0, steps))
    with torch.no_grad():
        with visual_focus.applied(bias, layers=[1]):
            steered = model(**full, output_attentions=True).attentions
        plain = model(**full, output_attentions=True).attentions
    for step in range(1, steps):
        row = prompt_len + step - 1
        for layer in range(len(steered)):
            cached = generated.attentions[step][layer][0, :, 0, :]
            assert torch.allclose(cached, steered[layer][0, :, row, :row + 1], atol=1e-5), \
                f'decode step {step}, layer {layer}: cached attention differs'
    assert torch.allclose(steered[0], plain[0], atol=1e-6)  # layer 0 is not steered
    rows = list(range(prompt_len, prompt_len + steps - 1))
    steered_share = focus_share(steered[1:2], rows, positions, focused)
    plain_share = focus_share(plain[1:2], rows, positions, focused)
    assert steered_share > 0.5 > 3 * plain_share, (steered_share, plain_share)


# ------------------------------------------------------------------------------------- answers


@pytest.mark.parametrize('arch', STEERED + ['llava-1.5'])
def test_svlm_answers_with_history_and_focus(svlms: dict[str, TransformersSvlm],
                                             arch: str) -> None:
    svlm = svlms[arch]
    frame = np.random.default_rng(5).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    image_token = svlm.processor.image_token
    prompt = svlm.render_prompt('What is ahead?', HISTORY)
    assert prompt.count(image_token) == 1
    for question, answer in HISTORY:
        assert prompt.index(question) < prompt.index(answer) < prompt.index(image_token)

    bare = build(svlm, frame)
    with_history = build(svlm, frame, history=HISTORY)
    image_id = visual_focus._image_token_id(svlm.model.config)
    n_image = int((bare['input_ids'] == image_id).sum())
    assert int((with_history['input_ids'] == image_id).sum()) == n_image

    result = svlm.answer(frame, 'What is ahead?', HISTORY, focus=[CENTRE_BOX], focus_alpha=2.0)
    assert result.prompt == prompt
    assert result.prompt_tokens == with_history['input_ids'].shape[1]
    assert result.focus_applied and 0 < result.focused_tokens < n_image // 4
    assert 1 <= result.completion_tokens <= 4 and isinstance(result.text, str)
    again = svlm.answer(frame, 'What is ahead?', HISTORY, focus=[CENTRE_BOX], focus_alpha=2.0)
    assert again.text == result.text
    assert visual_focus.current_bias() is None


def test_llava_centre_crop_leaves_the_frame_edges_unfocusable(
        svlms: dict[str, TransformersSvlm]) -> None:
    svlm = svlms['llava-1.5']
    frame = np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    inputs = build(svlm, frame)
    with pytest.raises(ValueError, match='image_size'):
        visual_focus.image_token_boxes(svlm.model, inputs, svlm.processor)
    # CLIP keeps the centre 480x480 of a 640x480 frame: the left 1/8 is cut away.
    _, n = visual_focus.focus_bias(svlm.model, inputs, svlm.processor, [Box(0, 0, 0.1, 1)],
                                   2.0, image_size=(480, 640))
    assert n == 0
    edge = svlm.answer(frame, 'What is on the left?', focus=[Box(0, 0, 0.1, 1)],
                       focus_alpha=2.0)
    assert not edge.focus_applied
    inside = svlm.answer(frame, 'What is on the left?', focus=[Box(0.1, 0, 0.2, 1)],
                         focus_alpha=2.0)
    # x 0.125..0.2 of the frame touches 3 of the 24 columns (each 0.75 / 24 of the frame wide).
    assert inside.focus_applied and inside.focused_tokens == 24 * 3


# -------------------------------------------------------------------------------------- compat


@pytest.mark.parametrize('kind', ['qwen2-vl-tiny', 'qwen2.5-vl-tiny'])
def test_qwen_processors_load_image_only_without_torchvision(model_cache: Path,
                                                             tmp_path: Path, kind: str) -> None:
    path = ensure_tiny_model(kind, model_cache, progress=False)
    declared = compat.declared_processor_class(str(path))
    assert declared is not None and compat.needs_video_processor(declared)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises((OSError, ImportError, ValueError)):
            AutoProcessor.from_pretrained(path)
    processor = compat.load_processor(str(path))
    assert isinstance(processor, declared) and type(processor).__name__ == declared.__name__
    assert 'video_processor' not in type(processor).get_attributes()

    # What it saves names the real class and reloads to the same inputs.
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / 'processor_config.json').read_text())
    assert saved['processor_class'] == declared.__name__ and 'video_processor' not in saved
    reloaded = compat.load_processor(str(tmp_path))
    prompt = processor.apply_chat_template(
        [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'What?'}]}],
        add_generation_prompt=True)
    image = Image.fromarray(ramp(320, 240))
    a = processor(text=prompt, images=[image], return_tensors='pt')
    b = reloaded(text=prompt, images=[image], return_tensors='pt')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert int((a['input_ids'] == processor.image_token_id).sum()) == 9 * 11  # 252x308 px

    with pytest.raises(ValueError, match='video'):
        processor(text='<|vision_start|><|video_pad|><|vision_end|>', return_tensors='pt',
                  videos=[np.zeros((2, 56, 56, 3), np.uint8)])


def test_processors_without_video_are_left_alone(tiny_edge_model: Path) -> None:
    from transformers import Idefics3Processor, LlavaProcessor

    assert compat.image_only(Idefics3Processor) is Idefics3Processor
    assert compat.image_only(LlavaProcessor) is LlavaProcessor
    assert type(compat.load_processor(str(tiny_edge_model))) is Idefics3Processor


def test_load_processor_reports_the_loader_error_when_no_fallback_applies(
        tmp_path: Path, model_cache: Path) -> None:
    with pytest.raises((OSError, ValueError), match='processor|processing'):
        compat.load_processor(str(tmp_path))  # no checkpoint at all: AutoProcessor's own error
    # A Qwen checkpoint with a corrupt image processor config: both loaders fail, both named.
    source = ensure_tiny_model('qwen2-vl-tiny', model_cache, progress=False)
    broken = tmp_path / 'broken'
    broken.mkdir()
    for path in source.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    config = json.loads((broken / 'processor_config.json').read_text())
    config['image_processor'] = 42
    (broken / 'processor_config.json').write_text(json.dumps(config))
    with pytest.raises(OSError, match='AutoProcessor failed .* image-only Qwen2VLProcessor'):
        compat.load_processor(str(broken))



# ------------------------------------------------------------------------------ KV reuse


def history_steps() -> list[tuple[str, list[tuple[str, str]]]]:
    """(what changed, history) of an edge run: it grows, slides, one turn is replaced, repeats."""
    turns = [(f'Question {i} about the scene?', f'answer {i} is a red box') for i in range(6)]
    steps = [('grow', turns[:n]) for n in range(0, 4)]
    steps += [('slide', turns[n - 3:n]) for n in range(4, 7)]
    replaced = list(steps[-1][1])
    replaced[1] = (replaced[1][0], 'the cloud says a blue ball')  # Context Replacement, slot 1
    return steps + [('replace', replaced), ('repeat', replaced)]


@pytest.mark.parametrize('arch', STEERED)
def test_kv_reuse_answers_what_generate_answers_as_the_history_changes(
        svlms: dict[str, TransformersSvlm], arch: str) -> None:
    svlm = svlms[arch]
    svlm.clear_cache()
    tok = svlm.tokenizer
    image_id = visual_focus._image_token_id(svlm.model.config)
    rng = np.random.default_rng(11)
    previous: list[tuple[str, str]] = []
    logits: list[torch.Tensor] = []  # of each forward's last position: prefill, decode...
    for step, (change, history) in enumerate(history_steps()):
        frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)  # a new frame every step
        focus = [CENTRE_BOX] if step % 2 else []
        held = svlm.cached_ids
        inputs = build(svlm, frame, history=history)
        ids = inputs['input_ids'][0].tolist()
        logits.clear()
        hook = svlm.model.register_forward_hook(
            lambda module, args, out: logits.append(out.logits[0, -1].clone()))
        try:
            result = svlm.answer(frame, 'What is ahead?', history, focus=focus,
                                 focus_alpha=2.0)
        finally:
            hook.remove()

        # Reuse stops at the first difference from what the cache held, or at the image.
        expected = min(common_prefix_len(held, ids), ids.index(image_id)) if held else 0
        assert result.cached_tokens == expected, (change, step)
        reused = tok.decode(ids[:expected])
        if change == 'grow' and previous:
            assert previous[-1][1] in reused  # every turn of the previous prompt is reused
        elif change == 'slide':
            # The dropped turn shifts all that follows: only the template's head is reused.
            assert 0 < expected and not any(q in reused for q, _ in previous + history)
        elif change == 'replace':  # kept up to the replaced turn's answer, not beyond
            assert history[0][1] in reused and history[1][0] in reused
            assert previous[1][1] not in reused and history[1][1] not in reused
            assert history[2][0] not in reused
        elif change == 'repeat':
            assert expected == ids.index(image_id)

        # The same tokens as transformers' generate() over the whole prompt (the old path).
        bias = None
        if focus:
            bias, _ = visual_focus.focus_bias(svlm.model, inputs, svlm.processor, focus, 2.0,
                                              image_size=frame.shape[:2])
        with visual_focus.applied(bias):
            reference = svlm.reference_generate(inputs, svlm.max_new_tokens).tolist()
        assert result.focus_applied == bool(focus)
        assert result.completion_tokens == len(reference)
        assert result.text == tok.decode(reference, skip_special_tokens=True).strip()
        # The cache now holds exactly this prompt and the answer but its last token.
        assert svlm.cached_ids == tuple(ids + reference[:-1])
        # Exact, not just the same argmax: the logits of the cached prefill and of each decode
        # step are those of one uncached forward over the whole sequence (tiny random models
        # move little with wrong positions: Qwen's M-RoPE replaced by 0..L-1 shifts them 2e-3).
        sequence = torch.tensor([svlm.cached_ids])
        full = {**inputs, 'input_ids': sequence, 'attention_mask': torch.ones_like(sequence)}
        grown = sequence.shape[1] - len(ids)
        if 'mm_token_type_ids' in inputs:
            full['mm_token_type_ids'] = torch.nn.functional.pad(inputs['mm_token_type_ids'],
                                                                (0, grown))
        with torch.no_grad(), visual_focus.applied(bias):
            uncached = svlm.model(**full).logits[0, len(ids) - 1:]
        assert len(logits) == uncached.shape[0] == len(reference)
        worst = float((torch.stack(logits) - uncached).abs().max())
        assert worst < 2e-5, (change, step, worst)
        previous = history
