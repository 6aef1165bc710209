# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The evaluation report: a Markdown summary, scores.json and PNG plots, from scored runs.

Why one module of 590 lines: it is one report: ``write_report`` writes the Markdown that names
the PNG files the plot functions draw (the timeline plot alone is about 130 lines of matplotlib)
and is their only caller. The strategy sweep's report is eval/sweep_report.py.

No ROS. Plots use matplotlib's Agg canvas through ``matplotlib.figure.Figure`` (no pyplot, so no
global backend state and no display). Every figure has a fixed size at 100 dpi, so a PNG stays
at a few hundred KB whatever the run length; the episode timeline shows at most
TIMELINE_WINDOW_S of one episode and the per-episode table at most MAX_EPISODE_ROWS rows.

Files written into out_dir: report.md, scores.json, latency_cdf.png, accuracy_vs_latency.png,
timeline_<strategy>.png (when a run has scored steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import json
import math
from pathlib import Path
import re

from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from edgevlm_ros.core.records import RunRecord
from edgevlm_ros.core.scoring import RunScore, TimelineStep, normalise, timeline
from edgevlm_ros.core.strategy import Strategy

DPI = 100
TIMELINE_WINDOW_S = 60.0      # the timeline shows at most this much of its episode,
TIMELINE_MAX_STEPS = 300      # and at most this many steps (but never less than 20 s)
TIMELINE_MIN_WINDOW_S = 20.0
TIMELINE_LANES = 8            # overlapping cloud requests are spread over this many lanes
MAX_EPISODE_ROWS = 40         # per-episode table rows (the rest are summarised)
MAX_VALUE_COLOURS = 20        # distinct answer values coloured in the timeline; more are grey
MAX_FACT_CHARS = 80
_STRATEGY_ORDER = [s.value for s in Strategy]
_STATUS_COLOURS = {'ok': '#1f77b4', 'timeout': '#ff7f0e', 'http_error': '#d62728',
                   'parse_error': '#9467bd'}
_NOMINAL = re.compile(r'^\s*(?:fixed|jitter):([0-9.]+)', re.IGNORECASE)


@dataclass(frozen=True)
class SweepPoint:
    """One strategy's score under one network condition of a latency sweep."""

    network_profile: str
    cloud_latency_s: float  # the nominal mean network round trip
    fluctuation: float      # relative standard deviation (0: fixed latency)
    strategy: str
    score: RunScore

    def to_dict(self) -> dict[str, object]:
        return {'network_profile': self.network_profile, 'cloud_latency_s': self.cloud_latency_s,
                'fluctuation': self.fluctuation, 'strategy': self.strategy,
                'score': self.score.to_dict()}


# --- formatting --------------------------------------------------------------------------------

def fmt_pct(x: float) -> str:
    """A fraction as a percentage with one decimal ('75.0 %'); '–' when undefined."""
    return '–' if x is None or math.isnan(x) else f'{100.0 * x:.1f} %'


def fmt_ms(x: float) -> str:
    """Milliseconds without decimals ('1476'); '–' when undefined."""
    return '–' if x is None or math.isnan(x) else f'{x:.0f}'


def fmt_bytes(n: int) -> str:
    """A byte count in SI units ('12.3 kB')."""
    value = float(n)
    for unit in ('B', 'kB', 'MB', 'GB'):
        if value < 1000.0 or unit == 'GB':
            return f'{value:.0f} {unit}' if unit == 'B' else f'{value:.1f} {unit}'
        value /= 1000.0
    return f'{n} B'  # unreachable


def _fmt_fact(value: object) -> str:
    if isinstance(value, dict):
        text = ', '.join(f'{k}={v}' for k, v in value.items())
    elif isinstance(value, float):
        text = f'{value:g}'
    else:
        text = str(value)
    text = text.replace('|', '/').replace('\n', ' ')
    return text if len(text) <= MAX_FACT_CHARS else text[:MAX_FACT_CHARS - 1] + '…'


def _order_key(strategy: str) -> tuple[int, str]:
    try:
        return _STRATEGY_ORDER.index(strategy), strategy
    except ValueError:
        return len(_STRATEGY_ORDER), strategy


def _colour(strategy: str) -> str:
    palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
               '#7f7f7f', '#bcbd22', '#17becf']
    return palette[_order_key(strategy)[0] % len(palette)]


