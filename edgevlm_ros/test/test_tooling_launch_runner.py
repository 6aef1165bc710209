# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""launch_runner's Supervisor keeps launch's respawn rules; its stand-in stays private."""

from collections.abc import Callable
import os
from pathlib import Path
import signal
import subprocess
import sys
import textwrap
import time

from edgevlm_ros.tooling import launch_runner as L
import pytest

LAUNCH_FILE = Path(__file__).resolve().parents[1] / 'launch' / 'edgevlm.launch.py'
SLEEPER = [sys.executable, '-c', 'import time; print("sleeping", flush=True); time.sleep(120)']


class Lines(list):
    def __call__(self, line: str) -> None:
        self.append(line)

    def about(self, name: str, word: str) -> list[str]:
        return [x for x in self if x.startswith(f'[launch] {name} ') and word in x]


@pytest.fixture
def supervise(tmp_path):
    """Make a Supervisor over some processes; it is always shut down at the end."""
    made = []

    def make(*procs: L.Process, watchdog: L.Watchdog | None = None
             ) -> tuple[L.Supervisor, Lines]:
        lines = Lines()
        sup = L.Supervisor(list(procs), tmp_path / 'logs', say=lines, watchdog=watchdog)
        made.append(sup)
        sup.start()
        return sup, lines

    yield make
    for sup in made:
        sup.shutdown(timeout_s=5.0)


