# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Tables and the plot of a strategy sweep (`edgevlm strategy-sweep`), from its results.json.

* accuracy at the deadline with 95 % intervals, per strategy and cell;
* the goal check: per cell, the candidate (edgevlm_arbitrated) minus the best baseline, paired;
* accuracy per question kind;
* accuracy against cloud latency, a panel per fluctuation level.

eval.report writes the report of graph runs (`edgevlm eval` / `sweep`); this one the report of
the replayed sweep, whose cells hold scored steps rather than recorded runs.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
import os
from pathlib import Path

import numpy as np

from edgevlm_ros.core.stats import bootstrap_ci
from edgevlm_ros.eval.cells import (
    ARBITRATED,
    BASELINES,
    CellResult,
    cell_name,
    load,
    paired_diff_ci,
)
from edgevlm_ros.eval.replay_engine import STRATEGIES


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


def table(cells: dict[str, dict[str, CellResult]], strategies: Sequence[str],
          columns: Sequence[str]) -> str:
    """Markdown: accuracy at the deadline [95 % interval] per strategy (rows) and cell."""
    head = '| Strategy | ' + ' | '.join(columns) + ' |'
    lines = [head, '|---|' + '---:|' * len(columns)]
    for s in strategies:
        row = []
        for c in columns:
            r = cells[c].get(s)
            if r is None or not r.correct:
                row.append('-')
                continue
            lo, hi = bootstrap_ci(r.correct, r.blocks)
            row.append(f'{100 * r.accuracy:.1f} [{100 * lo:.0f}-{100 * hi:.0f}]')
        lines.append(f'| {s} | ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def goal_table(cells: dict[str, dict[str, CellResult]], columns: Sequence[str],
               candidate: str = ARBITRATED) -> str:
    """Per cell: the best baseline, the candidate minus it (paired 95 % interval), latency."""
    lines = ['| Cell | best baseline | ' + candidate + ' - best | vs edge_only | '
             'p95 ms (edge_only) | met |', '|---|---|---:|---:|---:|---|']
    for c in columns:
        cell = cells[c]
        if candidate not in cell:
            continue
        base = [b for b in BASELINES if b in cell]
        best = max(base, key=lambda b: cell[b].accuracy)
        d, lo, hi = paired_diff_ci(cell[candidate], cell[best])
        e, elo, ehi = paired_diff_ci(cell[candidate], cell['edge_only']) \
            if 'edge_only' in cell else (math.nan, math.nan, math.nan)
        p95 = percentile(cell[candidate].latencies_ms, 95)
        p95e = percentile(cell['edge_only'].latencies_ms, 95) if 'edge_only' in cell \
            else math.nan
        met = d >= -0.02 and p95 <= 1.1 * p95e
        lines.append(f'| {c} | {best} {100 * cell[best].accuracy:.1f} | '
                     f'{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] | '
                     f'{100 * e:+.1f} [{100 * elo:+.1f}, {100 * ehi:+.1f}] | '
                     f'{p95:.0f} ({p95e:.0f}) | {"yes" if met else "NO"} |')
    return '\n'.join(lines)


def kind_table(cells: dict[str, dict[str, CellResult]], columns: Sequence[str],
               strategies: Sequence[str] = ('edge_only', 'focus_only', 'edgevlm', ARBITRATED),
               kinds: Sequence[str] = ('attribute', 'where', 'count', 'exists')) -> str:
    """Markdown: accuracy at the deadline per question kind (steps in brackets), per cell."""
    lines = ['| Cell | Strategy | ' + ' | '.join(kinds) + ' |',
             '|---|---|' + '---:|' * len(kinds)]
    for c in columns:
        for s in strategies:
            r = cells.get(c, {}).get(s)
            if r is None or not r.correct:
                continue
            row = []
            for k in kinds:
                hits = [x for x, kk in zip(r.correct, r.kinds) if kk == k]
                row.append(f'{100 * np.mean(hits):.1f} ({len(hits)})' if hits else '-')
            lines.append(f'| {c} | {s} | ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def ci_series(points: Sequence[tuple[float, CellResult | None]], shift: float
              ) -> tuple[list[float], list[float], list[float], list[float]]:
    """X (times 1 + shift, so strategies do not overlap), accuracy %, and the 95 % CI's arms."""
    xs, ys, lo, hi = [], [], [], []
    for x, r in points:
        if r is None or not r.correct:
            continue
        a, b = bootstrap_ci(r.correct, r.blocks)
        xs.append(x * (1 + shift))
        ys.append(100 * r.accuracy)
        lo.append(100 * (r.accuracy - a))
        hi.append(100 * (b - r.accuracy))
    return xs, ys, lo, hi


def plot(cells: dict[str, dict[str, CellResult]], strategies: Sequence[str],
         latencies: Sequence[float], fluctuations: Sequence[float], error: float,
         path: str | os.PathLike) -> None:
    """Accuracy at the deadline against cloud latency with 95 % intervals, a panel per level."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(fluctuations), figsize=(6.5 * len(fluctuations), 4.8),
                             sharey=True, squeeze=False)
    for ax, f in zip(axes[0], fluctuations):
        for n, s in enumerate(strategies):
            xs, ys, lo, hi = ci_series(
                [(lat, cells.get(cell_name(lat, f, error), {}).get(s)) for lat in latencies],
                0.03 * (n - len(strategies) / 2))
            style = {'lw': 2.6} if s == ARBITRATED else {'lw': 1.2}
            ax.errorbar(xs, ys, yerr=[lo, hi], marker='o', ms=3.5, capsize=2, label=s, **style)
        ax.set_xscale('log')
        ax.set_xticks(list(latencies), [f'{x:g}' for x in latencies])
        ax.set_xlabel('cloud latency, s')
        ax.set_title(f'fluctuation {f:g} (simulated LVLM {100 * error:g} % wrong)')
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel('accuracy at deadline, % (95 % CI)')
    axes[0][-1].legend(fontsize=8, loc='lower left')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(out: Path, strategies: Sequence[str] | None = None,
           latencies: Sequence[float] = (0.2, 0.5, 1, 2, 4, 9),
           fluctuations: Sequence[float] = (0.0, 0.5), error: float = 0.1) -> str:
    cells, meta = load(out / 'results.json')
    if strategies is None:
        strategies = [s for s in STRATEGIES if any(s in c for c in cells.values())]
    text = [f'Worlds: {", ".join(meta["worlds"])}; {meta["steps"]} steps per cell.', '']
    for f in fluctuations:
        cols = [cell_name(lat, f, error) for lat in latencies if cell_name(lat, f, error)
                in cells]
        if cols:
            text += [f'Accuracy at the deadline, %, [95 % CI], fluctuation {f:g}:', '',
                     table(cells, strategies, cols), '']
    extra = [c for c in cells if '%' in c]
    if extra:
        text += ['Other cloud error rates:', '', table(cells, strategies, extra), '']
    text += ['Goal check (paired differences, 95 % CI):', '',
             goal_table(cells, list(cells)), '']
    focus_cols = [c for c in (cell_name(0.5, 0, error), cell_name(2, 0, error)) if c in cells]
    if focus_cols:
        text += ['Per question kind (accuracy at the deadline, %, steps):', '',
                 kind_table(cells, focus_cols), '']
    md = '\n'.join(text)
    (out / 'table.md').write_text(md)
    plot(cells, strategies, [x for x in latencies], [f for f in fluctuations if any(
        cell_name(lat, f, error) in cells for lat in latencies)], error,
        out / 'accuracy_vs_latency.png')
    print(md)
    return md
