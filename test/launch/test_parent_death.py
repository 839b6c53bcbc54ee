"""SIGTERM and the death of ``ros2 launch`` (ros2/launch#666) stop the robot.

The node stops the episode (STOPPED) and publishes a zero Twist on SIGTERM, and
``janusvln_ros/ros/process_guard.py`` turns the death of its parent process into a SIGTERM.
"""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap

from geometry_msgs.msg import Twist
from janus_ros_testutil import Driver, NodeProcess
from janusvln_interfaces.msg import NavigationStatus
import psutil
import pytest
from ros2_tools_util import wait_until

ZERO = Twist()
REPO = pathlib.Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import pathlib, signal, sys, time
    from janusvln_ros.ros import process_guard
    out = pathlib.Path(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: (out.write_text('SIGTERM'), sys.exit(0)))
    if sys.argv[2] == 'watchdog':
        process_guard._set_pdeathsig = lambda sig: False
    assert process_guard.stop_on_parent_death(poll_s=0.05)
    out.with_suffix('.ready').write_text('')
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
    out.write_text('timeout')
""")
PARENT = textwrap.dedent("""
    import pathlib, subprocess, sys, time
    out = pathlib.Path(sys.argv[1])
    child = subprocess.Popen([sys.executable, '-c', sys.argv[3], *sys.argv[1:3]])
    print(child.pid, flush=True)
    deadline = time.monotonic() + 60
    while not out.with_suffix('.ready').exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    # exits without waiting for the child (dies like a killed launcher)
""")


@pytest.mark.parametrize('way', ['prctl', 'watchdog'])
def test_parent_death_becomes_sigterm(tmp_path, way):
    out = tmp_path / 'child.txt'
    parent = subprocess.run([sys.executable, '-c', PARENT, str(out), way, CHILD],
                            capture_output=True, text=True, timeout=120)
    assert parent.returncode == 0, parent.stderr
    child = int(parent.stdout.split()[0])
    assert wait_until(lambda: out.exists() and out.read_text() == 'SIGTERM', 20), \
        out.read_text() if out.exists() else 'no output'
    assert wait_until(lambda: not psutil.pid_exists(child) or
                      psutil.Process(child).status() == psutil.STATUS_ZOMBIE, 20)


def test_guard_can_be_switched_off(monkeypatch):
    from janusvln_ros.ros import process_guard
    monkeypatch.setenv('JANUSVLN_PARENT_GUARD', '0')
    assert process_guard.stop_on_parent_death() is False


def moving(driver, cmds, timeout=30):
    return wait_until(lambda: any(c.linear.x > 0 for c in cmds)
                      and driver.wait_status(lambda s: s.state == NavigationStatus.NAVIGATING,
                                             0), timeout)


def stopped_last(driver, cmds, timeout=15):
    """The last Twist is zero and the last status says the episode was STOPPED."""
    return wait_until(lambda: cmds and cmds[-1] == ZERO and driver.status
                      and driver.status[-1].state == NavigationStatus.STOPPED, timeout)


def test_sigterm_to_the_node_while_moving(ros_context, tmp_path):
    node = NodeProcess(tmp_path, {'engine': 'scripted', 'autostart': True,
                                  'script': 'MOVE_FORWARD', 'linear_speed_mps': 0.4},
                       extra=['-r', '__ns:=/term'])
    driver = Driver(namespace='term', name='term_driver')
    try:
        cmds = []
        driver.node.create_subscription(Twist, '/term/cmd_vel', cmds.append, 50)
        assert wait_until(driver.set_instruction.service_is_ready, 60), node.log()
        driver.start_camera(20)
        assert driver.instruct('forward').accepted
        assert moving(driver, cmds), node.log()
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(30) == 0, node.log()
        assert stopped_last(driver, cmds), (cmds[-2:], driver.status[-1:], node.log())
    finally:
        driver.close()
        node.kill()


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGKILL])
def test_killed_launch_the_node_stops_the_robot_and_exits(launcher, ros_context, sig):
    ns = f'orphan{int(sig)}'
    launch = launcher('janusvln_ros', 'janusvln.launch.py', f'namespace:={ns}',
                      'engine:=scripted', 'script:=MOVE_FORWARD')
    driver = Driver(namespace=ns, name='orphan_driver')
    try:
        cmds = []
        driver.node.create_subscription(Twist, f'/{ns}/cmd_vel', cmds.append, 50)
        assert wait_until(driver.set_instruction.service_is_ready, 60), launch.log()
        nodes = [p for p in launch.children() if 'janusvln_node' in ' '.join(p.cmdline())]
        assert len(nodes) == 1, launch.children()
        driver.start_camera(20)
        assert driver.instruct('forward').accepted
        assert moving(driver, cmds), launch.log()
        os.kill(launch.proc.pid, sig)               # ros2 launch only, as systemd/docker do
        launch.proc.wait(30)
        gone, alive = psutil.wait_procs(nodes, timeout=30)
        assert not alive, launch.log()
        assert stopped_last(driver, cmds), (cmds[-2:], driver.status[-1:], launch.log())
    finally:
        driver.close()