def _labels(runs: Sequence[tuple[RunRecord, RunScore]]) -> list[str]:
    """Strategy names, with the network profile when a strategy appears more than once."""
    names = [run.strategy for run, _ in runs]
    return [f'{run.strategy} [{run.network_profile}]' if names.count(run.strategy) > 1
            else run.strategy for run, _ in runs]


# --- plots -------------------------------------------------------------------------------------

def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=DPI, format='png')


def plot_latency_cdf(path: Path, runs: Sequence[tuple[RunRecord, RunScore]],
                     deadline_s: float) -> None:
    """Answer latency CDF per run, log x axis, the deadline as a vertical line."""
    fig = Figure(figsize=(8, 5), dpi=DPI)
    ax = fig.add_subplot()
    plotted = False
    for (run, _), label in zip(runs, _labels(runs)):
        lat = sorted(max(a.latency_ms, 0.1) for a in run.answers)  # log axis: no zeros
        if not lat:
            continue
        n = len(lat)
        ax.step([lat[0]] + lat, [0.0] + [(i + 1) / n for i in range(n)], where='post',
                color=_colour(run.strategy), label=f'{label} (n={n})')
        plotted = True
    deadline_ms = deadline_s * 1000.0
    ax.axvline(deadline_ms, color='black', linestyle='--', linewidth=1,
               label=f'deadline {deadline_s:g} s')
    _plain_log_ticks(ax)
    if not plotted:
        ax.set_xlim(deadline_ms / 100, deadline_ms * 100)
        ax.text(0.5, 0.5, 'no answers', transform=ax.transAxes, ha='center', va='center')
    ax.set_ylim(0, 1.02)
    ax.set_xlabel('answer latency: camera stamp to publish (ms, log scale)')
    ax.set_ylabel('fraction of answers')
    ax.set_title('Answer latency CDF per strategy')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _plain_log_ticks(ax) -> None:
    """Log x axis labelled 100, 200, 500, 1000 rather than 10^2."""
    ax.set_xscale('log')
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}'))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _uses_cloud(strategy: str) -> bool:
    try:
        return Strategy.parse(strategy).uses_cloud
    except ValueError:
        return True  # an unknown strategy: assume it may


def _nominal_latency_s(profile: str) -> float:
    m = _NOMINAL.match(profile or '')
    return float(m.group(1)) / 1000.0 if m else math.nan


def plot_accuracy_vs_latency(path: Path, runs: Sequence[tuple[RunRecord, RunScore]],
                             deadline_s: float, sweep: Sequence[SweepPoint] | None) -> None:
    """
    Accuracy at the deadline against cloud latency, one line per strategy.

    With a sweep: one panel per fluctuation level, x = the nominal mean latency. Without: one
    point per run at its measured median cloud round trip (else the profile's nominal mean);
    a run with neither (no cloud) is drawn as a horizontal line.
    """
    if sweep:
        levels = sorted({p.fluctuation for p in sweep})
        fig = Figure(figsize=(min(16.0, 1.0 + 5.0 * len(levels)), 5), dpi=DPI)
        axes = fig.subplots(1, len(levels), sharey=True, squeeze=False)[0]
        for ax, level in zip(axes, levels):
            points = [p for p in sweep if p.fluctuation == level]
            for strategy in sorted({p.strategy for p in points}, key=_order_key):
                mine = sorted((p.cloud_latency_s, p.score.accuracy_at_deadline)
                              for p in points if p.strategy == strategy)
                ax.plot([x for x, _ in mine], [y for _, y in mine], marker='o',
                        color=_colour(strategy), label=strategy)
            xs = sorted({p.cloud_latency_s for p in points if p.cloud_latency_s > 0})
            _latency_axis(ax, xs, deadline_s, ticks_at=True)
            ax.set_title(f'fluctuation {level:g} (relative std)'
                         if level else 'fixed latency (no fluctuation)')
        axes[0].set_ylabel('accuracy at deadline')
        axes[-1].legend(loc='best', fontsize=8)
        fig.suptitle('Accuracy at the deadline vs cloud latency')
    else:
        fig = Figure(figsize=(8, 5), dpi=DPI)
        ax = fig.add_subplot()
        xs = []
        for (run, score), label in zip(runs, _labels(runs)):
            x = score.cloud_rtt_p50_ms / 1000.0
            how = 'measured'
            if math.isnan(x):
                x, how = _nominal_latency_s(run.network_profile), 'nominal'
            if not _uses_cloud(run.strategy) or math.isnan(x) or x <= 0:
                if not math.isnan(score.accuracy_at_deadline):
                    ax.axhline(score.accuracy_at_deadline, color=_colour(run.strategy),
                               linestyle=':', label=f'{label} (no cloud)'
                               if not _uses_cloud(run.strategy) else f'{label} (latency unknown)')
                continue
            xs.append(x)
            ax.plot([x], [score.accuracy_at_deadline], marker='o', linestyle='none',
                    markersize=8, color=_colour(run.strategy), label=f'{label} ({how})')
        _latency_axis(ax, sorted(xs), deadline_s, ticks_at=False)
        ax.set_ylabel('accuracy at deadline')
        ax.set_title('Accuracy at the deadline vs cloud round trip (one run per strategy)')
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc='best', fontsize=8)
        else:
            ax.text(0.5, 0.5, 'no scored steps', transform=ax.transAxes, ha='center')
    fig.tight_layout()
    _save(fig, path)


