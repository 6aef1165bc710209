# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Box tracking on the synthetic world: how near core.focus carries boxes, and whether quality tells.

For every step of each world (seeds 300-303, 40 s, pace 0.4 and 1.0, 2 steps/s, frames as
eval.replay_engine.world_steps makes them: JPEG 90, 512 px, kept at 160 px grey by a FrameRing),
the true boxes of the objects visible on that frame are taken as a cloud answer's boxes and
carried frame by frame with BoxPropagator.propagate, continuing the same track as
context_fusion and eval.replay_engine.focus_masks do, for up to --max-age seconds (never across
an episode switch). Each carried box is compared with its object's true box on the frame it
was carried to (SynthWorld state). Per age bin:

* visible: pairs whose object is visible there (>= half of it in view, not behind a pillar);
  kept: share of them whose box is still carried (not dropped, the track not ended);
* err med / p90: centre error of the carried box (px at 160 x 120), over kept boxes;
  still: the same for the box left where it was drawn (the do-nothing reference);
* third: share of kept boxes in the same third of the frame (left/centre/right by centre x) as
  the truth (what core.carry recomputes a "where" answer from);
* q>=.6: share of kept boxes with quality >= 0.6 (CarryParams.min_track_quality: the box still
  vouches for a carried answer); third|q: share of those whose third is right;
* hidden / out: pairs whose object is hidden (not visible, its centre in the frame: behind a
  pillar) or out of the frame; q>=.6: share of those still reported with quality >= 0.6 (a
  lost object vouched for; should be low).

Also the CPU kind and the time of one propagate call (one step of all boxes drawn on a frame).

usage: python bench/tracking_accuracy.py [--seeds 300 301 302 303] [--duration 40]
       [--paces 0.4 1.0] [--max-age 4] [--json out.json]
