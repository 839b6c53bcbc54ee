"""The ``janusvln`` lifecycle node: camera in, instruction service and action, motion out.

A thin adapter over the pure core (house style §3.2): the image callback converts and stores the
newest frame in a :class:`~janusvln_ros.core.worker.LatestSlot`; the
:class:`~janusvln_ros.core.worker.InferenceWorker` thread runs the engine, one step per executed
primitive; the control timer publishes the :class:`~janusvln_ros.core.motion.ActionExecutor`'s
velocities and the worker's events. Only executor threads touch ROS entities.

Lifecycle: configure builds the engine (FAILURE with the reason on a bad config or checkpoint, so
it can be retried), activate starts the subscriptions, timers and worker, deactivate stops the
worker and publishes a zero Twist, cleanup frees the model.
"""

from __future__ import annotations

import collections
import gc
import logging
import signal
import sys
import threading
import time
from typing import Any

from action_msgs.msg import GoalStatus  # noqa: F401 - documents the result states used
from janusvln_interfaces.action import Navigate
from janusvln_interfaces.msg import NavigationStatus
from janusvln_interfaces.srv import SetInstruction
from nav_msgs.msg import Odometry
import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.errors import ConfigError, InputError
from janusvln_ros.core.factory import build_engine
from janusvln_ros.core.motion import ActionExecutor
from janusvln_ros.core.node_config import MotionConfig, NodeConfig
from janusvln_ros.core.types import Engine
from janusvln_ros.core.worker import (EpisodeSnapshot, EpisodeState, FINAL_STATES,
                                      InferenceWorker, LatestSlot, validate_instruction)
from janusvln_ros.ros.conversions import (image_to_rgb, make_cmd_vel, odometry_to_pose,
                                          snapshot_to_status)
from janusvln_ros.ros.params import (config_from_parameters, declare_config_parameters,
                                     make_on_set_callback)
from janusvln_ros.ros.process_guard import stop_on_parent_death

logger = logging.getLogger(__name__)

NODE_NAME = 'janusvln'
CMD_VEL_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST)
STATUS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        history=HistoryPolicy.KEEP_LAST)
ODOM_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                      history=HistoryPolicy.KEEP_LAST)
WARN_PERIOD_S = 1.0


