"""The shipped launch files under real ``ros2 launch``: arguments, remaps, lifecycle, SIGINT.

Each launch is stopped the way the README says (SIGINT to ``ros2 launch``): exit 0, every child
finished cleanly, and the last velocity command is zero (linear and angular).
"""

import shlex
import signal

from geometry_msgs.msg import Twist
from janus_ros_testutil import Driver
from janusvln_interfaces.msg import NavigationStatus
from nav_msgs.msg import Odometry
import pytest
from rcl_interfaces.srv import GetParameters
from rclpy.qos import qos_profile_sensor_data
from ros2_tools_util import readme_block, ros2, wait_until

ZERO = Twist()


def stop_with_sigint(launch, cmds, nodes):
    rc = launch.signal(signal.SIGINT)
    log = launch.log()
    assert rc == 0, log
    assert log.count('process has finished cleanly') == nodes and 'process has died' not in log, \
        log
    assert wait_until(lambda: cmds and cmds[-1] == ZERO, 10), (cmds[-3:], log)


def params_of(driver, node, names):
    client = driver.node.create_client(GetParameters, f'{node}/get_parameters')
    values = driver.call(client, GetParameters.Request(names=names)).values
    driver.node.destroy_client(client)
    return [v.string_value if v.type == 4 else v.bool_value for v in values]


@pytest.mark.parametrize('launch_file, names', [
    ('janusvln.launch.py', ['params_file', 'engine', 'script', 'model_path', 'device', 'dtype',
                            'mode', 'motion_mode', 'namespace', 'image_topic', 'cmd_vel_topic',
                            'odom_topic', 'autostart', 'log_level', 'use_sim_time']),
    ('sim.launch.py', ['episode_id', 'width', 'height', 'model_path', 'device', 'params_file',
                       'engine', 'script', 'dtype', 'mode', 'motion_mode', 'autostart']),
    ('gazebo.launch.py', ['world', 'headless', 'model_path', 'device', 'params_file', 'engine',
                          'script', 'dtype', 'mode', 'motion_mode', 'autostart']),
])
def test_show_args_lists_the_arguments(ros2_env, launch_file, names):
    out = ros2(ros2_env, 'launch', 'janusvln_ros', launch_file, '--show-args')
    assert out.returncode == 0, out.stderr
    shown = [line.strip().strip(':').strip("'") for line in out.stdout.splitlines()
             if line.startswith("    '")]
    assert shown == names


def test_gazebo_launch_description_prints(ros2_env):
    """Print the description (gz sim cannot run here): the bridge and the node file."""
    out = ros2(ros2_env, 'launch', '-p', 'janusvln_ros', 'gazebo.launch.py', 'engine:=scripted')
    assert out.returncode == 0, out.stderr
    assert "ExecInPkg(pkg='ros_gz_bridge', exec='parameter_bridge')" in out.stdout
    last = out.stdout.splitlines()[-1]             # the node, through janusvln.launch.py
    assert 'include_launch_description.IncludeLaunchDescription' in last, out.stdout


def test_janusvln_launch_arguments_namespace_remaps_then_sigint(launcher, ros_context, tmp_path):
    params = tmp_path / 'params.yaml'
    params.write_text('/**/janusvln:\n  ros__parameters:\n    engine: janusvln\n'
                      '    script: MOVE_FORWARD\n    linear_speed_mps: 0.5\n'
                      '    angular_speed_radps: 1.5\n')
    # engine:=scripted overrides the file's 'janusvln' (which could not configure without a
    # checkpoint); script:= overrides the file's script (TURN_LEFT only comes from the argument).
    launch = launcher('janusvln_ros', 'janusvln.launch.py', f'params_file:={params}',
                      'namespace:=robot', 'image_topic:=camera/image_raw',
                      'cmd_vel_topic:=/robot/nav_cmd_vel', 'engine:=scripted',
                      'script:=MOVE_FORWARD,TURN_LEFT', 'no_such_argument:=1')
    driver = Driver(namespace='robot', name='launch_driver')
    try:
        cmds = []
        driver.node.create_subscription(Twist, '/robot/nav_cmd_vel', cmds.append, 50)
        driver.image_pub = driver.node.create_publisher(driver.image_pub.msg_type,
                                                        '/robot/camera/image_raw', 1)
        assert wait_until(driver.get_state.service_is_ready, 60), launch.log()
        assert wait_until(lambda: driver.state() == 'active', 60), launch.log()
        assert params_of(driver, 'janusvln', ['engine', 'script']) == [
            'scripted', 'MOVE_FORWARD,TURN_LEFT']
        driver.start_camera(20)
        resp = driver.instruct('go forward then left')        # /robot/set_instruction
        assert resp.accepted, resp.message
        assert wait_until(lambda: any(c.linear.x == pytest.approx(0.5) for c in cmds)
                          and any(c.angular.z == pytest.approx(1.5) for c in cmds), 30), \
            launch.log()
        assert not driver.cmds                              # nothing on /robot/cmd_vel
        stop_with_sigint(launch, cmds, nodes=1)
    finally:
        driver.close()