def _latency_axis(ax, xs: Sequence[float], deadline_s: float, ticks_at: bool) -> None:
    """Log x axis over xs and the deadline; ticks at the sweep's latencies when ticks_at."""
    _plain_log_ticks(ax)
    lo = min([*xs, deadline_s]) / 1.5
    hi = max([*xs, deadline_s]) * 1.5
    ax.set_xlim(lo, hi)
    if xs and ticks_at:
        ax.set_xticks(list(xs))
        ax.set_xticklabels([f'{x:g}' for x in xs])
        ax.minorticks_off()
    ax.axvline(deadline_s, color='black', linestyle='--', linewidth=1)
    ax.text(deadline_s, 1.03, f' deadline {deadline_s:g} s', fontsize=8, va='bottom')
    ax.set_ylim(0, 1.1)
    ax.set_xlabel('cloud latency (s, log scale)')
    ax.grid(True, alpha=0.3)


def _pick_episode(rows: Sequence[TimelineStep], run: RunRecord) -> str | None:
    """The episode with the most context updates (the plot's point), then the most steps."""
    steps_of: dict[str, set[int]] = {}
    for r in rows:
        if r.episode is not None:
            steps_of.setdefault(r.episode, set()).add(r.step_id)
    if not steps_of:
        return None
    updates = {ep: sum(u.step_id in ids for u in run.updates) for ep, ids in steps_of.items()}
    return max(sorted(steps_of), key=lambda ep: (updates[ep], len(steps_of[ep])))


def _segments(stamps: Sequence[float], values: Sequence[str | None], end: float
              ) -> list[tuple[float, float, str | None]]:
    """Runs of equal consecutive values as (start, end, value)."""
    out: list[tuple[float, float, str | None]] = []
    for i, (t, v) in enumerate(zip(stamps, values)):
        t_next = stamps[i + 1] if i + 1 < len(stamps) else end
        if out and out[-1][2] == v:
            out[-1] = (out[-1][0], t_next, v)
        else:
            out.append((t, t_next, v))
    return out


def _lanes(spans: Sequence[tuple[float, float]], n: int) -> list[int]:
    """A lane per span (sorted by start) so that spans in one lane overlap as little as can be."""
    ends = [-math.inf] * n
    out = []
    for a, b in spans:
        free = [i for i in range(n) if ends[i] < a]
        lane = free[0] if free else min(range(n), key=lambda i: ends[i])
        ends[lane] = max(ends[lane], b)
        out.append(lane)
    return out


def _short(text: str, n: int = 22) -> str:
    # Model output may hold control characters (random-weight models do); the font has no glyph.
    text = ' '.join(''.join(c if c.isprintable() else ' ' for c in text).split())
    return text if len(text) <= n else text[:n - 1] + '…'


