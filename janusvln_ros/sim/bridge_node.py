"""``sim_bridge_node``: the MuJoCo house as a ROS 2 robot, so ``janusvln_node`` runs unmodified.

Publishes (names relative, remap in launch; ``/clock`` absolute):

* ``camera/image_raw`` (``sensor_msgs/Image``, rgb8) and ``camera/camera_info`` at
  ``image_rate_hz`` of simulated time;
* ``odom`` (``nav_msgs/Odometry``, frame ``odom`` = the episode's start pose; ideal wheel
  odometry, no slip) and ``ground_truth/odom`` (frame ``map`` = the house frame) every tick;
* ``/clock`` (``rosgraph_msgs/Clock``): the simulated time; run other nodes with
  ``use_sim_time:=true``;
* ``episode/instruction`` (``std_msgs/String``, transient local): the current episode's
  instruction.

Subscribes ``cmd_vel`` (``geometry_msgs/Twist``, or ``TwistStamped`` with ``use_stamped:=true``)
and integrates ``linear.x`` and ``angular.z`` every tick of ``sim_rate_hz`` (with collisions
and sliding). A command older than ``cmd_timeout_s`` of simulated time is replaced by zero, as
a real base's watchdog does.

Lockstep (``lockstep_timeout_s`` > 0): while the robot is being driven (the last command is not
zero), a tick integrates only once the controller has answered the previous tick's odometry,
so a controller that answers each ``odom`` reading (``janusvln_node`` in odometry mode) sees
every tick and a stall of its process does not turn into extra simulated motion: simulated
time waits for it, as in a simulator that steps in sync with its controller. With
``use_stamped`` an answer is a command stamped with that reading's stamp (older non-zero
commands are dropped as overtaken; a zero is always obeyed); with plain Twist, any command that
arrived after it. A tick waits at most ``lockstep_timeout_s`` of wall time; then it integrates
the last command anyway (and the watchdog above still applies), so a dead controller cannot
freeze the simulation. A tick that has waited ``LOCKSTEP_RESEND_S`` re-publishes the last
``odom`` (a lost best-effort reading would otherwise stall it until the timeout).

Episodes: parameter ``episode_id`` ('' = the first of ``episodes_file``, '' = the built-in set;
a ``val_unseen-*`` id with no file reads the package's shipped ``val_unseen`` episodes);
setting it at run time switches episode; service ``~/reset`` (``std_srvs/Trigger``) restarts the
current one. With ``pose_file`` set, every tick also writes the current episode id and
ground-truth pose as JSON there (read by the oracle engine, see
:mod:`janusvln_ros.sim.policies`).

All simulation and rendering runs on the main thread (one ``spin_once`` loop); SIGINT and
SIGTERM end the loop and the process exits 0.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import signal
import sys
import threading
import time

from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from janusvln_ros.sim.env import CameraConfig, Pose2D, SimEnv
from janusvln_ros.sim.episodes import Episode, find_episode, house_for, load_episodes


logger = logging.getLogger(__name__)

IMAGE_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
PARAMETERS = {
    'episode_id': '',
    'episodes_file': '',
    'width': 224,
    'height': 224,
    'hfov_deg': 79.0,
    'camera_height_m': 1.25,
    'sim_rate_hz': 50.0,
    'image_rate_hz': 10.0,
    'real_time_factor': 1.0,
    'cmd_timeout_s': 0.5,
    'lockstep_timeout_s': 0.0,
    'use_stamped': False,
    'pose_file': '',
    'map_frame': 'map',
    'odom_frame': 'odom',
    'base_frame': 'base_footprint',
    'camera_frame': 'camera_optical_frame',
}


LOCKSTEP_RESEND_S = 0.2   # lockstep: re-publish the last odom after waiting this long (wall)


def _yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """``(x, y, z, w)`` of a rotation about z."""
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def image_message(frame, stamp, frame_id: str) -> Image:
    """An rgb8 ``sensor_msgs/Image`` from an ``(H, W, 3)`` uint8 array."""
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(frame.shape[0]), int(frame.shape[1])
    msg.encoding = 'rgb8'
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = frame.tobytes()  # bytes, not an array: ~50x faster to assign
    return msg


def camera_info_message(camera: CameraConfig, stamp, frame_id: str) -> CameraInfo:
    """Pinhole ``CameraInfo`` of the simulated camera (no distortion)."""
    f = camera.focal_px
    cx, cy = camera.width / 2, camera.height / 2
    msg = CameraInfo()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.width, msg.height = camera.width, camera.height
    msg.distortion_model = 'plumb_bob'
    msg.d = [0.0] * 5
    msg.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


class SimBridgeNode(Node):
    """The simulator node; :meth:`tick` advances the simulation by one step."""

    def __init__(self) -> None:
        super().__init__('sim_bridge')
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self._p = p
        self._camera = CameraConfig(int(p['width']), int(p['height']), float(p['hfov_deg']),
                                    float(p['camera_height_m']))
        episodes_file = p['episodes_file']
        if not episodes_file and str(p['episode_id']).startswith('val_unseen-'):
            from janusvln_ros.core.models import shipped_val_unseen_episodes
            episodes_file = str(shipped_val_unseen_episodes())
        self._episodes = load_episodes(episodes_file or None)
        self._dt = 1.0 / float(p['sim_rate_hz'])
        self._image_every = max(1, int(round(float(p['sim_rate_hz']) / float(p['image_rate_hz']))))
        self._sim_ns = 0
        self._tick = 0
        self._cmd = (0.0, 0.0)
        self._cmd_ns = -1
        self._cmd_tick = -1                 # tick count when the last command arrived
        self._cmd_stamp_ns = -1             # its stamp (TwistStamped), -1 for a plain Twist
        self._lockstep_since: float | None = None
        self._lockstep_given_up = -2          # _cmd_tick of a command already waited out
        self.lockstep_waits = 0
        self.lockstep_wait_s = 0.0
        self.lockstep_resends = 0
        self._lockstep_resent = 0.0
        self._last_odom: Odometry | None = None
        self.lockstep_max_wait_s = 0.0
        self._env: SimEnv | None = None
        self._episode: Episode | None = None
        self._pending_episode: str | None = p['episode_id'] or self._episodes[0].episode_id
        self._pose_file = pathlib.Path(p['pose_file']) if p['pose_file'] else None

        self._image_pub = self.create_publisher(Image, 'camera/image_raw', IMAGE_QOS)
        self._info_pub = self.create_publisher(CameraInfo, 'camera/camera_info', 10)
        self._odom_pub = self.create_publisher(Odometry, 'odom', 10)
        self._truth_pub = self.create_publisher(Odometry, 'ground_truth/odom', 10)
        self._clock_pub = self.create_publisher(Clock, '/clock', 10)
        self._episode_pub = self.create_publisher(String, 'episode/instruction', LATCHED_QOS)
        if p['use_stamped']:
            self.create_subscription(
                TwistStamped, 'cmd_vel',
                lambda m: self._cmd_callback(m.twist, Time.from_msg(m.header.stamp).nanoseconds),
                10)
        else:
            self.create_subscription(Twist, 'cmd_vel', self._cmd_callback, 10)
        self.create_service(Trigger, '~/reset', self._reset_callback)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        period = self._dt / max(1e-3, float(p['real_time_factor']))
        self._timer = self.create_timer(period, self.tick)
        self.get_logger().info(
            f'Simulating {len(self._episodes)} episodes at {p["sim_rate_hz"]} Hz, camera '
            f'{self._camera.width}x{self._camera.height} HFOV {self._camera.hfov_deg}')

    # -- callbacks (all on the main thread) -----------------------------------------------------
    def _cmd_callback(self, msg: Twist, stamp_ns: int | None = None) -> None:
        cmd = (float(msg.linear.x), float(msg.angular.z))
        lockstep = float(self._p['lockstep_timeout_s']) > 0.0
        if lockstep and stamp_ns is not None and (cmd[0] or cmd[1]) \
                and stamp_ns < self._cmd_stamp_ns:
            return    # an answer to an older reading, overtaken (a zero is always obeyed)
        self._cmd = cmd
        self._cmd_ns = self._sim_ns
        self._cmd_tick = self._tick
        self._cmd_stamp_ns = -1 if stamp_ns is None else stamp_ns
        if self._lockstep_since is not None:    # the tick that waited for this: run it now
            waited = time.monotonic() - self._lockstep_since
            self.lockstep_wait_s += waited
            self.lockstep_max_wait_s = max(self.lockstep_max_wait_s, waited)
            self._timer.reset()
            self.tick()

    def _reset_callback(self, request: Trigger.Request, response: Trigger.Response):
        if self._episode is None:
            response.success, response.message = False, 'no episode loaded yet'
            return response
        self._pending_episode = self._episode.episode_id
        response.success = True
        response.message = f'episode {self._episode.episode_id} will restart'
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == 'episode_id':
                try:
                    find_episode(self._episodes, str(param.value))
                except KeyError as error:
                    return SetParametersResult(successful=False, reason=str(error))
                self._pending_episode = str(param.value)
            elif param.name in PARAMETERS:
                return SetParametersResult(successful=False,
                                           reason=f'{param.name} is read-only at run time')
        return SetParametersResult(successful=True)

    # -- simulation -----------------------------------------------------------------------------
    def _load(self, episode_id: str) -> None:
        episode = find_episode(self._episodes, episode_id)
        if self._env is None or self._env.house.config != episode.house:
            if self._env is not None:
                self._env.close()
            self._env = SimEnv(house_for(episode.house), self._camera)
        self._env.reset(episode.start_pose)
        self._episode = episode
        self._cmd, self._cmd_ns, self._cmd_tick, self._cmd_stamp_ns = (0.0, 0.0), -1, -1, -1
        self._episode_pub.publish(String(data=episode.instruction))
        self.get_logger().info(f'Episode {episode.episode_id}: "{episode.instruction}"')

    def tick(self) -> None:
        """Advance one simulation step and publish what is due."""
        if self._pending_episode is not None:
            episode_id, self._pending_episode = self._pending_episode, None
            self._load(episode_id)
        env = self._env
        assert env is not None
        timeout_ns = int(float(self._p['cmd_timeout_s']) * 1e9)
        linear, angular = self._cmd
        if self._cmd_ns < 0 or self._sim_ns - self._cmd_ns > timeout_ns:
            linear, angular = 0.0, 0.0
        if (linear or angular) and self._lockstep_wait():
            return
        if linear or angular:
            env.apply_twist(linear, angular, self._dt)
        self._sim_ns += int(round(self._dt * 1e9))
        self._tick += 1
        stamp = Time(nanoseconds=self._sim_ns).to_msg()
        self._clock_pub.publish(Clock(clock=stamp))
        pose = env.pose
        self._publish_odometry(pose, linear, angular, stamp)
        if self._pose_file is not None:
            self._write_pose(pose)
        if self._tick % self._image_every == 0:
            frame = env.render()
            self._image_pub.publish(image_message(frame, stamp, self._p['camera_frame']))
            self._info_pub.publish(camera_info_message(self._camera, stamp,
                                                       self._p['camera_frame']))

    def _lockstep_wait(self) -> bool:
        """Lockstep: True if this tick must wait for the controller's answer to the last one."""
        limit = float(self._p['lockstep_timeout_s'])
        # Answered: a stamped command carries the stamp of the reading it answers (the last
        # odom is stamped self._sim_ns); a plain Twist counts if it arrived after that odom.
        answered = self._cmd_stamp_ns >= self._sim_ns if self._cmd_stamp_ns >= 0 \
            else self._cmd_tick >= self._tick
        if limit <= 0.0 or answered or self._cmd_tick == self._lockstep_given_up:
            self._lockstep_since = None
            return False
        now = time.monotonic()
        if self._lockstep_since is None:
            self._lockstep_since = self._lockstep_resent = now
            self.lockstep_waits += 1
        if now - self._lockstep_since < limit:
            if now - self._lockstep_resent >= LOCKSTEP_RESEND_S and self._last_odom is not None:
                self._lockstep_resent = now
                self.lockstep_resends += 1
                self._odom_pub.publish(self._last_odom)
            return True
        self.get_logger().warning(
            f'lockstep: no command for {limit:.2f} s after the last odometry; integrating the '
            'last one until the next command', throttle_duration_sec=5.0)
        self._lockstep_since = None
        self._lockstep_given_up = self._cmd_tick
        return False

    def _publish_odometry(self, pose: Pose2D, linear: float, angular: float, stamp) -> None:
        assert self._episode is not None
        start = self._episode.start_pose
        dx, dy = pose.x - start.x, pose.y - start.y
        c, s = math.cos(-start.yaw), math.sin(-start.yaw)
        for pub, frame, (x, y, yaw) in (
                (self._truth_pub, self._p['map_frame'], pose.as_tuple()),
                (self._odom_pub, self._p['odom_frame'],
                 (c * dx - s * dy, s * dx + c * dy, pose.yaw - start.yaw))):
            msg = Odometry()
            msg.header.stamp = stamp
            msg.header.frame_id = frame
            msg.child_frame_id = self._p['base_frame']
            msg.pose.pose.position.x, msg.pose.pose.position.y = float(x), float(y)
            q = _yaw_quaternion(yaw)
            o = msg.pose.pose.orientation
            o.x, o.y, o.z, o.w = q
            msg.twist.twist.linear.x = linear
            msg.twist.twist.angular.z = angular
            pub.publish(msg)
            if pub is self._odom_pub:
                self._last_odom = msg

    def _write_pose(self, pose: Pose2D) -> None:
        assert self._pose_file is not None and self._episode is not None
        data = {'episode_id': self._episode.episode_id, 'x': pose.x, 'y': pose.y,
                'yaw': pose.yaw, 'sim_time_ns': self._sim_ns}
        tmp = self._pose_file.with_name(self._pose_file.name + '.tmp')
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._pose_file)

    def close(self) -> None:
        """Free the renderer (main thread)."""
        if self.lockstep_waits:
            self.get_logger().info(
                f'lockstep: {self.lockstep_waits} ticks waited for a command, '
                f'{self.lockstep_wait_s:.1f} s in all, longest {self.lockstep_max_wait_s:.3f} s, '
                f'{self.lockstep_resends} odom re-sent')
        if self._env is not None:
            self._env.close()
            self._env = None


def main(args: list[str] | None = None) -> int:
    """Run the bridge until SIGINT/SIGTERM; exit 0."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = None
    executor = SingleThreadedExecutor()
    try:
        node = SimBridgeNode()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
    finally:
        if node is not None:
            node.close()
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
