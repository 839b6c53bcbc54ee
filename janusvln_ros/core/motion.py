"""Discrete action to velocity commands: timed (open loop) or closed loop on odometry.

The :class:`ActionExecutor` is a small thread-safe state machine. The worker thread starts a
primitive with :meth:`ActionExecutor.execute` and waits in :meth:`ActionExecutor.wait_idle`; the
node's control timer calls :meth:`ActionExecutor.command` at ``control_rate_hz`` and publishes
the returned velocities; the odometry callback feeds :meth:`ActionExecutor.update_odometry`.
Time is whatever clock the caller passes (the node's ROS clock, so simulated time works). A
time earlier than the primitive's start (the clock jumped backwards: a looping bag, a simulator
reset) aborts the primitive. Anything unexpected (stale odometry, timeout, a backwards clock,
:meth:`stop`) ends the primitive with zero velocity. A primitive runs with the configuration it
started with: :meth:`ActionExecutor.update_config` applies from the next primitive on.

In odometry mode the commanded speed drops to remaining / ``approach_time_s`` near the target
(never below ``approach_min_speed_ratio`` of the configured speed), so the delay between the
odometry that reaches the target and the zero command taking effect on the base moves it only a
little further; nor does it exceed remaining / (the period of the odometry readings), so that
the last command does not carry the robot past the target before the next reading. When the
odometry reports velocity, a reached primitive then *settles*: it commands zero and ends only
when odometry shows the robot at rest (or after ``settle_timeout_s``);
:attr:`ActionExecutor.last_end_s` is that moment, so a frame captured after it shows where the
robot stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading

from janusvln_ros.core.node_config import MotionConfig
from janusvln_ros.core.types import Action

logger = logging.getLogger(__name__)

# Odometry velocities at or below these count as "at rest" (settling after a primitive).
SETTLED_LINEAR_MPS = 0.005
SETTLED_ANGULAR_RADPS = 0.01
# An odometry-closed primitive has reached its target when this little (m or rad) is left.
REACHED_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class MotionCommand:
    """A velocity command.

    Attributes:
        linear: Forward speed in m/s.
        angular: Yaw rate in rad/s (positive = left).
        active: True while a primitive is executing.
    """

    linear: float = 0.0
    angular: float = 0.0
    active: bool = False


ZERO = MotionCommand()


@dataclasses.dataclass(frozen=True)
class PrimitiveOutcome:
    """How the last primitive ended.

    Attributes:
        action: The primitive's action.
        completed: True if the distance/angle or duration was reached.
        reason: ``'done'``, or why it was aborted.
        sequence: 1-based count of primitives ended so far.
    """

    action: Action
    completed: bool
    reason: str
    sequence: int


def wrap_angle(angle: float) -> float:
    """Wrap an angle in radians to ``[-pi, pi)``."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


