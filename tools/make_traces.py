# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Generate the shipped network round-trip traces (edgevlm_ros/config/traces/*.csv).

The traces are SYNTHETIC. Nothing here was recorded on a real network (this project is built on
a machine without internet access). Each trace comes from the stochastic model below, whose
parameters were chosen to fall inside the ranges that public measurement studies of commercial
cellular networks commonly report; they are not fitted to, or calibrated against, any particular
data set:

* LTE: median round trip to an Internet server of roughly 40-120 ms, a heavier tail under cell
  load, and application-level spikes of hundreds of ms up to a few seconds around handovers when
  moving; rare radio link failures that drop the link for seconds.
* 5G (non-standalone / standalone): median round trip of roughly 10-40 ms, fallbacks to slower
  service, and handover spikes that are rarer and shorter than LTE's.

The model, per step of ``step_s`` seconds (a regime-switching process on the log round trip):

1. a slow AR(1) component of the log round trip (load and radio conditions that drift over
   seconds): ``x <- phi * x + sqrt(1 - phi^2) * slow_sigma * N(0, 1)``, ``phi = exp(-step / tau)``;
2. fast i.i.d. log noise per sample (scheduling, HARQ retransmissions): ``fast_sigma * N(0, 1)``;
3. ``rtt = floor + (median - floor) * exp(x + noise)``, times ``congested_factor`` while in the
   congested regime (a two-state Markov chain: entered at ``congested_per_min``, left after an
   exponentially distributed time with mean ``congested_mean_s``);
4. rare single-sample outliers (a stalled scheduler or a retransmission timeout): with probability
   ``outlier_p`` the sample is multiplied by U(2, 5);
5. handovers arrive as a Poisson process at ``handover_per_min``; each lasts U(handover_s) seconds
   and lifts the round trip to a smooth bump ``peak * sin(pi * u)`` (``u`` from 0 to 1 over the
   handover), the peak lognormal with median ``handover_peak_ms`` and log std
   ``handover_peak_sigma``, capped at ``peak_cap_ms``;
6. radio link failures arrive at ``rlf_per_min``; for U(rlf_s) seconds the link is down (``loss``
   is 1: a request sent then never comes back), followed by a one-second re-establishment bump.

Columns: ``time_s`` (seconds from the start of the trace), ``rtt_ms`` (network round trip only, no
server time), ``loss`` (probability that a request sent at that time is lost; only 0 or 1 here).
Output is deterministic: each model has a fixed seed, Python's ``random`` (Mersenne Twister), and
values rounded to 0.1 ms.

Usage: ``python tools/make_traces.py`` rewrites the files and prints their statistics;
``--check`` only verifies that the shipped files are exactly what this script produces;
``--out DIR`` writes elsewhere.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
import math
from pathlib import Path
import random
import sys

from edgevlm_ros.core.stats import percentile

DEFAULT_OUT = Path(__file__).resolve().parents[1] / 'edgevlm_ros' / 'config' / 'traces'


@dataclass(frozen=True)
class Model:
    """Parameters of one synthetic trace (see the module docstring for their meaning)."""

    name: str
    seed: int
    description: str
    floor_ms: float
    median_ms: float
    slow_sigma: float
    slow_tau_s: float
    fast_sigma: float
    congested_per_min: float
    congested_mean_s: float
    congested_factor: float
    outlier_p: float
    handover_per_min: float
    handover_s: tuple[float, float]
    handover_peak_ms: float
    handover_peak_sigma: float
    peak_cap_ms: float
    rlf_per_min: float
    rlf_s: tuple[float, float]
    duration_s: float = 600.0
    step_s: float = 0.1


MODELS = (
    Model(name='lte', seed=4001,
          description='LTE-like: a moving user, handovers about every 40 s, rare link failures',
          floor_ms=25.0, median_ms=60.0, slow_sigma=0.25, slow_tau_s=8.0, fast_sigma=0.15,
          congested_per_min=1.0, congested_mean_s=20.0, congested_factor=1.9, outlier_p=0.01,
          handover_per_min=1.5, handover_s=(0.3, 2.5), handover_peak_ms=350.0,
          handover_peak_sigma=0.7, peak_cap_ms=3000.0, rlf_per_min=0.2, rlf_s=(1.5, 4.0)),
    Model(name='5g', seed=5001,
          description='5G-like (NSA/SA mix): fewer and shorter handover spikes than LTE',
          floor_ms=8.0, median_ms=24.0, slow_sigma=0.2, slow_tau_s=6.0, fast_sigma=0.15,
          congested_per_min=0.5, congested_mean_s=15.0, congested_factor=1.8, outlier_p=0.005,
          handover_per_min=0.5, handover_s=(0.2, 1.0), handover_peak_ms=120.0,
          handover_peak_sigma=0.6, peak_cap_ms=1500.0, rlf_per_min=0.05, rlf_s=(1.0, 2.5)),
)