def image_qos(reliability: str) -> QoSProfile:
    """Sensor-data QoS with depth 1 and the configured reliability."""
    policy = (ReliabilityPolicy.RELIABLE if reliability == 'reliable'
              else ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(depth=1, reliability=policy, history=HistoryPolicy.KEEP_LAST)


class JanusVLNNode(LifecycleNode):
    """Lifecycle node running the JanusVLN engine on camera frames (node name ``janusvln``)."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare parameters and create the always-present interfaces (services, action)."""
        super().__init__(NODE_NAME, **kwargs)
        declare_config_parameters(self)
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._control_group = MutuallyExclusiveCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._action_group = ReentrantCallbackGroup()
        self._lock = threading.Lock()
        self._events: collections.deque[EpisodeSnapshot] = collections.deque(maxlen=1000)
        self._engine: Engine | None = None
        self._worker: InferenceWorker | None = None
        self._motion: ActionExecutor | None = None
        self._slot: LatestSlot | None = None
        self._node_cfg = NodeConfig()
        self._motion_cfg = MotionConfig()
        self._active = False
        self._shutting_down = False
        self._moving = False
        self._last_frame_t: float | None = None
        self._frames_received = 0
        self._frames_rejected = 0
        self._warnings: dict[str, float] = {}
        self._camera_timed_out = False
        self._activity: list[Any] = []        # subscriptions and timers of the active state
        self._last_stats_log = 0.0
        self.configure_error = ''

        stamped = bool(self.get_parameter('use_stamped_cmd_vel').value)
        self._stamped = stamped
        self._cmd_pub = self.create_publisher(
            make_cmd_vel(0.0, 0.0, stamped).__class__, 'cmd_vel', CMD_VEL_QOS)
        self._status_pub = self.create_publisher(NavigationStatus, 'status', STATUS_QOS)
        self.create_service(SetInstruction, 'set_instruction', self._set_instruction_callback,
                            callback_group=self._service_group)
        self.create_service(Trigger, 'cancel', self._cancel_callback,
                            callback_group=self._service_group)
        self._action_server = ActionServer(
            self, Navigate, 'navigate', execute_callback=self._execute_callback,
            goal_callback=self._goal_callback, cancel_callback=self._cancel_goal_callback,
            callback_group=self._action_group)
        self.add_on_set_parameters_callback(make_on_set_callback(self, self._apply_tunables))
        self.get_logger().info('janusvln node created (unconfigured)')

    # ------------------------------------------------------------------ properties
    @property
    def autostart(self) -> bool:
        """Value of the ``autostart`` parameter."""
        return bool(self.get_parameter('autostart').value)

    @property
    def worker(self) -> InferenceWorker | None:
        """Return the inference worker, or None while unconfigured."""
        return self._worker

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate the configuration and build the engine (slow: loads the model)."""
        self.get_logger().info('Configuring...')
        try:
            engine_cfg = config_from_parameters(self, EngineConfig)
            self._node_cfg = config_from_parameters(self, NodeConfig)
            self._motion_cfg = config_from_parameters(self, MotionConfig)
        except (ConfigError, TypeError) as exc:
            return self._configure_failed(f'invalid configuration: {exc}')
        try:
            t0 = time.perf_counter()
            engine = build_engine(engine_cfg)
        except Exception as exc:  # noqa: BLE001 - any load failure must stay retryable
            return self._configure_failed(f'could not build the {engine_cfg.engine!r} engine '
                                          f'from {engine_cfg.model_path!r}: {exc}')
        self._engine = engine
        self._slot = LatestSlot()
        self._motion = ActionExecutor(self._motion_cfg)
        self._worker = InferenceWorker(engine, self._slot, self._motion,
                                       max_steps=self._node_cfg.max_steps,
                                       on_event=self._events.append)
        self.configure_error = ''
        self.get_logger().info(f'Configured: engine {engine_cfg.engine!r} on '
                               f'{engine_cfg.device} in {time.perf_counter() - t0:.2f} s')
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self.configure_error = reason
        self.get_logger().error(f'Configure failed: {reason}')
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start the image subscription, timers and the worker."""
        self.get_logger().info('Activating...')
        assert self._worker is not None and self._motion is not None
        cfg, mcfg = self._node_cfg, self._motion_cfg
        self._activity = [
            self.create_subscription(Image, 'image_raw', self._image_callback,
                                     image_qos(cfg.image_reliability),
                                     callback_group=self._image_group),
            self.create_timer(mcfg.control_period_s, self._control_callback,
                              callback_group=self._control_group),
            self.create_timer(1.0 / cfg.status_rate_hz, self._status_timer_callback,
                              callback_group=self._control_group),
        ]
        if mcfg.motion_mode == 'odometry':
            self._activity.append(self.create_subscription(
                Odometry, 'odom', self._odom_callback, ODOM_QOS,
                callback_group=self._control_group))
        self._last_frame_t = None
        self._camera_timed_out = False
        self._worker.start()
        self._active = True
        self.get_logger().info(f'Activated: motion {mcfg.motion_mode}, image QoS '
                               f'{cfg.image_reliability}, control {mcfg.control_rate_hz} Hz')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker and the timers, and publish a zero Twist."""
        self.get_logger().info('Deactivating...')
        self._stop_activity('node deactivated')
        self.get_logger().info('Deactivated')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the engine and any device memory."""
        self.get_logger().info('Cleaning up...')
        self._free_engine()
        self.get_logger().info('Cleaned up')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop everything and free the engine."""
        self._stop_activity('node shutting down')
        self._free_engine()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the robot; go back to unconfigured."""
        self._stop_activity('lifecycle error')
        self._free_engine()
        return TransitionCallbackReturn.SUCCESS

    def shutdown_safely(self) -> None:
        """Stop the worker and the robot (called from ``main`` on SIGINT/SIGTERM)."""
        self._shutting_down = True
        self._stop_activity('node shutting down')
        self._free_engine()

    def _stop_activity(self, reason: str) -> None:
        was_active = self._active
        self._active = False
        for entity in self._activity:
            if hasattr(entity, 'cancel'):
                entity.cancel()
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self._activity = []
        if self._worker is not None:
            self._worker.stop(reason)
            if not self._worker.join(self._node_cfg.worker_join_timeout_s):
                self.get_logger().error('the inference worker did not stop in '
                                        f'{self._node_cfg.worker_join_timeout_s} s')
        if self._motion is not None:
            self._motion.stop(reason)
        if was_active or self._moving:
            self._publish_zero()
            self._drain_events()

    def _free_engine(self) -> None:
        engine = self._engine
        self._engine = None
        self._worker = None
        self._motion = None
        self._slot = None
        if engine is not None:
            try:
                engine.close()
            except Exception as exc:  # noqa: BLE001
                self.get_logger().warning(f'engine.close failed: {exc}')
        gc.collect()
        torch = sys.modules.get('torch')
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _apply_tunables(self, node_cfg: NodeConfig, motion_cfg: MotionConfig) -> None:
        self._node_cfg = node_cfg
        self._motion_cfg = motion_cfg
        if self._motion is not None:
            self._motion.update_config(motion_cfg)
        if self._worker is not None:
            self._worker.set_max_steps(node_cfg.max_steps)

    # ------------------------------------------------------------------ callbacks
    def _image_callback(self, msg: Image) -> None:
        if not self._active or self._slot is None:
            return
        try:
            rgb = image_to_rgb(msg)
        except InputError as exc:
            self._frames_rejected += 1
            if self._motion is not None and self._motion.stop('bad image'):
                self._publish_zero()
            self._warn(f'image:{exc}', f'image rejected: {exc}')
            return
        self._last_frame_t = self._now_s()
        self._frames_received += 1
        self._slot.put(rgb, stamp=msg.header.stamp)

    def _odom_callback(self, msg: Odometry) -> None:
        if self._motion is not None:
            x, y, yaw = odometry_to_pose(msg)
            self._motion.update_odometry(x, y, yaw, self._now_s())

    def _control_callback(self) -> None:
        motion, worker = self._motion, self._worker
        if not self._active or motion is None or worker is None:
            return
        now = self._now_s()
        timeout = self._node_cfg.camera_timeout_s
        stale = self._last_frame_t is None or now - self._last_frame_t > timeout
        if stale and motion.busy:
            motion.stop('camera timeout')
        if stale and worker.snapshot().state == EpisodeState.NAVIGATING \
                and not self._camera_timed_out and self._last_frame_t is not None:
            self._camera_timed_out = True
            self._warn('camera', f'camera timeout: no image for more than {timeout:.2f} s; '
                       'robot stopped', force=True)
        elif not stale:
            self._camera_timed_out = False
        command = motion.command(now)
        if command.active:
            self._publish_cmd(command.linear, command.angular)
            self._moving = True
        elif self._moving:
            self._publish_zero()
        self._drain_events()

    def _status_timer_callback(self) -> None:
        worker = self._worker
        if not self._active or worker is None:
            return
        self._status_pub.publish(snapshot_to_status(
            worker.snapshot(), stamp=self.get_clock().now().to_msg()))
        now = time.monotonic()
        if now - self._last_stats_log >= 10.0 and worker.step_stats.count:
            self._last_stats_log = now
            s = worker.step_stats.summary()
            self.get_logger().info(
                f'step latency p50 {s["p50"]:.1f} ms, p95 {s["p95"]:.1f} ms over {s["n"]} '
                f'steps; frames received {self._frames_received}, rejected '
                f'{self._frames_rejected}, dropped {self._slot.overwritten if self._slot else 0}')

    def _set_instruction_callback(self, request: SetInstruction.Request,
                                  response: SetInstruction.Response) -> SetInstruction.Response:
        worker = self._worker
        if not self._active or worker is None:
            response.accepted = False
            response.message = f'node is not active (lifecycle state {self._state_label()})'
            return response
        try:
            text = validate_instruction(request.instruction, self._node_cfg.max_instruction_chars)
            episode_id = worker.submit(text, bool(request.reset_memory))
        except InputError as exc:
            response.accepted = False
            response.message = str(exc)
            self._warn('instruction', f'instruction refused: {exc}', force=True)
            return response
        response.accepted = True
        response.episode_id = episode_id
        response.message = f'episode {episode_id} started'
        self.get_logger().info(f'instruction accepted as episode {episode_id}: '
                               f'{text[:80]!r}')
        return response

    def _cancel_callback(self, request: Trigger.Request,
                         response: Trigger.Response) -> Trigger.Response:
        worker = self._worker
        if not self._active or worker is None:
            response.success = False
            response.message = f'node is not active (lifecycle state {self._state_label()})'
            return response
        episode = worker.snapshot().episode_id
        cancelled = worker.cancel('cancelled by the cancel service')
        self._publish_zero()
        response.success = cancelled
        response.message = (f'episode {episode} cancelled' if cancelled
                            else 'no episode is running')
        return response

    # ------------------------------------------------------------------ action
    def _goal_callback(self, goal: Navigate.Goal) -> GoalResponse:
        if not self._active or self._worker is None:
            self.get_logger().warning('navigate goal rejected: node is not active')
            return GoalResponse.REJECT
        try:
            validate_instruction(goal.instruction, self._node_cfg.max_instruction_chars)
        except InputError as exc:
            self._warn('instruction', f'navigate goal rejected: {exc}', force=True)
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _cancel_goal_callback(self, goal_handle: Any) -> CancelResponse:
        return CancelResponse.ACCEPT

    def _execute_callback(self, goal_handle: Any) -> Navigate.Result:
        result = Navigate.Result()
        worker = self._worker
        if worker is None or not self._active:
            result.final_state, result.message = EpisodeState.ERROR, 'node is not active'
            goal_handle.abort()
            return result
        try:
            episode_id = worker.submit(goal_handle.request.instruction, True)
        except InputError as exc:
            result.final_state, result.message = EpisodeState.ERROR, str(exc)
            goal_handle.abort()
            return result
        sent = 0
        while True:
            for record in worker.history(episode_id, sent):
                feedback = Navigate.Feedback()
                feedback.step = record.step
                feedback.last_action = int(record.action)
                feedback.step_latency_ms = float(record.latency_ms)
                goal_handle.publish_feedback(feedback)
                sent += 1
            final = worker.final(episode_id)
            if final is None and goal_handle.is_cancel_requested:
                if worker.snapshot().episode_id == episode_id:
                    worker.cancel('navigate goal cancelled')
                    self._publish_zero()
                final = self._wait_final(worker, episode_id, 5.0)
                result.final_state = EpisodeState.STOPPED
                result.steps = final.step if final else sent
                result.message = 'navigate goal cancelled'
                goal_handle.canceled()
                return result
            if final is None and (not self._active or self._shutting_down
                                  or self._worker is not worker):
                final = EpisodeSnapshot(episode_id=episode_id, state=EpisodeState.STOPPED,
                                        step=sent, message='node deactivated')
            if final is not None:
                result.final_state = int(final.state)
                result.steps = final.step
                result.message = final.message
                if final.state == EpisodeState.SUCCEEDED:
                    goal_handle.succeed()
                else:
                    goal_handle.abort()
                return result
            time.sleep(0.02)

    @staticmethod
    def _wait_final(worker: InferenceWorker, episode_id: int,
                    timeout: float) -> EpisodeSnapshot | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            final = worker.final(episode_id)
            if final is not None:
                return final
            time.sleep(0.02)
        return None

    # ------------------------------------------------------------------ helpers
    def _publish_cmd(self, linear: float, angular: float) -> None:
        self._cmd_pub.publish(make_cmd_vel(linear, angular, self._stamped,
                                           self.get_clock().now().to_msg(),
                                           self._node_cfg.cmd_vel_frame_id))

    def _publish_zero(self) -> None:
        self._moving = False
        self._publish_cmd(0.0, 0.0)

    def _drain_events(self) -> None:
        while True:
            try:
                snap = self._events.popleft()
            except IndexError:
                return
            self._status_pub.publish(snapshot_to_status(snap))
            if snap.state in FINAL_STATES:
                self._publish_zero()

    def _warn(self, key: str, text: str, force: bool = False) -> None:
        """Log and publish a status message, at most once a second per key unless forced."""
        now = time.monotonic()
        if not force and now - self._warnings.get(key, -1e9) < WARN_PERIOD_S:
            return
        if len(self._warnings) > 100:
            self._warnings.clear()
        self._warnings[key] = now
        self.get_logger().warning(text)
        worker = self._worker
        snap = worker.snapshot() if worker is not None else EpisodeSnapshot()
        self._status_pub.publish(snapshot_to_status(
            snap, stamp=self.get_clock().now().to_msg(), message=text))

    def _state_label(self) -> str:
        return lifecycle_state(self)


def lifecycle_state(node: LifecycleNode) -> str:
    """Label of the node's lifecycle state ('unconfigured', 'inactive', 'active'...)."""
    return str(node._state_machine.current_state[1])  # rclpy has no public getter


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; returns 0 on a clean shutdown.

    rclpy's own signal handling is disabled: with it, a spinning node sometimes died with exit
    code 1 on SIGINT (ros2-env.md §8). Here the signals only set an event; the spin loop ends,
    the worker stops, a zero Twist is published and the node is destroyed.
    """
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] %(name)s: %(message)s')
    rclpy.init(args=args if args is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop_on_parent_death()    # orphaned by a killed `ros2 launch` (ros2/launch#666): stop too
    node: JanusVLNNode | None = None
    executor: MultiThreadedExecutor | None = None
    try:
        node = JanusVLNNode()
        executor = MultiThreadedExecutor(num_threads=6)
        executor.add_node(node)
        if node.autostart and not stop.is_set():
            node.trigger_configure()
            if lifecycle_state(node) == 'inactive':
                node.trigger_activate()
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        if node is not None:
            node.shutdown_safely()
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
