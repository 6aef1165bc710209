# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Run a standard ROS 2 Python launch file where `launch`/`launch_ros` are not installed.

The launch files in this package are ordinary `generate_launch_description()` files for `ros2
launch`. On machines without the launch packages (ROS from PyPI wheels), this module stands in for
the small part of the launch API those files use, plans the processes they describe and starts
them. The stand-in is only installed when `import launch, launch_ros` fails, so a real ROS install
is never shadowed. Anything outside the subset raises NotImplementedError instead of being ignored.

Subset: launch.LaunchDescription; launch.actions.{DeclareLaunchArgument, SetEnvironmentVariable,
LogInfo, ExecuteProcess}; launch.substitutions.{LaunchConfiguration, TextSubstitution,
EnvironmentVariable, PathJoinSubstitution}; launch.conditions.{IfCondition, UnlessCondition};
launch_ros.actions.Node; launch_ros.substitutions.FindPackageShare.

usage: edgevlm_launch PACKAGE FILE.launch.py [name:=value ...] [--dry-run]
       edgevlm_launch path/to/FILE.launch.py [name:=value ...] [--dry-run]
"""

from dataclasses import dataclass, field
import importlib.util
import json
import os
from pathlib import Path
import shlex
import signal
import subprocess
import sys
import time
import types
from typing import Any


# ---------------------------------------------------------------- substitutions
class Substitution:
    def perform(self, ctx: '_Context') -> str:
        raise NotImplementedError


class TextSubstitution(Substitution):
    def __init__(self, *, text: str) -> None:
        self.text = text

    def perform(self, ctx: '_Context') -> str:
        return self.text


class LaunchConfiguration(Substitution):
    def __init__(self, variable_name: str, *, default: Any = None) -> None:
        self.name, self.default = variable_name, default

    def perform(self, ctx: '_Context') -> str:
        if self.name in ctx.args:
            return ctx.args[self.name]
        if self.default is not None:
            return resolve(self.default, ctx)
        raise KeyError(f'launch configuration {self.name!r} is not set')


class EnvironmentVariable(Substitution):
    def __init__(self, name: Any, *, default_value: Any = '') -> None:
        self.name, self.default = name, default_value

    def perform(self, ctx: '_Context') -> str:
        return ctx.env.get(resolve(self.name, ctx), resolve(self.default, ctx))


class PathJoinSubstitution(Substitution):
    def __init__(self, substitutions: list) -> None:
        self.parts = substitutions

    def perform(self, ctx: '_Context') -> str:
        return os.path.join(*[resolve(p, ctx) for p in self.parts])


class FindPackageShare(Substitution):
    def __init__(self, package: Any) -> None:
        self.package = package

    def perform(self, ctx: '_Context') -> str:
        from ament_index_python.packages import get_package_share_directory

        return get_package_share_directory(resolve(self.package, ctx))


def resolve(value: Any, ctx: '_Context') -> Any:
    """Substitutions become text; lists of them are concatenated, as in launch."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Substitution):
        return value.perform(ctx)
    if isinstance(value, (list, tuple)):
        return ''.join(str(resolve(v, ctx)) for v in value)
    raise TypeError(f'cannot resolve {value!r}')


def _has_substitution(value: Any) -> bool:
    return isinstance(value, Substitution) or (
        isinstance(value, (list, tuple)) and any(isinstance(v, Substitution) for v in value))


# ---------------------------------------------------------------- conditions and actions
class IfCondition:
    def __init__(self, predicate: Any) -> None:
        self.predicate = predicate

    def evaluate(self, ctx: '_Context') -> bool:
        text = str(resolve(self.predicate, ctx)).strip().lower()
        if text not in ('true', 'false', '1', '0'):
            raise ValueError(f'condition must be true or false, got {text!r}')
        return text in ('true', '1')


class UnlessCondition(IfCondition):
    def evaluate(self, ctx: '_Context') -> bool:
        return not super().evaluate(ctx)


class Action:
    def __init__(self, *, condition: IfCondition | None = None) -> None:
        self.condition = condition

    def enabled(self, ctx: '_Context') -> bool:
        return self.condition is None or self.condition.evaluate(ctx)


class LaunchDescription:
    def __init__(self, initial_entities: list | None = None) -> None:
        self.entities = list(initial_entities or [])

    def add_action(self, action: Action) -> None:
        self.entities.append(action)


class DeclareLaunchArgument(Action):
    def __init__(self, name: str, *, default_value: Any = None, description: str = '',
                 choices: list[str] | None = None, **kw) -> None:
        super().__init__(**kw)
        self.name, self.default_value = name, default_value
        self.description, self.choices = description, choices


class SetEnvironmentVariable(Action):
    def __init__(self, name: Any, value: Any, **kw) -> None:
        super().__init__(**kw)
        self.name, self.value = name, value


class LogInfo(Action):
    def __init__(self, *, msg: Any, **kw) -> None:
        super().__init__(**kw)
        self.msg = msg


