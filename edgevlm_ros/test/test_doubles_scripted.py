# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The test doubles (doubles/scripted.py): the scripted edge SVLM and the oracle cloud LVLM."""

import asyncio
import json
from pathlib import Path

from edgevlm_ros.doubles.scripted import ScriptedSvlm
import numpy as np
import pytest

FRAME = np.zeros((48, 64, 3), np.uint8)


def script(tmp_path: Path, data: object, name: str = 'script.json') -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_scripted_svlm_answers_per_question_or_default(tmp_path: Path) -> None:
    svlm = ScriptedSvlm('scripted:' + script(tmp_path, {
        'answer': 'I do not know', 'answers': {'Is the path clear?': 'yes'}}))
    assert svlm.name.startswith('scripted-test-double:')
    assert svlm.focus_supported is False
    clear = svlm.answer(FRAME, 'Is the path clear?')
    assert clear.text == 'yes' and clear.completion_tokens == 1
    assert svlm.answer(FRAME, 'How many boxes?').text == 'I do not know'
    # The cloud client's framing ("The image is WxH pixels.\n<question>") still finds the key.
    assert svlm.answer(FRAME, 'The image is 64x48 pixels.\nis the  path clear?').text == 'yes'


def test_scripted_svlm_reports_prompt_and_never_claims_focus(tmp_path: Path) -> None:
    svlm = ScriptedSvlm('scripted:' + script(tmp_path, {'answer': 'one two three four'}),
                        max_new_tokens=2, focus_layers=[0, 1])
    from edgevlm_ros.core.regions import Box
    result = svlm.answer(FRAME, 'Count?', [('Count?', 'five')], focus=[Box(0, 0, 1, 1)],
                         focus_alpha=5.0)
    assert result.text == 'one two'  # capped at max_new_tokens words
    assert result.focus_applied is False and result.focused_tokens == 0
    assert 'Count?' in result.prompt and 'five' in result.prompt
    assert result.prompt_tokens == svlm.count_tokens(result.prompt)
    assert svlm.answer(FRAME, 'Count?', max_new_tokens=3).text == 'one two three'
    with pytest.raises(ValueError, match='max_new_tokens'):
        svlm.max_new_tokens = 0
    with pytest.raises(ValueError, match='image'):
        svlm.answer(np.zeros((4, 4), np.float32), 'Count?')
    with pytest.raises(ValueError, match='question'):
        svlm.answer(FRAME, '  ')


def test_echo_cloud_repeats_the_newest_cloud_answer_for_the_question(tmp_path: Path) -> None:
    svlm = ScriptedSvlm('scripted:' + script(tmp_path, {
        'answer': 'edge guess', 'answers': {'Colour?': 'grey'}, 'echo_cloud': True}))
    q = 'Colour?'
    assert svlm.answer(FRAME, q).text == 'grey'  # no history: the script
    own_only = [(q, 'grey'), (q, 'edge guess')]
    assert svlm.answer(FRAME, q, own_only).text == 'grey'
    history = [(q, 'red'), (q, 'grey'), ('Count?', 'seven'), (q, 'blue'), (q, 'grey')]
    assert svlm.answer(FRAME, q, history).text == 'blue'  # newest non-scripted turn, same q
    assert svlm.answer(FRAME, 'Count?', history).text == 'seven'
    assert svlm.answer(FRAME, 'Shape?', history).text == 'edge guess'


def test_echo_cloud_follows_the_cloud_when_it_is_steps_late(tmp_path: Path) -> None:
    # The edge node's real history: its own echoes sit in newer slots than the late cloud text,
    # so only the turn sources tell the newest cloud answer apart from the double's own echo.
    from edgevlm_ros.core.context import ContextStore

    svlm = ScriptedSvlm('scripted:' + script(tmp_path, {'answer': 'two', 'echo_cloud': True}))
    store = ContextStore(max_turns=8)
    q = 'How many?'
    said = []
    for step in range(10):
        if step >= 3:  # the cloud answers step - 3 now: "2." before step 2, "3." from step 2 on
            store.apply_cloud(step - 3, q, '2.' if step - 3 < 2 else '3.')
        turns = store.history()
        text = svlm.answer(FRAME, q, [(t.question, t.answer) for t in turns],
                           history_sources=[t.from_cloud for t in turns]).text
        store.record_edge(step, q, text)
        said.append(text)
    assert said[:3] == ['two'] * 3
    assert said[3:5] == ['2.', '2.']
    assert said[5:] == ['3.'] * 5  # step 2's cloud answer arrived at step 5
    with pytest.raises(ValueError, match='history_sources'):
        svlm.answer(FRAME, q, [(q, 'x')], history_sources=[True, False])


