r"""Run janusvln_node in gz sim Harmonic (needs ros_gz; not runnable on the project machines).

Starts gz sim with ``config/janusvln_world.sdf`` (a generated house and a diff-drive robot with a
camera), ``ros_gz_bridge`` with ``config/gz_bridge.yaml`` (/clock, /camera/image_raw,
/camera/camera_info, /cmd_vel, /odom, /ground_truth/odom, /tf), and the node through
``janusvln.launch.py`` with ``use_sim_time`` and its topics remapped to the bridge's.

Arguments: ``world`` (SDF file), ``headless`` (server only, EGL rendering), and for the node
``params_file``, ``engine``, ``script``, ``model_path``, ``device``, ``dtype``, ``mode``,
``motion_mode`` (odometry on the bridge's /odom), ``autostart`` (see janusvln.launch.py).
Example::

    ros2 launch janusvln_ros gazebo.launch.py model_path:=/models/JanusVLN_Extra device:=cuda
    ros2 service call /set_instruction janusvln_interfaces/srv/SetInstruction \
        "{instruction: 'Turn left and leave the living room...', reset_memory: true}"
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import (LaunchConfiguration, PathJoinSubstitution,
                                  ThisLaunchFileDir)
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

TRUE_WORDS = ('true', '1', 'yes', 'on')

# Passed on to janusvln.launch.py (empty: the params file's value).
PASSED_ON = {
    'engine': "'janusvln', 'reference', 'scripted' or 'package.module:Class'",
    'script': 'scripted engine: comma-separated actions',
    'dtype': 'float32, bfloat16 or float16',
    'mode': 'parity or streaming',
    'motion_mode': 'timed or odometry (on /odom)',
}


def _gz_sim(context, *args, **kwargs):
    """Include gz_sim.launch.py with the world, headless or with the GUI."""
    world = LaunchConfiguration('world').perform(context)
    headless = LaunchConfiguration('headless').perform(context).lower() in TRUE_WORDS
    gz_args = f'-r -s --headless-rendering {world}' if headless else f'-r {world}'
    return [IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('ros_gz_sim'), 'launch', 'gz_sim.launch.py'])),
        launch_arguments={'gz_args': gz_args}.items())]


def generate_launch_description():
    """Declare the arguments, gz sim, the bridge and the node."""
    share = FindPackageShare('janusvln_ros')
    bridge = Node(
        package='ros_gz_bridge',
        executable='parameter_bridge',
        name='gz_bridge',
        parameters=[{'config_file': PathJoinSubstitution([share, 'config', 'gz_bridge.yaml']),
                     'use_sim_time': True}],
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
        DeclareLaunchArgument('world', default_value=PathJoinSubstitution(
            [share, 'config', 'janusvln_world.sdf']), description='SDF world file'),
        DeclareLaunchArgument('headless', default_value='false',
                              description='run the gz server only (EGL rendering)'),
        DeclareLaunchArgument('model_path', default_value='', description='checkpoint dir'),
        DeclareLaunchArgument('device', default_value='', description='cpu, cuda or cuda:N'),
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [share, 'config', 'janusvln.yaml']), description='node parameters'),
        *[DeclareLaunchArgument(name, default_value='', description=text)
          for name, text in PASSED_ON.items()],
        DeclareLaunchArgument('autostart', default_value='true',
                              choices=['true', 'false', 'launch'],
                              description='who configures and activates the node: itself '
                              '(true), nobody (false) or the launch file (launch)'),
        OpaqueFunction(function=_gz_sim),
        bridge,
        node,
    ])
