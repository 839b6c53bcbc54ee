"""The node's ``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` (rqt_robot_monitor, etc.).

One :class:`~diagnostic_msgs.msg.DiagnosticStatus` named ``janusvln: navigation`` carries the
lifecycle state, the episode, step latency against ``step_latency_budget_ms``, frame counters
(received, dropped by the latest-wins slot, rejected, skipped as captured mid-motion), the
camera's age, memory fill and device memory. Its level is ERROR after an error (episode ERROR,
an exception caught in a callback, a stuck step), WARN on a camera timeout, latency over budget or
unparseable model outputs, and OK otherwise.
"""

from __future__ import annotations

import dataclasses
import sys

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from janusvln_ros.core.episodes import EpisodeSnapshot, EpisodeState

STATUS_NAME = 'janusvln: navigation'


@dataclasses.dataclass(frozen=True)
class NodeHealth:
    """What the node knows about itself at one moment (gathered by the node, no ROS types).

    Attributes:
        lifecycle_state: ``'active'``, ``'inactive'``...
        snapshot: The worker's current episode snapshot.
        step_p50_ms: Median step latency over the recent window (nan before a step).
        step_p95_ms: 95th percentile step latency over the recent window (nan before a step).
        step_budget_ms: The latency budget (``step_latency_budget_ms``).
        steps_total: Steps run since the node was configured.
        frames_received: Images accepted.
        frames_dropped: Images overwritten in the slot before the worker took them.
        frames_rejected: Images refused by the checks.
        frames_stale: Images skipped because they were captured during a primitive.
        camera_age_s: Seconds since the last accepted image (None: none yet).
        camera_timed_out: The camera watchdog has stopped the robot.
        unparseable_outputs: Steps whose model output was no action word.
        callback_errors: Exceptions caught in callbacks.
        clock_jumps: ROS clock jumps seen.
        worker_stuck_s: Seconds a step has been running after deactivation (0: not stuck).
    """

    lifecycle_state: str
    snapshot: EpisodeSnapshot
    step_p50_ms: float
    step_p95_ms: float
    step_budget_ms: float
    steps_total: int
    frames_received: int
    frames_dropped: int
    frames_rejected: int
    frames_stale: int
    camera_age_s: float | None
    camera_timed_out: bool
    unparseable_outputs: int
    callback_errors: int
    clock_jumps: int
    worker_stuck_s: float = 0.0


def device_memory() -> dict[str, str]:
    """CUDA memory of this process (MiB) if torch is loaded and CUDA is in use, else ``cpu``."""
    torch = sys.modules.get('torch')
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {'device_memory': 'cpu (no CUDA memory in use)'}
    mib = 1024.0 * 1024.0
    return {'device_memory_allocated_mib': f'{torch.cuda.memory_allocated() / mib:.0f}',
            'device_memory_reserved_mib': f'{torch.cuda.memory_reserved() / mib:.0f}'}


def health_level(h: NodeHealth) -> tuple[bytes, str]:
    """The status level and its one-line summary."""
    if h.worker_stuck_s > 0:
        return DiagnosticStatus.ERROR, f'inference step stuck for {h.worker_stuck_s:.0f} s'
    if h.snapshot.state == EpisodeState.ERROR:
        return DiagnosticStatus.ERROR, f'episode {h.snapshot.episode_id} error: ' \
            f'{h.snapshot.message[:120]}'
    if h.callback_errors:
        return DiagnosticStatus.ERROR, f'{h.callback_errors} internal callback error(s)'
    if h.camera_timed_out:
        return DiagnosticStatus.WARN, 'camera timeout: robot stopped'
    if h.step_p95_ms == h.step_p95_ms and h.step_p95_ms > h.step_budget_ms:
        return DiagnosticStatus.WARN, (f'step latency p95 {h.step_p95_ms:.0f} ms over the '
                                       f'{h.step_budget_ms:.0f} ms budget')
    if h.unparseable_outputs:
        return DiagnosticStatus.WARN, f'{h.unparseable_outputs} unparseable model output(s)'
    return DiagnosticStatus.OK, f'{h.lifecycle_state}, episode {h.snapshot.state.name}'


def health_to_diagnostics(h: NodeHealth, hardware_id: str,
                          stamp: Time | None = None) -> DiagnosticArray:
    """Build the ``DiagnosticArray`` of one :class:`NodeHealth` reading."""
    snap = h.snapshot
    level, message = health_level(h)
    values = {
        'lifecycle_state': h.lifecycle_state,
        'episode_id': str(snap.episode_id),
        'episode_state': snap.state.name,
        'episode_step': str(snap.step),
        'episode_message': snap.message[:200],
        'step_latency_last_ms': f'{snap.step_latency_ms:.1f}',
        'step_latency_p50_ms': f'{h.step_p50_ms:.1f}',
        'step_latency_p95_ms': f'{h.step_p95_ms:.1f}',
        'step_latency_budget_ms': f'{h.step_budget_ms:.1f}',
        'steps_total': str(h.steps_total),
        'frames_received': str(h.frames_received),
        'frames_dropped': str(h.frames_dropped),
        'frames_rejected': str(h.frames_rejected),
        'frames_captured_mid_motion': str(h.frames_stale),
        'camera_age_s': 'never' if h.camera_age_s is None else f'{h.camera_age_s:.2f}',
        'spatial_memory_fill': f'{snap.spatial_memory_frames}/{snap.spatial_memory_capacity}',
        'unparseable_outputs': str(h.unparseable_outputs),
        'callback_errors': str(h.callback_errors),
        'clock_jumps': str(h.clock_jumps),
    }
    values.update(device_memory())
    status = DiagnosticStatus(level=level, name=STATUS_NAME, message=message,
                              hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    if stamp is not None:
        array.header.stamp = stamp
    return array
