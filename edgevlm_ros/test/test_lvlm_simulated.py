# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The simulated cloud LVLM: the synthetic world's ground truth, wrong at a set rate."""

import asyncio
import logging
from pathlib import Path

from edgevlm_ros.lvlm.simulated import (
    COUNT_SPACE,
    SimulatedLvlm,
    describe,
    parse_question,
    parse_spec,
)
from edgevlm_ros.sim.synthworld import (
    NONE_ANSWER,
    NOT_VISIBLE,
    PALETTE,
    WHERE_CHOICES,
    FrameState,
    WorldSpec,
)
import numpy as np
import pytest

# Short question windows so that every question kind comes up in a few seconds of world.
WORLD = 'synth:seed=4,duration=24,fps=5,pace=0.5,episode=8,question_every=1'
KINDS = ('count', 'exists', 'colour', 'where')


def sent_by_bridge(rgb: np.ndarray) -> np.ndarray:
    """What the cloud bridge sends: at most 512 px on the long side, JPEG quality 85."""
    from edgevlm_ros.core.images import decode_compressed, encode_jpeg, resize_max_side
    return decode_compressed(encode_jpeg(resize_max_side(rgb, 512), 85))


@pytest.fixture(scope='module')
def samples() -> list:
    return list(WorldSpec.parse(WORLD).generate())


@pytest.fixture(scope='module')
def right() -> SimulatedLvlm:
    return SimulatedLvlm(f'simulated:{WORLD},error=0')


def test_answers_every_question_kind_from_the_worlds_truth(samples: list,
                                                           right: SimulatedLvlm) -> None:
    assert {s.question_id.split('/')[0] for s in samples} == set(KINDS)
    for s in samples:
        for image in (s.rgb, sent_by_bridge(s.rgb)):
            # The bridge's framing: a size line before the question.
            result = right.answer(image, f'The image is 512x384 pixels.\n{s.question}')
            assert (result.text, result.boxes) == (s.answer, s.boxes), (s.t_s, s.question)
    assert right.stats['matched'] >= 2 * len(samples)
    assert right.stats['wrong_on_purpose'] == right.stats['unknown_image'] == 0


def test_questions_are_read_tolerantly() -> None:
    where = 'Where is the red circle? (a) left (b) centre (c) right (d) not visible'
    assert parse_question(where).text == where
    for text in ('where is the RED circle', 'Where is the red circle?',
                 ' Where  is the red circle ? ', where.lower() + '.'):
        assert parse_question(text).text == where, text
    assert parse_question('how many blue objects are there').text == \
        'How many blue objects are there?'
    assert parse_question('Is there a green square?!').text == 'Is there a green square?'
    assert parse_question('What color is the triangle').text == 'What colour is the triangle?'
    # Options on a line of their own (a client's formatting) still make the question.
    assert parse_question('Where is the red circle?\n(a) left (b) center (c) right '
                          '(d) not visible').text == where
    for other in ('What is in front of the robot?', 'Describe the scene.',
                  'How many orange objects are there?', 'Is there a red hexagon?',
                  'Is there a red circle near the pillar?'):
        assert parse_question(other) is None, other


def test_other_questions_get_a_description_of_the_visible_objects(
        samples: list, right: SimulatedLvlm) -> None:
    for s in samples[::7]:
        _, state = WorldSpec.parse(WORLD).state_at(s.t_s)
        visible = sorted(state.visible(), key=lambda o: (o.box.x_min + o.box.x_max) / 2)
        result = right.answer(sent_by_bridge(s.rgb), 'What is in front of the robot?')
        assert set(result.boxes) == {o.box for o in visible}
        for o in visible:
            assert o.name in result.text
        if visible:  # left to right, with the side each is on
            where = {'left': 'on the left', 'centre': 'in the centre', 'right': 'on the right'}
            assert result.text.startswith(f'a {visible[0].name} {where[visible[0].location]}')
    assert right.answer(samples[0].rgb, 'Describe the scene').text == \
        right.answer(samples[0].rgb, 'What is in front of the robot?').text
    assert describe(FrameState(0.0, (0, 0), (), ())) == ('nothing', ())