def plot_timeline(path: Path, run: RunRecord, deadline_s: float,
                  episode: str | None = None, window_s: float = TIMELINE_WINDOW_S
                  ) -> str | None:
    """
    Draw one episode of a run: truth, the robot's answer, cloud round trips, context updates.

    Returns the episode drawn (None: the run has no scored step, nothing is written). At most
    window_s seconds from the episode start are shown, shortened to about TIMELINE_MAX_STEPS
    steps (not below TIMELINE_MIN_WINDOW_S) so that dense runs stay readable.
    """
    rows = timeline(run, deadline_s)
    if episode is None:
        episode = _pick_episode(rows, run)
    mine = [r for r in rows if r.episode == episode and episode is not None]
    if not mine:
        return None
    t0 = mine[0].stamp_ns
    all_xs = [(r.stamp_ns - t0) / 1e9 for r in mine]
    gaps = sorted(b - a for a, b in zip(all_xs, all_xs[1:]) if b > a)
    step_s = gaps[len(gaps) // 2] if gaps else deadline_s
    window_s = min(window_s, max(TIMELINE_MIN_WINDOW_S, TIMELINE_MAX_STEPS * step_s))
    episode_s = all_xs[-1] + step_s
    mine = [r for r, x in zip(mine, all_xs) if x <= window_s]
    ids = {r.step_id for r in mine}
    stamp_of = {r.step_id: r.stamp_ns for r in mine}
    xs = [(r.stamp_ns - t0) / 1e9 for r in mine]
    end = xs[-1] + step_s
    dense = len(mine) > TIMELINE_MAX_STEPS // 2

    # One colour per answer value (normalised), truth values first, so the bars compare.
    colours: dict[str, str] = {}
    shown: dict[str, str] = {}
    # Soft colours, so the green/red right/wrong markers stay the only saturated ones.
    palette = ['#8dd3c7', '#ffffb3', '#bebada', '#fb8072', '#80b1d3', '#fdb462', '#b3de69',
               '#fccde5', '#d9d9d9', '#bc80bd', '#ccebc5', '#ffed6f', '#b3e2cd', '#fdcdac',
               '#cbd5e8', '#f4cae4', '#e6f5c9', '#fff2ae', '#f1e2cc', '#cccccc']
    for text in [r.truth for r in mine] + [r.answer for r in mine]:
        if text is None:
            continue
        key = normalise(text)
        if key not in colours and len(colours) < MAX_VALUE_COLOURS:
            colours[key] = palette[len(colours) % len(palette)]
            shown[key] = _short(text)

    fig = Figure(figsize=(13, 6), dpi=DPI)
    ax = fig.add_subplot()
    y_truth, y_answer, y_cloud, y_update = 3.0, 2.0, 1.0, 0.0
    bar_h = 0.5
    for y, values in ((y_truth, [r.truth for r in mine]), (y_answer, [r.answer for r in mine])):
        keys = [None if v is None else normalise(v) for v in values]
        for a, b, key in _segments(xs, keys, end):
            colour = 'white' if key is None else colours.get(key, '#bbbbbb')
            ax.barh(y, b - a, left=a, height=bar_h, color=colour, edgecolor='#555555',
                    linewidth=0.5)
            if key is not None and (b - a) >= (end - xs[0]) / 25:
                ax.text((a + b) / 2, y, shown.get(key, _short(key)), ha='center',
                        va='center', fontsize=7, clip_on=True)
    # Per step, the robot's answer at the deadline: green right, red wrong; shape = source.
    markers = {'edge': 'o', 'cloud': 's', None: 'x'}
    for source, marker in markers.items():
        for ok, colour in ((True, '#2ca02c'), (False, '#d62728')):
            pts = [x for x, r in zip(xs, mine) if r.source == source and r.correct is ok]
            if pts:
                ax.scatter(pts, [y_answer + 0.42] * len(pts), marker=marker,
                           s=10 if dense else 22,
                           color=colour, zorder=3)
    # Cloud round trips: from the step's stamp to arrival, staggered so overlaps stay visible.
    clouds = sorted((c for c in run.clouds if c.step_id in ids and c.status != 'dropped'),
                    key=lambda c: (c.stamp_ns, c.step_id))
    spans = [((c.stamp_ns - t0) / 1e9, (c.received_ns - t0) / 1e9) for c in clouds]
    lanes = _lanes(spans, TIMELINE_LANES)
    lane_h = 0.7 / TIMELINE_LANES
    ys = [y_cloud - 0.35 + lane_h * (lane + 0.5) for lane in lanes]
    colours_c = [_STATUS_COLOURS.get(c.status, '#7f7f7f') for c in clouds]
    ax.add_collection(LineCollection([[(a, y), (b, y)] for (a, b), y in zip(spans, ys)],
                                     colors=colours_c, linewidths=1.5))
    if spans:
        ax.scatter([b for _, b in spans], ys, marker='|', c=colours_c, s=30)
    # Context updates: at arrival, labelled with the step whose slot they replaced; a faint
    # line (staggered like the requests) back to that step's stamp shows the replaced turn's age.
    updates = sorted((u for u in run.updates if u.step_id in ids), key=lambda u: u.received_ns)
    spans = [((stamp_of[u.step_id] - t0) / 1e9, (u.received_ns - t0) / 1e9) for u in updates]
    ys = [y_update - 0.2 - 0.08 * lane for lane in _lanes(spans, 4)]
    ax.add_collection(LineCollection([[(a, y), (b, y)] for (a, b), y in zip(spans, ys)],
                                     colors='#1f77b4', alpha=0.35, linewidths=1))
    if spans:
        ax.scatter([a for a, _ in spans], ys, marker='|', color='#1f77b4', alpha=0.5, s=12)
        ax.scatter([b for _, b in spans], [y_update] * len(spans), marker='v',
                   color='#1f77b4', s=20 if dense else 45, zorder=3)
    # Labels only where they do not pile up: at least 1/55 of the axis apart per height.
    min_gap = (max(end, *(b for _, b in spans)) - xs[0]) / 55 if spans else 0.0
    last = [-math.inf, -math.inf]
    for u, (_, x) in zip(updates, spans):
        level = 0 if x - last[0] >= min_gap else 1 if x - last[1] >= min_gap else None
        if level is None:
            continue
        last[level] = x
        ax.text(x, y_update + (0.15, 0.32)[level], f'{u.step_id}', ha='center', va='bottom',
                fontsize=6, color='#1f77b4')

    dropped = sum(c.step_id in ids and c.status == 'dropped' for c in run.clouds)
    ax.set_yticks([y_update, y_cloud, y_answer, y_truth])
    ax.set_yticklabels(['context update\n(replaced step id)', 'cloud request\n(stamp→arrival)',
                        'robot answer\nat deadline', 'ground truth'])
    ax.set_ylim(-0.6, 3.6)
    right = max([end] + [(c.received_ns - t0) / 1e9 for c in clouds]
                + [(u.received_ns - t0) / 1e9 for u in updates])
    ax.set_xlim(xs[0] - step_s, min(right, end + 10.0) + step_s)
    ax.set_xlabel(f'time from the start of episode {episode!r} (s)')
    ax.grid(True, axis='x', alpha=0.3)
    scored = [r for r in mine if r.correct is not None]
    acc = sum(bool(r.correct) for r in scored) / len(scored)
    part = f' (first {xs[-1] + step_s:.0f} of {episode_s:.0f} s)' if episode_s > end else ''
    ax.set_title(f'{run.strategy}, network {run.network_profile}: episode {episode!r}{part}, '
                 f'{len(mine)} steps, accuracy at deadline {fmt_pct(acc)}, '
                 f'{len(clouds)} cloud requests ({dropped} dropped), {len(updates)} updates',
                 fontsize=10)
    handles = [Line2D([], [], marker='o', color='#2ca02c', linestyle='none', label='right (edge)'),
               Line2D([], [], marker='s', color='#2ca02c', linestyle='none',
                      label='right (cloud)'),
               Line2D([], [], marker='o', color='#d62728', linestyle='none', label='wrong'),
               Line2D([], [], marker='x', color='#d62728', linestyle='none', label='no answer')]
    statuses = {c.status for c in clouds}
    handles += [Line2D([], [], color=c, label=f'cloud {s}') for s, c in _STATUS_COLOURS.items()
                if s in statuses]
    handles += [Patch(facecolor=colours[k], edgecolor='#555555', label=shown[k])
                for k in list(colours)[:12]]
    ax.legend(handles=handles, loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=7,
              frameon=False)
    fig.tight_layout()
    _save(fig, path)
    return episode


# --- Markdown ----------------------------------------------------------------------------------

def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1
           ) -> list[str]:
    """A Markdown table; the first text_columns are left-aligned, the numbers right."""
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' if i < text_columns else '---:' for i in range(len(header)))
             + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return lines