def generate(model: Model) -> list[tuple[float, float, int]]:
    """Return the rows (time_s, rtt_ms, loss) of one trace; the same model gives the same rows."""
    rng = random.Random(model.seed)
    dt = model.step_s
    steps = round(model.duration_s / dt)
    phi = math.exp(-dt / model.slow_tau_s)
    slow = 0.0
    congested = False
    bump_left = bump_len = 0   # steps of the current handover bump
    bump_peak = 0.0
    rlf_left = 0               # steps of link failure left
    rows = []
    for i in range(steps):
        slow = phi * slow + math.sqrt(1.0 - phi * phi) * model.slow_sigma * rng.gauss(0.0, 1.0)
        noise = model.fast_sigma * rng.gauss(0.0, 1.0)
        if congested:
            congested = rng.random() >= dt / model.congested_mean_s
        else:
            congested = rng.random() < model.congested_per_min * dt / 60.0
        median = model.median_ms * (model.congested_factor if congested else 1.0)
        rtt = model.floor_ms + (median - model.floor_ms) * math.exp(slow + noise)
        if rng.random() < model.outlier_p:
            rtt *= rng.uniform(2.0, 5.0)
        # Draw every event's randomness each step so that one event does not shift the others.
        handover_starts = rng.random() < model.handover_per_min * dt / 60.0
        handover_len = rng.uniform(*model.handover_s)
        peak = min(model.peak_cap_ms,
                   model.handover_peak_ms * math.exp(model.handover_peak_sigma
                                                     * rng.gauss(0.0, 1.0)))
        rlf_starts = rng.random() < model.rlf_per_min * dt / 60.0
        rlf_len = rng.uniform(*model.rlf_s)
        if rlf_left == 0 and rlf_starts:
            rlf_left = max(1, round(rlf_len / dt))
            bump_left = bump_len = 0
        loss = 0
        if rlf_left > 0:
            rlf_left -= 1
            loss = 1
            rtt = max(rtt, peak)
            if rlf_left == 0:   # the link comes back through a re-establishment bump
                bump_left = bump_len = round(1.0 / dt)
                bump_peak = peak
        elif bump_left == 0 and handover_starts:
            bump_left = bump_len = max(1, round(handover_len / dt))
            bump_peak = peak
        if loss == 0 and bump_left > 0:
            u = (bump_len - bump_left + 0.5) / bump_len
            rtt = max(rtt, bump_peak * math.sin(math.pi * u))
            bump_left -= 1
        rows.append((round(i * dt, 1), round(rtt, 1), loss))
    return rows


def render(model: Model, rows: list[tuple[float, float, int]]) -> str:
    """Return the CSV text of a trace, with a comment header saying how it was made."""
    params = {k: v for k, v in asdict(model).items() if k not in ('name', 'description')}
    lines = [
        f"# edgevlm_ros network trace '{model.name}': SYNTHETIC, not recorded on a real network.",
        f'# {model.description}.',
        '# Made by tools/make_traces.py from a regime-switching model of the round trip whose',
        '# parameters lie in ranges public measurement studies commonly report (not fitted to any',
        '# data set); the script docstring describes the model. Parameters:',
        '# ' + ', '.join(f'{k}={v}' for k, v in params.items()),
        '# time_s: seconds from the trace start; rtt_ms: network round trip only (no server',
        '# time); loss: probability that a request sent then is lost (1 = link down).',
        'time_s,rtt_ms,loss',
    ]
    lines += [f'{t:.1f},{rtt:.1f},{loss}' for t, rtt, loss in rows]
    return '\n'.join(lines) + '\n'


def summary(model: Model, rows: list[tuple[float, float, int]]) -> str:
    """One line of statistics of a trace: percentiles over the rows where the link is up."""
    up = sorted(rtt for _, rtt, loss in rows if loss == 0)
    down_s = sum(loss for _, _, loss in rows) * model.step_s
    stats = ', '.join(f'p{p} {percentile(up, p):.1f}' for p in (50, 95, 99))
    return (f'{model.name}: {len(rows)} rows over {model.duration_s:g} s; rtt_ms {stats}, '
            f'max {up[-1]:.1f}, mean {sum(up) / len(up):.1f}; link down {down_s:.1f} s')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT, help='output directory')
    parser.add_argument('--check', action='store_true',
                        help='verify the files in --out instead of writing them')
    args = parser.parse_args(argv)
    status = 0
    for model in MODELS:
        rows = generate(model)
        text = render(model, rows)
        path = args.out / f'{model.name}.csv'
        if args.check:
            if not path.is_file() or path.read_text(encoding='utf-8') != text:
                print(f'{path} differs from what tools/make_traces.py generates', file=sys.stderr)
                status = 1
                continue
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding='utf-8')
        print(summary(model, rows))
    return status


if __name__ == '__main__':
    sys.exit(main())
