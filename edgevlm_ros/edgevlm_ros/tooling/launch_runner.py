# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Run a standard ROS 2 Python launch file where `launch`/`launch_ros` are not installed.

The launch files in this package are ordinary `generate_launch_description()` files for `ros2
launch`. On machines without the launch packages (ROS from PyPI wheels), this module stands in for
the small part of the launch API those files use, plans the processes they describe and runs them.
The stand-in is private to the launch files this module loads: their `import launch...` statements
are answered with the stand-in's modules, and nothing is put into sys.modules, so on a machine with
a sourced ROS install the real packages stay untouched and `make demo`, `edgevlm eval` and the
benches still run. Anything outside the subset raises NotImplementedError instead of being ignored.

Subset: launch.LaunchDescription; launch.actions.{DeclareLaunchArgument, SetEnvironmentVariable,
LogInfo, ExecuteProcess, OpaqueFunction}; launch.substitutions.{LaunchConfiguration,
TextSubstitution, EnvironmentVariable, PathJoinSubstitution}; launch.conditions.{IfCondition,
UnlessCondition}; launch_ros.actions.Node; launch_ros.substitutions.FindPackageShare.

Processes run under `Supervisor`, which keeps launch's respawn rules (its docstring numbers them).

usage: edgevlm_launch PACKAGE FILE.launch.py [name:=value ...] [--dry-run] [--debug]
                      [--watchdog=SECONDS]
       edgevlm_launch path/to/FILE.launch.py [name:=value ...] [--dry-run] [--debug]
                      [--watchdog=SECONDS]
