# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Network emulation: delay models, traces, outages, bandwidth caps and spec validation."""

import math
from pathlib import Path
import statistics
import subprocess
import sys

from edgevlm_ros.core import netem
from edgevlm_ros.core.netem import NetworkProfile, find_trace, load_trace
from edgevlm_ros.core.stats import percentile
import pytest

REPO = Path(__file__).resolve().parents[2]


def write_trace(tmp_path: Path, text: str, name: str = 't.csv') -> Path:
    path = tmp_path / name
    path.write_text(text, encoding='utf-8')
    return path


# --- base kinds --------------------------------------------------------------------------------

def test_none_and_fixed_profiles():
    assert NetworkProfile.parse('none').sample(12.0) == 0.0
    fixed = NetworkProfile.parse(' Fixed:250 ')
    assert fixed.sample(0.0) == 0.25 and fixed.sample(1e6) == 0.25
    assert fixed.expected_s(3.0) == 0.25
    assert fixed.describe() == 'fixed 250 ms'


def test_jitter_is_lognormal_with_the_requested_mean_and_std_and_repeatable():
    p = NetworkProfile.parse('jitter:300,100', seed=1)
    draws = [p.sample(i * 0.1) * 1000 for i in range(20_000)]
    assert statistics.fmean(draws) == pytest.approx(300, rel=0.03)
    assert statistics.pstdev(draws) == pytest.approx(100, rel=0.08)
    assert min(draws) > 0
    assert p.expected_s(5.0) == pytest.approx(0.3)
    again = NetworkProfile.parse('jitter:300,100', seed=1)
    assert [again.sample(i * 0.1) for i in range(5)] == pytest.approx(
        [d / 1000 for d in draws[:5]])
    other = NetworkProfile.parse('jitter:300,100', seed=2)
    assert [other.sample(0.0) for _ in range(5)] != pytest.approx([d / 1000 for d in draws[:5]])
    assert 'mean 300 ms' in p.describe()


def test_trace_is_interpolated_between_rows_and_loops_back_to_the_start(tmp_path):
    path = write_trace(tmp_path, '# a comment\ntime_s,rtt_ms\n0,100\n1,200\n\n2,400\n')
    p = NetworkProfile.parse(f'trace:{path}')
    assert p.sample(0.0) == pytest.approx(0.1)
    assert p.sample(0.5) == pytest.approx(0.15)
    assert p.sample(1.75) == pytest.approx(0.35)
    # The last row lasts one interval (1 s), sloping back to the first row; period 3 s.
    assert p.sample(2.5) == pytest.approx(0.25)
    assert p.sample(3.0) == pytest.approx(0.1)
    assert p.sample(3.5) == pytest.approx(0.15)
    assert p.sample(3000.5) == pytest.approx(0.15)
    assert p.expected_s(1.5) == pytest.approx(0.3)
    assert '3 rows' in p.describe() and 'loops every 3 s' in p.describe()


def test_a_one_row_trace_is_constant(tmp_path):
    path = write_trace(tmp_path, 'time_s,rtt_ms\n0,70\n')
    p = NetworkProfile.parse(f'trace:{path}')
    assert [p.sample(t) for t in (0.0, 0.3, 99.9)] == pytest.approx([0.07] * 3)


def test_trace_loss_column_loses_requests_with_that_probability(tmp_path):
    path = write_trace(tmp_path, 'time_s,rtt_ms,loss\n0,50,0\n10,50,1\n20,50,0.5\n30,50,0\n')
    p = NetworkProfile.parse(f'trace:{path}', seed=3)
    assert p.sample(5.0) == pytest.approx(0.05)
    assert p.sample(10.0) is None and p.sample(19.9) is None
    assert p.expected_s(15.0) is None
    assert p.expected_s(25.0) == pytest.approx(0.05)  # possible loss still has an expectation
    lost = sum(p.sample(25.0) is None for _ in range(4000))
    assert lost == pytest.approx(2000, abs=150)
    runs = []
    for _ in range(2):
        again = NetworkProfile.parse(f'trace:{path}', seed=3)
        runs.append([again.sample(25.0) for _ in range(50)])
    assert runs[0] == runs[1] and None in runs[0] and 0.05 in runs[0]


