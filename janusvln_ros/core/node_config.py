"""Configuration of the navigation node: validated, frozen dataclasses (no rclpy).

The ROS parameters of the node are declared from these fields (see ``janusvln_ros.ros.params``),
with the docstring's ``Attributes`` lines as descriptions. Fields listed in
:data:`TUNABLE_FIELDS` may be changed while the node runs (each change is validated by building a
new dataclass); all others are read-only after start.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from janusvln_ros.core.errors import ConfigError

RELIABILITIES = ('best_effort', 'reliable')
MOTION_MODES = ('timed', 'odometry')


def _check_positive(obj: Any, names: tuple[str, ...], allow_zero: bool = False) -> None:
    """Raise :class:`ConfigError` unless each named float field is finite and > 0 (or >= 0)."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{name}: expected a number, got {value!r}')
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            bound = '>= 0' if allow_zero else '> 0'
            raise ConfigError(f'{name}: expected a finite number {bound}, got {value!r}')


def _check_int(obj: Any, name: str, low: int) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f'{name}: expected an integer >= {low}, got {value!r}')


@dataclasses.dataclass(frozen=True)
class MotionConfig:
    """How a discrete action becomes velocity commands.

    Attributes:
        motion_mode: ``'timed'`` (open loop: configured speed for distance/speed seconds) or
            ``'odometry'`` (closed loop on the odom topic until the distance or angle is reached).
        forward_distance_m: Distance of one MOVE_FORWARD in metres.
        turn_angle_deg: Angle of one TURN_LEFT or TURN_RIGHT in degrees.
        linear_speed_mps: Forward speed while executing MOVE_FORWARD in m/s.
        angular_speed_radps: Yaw rate while executing a turn in rad/s.
        control_rate_hz: Rate of the control timer that publishes cmd_vel.
        odometry_timeout_s: Odometry mode: abort a primitive that has not finished after this time.
        odometry_stale_s: Odometry mode: abort a primitive when no odom arrived for this long.
        approach_time_s: Odometry mode: slow down near the target, commanding remaining
            distance (or angle) / this time once that is below the configured speed (0 = full
            speed until the target is reached).
        approach_min_speed_ratio: Odometry mode: the slowed-down speed never drops below this
            fraction of the configured speed.
        settle_timeout_s: Odometry mode, with an odom that reports velocity: after the target
            is reached the primitive ends only once odom reports the robot at rest (so the next
            frame shows where it stopped), or after this long (0 = end at the target).
    """

    motion_mode: str = 'timed'
    forward_distance_m: float = 0.25
    turn_angle_deg: float = 15.0
    linear_speed_mps: float = 0.25
    angular_speed_radps: float = 0.5
    control_rate_hz: float = 20.0
    odometry_timeout_s: float = 5.0
    odometry_stale_s: float = 0.5
    approach_time_s: float = 0.2
    approach_min_speed_ratio: float = 0.02
    settle_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        """Validate every field; raise :class:`ConfigError` naming the bad one."""
        if self.motion_mode not in MOTION_MODES:
            raise ConfigError(f'motion_mode: expected one of {MOTION_MODES}, '
                              f'got {self.motion_mode!r}')
        _check_positive(self, ('forward_distance_m', 'turn_angle_deg', 'linear_speed_mps',
                               'angular_speed_radps', 'control_rate_hz', 'odometry_timeout_s',
                               'odometry_stale_s'))
        _check_positive(self, ('approach_time_s', 'settle_timeout_s'), allow_zero=True)
        _check_positive(self, ('approach_min_speed_ratio',))
        if self.approach_min_speed_ratio > 1.0:
            raise ConfigError('approach_min_speed_ratio: expected <= 1, got '
                              f'{self.approach_min_speed_ratio}')
        if self.turn_angle_deg > 180.0:
            raise ConfigError(f'turn_angle_deg: expected <= 180, got {self.turn_angle_deg}')

    @property
    def control_period_s(self) -> float:
        """Period of the control timer in seconds."""
        return 1.0 / self.control_rate_hz

    @property
    def turn_angle_rad(self) -> float:
        """Angle of one turn in radians."""
        return math.radians(self.turn_angle_deg)


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """Behaviour of the navigation node around the engine.

    Attributes:
        image_reliability: QoS reliability of the image subscription (``'best_effort'``, the
            sensor-data default, or ``'reliable'`` for reliable-only publishers); depth is 1.
        camera_timeout_s: Stop the robot when no frame arrived for this long.
        max_steps: Episode step cap; reaching it ends the episode as STOPPED.
        max_instruction_chars: Longest accepted instruction in characters.
        use_stamped_cmd_vel: Publish geometry_msgs/TwistStamped instead of Twist on cmd_vel.
        cmd_vel_frame_id: frame_id of TwistStamped commands.
        status_rate_hz: Rate of the periodic status message (also sent on every step).
        autostart: Configure and activate the lifecycle node on start.
        worker_join_timeout_s: How long deactivation waits for a running engine step.
        step_latency_budget_ms: Step latency budget; /diagnostics warns when the p95 exceeds it.
    """

    image_reliability: str = 'best_effort'
    camera_timeout_s: float = 1.0
    max_steps: int = 400
    max_instruction_chars: int = 2000
    use_stamped_cmd_vel: bool = False
    cmd_vel_frame_id: str = 'base_link'
    status_rate_hz: float = 1.0
    autostart: bool = False
    worker_join_timeout_s: float = 10.0
    step_latency_budget_ms: float = 1000.0

    def __post_init__(self) -> None:
        """Validate every field; raise :class:`ConfigError` naming the bad one."""
        if self.image_reliability not in RELIABILITIES:
            raise ConfigError(f'image_reliability: expected one of {RELIABILITIES}, '
                              f'got {self.image_reliability!r}')
        _check_positive(self, ('camera_timeout_s', 'status_rate_hz', 'worker_join_timeout_s',
                               'step_latency_budget_ms'))
        _check_int(self, 'max_steps', 1)
        _check_int(self, 'max_instruction_chars', 1)
        for name in ('use_stamped_cmd_vel', 'autostart'):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f'{name}: expected a bool, got {getattr(self, name)!r}')


# Parameters that may change while the node runs (validated in the on-set callback).
TUNABLE_FIELDS = frozenset({
    'forward_distance_m', 'turn_angle_deg', 'linear_speed_mps', 'angular_speed_radps',
    'odometry_timeout_s', 'odometry_stale_s', 'approach_time_s', 'approach_min_speed_ratio',
    'settle_timeout_s', 'camera_timeout_s', 'max_steps',
    'max_instruction_chars', 'step_latency_budget_ms',
})
