# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The replay evaluation end to end: a bag through the real graph, scored and reported.

Random-weight models answer noise, so these runs use the TEST DOUBLES of doubles/scripted.py: an
edge that always says "two" (and, with echo_cloud, repeats the cloud answer Context Replacement
put into its history) and an oracle cloud that answers each frame's ground truth, late by the
emulated network. What each strategy must then score is known from the bag alone.
"""

import json
from pathlib import Path
import re
import signal
import subprocess
import sys
import time

from edgevlm_ros.core.records import Sample
from edgevlm_ros.core.scoring import is_correct, normalise, score_run
from edgevlm_ros.eval import bags, cli
from edgevlm_ros.eval.replay import ReplayConfig, run_eval
import numpy as np
import pytest

FPS = 5.0
DURATION_S = 6.0
SWITCH_S = 3.0  # the true answer is "two" before, "three" after
QUESTION = 'How many red objects are there?'
NETWORK = 'fixed:300'


def _frames() -> list[Sample]:
    rng = np.random.default_rng(7)
    samples = []
    for i in range(int(DURATION_S * FPS)):
        t = i / FPS
        # Every frame its own texture, so the oracle tells them apart after JPEG.
        rgb = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
        rgb = np.repeat(np.repeat(rgb[::8, ::8], 8, axis=0), 8, axis=1)[:120, :160]
        samples.append(Sample(t_s=t, rgb=np.ascontiguousarray(rgb), episode='ep000',
                              question_id='count/red', question=QUESTION,
                              answer='2' if t < SWITCH_S else '3', accepted=()))
    return samples


@pytest.fixture(scope='module')
def bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('evalbag') / 'world'
    bags.write_eval_bag(path, _frames())
    return path


@pytest.fixture(scope='module')
def edge_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('script') / 'edge.json'
    path.write_text(json.dumps({'answer': 'two', 'echo_cloud': True, 'delay_ms': 20}))
    return path


def _config(bag: Path, out: Path, script: Path, strategies: list[str], **kw) -> ReplayConfig:
    return ReplayConfig(bag=bag, out=out, strategies=strategies, network_profile=NETWORK,
                        deadline_s=1.0, edge_model=f'scripted:{script}',
                        embedded_model=f'oracle:{bag}', step_rate_hz=2.0, progress=False,
                        **kw)


def _own_truth(run):
    truths = {t.stamp_ns: t for t in run.truths}
    return [(a, truths[a.stamp_ns]) for a in run.answers if a.stamp_ns in truths]


def test_each_strategy_scores_what_its_test_doubles_make_it_score(
        bag, edge_script, tmp_path, model_cache):
    strategies = ['edge_only', 'cloud_only', 'edgevlm', 'edgevlm_arbitrated']
    runs = {r.strategy: r for r in run_eval(_config(bag, tmp_path, edge_script, strategies))}
    assert set(runs) == set(strategies)
    frames = int(DURATION_S * FPS)
    for run in runs.values():
        # Every frame's truth was recorded, re-stamped like the frame the graph saw.
        assert len(run.truths) == frames
        assert run.meta['frames_played'] == frames
        assert (tmp_path / run.strategy / 'record' / 'metadata.yaml').exists()
        # The replay starts once every link is matched and drains until the bridge is idle:
        # every Step the camera published reached the bridge, and got exactly one
        # CloudResponse, recorded.
        answered = {c.step_id for c in run.clouds}
        assert len(run.clouds) == len(answered)
        assert run.counters['cloud_bridge']['steps_received'] == str(len(answered))
        assert run.counters['camera']['steps_published'] == str(len(answered))

    edge = runs['edge_only']
    s = score_run(edge, 1.0)
    # The scripted edge says "two" at every step: right exactly where the truth is 2.
    pairs = _own_truth(edge)
    assert pairs and all(a.source == 'edge' and a.answer == 'two' for a, _ in pairs)
    expected = sum(t.answer == '2' for _, t in pairs) / len(pairs)
    assert 0 < expected < 1
    assert s.accuracy == pytest.approx(expected)
    assert s.cloud_requests == 0 and s.cloud_bytes_up == 0
    assert all(c.status == 'dropped' for c in edge.clouds)

    cloud = runs['cloud_only']
    s = score_run(cloud, 1.0)
    pairs = _own_truth(cloud)
    # The oracle answers each frame's truth: every cloud answer is right about its own frame,
    # and none comes back before the emulated 300 ms round trip.
    assert pairs and all(a.source == 'cloud' for a, _ in pairs)
    assert s.accuracy == 1.0
    assert all(a.latency_ms >= 300.0 for a, _ in pairs)
    assert s.cloud_requests == len([c for c in cloud.clouds if c.status != 'dropped']) > 0
    assert s.cloud_bytes_up > 0 and s.cloud_bytes_down > 0

    vlm = runs['edgevlm']
    s = score_run(vlm, 1.0)
    # With cloud text in its history the echoing edge repeats the oracle: after the switch
    # it says "3" (as fusion compressed it: "3.") once a cloud answer from after the switch
    # has replaced a slot.
    assert s.answers_with_replacement > 0
    assert any(a.source == 'edge' and normalise(a.answer) == '3' for a in vlm.answers)
    assert s.accuracy > score_run(edge, 1.0).accuracy
    # Judged by value: "two" and "2." are both right for 2, nothing but 3 is right for 3.
    for a, truth in _own_truth(vlm):
        assert is_correct(a.answer, truth) == (normalise(a.answer) == truth.answer)

    arb = runs['edgevlm_arbitrated']
    # Each answer says why its source answered; a fresh oracle answer stands for the next step,
    # carried as the cloud said it, and the arbitrated run is at least as right as edgevlm.
    clouds = {c.step_id: c for c in arb.clouds}
    assert all(a.reason for a in arb.answers)
    from_cloud = [a for a in arb.answers if a.source == 'cloud']
    assert from_cloud and all(a.reason.startswith(f'cloud answer of step {a.newest_cloud_step},')
                              and a.answer == clouds[a.newest_cloud_step].answer
                              for a in from_cloud)
    assert arb.answers[0].source == 'edge' and arb.answers[0].reason == 'no cloud answer yet'
    assert score_run(arb, 1.0).accuracy >= s.accuracy

    # The recordings are enough to score again and rewrite the report (another deadline here).
    assert cli.main(['report', str(tmp_path), '--deadline', '0.5']) == 0
    report = (tmp_path / 'report.md').read_text()
    for strategy in strategies:
        assert f'| {strategy} |' in report
    assert 'Deadline 0.5 s' in report
    for png in ('latency_cdf.png', 'accuracy_vs_latency.png', 'timeline_edgevlm.png'):
        assert (tmp_path / png).stat().st_size > 10_000
    scores = json.loads((tmp_path / 'scores.json').read_text())
    assert {r['strategy'] for r in scores['runs']} == set(strategies)


def test_a_sped_up_replay_runs_on_bag_time(bag, edge_script, tmp_path, model_cache):
    run, = run_eval(_config(bag, tmp_path, edge_script, ['cloud_only'], speed=3.0))
    start = bags.read_eval_bag(bag).info.start_ns
    # Simulated time: frames keep their bag stamps, so truths line up with the bag exactly ...
    assert [t.stamp_ns for t in run.truths] == [start + round(i / FPS * 1e9)
                                                for i in range(int(DURATION_S * FPS))]
    assert run.meta['clock'] == 'simulated (/clock)'
    # ... and the emulated network waits in simulated time: no round trip under 300 ms of it.
    ok = [c for c in run.clouds if c.status == 'ok']
    assert ok and all(c.round_trip_ms >= 300.0 for c in ok)
    assert score_run(run, 1.0).accuracy == 1.0


def test_ctrl_c_stops_an_evaluation_with_one_line(bag, edge_script, tmp_path):
    # A user interrupting a long evaluation: the nodes are stopped, the command says
    # "interrupted" and exits 130, with no traceback (rclpy's own SIGINT handler used to shut
    # the context down under the replay: a traceback and "publisher's context is invalid").
    err = tmp_path / 'stderr.txt'
    with open(err, 'w') as stderr:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'edgevlm_ros.eval.cli', 'eval', str(bag), '--out',
             str(tmp_path / 'out'), '--strategies', 'edge_only', '--network', NETWORK,
             '--edge-model', f'scripted:{edge_script}', '--embedded-model', f'oracle:{bag}'],
            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 120.0
        playing = re.compile(r'\| *[1-9][0-9]*/[0-9]+ \[')  # the progress bar past frame 0
        while not playing.search(err.read_text()) and proc.poll() is None:
            assert time.monotonic() < deadline, err.read_text()[-2000:]
            time.sleep(0.05)
        assert proc.poll() is None, 'the evaluation ended before it could be interrupted'
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.read_text()
    assert code == 130, text[-2000:]
    assert 'Traceback' not in text and text.rstrip().endswith('interrupted')


def test_sweep_points_cover_every_latency_and_fluctuation():
    points = cli.sweep_profiles([0.2, 9.0], [0.0, 0.5])
    assert points == [(0.2, 0.0, 'fixed:200'), (9.0, 0.0, 'fixed:9000'),
                      (0.2, 0.5, 'jitter:200,100'), (9.0, 0.5, 'jitter:9000,4500')]
    # The headline table shows the middle latency without fluctuation.
    plan = {'points': [{'latency_s': lat, 'fluctuation': fl, 'network_profile': spec}
                       for lat, fl, spec in cli.sweep_profiles([0.2, 0.5, 1, 2, 4, 9], [0, 0.5])]}
    assert cli.headline_profile(plan) == 'fixed:2000'


@pytest.mark.parametrize('argv, message', [
    (['eval', 'bag', '--strategies', 'edge_only,nonsense'], 'unknown strategy'),
    (['eval', 'bag', '--network', 'fixed:abc'], 'fixed'),
    (['eval', 'bag', '--set', 'edge_svlm=3'], 'node.param=value'),
    (['sweep', 'bag', '--latencies', '0.2,x'], 'comma-separated numbers'),
])
def test_bad_command_lines_are_refused_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize('argv, message', [
    (['--set', 'cloud_bridge.network_profile=fixed:5'], 'set by --network'),
    (['--set', 'edge_svlm.model=tiny'], 'set by --edge-model'),
    (['--drain', '-1'], 'drain must be >= 0'),
    (['--step-rate', '0'], 'step rate'),
])
def test_options_the_replay_owns_are_refused_before_anything_runs(argv, message, tmp_path,
                                                                  capsys):
    assert cli.main(['eval', str(tmp_path / 'bag'), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_bag_is_one_clear_line(tmp_path, capsys):
    assert cli.main(['eval', str(tmp_path / 'nope'), '--out', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert 'nope' in err and 'Traceback' not in err


def test_set_edge_runtime_parameters_reach_the_edge_node_through_launch_arguments(tmp_path):
    # The launch file sets backend, device, ... from launch arguments, which win over the
    # params file: a --set of one of them must travel as that launch argument.
    from edgevlm_ros.eval.replay import launch_arguments
    from edgevlm_ros.tooling import launch_runner

    args = cli.build_parser().parse_args([
        'eval', str(tmp_path / 'bag'), '--set', 'edge_svlm.backend=onnxruntime',
        '--set', 'edge_svlm.device=cuda:1', '--set', 'edge_svlm.quantize=int8',
        '--set', 'edge_svlm.providers=CUDAExecutionProvider,CPUExecutionProvider',
        '--set', 'edge_svlm.kv_reuse=false'])
    cfg = cli._config(args, tmp_path / 'out', 'none')
    launch = launch_arguments(cfg, 'edgevlm', tmp_path / 'params.yaml', compressed=True)
    launch_file = Path(__file__).resolve().parents[1] / 'launch' / 'edgevlm.launch.py'
    procs, _, resolved = launch_runner.plan(launch_runner.load(launch_file), launch,
                                            env={'AMENT_PREFIX_PATH': ''})
    edge = next(p for p in procs if p.name == 'edge_svlm').cmd
    for text in ('backend:=onnxruntime', 'device:=cuda:1', 'quantize:=int8', 'dtype:=auto',
                 'providers:=CUDAExecutionProvider,CPUExecutionProvider'):
        assert text in edge
    assert resolved['edge_backend'] == 'onnxruntime' and resolved['edge_dtype'] == 'auto'
    # A parameter without a launch argument goes through the params file only.
    assert not any(a.startswith('kv_reuse') for a in edge)
    assert cfg.overrides['edge_svlm']['kv_reuse'] is False
