"""The simulated robot: a planar base in a MuJoCo house, with a forward RGB camera.

The base is a body with two slide joints and a yaw hinge (``qpos = [x, y, yaw]``), so MuJoCo's
collision detection sees it (mocap bodies pass through walls). Motion is kinematic: a move is
written into ``qpos`` and kept only if the robot's cylinder touches nothing; a blocked forward
move slides along the obstacle (each axis alone), like Habitat's ``allow_sliding``. The same
collision test builds the occupancy grid of :mod:`janusvln_ros.sim.navmap`.

Rendering: one ``mujoco.Renderer``, created lazily by the first :meth:`SimEnv.render` call; every
later render must come from that thread (an EGL context does not cross threads).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading

import numpy as np

from janusvln_ros.core.errors import ConfigError
from janusvln_ros.core.types import Action
from janusvln_ros.sim.gl import import_mujoco
from janusvln_ros.sim.world import angle_diff, House


logger = logging.getLogger(__name__)

ROBOT_RADIUS = 0.18
FORWARD_STEP_M = 0.25
TURN_STEP_RAD = math.radians(15.0)


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    """The forward RGB camera.

    Attributes:
        width: Image width in pixels.
        height: Image height in pixels.
        hfov_deg: Horizontal field of view in degrees (VLN-CE: 79 for JanusVLN's setting).
        height_m: Height of the optical centre above the floor in metres.
    """

    width: int = 224
    height: int = 224
    hfov_deg: float = 79.0
    height_m: float = 1.25

    def __post_init__(self) -> None:
        """Validate every field; raise :class:`ConfigError` naming the bad one."""
        for name in ('width', 'height'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 16 <= value <= 4096:
                raise ConfigError(f'{name}: expected an integer in 16..4096, got {value!r}')
        if not 10.0 <= self.hfov_deg <= 170.0:
            raise ConfigError(f'hfov_deg: expected 10..170, got {self.hfov_deg}')
        if not 0.2 <= self.height_m <= 2.4:
            raise ConfigError(f'height_m: expected 0.2..2.4 m, got {self.height_m}')

    @property
    def fovy_deg(self) -> float:
        """Vertical field of view in degrees (MuJoCo cameras take the vertical one)."""
        half = math.atan(math.tan(math.radians(self.hfov_deg) / 2) * self.height / self.width)
        return math.degrees(2 * half)

    @property
    def focal_px(self) -> float:
        """Focal length in pixels (square pixels)."""
        return self.width / (2 * math.tan(math.radians(self.hfov_deg) / 2))


def robot_mjcf(camera: CameraConfig) -> str:
    """The robot's ``<body>``: planar joints, a collision cylinder and the camera.

    The camera looks along the body's +x axis (MuJoCo cameras look along their -z, y up).
    """
    return f"""    <body name="robot" pos="0 0 0">
      <joint name="base_x" type="slide" axis="1 0 0" limited="false"/>
      <joint name="base_y" type="slide" axis="0 1 0" limited="false"/>
      <joint name="base_yaw" type="hinge" axis="0 0 1" limited="false"/>
      <geom name="robot_base" type="cylinder" size="{ROBOT_RADIUS} 0.15" pos="0 0 0.17"
            rgba="0.2 0.2 0.25 1" contype="2" conaffinity="1" mass="10"/>
      <geom name="robot_mast" type="cylinder" size="0.03 {camera.height_m / 2:.3f}"
            pos="0 0 {camera.height_m / 2:.3f}" rgba="0.3 0.3 0.3 1" contype="0"
            conaffinity="0" mass="0.1"/>
      <camera name="rgb" pos="0.05 0 {camera.height_m:.3f}" xyaxes="0 -1 0 0 0 1"
              fovy="{camera.fovy_deg:.5f}"/>
    </body>"""


@dataclasses.dataclass(frozen=True)
class Pose2D:
    """Planar pose in the world frame: metres and radians (yaw in ``[-pi, pi)``)."""

    x: float
    y: float
    yaw: float

    def as_tuple(self) -> tuple[float, float, float]:
        """``(x, y, yaw)``."""
        return (self.x, self.y, self.yaw)


class SimEnv:
    """A house, the robot in it, and its camera.

    Args:
        house: The generated house.
        camera: Camera settings.
        render: Whether :meth:`render` may be used (False: collision and kinematics only).
    """

    def __init__(self, house: House, camera: CameraConfig | None = None,
                 render: bool = True) -> None:
        self._mujoco = import_mujoco()
        self.house = house
        self.camera = camera or CameraConfig()
        self._render_enabled = render
        xml = house.mjcf(robot_mjcf(self.camera), (self.camera.width, self.camera.height))
        self.model = self._mujoco.MjModel.from_xml_string(xml, assets=house.assets)
        self.data = self._mujoco.MjData(self.model)
        self._robot_geom = self.model.geom('robot_base').id
        self._camera_id = self.model.camera('rgb').id
        self._renderer = None
        self._render_thread: int | None = None
        self._pose = Pose2D(house.width / 2, house.height / 2, 0.0)
        self.collisions = 0

    # -- pose and collisions ------------------------------------------------------------------
    @property
    def pose(self) -> Pose2D:
        """Ground-truth pose of the robot."""
        return self._pose

    def _write(self, x: float, y: float, yaw: float) -> None:
        self.data.qpos[0:3] = (x, y, yaw)

    def in_collision(self, x: float, y: float) -> bool:
        """Whether the robot's base at ``(x, y)`` would touch any collidable geom.

        The base is a cylinder, so the yaw does not matter. The robot's pose in MuJoCo is left
        at the tested position; callers restore it with :meth:`_commit`.
        """
        mj = self._mujoco
        self._write(x, y, 0.0)
        mj.mj_kinematics(self.model, self.data)
        mj.mj_collision(self.model, self.data)
        for i in range(self.data.ncon):
            contact = self.data.contact[i]
            if self._robot_geom in (contact.geom1, contact.geom2) and contact.dist < 0:
                return True
        return False

    def _commit(self, pose: Pose2D) -> None:
        self._pose = pose
        self._write(pose.x, pose.y, pose.yaw)
        self._mujoco.mj_kinematics(self.model, self.data)

    def reset(self, pose: Pose2D | tuple[float, float, float]) -> None:
        """Place the robot.

        Raises:
            ValueError: The pose is in collision.
        """
        x, y, yaw = pose.as_tuple() if isinstance(pose, Pose2D) else pose
        if self.in_collision(x, y):
            raise ValueError(f'start pose ({x:.2f}, {y:.2f}) is in collision')
        self.collisions = 0
        self._commit(Pose2D(float(x), float(y), angle_diff(float(yaw), 0.0)))

    def move_result(self, pose: Pose2D, distance: float) -> tuple[Pose2D, bool]:
        """Where a straight move of ``distance`` metres from ``pose`` ends, with sliding.

        Returns:
            ``(end pose, collided)``; does not move the robot.
        """
        nx = pose.x + distance * math.cos(pose.yaw)
        ny = pose.y + distance * math.sin(pose.yaw)
        end, collided = pose, True
        if not self.in_collision(nx, ny):
            end, collided = Pose2D(nx, ny, pose.yaw), False
        else:
            for cx, cy in ((nx, pose.y), (pose.x, ny)):
                if not self.in_collision(cx, cy):
                    end = Pose2D(cx, cy, pose.yaw)
                    break
        self._write(*self._pose.as_tuple())
        return end, collided

    def step(self, action: Action | int) -> bool:
        """Execute one discrete action (0.25 m forward, 15 degree turns, STOP is a no-op).

        Returns:
            Whether a forward move hit an obstacle.
        """
        action = Action(int(action))
        pose, collided = self._pose, False
        if action == Action.MOVE_FORWARD:
            pose, collided = self.move_result(pose, FORWARD_STEP_M)
        elif action == Action.TURN_LEFT:
            pose = Pose2D(pose.x, pose.y, angle_diff(pose.yaw + TURN_STEP_RAD, 0.0))
        elif action == Action.TURN_RIGHT:
            pose = Pose2D(pose.x, pose.y, angle_diff(pose.yaw - TURN_STEP_RAD, 0.0))
        self.collisions += int(collided)
        self._commit(pose)
        return collided

    def apply_twist(self, linear_x: float, angular_z: float, dt: float) -> bool:
        """Integrate a body-frame velocity command for ``dt`` seconds (unicycle model).

        Returns:
            Whether the translation was blocked (the robot then slides or stays).
        """
        pose = self._pose
        yaw_mid = pose.yaw + 0.5 * angular_z * dt
        moved, collided = pose, False
        if abs(linear_x) > 0.0:
            moved, collided = self.move_result(Pose2D(pose.x, pose.y, yaw_mid), linear_x * dt)
        self.collisions += int(collided)
        self._commit(Pose2D(moved.x, moved.y, angle_diff(pose.yaw + angular_z * dt, 0.0)))
        return collided

    # -- rendering ----------------------------------------------------------------------------
    def render(self) -> np.ndarray:
        """Render the forward camera.

        Returns:
            ``(height, width, 3)`` uint8 RGB image (a fresh array).

        Raises:
            RuntimeError: Rendering is disabled, or called from a second thread.
        """
        if not self._render_enabled:
            raise RuntimeError('this SimEnv was created with render=False')
        thread = threading.get_ident()
        if self._renderer is None:
            self._renderer = self._mujoco.Renderer(self.model, self.camera.height,
                                                   self.camera.width)
            self._render_thread = thread
        elif thread != self._render_thread:
            raise RuntimeError('SimEnv.render called from a thread other than the one that '
                               'created the GL context')
        self._mujoco.mj_forward(self.model, self.data)
        self._renderer.update_scene(self.data, camera=self._camera_id)
        return np.array(self._renderer.render(), dtype=np.uint8, copy=True)

    def render_depth(self) -> np.ndarray:
        """Render the forward camera's depth (after :meth:`render`, from the same thread).

        Returns:
            ``(height, width)`` float32 metric depth along the optical axis, metres.

        Raises:
            RuntimeError: As :meth:`render`.
        """
        if self._renderer is None:
            self.render()
        if threading.get_ident() != self._render_thread:
            raise RuntimeError('SimEnv.render_depth called from a thread other than the one '
                               'that created the GL context')
        self._renderer.enable_depth_rendering()
        try:
            self._renderer.update_scene(self.data, camera=self._camera_id)
            depth = np.array(self._renderer.render(), dtype=np.float32, copy=True)
        finally:
            self._renderer.disable_depth_rendering()
        return depth

    def close(self) -> None:
        """Free the renderer (call from the rendering thread)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