def test_error_rate_is_about_right_and_repeats_with_the_seed(samples: list) -> None:
    def run() -> tuple[list, dict]:
        model = SimulatedLvlm(f'simulated:{WORLD},error=0.3,error_seed=7')
        return [model.answer(s.rgb, s.question) for s in samples * 3], model.stats
    results, stats = run()
    asks = samples * 3
    assert len(asks) == 360
    wrong = [(s, r) for s, r in zip(asks, results) if r.text != s.answer]
    assert 0.22 <= len(wrong) / len(asks) <= 0.38
    assert stats['wrong_on_purpose'] == len(wrong)
    again, _ = run()
    assert [(r.text, r.boxes) for r in again] == [(r.text, r.boxes) for r in results]
    spaces = {'count': COUNT_SPACE, 'exists': ('yes', 'no'),
              'colour': (*PALETTE, NONE_ANSWER), 'where': WHERE_CHOICES}
    for s, r in wrong:
        kind = s.question_id.split('/')[0]
        assert r.text in spaces[kind] and r.text not in s.accepted, (s.question, r.text)
        if r.text in ('0', 'no', NONE_ANSWER, NOT_VISIBLE):
            assert r.boxes == ()
        elif kind == 'count':
            assert len(r.boxes) <= int(r.text)
    assert {s.question_id.split('/')[0] for s, _ in wrong} == set(KINDS)


def test_unknown_images_are_answered_unknown_and_counted(right: SimulatedLvlm) -> None:
    before = right.stats['unknown_image']
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    result = right.answer(noise, 'How many red objects are there?')
    assert (result.text, result.boxes, result.match.reason) == ('unknown', (), 'unknown_image')
    assert right.stats['unknown_image'] == before + 1


def test_name_interface_and_log_say_it_is_a_simulation(caplog: pytest.LogCaptureFixture,
                                                       samples: list) -> None:
    with caplog.at_level(logging.INFO, logger='edgevlm_ros.lvlm.simulated'):
        model = SimulatedLvlm('simulated:synth:duration=1,fps=2', max_new_tokens=3)
    assert model.name == 'simulated-lvlm:synth:duration=1,fps=2'
    assert 'SIMULATION' in caplog.text and 'error rate 0.1' in caplog.text
    assert model.focus_supported is False and model.focus_layers is None
    assert model.count_tokens('a red circle') == 3
    frame = next(WorldSpec.parse('synth:duration=1,fps=2').generate()).rgb
    assert model.count_tokens(model.answer(frame, 'Describe the scene').text) <= 3
    with pytest.raises(ValueError, match='question'):
        model.answer(frame, ' ')
    with pytest.raises(ValueError, match='image'):
        model.answer(np.zeros((4, 4), np.float32), 'Describe the scene')


def test_spec_syntax() -> None:
    spec = parse_spec('simulated:synth:seed=3,error=0.25,fps=5,error_seed=9')
    assert (spec.world, spec.bag, spec.error, spec.error_seed) == (
        WorldSpec(seed=3, fps=5.0), None, 0.25, 9)
    assert parse_spec('simulated:synth').world == WorldSpec()
    assert parse_spec('simulated:synth:').world == WorldSpec()
    spec = parse_spec('simulated:/data/my,bag,error=0')
    assert (spec.world, spec.bag, spec.error, spec.error_seed) == (None, '/data/my,bag', 0.0, 0)