--watchdog=SECONDS: a node without a heartbeat on /diagnostics for that long is killed (and
respawned); 0 turns the watchdog off (default 5).
"""

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
import importlib.util
import json
import os
from pathlib import Path
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
import types
from typing import Any

# A node without a heartbeat for this long is killed and respawned: five missed beats of the
# 1 s diagnostics period, so a loaded machine's late beat is not a stall.
WATCHDOG_S = 5.0


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


class _Respawnable(Action):
    """
    launch's ExecuteLocal respawn knobs, with its types.

    `respawn` a bool or substitutions, `respawn_delay` a float or None, `respawn_max_retries` an
    int (negative: no limit).
    """

    def __init__(self, *, respawn: Any = False, respawn_delay: float | None = None,
                 respawn_max_retries: int = -1, **kw) -> None:
        super().__init__(**kw)
        # launch compares these with numbers when a process exits; a substitution there would
        # only fail at the first death under `ros2 launch`. Read launch arguments into numbers
        # in an OpaqueFunction instead.
        if respawn_delay is not None and not isinstance(respawn_delay, (int, float)):
            raise TypeError(f'respawn_delay must be a number of seconds (launch takes no '
                            f'substitution there), got {respawn_delay!r}')
        if isinstance(respawn_max_retries, bool) or not isinstance(respawn_max_retries, int):
            raise TypeError(f'respawn_max_retries must be an int (launch takes no substitution '
                            f'there), got {respawn_max_retries!r}')
        self.respawn, self.respawn_delay = respawn, respawn_delay
        self.respawn_max_retries = respawn_max_retries


class ExecuteProcess(_Respawnable):
    def __init__(self, *, cmd: list, name: str | None = None, output: str = 'log',
                 additional_env: dict | None = None, **kw) -> None:
        super().__init__(**kw)
        self.cmd, self.name, self.output = cmd, name, output
        self.additional_env = additional_env or {}


class Node(_Respawnable):
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


class OpaqueFunction(Action):
    """function(context, *args, **kwargs) returns more actions, as in launch."""

    def __init__(self, *, function: Callable, args: list | None = None,
                 kwargs: dict | None = None, **kw) -> None:
        super().__init__(**kw)
        self.function, self.args, self.kwargs = function, list(args or []), dict(kwargs or {})


SHIM_MODULES = {
    'launch': {'LaunchDescription': LaunchDescription, 'Substitution': Substitution},
    'launch.actions': {'DeclareLaunchArgument': DeclareLaunchArgument, 'LogInfo': LogInfo,
                       'SetEnvironmentVariable': SetEnvironmentVariable,
                       'ExecuteProcess': ExecuteProcess, 'OpaqueFunction': OpaqueFunction},
    'launch.substitutions': {'LaunchConfiguration': LaunchConfiguration,
                             'TextSubstitution': TextSubstitution,
                             'EnvironmentVariable': EnvironmentVariable,
                             'PathJoinSubstitution': PathJoinSubstitution},
    'launch.conditions': {'IfCondition': IfCondition, 'UnlessCondition': UnlessCondition},
    'launch_ros': {},
    'launch_ros.actions': {'Node': Node},
    'launch_ros.substitutions': {'FindPackageShare': FindPackageShare},
}
_SHIM_ROOTS = ('launch', 'launch_ros')
_shim: dict[str, types.ModuleType] = {}


def shim_modules() -> dict[str, types.ModuleType]:
    """The stand-in modules by name (made once; never put into sys.modules)."""
    if not _shim:
        for name, attrs in SHIM_MODULES.items():
            mod = types.ModuleType(name)
            mod.__dict__.update(attrs)
            mod.__edgevlm_shim__ = True
            _shim[name] = mod
            if '.' in name:
                parent, child = name.rsplit('.', 1)
                setattr(_shim[parent], child, mod)
    return _shim


def _launch_file_import(name: str, globals=None, locals=None, fromlist=(), level: int = 0):
    """`import` inside a launch file: launch and launch_ros are the stand-in, the rest is not."""
    root = name.partition('.')[0]
    if level == 0 and root in _SHIM_ROOTS:
        mods = shim_modules()
        if name not in mods:
            raise ModuleNotFoundError(f'launch_runner does not stand in for {name} (it has '
                                      f"{', '.join(mods)})", name=name)
        return mods[name] if fromlist else mods[root]
    return builtins.__import__(name, globals, locals, fromlist, level)


def load(path: str | Path) -> LaunchDescription:
    """
    Import a launch file against the stand-in and return its LaunchDescription.

    Only this file's imports see the stand-in (its module gets its own `__import__`), so the real
    launch packages, when a ROS install provides them, are neither shadowed nor needed.
    """
    spec = importlib.util.spec_from_file_location(f'_launch_{Path(path).stem}', str(path))
    mod = importlib.util.module_from_spec(spec)
    mod.__builtins__ = {**builtins.__dict__, '__import__': _launch_file_import}
    spec.loader.exec_module(mod)
    return mod.generate_launch_description()


# ---------------------------------------------------------------- planning and running
@dataclass
class _Context:
    args: dict[str, str]
    env: dict[str, str]


class LaunchArgumentError(ValueError):
    """A launch argument that is unknown, missing or not one of its choices (one line)."""


@dataclass
class Process:
    """One process a launch description asks for, with launch's respawn knobs."""

    name: str
    cmd: list[str]
    env: dict[str, str] = field(repr=False)
    output: str = 'log'
    respawn: bool = False
    respawn_delay: float | None = None
    respawn_max_retries: int = -1
    node: str = ''  # fully qualified node name ('/ns/name'), for the heartbeat watchdog


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


def _bool(value: Any, what: str, ctx: _Context) -> bool:
    """A bool or substitutions that resolve to true/false (or 1/0), as launch coerces them."""
    if isinstance(value, bool):
        return value
    text = str(resolve(value, ctx)).strip()
    if text.lower() not in ('true', 'false', '1', '0'):
        raise ValueError(f'{what} must be true or false, got {text!r}')
    return text.lower() in ('true', '1')


def _check_argument(action: DeclareLaunchArgument, ctx: _Context) -> None:
    if action.name not in ctx.args:
        if action.default_value is None:
            raise LaunchArgumentError(f'Required launch argument "{action.name}" (description: '
                                      f'"{action.description}") was not provided.')
        ctx.args[action.name] = str(resolve(action.default_value, ctx))
    if action.choices and ctx.args[action.name] not in action.choices:
        # launch's own wording, with the choices listed plainly
        raise LaunchArgumentError(
            f'Argument "{action.name}" provided value "{ctx.args[action.name]}" is not valid. '
            f"Valid options are: {', '.join(action.choices)}")