HEADLINE_COLUMNS = ('Strategy', 'Network', 'Acc@deadline', 'Answer acc', 'p50 ms', 'p95 ms',
                    'p99 ms', 'Deadline misses', 'Stale p50 ms', 'Stale p95 ms',
                    'Cloud req / ok', 'Bytes up / down', 'Steps (scored)')


def headline_row(label: str, s: RunScore) -> list[str]:
    """One row of the headline table, formatted as report.md shows it."""
    return [label, f'`{s.network_profile}`', fmt_pct(s.accuracy_at_deadline),
            fmt_pct(s.accuracy), fmt_ms(s.latency_p50_ms), fmt_ms(s.latency_p95_ms),
            fmt_ms(s.latency_p99_ms), f'{s.deadline_misses} ({fmt_pct(s.deadline_miss_rate)})',
            fmt_ms(s.staleness_p50_ms), fmt_ms(s.staleness_p95_ms),
            f'{s.cloud_requests} / {s.cloud_ok}',
            f'{fmt_bytes(s.cloud_bytes_up)} / {fmt_bytes(s.cloud_bytes_down)}',
            f'{s.steps} ({s.steps_scored})']


_HOW_TO_READ = """\
- **Acc@deadline** (the headline): for every step (camera frame with a ground truth), the answer
  the robot was showing at *stamp + deadline* (the newest answer published by then to the same
  question, whichever step it was for) judged against that step's truth; no answer yet, or an
  answer to another question, counts as wrong.
- **Answer acc**: every published answer judged against the truth at its own frame.
- Judging: text is normalised (case, punctuation, articles, number words zero..twenty); an open
  answer is right when it equals the truth or an accepted form, or starts with exactly its words
  ("Yes, the path is clear" for "yes"; "not sure" is not "no"). A multiple-choice answer is right
  when the one option it picks (a letter like "(b)" at the start, or one option's text) is the
  true one.
- **p50/p95/p99 ms**: answer latency, camera stamp to publish.
- **Deadline misses**: steps whose own answer was not published within the deadline (or never).
- **Stale ms**: age at publish of the frame the answer's content is about (the cloud step a
  cloud-sourced answer repeats, else its own frame).
- **Cloud req / ok**: cloud requests sent (not dropped by the strategy) / answered ok.
  **Bytes** are the cloud bridge's counters (request up, reply down).
- **Steps (scored)**: steps seen / steps with a ground truth at their stamp."""


