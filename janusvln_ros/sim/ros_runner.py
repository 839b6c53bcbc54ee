"""Closed-loop episodes through ROS 2: ``sim_bridge_node`` and ``janusvln_node`` as two processes.

:class:`RosStack` starts both nodes (the navigation node runs unmodified, with
``use_sim_time``, its image topic remapped to ``camera/image_raw``, by default in odometry mode
with TwistStamped commands; the bridge in lockstep with it, so that each primitive moves the
robot the same way whatever the processes' scheduling). :class:`RosEpisodeClient`
is a small client node in this process that, per episode, switches the bridge's episode (its
``episode_id`` parameter), sends the instruction through the node's real ``set_instruction``
service, follows ``status`` until the node reports a final state (SUCCEEDED when the model said
STOP) or ``max_steps`` (then it calls ``cancel``), and records the ground-truth pose at every
step from ``ground_truth/odom``: the pose stamped at the capture time of the frame the node
stepped on (the status of a step carries that frame's stamp), i.e. where the robot stood when
the model saw it.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Callable
import dataclasses
import logging
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

from janusvln_interfaces.msg import NavigationStatus
from janusvln_interfaces.srv import SetInstruction
from nav_msgs.msg import Odometry
import numpy as np
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from janusvln_ros.core.types import Action
from janusvln_ros.sim.env import CameraConfig, Pose2D
from janusvln_ros.sim.episodes import Episode
from janusvln_ros.sim.runner import EpisodeRun, score


logger = logging.getLogger(__name__)

FINAL_STATES = (NavigationStatus.SUCCEEDED, NavigationStatus.STOPPED, NavigationStatus.ERROR)
STATE_NAMES = {NavigationStatus.IDLE: 'IDLE', NavigationStatus.NAVIGATING: 'NAVIGATING',
               NavigationStatus.SUCCEEDED: 'SUCCEEDED', NavigationStatus.STOPPED: 'STOPPED',
               NavigationStatus.ERROR: 'ERROR'}


@dataclasses.dataclass(frozen=True)
class StackConfig:
    """How to start the two nodes.

    Attributes:
        engine: The node's ``engine`` parameter.
        model_path: The node's ``model_path`` parameter.
        script: The node's ``script`` parameter (engine options).
        device: The node's ``device`` parameter.
        dtype: The node's ``dtype`` parameter.
        mode: The node's ``mode`` parameter (semantic memory of the model engine).
        episodes_file: Episode file of the bridge ('' = built-in).
        camera: Camera of the bridge.
        pose_file: Where the bridge writes the ground-truth pose ('' = nowhere).
        linear_speed_mps: The node's forward speed.
        angular_speed_radps: The node's turn rate.
        motion_mode: The node's ``motion_mode``.
        real_time_factor: Simulated seconds per wall second.
        lockstep_timeout_s: The bridge's ``lockstep_timeout_s``: while the robot is driven,
            each simulation tick waits (at most this long, in wall seconds) for the node's
            command answering the previous tick's odometry (0 = free-running).
        max_steps: The node's ``max_steps`` (episode step cap).
        log_dir: Directory of the two nodes' log files.
    """

    engine: str = 'janusvln'
    model_path: str = ''
    script: str = ''
    device: str = 'cpu'
    dtype: str = 'float32'
    mode: str = 'parity'
    episodes_file: str = ''
    camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    pose_file: str = ''
    linear_speed_mps: float = 0.5
    angular_speed_radps: float = 1.0
    motion_mode: str = 'odometry'
    real_time_factor: float = 1.0
    lockstep_timeout_s: float = 5.0
    max_steps: int = 500
    log_dir: str = '.'


def _python_module(module: str) -> list[str]:
    return [sys.executable, '-m', module]


class RosStack:
    """The bridge and the navigation node as child processes (stopped with SIGINT)."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self._logs: list = []

    def start(self, first_episode: str) -> None:
        """Start both nodes; the bridge begins with ``first_episode``."""
        c = self.config
        log_dir = pathlib.Path(c.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        bridge = _python_module('janusvln_ros.sim.bridge_node') + [
            '--ros-args', '-p', f'episode_id:={first_episode}',
            '-p', f'width:={c.camera.width}', '-p', f'height:={c.camera.height}',
            '-p', f'hfov_deg:={float(c.camera.hfov_deg)}',
            '-p', f'camera_height_m:={float(c.camera.height_m)}',
            '-p', f'real_time_factor:={float(c.real_time_factor)}',
            '-p', f'lockstep_timeout_s:={float(c.lockstep_timeout_s)}',
            '-p', 'use_stamped:=true',
            '-p', 'image_rate_hz:=20.0']
        if c.episodes_file:
            bridge += ['-p', f'episodes_file:={c.episodes_file}']
        if c.pose_file:
            bridge += ['-p', f'pose_file:={c.pose_file}']
        node = _python_module('janusvln_ros.ros.janusvln_node') + [
            '--ros-args', '-p', 'autostart:=true', '-p', 'use_sim_time:=true',
            '-p', f'engine:={c.engine}', '-p', f'device:={c.device}',
            '-p', f'dtype:={c.dtype}', '-p', f'mode:={c.mode}',
            '-p', f'motion_mode:={c.motion_mode}',
            '-p', f'linear_speed_mps:={float(c.linear_speed_mps)}',
            '-p', f'angular_speed_radps:={float(c.angular_speed_radps)}',
            '-p', 'image_reliability:=reliable', '-p', f'max_steps:={int(c.max_steps)}',
            '-p', 'use_stamped_cmd_vel:=true',
            '-r', 'image_raw:=camera/image_raw']
        if c.model_path:
            node += ['-p', f'model_path:={c.model_path}']
        if c.script:
            node += ['-p', f'script:={c.script}']
        for name, cmd in (('bridge', bridge), ('janusvln_node', node)):
            log = open(log_dir / f'{name}.log', 'w')
            self._logs.append(log)
            logger.debug('starting %s: %s', name, ' '.join(cmd))
            self._procs.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                       env=dict(os.environ))))

    def check_alive(self) -> None:
        """Raise if a node process has exited.

        Raises:
            RuntimeError: Names the process, its exit code and its log file.
        """
        for name, proc in self._procs:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(f'{name} exited with code {code}; see '
                                   f'{pathlib.Path(self.config.log_dir) / (name + ".log")}')

    def stop(self, timeout: float = 30.0) -> dict[str, int | None]:
        """SIGINT both processes and wait; kill what does not exit.

        Returns:
            ``{name: exit code}`` (None if it had to be killed).
        """
        codes: dict[str, int | None] = {}
        for _, proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for name, proc in self._procs:
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes[name] = None
        for log in self._logs:
            log.close()
        self._procs.clear()
        self._logs.clear()
        return codes