class ActionExecutor:
    """Executes one discrete action at a time and reports when it has finished."""

    def __init__(self, config: MotionConfig) -> None:
        """Create an idle executor."""
        self._config = config
        self._cond = threading.Condition()
        self._action: Action | None = None
        self._run_config = config          # configuration of the primitive in flight
        self._last_now: float | None = None
        self._last_end_s: float | None = None
        self._pending_start = False
        self._start_t = 0.0
        self._start_pose: tuple[float, float, float] | None = None
        self._pose: tuple[float, float, float] | None = None
        self._pose_t: float | None = None
        self._twist: tuple[float, float] | None = None
        self._pose_stamp: float | None = None
        self._odom_period: float | None = None    # between the last two odometry readings
        self._last_end_settled = False
        self._settling_since: float | None = None   # target reached, waiting for rest
        self._ended = 0
        self._last_outcome: PrimitiveOutcome | None = None

    @property
    def config(self) -> MotionConfig:
        """The current motion configuration."""
        return self._config

    def update_config(self, config: MotionConfig) -> None:
        """Use a new configuration from the next primitive on."""
        with self._cond:
            self._config = config

    @property
    def busy(self) -> bool:
        """True while a primitive is executing."""
        with self._cond:
            return self._action is not None

    @property
    def last_outcome(self) -> PrimitiveOutcome | None:
        """How the most recent primitive ended (None before the first one)."""
        with self._cond:
            return self._last_outcome

    @property
    def last_end_s(self) -> float | None:
        """Time (caller's clock) at which the last primitive ended, None before the first.

        For a primitive aborted by :meth:`stop` (which takes no time) this is the time of the
        last :meth:`command` call, i.e. of the last velocity published for it. For one ended by
        odometry it is the time of that odometry reading (its stamp when it settled).
        """
        with self._cond:
            return self._last_end_s

    @property
    def last_end_settled(self) -> bool:
        """True if the last primitive ended because odometry reported the robot at rest."""
        with self._cond:
            return self._last_end_settled

    @property
    def ended_count(self) -> int:
        """Number of primitives that have ended (completed or aborted)."""
        with self._cond:
            return self._ended

    def execute(self, action: Action) -> None:
        """Start a primitive; STOP only ends any running one.

        The primitive starts at the next :meth:`command` call (its time origin), so a delayed
        control timer never shortens it.
        """
        with self._cond:
            if self._action is not None:
                self._end_locked(False, 'replaced by a new action')
            if action == Action.STOP:
                return
            self._action = Action(action)
            self._run_config = self._config
            self._pending_start = True
            self._start_pose = None
            self._settling_since = None

    def stop(self, reason: str = 'stopped') -> bool:
        """Abort the running primitive (if any); returns True if one was running."""
        with self._cond:
            if self._action is None:
                return False
            self._end_locked(False, reason)
            return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no primitive is executing; returns False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._action is None, timeout)

    def update_odometry(self, x: float, y: float, yaw: float, now: float,
                        twist: tuple[float, float] | None = None,
                        stamp: float | None = None) -> None:
        """Record the robot pose (odometry frame, metres and radians) at time ``now`` (s).

        Args:
            x: Position in metres.
            y: Position in metres.
            yaw: Heading in radians.
            now: Time of the reading on the caller's clock, in seconds.
            twist: The odometry's ``(linear, angular)`` velocity, if it reports one; it lets a
                reached primitive settle (end once the robot is at rest).
            stamp: The odometry's own stamp on the same clock, if it has one: a settled
                primitive ends at it (a frame of that instant then counts as taken at rest).
        """
        with self._cond:
            self._pose = (float(x), float(y), float(yaw))
            self._pose_t = now
            previous = self._pose_stamp
            self._pose_stamp = stamp if stamp is not None and abs(now - stamp) <= \
                self._run_config.odometry_stale_s else now
            if previous is not None and self._pose_stamp > previous:
                self._odom_period = self._pose_stamp - previous
            self._twist = None if twist is None else (float(twist[0]), float(twist[1]))
            if self._action is not None and self._run_config.motion_mode == 'odometry' \
                    and not self._pending_start:
                if self._settling_since is not None:
                    self._check_settled_locked(now)
                else:
                    self._check_odometry_locked(now)

    def command(self, now: float) -> MotionCommand:
        """Advance the state machine to time ``now`` (s) and return the velocity to publish."""
        with self._cond:
            last, self._last_now = self._last_now, now
            if last is not None and now < last and self._action is not None \
                    and not self._pending_start:
                logger.warning('clock jumped backwards by %.3f s during a primitive', last - now)
                self._end_locked(False, 'clock jumped backwards')
                return ZERO
            if self._action is None:
                return ZERO
            cfg = self._run_config
            if self._pending_start:
                self._pending_start = False
                self._start_t = now
                if cfg.motion_mode == 'odometry':
                    if self._pose is None or self._pose_t is None \
                            or now - self._pose_t > cfg.odometry_stale_s:
                        self._end_locked(False, 'no fresh odometry')
                        return ZERO
                    self._start_pose = self._pose
            if cfg.motion_mode == 'timed':
                if now - self._start_t >= self._duration_locked() - 1e-9:
                    self._end_locked(True, 'done')
                    return ZERO
            else:
                if self._settling_since is not None:
                    if now - self._settling_since >= cfg.settle_timeout_s:
                        logger.warning('%s reached its target but odometry did not report '
                                       'rest within %.2f s', self._action.name,
                                       cfg.settle_timeout_s)
                        self._end_locked(True, 'done', now)
                    return ZERO
                if now - self._start_t > cfg.odometry_timeout_s:
                    self._end_locked(False, 'odometry timeout')
                    return ZERO
                if self._pose_t is None or now - self._pose_t > cfg.odometry_stale_s:
                    self._end_locked(False, 'odometry stale')
                    return ZERO
                self._check_odometry_locked(now)
                if self._action is None or self._settling_since is not None:
                    return ZERO
            return self._velocity_locked()

    def clock_jumped(self, now: float) -> bool:
        """The caller's clock jumped to ``now``: abort the running primitive (True if one ran)."""
        with self._cond:
            self._last_now = now
            if self._action is None:
                return False
            self._end_locked(False, 'clock jumped')
            return True

    def _duration_locked(self) -> float:
        cfg = self._run_config
        if self._action == Action.MOVE_FORWARD:
            return cfg.forward_distance_m / cfg.linear_speed_mps
        return cfg.turn_angle_rad / cfg.angular_speed_radps

    def _velocity_locked(self) -> MotionCommand:
        cfg = self._run_config
        speed = cfg.linear_speed_mps if self._action == Action.MOVE_FORWARD \
            else cfg.angular_speed_radps
        remaining = self._remaining_locked()
        if cfg.motion_mode == 'odometry' and remaining is not None:
            if cfg.approach_time_s > 0:
                speed = min(speed, max(cfg.approach_min_speed_ratio * speed,
                                       remaining / cfg.approach_time_s))
            if self._odom_period is not None:
                speed = min(speed, max(0.0, remaining) / self._odom_period)
        if self._action == Action.MOVE_FORWARD:
            return MotionCommand(speed, 0.0, True)
        sign = 1.0 if self._action == Action.TURN_LEFT else -1.0
        return MotionCommand(0.0, sign * speed, True)

    def _remaining_locked(self) -> float | None:
        """Distance (m) or angle (rad) still to go by odometry; None without odometry."""
        if self._start_pose is None or self._pose is None:
            return None
        x0, y0, yaw0 = self._start_pose
        x, y, yaw = self._pose
        if self._action == Action.MOVE_FORWARD:
            return self._run_config.forward_distance_m - math.hypot(x - x0, y - y0)
        return self._run_config.turn_angle_rad - abs(wrap_angle(yaw - yaw0))

    def _check_odometry_locked(self, now: float) -> None:
        remaining = self._remaining_locked()
        if remaining is None or remaining > REACHED_EPS:
            return
        if self._twist is not None and self._run_config.settle_timeout_s > 0:
            self._settling_since = now     # command zero until odometry reports rest
            self._check_settled_locked(now)
        else:
            self._end_locked(True, 'done', now)

    def _check_settled_locked(self, now: float) -> None:
        twist = self._twist
        if twist is not None and abs(twist[0]) <= SETTLED_LINEAR_MPS \
                and abs(twist[1]) <= SETTLED_ANGULAR_RADPS:
            end = self._pose_stamp if self._pose_stamp is not None else now
            self._end_locked(True, 'done', end, settled=True)

    def _end_locked(self, completed: bool, reason: str, end_s: float | None = None,
                    settled: bool = False) -> None:
        assert self._action is not None
        self._ended += 1
        self._last_outcome = PrimitiveOutcome(self._action, completed, reason, self._ended)
        self._last_end_s = self._last_now if end_s is None else end_s
        self._last_end_settled = settled
        if not completed:
            logger.info('primitive %s aborted: %s', self._action.name, reason)
        self._action = None
        self._pending_start = False
        self._settling_since = None
        self._cond.notify_all()
