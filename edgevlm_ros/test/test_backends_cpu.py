# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""backends.cpu: which kind of CPU a benchmark ran on."""

from pathlib import Path

from edgevlm_ros.backends.cpu import read_cpu
import pytest

XEON_AMX = ('Intel(R) Xeon(R) Platinum 8488C', 'fpu avx2 avx512f avx512_vnni avx512_bf16 '
            'amx_bf16 amx_tile amx_int8')
EPYC = ('AMD EPYC 9R14 96-Core Processor', 'fpu avx2 avx512f avx512_vnni avx512_bf16')
OLD = ('Intel(R) Core(TM) i7-8700', 'fpu sse4_2 avx2')


def cpuinfo(tmp_path: Path, model: str, flags: str, n: int = 2) -> Path:
    block = f'processor\t: {{}}\nmodel name\t: {model}\nflags\t\t: {flags}\n\n'
    path = tmp_path / 'cpuinfo'
    path.write_text(''.join(block.format(i) for i in range(n)))
    return path


@pytest.mark.parametrize('cpu,kind', [(XEON_AMX, 'amx'), (EPYC, 'avx512_vnni'), (OLD, 'avx2')])
def test_the_kind_is_the_best_int8_path_the_cpu_has(tmp_path: Path, cpu, kind) -> None:
    info = read_cpu(cpuinfo(tmp_path, *cpu))
    assert (info.model, info.kind) == (cpu[0], kind)
    assert 'amx_tile' not in info.flags and 'fpu' not in info.flags  # only the flags that matter


def test_the_header_names_model_flags_kind_and_threads(tmp_path: Path) -> None:
    line = read_cpu(cpuinfo(tmp_path, *EPYC)).header(threads=2)
    assert line.startswith('CPU AMD EPYC 9R14')
    assert 'avx512_vnni, avx512_bf16' in line and 'no AMX' in line and 'kind avx512_vnni' in line
    assert line.endswith('2 threads used')
    assert 'no AMX' not in read_cpu(cpuinfo(tmp_path, *XEON_AMX)).header()


def test_no_cpuinfo_is_an_unknown_kind_not_an_error(tmp_path: Path) -> None:
    info = read_cpu(tmp_path / 'missing')
    assert info.kind == 'other' and info.model and 'none of' in info.header()