def test_delay_ms_shows_as_model_time(tmp_path: Path) -> None:
    svlm = ScriptedSvlm('scripted:' + script(tmp_path, {'answer': 'a', 'delay_ms': 30}))
    assert svlm.answer(FRAME, 'q').model_ms >= 30.0


@pytest.mark.parametrize('data, message', [
    ({'answers': {'q': 'a'}}, '"answer".*missing'),
    ({'answer': ''}, "'answer' must be a non-empty string"),
    ({'answer': 'a', 'answers': ['q', 'a']}, "'answers' must be an object"),
    ({'answer': 'a', 'answers': {'q': 3}}, r"answers\['q'\].*non-empty string"),
    ({'answer': 'a', 'echo_cloud': 'yes'}, "'echo_cloud' must be true or false"),
    ({'answer': 'a', 'delay_ms': -1}, "'delay_ms' must be a number"),
    ({'answer': 'a', 'delay_ms': True}, "'delay_ms' must be a number"),
    ({'answer': 'a', 'anwsers': {}}, r"unknown keys \['anwsers'\]"),
    (['answer'], 'must be a JSON object'),
])
def test_bad_scripts_are_refused_naming_file_and_key(tmp_path: Path, data: object,
                                                     message: str) -> None:
    path = script(tmp_path, data)
    with pytest.raises(ValueError, match=message) as info:
        ScriptedSvlm('scripted:' + path)
    assert path in str(info.value)


def test_unreadable_scripts_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / 'broken.json'
    broken.write_text('{"answer": ')
    with pytest.raises(ValueError, match='broken.json.*not valid JSON'):
        ScriptedSvlm(f'scripted:{broken}')
    with pytest.raises(FileNotFoundError, match='missing.json'):
        ScriptedSvlm(f'scripted:{tmp_path}/missing.json')
    with pytest.raises(ValueError, match='path is empty'):
        ScriptedSvlm('scripted:')


def test_scripted_svlm_takes_every_backend_keyword_and_counts_calls(tmp_path: Path) -> None:
    from edgevlm_ros.backends.registry import load_svlm
    spec = 'scripted:' + script(tmp_path, {'answer': 'a b'})
    # The double runs on no device: a CUDA name is accepted whether or not CUDA is there.
    svlm = load_svlm(spec, backend='onnxruntime', device='cuda:1', dtype='bfloat16',
                     quantize='int8', providers='CUDAExecutionProvider,CPUExecutionProvider',
                     kv_reuse=False)
    assert isinstance(svlm, ScriptedSvlm)
    assert svlm.providers == ('CUDAExecutionProvider', 'CPUExecutionProvider')
    first = svlm.answer(FRAME, 'Colour?')
    second = svlm.answer(FRAME, 'Colour?', [('Colour?', 'a b')])
    assert first.cached_tokens == second.cached_tokens == 0 and second.stages == {}
    stats = svlm.cache_stats
    assert (stats.calls, stats.hits, stats.cached_tokens) == (2, 0, 0)
    assert stats.prompt_tokens == first.prompt_tokens + second.prompt_tokens
    for bad, match in ((dict(device='gpu'), 'device'), (dict(dtype='half'), 'dtype'),
                       (dict(quantize='int2'), 'quantize'), (dict(kv_reuse=None), 'kv_reuse')):
        with pytest.raises(ValueError, match=match):
            ScriptedSvlm(spec, **bad)


def test_scripted_cloud_served_over_http(tmp_path: Path) -> None:
    from edgevlm_ros.cloud.openai_client import OpenAiVlmClient
    from edgevlm_ros.lvlm.server import LvlmServer
    path = script(tmp_path, {'answer': 'no idea', 'answers': {'Is it red?': 'yes'}})
    with LvlmServer(model=f'scripted:{path}', port=0, served_name='m', grounding='none') as srv:
        async def ask() -> tuple:
            async with OpenAiVlmClient(srv.url, 'm', timeout_s=10.0) as client:
                return (await client.ask(FRAME, 'Is it red?'),
                        await client.ask(FRAME, 'What is it?'))
        red, other = asyncio.run(ask())
    assert red.ok and red.answer == 'yes' and red.boxes == []
    assert other.ok and other.answer == 'no idea'