def test_trace_names_are_case_insensitive_and_paths_relative_to_the_working_directory(
        tmp_path, monkeypatch):
    write_trace(tmp_path, 'time_s,rtt_ms\n0,42\n', name='mine.csv')
    monkeypatch.chdir(tmp_path)
    assert NetworkProfile.parse('trace:mine.csv').sample(0.0) == pytest.approx(0.042)
    assert NetworkProfile.parse('TRACE:LTE').trace.path == NetworkProfile.parse(
        'trace:lte').trace.path


# --- modifiers ---------------------------------------------------------------------------------

def test_bandwidth_adds_upload_and_download_time():
    p = NetworkProfile.parse('fixed:100@8')
    assert p.sample(0.0, up_bytes=1_000_000) == pytest.approx(0.1 + 1.0)
    assert p.sample(0.0, up_bytes=0, down_bytes=10**9) == pytest.approx(0.1)  # down uncapped
    assert p.expected_s(0.0, up_bytes=500_000) == pytest.approx(0.6)
    assert '8 Mbit/s' in p.describe()
    both = NetworkProfile.parse('none@8/80')
    assert both.sample(0.0, up_bytes=1_000_000, down_bytes=1_000_000) == pytest.approx(1.1)
    assert '8 Mbit/s up / 80 Mbit/s down' in both.describe()


def test_outage_windows_lose_requests_inside_and_serve_them_outside():
    p = NetworkProfile.parse('fixed:100+outage:10-20,40-45')
    assert p.sample(9.0) == pytest.approx(0.1)
    assert p.sample(10.0) is None and p.sample(19.99) is None and p.sample(42.0) is None
    assert p.sample(20.0) == pytest.approx(0.1) and p.sample(45.0) == pytest.approx(0.1)
    assert p.in_outage(15.0) and not p.in_outage(25.0)
    assert p.expected_s(12.0) is None and p.expected_s(30.0) == pytest.approx(0.1)
    # A request whose reply would still be on the way when the link drops is lost too.
    assert p.sample(9.95) is None and p.expected_s(9.95) is None
    assert 'outages 10-20 s, 40-45 s' in p.describe()


def test_overlapping_and_repeated_outage_windows_are_joined():
    p = NetworkProfile.parse('none+outage:0-10+outage:5-6,8-12')
    assert p.outages == ((0.0, 12.0),)
    assert p.in_outage(7.0) and p.in_outage(11.0) and not p.in_outage(12.0)


def test_periodic_outage_is_at_the_end_of_every_period():
    p = NetworkProfile.parse('fixed:50+outage_every:60,5')
    assert p.sample(0.0) == pytest.approx(0.05)
    assert p.sample(54.0) == pytest.approx(0.05)
    assert p.sample(55.0) is None and p.sample(59.9) is None
    assert p.sample(60.0) == pytest.approx(0.05)
    assert p.sample(600 + 57.0) is None
    assert p.sample(54.96) is None  # the reply would arrive after the link went down
    assert 'outage of 5 s at the end of every 60 s' in p.describe()


def test_modifiers_combine_in_any_order():
    a = NetworkProfile.parse('fixed:10+outage:1-2@8/16+outage_every:100,1')
    b = NetworkProfile.parse('fixed:10@8/16+outage_every:100,1+outage:1-2')
    for p in (a, b):
        assert p.sample(0.0, up_bytes=1000) == pytest.approx(0.011)
        assert p.sample(1.5) is None and p.sample(99.5) is None
        assert p.down_mbit_s == 16


def test_the_same_seed_and_calls_give_the_same_delays_for_every_kind(tmp_path):
    path = write_trace(tmp_path, 'time_s,rtt_ms,loss\n0,50,0.3\n1,90,0.3\n')
    for spec in ('none', 'fixed:30@5', 'jitter:80,40+outage_every:10,1', f'trace:{path}@2',
                 'trace:lte+outage:3-4'):
        runs = []
        for _ in range(2):
            p = NetworkProfile.parse(spec, seed=7)
            runs.append([p.sample(i * 0.37, up_bytes=i * 100) for i in range(300)])
        assert runs[0] == runs[1], spec


# --- the older calls ---------------------------------------------------------------------------

