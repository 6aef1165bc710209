# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The evaluation report: Markdown tables, scores.json and plots from hand-built runs."""

import json
import math
from pathlib import Path
import random

import cv2
from edgevlm_ros.core.records import (
    AnswerRecord,
    CloudRecord,
    RunRecord,
    Truth,
    UpdateRecord,
)
from edgevlm_ros.core.scoring import RunScore, score_run
from edgevlm_ros.eval.report import (
    SweepPoint,
    fmt_bytes,
    fmt_ms,
    fmt_pct,
    headline_row,
    write_report,
)
import numpy as np
import pytest

EPOCH_NS = 1_767_225_600 * 10**9
Q = 'How many cups are on the table?'
DEADLINE_S = 1.0


def _run(strategy: str, rtt_s: float, seed: int, profile: str = 'fixed:1500',
         steps: int = 60, step_s: float = 0.5) -> RunRecord:
    """A plausible recorded run: two episodes, answers changing, clouds and updates."""
    rng = random.Random(seed)
    truths, answers, clouds, updates = [], [], [], []
    uses_cloud = strategy != 'edge_only'
    for i in range(steps):
        stamp = EPOCH_NS + round(i * step_s * 1e9)
        episode = 'kitchen' if i < steps // 2 else 'hallway'
        truth = ('two', 'three', 'one')[(i // 12) % 3]
        truths.append(Truth(stamp, episode, 'cups', Q, truth, accepted=('2',) if truth == 'two'
                            else ()))
        status = 'ok' if uses_cloud and i % 3 == 0 else 'dropped'
        arrival = stamp + round(rtt_s * rng.uniform(0.8, 1.2) * 1e9)
        clouds.append(CloudRecord(stamp, i, Q, status, arrival, answer=truth,
                                  round_trip_ms=(arrival - stamp) / 1e6))
        if status == 'ok':
            updates.append(UpdateRecord(i, f'There are {truth} cups.', arrival + 1_000_000,
                                        age_s=(arrival - stamp) / 1e9))
        latency = rng.uniform(150.0, 900.0) if i % 7 else 1400.0
        said = truth if rng.random() < 0.7 else rng.choice(['two', 'three', 'not sure'])
        source = 'cloud' if uses_cloud and i % 5 == 0 else 'edge'
        answers.append(AnswerRecord(stamp, i, Q, f'{said.capitalize()}.', source, latency,
                                    stamp + round(latency * 1e6),
                                    newest_cloud_step=max(i - 3, -1) if uses_cloud else -1,
                                    replaced_turns=1 if uses_cloud else 0,
                                    focus_applied=strategy == 'edgevlm'))
    meta = {'bag': '/data/synth_seed0', 'speed': 1.0, 'seed': 0, 'edge_model': 'tiny',
            'cloud_model': 'scripted', 'strategy': strategy, 'network_profile': profile,
            'deadline_s': DEADLINE_S, 'wall_s': 31.5 + seed}
    return RunRecord(strategy, profile, truths, answers, clouds if uses_cloud else
                     [c.__class__(c.stamp_ns, c.step_id, Q, 'dropped', c.received_ns)
                      for c in clouds], updates if uses_cloud else [],
                     counters={'cloud_bridge': {'bytes_sent': str(1_234_567 * uses_cloud),
                                                'bytes_received': str(4321 * uses_cloud)}},
                     meta=meta)


def _scored(strategies=('edge_only', 'cloud_stale', 'edgevlm'), **kw):
    runs = [_run(s, 1.5, seed, **kw) for seed, s in enumerate(strategies)]
    return [(r, score_run(r, DEADLINE_S)) for r in runs]


def _image(path: Path) -> np.ndarray:
    assert path.stat().st_size < 400_000, f'{path.name}: {path.stat().st_size} bytes'
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f'{path.name} does not decode'
    # Not a blank canvas: a plot has many distinct colours.
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20, path.name
    return img


def _table_rows(md: str) -> list[str]:
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('|'))
    end = start
    while end < len(lines) and lines[end].startswith('|'):
        end += 1
    return lines[start + 2:end]


def test_report_writes_markdown_scores_and_plots(tmp_path):
    runs = _scored()
    path = write_report(tmp_path / 'out', runs, title='Synthetic check', deadline_s=DEADLINE_S)
    assert path == tmp_path / 'out' / 'report.md'
    md = path.read_text()
    assert md.startswith('# Synthetic check')

    # The first table is the headline: one row per strategy, numbers as formatted.
    rows = _table_rows(md)
    assert [r.split('|')[1].strip() for r in rows] == ['edge_only', 'cloud_stale', 'edgevlm']
    for (run, score), row in zip(runs, rows):
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert cells == headline_row(run.strategy, score)
        assert fmt_pct(score.accuracy_at_deadline) in cells
        assert f'{fmt_ms(score.latency_p50_ms)}' == cells[4]
    edgevlm = runs[2][1]
    assert f'{edgevlm.deadline_misses} ({fmt_pct(edgevlm.deadline_miss_rate)})' in rows[2]
    assert '1.2 MB / 4.3 kB' in rows[2] and '0 B / 0 B' in rows[0]

    # Run facts: shared ones once, differing ones per run.
    assert '- bag: /data/synth_seed0' in md and '- deadline: 1 s' in md
    assert '| edgevlm | `fixed:1500` |' not in md.split('## Run facts')[1]
    assert 'wall_s' in md.split('## Run facts')[1]

    out = tmp_path / 'out'
    for name in ('latency_cdf.png', 'accuracy_vs_latency.png', 'timeline_edgevlm.png'):
        assert f']({name})' in md
        img = _image(out / name)
        assert img.shape[0] >= 400 and img.shape[1] >= 700
    assert _image(out / 'timeline_edgevlm.png').shape[:2] == (600, 1300)

    scores = json.loads((out / 'scores.json').read_text())
    assert [r['strategy'] for r in scores['runs']] == ['edge_only', 'cloud_stale', 'edgevlm']
    back = RunScore.from_dict(scores['runs'][2])
    assert back.accuracy_at_deadline == edgevlm.accuracy_at_deadline
    assert set(back.per_episode) == {'kitchen', 'hallway'}
    assert '## Accuracy at deadline per episode' in md and '`kitchen`' in md


def test_report_timeline_falls_back_when_the_strategy_is_missing(tmp_path):
    runs = _scored(strategies=('edge_only', 'offload'))
    md = write_report(tmp_path, runs, title='t', deadline_s=DEADLINE_S,
                      timeline_strategy='edgevlm').read_text()
    assert '](timeline_offload.png)' in md  # has context updates; edge_only has none
    _image(tmp_path / 'timeline_offload.png')


def test_report_of_empty_runs_still_writes_everything(tmp_path):
    empty = RunRecord('edgevlm', 'none', meta={'bag': 'x'})
    runs = [(empty, score_run(empty, DEADLINE_S))]
    md = write_report(tmp_path, runs, title='empty', deadline_s=DEADLINE_S).read_text()
    row = _table_rows(md)[0]
    assert '| edgevlm | `none` | – | – |' in row
    assert 'timeline_' not in md  # nothing to draw
    _image(tmp_path / 'latency_cdf.png')
    _image(tmp_path / 'accuracy_vs_latency.png')
    scores = json.loads((tmp_path / 'scores.json').read_text())
    assert scores['runs'][0]['accuracy'] is None


def test_same_strategy_twice_is_labelled_by_network(tmp_path):
    a, b = _run('edgevlm', 0.5, 1, profile='fixed:500'), _run('edgevlm', 4.0, 2, 'fixed:4000')
    runs = [(r, score_run(r, DEADLINE_S)) for r in (a, b)]
    md = write_report(tmp_path, runs, title='t', deadline_s=DEADLINE_S).read_text()
    labels = [r.split('|')[1].strip() for r in _table_rows(md)]
    assert labels == ['edgevlm [fixed:500]', 'edgevlm [fixed:4000]']


def test_sweep_report_tables_every_point(tmp_path):
    sweep = []
    latencies, levels = (0.2, 1.0, 4.0, 9.0), (0.0, 0.5)
    for fl in levels:
        for lat in latencies:
            ms = lat * 1000
            spec = f'fixed:{ms:g}' if fl == 0 else f'jitter:{ms:g},{ms * fl:g}'
            for k, strategy in enumerate(('edge_only', 'cloud_only', 'edgevlm')):
                # Seeded by point too: every cell differs, so a cell in the wrong column shows.
                seed = k + 10 * latencies.index(lat) + 100 * round(fl * 10)
                run = _run(strategy, lat, seed, profile=spec, steps=20)
                sweep.append(SweepPoint(spec, lat, fl, strategy, score_run(run, DEADLINE_S)))
    shown = _scored()
    md = write_report(tmp_path, shown, title='sweep', sweep=sweep,
                      deadline_s=DEADLINE_S).read_text()
    assert '## Latency sweep' in md and '24 runs: 3 strategies under 8 network conditions' in md
    section = md.split('## Latency sweep')[1]
    for fl_name in ('fixed latency', 'fluctuation 0.5'):
        assert f'Accuracy at deadline, {fl_name}' in section
        assert f'Deadline miss rate, {fl_name}' in section
    assert '| Strategy | 0.2 s | 1 s | 4 s | 9 s |' in section
    # Each point's accuracy sits in its row and column.
    table = section.split('Accuracy at deadline, fluctuation 0.5')[1].split('\n\n')[1]
    cells = {line.split('|')[1].strip(): [c.strip() for c in line.strip('|').split('|')[1:]]
             for line in table.splitlines()[2:]}
    for p in sweep:
        if p.fluctuation == 0.5:
            assert cells[p.strategy][latencies.index(p.cloud_latency_s)] == fmt_pct(
                p.score.accuracy_at_deadline)
    # ... and the cells really differ along a row (else the check above could not fail).
    assert any(len(set(row)) > 1 for row in cells.values())
    scores = json.loads((tmp_path / 'scores.json').read_text())
    assert len(scores['sweep']) == 24
    assert scores['sweep'][0]['score']['strategy'] == 'edge_only'
    img = _image(tmp_path / 'accuracy_vs_latency.png')
    assert img.shape[1] == 1100  # two panels, one per fluctuation level


@pytest.mark.parametrize('n, text', [(0, '0 B'), (999, '999 B'), (1_234_567, '1.2 MB'),
                                     (4321, '4.3 kB'), (5 * 10**12, '5000.0 GB')])
def test_fmt_bytes(n, text):
    assert fmt_bytes(n) == text


def test_fmt_undefined_is_a_dash():
    assert fmt_pct(math.nan) == '–' and fmt_ms(math.nan) == '–'
    assert fmt_pct(0.75) == '75.0 %' and fmt_ms(1476.4) == '1476'
