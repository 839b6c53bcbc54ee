"""Export a generated house and a diff-drive robot with a camera as a Gazebo (gz sim) SDF world.

For users with gz sim Harmonic and ros_gz (not runnable on the project machines). The house's
MuJoCo geoms become one static model (boxes, cylinders, spheres; textures become flat colours);
the robot is a two-wheeled base with the ``DiffDrive`` and ``OdometryPublisher`` systems and a
forward camera (HFOV 79 degrees, 1.25 m high) publishing the topics of ``config/gz_bridge.yaml``.
The shipped ``config/janusvln_world.sdf`` is
``python -m janusvln_ros.sim.sdf config/janusvln_world.sdf --episode ep10``.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import xml.etree.ElementTree as ElementTree

from janusvln_ros.sim.env import CameraConfig, ROBOT_RADIUS
from janusvln_ros.sim.episodes import Episode, find_episode, house_for, load_episodes
from janusvln_ros.sim.world import House

# Topics (absolute, as in config/gz_bridge.yaml).
TOPICS = {
    'image': '/camera/image_raw', 'camera_info': '/camera/camera_info', 'cmd_vel': '/cmd_vel',
    'odom': '/odom', 'ground_truth': '/ground_truth/odom', 'tf': '/tf',
}
MATERIAL_RGBA = {
    'wood': '0.60 0.40 0.22 1', 'carpet': '0.45 0.45 0.62 1', 'stone': '0.55 0.55 0.55 1',
    'parquet': '0.55 0.37 0.20 1', 'tiles': '0.76 0.79 0.82 1',
}
WHEEL_RADIUS = 0.05
WHEEL_SEPARATION = 0.30


def _geometry(geom: ElementTree.Element) -> str:
    kind = geom.get('type', 'sphere')
    size = [float(v) for v in geom.get('size', '0').split()]
    if kind == 'box':
        return f'<box><size>{2 * size[0]:.4f} {2 * size[1]:.4f} {2 * size[2]:.4f}</size></box>'
    if kind == 'cylinder':
        return f'<cylinder><radius>{size[0]:.4f}</radius><length>{2 * size[1]:.4f}</length>' \
               '</cylinder>'
    return f'<sphere><radius>{size[0]:.4f}</radius></sphere>'


def _house_model(house: House) -> str:
    """The static house model (SDF ``<model>``)."""
    root = ElementTree.fromstring(house.mjcf())
    parts = []
    for k, geom in enumerate(root.find('worldbody').iter('geom')):
        pos = geom.get('pos', '0 0 0')
        material = geom.get('material', '')
        rgba = MATERIAL_RGBA.get(material, '0.50 0.30 0.60 1') if material else geom.get(
            'rgba', '0.5 0.5 0.5 1')
        shape = _geometry(geom)
        parts.append(f'      <visual name="v{k}"><pose>{pos} 0 0 0</pose><geometry>{shape}'
                     f'</geometry><material><ambient>{rgba}</ambient><diffuse>{rgba}</diffuse>'
                     '</material></visual>')
        if geom.get('contype') != '0':
            parts.append(f'      <collision name="c{k}"><pose>{pos} 0 0 0</pose>'
                         f'<geometry>{shape}</geometry></collision>')
    body = '\n'.join(parts)
    return f"""  <model name="house">
    <static>true</static>
    <link name="house_link">
{body}
    </link>
  </model>"""


def _inertial(mass: float, ixx: float) -> str:
    return (f'<inertial><mass>{mass}</mass><inertia><ixx>{ixx}</ixx><iyy>{ixx}</iyy>'
            f'<izz>{ixx}</izz><ixy>0</ixy><ixz>0</ixz><iyz>0</iyz></inertia></inertial>')


def _robot_model(episode: Episode, camera: CameraConfig) -> str:
    """The diff-drive robot (``vln_bot``) at the episode's start pose."""
    x, y, yaw = episode.start
    wheels = []
    for side, sign in (('left', 1), ('right', -1)):
        wheels.append(f"""    <link name="{side}_wheel">
      <pose relative_to="base_link">0 {sign * WHEEL_SEPARATION / 2:.3f} {WHEEL_RADIUS - 0.07:.3f} -1.5708 0 0</pose>
      {_inertial(0.5, 0.001)}
      <collision name="collision"><geometry><cylinder><radius>{WHEEL_RADIUS}</radius><length>0.03</length></cylinder></geometry></collision>
      <visual name="visual"><geometry><cylinder><radius>{WHEEL_RADIUS}</radius><length>0.03</length></cylinder></geometry></visual>
    </link>
    <joint name="{side}_wheel_joint" type="revolute">
      <parent>base_link</parent><child>{side}_wheel</child>
      <axis><xyz expressed_in="__model__">0 1 0</xyz><limit><lower>-1e16</lower><upper>1e16</upper></limit></axis>
    </joint>""")  # noqa: E501
    caster = '\n'.join(
        f'      <collision name="caster_{n}"><pose>{dx} 0 -0.04 0 0 0</pose><geometry><sphere>'
        '<radius>0.03</radius></sphere></geometry><surface><friction><ode><mu>0</mu><mu2>0</mu2>'
        '</ode></friction></surface></collision>' for n, dx in (('front', 0.13), ('back', -0.13)))
    return f"""  <model name="vln_bot">
    <pose>{x:.3f} {y:.3f} 0 0 0 {yaw:.4f}</pose>
    <link name="base_link">
      <pose>0 0 0.07 0 0 0</pose>
      {_inertial(8.0, 0.1)}
      <collision name="base"><geometry><cylinder><radius>{ROBOT_RADIUS}</radius><length>0.08</length></cylinder></geometry></collision>
{caster}
      <visual name="base"><geometry><cylinder><radius>{ROBOT_RADIUS}</radius><length>0.08</length></cylinder></geometry></visual>
    </link>
{chr(10).join(wheels)}
    <link name="camera_link">
      <pose relative_to="base_link">0.05 0 {camera.height_m - 0.07:.3f} 0 0 0</pose>
      {_inertial(0.1, 0.0001)}
      <visual name="visual"><geometry><box><size>0.04 0.08 0.04</size></box></geometry></visual>
      <sensor name="rgb_camera" type="camera">
        <topic>{TOPICS['image']}</topic>
        <update_rate>10</update_rate>
        <always_on>1</always_on>
        <camera>
          <camera_info_topic>{TOPICS['camera_info']}</camera_info_topic>
          <horizontal_fov>{math.radians(camera.hfov_deg):.4f}</horizontal_fov>
          <image><width>{camera.width}</width><height>{camera.height}</height><format>R8G8B8</format></image>
          <clip><near>0.05</near><far>30</far></clip>
          <optical_frame_id>camera_optical_frame</optical_frame_id>
        </camera>
      </sensor>
    </link>
    <joint name="camera_joint" type="fixed"><parent>base_link</parent><child>camera_link</child></joint>
    <plugin filename="gz-sim-diff-drive-system" name="gz::sim::systems::DiffDrive">
      <left_joint>left_wheel_joint</left_joint>
      <right_joint>right_wheel_joint</right_joint>
      <wheel_separation>{WHEEL_SEPARATION}</wheel_separation>
      <wheel_radius>{WHEEL_RADIUS}</wheel_radius>
      <topic>{TOPICS['cmd_vel']}</topic>
      <odom_topic>{TOPICS['odom']}</odom_topic>
      <tf_topic>{TOPICS['tf']}</tf_topic>
      <frame_id>odom</frame_id>
      <child_frame_id>base_footprint</child_frame_id>
    </plugin>
    <plugin filename="gz-sim-odometry-publisher-system" name="gz::sim::systems::OdometryPublisher">
      <odom_topic>{TOPICS['ground_truth']}</odom_topic>
      <odom_frame>map</odom_frame>
      <robot_base_frame>base_footprint</robot_base_frame>
      <dimensions>2</dimensions>
      <odom_publish_frequency>30</odom_publish_frequency>
    </plugin>
  </model>"""  # noqa: E501


