r"""Run janusvln_node in gz sim Harmonic (needs ros_gz; not runnable on the project machines).

Starts gz sim with ``config/janusvln_world.sdf`` (a generated house and a diff-drive robot with a
camera), ``ros_gz_bridge`` with ``config/gz_bridge.yaml`` (/clock, /camera/image_raw,
/camera/camera_info, /cmd_vel, /odom, /ground_truth/odom, /tf), and the node through
``janusvln.launch.py`` with ``use_sim_time`` and its topics remapped to the bridge's.

Arguments: ``world`` (SDF file), ``headless`` (server only, EGL rendering), ``model_path``,
``device``, ``params_file``. Example::

    ros2 launch janusvln_ros gazebo.launch.py model_path:=/models/JanusVLN_Extra device:=cuda
    ros2 service call /set_instruction janusvln_interfaces/srv/SetInstruction \
        "{instruction: 'Turn left and leave the living room...', reset_memory: true}"
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

TRUE_WORDS = ('true', '1', 'yes', 'on')


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
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, 'launch',
                                                            'janusvln.launch.py'])),
        launch_arguments={
            'image_topic': '/camera/image_raw',
            'cmd_vel_topic': '/cmd_vel',
            'use_sim_time': 'true',
            'model_path': LaunchConfiguration('model_path'),
            'device': LaunchConfiguration('device'),
            'params_file': LaunchConfiguration('params_file'),
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
        OpaqueFunction(function=_gz_sim),
        bridge,
        node,
    ])
