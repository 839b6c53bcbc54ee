"""``ros2 run`` / ``ros2 launch`` against the installed environment itself (no overlay prefix).

``scripts/setup_env.sh`` links the console scripts into ``<prefix>/lib/janusvln_ros/``, where
ament (``ros2 run``, launch_ros' ``Node``) looks for a package's executables.
"""

import os
import pathlib
import signal
import subprocess
import sys

from janus_ros_testutil import Driver
import pytest
from ros2_tools_util import EXECUTABLES, ros2, ros2_command, wait_until


@pytest.fixture(scope='module')
def installed_env(ros2_env):
    env = dict(ros2_env)
    env['AMENT_PREFIX_PATH'] = os.environ.get('AMENT_PREFIX_PATH') or sys.prefix
    return env


def test_executables_where_ament_looks(installed_env):
    prefix = pathlib.Path(ros2(installed_env, 'pkg', 'prefix', 'janusvln_ros').stdout.strip())
    for exe in EXECUTABLES:
        assert os.access(prefix / 'lib' / 'janusvln_ros' / exe, os.X_OK), \
            f'{prefix}/lib/janusvln_ros/{exe} missing: run scripts/setup_env.sh'
    out = ros2(installed_env, 'pkg', 'executables', 'janusvln_ros')
    assert sorted(out.stdout.split()) == sorted(
        ['janusvln_ros'] * len(EXECUTABLES) + list(EXECUTABLES)), out


def test_installed_launch_files_load(installed_env):
    for name in ('janusvln.launch.py', 'sim.launch.py', 'gazebo.launch.py'):
        out = ros2(installed_env, 'launch', 'janusvln_ros', name, '--show-args')
        assert out.returncode == 0 and "'params_file':" in out.stdout, (name, out.stderr)


def test_ros2_run_node_then_ctrl_c(installed_env, ros_context, tmp_path):
    log = open(tmp_path / 'run.log', 'wb')
    proc = subprocess.Popen([ros2_command(), 'run', 'janusvln_ros', 'janusvln_node', '--ros-args',
                             '-p', 'engine:=scripted', '-p', 'autostart:=true',
                             '-r', '__ns:=/runcheck'], env=installed_env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    driver = Driver(namespace='runcheck', name='run_driver')
    try:
        assert wait_until(driver.get_state.service_is_ready, 60), \
            (tmp_path / 'run.log').read_text()
        assert wait_until(lambda: driver.state() == 'active', 30)
        os.killpg(proc.pid, signal.SIGINT)   # Ctrl-C reaches the group (ros2cli#895: not the pid)
        assert proc.wait(30) == 0, (tmp_path / 'run.log').read_text()
    finally:
        driver.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