def poll_until(sup: L.Supervisor, predicate: Callable[[], bool], timeout_s: float,
               probe=None) -> bool:
    """Let the supervisor (and the probe, if any) work until predicate() holds."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        sup.poll()
        if predicate():
            return True
        if probe is not None:
            probe.executor.spin_once(timeout_sec=0.05)
        else:
            time.sleep(0.05)
    return predicate()


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:
        return f.read().split(') ')[1][0] != 'Z'


def proc(name: str, cmd: list[str], **respawn) -> L.Process:
    return L.Process(name, cmd, dict(os.environ), **respawn)


@pytest.mark.ros
def test_a_killed_node_comes_back_once_with_its_retry_number_and_its_sibling_is_untouched(
        supervise, probe):
    from diagnostic_msgs.msg import DiagnosticArray

    nodes = [L.Node(package='edgevlm_ros', executable='camera_node', name=n, respawn=True,
                    respawn_delay=0.2, respawn_max_retries=3) for n in ('cam_a', 'cam_b')]
    diags = probe.listen(DiagnosticArray, '/diagnostics', 10)

    def reported(name: str, since: int = 0) -> bool:  # a status of the node, 1 Hz
        return any(st.name == f'/{name}' for arr in diags[since:] for st in arr.status)

    procs, _, _ = L.plan(L.LaunchDescription(nodes), {})
    sup, lines = supervise(*procs)
    assert poll_until(sup, lambda: reported('cam_a') and reported('cam_b'), 30, probe)
    old_a, b = sup.pid('cam_a'), sup.pid('cam_b')

    os.kill(old_a, signal.SIGKILL)
    assert poll_until(sup, lambda: lines.about('cam_a', 'restarted'), 10, probe), lines
    back = len(diags)  # the probe kept spinning: the dead process's messages are all in
    new_a = sup.pid('cam_a')
    assert lines.about('cam_a', 'killed by SIGKILL') == [
        f'[launch] cam_a killed by SIGKILL [pid {old_a}]; respawning in 0.2 s (retry 1 of 3)']
    assert lines.about('cam_a', 'restarted') == [
        f'[launch] cam_a restarted [pid {new_a}] (retry 1 of 3)']
    assert new_a != old_a and alive(new_a)
    # The new process is the node again (it reports), the sibling never went away.
    assert poll_until(sup, lambda: reported('cam_a', back), 30, probe)
    assert sup.pid('cam_b') == b and alive(b) and not lines.about('cam_b', '')
    assert sup.restart_counts() == {'cam_a': 1, 'cam_b': 0} and not sup.ended
    assert '---- [launch] respawn (retry 1 of 3) ----' in (sup.log_dir / 'cam_a.log').read_text()


def test_without_respawn_a_dead_process_ends_for_good_and_the_others_keep_running(supervise):
    sup, lines = supervise(proc('a', SLEEPER), proc('b', SLEEPER))
    a, b = sup.pid('a'), sup.pid('b')
    os.kill(a, signal.SIGKILL)
    assert poll_until(sup, lambda: sup.ended, 10)
    assert lines == [f'[launch] a killed by SIGKILL [pid {a}]; not respawned: respawn is off']
    assert str(sup.ended[0]) == 'a killed by SIGKILL; respawn is off'
    assert alive(b) and sup.pid('b') == b and sup.running()
    os.kill(b, signal.SIGTERM)
    assert poll_until(sup, lambda: not sup.running(), 10)  # nothing left: launch is over
    assert [e.name for e in sup.ended] == ['a', 'b']


def test_retries_are_bounded_over_the_launch_and_any_exit_counts(supervise):
    exit0 = [sys.executable, '-c', 'pass']
    sup, lines = supervise(proc('once', exit0, respawn=True, respawn_max_retries=2))
    assert poll_until(sup, lambda: not sup.running(), 20), lines
    # launch respawns on any exit, a clean one too, and never resets the count.
    assert [x.split(' [pid')[0] + x.split(']')[-1] for x in lines] == [
        '[launch] once exited 0; respawning in 0 s (retry 1 of 2)',
        '[launch] once restarted (retry 1 of 2)',
        '[launch] once exited 0; respawning in 0 s (retry 2 of 2)',
        '[launch] once restarted (retry 2 of 2)',
        '[launch] once exited 0; not respawned: all 2 retries used']
    assert sup.restart_counts() == {'once': 2}


def test_a_node_refusing_its_configuration_says_so_on_every_death(supervise):
    # A node that cannot start logs why and exits 2 (ros/entry.py); launch respawns it like any
    # exit, so every death line says "bad configuration" with the node's own error.
    refuse = [sys.executable, '-c', textwrap.dedent("""
        import sys
        print("[ERROR] [1.5] [edge_svlm]: cannot load edge model '/nope': no such directory")
        print('[FATAL] [1.5] [edge_svlm]: cannot start: configure failed (see above)')
        sys.exit(2)""")]
    sup, lines = supervise(proc('edge_svlm', refuse, respawn=True, respawn_max_retries=1))
    assert poll_until(sup, lambda: not sup.running(), 20), lines
    deaths = lines.about('edge_svlm', 'exited 2')
    assert len(deaths) == 2
    for line in deaths:
        assert line.startswith('[launch] edge_svlm exited 2 (bad configuration) [pid ')
        assert "]: cannot load edge model '/nope': no such directory; " in line
    assert deaths[-1].endswith('not respawned: all 1 retries used')
    assert str(sup.ended[0]).startswith('edge_svlm exited 2 (bad configuration): cannot load')


def test_shutdown_during_the_respawn_delay_cancels_the_respawn(supervise, tmp_path):
    sup, lines = supervise(proc('dies', [sys.executable, '-c', 'raise SystemExit(1)'],
                                respawn=True, respawn_delay=30.0),
                           proc('sleeps', SLEEPER, respawn=True))
    assert poll_until(sup, lambda: lines.about('dies', 'respawning in 30 s'), 10)
    # A SIGINT that lands while the venv's Python is still starting up (under load) can be lost
    # in its start-up re-exec or end it with 1: this test is about the respawn, not that.
    log = tmp_path / 'logs' / 'sleeps.log'
    assert poll_until(sup, lambda: log.exists() and 'sleeping' in log.read_text(), 60)
    sleeper = sup.pid('sleeps')
    t0 = time.monotonic()
    codes = sup.shutdown()
    sup.poll()
    assert time.monotonic() - t0 < 5 and not sup.running() and not alive(sleeper)
    assert codes == {'sleeps': -signal.SIGINT} and not lines.about('', 'restarted')


LAUNCH_TWO_SLEEPERS = """
import sys
from launch import LaunchDescription
from launch.actions import ExecuteProcess

def generate_launch_description():
    sleep = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
    return LaunchDescription([
        ExecuteProcess(cmd=[sys.executable, '-c', sleep, '{out}/a'], name='a', respawn=True),
        ExecuteProcess(cmd=[sys.executable, '-c', sleep, '{out}/b'], name='b', respawn=True),
    ])
