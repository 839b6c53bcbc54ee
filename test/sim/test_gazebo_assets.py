"""The Gazebo files parse and agree on topic names with each other and with the node.

gz sim and ros_gz are not installable here, so nothing is launched.
"""

import ast
import math
import pathlib
import xml.etree.ElementTree as ElementTree

import pytest
import yaml

from janusvln_ros.sim.episodes import find_episode, load_episodes
from janusvln_ros.sim.sdf import TOPICS, world_sdf

REPO = pathlib.Path(__file__).resolve().parents[2]
SDF = REPO / 'config' / 'janusvln_world.sdf'
BRIDGE = REPO / 'config' / 'gz_bridge.yaml'


@pytest.fixture(scope='module')
def world():
    return ElementTree.parse(SDF).getroot()


def _plugin(world, name):
    found = [p for p in world.iter('plugin') if p.get('name') == name]
    assert len(found) == 1, name
    return found[0]


def test_shipped_world_is_the_generated_one():
    assert SDF.read_text() == world_sdf(find_episode(load_episodes(), 'ep10'))


def test_world_has_robot_camera_and_systems(world):
    assert world.tag == 'sdf'
    names = {p.get('name') for p in world.iter('plugin')}
    for system in ('Physics', 'Sensors', 'SceneBroadcaster', 'UserCommands', 'DiffDrive',
                   'OdometryPublisher'):
        assert f'gz::sim::systems::{system}' in names
    sensor = next(world.iter('sensor'))
    assert sensor.get('type') == 'camera'
    assert sensor.findtext('topic') == '/camera/image_raw'
    camera = sensor.find('camera')
    assert camera.findtext('camera_info_topic') == '/camera/camera_info'
    assert float(camera.findtext('horizontal_fov')) == pytest.approx(math.radians(79), abs=1e-4)
    drive = _plugin(world, 'gz::sim::systems::DiffDrive')
    assert drive.findtext('topic') == '/cmd_vel' and drive.findtext('odom_topic') == '/odom'
    joints = {j.get('name') for j in world.iter('joint')}
    assert {drive.findtext('left_joint'), drive.findtext('right_joint')} <= joints
    truth = _plugin(world, 'gz::sim::systems::OdometryPublisher')
    assert truth.findtext('odom_topic') == '/ground_truth/odom'
    models = {m.get('name') for m in world.iter('model')}
    assert {'house', 'vln_bot', 'ground_plane'} <= models
    assert len(list(world.iter('collision'))) > 30  # walls and furniture collide


def test_bridge_config_matches_the_world():
    entries = yaml.safe_load(BRIDGE.read_text())
    by_topic = {e['ros_topic_name']: e for e in entries}
    for e in entries:
        assert {'ros_topic_name', 'gz_topic_name', 'ros_type_name', 'gz_type_name',
                'direction'} <= set(e)
        assert e['ros_topic_name'] == e['gz_topic_name']
    assert set(TOPICS.values()) | {'/clock'} == set(by_topic)
    assert by_topic['/cmd_vel']['direction'] == 'ROS_TO_GZ'
    assert all(e['direction'] == 'GZ_TO_ROS' for t, e in by_topic.items() if t != '/cmd_vel')
    assert by_topic['/camera/image_raw']['ros_type_name'] == 'sensor_msgs/msg/Image'
    assert by_topic['/cmd_vel']['ros_type_name'] == 'geometry_msgs/msg/Twist'


def _string_dicts(path):
    """All dict literals with string keys and string values in a Python file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        keys = [k for k in node.keys if k is not None] if isinstance(node, ast.Dict) else []
        if keys and all(isinstance(k, ast.Constant) for k in keys):      # None: a **spread
            out.append({k.value: v.value for k, v in zip(node.keys, node.values)
                        if k is not None and isinstance(v, ast.Constant)})
    return out


@pytest.mark.parametrize('launch_file', ['gazebo.launch.py', 'sim.launch.py'])
def test_launch_files_remap_the_node_onto_the_simulator_topics(launch_file):
    path = REPO / 'launch' / launch_file
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description'
               for n in tree.body)
    args = [d for d in _string_dicts(path) if 'image_topic' in d]
    assert args == [{'image_topic': '/camera/image_raw', 'cmd_vel_topic': '/cmd_vel',
                     'odom_topic': '/odom', 'use_sim_time': 'true'}]
    # janusvln.launch.py turns those arguments into remappings of the node's own names.
    node_launch = (REPO / 'launch' / 'janusvln.launch.py').read_text()
    assert "('image_raw', LaunchConfiguration('image_topic'))" in node_launch
    assert "('cmd_vel', LaunchConfiguration('cmd_vel_topic'))" in node_launch
    assert "('odom', LaunchConfiguration('odom_topic'))" in node_launch


def test_node_and_bridge_use_the_same_names():
    node_src = (REPO / 'janusvln_ros' / 'ros' / 'janusvln_node.py').read_text()
    for name in ("'image_raw'", "'cmd_vel'", "'odom'", "'set_instruction'", "'status'"):
        assert name in node_src
    bridge_src = (REPO / 'janusvln_ros' / 'sim' / 'bridge_node.py').read_text()
    for name in ("'camera/image_raw'", "'camera/camera_info'", "'cmd_vel'", "'odom'",
                 "'ground_truth/odom'", "'/clock'"):
        assert name in bridge_src
