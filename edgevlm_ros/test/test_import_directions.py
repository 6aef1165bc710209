# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Dependencies point one way, read from the source (ast, nothing is imported).

Every import statement counts, wherever it is: at module level, inside a function (a lazy
import still makes the dependency) or under ``if TYPE_CHECKING``. The rules:

1. ``backends/base.py`` (the interface) imports no ``backends.*`` module, no ``doubles.*`` and
   no ``lvlm.*``: the runtimes, the doubles and the LVLMs import it, the model table
   (``backends/registry.py``) imports them.
2. ``core/*`` imports only ``core``, the standard library, numpy and OpenCV: no rclpy, no torch,
   no other part of the package (what core imports today; a new library is a decision to make
   here).
3. Nothing outside ``tooling/`` imports ``edgevlm_ros.tooling`` (it never runs on the robot),
   but for the imports listed in TOOLING_IMPORTS_TODAY, which are to go.
4. No import circle among the package's modules.

One test also imports every ``core`` module in a fresh interpreter: rule 2 must hold at run
time too (no library core uses pulls in rclpy or torch).
"""

import ast
from pathlib import Path
import subprocess
import sys

import pytest

SRC = Path(__file__).resolve().parents[1] / 'edgevlm_ros'
PKG = 'edgevlm_ros'
CORE_THIRD_PARTY = frozenset({'numpy', 'cv2'})


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob('*.py'))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == '__init__.py'


def _imported_names(module: str) -> list[tuple[str, int]]:
    """(absolute dotted name, line) of every import in ``module``, anywhere in the file."""
    return _imports_in(MODULES[module].read_text(encoding='utf-8'), module, _is_package(module))


def _imports_in(source: str, module: str, is_package: bool) -> list[tuple[str, int]]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = module if is_package else module.rpartition('.')[0]
                base = package.rsplit('.', node.level - 1)[0] if node.level > 1 else package
                base = f'{base}.{node.module}' if node.module else base
            else:
                base = node.module
            # 'from pkg import name': the submodule pkg.name if there is one, else pkg itself.
            for alias in node.names:
                full = f'{base}.{alias.name}'
                names.append((full if full in MODULES else base, node.lineno))
    return names


def _package_targets(name: str) -> list[str]:
    """The package's modules that importing ``name`` runs: it and its parent packages."""
    parts = name.split('.')
    prefixes = ('.'.join(parts[:i]) for i in range(1, len(parts) + 1))
    return [p for p in prefixes if p in MODULES]


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for name, _ in _imported_names(module):
            graph[module].update(t for t in _package_targets(name) if t != module)
    return graph


def _violations(modules, allowed) -> list[str]:
    return [f'{MODULES[m].relative_to(SRC.parent)}:{line} imports {name}'
            for m in modules for name, line in _imported_names(m) if not allowed(m, name)]


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + '.')


def test_the_source_tree_is_found() -> None:
    assert f'{PKG}.backends.base' in MODULES and f'{PKG}.core.regions' in MODULES


def test_the_backend_interface_imports_no_implementation_double_or_lvlm() -> None:
    forbidden = [f'{PKG}.backends.', f'{PKG}.doubles', f'{PKG}.lvlm']

    def allowed(module: str, name: str) -> bool:
        if name == f'{PKG}.backends.cpu':  # what the machine is: no backend, no runtime
            return True
        return not any(name.startswith(f) for f in forbidden) and name != f'{PKG}.backends'

    assert _violations([f'{PKG}.backends.base'], allowed) == []


def test_core_imports_only_core_the_standard_library_numpy_and_opencv() -> None:
    def allowed(module: str, name: str) -> bool:
        top = name.partition('.')[0]
        if top == PKG:
            return _under(name, f'{PKG}.core')
        return top in sys.stdlib_module_names or top in CORE_THIRD_PARTY

    core = [m for m in MODULES if _under(m, f'{PKG}.core')]
    assert len(core) > 5
    assert _violations(core, allowed) == []


def test_core_imports_neither_rclpy_nor_torch_at_run_time() -> None:
    code = (
        'import importlib, pkgutil, sys\n'
        'import edgevlm_ros.core as core\n'
        'names = [m.name for m in pkgutil.iter_modules(core.__path__)]\n'
        "assert len(names) >= 10, names\n"
        "for name in names: importlib.import_module('edgevlm_ros.core.' + name)\n"
        "assert 'rclpy' not in sys.modules, 'rclpy imported'\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, '-c', code], cwd=SRC.parent, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# Imports of tooling from outside it that exist today, each to be removed (not to be added to):
# the test fails on a new one and on one of these that is gone, so the list only shrinks.
TOOLING_IMPORTS_TODAY = frozenset({
    # The `edgevlm train-svlm` / `heldout` subcommands dispatch to the training code.
    (f'{PKG}.eval.cli', f'{PKG}.tooling.training.trainer'),
    (f'{PKG}.eval.cli', f'{PKG}.tooling.training.heldout'),
    # The graph replay starts the nodes with the launch stand-in.
    (f'{PKG}.eval.replay', f'{PKG}.tooling.launch_runner'),
})


def test_nothing_outside_tooling_imports_tooling_but_the_listed_ones() -> None:
    found = {(m, name) for m in MODULES if not _under(m, f'{PKG}.tooling')
             for name, _ in _imported_names(m) if _under(name, f'{PKG}.tooling')}
    assert found - TOOLING_IMPORTS_TODAY == set(), 'new imports of tooling'
    assert TOOLING_IMPORTS_TODAY - found == set(), 'gone: remove them from the list'


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle_among_the_package_modules() -> None:
    assert _cycles(_graph()) == []


@pytest.mark.parametrize('graph, circles', [
    ({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}, [['a', 'b', 'c']]),
    ({'a': {'b'}, 'b': set()}, []),
])
def test_the_circle_finder_finds_circles(graph, circles) -> None:
    assert _cycles(graph) == circles


def test_lazy_relative_and_type_checking_imports_count() -> None:
    source = (
        'from typing import TYPE_CHECKING\n'
        'if TYPE_CHECKING:\n'
        '    from edgevlm_ros.cloud.openai_client import CloudResult\n'
        'def load():\n'
        '    from edgevlm_ros.doubles.scripted import ScriptedSvlm\n'
        '    from ..lvlm import simulated\n'
        '    from . import registry\n')
    names = [name for name, _ in _imports_in(source, f'{PKG}.backends.base', False)]
    assert names == ['typing', f'{PKG}.cloud.openai_client', f'{PKG}.doubles.scripted',
                     f'{PKG}.lvlm.simulated', f'{PKG}.backends.registry']
