r"""Run janusvln_node in the built-in MuJoCo world (sim_bridge_node), as ``janusvln demo`` does.

Starts ``sim_bridge_node`` (publishes /camera/image_raw, /camera/camera_info, /odom,
/ground_truth/odom, /clock and /episode/instruction; subscribes /cmd_vel) and the node through
``janusvln.launch.py`` with ``use_sim_time`` and its image, cmd_vel and odom topics remapped to
the bridge's.

Arguments: ``episode_id`` (default ``val_unseen-5000-s0-g0-coarse``, a house never used in
training; ``ep00``..``ep19`` are the built-in set), ``width``/``height`` (camera, 640x480), and
for the node ``params_file``, ``engine``, ``script``, ``model_path``, ``device``, ``dtype``,
``mode``, ``motion_mode``, ``autostart`` (see janusvln.launch.py). Unknown arguments are accepted
silently by ``ros2 launch``. Example::

    ros2 launch janusvln_ros sim.launch.py   # the navigator shipped with the package
    ros2 launch janusvln_ros sim.launch.py model_path:=/models/my_checkpoint
    ros2 topic echo --once /episode/instruction
    ros2 service call /set_instruction janusvln_interfaces/srv/SetInstruction \
        "{instruction: '<the instruction>', reset_memory: true}"
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import (LaunchConfiguration, PathJoinSubstitution,
                                  ThisLaunchFileDir)
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# Passed on to janusvln.launch.py (empty: the params file's value).
PASSED_ON = {
    'engine': "'janusvln', 'reference', 'scripted' or 'package.module:Class'",
    'script': 'scripted engine: comma-separated actions',
    'dtype': 'float32, bfloat16 or float16',
    'mode': 'parity or streaming',
    'motion_mode': 'timed or odometry (on /odom)',
}


def generate_launch_description():
    """Declare the arguments, the simulator and the node."""
    share = FindPackageShare('janusvln_ros')
    bridge = Node(
        package='janusvln_ros',
        executable='sim_bridge_node',
        name='sim_bridge',
        parameters=[{
            'episode_id': LaunchConfiguration('episode_id'),
            'width': ParameterValue(LaunchConfiguration('width'), value_type=int),
            'height': ParameterValue(LaunchConfiguration('height'), value_type=int),
        }],
        output='screen',
    )
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([ThisLaunchFileDir(),
                                                            'janusvln.launch.py'])),
        launch_arguments={
            'image_topic': '/camera/image_raw',
            'cmd_vel_topic': '/cmd_vel',
            'odom_topic': '/odom',
            'use_sim_time': 'true',
            'model_path': LaunchConfiguration('model_path'),
            'device': LaunchConfiguration('device'),
            'params_file': LaunchConfiguration('params_file'),
            'autostart': LaunchConfiguration('autostart'),
            **{name: LaunchConfiguration(name) for name in PASSED_ON},
        }.items())
    return LaunchDescription([
        DeclareLaunchArgument('episode_id', default_value='val_unseen-5000-s0-g0-coarse',
                              description='episode id (val_unseen-*, or built-in ep00..ep19)'),
        DeclareLaunchArgument('width', default_value='640', description='camera width'),
        DeclareLaunchArgument('height', default_value='480', description='camera height'),
        DeclareLaunchArgument('model_path', default_value='janusvln_ros:navigator',
                              description="checkpoint dir; 'janusvln_ros:navigator' = the "
                              'navigator trained in this world (simulation only)'),
        DeclareLaunchArgument('device', default_value='', description='cpu, cuda or cuda:N'),
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [share, 'config', 'janusvln.yaml']), description='node parameters'),
        *[DeclareLaunchArgument(name, default_value='', description=text)
          for name, text in PASSED_ON.items()],
        DeclareLaunchArgument('autostart', default_value='true',
                              choices=['true', 'false', 'launch'],
                              description='who configures and activates the node: itself '
                              '(true), nobody (false) or the launch file (launch)'),
        bridge,
        node,
    ])