@pytest.mark.parametrize('spec, match', [
    ('tiny-cloud', "starts with 'simulated:'"),
    ('simulated:', 'expected simulated:synth'),
    ('simulated:synth:colour=3', "world key .* got 'colour=3'"),
    ('simulated:synth:seed=x', 'seed must be a number'),
    ('simulated:synth:pace=2', 'pace must be in'),
    ('simulated:synth:error=1.5', 'error must be a probability'),
    ('simulated:synth:error=nan', 'error must be a probability'),
    ('simulated:synth:error_seed=-1', 'error_seed must be an int'),
    ('simulated:synth:error=0.1,error=0.2', 'error is given twice'),
    ('simulated:,error=0.1', 'bag path is empty'),
])
def test_bad_specs_are_refused_naming_the_part(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SimulatedLvlm(spec)


def test_worlds_and_bags_over_the_frame_bound_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='70000 frames, more than 60000'):
        SimulatedLvlm('simulated:synth:duration=7000,fps=10')  # refused before rendering
    with pytest.raises(FileNotFoundError, match='no-bag'):
        SimulatedLvlm(f'simulated:{tmp_path}/no-bag,error=0')


def test_a_synth_bag_is_answered_from_its_world(tmp_path: Path) -> None:
    from edgevlm_ros.eval.bags import WORLD_SPEC_KEY, read_eval_bag
    from edgevlm_ros.eval.cli import main
    bag = tmp_path / 'world'
    assert main(['synth', str(bag), '--seed', '2', '--duration', '3', '--fps', '5',
                 '--pace', '0.3', '--question-every', '1']) == 0
    text = read_eval_bag(bag).custom_data[WORLD_SPEC_KEY]
    assert WorldSpec.parse(text) == WorldSpec(seed=2, duration=3.0, fps=5.0, pace=0.3,
                                              question_every=1.0)
    model = SimulatedLvlm(f'simulated:{bag},error=0')
    assert model.world == WorldSpec.parse(text)
    for s in WorldSpec.parse(text).generate():
        assert model.answer(sent_by_bridge(s.rgb), s.question).text == s.answer
        # Any question, not only the one asked at that frame: the world knows every answer.
        assert model.answer(s.rgb, 'Describe the scene').text != 'unknown'
    assert model.stats['unknown_question'] == 0


def test_a_bag_without_a_world_is_answered_from_its_truths(tmp_path: Path,
                                                           samples: list) -> None:
    from edgevlm_ros.eval.bags import write_eval_bag
    bag = tmp_path / 'plain'
    write_eval_bag(bag, samples[:10])
    model = SimulatedLvlm(f'simulated:{bag}')
    assert model.world is None
    for s in samples[:10]:
        result = model.answer(s.rgb, s.question)
        assert result.text == s.answer or model.stats['wrong_on_purpose']
    described = model.answer(samples[0].rgb, 'Describe the scene')
    assert (described.text, described.boxes) == ('unknown', ())  # no truth for it here
    assert model.stats['unknown_question'] == 1


def test_served_over_http_with_boxes_parsed_by_the_cloud_client(samples: list) -> None:
    from edgevlm_ros.cloud.openai_client import OpenAiVlmClient
    from edgevlm_ros.lvlm.server import LvlmServer, main
    asks = [s for s in samples if s.boxes][:6]
    with LvlmServer(model=f'simulated:{WORLD},error=0', port=0, served_name='sim') as srv:
        async def run() -> list:
            async with OpenAiVlmClient(srv.url, 'sim', timeout_s=10.0, jpeg_quality=85,
                                       max_image_side=512) as client:
                return [await client.ask(s.rgb, s.question) for s in asks]
        results = asyncio.run(run())
        assert srv.backend.name.startswith('simulated-lvlm:')
    for s, r in zip(asks, results):
        assert r.ok and r.answer == s.answer
        assert [b.label for b in r.boxes] == [b.label for b in s.boxes]
        for got, want in zip(r.boxes, s.boxes):  # pixels of the 512x384 image, read back
            error = np.subtract((got.x_min, got.y_min, got.x_max, got.y_max),
                                (want.x_min, want.y_min, want.x_max, want.y_max))
            assert (np.abs(error) <= (1 / 512, 1 / 384, 1 / 512, 1 / 384)).all()
    assert main(['--model', 'simulated:synth:error=7', '--port', '0']) == 1