def world_sdf(episode: Episode, camera: CameraConfig | None = None) -> str:
    """The SDF world of an episode: its house and the robot at its start pose."""
    camera = camera or CameraConfig(640, 480)
    house = house_for(episode.house)
    return f"""<?xml version="1.0"?>
<!-- Generated by janusvln_ros.sim.sdf from house seed {episode.house.seed}, episode {episode.episode_id}:
     "{episode.instruction}" -->
<sdf version="1.9">
<world name="janusvln_world">
  <physics name="1ms" type="ignored"><max_step_size>0.001</max_step_size><real_time_factor>1.0</real_time_factor></physics>
  <plugin filename="gz-sim-physics-system" name="gz::sim::systems::Physics"/>
  <plugin filename="gz-sim-user-commands-system" name="gz::sim::systems::UserCommands"/>
  <plugin filename="gz-sim-scene-broadcaster-system" name="gz::sim::systems::SceneBroadcaster"/>
  <plugin filename="gz-sim-sensors-system" name="gz::sim::systems::Sensors"><render_engine>ogre2</render_engine></plugin>
  <scene><ambient>0.6 0.6 0.6 1</ambient><background>0.7 0.7 0.7 1</background></scene>
  <light type="directional" name="sun"><cast_shadows>false</cast_shadows><pose>0 0 10 0 0 0</pose>
    <diffuse>0.8 0.8 0.8 1</diffuse><specular>0.1 0.1 0.1 1</specular><direction>-0.3 0.2 -0.9</direction></light>
  <model name="ground_plane"><static>true</static><link name="link">
    <collision name="collision"><geometry><plane><normal>0 0 1</normal><size>100 100</size></plane></geometry></collision>
  </link></model>
{_house_model(house)}
{_robot_model(episode, camera)}
</world>
</sdf>
"""  # noqa: E501


def main(argv: list[str] | None = None) -> int:
    """Write the SDF world of one episode."""
    parser = argparse.ArgumentParser(description='Export an episode as a gz sim SDF world.')
    parser.add_argument('out', help='output .sdf file')
    parser.add_argument('--episode', default='ep10', help='episode id (built-in set)')
    args = parser.parse_args(argv)
    episode = find_episode(load_episodes(), args.episode)
    pathlib.Path(args.out).write_text(world_sdf(episode))
    return 0


if __name__ == '__main__':
    sys.exit(main())