"""

import argparse
import json
import math
import time

from edgevlm_ros.backends.cpu import read_cpu
from edgevlm_ros.core.focus import BoxPropagator, FrameRing
from edgevlm_ros.core.regions import Box
from edgevlm_ros.eval.replay_engine import EPOCH_NS, world_steps
from edgevlm_ros.sim.synthworld import WorldSpec
import numpy as np

W, H = 160, 120
BINS = (0.5, 1.0, 2.0, 3.0, 4.0)   # upper edges (s); a bin is (previous edge, edge]
MIN_QUALITY = 0.6                  # core.carry.CarryParams.min_track_quality


def _centre(b: Box) -> np.ndarray:
    return np.array([(b.x_min + b.x_max) / 2 * W, (b.y_min + b.y_max) / 2 * H])


def _third(b: Box) -> int:
    return min(2, max(0, int((b.x_min + b.x_max) / 2 * 3)))


def _bin(age: float) -> float | None:
    for edge in BINS:
        if age <= edge + 1e-6:
            return edge
    return None


def measure(seed: int, pace: float, duration: float, max_age: float, rows: list[dict],
            timing: list[float]) -> None:
    """Append one row per (source step, object, target step) carried in this world."""
    spec = WorldSpec(seed=seed, duration=duration, pace=pace)
    steps = world_steps(spec, 2.0)
    world = spec.world()
    ring = FrameRing(len(steps) + 1, W)
    states, episodes = [], []
    for s in steps:
        ring.add(s.index, s.stamp_ns * 1e-9, s.rgb)
        t_s = (s.stamp_ns - EPOCH_NS) * 1e-9
        episode, state = spec.state_at(t_s, world)
        radii = [th.mask.shape[1] // 2 for th in episode.things]
        states.append((state, radii, episode.width))
        episodes.append(s.truth.episode)
    for k, src in enumerate(steps):
        state, _, _ = states[k]
        drawn = {f'#{j}': o.box for j, o in enumerate(state.objects)
                 if o.visible and o.box is not None}
        if not drawn:
            continue
        prop = BoxPropagator()
        boxes = [Box(b.x_min, b.y_min, b.x_max, b.y_max, label) for label, b in drawn.items()]
        alive = True
        for n in range(k + 1, len(steps)):
            age = (steps[n].stamp_ns - src.stamp_ns) * 1e-9
            if age > max_age + 1e-6 or episodes[n] != episodes[k]:
                break
            by_label: dict[str, tuple[Box, float]] = {}
            if alive:
                t0 = time.perf_counter()
                result = prop.propagate(boxes, ring.span(n - 1, n))
                timing.append(time.perf_counter() - t0)
                if result is None or not result.tracked:
                    alive = False
                else:
                    boxes = result.tracked
                    by_label = {b.label: (b, q) for b, q in zip(result.tracked,
                                                                 result.qualities)}
            truth, radii, width = states[n]
            for label, first in drawn.items():
                j = int(label[1:])
                view = truth.objects[j]
                carried = by_label.get(label)
                row = {'seed': seed, 'pace': pace, 'age': age, 'bin': _bin(age),
                       'visible': bool(view.visible and view.box is not None),
                       'kept': carried is not None,
                       'quality': carried[1] if carried else 0.0}
                if row['visible']:
                    row['still_err'] = float(np.linalg.norm(_centre(first) - _centre(view.box)))
                    if carried:
                        row['err'] = float(np.linalg.norm(_centre(carried[0])
                                                          - _centre(view.box)))
                        row['third_ok'] = _third(carried[0]) == _third(view.box)
                else:
                    cx = view.x + radii[j]
                    row['where'] = 'hidden' if 0 <= cx < width else 'out'
                rows.append(row)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def table(rows: list[dict]) -> list[dict]:
    out = []
    for edge in BINS:
        r = [x for x in rows if x['bin'] == edge]
        vis = [x for x in r if x['visible']]
        kept = [x for x in vis if x['kept']]
        good = [x for x in kept if x['quality'] >= MIN_QUALITY]
        hidden = [x for x in r if not x['visible'] and x['where'] == 'hidden']
        out_ = [x for x in r if not x['visible'] and x['where'] == 'out']
        errs = [x['err'] for x in kept]
        still = [x['still_err'] for x in vis]

        def share(part: list, whole: list) -> float:
            return len(part) / len(whole) if whole else math.nan

        out.append({
            'age_s': edge, 'visible': len(vis), 'kept': share(kept, vis),
            'err_med': _pct(errs, 50), 'err_p90': _pct(errs, 90),
            'still_med': _pct(still, 50), 'still_p90': _pct(still, 90),
            'third': share([x for x in kept if x['third_ok']], kept),
            'q06': share(good, kept),
            'third_given_q': share([x for x in good if x['third_ok']], good),
            'hidden': len(hidden),
            'hidden_q06': share([x for x in hidden if x['kept']
                                 and x['quality'] >= MIN_QUALITY], hidden),
            'out': len(out_),
            'out_q06': share([x for x in out_ if x['kept'] and x['quality'] >= MIN_QUALITY],
                             out_),
        })
    return out


def print_table(title: str, t: list[dict]) -> None:
    print(title)
    print(f'{"age<=s":>6} {"visible":>7} {"kept":>5} {"err med":>7} {"p90":>5} '
          f'{"still med":>9} {"p90":>5} {"third":>5} {"q>=.6":>5} {"third|q":>7} '
          f'{"hidden":>6} {"q>=.6":>5} {"out":>5} {"q>=.6":>5}')
    for r in t:
        print(f'{r["age_s"]:>6g} {r["visible"]:>7d} {r["kept"]:>5.2f} {r["err_med"]:>7.1f} '
              f'{r["err_p90"]:>5.1f} {r["still_med"]:>9.1f} {r["still_p90"]:>5.1f} '
              f'{r["third"]:>5.2f} {r["q06"]:>5.2f} {r["third_given_q"]:>7.2f} '
              f'{r["hidden"]:>6d} {r["hidden_q06"]:>5.2f} {r["out"]:>5d} {r["out_q06"]:>5.2f}')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[300, 301, 302, 303])
    ap.add_argument('--duration', type=float, default=40.0)
    ap.add_argument('--paces', type=float, nargs='+', default=[0.4, 1.0])
    ap.add_argument('--max-age', type=float, default=4.0)
    ap.add_argument('--json', help='write the tables here')
    args = ap.parse_args()
    cpu = read_cpu().header()
    print(cpu)
    report: dict[str, object] = {'cpu': cpu, 'seeds': args.seeds,
                                 'duration': args.duration}
    all_rows: list[dict] = []
    timing: list[float] = []
    for pace in args.paces:
        rows: list[dict] = []
        for seed in args.seeds:
            measure(seed, pace, args.duration, args.max_age, rows, timing)
        t = table(rows)
        report[f'pace={pace:g}'] = t
        print_table(f'\npace {pace:g}, seeds {" ".join(map(str, args.seeds))}, '
                    f'{args.duration:g} s, 2 steps/s (errors in px at {W}x{H})', t)
        all_rows += rows
    if len(args.paces) > 1:
        t = table(all_rows)
        report['all'] = t
        print_table('\nall paces', t)
    ms = 1e3 * np.array(timing)
    print(f'\npropagate (one step of all boxes of a frame): mean {ms.mean():.2f} ms, median '
          f'{np.median(ms):.2f} ms, p90 {np.percentile(ms, 90):.2f} ms over {len(ms)} calls')
    report['step_ms'] = {'mean': float(ms.mean()), 'median': float(np.median(ms)),
                         'p90': float(np.percentile(ms, 90)), 'calls': len(ms)}
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