def test_lifecycle_driven_by_the_launch_file_and_odometry_remap(launcher, ros_context):
    launch = launcher('janusvln_ros', 'janusvln.launch.py', 'namespace:=robot2',
                      'autostart:=launch', 'engine:=scripted', 'mode:=streaming',
                      'dtype:=bfloat16', 'motion_mode:=odometry',
                      'odom_topic:=/robot2/wheel_odom')
    driver = Driver(namespace='robot2', name='lifecycle_driver')
    try:
        cmds = []
        driver.node.create_subscription(Twist, '/robot2/cmd_vel', cmds.append, 50)
        assert wait_until(driver.get_state.service_is_ready, 60), launch.log()
        # the node's own autostart is off: configure and activate came from the launch file
        assert wait_until(lambda: driver.state() == 'active', 60), launch.log()
        assert params_of(driver, 'janusvln',
                         ['autostart', 'engine', 'mode', 'dtype', 'motion_mode']) == [
            False, 'scripted', 'streaming', 'bfloat16', 'odometry']

        def odom_topics():
            subs = driver.node.get_subscriber_names_and_types_by_node('janusvln', '/robot2')
            return [name for name, types in subs if 'nav_msgs/msg/Odometry' in types]
        assert wait_until(lambda: odom_topics() == ['/robot2/wheel_odom'], 20), odom_topics()
        # never moved: the zero Twist on shutdown is the first message; let discovery finish
        assert wait_until(lambda: driver.node.count_publishers('/robot2/cmd_vel') == 1, 20)
        stop_with_sigint(launch, cmds, nodes=1)
    finally:
        driver.close()


def test_sim_launch_readme_lines_drive_the_robot_then_sigint(launcher, ros_context, ros2_env):
    """The README's sim block, as written: the scripted node drives the MuJoCo robot."""
    launch_line, echo_episode, instruct, echo_status = readme_block('ros2-sim')
    assert launch_line.startswith('launch janusvln_ros sim.launch.py ')
    launch = launcher(*shlex.split(launch_line)[1:])
    driver = Driver(name='sim_driver')
    try:
        poses, cmds = [], []
        driver.node.create_subscription(Twist, '/cmd_vel', cmds.append, 50)
        driver.node.create_subscription(
            Odometry, '/ground_truth/odom',
            lambda m: poses.append((m.pose.pose.position.x, m.pose.pose.position.y)),
            qos_profile_sensor_data)
        assert wait_until(driver.set_instruction.service_is_ready, 60), launch.log()
        assert wait_until(lambda: driver.state() == 'active', 60), launch.log()
        assert wait_until(lambda: poses, 30), launch.log()
        # the CLI looks the topic up once: under load its graph may lag the bridge's start
        outs = []
        assert wait_until(lambda: outs.append(ros2(ros2_env, *shlex.split(echo_episode)))
                          or outs[-1].returncode == 0, 60, poll=1.0), outs[-1]
        out = outs[-1]
        assert out.stdout.startswith('data: '), out
        out = ros2(ros2_env, *shlex.split(instruct))
        assert out.returncode == 0 and 'accepted=True' in out.stdout, out
        # the bridge's camera feeds the node; the node's commands move the simulated robot
        assert wait_until(lambda: any(c.linear.x > 0 for c in cmds)
                          and any(c.angular.z > 0 for c in cmds), 60), launch.log()
        start = poses[0]
        assert wait_until(lambda: abs(poses[-1][0] - start[0]) + abs(poses[-1][1] - start[1])
                          > 0.05, 30), (start, poses[-1])
        out = ros2(ros2_env, *shlex.split(echo_status))
        assert out.returncode == 0, out
        assert f'state: {NavigationStatus.NAVIGATING}' in out.stdout, out.stdout
        assert 'instruction: walk past the sofa' in out.stdout, out.stdout
        stop_with_sigint(launch, cmds, nodes=2)
    finally:
        driver.close()
