# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Emulated network between the edge and the cloud, for the live graph and for replays alike.

Why one module of 534 lines: it is one spec format and the profile it builds: the grammar (base,
bandwidth, outages, traces) and ``NetworkProfile``'s sampling read the same fields, so the
format and its meaning change together.

A profile is one spec string (a ROS parameter): a base delay model, then optional modifiers in any
order. Keywords and trace names are case-insensitive; trace paths are not.

Base (the network round trip of a request, not the server's time):

* ``none``                        no added delay;
* ``fixed:<ms>``                  a constant round trip;
* ``jitter:<mean_ms>,<std_ms>``   lognormal round trips with that mean and standard deviation
  (a heavy right tail, like real WAN round trips);
* ``trace:<name-or-path>``        round trips from a CSV trace (below). A name (letters, digits,
  ``_``, ``-``; e.g. ``lte``, ``5g``) means a trace shipped with the package; anything containing
  ``/`` or ending in ``.csv`` is a file path (relative paths are taken from the working directory,
  ``~`` is expanded; a path must not contain ``@`` or ``+``, which start modifiers).

Modifiers:

* ``@<up_mbit_s>`` or ``@<up_mbit_s>/<down_mbit_s>``  bandwidth caps: ``bytes * 8 / rate`` is added
  for the request upload (and the reply download, when a down rate is given); at most one;
* ``+outage:<start_s>-<end_s>[,<start_s>-<end_s>...]``  the link is down during these windows
  of elapsed time (start inclusive, end exclusive); may be repeated, at most MAX_OUTAGE_WINDOWS
  in all (overlapping windows are joined);
* ``+outage_every:<period_s>,<duration_s>``  the link is down for the last ``duration_s`` of every
  period (so a session starts with the link up); at most one.

Examples: ``fixed:80@20``, ``jitter:300,100@10/50``, ``trace:lte+outage:30-35``,
``trace:/data/drive.csv@5+outage_every:60,2``.

Time: ``sample`` and ``expected_s`` take the elapsed time in seconds since the session or replay
started, so a replay sees the same trace position and outages as the recording it replays.
A request is lost (``None``) when any outage window overlaps its round trip, i.e. the link is down
when it is sent or goes down before the reply is back, or when the trace's loss column says so.

Traces: CSV, UTF-8, at most MAX_TRACE_BYTES and MAX_TRACE_ROWS data rows (memory stays bounded);
lines starting with ``#`` are comments; the first other line is the header ``time_s,rtt_ms`` or
``time_s,rtt_ms,loss``. ``time_s`` starts at 0 and strictly increases; ``rtt_ms`` >= 0;
``loss`` (default 0) in [0, 1] is the probability that a request sent at that time is lost. The
round trip is interpolated linearly between rows; ``loss`` holds from its row to the next. After
the last row the trace loops: the last row lasts as long as the interval before it, interpolating
back to the first. Shipped traces are found, in order: next to this module in a source tree
(``<package root>/config/traces``, when ``<package root>/package.xml`` exists), then under
``share/edgevlm_ros/config/traces`` of every prefix in AMENT_PREFIX_PATH, then of ``sys.prefix``
(a plain pip install).

The shipped traces ``lte`` and ``5g`` are synthetic (tools/make_traces.py says how they were
made): 10 minutes at 100 ms, network round trip only; the cloud server's own time comes on top.

The older calls ``delay_s(payload_bytes)`` and ``mean_delay_s(payload_bytes)`` are ``sample`` and
``expected_s`` at ``elapsed_s()``, a monotonic clock started when the profile was made; a lost
request gives ``math.inf`` there.

Randomness (jitter, loss probabilities strictly between 0 and 1) comes from one RNG seeded by
``seed``: the same seed and the same sequence of calls give the same delays. A bad spec or trace
raises ValueError that names the bad part and what is accepted.
"""

from __future__ import annotations

from array import array
import bisect
from dataclasses import dataclass, field
import math
import os
from pathlib import Path
import random
import re
import sys
import threading
import time

_FORMATS = ("'none', 'fixed:<ms>', 'jitter:<mean_ms>,<std_ms>' or 'trace:<name-or-path>', "
            "then optionally '@<up_mbit_s>[/<down_mbit_s>]', '+outage:<start_s>-<end_s>[,...]', "
            "'+outage_every:<period_s>,<duration_s>'")
MAX_TRACE_ROWS = 200_000         # 5.5 hours at 100 ms; three float arrays of this length = 4.8 MB
MAX_TRACE_BYTES = 16 * 1024 * 1024
MAX_OUTAGE_WINDOWS = 1000
PACKAGE = 'edgevlm_ros'
TRACE_SUBDIR = Path('config') / 'traces'
_NAME = re.compile(r'[a-z0-9_-]+')
_HEADERS = (('time_s', 'rtt_ms'), ('time_s', 'rtt_ms', 'loss'))


@dataclass(eq=False)
class Trace:
    """A round-trip trace: rows of (time_s, rtt_ms, loss), played in a loop."""

    path: str
    times: array            # seconds from the trace start, strictly increasing, times[0] == 0
    rtts: array             # ms
    losses: array | None    # probability in [0, 1]; None when the file has no loss column
    period_s: float = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.times)
        # The last row lasts as long as the interval before it; a one-row trace is constant.
        self.period_s = self.times[-1] + (self.times[-1] - self.times[-2]) if n > 1 else 1.0

    def __len__(self) -> int:
        return len(self.times)

    def _position(self, elapsed_s: float) -> tuple[int, float]:
        """Index of the row at or before elapsed_s (looped) and the fraction towards the next."""
        t = elapsed_s % self.period_s
        i = bisect.bisect_right(self.times, t) - 1
        nxt = self.times[i + 1] if i + 1 < len(self.times) else self.period_s
        return i, (t - self.times[i]) / (nxt - self.times[i])

    def rtt_ms(self, elapsed_s: float) -> float:
        """Round trip at elapsed_s, linear between rows and from the last row back to the first."""
        i, frac = self._position(elapsed_s)
        nxt = self.rtts[i + 1] if i + 1 < len(self.rtts) else self.rtts[0]
        return self.rtts[i] + (nxt - self.rtts[i]) * frac

    def loss(self, elapsed_s: float) -> float:
        """Loss probability at elapsed_s (held from a row to the next)."""
        if self.losses is None:
            return 0.0
        return self.losses[self._position(elapsed_s)[0]]


def trace_dirs() -> list[Path]:
    """Directories searched for shipped traces, in order (see the module docstring)."""
    dirs = []
    root = Path(__file__).resolve().parents[2]
    if (root / 'package.xml').is_file():  # a source tree, not site-packages
        dirs.append(root / TRACE_SUBDIR)
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    for prefix in [*prefixes, sys.prefix]:
        d = Path(prefix) / 'share' / PACKAGE / TRACE_SUBDIR
        if d not in dirs:
            dirs.append(d)
    return dirs


def available_traces() -> list[str]:
    """Names of the traces found in trace_dirs()."""
    names = set()
    for d in trace_dirs():
        if d.is_dir():
            names.update(p.stem.lower() for p in d.glob('*.csv'))
    return sorted(names)


def find_trace(name_or_path: str) -> Path:
    """Resolve a trace name (e.g. 'lte') or a CSV path to an existing file."""
    text = name_or_path.strip()
    if not text:
        raise ValueError(f'trace needs a name ({_trace_names()}) or a CSV path')
    if '/' in text or os.sep in text or text.lower().endswith('.csv'):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError(f'trace file {str(path)!r} does not exist or is not a file')
        return path
    name = text.lower()
    if not _NAME.fullmatch(name):
        raise ValueError(f'trace name {text!r} may hold only letters, digits, _ and -; '
                         f'a path must contain / or end in .csv')
    for d in trace_dirs():
        path = d / f'{name}.csv'
        if path.is_file():
            return path
    searched = ', '.join(str(d) for d in trace_dirs())
    raise ValueError(f'no trace named {name!r} ({_trace_names()}); searched {searched}')


def _trace_names() -> str:
    names = available_traces()
    return 'shipped: ' + ', '.join(names) if names else 'no shipped traces found'


def load_trace(path: str | os.PathLike) -> Trace:
    """Read and validate a trace CSV; errors name the file and the line."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_TRACE_BYTES:
            raise ValueError(f'{path}: {size} bytes, more than the {MAX_TRACE_BYTES} allowed')
        text = path.read_text(encoding='utf-8')
    except OSError as e:
        raise ValueError(f'{path}: cannot read trace ({e.strerror or e})') from None
    except UnicodeDecodeError as e:
        raise ValueError(f'{path}: not UTF-8 text ({e.reason} at byte {e.start})') from None
    header = None
    times, rtts, losses = array('d'), array('d'), array('d')
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        cells = [c.strip() for c in line.split(',')]
        where = f'{path}:{line_no}'
        if header is None:
            header = tuple(c.lower() for c in cells)
            if header not in _HEADERS:
                raise ValueError(f"{where}: header must be 'time_s,rtt_ms' or "
                                 f"'time_s,rtt_ms,loss', got {line!r}")
            continue
        if len(cells) != len(header):
            raise ValueError(f'{where}: expected {len(header)} values ({",".join(header)}), '
                             f'got {len(cells)}: {line!r}')
        if len(times) >= MAX_TRACE_ROWS:
            raise ValueError(f'{where}: more than {MAX_TRACE_ROWS} rows (the cap on a trace)')
        values = []
        for name, cell in zip(header, cells):
            try:
                value = float(cell)
            except ValueError:
                raise ValueError(f'{where}: {name} must be a number, got {cell!r}') from None
            if not math.isfinite(value) or value < 0:
                raise ValueError(f'{where}: {name} must be a finite number >= 0, got {cell!r}')
            values.append(value)
        t = values[0]
        if not times and t != 0:
            raise ValueError(f'{where}: the first row must be at time_s 0 (times are relative '
                             f'to the trace start), got {_fmt(t)}')
        if times and t <= times[-1]:
            raise ValueError(f'{where}: time_s must increase, {_fmt(t)} follows '
                             f'{_fmt(times[-1])}')
        if len(values) == 3 and values[2] > 1:
            raise ValueError(f'{where}: loss is a probability in [0, 1], got {cells[2]!r}')
        times.append(t)
        rtts.append(values[1])
        if len(values) == 3:
            losses.append(values[2])
    if header is None or not times:
        raise ValueError(f"{path}: no data; expected a header 'time_s,rtt_ms[,loss]' and rows")
    return Trace(str(path), times, rtts, losses if header == _HEADERS[1] else None)


def _fmt(value: float) -> str:
    return f'{value:g}'


def _merge(windows) -> tuple[tuple[float, float], ...]:
    """Sort windows and join those that overlap or touch, so one bisect finds the right one."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


@dataclass(eq=False)
class NetworkProfile:
    """A network delay model; build it with NetworkProfile.parse."""

    kind: str = 'none'              # none | fixed | jitter | trace
    mean_ms: float = 0.0
    std_ms: float = 0.0
    bandwidth_mbit_s: float = 0.0   # upload cap; 0 = payload size does not matter
    seed: int = 0
    down_mbit_s: float = 0.0        # download cap; 0 = unlimited
    trace: Trace | None = None
    outages: tuple[tuple[float, float], ...] = ()
    outage_every: tuple[float, float] | None = None   # (period_s, duration_s)
    spec: str = ''

    def __post_init__(self) -> None:
        if self.kind not in ('none', 'fixed', 'jitter', 'trace'):
            raise ValueError(f'unknown network profile kind {self.kind!r}; use {_FORMATS}')
        for name in ('mean_ms', 'std_ms', 'bandwidth_mbit_s', 'down_mbit_s'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f'{name} must be a finite number >= 0, got {value}')
        if self.kind == 'jitter' and self.std_ms > 0 and self.mean_ms <= 0:
            raise ValueError('jitter needs mean_ms > 0 when std_ms > 0')
        if (self.kind == 'trace') != (self.trace is not None):
            raise ValueError("a trace is needed exactly when kind is 'trace'")
        if len(self.outages) > MAX_OUTAGE_WINDOWS:
            raise ValueError(f'at most {MAX_OUTAGE_WINDOWS} outage windows, '
                             f'got {len(self.outages)}')
        for start, end in self.outages:
            if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
                raise ValueError(f'outage window {start:g}-{end:g} needs 0 <= start < end')
        self.outages = _merge(self.outages)
        if self.outage_every is not None:
            period, duration = self.outage_every
            if not (math.isfinite(period) and 0 < duration < period):
                raise ValueError(f'outage_every {period:g},{duration:g} needs '
                                 f'0 < duration < period')
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        # Lognormal parameters that give the requested mean and standard deviation.
        if self.kind == 'jitter' and self.std_ms > 0:
            self._sigma = math.sqrt(math.log1p((self.std_ms / self.mean_ms) ** 2))
            self._mu = math.log(self.mean_ms) - 0.5 * self._sigma ** 2
        else:
            self._sigma = 0.0
            self._mu = 0.0

    @classmethod
    def parse(cls, spec: str, seed: int = 0) -> NetworkProfile:
        """Build a profile from a spec string (see the module docstring)."""
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f'empty network profile; use {_FORMATS}')
        # Split into the base and '@...' / '+...' modifiers, keeping each modifier's mark.
        parts = re.split(r'(?=[@+])', spec.strip())
        base, modifiers = parts[0].strip(), [p.strip() for p in parts[1:]]
        if not base:
            raise ValueError(f'network profile {spec!r} has no base; use {_FORMATS}')
        kw: dict = {'seed': seed, 'spec': spec.strip()}
        kw.update(_parse_base(base, spec))
        outages: list[tuple[float, float]] = []
        for mod in modifiers:
            if mod.startswith('@'):
                if 'bandwidth_mbit_s' in kw:
                    raise ValueError(f"only one '@' bandwidth cap allowed in {spec!r}")
                kw['bandwidth_mbit_s'], kw['down_mbit_s'] = _parse_bandwidth(mod[1:], spec)
                continue
            name, _, args = mod[1:].partition(':')
            name = name.strip().lower()
            if name == 'outage':
                outages += _parse_windows(args, spec)
            elif name == 'outage_every':
                if 'outage_every' in kw:
                    raise ValueError(f"only one '+outage_every' allowed in {spec!r}")
                period, duration = _numbers(args, 2, 'outage_every <period_s>,<duration_s>', spec)
                if not (period > 0 and 0 < duration < period):
                    raise ValueError(f'outage_every needs 0 < duration_s < period_s in {spec!r}')
                kw['outage_every'] = (period, duration)
            else:
                raise ValueError(f"unknown modifier {mod!r} in {spec!r}; accepted: "
                                 f"'@<up_mbit_s>[/<down_mbit_s>]', '+outage:<start_s>-<end_s>"
                                 f"[,...]', '+outage_every:<period_s>,<duration_s>'")
        if len(outages) > MAX_OUTAGE_WINDOWS:
            raise ValueError(f'at most {MAX_OUTAGE_WINDOWS} outage windows, got {len(outages)} '
                             f'in {spec[:80]!r}...')
        kw['outages'] = tuple(outages)
        return cls(**kw)

    # --- the API used by the bridge and the replay -------------------------------------------

    def sample(self, elapsed_s: float, up_bytes: int = 0, down_bytes: int = 0) -> float | None:
        """
        Draw one round-trip delay in seconds for a request sent at elapsed_s.

        None means the request is lost (an outage overlaps its round trip, or the trace's loss
        column says so): the caller treats it as a timeout.
        """
        _check_elapsed(elapsed_s)
        _check_bytes(up_bytes, 'up_bytes')
        _check_bytes(down_bytes, 'down_bytes')
        if self.in_outage(elapsed_s):
            return None
        loss = self.trace.loss(elapsed_s) if self.trace is not None else 0.0
        with self._lock:
            if loss >= 1 or (loss > 0 and self._rng.random() < loss):
                return None
            if self.kind == 'jitter' and self._sigma > 0:
                ms = self._rng.lognormvariate(self._mu, self._sigma)
            else:
                ms = self._base_ms(elapsed_s)
        delay = ms / 1000.0 + self.transfer_s(up_bytes, down_bytes)
        return None if self._outage_within(elapsed_s, delay) else delay

    def expected_s(self, elapsed_s: float, up_bytes: int = 0) -> float | None:
        """Predicted round trip for a request sent at elapsed_s (for offload deadlines).

        The mean for jitter, the trace value at that time; None when the request would be lost
        for certain (outage, or trace loss 1). The reply size is unknown beforehand: not counted.
        """
        _check_elapsed(elapsed_s)
        _check_bytes(up_bytes, 'up_bytes')
        if self.in_outage(elapsed_s):
            return None
        if self.trace is not None and self.trace.loss(elapsed_s) >= 1:
            return None
        delay = self._base_ms(elapsed_s) / 1000.0 + self.transfer_s(up_bytes)
        return None if self._outage_within(elapsed_s, delay) else delay

    def in_outage(self, elapsed_s: float) -> bool:
        """Whether the link is down at elapsed_s (outage windows only, not trace loss)."""
        i = bisect.bisect_right(self.outages, (elapsed_s, math.inf)) - 1
        if i >= 0 and self.outages[i][0] <= elapsed_s < self.outages[i][1]:
            return True
        if self.outage_every is not None:
            period, duration = self.outage_every
            return elapsed_s % period >= period - duration
        return False

    def transfer_s(self, up_bytes: int = 0, down_bytes: int = 0) -> float:
        """Time to move the bytes through the bandwidth caps (0 for an uncapped direction)."""
        up = up_bytes * 8.0 / (self.bandwidth_mbit_s * 1e6) if self.bandwidth_mbit_s > 0 else 0.0
        down = down_bytes * 8.0 / (self.down_mbit_s * 1e6) if self.down_mbit_s > 0 else 0.0
        return up + down

    def elapsed_s(self) -> float:
        """Seconds since this profile was created (the clock of delay_s and mean_delay_s)."""
        return time.monotonic() - self._t0

    # --- the older API, kept for existing callers --------------------------------------------

    def delay_s(self, payload_bytes: int = 0) -> float:
        """Draw one delay for an upload of payload_bytes, sent now (elapsed_s()).

        A lost request gives math.inf (it never arrives); use sample() to tell loss apart.
        """
        _check_bytes(payload_bytes, 'payload_bytes')
        delay = self.sample(self.elapsed_s(), payload_bytes)
        return math.inf if delay is None else delay

    def mean_delay_s(self, payload_bytes: int = 0) -> float:
        """Expected delay for a request sent now (elapsed_s()); math.inf when it would be lost."""
        _check_bytes(payload_bytes, 'payload_bytes')
        delay = self.expected_s(self.elapsed_s(), payload_bytes)
        return math.inf if delay is None else delay

    def describe(self) -> str:
        """One line for logs."""
        if self.kind == 'none':
            text = 'no added delay'
        elif self.kind == 'fixed':
            text = f'fixed {self.mean_ms:g} ms'
        elif self.kind == 'jitter':
            text = f'lognormal jitter, mean {self.mean_ms:g} ms, std {self.std_ms:g} ms'
        else:
            tr = self.trace
            text = (f'trace {tr.path} ({len(tr)} rows, loops every {tr.period_s:g} s, '
                    f'{"with" if tr.losses is not None else "no"} loss column)')
        if self.bandwidth_mbit_s > 0:
            text += f', {self.bandwidth_mbit_s:g} Mbit/s'
            if self.down_mbit_s > 0:
                text += f' up / {self.down_mbit_s:g} Mbit/s down'
        if self.outages:
            shown = ', '.join(f'{s:g}-{e:g} s' for s, e in self.outages[:3])
            more = f' (+{len(self.outages) - 3} more)' if len(self.outages) > 3 else ''
            text += f', outages {shown}{more}'
        if self.outage_every is not None:
            text += (f', outage of {self.outage_every[1]:g} s at the end of every '
                     f'{self.outage_every[0]:g} s')
        return text

    def _base_ms(self, elapsed_s: float) -> float:
        """The round trip without randomness: constant, the jitter mean, or the trace value."""
        if self.trace is not None:
            return self.trace.rtt_ms(elapsed_s)
        return self.mean_ms

    def _outage_within(self, elapsed_s: float, delay_s: float) -> bool:
        """Whether an outage starts after elapsed_s but before the reply is back."""
        end = elapsed_s + delay_s
        i = bisect.bisect_right(self.outages, (elapsed_s, math.inf))
        if i < len(self.outages) and self.outages[i][0] < end:
            return True
        if self.outage_every is not None:
            period, duration = self.outage_every
            next_start = math.floor(elapsed_s / period) * period + period - duration
            if next_start <= elapsed_s:
                next_start += period
            return next_start < end
        return False


def _parse_base(base: str, spec: str) -> dict:
    kind, _, args = base.partition(':')
    kind = kind.strip().lower()
    if kind == 'none':
        if args.strip():
            raise ValueError(f"'none' takes no arguments, got {spec!r}")
        return {'kind': 'none'}
    if kind == 'fixed':
        return {'kind': 'fixed', 'mean_ms': _number(args, 'fixed delay (ms)', spec)}
    if kind == 'jitter':
        mean, std = _numbers(args, 2, 'jitter <mean_ms>,<std_ms>', spec)
        if std > 0 and mean <= 0:
            raise ValueError(f'jitter needs mean_ms > 0 when std_ms > 0 in {spec!r}')
        return {'kind': 'jitter', 'mean_ms': mean, 'std_ms': std}
    if kind == 'trace':
        trace = load_trace(find_trace(args))
        return {'kind': 'trace', 'trace': trace}
    raise ValueError(f'unknown network profile {spec!r}; use {_FORMATS}')


def _parse_bandwidth(text: str, spec: str) -> tuple[float, float]:
    up_text, slash, down_text = text.partition('/')
    up = _number(up_text, 'upload bandwidth (Mbit/s)', spec)
    down = _number(down_text, 'download bandwidth (Mbit/s)', spec) if slash else 0.0
    if up <= 0 or (slash and down <= 0):
        raise ValueError(f'bandwidth must be > 0 Mbit/s in {spec!r}; use '
                         f"'@<up_mbit_s>' or '@<up_mbit_s>/<down_mbit_s>'")
    return up, down


def _parse_windows(text: str, spec: str) -> list[tuple[float, float]]:
    windows = []
    for item in text.split(','):
        start_text, dash, end_text = item.partition('-')
        if not dash:
            raise ValueError(f'outage window {item.strip()!r} must be <start_s>-<end_s> '
                             f'in {spec!r}')
        start = _number(start_text, 'outage start (s)', spec)
        end = _number(end_text, 'outage end (s)', spec)
        if end <= start:
            raise ValueError(f'outage window {item.strip()!r} must end after it starts '
                             f'in {spec!r}')
        windows.append((start, end))
    return windows


def _numbers(text: str, count: int, what: str, spec: str) -> list[float]:
    parts = text.split(',')
    if len(parts) != count:
        raise ValueError(f'{what} needs {count} comma-separated numbers, got {spec!r}')
    return [_number(p, what, spec) for p in parts]


def _number(text: str, what: str, spec: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f'{what} must be a number in {spec!r}; use {_FORMATS}') from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f'{what} must be a finite number >= 0 in {spec!r}')
    return value


def _check_elapsed(elapsed_s: float) -> None:
    if not (math.isfinite(elapsed_s) and elapsed_s >= 0):
        raise ValueError(f'elapsed_s must be a finite number >= 0, got {elapsed_s}')


def _check_bytes(value: int, name: str) -> None:
    if value < 0:
        raise ValueError(f'{name} must be >= 0, got {value}')