def plan(description: LaunchDescription, launch_args: dict[str, str] | None = None,
         env: dict[str, str] | None = None) -> tuple[list[Process], list[str], dict[str, str]]:
    """Resolve a description into processes, LogInfo messages and the final launch arguments."""
    ctx = _Context(dict(launch_args or {}), dict(os.environ if env is None else env))
    declared = {a.name for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    unknown = set(ctx.args) - declared
    if unknown:
        raise LaunchArgumentError(f"unknown launch arguments: {', '.join(sorted(unknown))} "
                                  f"(declared: {', '.join(sorted(declared))})")
    procs: list[Process] = []
    logs: list[str] = []
    todo = list(description.entities)
    while todo:
        action = todo.pop(0)
        if isinstance(action, DeclareLaunchArgument):
            _check_argument(action, ctx)
            continue
        if not action.enabled(ctx):
            continue
        if isinstance(action, OpaqueFunction):
            todo[:0] = list(action.function(ctx, *action.args, **action.kwargs) or [])
        elif isinstance(action, SetEnvironmentVariable):
            ctx.env[resolve(action.name, ctx)] = resolve(action.value, ctx)
        elif isinstance(action, LogInfo):
            logs.append(str(resolve(action.msg, ctx)))
        elif isinstance(action, (Node, ExecuteProcess)):
            penv = dict(ctx.env)
            penv.update({k: str(resolve(v, ctx)) for k, v in action.additional_env.items()})
            fq = ''
            if isinstance(action, Node):
                cmd = _node_command(action, ctx)
                label = resolve(action.name, ctx) or resolve(action.executable, ctx)
                ns = (resolve(action.namespace, ctx) if action.namespace else '').strip('/')
                fq = f'/{ns}/{label}' if ns else f'/{label}'
            else:
                cmd = [str(resolve(c, ctx)) for c in action.cmd]
                label = action.name or os.path.basename(cmd[0])
            procs.append(Process(label, cmd, penv, action.output,
                                 _bool(action.respawn, f'respawn of {label}', ctx),
                                 action.respawn_delay, action.respawn_max_retries, fq))
        else:
            raise NotImplementedError(
                f'launch_runner does not support {type(action).__name__}')
    return procs, logs, ctx.args


def _spawn(p: Process, log_dir: Path | None, note: str = '') -> subprocess.Popen:
    """
    Start one process in its own session; with log_dir its output goes to <name>.log.

    A respawn (a note) appends to the file after a note line, so every life is in one file.
    """
    out = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        out = open(log_dir / f'{p.name}.log', 'ab' if note else 'wb')  # noqa: SIM115 - the child's
        if note:
            out.write(f'\n---- {note} ----\n'.encode())
            out.flush()
    try:
        return subprocess.Popen(p.cmd, env=p.env, start_new_session=True, stdout=out,
                                stderr=subprocess.STDOUT if out else None)
    finally:
        if out is not None:
            out.close()


def start(procs: list[Process], log_dir: Path | None = None) -> list[subprocess.Popen]:
    """Start every process once (no respawn: see Supervisor); with log_dir, output to files."""
    popens = []
    try:
        for p in procs:
            popens.append(_spawn(p, log_dir))
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


# How often a Supervisor's owner polls: how late a death is noticed (a respawn is started on time).
POLL_S = 0.05

# A node that cannot start on its configuration exits with this code (ros/entry.py).
BAD_CONFIGURATION = 2
# A node whose shutdown went past its deadline ends itself by SIGALRM (ros/entry.py), its
# threads' stacks in its log. Seen: Fast DDS hanging while deleting an entity.
SHUTDOWN_HUNG = -signal.SIGALRM


def exit_text(code: int) -> str:
    """'exited 1', 'killed by SIGKILL', 'exited 2 (bad configuration)', 'ended itself ...'."""
    if code == SHUTDOWN_HUNG:
        return ("ended itself by SIGALRM (its shutdown passed its deadline; its threads' stacks "
                'are in its log)')
    if code < 0:
        try:
            return f'killed by {signal.Signals(-code).name}'
        except ValueError:
            return f'killed by signal {-code}'
    if code == BAD_CONFIGURATION:
        return f'exited {code} (bad configuration)'
    return f'exited {code}'


def stop_errors(codes: dict[str, int], say: Callable[[str], None]) -> dict[str, int]:
    """
    The nodes that did not stop cleanly on shutdown, by exit code.

    A node that ended itself past its shutdown deadline (SHUTDOWN_HUNG) is said in one line each
    and not counted: the run had ended, and the launcher would have killed it anyway.
    """
    for name, code in codes.items():
        if code == SHUTDOWN_HUNG:
            say(f'[launch] {name} {exit_text(code)}')
    return {n: c for n, c in codes.items() if c not in (0, -signal.SIGINT, SHUTDOWN_HUNG)}


def child_pid(parent: int, executable: str) -> int:
    """The pid of `parent`'s child process whose command line names `executable` (from /proc).

    How a test or a bench finds one node of a running `edgevlm_demo` / `edgevlm_launch` to kill.
    """
    for d in Path('/proc').iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / 'stat').read_text().rsplit(') ', 1)[1].split()[1])
            cmd = (d / 'cmdline').read_bytes().decode(errors='replace')
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and executable in cmd:
            return int(d.name)
    raise LookupError(f'no {executable} under process {parent}')