def test_delay_s_and_mean_delay_s_keep_their_meaning():
    assert NetworkProfile.parse('none').delay_s() == 0.0
    fixed = NetworkProfile.parse('fixed:100@8')
    assert fixed.delay_s(1_000_000) == pytest.approx(1.1)
    assert fixed.mean_delay_s(0) == pytest.approx(0.1)
    jit = NetworkProfile.parse('jitter:300,100', seed=1)
    ref = NetworkProfile.parse('jitter:300,100', seed=1)
    assert [jit.delay_s() for _ in range(5)] == pytest.approx([ref.sample(0.0) for _ in range(5)])
    assert jit.mean_delay_s() == pytest.approx(0.3)
    with pytest.raises(ValueError, match='payload_bytes'):
        fixed.delay_s(-1)


def test_delay_s_runs_on_a_clock_that_starts_when_the_profile_is_made():
    down = NetworkProfile.parse('fixed:20+outage:0-1000')
    assert down.delay_s() == math.inf and down.mean_delay_s() == math.inf
    assert 0.0 <= down.elapsed_s() < 1000


# --- shipped traces ----------------------------------------------------------------------------

@pytest.mark.parametrize('name, median_range, p95_range', [
    ('lte', (40, 120), (100, 400)),
    ('5g', (10, 40), (20, 120)),
])
def test_shipped_traces_load_and_look_like_their_network(name, median_range, p95_range):
    trace = load_trace(find_trace(name))
    assert len(trace) == 6000 and trace.period_s == pytest.approx(600.0)
    up = [r for r, loss in zip(trace.rtts, trace.losses) if loss == 0]
    assert median_range[0] <= percentile(up, 50) <= median_range[1]
    assert p95_range[0] <= percentile(up, 95) <= p95_range[1]
    assert percentile(up, 99) > percentile(up, 95) and max(up) > 3 * percentile(up, 50)
    assert 0 < len(trace) - len(up) < 0.05 * len(trace)  # a few seconds of link failure
    p = NetworkProfile.parse(f'trace:{name}')
    assert 'loops every 600 s' in p.describe()


def test_lte_is_slower_and_spikier_than_5g():
    lte, g5 = (load_trace(find_trace(n)) for n in ('lte', '5g'))
    assert percentile(lte.rtts, 50) > 1.5 * percentile(g5.rtts, 50)
    assert max(lte.rtts) > 1000 > max(g5.rtts)


def test_shipped_traces_are_what_the_documented_generator_makes():
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'make_traces.py'), '--check'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'lte: 6000 rows' in result.stdout and '5g: 6000 rows' in result.stdout


def test_shipped_traces_are_found_through_ament_prefix_path(tmp_path, monkeypatch):
    installed = tmp_path / 'share' / 'edgevlm_ros' / 'config' / 'traces'
    installed.mkdir(parents=True)
    write_trace(installed, 'time_s,rtt_ms\n0,5\n', name='lab.csv')
    monkeypatch.setenv('AMENT_PREFIX_PATH', f'/nonexistent:{tmp_path}')
    assert 'lab' in netem.available_traces()
    assert NetworkProfile.parse('trace:lab').sample(0.0) == pytest.approx(0.005)


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize('spec, message', [
    ('', 'empty'),
    ('   ', 'empty'),
    ('fast', 'unknown network profile'),
    ('fixed', 'fixed delay'),
    ('fixed:-5', 'fixed delay'),
    ('fixed:abc', 'must be a number'),
    ('fixed:inf', 'finite'),
    ('fixed:nan', 'finite'),
    ('jitter:100', '2 comma-separated'),
    ('jitter:0,10', 'mean_ms > 0'),
    ('jitter:1,2,3', '2 comma-separated'),
    ('none:5', 'takes no arguments'),
    ('fixed:10@0', 'bandwidth must be > 0'),
    ('fixed:10@', 'upload bandwidth'),
    ('fixed:10@8/0', 'bandwidth must be > 0'),
    ('fixed:10@8/x', 'download bandwidth'),
    ('fixed:10@8@9', "only one '@'"),
    ('@8', 'no base'),
    ('+outage:1-2', 'no base'),
    ('fixed:10+outage:5', '<start_s>-<end_s>'),
    ('fixed:10+outage:5-3', 'end after it starts'),
    ('fixed:10+outage:3-3', 'end after it starts'),
    ('fixed:10+outage:a-3', 'outage start'),
    ('fixed:10+outage:', '<start_s>-<end_s>'),
    ('fixed:10+outage_every:10', '2 comma-separated'),
    ('fixed:10+outage_every:10,10', 'duration_s < period_s'),
    ('fixed:10+outage_every:0,0', 'duration_s < period_s'),
    ('fixed:10+outage_every:10,1+outage_every:20,1', r"only one '\+outage_every'"),
    ('fixed:10+blackout:1-2', 'unknown modifier'),
    ('fixed:10+', 'unknown modifier'),
    ('trace', 'trace needs a name'),
    ('trace:', 'trace needs a name'),
    ('trace:no_such_trace', "no trace named 'no_such_trace'"),
    ('trace:bad name!', 'letters, digits'),
    ('trace:/no/such/file.csv', 'does not exist'),
])
def test_bad_network_spec_raises_a_clear_error(spec, message):
    with pytest.raises(ValueError, match=message):
        NetworkProfile.parse(spec)


