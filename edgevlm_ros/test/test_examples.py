# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The README's runnable examples run as a user runs them, on the embedded default."""

import subprocess
import sys

from conftest import REPO
import pytest

pytestmark = pytest.mark.ros


def test_ask_stream_example_starts_the_graph_and_streams_both_answers(tmp_path, model_cache):
    done = subprocess.run([sys.executable, str(REPO / 'examples' / 'ask_stream.py'), '--launch',
                           '--target', 'both', 'What colour is the square on the left?'],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    assert 'asking the both: What colour is the square on the left?' in out
    streamed = [line for line in out.splitlines() if line.startswith('  ') and ' s  ' in line]
    assert any(' edge ' in line for line in streamed) and any(' cloud ' in line
                                                              for line in streamed)
    assert 'edge answer (done' in out and 'cloud answer (done' in out