def config_error(log: Path) -> str:
    """The error a node logged before it exited on its configuration ('' if none is found)."""
    if not log.exists():
        return ''
    for line in reversed(log.read_text(errors='replace').splitlines()[-40:]):
        if ('[ERROR]' in line or '[FATAL]' in line) and not line.endswith('(see above)'):
            return line.split(']: ', 1)[-1].strip()
    return ''


@dataclass
class Ended:
    """A process that ended for good: it will not be respawned."""

    name: str
    code: int
    why: str  # 'respawn is off', 'all 5 retries used'
    detail: str = ''  # the configuration error it logged, for exit code 2

    def __str__(self) -> str:
        text = f'{self.name} {exit_text(self.code)}'
        return text + (f': {self.detail}' if self.detail else '') + f'; {self.why}'


class Watchdog:
    """
    Heartbeats of the nodes by fully qualified name, and which of them stalled.

    Every node publishes its DiagnosticStatus on /diagnostics about once a second from a thread
    of its own (ros.diagnostics), with its pid, so neither its executor nor its model can hold the
    heartbeat back; a node busy loading a model reports state `loading` and keeps beating. Only
    the heartbeats of the node's current process count (by pid): a late one of a process that was
    killed says nothing about its successor. A node stalled when, in its current life:

    1. it has beaten before and has not for `watchdog_s` (a deadlock of the whole process, a
       SIGSTOP, a driver stuck in a system call);
    2. its heartbeat says `stalled` (its executor has not turned for a while: ros.diagnostics);
    3. it has never beaten `startup_s` after it was started (stuck before its node existed).

    `beat` may be called from any thread (the listener's); `stalled` from the supervisor's.
    """

    def __init__(self, watchdog_s: float = 5.0, startup_s: float = 120.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not watchdog_s > 0 or not startup_s > 0:
            raise ValueError(f'watchdog_s and startup_s must be > 0, got {watchdog_s}, '
                             f'{startup_s}')
        self.watchdog_s, self.startup_s, self.clock = watchdog_s, startup_s, clock
        self._lock = threading.Lock()
        self._life: dict[str, tuple[float, int | None]] = {}   # node -> (started, pid)
        self._beat: dict[str, tuple[float, str]] = {}          # node -> (when, state)

    def started(self, node: str, pid: int | None) -> None:
        """A new life of `node` (process `pid`; None: none yet) begins: the old one's beats end."""
        with self._lock:
            self._life[node] = (self.clock(), pid)
            self._beat.pop(node, None)

    def beat(self, node: str, state: str = '', pid: int | None = None) -> None:
        """A heartbeat; one that names another process than the node's current one is ignored."""
        with self._lock:
            life = self._life.get(node)
            if life is not None and life[1] is not None and (pid is None or pid == life[1]):
                self._beat[node] = (self.clock(), state)

    def stalled(self, node: str) -> str | None:
        """Why `node` counts as stalled now (one line), or None."""
        now = self.clock()
        with self._lock:
            life = self._life.get(node)
            beat = self._beat.get(node)
        if life is None or life[1] is None:
            return None
        if beat is None:
            quiet = now - life[0]
            return (f'no heartbeat {quiet:.0f} s after its start (> {self.startup_s:g} s)'
                    if quiet > self.startup_s else None)
        if now - beat[0] > self.watchdog_s:
            return f'no heartbeat for {now - beat[0]:.1f} s (> {self.watchdog_s:g} s)'
        if beat[1] == 'stalled':
            return 'its heartbeat says stalled (its executor stopped turning)'
        return None


def beat(watchdog: Watchdog, node: str, values: dict[str, str]) -> None:
    """Feed one DiagnosticStatus (its name and key/values) to the watchdog."""
    pid = values.get('pid', '')
    watchdog.beat(node, values.get('state', ''), int(pid) if pid.isdigit() else None)


class HeartbeatListener:
    """Feeds a Watchdog from /diagnostics: its own ROS context, node and spinning thread."""

    def __init__(self, watchdog: Watchdog) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self._ctx = rclpy.Context()
        # Not sys.argv: it holds launch arguments (k:=v), which rcl would take as remap rules.
        rclpy.init(args=[], context=self._ctx, signal_handler_options=SignalHandlerOptions.NO)
        self._node = rclpy.create_node('launch_watchdog', context=self._ctx,
                                       start_parameter_services=False)
        self._node.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics,
                                       50)
        self._watchdog = watchdog
        self._executor = SingleThreadedExecutor(context=self._ctx)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, name='launch_watchdog', daemon=True)
        self._thread.start()

    def on_diagnostics(self, msg) -> None:
        for status in msg.status:
            beat(self._watchdog, status.name, {kv.key: kv.value for kv in status.values})

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - the context went down under it (shutdown)
            pass

    def close(self) -> None:
        import rclpy

        self._executor.shutdown(timeout_sec=2.0)
        self._node.destroy_node()
        rclpy.try_shutdown(context=self._ctx)
        self._thread.join(timeout=2.0)