def _facts(runs: Sequence[tuple[RunRecord, RunScore]], labels: Sequence[str],
           deadline_s: float) -> list[str]:
    lines = [f'- deadline: {deadline_s:g} s']
    metas = [run.meta for run, _ in runs]
    keys: list[str] = []
    for m in metas:
        keys += [k for k in m if k not in keys]
    common = [k for k in keys if all(k in m and m[k] == metas[0][k] for m in metas)]
    lines += [f'- {k}: {_fmt_fact(metas[0][k])}' for k in common if k != 'deadline_s']
    varying = [k for k in keys if k not in common and k != 'strategy']
    if varying and runs:
        lines += ['', 'Per run:', '']
        lines += _table(['Run', *varying],
                        [[label, *(_fmt_fact(m.get(k, '')) for k in varying)]
                         for label, m in zip(labels, metas)], text_columns=len(varying) + 1)
    return lines


def _sweep_tables(sweep: Sequence[SweepPoint]) -> list[str]:
    lines: list[str] = []
    for level in sorted({p.fluctuation for p in sweep}):
        points = [p for p in sweep if p.fluctuation == level]
        xs = sorted({p.cloud_latency_s for p in points})
        strategies = sorted({p.strategy for p in points}, key=_order_key)
        cell = {(p.strategy, p.cloud_latency_s): p.score for p in points}
        name = f'fluctuation {level:g}' if level else 'fixed latency'
        for metric, title, fmt in (
                ('accuracy_at_deadline', 'accuracy at deadline', fmt_pct),
                ('deadline_miss_rate', 'deadline miss rate', fmt_pct)):
            lines += ['', f'**{title.capitalize()}, {name}** (columns: cloud latency, s)', '']
            rows = [[s, *(fmt(getattr(cell[(s, x)], metric)) if (s, x) in cell else '–'
                          for x in xs)] for s in strategies]
            lines += _table(['Strategy', *(f'{x:g} s' for x in xs)], rows)
    return lines


