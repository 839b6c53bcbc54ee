"""The ``janusvln`` lifecycle node: camera in, instruction service and action, motion out.

A thin adapter over the pure core: the image callback converts and stores the
newest frame in a :class:`~janusvln_ros.core.worker.LatestSlot`; the
:class:`~janusvln_ros.core.worker.InferenceWorker` thread runs the engine, one step per executed
primitive; the control timer publishes the :class:`~janusvln_ros.core.motion.ActionExecutor`'s
velocities and the worker's events (in odometry mode the odometry callback publishes the
velocities, one command per reading, stamped with its stamp when ``cmd_vel`` is TwistStamped;
the timer still runs the watchdogs and sends the zeros). Only executor threads touch ROS
entities.

Lifecycle: configure builds the engine (FAILURE with the reason on a bad config or checkpoint, so
it can be retried), activate starts the subscriptions, timers and worker, deactivate stops the
worker and publishes a zero Twist, cleanup frees the model.

Safety: one lock covers "check active, compute, publish" in the control timer and "deactivate,
publish zero" everywhere else, so the last Twist after any stop, cancel, error, deactivation or
shutdown is zero (linear and angular); ``main`` publishes zero once more after the executor has
stopped. Every callback is guarded: an unexpected exception stops the robot, ends the episode as
ERROR (with the reason in the status) and leaves the node running. A jump of the ROS clock
(``use_sim_time``, a looping bag, a simulator reset) stops the primitive in flight and restarts the
camera watchdog. An engine whose step is stuck past ``worker_join_timeout_s`` is never freed while
the worker thread is inside it: cleanup and activation are refused until the step returns.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import gc
import logging
import signal
import sys
import threading
import time
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray
from janusvln_interfaces.action import Navigate
from janusvln_interfaces.msg import NavigationStatus
from janusvln_interfaces.srv import SetInstruction
from nav_msgs.msg import Odometry
import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.episodes import EpisodeSnapshot, EpisodeState, FINAL_STATES
from janusvln_ros.core.errors import ConfigError, InputError
from janusvln_ros.core.factory import build_engine
from janusvln_ros.core.instructions import validate_instruction
from janusvln_ros.core.motion import ActionExecutor
from janusvln_ros.core.node_config import MotionConfig, NodeConfig
from janusvln_ros.core.slot import LatestSlot
from janusvln_ros.core.types import Engine
from janusvln_ros.core.worker import InferenceWorker
from janusvln_ros.ros.conversions import (image_to_rgb, make_cmd_vel, odometry_to_pose,
                                          snapshot_to_status, stamp_seconds)
from janusvln_ros.ros.diagnostics import health_to_diagnostics, NodeHealth
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
CANCEL_STATE_WAIT_S = 2.0   # how long a cancelled goal waits for the server's CANCELING state
BRIDGE_WAKE_S = 1.0         # the action bridge's safety-net wake-up (it is woken by events)
# Python's GIL switch interval in the node process (the default is 5 ms). Each message passes
# from the executor's spinning main thread to a pool thread and back; at 5 ms a thread that
# wants the GIL can wait up to that long at each hand-over, so answering one odometry reading
# took about 100 ms on a 2-core machine (the simulator in lockstep waited for every answer).
GIL_SWITCH_INTERVAL_S = 0.0005


def image_qos(reliability: str) -> QoSProfile:
    """Sensor-data QoS with depth 1 and the configured reliability."""
    policy = (ReliabilityPolicy.RELIABLE if reliability == 'reliable'
              else ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(depth=1, reliability=policy, history=HistoryPolicy.KEEP_LAST)


def _guarded(name: str, fallback: Callable[..., Any] | None = None) -> Callable:
    """Decorate a node callback so that an unexpected exception cannot end the executor.

    On an exception the node stops the robot, ends the episode as ERROR with the reason and
    keeps running; the callback then returns ``fallback(self, *args)`` (None without one).

    Args:
        name: The callback's name in the error message.
        fallback: Builds the return value after a failure (a refused service response...).
    """
    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(self: 'JanusVLNNode', *args: Any) -> Any:
            try:
                return method(self, *args)
            except Exception as exc:  # noqa: BLE001 - availability: the node must survive
                self._callback_failed(name, exc)
                if fallback is None:
                    return None
                try:
                    return fallback(self, *args)
                except Exception:  # noqa: BLE001
                    logger.exception('fallback of the %s callback failed', name)
                    return None
        return wrapper
    return decorate


def _refuse_instruction(node: 'JanusVLNNode', request: Any, response: Any) -> Any:
    response.accepted = False
    response.message = 'internal error; the robot was stopped (see the node log)'
    return response


def _refuse_trigger(node: 'JanusVLNNode', request: Any, response: Any) -> Any:
    response.success = False
    response.message = 'internal error; the robot was stopped (see the node log)'
    return response


def _abort_goal(node: 'JanusVLNNode', goal_handle: Any) -> Any:
    result = Navigate.Result()
    result.final_state = int(EpisodeState.ERROR)
    result.message = 'internal error; the robot was stopped (see the node log)'
    if goal_handle.is_active:
        goal_handle.abort()
    return result


class JanusVLNNode(LifecycleNode):
    """Lifecycle node running the JanusVLN engine on camera frames (node name ``janusvln``)."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare parameters and create the always-present interfaces (services, action)."""
        super().__init__(NODE_NAME, **kwargs)
        declare_config_parameters(self)
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._control_group = MutuallyExclusiveCallbackGroup()
        self._odom_group = MutuallyExclusiveCallbackGroup()    # answers odom without waiting
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._action_group = ReentrantCallbackGroup()
        # One lock around "check active, compute, publish" and "deactivate, publish zero".
        self._cmd_lock = threading.RLock()
        self._goal_lock = threading.Lock()
        self._goal_episodes: dict[bytes, int] = {}
        self._goal_cancels: set[bytes] = set()
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
        self._blind_since: float | None = None   # navigating with no frame received yet
        self._frames_received = 0
        self._frames_rejected = 0
        self._callback_errors = 0
        self._clock_jumps = 0
        self._camera_timed_out = False
        self._activity: list[Any] = []        # subscriptions and timers of the active state
        self._jump_handle: Any = None
        self._last_stats_log = 0.0
        self.configure_error = ''

        stamped = bool(self.get_parameter('use_stamped_cmd_vel').value)
        self._stamped = stamped
        self._cmd_pub = self.create_publisher(
            make_cmd_vel(0.0, 0.0, stamped).__class__, 'cmd_vel', CMD_VEL_QOS)
        self._status_pub = self.create_publisher(NavigationStatus, 'status', STATUS_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', STATUS_QOS)
        self.create_service(SetInstruction, 'set_instruction', self._set_instruction_callback,
                            callback_group=self._service_group)
        self.create_service(Trigger, 'cancel', self._cancel_callback,
                            callback_group=self._service_group)
        self._action_server = ActionServer(
            self, Navigate, 'navigate', execute_callback=self._execute_callback,
            goal_callback=self._goal_callback, cancel_callback=self._cancel_goal_callback,
            callback_group=self._action_group)
        self.add_on_set_parameters_callback(
            make_on_set_callback(self, self._apply_tunables_callback))
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

    @property
    def callback_errors(self) -> int:
        """Number of unexpected exceptions caught in callbacks."""
        return self._callback_errors

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
        # The model's objects live as long as the engine: keep them out of the cyclic garbage
        # collector, whose full passes over them (0.4 s measured with the shipped navigator)
        # stalled the control and odometry callbacks. Undone in _free_engine.
        gc.freeze()
        self._slot = LatestSlot()
        self._motion = ActionExecutor(self._motion_cfg)
        self._worker = InferenceWorker(engine, self._slot, self._motion,
                                       max_steps=self._node_cfg.max_steps,
                                       on_event=self._events.append, clock=self._now_s)
        self.configure_error = ''
        self.get_logger().info(f'Configured: engine {engine_cfg.engine!r} on '
                               f'{engine_cfg.device} in {time.perf_counter() - t0:.2f} s')
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self.configure_error = reason
        self.get_logger().error(f'Configure failed: {reason}')
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start the image subscription, timers and the worker.

        FAILURE (the node stays inactive) while the worker of the previous activation is still
        inside a stuck ``engine.step``.
        """
        self.get_logger().info('Activating...')
        assert self._worker is not None and self._motion is not None
        if self._worker.alive:
            self.get_logger().error(
                'Activate refused: the inference worker is still inside engine.step (running '
                f'for {self._worker.step_running_s:.1f} s); retry when it has returned')
            return TransitionCallbackReturn.FAILURE
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
                callback_group=self._odom_group))
        self._jump_handle = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-1),
                          on_clock_change=True),
            post_callback=self._clock_jump_callback)
        self._last_frame_t = self._blind_since = None
        self._camera_timed_out = False
        self._worker.start()
        with self._cmd_lock:
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
        """Free the engine and any device memory (FAILURE while a stuck step still uses it)."""
        self.get_logger().info('Cleaning up...')
        if not self._free_engine():
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info('Cleaned up')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop everything and free the engine."""
        self._stop_activity('node shutting down')
        self._free_engine(defer=True)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the robot; go back to unconfigured."""
        self._stop_activity('lifecycle error')
        self._free_engine(defer=True)
        return TransitionCallbackReturn.SUCCESS

    def shutdown_safely(self) -> None:
        """Stop the worker and the robot (called from ``main`` on SIGINT/SIGTERM)."""
        self._shutting_down = True
        self._stop_activity('node shutting down')
        self._free_engine(defer=True)

    def publish_final_zero(self) -> None:
        """Publish one more zero Twist (``main`` calls it after the executor has stopped)."""
        with self._cmd_lock:
            self._active = False
            self._publish_zero()

    def _stop_activity(self, reason: str) -> None:
        with self._cmd_lock:
            was_active = self._active
            self._active = False
            motion = self._motion
            if motion is not None:
                motion.stop(reason)
            if was_active or self._moving:
                self._publish_zero()
        for entity in self._activity:
            if hasattr(entity, 'cancel'):
                entity.cancel()
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self._activity = []
        if self._jump_handle is not None:
            self._jump_handle.unregister()
            self._jump_handle = None
        worker = self._worker
        if worker is not None:
            worker.stop(reason)
            if not worker.join(self._node_cfg.worker_join_timeout_s):
                text = ('the inference worker is stuck inside engine.step (running for '
                        f'{worker.step_running_s:.1f} s, worker_join_timeout_s is '
                        f'{self._node_cfg.worker_join_timeout_s} s); the robot is stopped, the '
                        'engine stays allocated until the step returns, and cleanup and '
                        'activation are refused until then')
                self.get_logger().error(text)
                self._status_pub.publish(snapshot_to_status(
                    worker.snapshot(), stamp=self.get_clock().now().to_msg(), message=text))
        with self._cmd_lock:
            if motion is not None:
                motion.stop(reason)
            if was_active or self._moving:
                self._publish_zero()
        self._drain_events()
        self._publish_diagnostics()

    def _free_engine(self, defer: bool = False) -> bool:
        """Free the engine; never while the worker thread may still be inside it.

        Args:
            defer: When the worker is stuck in a step, close the engine from a background
                thread once the step returns (shutdown) instead of refusing (cleanup).

        Returns:
            False if the engine could not be freed now (the worker is stuck in a step).
        """
        worker, engine = self._worker, self._engine
        if worker is not None and worker.alive:
            if not defer:
                self.get_logger().error(
                    'Cleanup refused: the inference worker is still inside engine.step '
                    f'(running for {worker.step_running_s:.1f} s); the engine is not freed '
                    'while in use. Retry when the step has returned.')
                return False
            self.get_logger().error('the inference worker is still inside engine.step; the '
                                    'engine will be closed when the step returns')
            threading.Thread(target=_close_after, args=(worker, engine), daemon=True,
                             name='janusvln-deferred-close').start()
            engine = None
        self._engine = None
        self._worker = None
        self._motion = None
        self._slot = None
        if engine is not None:
            try:
                engine.close()
            except Exception as exc:  # noqa: BLE001
                self.get_logger().warning(f'engine.close failed: {exc}')
        gc.unfreeze()
        gc.collect()
        torch = sys.modules.get('torch')
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        return True

    @_guarded('parameters')
    def _apply_tunables_callback(self, node_cfg: NodeConfig, motion_cfg: MotionConfig) -> None:
        self._node_cfg = node_cfg
        self._motion_cfg = motion_cfg
        motion, worker = self._motion, self._worker
        if motion is not None:
            motion.update_config(motion_cfg)      # from the next primitive on
        if worker is not None:
            worker.set_max_steps(node_cfg.max_steps)

    # ------------------------------------------------------------------ callbacks
    @_guarded('image')
    def _image_callback(self, msg: Image) -> None:
        slot, motion = self._slot, self._motion      # local copies: cleanup may reset them
        if not self._active or slot is None:
            return
        try:
            rgb = image_to_rgb(msg)
        except InputError as exc:
            self._frames_rejected += 1
            if motion is not None and motion.stop('bad image'):
                with self._cmd_lock:
                    self._publish_zero()
            self.get_logger().warning(f'image rejected: {exc}',
                                      throttle_duration_sec=WARN_PERIOD_S)
            self._publish_status_message(f'image rejected: {exc}')
            return
        self._last_frame_t = self._now_s()
        self._frames_received += 1
        slot.put(rgb, stamp=msg.header.stamp, capture_s=stamp_seconds(msg.header.stamp))

    @_guarded('odometry')
    def _odom_callback(self, msg: Odometry) -> None:
        motion = self._motion
        if motion is not None:
            x, y, yaw = odometry_to_pose(msg)
            twist = msg.twist.twist
            stamp = stamp_seconds(msg.header.stamp)
            motion.update_odometry(x, y, yaw, self._now_s(),
                                   twist=(twist.linear.x, twist.angular.z),
                                   stamp=stamp)
            # Act on the new reading now, not at the next control tick: the speed near the
            # target and the zero Twist once it is reached go out with no timer delay, stamped
            # (TwistStamped) with the stamp of the reading they answer.
            self._drive(stamp=msg.header.stamp if stamp is not None else None)

    @_guarded('clock jump')
    def _clock_jump_callback(self, jump: TimeJump) -> None:
        now = self._now_s()
        self._clock_jumps += 1
        with self._cmd_lock:
            motion = self._motion
            stopped = motion is not None and motion.clock_jumped(now)
            if stopped or self._moving:
                self._publish_zero()
            if self._last_frame_t is not None:
                self._last_frame_t = now           # restart the camera watchdog
            if self._blind_since is not None:
                self._blind_since = now
        self.get_logger().warning(
            f'ROS clock jumped by {jump.delta.nanoseconds * 1e-9:+.3f} s '
            f'({jump.clock_change.name}); '
            + ('primitive stopped, ' if stopped else '') + 'camera watchdog restarted')

    @_guarded('control')
    def _control_callback(self) -> None:
        # In odometry mode velocities answer odom readings (_odom_callback), one command per
        # reading; the timer still runs the watchdogs and sends the zero when a primitive ends.
        self._drive(publish_motion=self._motion_cfg.motion_mode != 'odometry')
        self._drain_events()

    def _drive(self, publish_motion: bool = True, stamp: Any = None) -> None:
        """Advance the motion to now and publish its velocity (zero once, when it ends).

        Args:
            publish_motion: Publish the velocity of a running primitive (False: only the zero).
            stamp: Stamp of the velocity of a running primitive (None: now); a zero is always
                stamped now.
        """
        with self._cmd_lock:
            motion, worker = self._motion, self._worker
            if not self._active or motion is None or worker is None:
                return
            now = self._now_s()
            if self._last_frame_t is not None and now < self._last_frame_t:
                self._last_frame_t = now           # the clock went backwards: restart
            timeout = self._node_cfg.camera_timeout_s
            stale = self._last_frame_t is None or now - self._last_frame_t > timeout
            if stale and motion.busy:
                motion.stop('camera timeout')
            warn = False
            navigating = stale and worker.snapshot().state == EpisodeState.NAVIGATING
            # With no frame since activation the watchdog counts from the moment the episode
            # was first seen navigating: an instruction taken before the camera ever delivered
            # must not wait in silence.
            if navigating and self._last_frame_t is None and self._blind_since is None:
                self._blind_since = now
            elif not navigating:
                self._blind_since = None
            since = self._last_frame_t if self._last_frame_t is not None else self._blind_since
            if navigating and not self._camera_timed_out and since is not None \
                    and now - since > timeout:
                self._camera_timed_out = warn = True
            elif not stale:
                self._camera_timed_out = False
            command = motion.command(now)
            if command.active:
                if publish_motion:
                    self._publish_cmd(command.linear, command.angular, stamp)
                    self._moving = True
            elif self._moving:
                self._publish_zero()
        if warn:
            none = ' (none received since activation)' if self._last_frame_t is None else ''
            text = f'camera timeout: no image for more than {timeout:.2f} s{none}; robot stopped'
            self.get_logger().warning(text)
            self._publish_status_message(text)

    @_guarded('status timer')
    def _status_timer_callback(self) -> None:
        worker, slot = self._worker, self._slot
        if not self._active or worker is None:
            return
        self._status_pub.publish(snapshot_to_status(
            worker.snapshot(), stamp=self.get_clock().now().to_msg()))
        self._publish_diagnostics()
        now = time.monotonic()
        if now - self._last_stats_log >= 10.0 and worker.step_stats.count:
            self._last_stats_log = now
            s = worker.step_stats.summary()
            self.get_logger().info(
                f'step latency p50 {s["p50"]:.1f} ms, p95 {s["p95"]:.1f} ms over {s["n"]} '
                f'steps; frames received {self._frames_received}, rejected '
                f'{self._frames_rejected}, dropped {slot.overwritten if slot else 0}; '
                f'unparseable outputs {worker.unparseable_total}')

    @_guarded('set_instruction', _refuse_instruction)
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
            self.get_logger().warning(f'instruction refused: {exc}')
            self._publish_status_message(f'instruction refused: {exc}')
            return response
        response.accepted = True
        response.episode_id = episode_id
        response.message = f'episode {episode_id} started'
        self.get_logger().info(f'instruction accepted as episode {episode_id}: '
                               f'{text[:80]!r}')
        return response

    @_guarded('cancel', _refuse_trigger)
    def _cancel_callback(self, request: Trigger.Request,
                         response: Trigger.Response) -> Trigger.Response:
        worker = self._worker
        if not self._active or worker is None:
            response.success = False
            response.message = f'node is not active (lifecycle state {self._state_label()})'
            return response
        episode = worker.snapshot().episode_id
        cancelled = worker.cancel('cancelled by the cancel service')
        self._stop_motion('cancelled by the cancel service')
        response.success = cancelled
        response.message = (f'episode {episode} cancelled' if cancelled
                            else 'no episode is running')
        return response

    # ------------------------------------------------------------------ action
    @_guarded('navigate goal', lambda node, goal: GoalResponse.REJECT)
    def _goal_callback(self, goal: Navigate.Goal) -> GoalResponse:
        if not self._active or self._worker is None:
            self.get_logger().warning('navigate goal rejected: node is not active')
            return GoalResponse.REJECT
        try:
            validate_instruction(goal.instruction, self._node_cfg.max_instruction_chars)
        except InputError as exc:
            self.get_logger().warning(f'navigate goal rejected: {exc}')
            self._publish_status_message(f'navigate goal rejected: {exc}')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    @_guarded('navigate cancel', lambda node, goal_handle: CancelResponse.ACCEPT)
    def _cancel_goal_callback(self, goal_handle: Any) -> CancelResponse:
        """Cancel the goal's episode at once, whether it is queued or running."""
        key = bytes(goal_handle.goal_id.uuid)
        with self._goal_lock:
            self._goal_cancels.add(key)
            episode_id = self._goal_episodes.get(key)
        worker = self._worker
        if episode_id is not None and worker is not None:
            worker.cancel('navigate goal cancelled', episode_id=episode_id)
            self._stop_motion('navigate goal cancelled')
        return CancelResponse.ACCEPT

    @_guarded('navigate execute', _abort_goal)
    def _execute_callback(self, goal_handle: Any) -> Navigate.Result:
        result = Navigate.Result()
        worker = self._worker
        if worker is None or not self._active:
            result.final_state, result.message = EpisodeState.ERROR, 'node is not active'
            goal_handle.abort()
            return result
        key = bytes(goal_handle.goal_id.uuid)
        try:
            episode_id = worker.submit(goal_handle.request.instruction, True)
        except InputError as exc:
            result.final_state, result.message = EpisodeState.ERROR, str(exc)
            goal_handle.abort()
            return result
        with self._goal_lock:
            self._goal_episodes[key] = episode_id
            cancel_early = key in self._goal_cancels
        try:
            if cancel_early:       # the cancel request came before the episode had an id
                worker.cancel('navigate goal cancelled', episode_id=episode_id)
                self._stop_motion('navigate goal cancelled')
            return self._bridge_episode(goal_handle, worker, episode_id, result)
        finally:
            with self._goal_lock:
                self._goal_episodes.pop(key, None)
                self._goal_cancels.discard(key)

    def _bridge_episode(self, goal_handle: Any, worker: InferenceWorker, episode_id: int,
                        result: Navigate.Result) -> Navigate.Result:
        """Relay an episode's steps as feedback until it ends; woken by the worker's events."""
        sent = 0
        version = worker.records.version
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
                worker.cancel('navigate goal cancelled', episode_id=episode_id)
                final = worker.final(episode_id)
            if final is None and (not self._active or self._shutting_down
                                  or self._worker is not worker):
                final = EpisodeSnapshot(episode_id=episode_id, state=EpisodeState.STOPPED,
                                        step=sent, message='node deactivated')
            if final is not None:
                return self._finish_goal(goal_handle, final, result)
            version = worker.wait_change(version, BRIDGE_WAKE_S)

    def _finish_goal(self, goal_handle: Any, final: EpisodeSnapshot,
                     result: Navigate.Result) -> Navigate.Result:
        result.final_state = int(final.state)
        result.steps = final.step
        result.message = final.message
        key = bytes(goal_handle.goal_id.uuid)
        with self._goal_lock:
            cancelled = key in self._goal_cancels
        if cancelled and final.state != EpisodeState.SUCCEEDED:
            # the server enters CANCELING right after our cancel callback has returned
            deadline = time.monotonic() + CANCEL_STATE_WAIT_S
            while not goal_handle.is_cancel_requested and time.monotonic() < deadline:
                time.sleep(0.005)
        if goal_handle.is_cancel_requested and final.state != EpisodeState.SUCCEEDED:
            result.final_state = int(EpisodeState.STOPPED)
            result.message = 'navigate goal cancelled'
            goal_handle.canceled()
        elif final.state == EpisodeState.SUCCEEDED:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    # ------------------------------------------------------------------ helpers
    def _callback_failed(self, name: str, exc: BaseException) -> None:
        """Stop the robot and report ERROR after an unexpected exception in a callback."""
        self._callback_errors += 1
        logger.error('unexpected error in the %s callback', name, exc_info=exc)
        text = f'internal error in the {name} callback: {type(exc).__name__}: {exc}'
        try:
            self.get_logger().error(f'{text}; robot stopped, node kept alive')
            worker = self._worker
            self._stop_motion(text)
            if worker is not None:
                worker.abort(text)
            snap = worker.snapshot() if worker is not None else EpisodeSnapshot()
            self._status_pub.publish(snapshot_to_status(
                dataclasses.replace(snap, state=EpisodeState.ERROR),
                stamp=self.get_clock().now().to_msg(), message=text))
        except Exception:  # noqa: BLE001 - never let the error path raise
            logger.exception('could not report the %s callback error', name)

    def _stop_motion(self, reason: str) -> None:
        with self._cmd_lock:
            motion = self._motion
            if motion is not None:
                motion.stop(reason)
            self._publish_zero()

    def _publish_cmd(self, linear: float, angular: float, stamp: Any = None) -> None:
        self._cmd_pub.publish(make_cmd_vel(
            linear, angular, self._stamped,
            stamp if stamp is not None else self.get_clock().now().to_msg(),
            self._node_cfg.cmd_vel_frame_id))

    def _publish_zero(self) -> None:
        with self._cmd_lock:
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

    def health(self) -> NodeHealth | None:
        """The node's health reading (None while unconfigured)."""
        worker, slot = self._worker, self._slot
        if worker is None:
            return None
        stats = worker.step_stats.summary() if worker.step_stats.count else {}
        last = self._last_frame_t
        return NodeHealth(
            lifecycle_state=self._state_label(), snapshot=worker.snapshot(),
            step_p50_ms=float(stats.get('p50', float('nan'))),
            step_p95_ms=float(stats.get('p95', float('nan'))),
            step_budget_ms=self._node_cfg.step_latency_budget_ms,
            steps_total=worker.steps_total, frames_received=self._frames_received,
            frames_dropped=slot.overwritten if slot is not None else 0,
            frames_rejected=self._frames_rejected, frames_stale=worker.stale_frames_skipped,
            camera_age_s=None if last is None else max(0.0, self._now_s() - last),
            camera_timed_out=self._camera_timed_out,
            unparseable_outputs=worker.unparseable_total,
            callback_errors=self._callback_errors, clock_jumps=self._clock_jumps,
            worker_stuck_s=worker.step_running_s if worker.alive and not self._active else 0.0)

    def _publish_diagnostics(self) -> None:
        try:
            health = self.health()
            if health is not None:
                self._diag_pub.publish(health_to_diagnostics(
                    health, self.get_fully_qualified_name(), self.get_clock().now().to_msg()))
        except Exception:  # noqa: BLE001 - diagnostics must never break a stop
            logger.exception('could not publish diagnostics')

    def _publish_status_message(self, text: str) -> None:
        worker = self._worker
        snap = worker.snapshot() if worker is not None else EpisodeSnapshot()
        self._status_pub.publish(snapshot_to_status(
            snap, stamp=self.get_clock().now().to_msg(), message=text))

    def _state_label(self) -> str:
        return lifecycle_state(self)


def _close_after(worker: InferenceWorker, engine: Engine | None) -> None:
    """Close ``engine`` once ``worker``'s thread has left it (a deferred shutdown)."""
    worker.join()
    if engine is not None:
        try:
            engine.close()
        except Exception:  # noqa: BLE001
            logger.exception('deferred engine.close failed')
        logger.info('the engine of a stuck worker was closed after its step returned')


def lifecycle_state(node: LifecycleNode) -> str:
    """Label of the node's lifecycle state ('unconfigured', 'inactive', 'active'...)."""
    return str(node._state_machine.current_state[1])  # rclpy has no public getter


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; returns 0 on a clean shutdown.

    rclpy's own signal handling is disabled: with it, a spinning node sometimes died with exit
    code 1 on SIGINT (seen with the Jazzy wheels). Here the signals only set an event; the spin
    loop ends, the worker stops, a zero Twist is published and the node is destroyed.
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
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
            node.publish_final_zero()      # after the executor: nothing can publish after it
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