class Supervisor:
    """
    Runs a launch description's processes with the respawn rules of launch's ExecuteLocal.

    1. A process with respawn is started again after any exit (a crash, a signal, exit code 0)
       while launch is not shutting down, after respawn_delay seconds; a shutdown during that
       delay cancels the respawn.
    2. respawn_max_retries bounds the respawns of a process over the whole launch (negative: no
       limit). The count is never reset: a process that ran for hours and then died uses one.
    3. A process that exits without respawn, or with its retries used, ended for good; the
       others keep running. Launch is over when nothing runs and no respawn is pending, or on
       shutdown (Ctrl-C, SIGTERM), which SIGINTs every process and respawns none.
    4. One line per death (the node, its exit code or signal, the retry it gets or why it gets
       none) and one per restart (its retry number). Exit code 2 is a node refusing its
       configuration: the line says so, with the error the node logged when output goes to a
       log file. It is respawned like any exit, as launch does, so respawn_max_retries is
       what ends that loop.
    5. With a `Watchdog`, a node that stalled (its rules) gets one line and SIGKILL; rule 1
       then respawns it like any death. (Not a launch rule: launch notices only exits.)

    Not thread-safe: one thread calls poll() (every POLL_S at most, see poll_within) and
    shutdown().
    """

    def __init__(self, procs: list[Process], log_dir: Path | None = None,
                 say: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic,
                 watchdog: Watchdog | None = None) -> None:
        self.procs, self.log_dir, self.say, self.clock = procs, log_dir, say, clock
        self.watchdog = watchdog
        self.stalls = [0] * len(procs)       # kills by the watchdog
        self.popens: list[subprocess.Popen | None] = [None] * len(procs)
        self.retries = [0] * len(procs)      # respawns granted (launch's __respawn_retries)
        self.restarts = [0] * len(procs)     # respawns that happened
        self.pending: dict[int, float] = {}  # process index -> when it is started again
        self.ended: list[Ended] = []
        self.shutting_down = False

    def start(self) -> None:
        try:
            for i, p in enumerate(self.procs):
                self.popens[i] = _spawn(p, self.log_dir)
                self._life_begins(i)
        except BaseException:
            self.shutdown()
            raise

    def running(self) -> bool:
        """Something is still running or waiting to be respawned."""
        return bool(self.pending) or any(q is not None for q in self.popens)

    def poll_within(self, most_s: float = POLL_S) -> float:
        """How long the caller may wait before the next poll(): a due respawn is not delayed."""
        if not self.pending:
            return most_s
        return min(most_s, max(0.0, min(self.pending.values()) - self.clock()))

    def _life_begins(self, i: int) -> None:
        """Tell the watchdog process i's current process (None: none, after a kill)."""
        if self.watchdog is not None and self.procs[i].node:
            q = self.popens[i]
            self.watchdog.started(self.procs[i].node, None if q is None else q.pid)

    def stall_counts(self) -> dict[str, int]:
        return {p.name: n for p, n in zip(self.procs, self.stalls)}

    def restart_counts(self) -> dict[str, int]:
        return {p.name: n for p, n in zip(self.procs, self.restarts)}

    def pid(self, name: str) -> int | None:
        q = next(q for p, q in zip(self.procs, self.popens) if p.name == name)
        return None if q is None else q.pid

    def poll(self) -> None:
        """Notice exits, grant or refuse respawns, start the respawns that are due."""
        for i, q in enumerate(self.popens):
            if q is not None and q.poll() is not None:
                self.popens[i] = None
                if not self.shutting_down:
                    self._exited(i, q)
        if self.watchdog is not None and not self.shutting_down:
            for i, (p, q) in enumerate(zip(self.procs, self.popens)):
                why = self.watchdog.stalled(p.node) if q is not None and p.node else None
                if why is not None:
                    self.stalls[i] += 1
                    self.say(f'[launch] {p.name} stalled: {why} [pid {q.pid}]; killing it')
                    q.kill()
                    self.watchdog.started(p.node, None)  # one kill per stall, not one per poll
        now = self.clock()
        for i, due in list(self.pending.items()):
            if now >= due and not self.shutting_down:
                del self.pending[i]
                self._respawn(i)

    def _limit(self, i: int) -> str:
        m = self.procs[i].respawn_max_retries
        n = self.retries[i]
        return f'retry {n} of {m}' if m >= 0 else f'retry {n}, no limit'

    def _exited(self, i: int, q: subprocess.Popen) -> None:
        p, code = self.procs[i], q.returncode
        detail = ''
        if code == BAD_CONFIGURATION and self.log_dir is not None:
            detail = config_error(self.log_dir / f'{p.name}.log')
        what = f'{p.name} {exit_text(code)} [pid {q.pid}]' + (f': {detail}' if detail else '')
        m = p.respawn_max_retries
        if p.respawn and (m < 0 or self.retries[i] < m):
            self.retries[i] += 1
            delay = p.respawn_delay if p.respawn_delay and p.respawn_delay > 0 else 0.0
            self.pending[i] = self.clock() + delay
            self.say(f'[launch] {what}; respawning in {delay:g} s ({self._limit(i)})')
            return
        why = 'respawn is off' if not p.respawn else f'all {m} retries used'
        self.ended.append(Ended(p.name, code, why, detail))
        self.say(f'[launch] {what}; not respawned: {why}')

    def _respawn(self, i: int) -> None:
        p = self.procs[i]
        try:
            q = _spawn(p, self.log_dir, f'[launch] respawn ({self._limit(i)})')
        except OSError as e:
            self.ended.append(Ended(p.name, 127, f'respawn failed: {e}'))
            self.say(f'[launch] {p.name} could not be respawned: {e}')
            return
        self.popens[i] = q
        self._life_begins(i)
        self.restarts[i] += 1
        self.say(f'[launch] {p.name} restarted [pid {q.pid}] ({self._limit(i)})')

    def shutdown(self, timeout_s: float = 10.0) -> dict[str, int]:
        """SIGINT everything still running, no more respawns; exit codes of those stopped."""
        self.shutting_down = True
        self.pending.clear()
        alive = [(p, q) for p, q in zip(self.procs, self.popens) if q is not None]
        codes = stop([q for _, q in alive], timeout_s)
        self.popens = [None] * len(self.procs)
        return {p.name: c for (p, _), c in zip(alive, codes)}


