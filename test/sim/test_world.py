"""The generated houses, the robot's collisions, the camera and determinism of rendering."""

import hashlib
import math
import threading

import numpy as np
import pytest

from janusvln_ros.core.errors import ConfigError
from janusvln_ros.core.types import Action
from janusvln_ros.sim.env import CameraConfig, SimEnv
from janusvln_ros.sim.episodes import house_for, navmap_for
from janusvln_ros.sim.world import build_house, HouseConfig


SCRIPT = [Action.MOVE_FORWARD, Action.TURN_LEFT, Action.MOVE_FORWARD, Action.TURN_RIGHT,
          Action.TURN_RIGHT, Action.MOVE_FORWARD]


def test_same_seed_same_house_other_seed_other_house():
    a, b = build_house(HouseConfig(seed=3)), build_house(HouseConfig(seed=3))
    assert a.mjcf() == b.mjcf() and a.assets == b.assets and a.objects == b.objects
    c = build_house(HouseConfig(seed=4))
    assert c.mjcf() != a.mjcf()
    kinds = [r.kind for r in a.rooms]
    assert len(set(kinds)) == len(kinds) == 6  # every room of a house has its own type
    assert len(a.objects) == 18 and len({o.name for o in a.objects}) == 18
    assert len(a.doors) >= 5  # a spanning tree over 6 rooms plus one


@pytest.mark.parametrize('bad', [dict(rows=0), dict(rows=3, cols=3), dict(room_size=1.0),
                                 dict(seed=-1)])
def test_house_config_validation(bad):
    with pytest.raises(ConfigError):
        HouseConfig(**bad)


def test_camera_geometry():
    cam = CameraConfig()
    assert (cam.width, cam.height, cam.hfov_deg, cam.height_m) == (224, 224, 79.0, 1.25)
    assert cam.fovy_deg == pytest.approx(79.0)  # square image: vertical = horizontal
    wide = CameraConfig(640, 480)
    assert math.tan(math.radians(wide.fovy_deg) / 2) == pytest.approx(
        math.tan(math.radians(79.0) / 2) * 480 / 640)
    assert cam.focal_px == pytest.approx(224 / (2 * math.tan(math.radians(39.5))))
    with pytest.raises(ConfigError):
        CameraConfig(width=8)


def _hashes(seed: int, camera: CameraConfig) -> list[str]:
    env = SimEnv(build_house(HouseConfig(seed=seed)), camera)
    try:
        env.reset((2.0, 2.0, 0.3))
        out = [hashlib.sha256(env.render().tobytes()).hexdigest()]
        for action in SCRIPT:
            env.step(action)
            out.append(hashlib.sha256(env.render().tobytes()).hexdigest())
        return out
    finally:
        env.close()


def test_rendering_is_deterministic_per_seed():
    camera = CameraConfig(96, 72)
    first = _hashes(5, camera)
    assert first == _hashes(5, camera)
    assert len(set(first)) > 3  # the view changes as the robot moves
    assert _hashes(6, camera)[0] != first[0]


def test_frame_shape_and_content():
    env = SimEnv(house_for(HouseConfig(seed=11)), CameraConfig(160, 120))
    try:
        env.reset((2.0, 2.0, 0.0))
        frame = env.render()
        assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
        assert frame.std() > 5  # not a blank image
    finally:
        env.close()


def test_render_from_another_thread_is_refused():
    env = SimEnv(house_for(HouseConfig(seed=11)), CameraConfig(64, 64))
    try:
        env.reset((2.0, 2.0, 0.0))
        env.render()
        errors = []

        def other():
            try:
                env.render()
            except RuntimeError as exc:
                errors.append(exc)
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert errors and 'thread' in str(errors[0])
    finally:
        env.close()


def test_walls_stop_the_robot_and_moves_are_exact():
    config = HouseConfig(seed=11)
    env = SimEnv(house_for(config), render=False)
    navmap = navmap_for(config)
    env.reset((2.0, 2.0, 0.0))
    env.step(Action.MOVE_FORWARD)
    assert (env.pose.x, env.pose.y) == pytest.approx((2.25, 2.0))
    env.step(Action.TURN_LEFT)
    assert env.pose.yaw == pytest.approx(math.radians(15))
    for _ in range(80):  # far more than the house is wide
        env.step(Action.MOVE_FORWARD)
    assert env.collisions > 0
    assert 0 < env.pose.x < env.house.width and 0 < env.pose.y < env.house.height
    assert not env.in_collision(env.pose.x, env.pose.y)
    # The occupancy grid agrees with the collision test (within one 5 cm cell).
    j, i = navmap.cell_of(env.pose.x, env.pose.y)
    assert navmap.free[j - 1:j + 2, i - 1:i + 2].any()
    # Inside walls (away from the door gaps at the wall middles) is blocked, and so is the grid.
    for x, y in ((4.0, 0.6), (0.6, 4.0), (0.02, 2.0)):
        assert env.in_collision(x, y)
        assert not navmap.is_free(x, y)
    with pytest.raises(ValueError):
        env.reset((0.05, 0.05, 0.0))  # in the corner walls


def test_twist_integration_matches_kinematics():
    env = SimEnv(house_for(HouseConfig(seed=11)), render=False)
    env.reset((2.0, 2.0, 0.0))
    for _ in range(50):  # 0.5 m/s for 0.5 s, then 1 rad/s
        env.apply_twist(0.5, 0.0, 0.01)
    assert (env.pose.x, env.pose.y) == pytest.approx((2.25, 2.0))
    for _ in range(100):
        env.apply_twist(0.0, math.radians(15), 0.01)
    assert env.pose.yaw == pytest.approx(math.radians(15))


def test_navmap_geodesic_is_near_euclidean_in_open_space():
    config = HouseConfig(seed=11)
    navmap = navmap_for(config)
    assert 0.4 < navmap.free.mean() < 0.9
    room = house_for(config).rooms[0]
    cx, cy = room.centre
    field = navmap.distance_field((cx - 0.8, cy - 0.3))
    d = field.distance(cx + 0.8, cy + 0.5)
    straight = math.hypot(1.6, 0.8)
    assert straight <= d + 0.05 and d <= straight * 1.03 + 0.05


def test_world_keeps_every_public_name_and_joins_layout_and_emission():
    from janusvln_ros.sim import layout, mjcf, world
    for name in ('angle_diff', 'build_house', 'COLOURS', 'Door', 'DOOR_WIDTH', 'FLOOR_MATERIAL',
                 'FURNITURE', 'House', 'HouseConfig', 'LINTEL_HEIGHT', 'MAX_LIGHTS', 'Room',
                 'ROOM_TYPES', 'SceneObject', 'SIZES', 'WALL_HEIGHT', 'WALL_RGBA',
                 'WALL_THICKNESS'):
        assert hasattr(world, name), name
    config = HouseConfig(seed=3)
    plan = layout.plan_house(config)
    house = build_house(config)
    assert house.rooms == plan.rooms and house.doors == plan.doors
    assert house.objects == plan.objects
    geoms, lights = mjcf.house_geometry(plan)
    assert house.mjcf() == mjcf.document(config.seed, geoms, lights, house.assets)
    # The layout is pure data: no geometry or textures are made to plan a house.
    assert not hasattr(plan, 'assets')
