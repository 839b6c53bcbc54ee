"""The launch file, run through the test-only stand-in runner (real ROS launch is absent here)."""

import pathlib
import signal
import subprocess
import sys
import time

from geometry_msgs.msg import Twist
import pytest
import rclpy

REPO = pathlib.Path(__file__).resolve().parents[2]
RUNNER = REPO / 'test' / 'run_launch.py'
LAUNCH = REPO / 'launch' / 'janusvln.launch.py'
sys.path.insert(0, str(REPO / 'test' / 'ros'))

from janus_ros_testutil import Driver  # noqa: E402,I100,I202


def run_plan(*args):
    out = subprocess.run([sys.executable, str(RUNNER), str(LAUNCH), *args, '--print'],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip().splitlines()


def test_launch_plan_resolves_arguments():
    (cmd,) = run_plan(f'params_file:={REPO}/config/janusvln.yaml', 'namespace:=robot',
                      'image_topic:=camera/image_raw', 'cmd_vel_topic:=/robot/nav_cmd_vel',
                      'model_path:=/models/tiny', 'device:=cuda:1', 'autostart:=false',
                      'log_level:=debug', 'use_sim_time:=true')
    args = cmd.split()
    assert args[0].endswith('janusvln_node') and args[1] == '--ros-args'
    for pair in (['--log-level', 'debug'], ['-r', '__node:=janusvln'], ['-r', '__ns:=/robot'],
                 ['--params-file', f'{REPO}/config/janusvln.yaml'],
                 ['-p', 'model_path:=/models/tiny'], ['-p', 'device:=cuda:1'],
                 ['-p', 'autostart:=false'], ['-p', 'use_sim_time:=true'],
                 ['-r', 'image_raw:=camera/image_raw'], ['-r', 'cmd_vel:=/robot/nav_cmd_vel']):
        i = args.index(pair[1])
        assert args[i - 1] == pair[0], (pair, cmd)
    # empty model_path/device leave the params file's values alone
    (cmd,) = run_plan(f'params_file:={REPO}/config/janusvln.yaml')
    assert 'model_path:=' not in cmd and 'device:=' not in cmd and '__ns' not in cmd
    with pytest.raises(subprocess.CalledProcessError):
        run_plan('no_such_argument:=1')


def test_launch_starts_node_in_namespace_with_remaps(tmp_path):
    params = tmp_path / 'params.yaml'
    params.write_text('/**/janusvln:\n  ros__parameters:\n    engine: scripted\n'
                      '    script: MOVE_FORWARD\n    linear_speed_mps: 0.5\n')
    log = open(tmp_path / 'launch.log', 'wb')
    proc = subprocess.Popen([sys.executable, str(RUNNER), str(LAUNCH), f'params_file:={params}',
                             'namespace:=robot', 'image_topic:=camera/image_raw',
                             'cmd_vel_topic:=/robot/nav_cmd_vel'],
                            stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    driver = None
    try:
        driver = Driver(namespace='robot', name='launch_driver')
        cmds = []
        driver.node.create_subscription(Twist, '/robot/nav_cmd_vel', cmds.append, 10)
        cam = driver.node.create_publisher(driver.image_pub.msg_type, '/robot/camera/image_raw',
                                           1)
        driver.image_pub = cam
        resp = driver.instruct('go forward')       # /robot/set_instruction, autostart default
        assert resp.accepted, resp.message
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15 and not any(c.linear.x > 0 for c in cmds):
            driver.publish_frame(1)
            time.sleep(0.05)
        assert any(c.linear.x == pytest.approx(0.5) for c in cmds)   # value from params file
        assert not driver.cmds                                        # nothing on the default
    finally:
        if driver is not None:
            driver.close()
        rclpy.try_shutdown()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(20)
        log.close()
    assert rc == 0, (tmp_path / 'launch.log').read_text()[-3000:]
