r"""Launch the janusvln navigation node (standard launch / launch_ros API; runs under ros2 launch).

Arguments: ``params_file`` (default: the installed ``config/janusvln.yaml``), ``model_path`` and
``device`` (override the params file when not empty), ``namespace``, ``image_topic`` and
``cmd_vel_topic`` (remappings of ``image_raw`` and ``cmd_vel``), ``autostart`` (configure and
activate on start), ``log_level`` and ``use_sim_time``.

Example::

    ros2 launch janusvln_ros janusvln.launch.py model_path:=/models/JanusVLN_Extra \\
        device:=cuda image_topic:=/camera/color/image_raw cmd_vel_topic:=/cmd_vel
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

TRUE_WORDS = ('true', '1', 'yes', 'on')


def _node(context, *args, **kwargs):
    """Build the node once the arguments are known (empty overrides are left out)."""
    overrides = {}
    for name in ('model_path', 'device'):
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    for name in ('autostart', 'use_sim_time'):
        overrides[name] = LaunchConfiguration(name).perform(context).lower() in TRUE_WORDS
    return [Node(
        package='janusvln_ros',
        executable='janusvln_node',
        name='janusvln',
        namespace=LaunchConfiguration('namespace'),
        parameters=[LaunchConfiguration('params_file'), overrides],
        remappings=[('image_raw', LaunchConfiguration('image_topic')),
                    ('cmd_vel', LaunchConfiguration('cmd_vel_topic'))],
        ros_arguments=['--log-level', LaunchConfiguration('log_level')],
        output='screen',
    )]


def generate_launch_description():
    """Declare the arguments and the node."""
    default_params = PathJoinSubstitution(
        [FindPackageShare('janusvln_ros'), 'config', 'janusvln.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='YAML file with the node parameters'),
        DeclareLaunchArgument('model_path', default_value='',
                              description='checkpoint directory (overrides the params file)'),
        DeclareLaunchArgument('device', default_value='',
                              description='cpu, cuda or cuda:N (overrides the params file)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its topics'),
        DeclareLaunchArgument('image_topic', default_value='image_raw',
                              description='camera topic (sensor_msgs/Image)'),
        DeclareLaunchArgument('cmd_vel_topic', default_value='cmd_vel',
                              description='velocity command topic'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='configure and activate the lifecycle node on start'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='debug, info, warn, error'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='use /clock (simulation)'),
        OpaqueFunction(function=_node),
    ])
