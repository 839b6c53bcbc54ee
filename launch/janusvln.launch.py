r"""Launch the janusvln navigation node (standard launch / launch_ros API; runs under ros2 launch).

Arguments (``ros2 launch janusvln_ros janusvln.launch.py --show-args`` lists them):

* ``params_file``: YAML with the node parameters (default: the installed ``config/janusvln.yaml``);
* ``engine``, ``script``, ``model_path``, ``device``, ``dtype``, ``mode``, ``motion_mode``: the
  node parameters of the same names; an empty value (the default) keeps the params file's value;
* ``namespace``; ``image_topic``, ``cmd_vel_topic``, ``odom_topic``: remappings of ``image_raw``,
  ``cmd_vel`` and ``odom``;
* ``autostart``: ``true`` (the node configures and activates itself), ``false`` (it stays
  unconfigured: ``ros2 lifecycle set``), or ``launch`` (this launch file drives configure and
  activate through launch_ros' lifecycle events, the node's ``autostart`` parameter off);
* ``log_level`` and ``use_sim_time``.

Real ``ros2 launch`` accepts unknown arguments silently (``engnie:=scripted`` does nothing): check
the names with ``--show-args``. Stop a launch with SIGINT (Ctrl-C): SIGTERM ends ``ros2 launch``
without stopping its children (ros2/launch#666); the node then stops the robot by itself.

Example::

    ros2 launch janusvln_ros janusvln.launch.py model_path:=/models/JanusVLN_Extra \\
        device:=cuda dtype:=bfloat16 image_topic:=/camera/color/image_raw cmd_vel_topic:=/cmd_vel
"""

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, OpaqueFunction,
                            RegisterEventHandler)
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

TRUE_WORDS = ('true', '1', 'yes', 'on')
AUTOSTART_CHOICES = ['true', 'false', 'launch']
# Launch argument -> node parameter of the same name, left out when empty (params file wins).
STRING_OVERRIDES = {
    'engine': "'janusvln', 'reference', 'scripted' or 'package.module:Class'",
    'script': "scripted engine: comma-separated actions, e.g. 'MOVE_FORWARD,TURN_LEFT'",
    'model_path': 'checkpoint directory',
    'device': 'cpu, cuda or cuda:N',
    'dtype': 'float32, bfloat16 or float16',
    'mode': "semantic memory of the 'janusvln' engine: parity or streaming",
    'motion_mode': 'timed (open loop) or odometry (closed loop on odom_topic)',
}


def _node(context, *args, **kwargs):
    """Build the node once the arguments are known (empty overrides are left out)."""
    overrides = {}
    for name in STRING_OVERRIDES:
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = ParameterValue(value, value_type=str)
    autostart = LaunchConfiguration('autostart').perform(context).lower()
    from_launch = autostart == 'launch'
    overrides['autostart'] = autostart in TRUE_WORDS
    overrides['use_sim_time'] = LaunchConfiguration('use_sim_time').perform(context).lower() \
        in TRUE_WORDS
    node_class = LifecycleNode if from_launch else Node
    node = node_class(
        package='janusvln_ros',
        executable='janusvln_node',
        name='janusvln',
        namespace=LaunchConfiguration('namespace'),
        parameters=[LaunchConfiguration('params_file'), overrides],
        remappings=[('image_raw', LaunchConfiguration('image_topic')),
                    ('cmd_vel', LaunchConfiguration('cmd_vel_topic')),
                    ('odom', LaunchConfiguration('odom_topic'))],
        ros_arguments=['--log-level', LaunchConfiguration('log_level')],
        output='screen',
    )
    if not from_launch:
        return [node]

    def change_state(transition_id):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                           transition_id=transition_id))
    return [
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, goal_state='inactive',
            entities=[change_state(Transition.TRANSITION_ACTIVATE)])),
        node,
        change_state(Transition.TRANSITION_CONFIGURE),
    ]


def generate_launch_description():
    """Declare the arguments and the node."""
    default_params = PathJoinSubstitution(
        [FindPackageShare('janusvln_ros'), 'config', 'janusvln.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='YAML file with the node parameters'),
        *[DeclareLaunchArgument(name, default_value='',
                                description=f'{text} (empty: the params file value)')
          for name, text in STRING_OVERRIDES.items()],
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its topics'),
        DeclareLaunchArgument('image_topic', default_value='image_raw',
                              description='camera topic (sensor_msgs/Image)'),
        DeclareLaunchArgument('cmd_vel_topic', default_value='cmd_vel',
                              description='velocity command topic'),
        DeclareLaunchArgument('odom_topic', default_value='odom',
                              description='odometry topic (nav_msgs/Odometry)'),
        DeclareLaunchArgument('autostart', default_value='true', choices=AUTOSTART_CHOICES,
                              description='true: the node configures and activates itself; '
                              'launch: this launch file does it; false: neither'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='debug, info, warn, error'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='use /clock (simulation)'),
        OpaqueFunction(function=_node),
    ])