TRUTH_HISTORY = 3000   # ground-truth poses kept for look-ups by stamp (60 s at 50 Hz)


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _yaw(msg: Odometry) -> float:
    q = msg.pose.pose.orientation
    return math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))


class RosEpisodeClient(Node):
    """Drives episodes through the bridge and the navigation node.

    Args:
        keep_frames: Subscribe to the camera and keep the frame seen at each step.
    """

    def __init__(self, keep_frames: bool = False) -> None:
        super().__init__('janusvln_sim_client')
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self)
        self._status: NavigationStatus | None = None
        self._truth: Odometry | None = None
        self._truth_history: collections.deque[tuple[float, Pose2D]] = collections.deque(
            maxlen=TRUTH_HISTORY)
        self._step_stamps: dict[tuple[int, int], float] = {}
        self._instruction = ''
        self._frame: np.ndarray | None = None
        self.create_subscription(NavigationStatus, 'status', self._status_callback, 50)
        self.create_subscription(Odometry, 'ground_truth/odom', self._truth_callback, 10)
        self.create_subscription(
            String, 'episode/instruction', self._instruction_callback,
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        if keep_frames:
            self.create_subscription(Image, 'camera/image_raw', self._image_callback, 2)
        self._set_instruction = self.create_client(SetInstruction, 'set_instruction')
        self._cancel = self.create_client(Trigger, 'cancel')
        self._set_params = self.create_client(SetParameters, 'sim_bridge/set_parameters')

    # -- callbacks ---------------------------------------------------------------------------
    def _status_callback(self, msg: NavigationStatus) -> None:
        self._status = msg
        if msg.step > 0:
            # A step's own status carries its frame's stamp; periodic ones carry a later time.
            key = (int(msg.episode_id), int(msg.step))
            stamp = _seconds(msg.header.stamp)
            self._step_stamps[key] = min(stamp, self._step_stamps.get(key, stamp))

    def _truth_callback(self, msg: Odometry) -> None:
        self._truth = msg
        p = msg.pose.pose.position
        self._truth_history.append((_seconds(msg.header.stamp),
                                    Pose2D(float(p.x), float(p.y), _yaw(msg))))

    def pose_at(self, stamp: float) -> Pose2D | None:
        """The latest ground-truth pose stamped at or before ``stamp`` (None if none kept)."""
        history = list(self._truth_history)
        index = bisect.bisect_right([t for t, _ in history], stamp + 1e-6) - 1
        return history[index][1] if index >= 0 else None

    def _instruction_callback(self, msg: String) -> None:
        self._instruction = msg.data

    def _image_callback(self, msg: Image) -> None:
        self._frame = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3).copy()

    # -- helpers ------------------------------------------------------------------------------
    def spin_for(self, seconds: float) -> None:
        """Process callbacks for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._executor.spin_once(timeout_sec=max(0.0, min(0.05, end - time.monotonic())))

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str,
              alive: Callable[[], None] | None = None) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise TimeoutError(f'timed out after {timeout:.0f} s waiting for {what}')
            if alive is not None:
                alive()
            self._executor.spin_once(timeout_sec=0.05)

    def _call(self, client, request, timeout: float = 10.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'service {client.srv_name} is not available')
        future = client.call_async(request)
        self._executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            raise TimeoutError(f'no answer from {client.srv_name}')
        return future.result()

    @property
    def pose(self) -> Pose2D | None:
        """Latest ground-truth pose."""
        if self._truth is None:
            return None
        p = self._truth.pose.pose.position
        return Pose2D(float(p.x), float(p.y), _yaw(self._truth))

    def wait_ready(self, timeout: float = 300.0, alive: Callable[[], None] | None = None) -> None:
        """Wait for the bridge's pose and the node's first status (sent once it is active).

        Loading a model takes a while (tens of seconds on a busy CPU).
        """
        self._wait(lambda: self._truth is not None, timeout, 'ground_truth/odom', alive)
        self._wait(lambda: self._status is not None, timeout,
                   'the first status of janusvln_node (configured and active)', alive)
        self._wait(lambda: self._set_instruction.service_is_ready(), timeout,
                   'the set_instruction service', alive)

    def set_episode(self, episode: Episode, timeout: float = 30.0) -> None:
        """Switch the bridge to ``episode`` and wait until the robot stands at its start."""
        request = SetParameters.Request()
        request.parameters = [Parameter(name='episode_id', value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value=episode.episode_id))]
        result = self._call(self._set_params, request).results[0]
        if not result.successful:
            raise RuntimeError(f'bridge refused episode {episode.episode_id}: {result.reason}')
        start = episode.start_pose

        def at_start() -> bool:
            pose = self.pose
            return (pose is not None and self._instruction == episode.instruction
                    and math.hypot(pose.x - start.x, pose.y - start.y) < 1e-3
                    and abs(pose.yaw - start.yaw) < 1e-3)
        self._wait(at_start, timeout, f'the bridge to load {episode.episode_id}')

    def run(self, episode: Episode, max_steps: int = 500, timeout: float = 600.0,
            alive: Callable[[], None] | None = None,
            on_step: Callable[[int, int], None] | None = None) -> EpisodeRun:
        """Run one episode through the node.

        Args:
            episode: The episode (the bridge is switched to it first).
            max_steps: Most actions; then the episode is cancelled.
            timeout: Wall-clock limit in seconds.
            alive: Called while waiting; raises if a node died.
            on_step: Called with ``(step, action id)`` for each new step.

        Returns:
            Its record (frames only with ``keep_frames``).
        """
        self.set_episode(episode)
        request = SetInstruction.Request(instruction=episode.instruction, reset_memory=True)
        end = time.monotonic() + 60.0
        while True:
            response = self._call(self._set_instruction, request, timeout=60.0)
            if response.accepted:
                break
            if time.monotonic() > end:
                raise RuntimeError(f'set_instruction refused: {response.message}')
            self.spin_for(0.5)  # the node may still be activating
        episode_id = response.episode_id
        poses, actions, frames, step_ms = [episode.start_pose], [], [], []
        last_step = -1
        cancelled = False
        start = time.monotonic()
        final: NavigationStatus | None = None
        while final is None:
            if time.monotonic() - start > timeout:
                raise TimeoutError(f'episode {episode.episode_id} took over {timeout:.0f} s')
            if alive is not None:
                alive()
            self._executor.spin_once(timeout_sec=0.05)
            status = self._status
            if status is None or status.episode_id != episode_id:
                continue
            if status.step > last_step and status.step > 0 and status.state != (
                    NavigationStatus.IDLE):
                # A new decision: the robot stands where the frame behind it was taken.
                last_step = status.step
                actions.append(int(status.last_action))
                step_ms.append(float(status.step_latency_ms))
                if last_step > 1:
                    stamp = self._step_stamps.get((episode_id, last_step))
                    pose = self.pose_at(stamp) if stamp is not None else None
                    pose = pose if pose is not None else self.pose
                    if pose is not None:
                        poses.append(pose)
                if self._frame is not None:
                    frames.append(self._frame)
                if on_step is not None:
                    on_step(last_step, int(status.last_action))
            if status.state in FINAL_STATES:
                final = status
            elif len(actions) > max_steps + 1 and not cancelled:  # the node's own cap failed
                self._call(self._cancel, Trigger.Request())
                cancelled = True
        self.spin_for(0.5)  # let the last motion settle
        if self.pose is not None:
            poses.append(self.pose)
        stopped = final.state == NavigationStatus.SUCCEEDED
        if stopped and actions and actions[-1] != int(Action.STOP):
            actions.append(int(Action.STOP))
        metrics = score(episode, _dedupe_poses(poses), stopped)
        logger.info('%s over ROS: %s after %d steps (%s), NE %.2f m', episode.episode_id,
                    STATE_NAMES.get(final.state, final.state), final.step, final.message,
                    metrics.ne)
        return EpisodeRun(episode, metrics, poses, actions, frames, step_ms,
                          time.monotonic() - start)


def _dedupe_poses(poses: list[Pose2D]) -> list[Pose2D]:
    """Drop poses that repeat their predecessor's position (e.g. a step sampled twice)."""
    out = poses[:1]
    for pose in poses[1:]:
        if math.hypot(pose.x - out[-1].x, pose.y - out[-1].y) > 1e-6 or pose.yaw != out[-1].yaw:
            out.append(pose)
    return out


def init_ros() -> None:
    """``rclpy.init`` for a client process, keeping DDS discovery on this host by default."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if not rclpy.ok():
        rclpy.init()