# ------------------------------------------------------------------------------------ oracle

def texture(seed: int, h: int = 240, w: int = 320) -> np.ndarray:
    """A distinct random-texture frame (blocky noise, as unlike JPEG noise as a scene is)."""
    import cv2
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@pytest.fixture(scope='module')
def eval_bag(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list]:
    from edgevlm_ros.core.records import Sample
    from edgevlm_ros.core.regions import Box
    from edgevlm_ros.eval.bags import write_eval_bag
    samples = [
        Sample(0.0, texture(0), 'ep', 'colour', 'What colour is the cube?', 'red',
               boxes=(Box(0.1, 0.2, 0.4, 0.6, 'cube'),)),
        Sample(0.1, texture(1), 'ep', 'colour', 'What colour is the cube?', 'blue',
               boxes=(Box(0.5, 0.5, 0.9, 0.8, 'cube'), Box(0.0, 0.0, 0.2, 0.2, ''))),
        Sample(0.2, texture(2), 'ep', 'count', 'How many cubes?', 'three'),
        Sample(0.3, texture(3), 'ep', 'side', 'Which side is the cube on?', 'left',
               choices=('right', 'left')),
    ]
    path = tmp_path_factory.mktemp('bags') / 'eval'
    write_eval_bag(path, samples)
    return str(path), samples


def ask_all(url: str, asks: list[tuple[np.ndarray, str]], **client_kw: object) -> list:
    from edgevlm_ros.cloud.openai_client import OpenAiVlmClient

    async def run() -> list:
        async with OpenAiVlmClient(url, 'oracle', timeout_s=10.0, **client_kw) as client:
            return [await client.ask(rgb, q) for rgb, q in asks]
    return asyncio.run(run())


def test_oracle_served_over_http_answers_each_frames_truth_and_boxes(eval_bag: tuple) -> None:
    from edgevlm_ros.lvlm.server import LvlmServer
    path, samples = eval_bag
    with LvlmServer(model=f'oracle:{path}', port=0, served_name='oracle') as srv:
        # The client JPEG-compresses (quality 60) and shrinks the 320x240 frames to 200x150.
        results = ask_all(srv.url, [(s.rgb, s.question) for s in samples],
                          jpeg_quality=60, max_image_side=200)
        stats = dict(srv.backend.stats)
    assert [r.answer for r in results] == ['red', 'blue', 'three', 'left']
    assert all(r.ok and r.structured for r in results)
    for result, sample in zip(results, samples):
        assert len(result.boxes) == len(sample.boxes)
        for got, want in zip(result.boxes, sample.boxes):
            # Pixel boxes of the 200x150 image sent, read back normalised: within a pixel.
            assert got.label == (want.label or 'object')
            error = np.subtract((got.x_min, got.y_min, got.x_max, got.y_max),
                                (want.x_min, want.y_min, want.x_max, want.y_max))
            assert (np.abs(error) <= (1 / 200, 1 / 150, 1 / 200, 1 / 150)).all()
    assert stats == {'matched': 4, 'unknown_image': 0, 'unknown_question': 0}


def test_oracle_answers_unknown_for_foreign_images_and_unasked_questions(eval_bag: tuple) -> None:
    from edgevlm_ros.lvlm.server import LvlmServer
    path, samples = eval_bag
    with LvlmServer(model=f'oracle:{path}', port=0, served_name='oracle') as srv:
        foreign, unasked = ask_all(srv.url, [(texture(42), samples[0].question),
                                             (samples[0].rgb, 'How many cubes?')])
        stats = dict(srv.backend.stats)
    assert foreign.ok and (foreign.answer, foreign.boxes) == ('unknown', [])
    assert unasked.ok and (unasked.answer, unasked.boxes) == ('unknown', [])
    assert stats == {'matched': 0, 'unknown_image': 1, 'unknown_question': 1}


def test_oracle_spec_errors_are_clear(tmp_path: Path) -> None:
    from edgevlm_ros.eval.bags import BagError
    from edgevlm_ros.lvlm.server import LvlmServer, main
    with pytest.raises(FileNotFoundError, match='no-bag'):
        LvlmServer(model=f'oracle:{tmp_path}/no-bag').start()
    with pytest.raises(BagError, match='not a rosbag2 bag'):
        LvlmServer(model=f'oracle:{tmp_path}').start()
    assert main(['--model', f'oracle:{tmp_path}/no-bag', '--port', '0']) == 1
