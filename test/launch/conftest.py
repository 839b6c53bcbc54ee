"""Fixtures of the tests of real ``ros2 launch`` and ``ros2`` CLI (see ros2_tools_util.py).

Without the tools every test that needs them skips with the reason (``ros2_env``).
"""

import os
import pathlib
import subprocess
import sys

import pytest
from ros2_tools_util import BIN, Launch, make_overlay, ros2_command, ros2_tools_missing

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'ros'))


@pytest.fixture(scope='session')
def ros2_env(tmp_path_factory):
    """Environment for ``ros2`` subprocesses (overlay prefix first); skips without the tools."""
    missing = ros2_tools_missing()
    if missing:
        pytest.skip(missing)
    overlay = make_overlay(tmp_path_factory.mktemp('overlay'))
    env = os.environ.copy()
    env['AMENT_PREFIX_PATH'] = os.pathsep.join(
        [str(overlay), env.get('AMENT_PREFIX_PATH') or sys.prefix])
    env['PATH'] = os.pathsep.join([str(BIN), env.get('PATH', '')])
    env['PYTHONUNBUFFERED'] = '1'
    env.pop('ROS2CLI_NO_DAEMON', None)
    try:
        yield env
    finally:       # the CLI verbs start a graph daemon; it must not outlive the tests
        subprocess.run([ros2_command(), 'daemon', 'stop'], env=env, capture_output=True,
                       timeout=60)


@pytest.fixture
def launcher(ros2_env, tmp_path):
    """Start ``ros2 launch`` processes; each is stopped (and its session killed) afterwards."""
    started: list[Launch] = []

    def start(*args: str, name: str = 'launch') -> Launch:
        started.append(Launch(ros2_env, tmp_path / f'{name}.log', *args))
        return started[-1]
    try:
        yield start
    finally:
        for launch in started:
            launch.close()