class ExecuteProcess(Action):
    def __init__(self, *, cmd: list, name: str | None = None, output: str = 'log',
                 additional_env: dict | None = None, **kw) -> None:
        super().__init__(**kw)
        self.cmd, self.name, self.output = cmd, name, output
        self.additional_env = additional_env or {}


class Node(Action):
    def __init__(self, *, executable: Any, package: Any = None, name: Any = None,
                 namespace: Any = None, parameters: list | None = None,
                 remappings: list | None = None, arguments: list | None = None,
                 ros_arguments: list | None = None, output: str = 'log',
                 additional_env: dict | None = None, emulate_tty: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.package, self.executable, self.name = package, executable, name
        self.namespace, self.parameters = namespace, parameters or []
        self.remappings, self.arguments = remappings or [], arguments or []
        self.ros_arguments, self.output = ros_arguments or [], output
        self.additional_env = additional_env or {}


SHIM_MODULES = {
    'launch': {'LaunchDescription': LaunchDescription, 'Substitution': Substitution},
    'launch.actions': {'DeclareLaunchArgument': DeclareLaunchArgument, 'LogInfo': LogInfo,
                       'SetEnvironmentVariable': SetEnvironmentVariable,
                       'ExecuteProcess': ExecuteProcess},
    'launch.substitutions': {'LaunchConfiguration': LaunchConfiguration,
                             'TextSubstitution': TextSubstitution,
                             'EnvironmentVariable': EnvironmentVariable,
                             'PathJoinSubstitution': PathJoinSubstitution},
    'launch.conditions': {'IfCondition': IfCondition, 'UnlessCondition': UnlessCondition},
    'launch_ros': {},
    'launch_ros.actions': {'Node': Node},
    'launch_ros.substitutions': {'FindPackageShare': FindPackageShare},
}


def install_shim() -> bool:
    """Put the stand-in modules in sys.modules unless the real launch packages import."""
    if getattr(sys.modules.get('launch'), '__edgevlm_shim__', False):
        return True
    try:
        import launch  # noqa: F401
        import launch_ros  # noqa: F401
        return False
    except ImportError:
        pass
    for name, attrs in SHIM_MODULES.items():
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        mod.__edgevlm_shim__ = True
        sys.modules[name] = mod
        if '.' in name:
            parent, child = name.rsplit('.', 1)
            setattr(sys.modules[parent], child, mod)
    return True


def load(path: str | Path) -> LaunchDescription:
    """Import a launch file and return its LaunchDescription."""
    if not install_shim():
        raise RuntimeError('the real launch packages are installed: use `ros2 launch`')
    spec = importlib.util.spec_from_file_location(f'_launch_{Path(path).stem}', str(path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.generate_launch_description()


# ---------------------------------------------------------------- planning and running
@dataclass
class _Context:
    args: dict[str, str]
    env: dict[str, str]


@dataclass
class Process:
    """One process a launch description asks for."""

    name: str
    cmd: list[str]
    env: dict[str, str] = field(repr=False)
    output: str = 'log'


def _executable(package: str, executable: str) -> list[str]:
    """<prefix>/lib/<pkg>/<exe> (colcon/ament layout), else the pip console_scripts entry."""
    if package:
        try:
            from ament_index_python.packages import get_package_prefix

            candidate = os.path.join(get_package_prefix(package), 'lib', package, executable)
            if os.access(candidate, os.X_OK):
                return [candidate]
        except (KeyError, LookupError, ValueError, OSError):
            pass
    from importlib.metadata import entry_points

    eps = [e for e in entry_points(group='console_scripts') if e.name == executable]
    if not eps:
        raise FileNotFoundError(f'executable {executable!r} of package {package!r} not found')
    module, _, func = eps[0].value.partition(':')
    return [sys.executable, '-c',
            f'import sys; from {module} import {func} as f; sys.argv[0] = {executable!r}; '
            'sys.exit(f())']


def _node_command(node: Node, ctx: _Context) -> list[str]:
    cmd = _executable(resolve(node.package, ctx), resolve(node.executable, ctx))
    cmd += [str(resolve(a, ctx)) for a in node.arguments]
    ros = [str(resolve(a, ctx)) for a in node.ros_arguments]
    if node.name:
        ros += ['-r', f'__node:={resolve(node.name, ctx)}']
    namespace = resolve(node.namespace, ctx) if node.namespace else ''
    if namespace:
        ros += ['-r', f'__ns:={namespace if namespace.startswith("/") else "/" + namespace}']
    for p in node.parameters:
        if isinstance(p, dict):
            for k, v in p.items():
                # Substitution text is parsed as YAML by rcl, as launch_ros does; Python values
                # keep their type through JSON (a YAML subset).
                text = resolve(v, ctx) if _has_substitution(v) else json.dumps(v)
                ros += ['-p', f'{k}:={text}']
        else:
            ros += ['--params-file', str(resolve(p, ctx))]
    for src, dst in node.remappings:
        ros += ['-r', f'{resolve(src, ctx)}:={resolve(dst, ctx)}']
    return cmd + (['--ros-args', *ros] if ros else [])


def plan(description: LaunchDescription, launch_args: dict[str, str] | None = None,
         env: dict[str, str] | None = None) -> tuple[list[Process], list[str], dict[str, str]]:
    """Resolve a description into processes, LogInfo messages and the final launch arguments."""
    ctx = _Context(dict(launch_args or {}), dict(os.environ if env is None else env))
    declared = {a.name: a for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    unknown = set(ctx.args) - set(declared)
    if unknown:
        raise KeyError(f"unknown launch arguments: {', '.join(sorted(unknown))} "
                       f"(declared: {', '.join(sorted(declared))})")
    procs: list[Process] = []
    logs: list[str] = []
    for action in description.entities:
        if isinstance(action, DeclareLaunchArgument):
            if action.name not in ctx.args:
                if action.default_value is None:
                    raise KeyError(f'launch argument {action.name!r} is required')
                ctx.args[action.name] = str(resolve(action.default_value, ctx))
            if action.choices and ctx.args[action.name] not in action.choices:
                raise ValueError(f'launch argument {action.name}={ctx.args[action.name]!r} '
                                 f"is not one of {', '.join(action.choices)}")
            continue
        if not action.enabled(ctx):
            continue
        if isinstance(action, SetEnvironmentVariable):
            ctx.env[resolve(action.name, ctx)] = resolve(action.value, ctx)
        elif isinstance(action, LogInfo):
            logs.append(str(resolve(action.msg, ctx)))
        elif isinstance(action, (Node, ExecuteProcess)):
            penv = dict(ctx.env)
            penv.update({k: str(resolve(v, ctx)) for k, v in action.additional_env.items()})
            if isinstance(action, Node):
                cmd = _node_command(action, ctx)
                label = resolve(action.name, ctx) or resolve(action.executable, ctx)
            else:
                cmd = [str(resolve(c, ctx)) for c in action.cmd]
                label = action.name or os.path.basename(cmd[0])
            procs.append(Process(label, cmd, penv, action.output))
        else:
            raise NotImplementedError(
                f'launch_runner does not support {type(action).__name__}')
    return procs, logs, ctx.args


def start(procs: list[Process], log_dir: Path | None = None) -> list[subprocess.Popen]:
    """Start every process in its own session; with log_dir, each one's output goes to a file."""
    popens = []
    try:
        for p in procs:
            out = None
            if log_dir is not None:
                log_dir.mkdir(parents=True, exist_ok=True)
                out = open(log_dir / f'{p.name}.log', 'wb')  # noqa: SIM115 - the child's
            try:
                popens.append(subprocess.Popen(p.cmd, env=p.env, start_new_session=True,
                                               stdout=out,
                                               stderr=subprocess.STDOUT if out else None))
            finally:
                if out is not None:
                    out.close()
    except BaseException:
        # The ones already running are in their own sessions: nobody else would stop them.
        stop(popens)
        raise
    return popens


def stop(popens: list[subprocess.Popen], timeout_s: float = 10.0) -> list[int]:
    """SIGINT every child (as ros2 launch does), SIGTERM whoever is still alive after timeout_s."""
    for p in popens:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)
    end = time.monotonic() + timeout_s
    for p in popens:
        try:
            p.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(5.0)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return [p.returncode for p in popens]


def local_ros_environment() -> None:
    """Discovery and transport stay on loopback unless the caller configured otherwise."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    from ament_index_python.packages import get_package_share_directory

    os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', os.path.join(
        get_package_share_directory('edgevlm_ros'), 'config', 'fastdds_localhost.xml'))


def launch_file_path(package: str, file_name: str) -> Path:
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(package)) / 'launch' / file_name


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if '--ros-args' in argv:
        argv = argv[:argv.index('--ros-args')]
    dry = '--dry-run' in argv
    argv = [a for a in argv if a != '--dry-run']
    launch_args = dict(a.split(':=', 1) for a in argv if ':=' in a)
    positional = [a for a in argv if ':=' not in a]
    if len(positional) not in (1, 2):
        print(__doc__.split('usage:')[1].strip(), file=sys.stderr)
        return 2
    # Installed with pip into a venv (no sourced workspace): the venv is the ament prefix.
    if not os.environ.get('AMENT_PREFIX_PATH'):
        os.environ['AMENT_PREFIX_PATH'] = sys.prefix
    path = launch_file_path(*positional) if len(positional) == 2 else Path(positional[0])
    procs, logs, _ = plan(load(path), launch_args)
    for m in logs:
        print(f'[INFO] [launch.user]: {m}', flush=True)
    for p in procs:
        print(f'[launch] {p.name}: {shlex.join(p.cmd)}', flush=True)
    if dry:
        return 0
    popens = start(procs)
    try:
        while all(p.poll() is None for p in popens):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        codes = stop(popens)
    print('[launch] exit codes: ' + ', '.join(f'{p.name}={c}' for p, c in zip(procs, codes)))
    return 0 if all(c == 0 for c in codes) else 1