"""


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_ends_every_process_and_respawns_none(tmp_path, sig):
    launch_file = tmp_path / 'two.launch.py'
    launch_file.write_text(LAUNCH_TWO_SLEEPERS.format(out=tmp_path))
    runner = subprocess.Popen(
        [sys.executable, '-c', 'import sys; from edgevlm_ros.tooling.launch_runner import main; '
                               'sys.exit(main())', str(launch_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 20
        while not all((tmp_path / n).exists() and (tmp_path / n).read_text() for n in 'ab'):
            assert time.monotonic() < end and runner.poll() is None, runner.stdout.read()
            time.sleep(0.05)
        pids = [int((tmp_path / n).read_text()) for n in 'ab']
        runner.send_signal(sig)
        out, _ = runner.communicate(timeout=20)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 0, out
    assert not any(alive(p) for p in pids)
    assert 'restarted' not in out and 'respawning' not in out
    assert '[launch] shut down: a=-2, b=-2' in out


def test_the_stand_in_is_private_to_the_launch_file_when_real_launch_is_installed(
        tmp_path, monkeypatch):
    # A sourced ROS install makes `import launch, launch_ros` work. The launch file still runs
    # against the stand-in, and the real packages are neither needed nor replaced.
    for pkg in ('launch', 'launch_ros'):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / '__init__.py').write_text('REAL = True\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.split('.')[0] in ('launch', 'launch_ros')]:
        monkeypatch.delitem(sys.modules, name)
    import launch
    import launch_ros

    procs, _, args = L.plan(L.load(LAUNCH_FILE), {'use_frame_source': 'true'},
                            env={'AMENT_PREFIX_PATH': ''})
    assert [p.name for p in procs][:3] == ['frame_source', 'camera', 'edge_svlm']
    assert sys.modules['launch'] is launch and sys.modules['launch_ros'] is launch_ros
    assert 'launch.actions' not in sys.modules and launch.REAL and launch_ros.REAL


def test_a_launch_file_importing_beyond_the_subset_fails_with_the_module_named(tmp_path):
    f = tmp_path / 'x.launch.py'
    f.write_text('from launch.event_handlers import OnProcessExit\n')
    with pytest.raises(ModuleNotFoundError, match='launch.event_handlers'):
        L.load(f)


def test_respawn_knobs_take_launch_types():
    # launch compares respawn_delay and respawn_max_retries with numbers: a substitution there
    # would only fail at the first death under ros2 launch.
    with pytest.raises(TypeError, match='respawn_delay'):
        L.Node(executable='x', respawn_delay=L.LaunchConfiguration('respawn_delay'))
    with pytest.raises(TypeError, match='respawn_max_retries'):
        L.ExecuteProcess(cmd=['x'], respawn_max_retries='3')
    desc = L.LaunchDescription([
        L.DeclareLaunchArgument('keep', default_value='true'),
        L.ExecuteProcess(cmd=['x'], name='x', respawn=L.LaunchConfiguration('keep'),
                         respawn_delay=0.5, respawn_max_retries=4)])
    (p,), _, _ = L.plan(desc, {})
    assert (p.respawn, p.respawn_delay, p.respawn_max_retries) == (True, 0.5, 4)
    (p,), _, _ = L.plan(desc, {'keep': 'false'})
    assert p.respawn is False
    with pytest.raises(ValueError, match='respawn of x must be true or false'):
        L.plan(desc, {'keep': 'maybe'})


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_watchdog_tells_a_stalled_node_from_a_loading_or_starting_one():
    clock = _Clock()
    w = L.Watchdog(watchdog_s=5.0, startup_s=60.0, clock=clock)
    w.started('/edge_svlm', 100)
    clock.t += 30.0
    assert w.stalled('/edge_svlm') is None  # importing torch, no node yet: not before 60 s
    w.beat('/edge_svlm', 'loading', 100)
    clock.t += 4.0
    assert w.stalled('/edge_svlm') is None
    w.beat('/edge_svlm', 'loading', 100)  # a long model load keeps beating: never stalled
    clock.t += 4.9
    assert w.stalled('/edge_svlm') is None
    clock.t += 0.2
    assert 'no heartbeat for 5.1 s' in w.stalled('/edge_svlm')
    w.beat('/edge_svlm', 'stalled', 100)
    assert 'says stalled' in w.stalled('/edge_svlm')
    w.started('/edge_svlm', 200)  # a new life: the old one's beats are forgotten
    w.beat('/edge_svlm', 'active', 100)  # a late beat of the killed process does not count
    clock.t += 30.0
    assert w.stalled('/edge_svlm') is None  # still starting: not "no heartbeat for 30 s"
    clock.t += 31.0
    assert 'no heartbeat 61 s after its start' in w.stalled('/edge_svlm')
    w.beat('/camera', 'active', 300)  # a node this supervisor did not start: not watched
    assert w.stalled('/camera') is None
    w.started('/camera', None)  # killed, not started again yet: nothing to judge
    clock.t += 100.0
    assert w.stalled('/camera') is None


def test_a_stalled_node_is_killed_once_and_respawned_and_its_siblings_are_not(supervise):
    clock = _Clock()
    w = L.Watchdog(watchdog_s=5.0, clock=clock)
    env = dict(os.environ)
    stuck = L.Process('edge_svlm', SLEEPER, env, respawn=True, respawn_delay=0.0,
                      respawn_max_retries=3, node='/edge_svlm')
    fine = L.Process('camera', SLEEPER, env, respawn=True, respawn_delay=0.0,
                     respawn_max_retries=3, node='/camera')
    sup, lines = supervise(stuck, fine, watchdog=w)
    first, sibling = sup.pid('edge_svlm'), sup.pid('camera')
    os.kill(first, signal.SIGSTOP)  # hangs: no exit for launch to notice
    w.beat('/edge_svlm', 'active', first)
    w.beat('/camera', 'active', sibling)
    clock.t += 6.0
    w.beat('/camera', 'active', sibling)
    assert poll_until(sup, lambda: sup.pid('edge_svlm') not in (None, first), 10)
    assert len(lines.about('edge_svlm', 'stalled: no heartbeat for 6.0 s')) == 1
    assert len(lines.about('edge_svlm', 'restarted')) == 1
    assert sup.stall_counts() == {'edge_svlm': 1, 'camera': 0}
    assert sup.restart_counts() == {'edge_svlm': 1, 'camera': 0}
    assert sup.pid('camera') == sibling


def test_a_respawn_is_started_when_due_not_at_the_next_routine_poll(tmp_path):
    # The owner's loop waits poll_within() between polls: a node dead for respawn_delay is
    # started again at that moment (answers resume sooner), not up to a poll period later.
    clock = _Clock()
    sup = L.Supervisor([proc('quick', ['true'], respawn=True, respawn_delay=1.0)],
                       tmp_path / 'logs', say=Lines(), clock=clock)
    sup.start()
    try:
        assert sup.poll_within() == L.POLL_S
        sup.popens[0].wait(10)
        sup.poll()
        assert sup.pending, 'its exit was noticed and a respawn is due in 1 s'
        assert sup.poll_within() == L.POLL_S
        clock.t += 0.98
        assert sup.poll_within() == pytest.approx(0.02)
        clock.t += 0.05
        assert sup.poll_within() == 0.0
        sup.poll()
        assert sup.restart_counts() == {'quick': 1}
    finally:
        sup.shutdown(timeout_s=5.0)


def test_a_node_whose_shutdown_hung_is_said_but_is_not_an_error_of_the_stop():
    # ros/entry ends a node whose shutdown passes its deadline by SIGALRM (its stacks are in its
    # log); a SIGKILL or an exit 1 on the way out still are errors.
    lines = Lines()
    codes = {'camera': 0, 'edge_svlm': -signal.SIGINT, 'cloud_bridge': L.SHUTDOWN_HUNG,
             'context_fusion': 1, 'frame_source': -signal.SIGKILL}
    assert L.stop_errors(codes, lines) == {'context_fusion': 1, 'frame_source': -signal.SIGKILL}
    assert lines == ["[launch] cloud_bridge ended itself by SIGALRM (its shutdown passed its "
                     "deadline; its threads' stacks are in its log)"]
