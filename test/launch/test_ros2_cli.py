"""The README's ``ros2`` operator lines, read from the README and run as written, in order.

The block between ``<!-- ros2-cli-begin -->`` and ``<!-- ros2-cli-end -->`` starts the node with
``ros2 launch`` in namespace ``robot`` and drives it with the real CLI. Every line needs an entry
in ``EXPECT`` here (what its output must contain), so the README and this test cannot drift apart.
"""

import shlex
import signal
import subprocess

from geometry_msgs.msg import Twist
from janus_ros_testutil import Driver
from janusvln_interfaces.msg import NavigationStatus
import pytest
from ros2_tools_util import readme_block, ros2, ros2_command, wait_until

INSTRUCTION = 'go to the kitchen and stop by the fridge'
# README line (after 'ros2 ') -> (stream, text the output must contain)
EXPECT = {
    'lifecycle get /robot/janusvln': ('stdout', 'active [3]'),
    'service call /robot/set_instruction janusvln_interfaces/srv/SetInstruction '
    f'"{{instruction: \'{INSTRUCTION}\', reset_memory: true}}"': ('stdout', 'accepted=True'),
    'topic echo --once /robot/status': ('stdout', f'instruction: {INSTRUCTION}'),
    'service call /robot/cancel std_srvs/srv/Trigger': ('stdout', 'success=True'),
    'action send_goal --feedback /robot/navigate janusvln_interfaces/action/Navigate '
    f'"{{instruction: \'{INSTRUCTION}\'}}"': ('stdout', 'Goal finished with status:'),
    'param get /robot/janusvln linear_speed_mps': ('stdout', 'Double value is: 0.25'),
    'param set /robot/janusvln linear_speed_mps 0.4': ('stdout', 'Set parameter successful'),
    'param set /robot/janusvln turn_angle_deg 270.0': (
        'stderr', 'Setting parameter failed: turn_angle_deg: expected <= 180, got 270.0'),
    'param set /robot/janusvln engine scripted': (
        'stderr', 'Setting parameter failed: Trying to set a read-only parameter: engine.'),
    'lifecycle set /robot/janusvln deactivate': ('stdout', 'Transitioning successful'),
    'lifecycle set /robot/janusvln activate': ('stdout', 'Transitioning successful'),
}
CANCEL = 'service call /robot/cancel std_srvs/srv/Trigger'


def readme_lines():
    return readme_block('ros2-cli')


def test_readme_block_and_expectations_match():
    lines = readme_lines()
    assert lines[0].startswith('launch janusvln_ros janusvln.launch.py ')
    assert set(lines[1:]) == set(EXPECT), set(lines[1:]) ^ set(EXPECT)


def check(out, line):
    stream, text = EXPECT[line]
    assert out.returncode == 0, (line, out.stdout, out.stderr)
    assert text in getattr(out, stream), (line, out.stdout, out.stderr)


def test_readme_ros2_lines_against_the_launched_node(launcher, ros_context, ros2_env):
    lines = readme_lines()
    launch = launcher(*shlex.split(lines[0])[1:])
    driver = Driver(namespace='robot', name='cli_driver')
    try:
        cmds = []
        driver.node.create_subscription(Twist, '/robot/cmd_vel', cmds.append, 50)
        driver.image_pub = driver.node.create_publisher(driver.image_pub.msg_type,
                                                        '/camera/image_raw', 1)
        assert wait_until(driver.set_instruction.service_is_ready, 60), launch.log()
        driver.start_camera(20)
        # The verbs ask the CLI's graph daemon (started here as the first verb would); like an
        # operator right after start-up, wait until it has discovered the node.
        assert ros2(ros2_env, 'daemon', 'start').returncode == 0
        assert wait_until(lambda: '/robot/janusvln' in ros2(ros2_env, 'node', 'list').stdout,
                          60, poll=0.5)
        for line in lines[1:]:
            args = shlex.split(line)
            if line.startswith('action send_goal'):
                run_goal_then_cancel(ros2_env, line, args, driver)
                continue
            out = ros2(ros2_env, *args)
            check(out, line)
            if line.startswith('service call /robot/set_instruction'):
                assert wait_until(lambda: any(c.linear.x > 0 for c in cmds), 30)
            if line.startswith('topic echo'):
                assert f'state: {NavigationStatus.NAVIGATING}' in out.stdout, out.stdout
            if line == CANCEL:
                assert 'cancelled' in out.stdout, out.stdout
                assert wait_until(lambda: cmds[-1] == Twist(), 10)
            if line.endswith('deactivate'):
                assert 'inactive [2]' in ros2(ros2_env, 'lifecycle', 'get', '/robot/janusvln'
                                              ).stdout
                assert wait_until(lambda: cmds[-1] == Twist(), 10)
        out = ros2(ros2_env, 'param', 'get', '/robot/janusvln', 'linear_speed_mps')
        assert 'Double value is: 0.4' in out.stdout, out
        assert ros2(ros2_env, 'lifecycle', 'get', '/robot/janusvln').stdout.strip() == \
            'active [3]'
        rc = launch.signal(signal.SIGINT)
        assert rc == 0, launch.log()
        assert wait_until(lambda: cmds and cmds[-1] == Twist(), 10)
    finally:
        driver.close()


def run_goal_then_cancel(env, line, args, driver):
    """``send_goal --feedback`` streams feedback; the README's cancel line ends the goal."""
    before = max([s.episode_id for s in driver.status], default=0)
    goal = subprocess.Popen([ros2_command(), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        seen = driver.wait_status(lambda s: s.episode_id > before and s.step >= 2
                                  and s.state == NavigationStatus.NAVIGATING, 60)
        assert seen, 'the goal did not start an episode'
        assert seen.instruction == INSTRUCTION
        cancel = ros2(env, *shlex.split(CANCEL))
        check(cancel, CANCEL)
        out, err = goal.communicate(timeout=60)
    finally:
        if goal.poll() is None:
            goal.kill()
            goal.communicate()
    result = subprocess.CompletedProcess(args, goal.returncode, out, err)
    check(result, line)
    assert 'Feedback:' in out and 'Goal accepted' in out, out


@pytest.mark.parametrize('line', ['launch janusvln_ros janusvln.launch.py --show-args'])
def test_readme_launch_line_arguments_exist(ros2_env, line):
    """Each ``name:=value`` of the README's launch line is a declared argument (no typo)."""
    declared = ros2(ros2_env, *shlex.split(line)).stdout
    for arg in shlex.split(readme_lines()[0])[3:]:
        assert f"'{arg.split(':=')[0]}':" in declared, arg