def test_unknown_trace_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match=r'shipped: .*5g.*lte'):
        NetworkProfile.parse('trace:wifi')


def test_too_many_outage_windows_are_refused():
    windows = ','.join(f'{2 * i}-{2 * i + 1}' for i in range(netem.MAX_OUTAGE_WINDOWS + 1))
    with pytest.raises(ValueError, match='at most 1000 outage windows'):
        NetworkProfile.parse(f'none+outage:{windows}')


@pytest.mark.parametrize('text, message', [
    ('', 'no data'),
    ('# only a comment\n', 'no data'),
    ('time_s,rtt_ms\n', 'no data'),
    ('time,rtt\n0,1\n', ':1: header must be'),
    ('time_s,rtt_ms\n0,10\n1\n', ':3: expected 2 values'),
    ('time_s,rtt_ms\n0,10\n1,x\n', ':3: rtt_ms must be a number'),
    ('time_s,rtt_ms\n0,10\n1,-4\n', ':3: rtt_ms must be a finite number >= 0'),
    ('time_s,rtt_ms\n0,10\n1,nan\n', ':3: rtt_ms must be a finite'),
    ('time_s,rtt_ms\n0.5,10\n', ':2: the first row must be at time_s 0'),
    ('time_s,rtt_ms\n0,10\n2,10\n2,10\n', ':4: time_s must increase'),
    ('time_s,rtt_ms\n0,10\n2,10\n1,10\n', ':4: time_s must increase'),
    ('time_s,rtt_ms,loss\n0,10,1.5\n', ':2: loss is a probability'),
    ('time_s,rtt_ms,loss\n0,10\n', ':2: expected 3 values'),
])
def test_bad_trace_file_names_the_file_and_line(tmp_path, text, message):
    path = write_trace(tmp_path, text)
    with pytest.raises(ValueError, match=message) as info:
        NetworkProfile.parse(f'trace:{path}')
    assert str(path) in str(info.value)


def test_trace_row_and_size_caps_are_enforced(tmp_path, monkeypatch):
    monkeypatch.setattr(netem, 'MAX_TRACE_ROWS', 3)
    path = write_trace(tmp_path, 'time_s,rtt_ms\n0,1\n1,1\n2,1\n3,1\n')
    with pytest.raises(ValueError, match=r':5: more than 3 rows'):
        load_trace(path)
    monkeypatch.setattr(netem, 'MAX_TRACE_BYTES', 10)
    with pytest.raises(ValueError, match='more than the 10 allowed'):
        load_trace(path)


def test_non_utf8_trace_is_refused(tmp_path):
    path = tmp_path / 'bin.csv'
    path.write_bytes(b'time_s,rtt_ms\n0,\xff\n')
    with pytest.raises(ValueError, match='not UTF-8'):
        load_trace(path)


@pytest.mark.parametrize('call', [
    lambda p: p.sample(-1.0),
    lambda p: p.sample(math.nan),
    lambda p: p.sample(0.0, up_bytes=-1),
    lambda p: p.sample(0.0, down_bytes=-1),
    lambda p: p.expected_s(math.inf),
])
def test_bad_call_arguments_raise(call):
    with pytest.raises(ValueError):
        call(NetworkProfile.parse('fixed:10'))