def write_report(out_dir: Path, runs: list[tuple[RunRecord, RunScore]], *, title: str,
                 sweep: list[SweepPoint] | None = None, timeline_strategy: str = 'edgevlm',
                 deadline_s: float) -> Path:
    """
    Write report.md, scores.json and the plots into out_dir; return report.md's path.

    The headline table is the first table in report.md (tools read it from there). The
    timeline shows timeline_strategy's run (else the first run with context updates, else the
    first with scored steps).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = sorted(runs, key=lambda rs: _order_key(rs[0].strategy))
    labels = _labels(runs)

    plot_latency_cdf(out_dir / 'latency_cdf.png', runs, deadline_s)
    plot_accuracy_vs_latency(out_dir / 'accuracy_vs_latency.png', runs, deadline_s, sweep)
    # The asked strategy, else the first run whose cloud replies replaced context, else any.
    candidates = sorted(runs, key=lambda rs: (rs[0].strategy != timeline_strategy,
                                              not rs[0].updates))
    timeline_file = timeline_note = None
    for run, score in candidates:
        if score.steps_scored == 0:
            continue
        name = f'timeline_{re.sub(r"[^A-Za-z0-9_.-]", "_", run.strategy)}.png'
        episode = plot_timeline(out_dir / name, run, deadline_s)
        if episode is not None:
            timeline_file = name
            timeline_note = (f'{run.strategy} (network `{run.network_profile}`), episode '
                             f'`{episode}`')
            break

    scores = {'title': title, 'deadline_s': deadline_s,
              'runs': [dict(score.to_dict(), label=label)
                       for (_, score), label in zip(runs, labels)],
              'sweep': [p.to_dict() for p in sweep or []]}
    (out_dir / 'scores.json').write_text(json.dumps(scores, indent=2, allow_nan=False) + '\n')

    md = [f'# {title}', '']
    if runs:
        md += _table(HEADLINE_COLUMNS, [headline_row(label, score)
                                        for (_, score), label in zip(runs, labels)],
                     text_columns=2)
    else:
        md += ['No runs to report.']
    md += ['', f'Deadline {deadline_s:g} s. Strategies in the order of DESIGN.md §3.', '',
           '## How to read this', '', _HOW_TO_READ, '', '## Run facts', '',
           *_facts(runs, labels, deadline_s), '', '## Plots', '',
           '![answer latency CDF](latency_cdf.png)', '',
           '![accuracy at deadline vs cloud latency](accuracy_vs_latency.png)', '']
    if timeline_file:
        md += [f'Episode timeline: {timeline_note}. Top to bottom: the true answer over time; '
               "the answer the robot showed at each step's deadline (marker: green right, red "
               'wrong; circle edge, square cloud, x none); each cloud request from its frame to '
               'the arrival of its reply; each context update at its arrival, labelled with the '
               'step whose turn it replaced (the faint line reaches back to that step).', '',
               f'![episode timeline]({timeline_file})', '']
    if sweep:
        conditions = {(p.cloud_latency_s, p.fluctuation) for p in sweep}
        md += ['## Latency sweep', '',
               f'{len(sweep)} runs: {len({p.strategy for p in sweep})} strategies under '
               f'{len(conditions)} network conditions (nominal mean round trip; fluctuation = '
               'relative standard deviation).', *_sweep_tables(sweep), '']
    episodes = sorted({ep for _, s in runs for ep in s.per_episode})
    if len(episodes) > 1:
        md += ['## Accuracy at deadline per episode', '']
        shown = episodes[:MAX_EPISODE_ROWS]
        md += _table(['Episode', *labels],
                     [[f'`{ep}`', *(fmt_pct(s.per_episode.get(ep, math.nan)) for _, s in runs)]
                      for ep in shown])
        if len(episodes) > len(shown):
            md += ['', f'({len(episodes) - len(shown)} more episodes in scores.json)']
        md += ['']
    problems = [f'- {label}: {note}' for (_, s), label in zip(runs, labels) for note in s.notes]
    if problems:
        md += ['## Problems met while scoring', '', *problems, '']
    path = out_dir / 'report.md'
    path.write_text('\n'.join(md))
    return path