class LaunchError(Exception):
    """The launch file could not be loaded or planned: one line says why."""


def prepare(path: str | Path, launch_args: dict[str, str], debug: bool = False
            ) -> tuple[list[Process], list[str], dict[str, str]]:
    """Load + plan; any failure becomes one LaunchError line, as `ros2 launch` reports it."""
    try:
        return plan(load(path), launch_args)
    except Exception as e:  # noqa: BLE001 - ros2 launch too reports any exception as one line
        if debug:
            traceback.print_exc()
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        raise LaunchError(msg or type(e).__name__) from e


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
    dry, debug = '--dry-run' in argv, '--debug' in argv
    watchdog_s = WATCHDOG_S
    for a in [a for a in argv if a.startswith('--watchdog=')]:
        watchdog_s = float(a.split('=', 1)[1])
    argv = [a for a in argv if a not in ('--dry-run', '--debug')
            and not a.startswith('--watchdog=')]
    launch_args = dict(a.split(':=', 1) for a in argv if ':=' in a)
    positional = [a for a in argv if ':=' not in a]
    if len(positional) not in (1, 2):
        print(__doc__.split('usage:')[1].strip(), file=sys.stderr)
        return 2
    # Installed with pip into a venv (no sourced workspace): the venv is the ament prefix.
    if not os.environ.get('AMENT_PREFIX_PATH'):
        os.environ['AMENT_PREFIX_PATH'] = sys.prefix
    try:
        path = launch_file_path(*positional) if len(positional) == 2 else Path(positional[0])
        procs, logs, _ = prepare(path, launch_args, debug)
    except (LaunchError, LookupError, OSError) as e:
        print(f'[ERROR] [launch]: {e}', file=sys.stderr, flush=True)
        return 1
    for m in logs:
        print(f'[INFO] [launch.user]: {m}', flush=True)
    for p in procs:
        print(f'[launch] {p.name}: {shlex.join(p.cmd)}', flush=True)
    if dry:
        return 0
    stopping = threading.Event()
    handlers = {s: signal.signal(s, lambda *_: stopping.set())
                for s in (signal.SIGINT, signal.SIGTERM)}
    watchdog = Watchdog(watchdog_s) if watchdog_s > 0 else None
    sup = Supervisor(procs, say=lambda line: print(line, flush=True), watchdog=watchdog)
    listener = None
    try:
        if watchdog is not None:
            local_ros_environment()
            listener = HeartbeatListener(watchdog)
        sup.start()
        while sup.running() and not stopping.wait(sup.poll_within()):
            sup.poll()
    finally:
        codes = sup.shutdown()
        if listener is not None:
            listener.close()
        for s, h in handlers.items():
            signal.signal(s, h)
    if stopping.is_set():
        print('[launch] shut down: ' + ', '.join(f'{n}={c}' for n, c in codes.items()), flush=True)
    failed = [e for e in sup.ended if e.code != 0]
    for e in failed:
        print(f'[launch] ended for good: {e}', flush=True)
    bad = stop_errors(codes, lambda line: print(line, flush=True))
    return 1 if failed or bad else 0
