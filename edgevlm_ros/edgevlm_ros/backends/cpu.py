# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Which kind of CPU this is, as far as the edge step's speed goes.

The same edge step takes 0.50 s on a Xeon with AMX and 1.1 s on one with AVX-512 VNNI only
(docs/edge-backends.md), so every benchmark says which kind it ran on (`CpuInfo.header`), and
`backend: auto` can choose per kind. Read from /proc/cpuinfo (Linux); elsewhere the model is
`platform.processor()` and no flag is known. No torch, no ROS.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
import platform

# The flags that decide the int8 / bf16 paths, fastest first.
FLAGS = ('amx_int8', 'amx_bf16', 'avx512_vnni', 'avx512_bf16', 'avx512f', 'avx2')


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name, its logical CPUs and which of `FLAGS` it has."""

    model: str
    cpus: int
    flags: frozenset[str]

    @property
    def kind(self) -> str:
        """'amx', 'avx512_vnni', 'avx512', 'avx2' or 'other' (the best int8 path it has)."""
        if 'amx_int8' in self.flags:
            return 'amx'
        for flag, kind in (('avx512_vnni', 'avx512_vnni'), ('avx512f', 'avx512'),
                           ('avx2', 'avx2')):
            if flag in self.flags:
                return kind
        return 'other'

    def header(self, threads: int | None = None) -> str:
        """One line for a benchmark's header: model, flags, kind, CPUs (and threads used)."""
        have = ', '.join(f for f in FLAGS if f in self.flags) or 'none of ' + ', '.join(FLAGS)
        amx = '' if 'amx_int8' in self.flags else '; no AMX'
        used = '' if threads is None else f', {threads} threads used'
        return (f'CPU {self.model} ({have}{amx}; kind {self.kind}), {self.cpus} logical CPUs'
                f'{used}')


def read_cpu(path: str | Path = '/proc/cpuinfo') -> CpuInfo:
    """This machine's CpuInfo (the first processor's model and flags)."""
    model, flags = '', set()
    try:
        text = Path(path).read_text()
    except OSError:
        text = ''
    for line in text.splitlines():
        key, _, value = line.partition(':')
        key = key.strip()
        if key == 'model name' and not model:
            model = value.strip()
        elif key == 'flags' and not flags:
            flags = set(value.split())
    return CpuInfo(model or platform.processor() or 'unknown CPU', os.cpu_count() or 1,
                   frozenset(f for f in FLAGS if f in flags))
