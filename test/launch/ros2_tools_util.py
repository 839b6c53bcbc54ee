"""Helpers of the tests of real ``ros2 launch`` and ``ros2`` CLI: tools, overlay, processes.

The tools are the ROS 2 Jazzy ``launch``/``launch_ros``/``ros2cli`` packages: from a ROS install,
or installed by ``scripts/setup_env.sh`` from ``../shared/ros2-tools``. Without them every test
that needs them skips with the reason (``ros2_env``); nothing falls back to a stand-in.

The code under test is this source tree: the launch files and config are served from an overlay
prefix (``<tmp>/share/janusvln_ros`` -> this repository's ``launch/`` and ``config/``; its
``lib/janusvln_ros`` -> the console scripts, which import the tree through PYTHONPATH) that comes
first in ``AMENT_PREFIX_PATH``, so ``ros2 launch janusvln_ros <file>`` runs this tree's files
exactly as written in the README. ``test_installed.py`` checks the installed environment itself.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
BIN = pathlib.Path(sys.executable).parent
EXECUTABLES = ('janusvln_node', 'sim_bridge_node', 'janusvln')
HINT = ('run scripts/setup_env.sh with ../shared/ros2-tools beside the repository, or source a '
        'ROS 2 Jazzy install')


def ros2_tools_missing() -> str | None:
    """Why the real launch system and ros2 command cannot be used here (None: they can)."""
    try:
        import launch
        import launch_ros  # noqa: F401
        import ros2cli  # noqa: F401
    except ImportError as exc:
        return f'ROS 2 launch / ros2cli not importable ({exc}): {HINT}'
    if not hasattr(launch, 'LaunchService'):
        return f'"launch" at {launch.__file__} is not ROS 2 launch (PyPI has another): {HINT}'
    if ros2_command() is None:
        return f'no "ros2" command next to {sys.executable} or on PATH: {HINT}'
    return None


def ros2_command() -> str | None:
    return shutil.which('ros2', path=os.pathsep.join([str(BIN), os.environ.get('PATH', '')]))


def wait_until(pred: Callable[[], object], timeout: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(poll)
    return bool(pred())


def make_overlay(root: pathlib.Path) -> pathlib.Path:
    """An ament prefix whose janusvln_ros share and lib folders are this source tree's."""
    index = root / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    (index / 'janusvln_ros').write_text('')
    share = root / 'share' / 'janusvln_ros'
    share.mkdir()
    for name in ('config', 'package.xml'):
        (share / name).symlink_to(REPO / name)
    (share / 'launch').mkdir()          # ros2 launch looks for files with os.walk: no dir link
    for path in (REPO / 'launch').glob('*.launch.*'):
        (share / 'launch' / path.name).symlink_to(path)
    lib = root / 'lib' / 'janusvln_ros'
    lib.mkdir(parents=True)
    for exe in EXECUTABLES:
        (lib / exe).symlink_to(BIN / exe)
    return root


def ros2(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run one ``ros2`` command line to completion."""
    return subprocess.run([ros2_command(), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


class Launch:
    """``ros2 launch ...`` in its own session; output to a log file."""

    def __init__(self, env: dict, log_path: pathlib.Path, *args: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, 'wb')
        self.proc = subprocess.Popen([ros2_command(), 'launch', *args], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors='replace')[-6000:]

    def children(self) -> list:
        import psutil
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def signal(self, sig: int, timeout: float = 30.0) -> int:
        """Send ``sig`` to ``ros2 launch`` only (as ``kill -INT <pid>`` or systemd does)."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)      # whatever is left of this session
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(10)
        self._log.close()


def readme_block(name: str) -> list[str]:
    """The ``ros2`` lines of the README block ``<!-- NAME-begin -->`` (without ``ros2 ``)."""
    text = (REPO / 'README.md').read_text()
    block = re.search(rf'<!-- {name}-begin -->\n```bash\n(.*?)```\n<!-- {name}-end -->', text,
                      re.S)
    assert block, f'README.md has no {name} block'
    lines = [ln.strip() for ln in block.group(1).splitlines() if ln.strip()]
    assert all(ln.startswith('ros2 ') for ln in lines), lines
    return [ln[len('ros2 '):] for ln in lines]
