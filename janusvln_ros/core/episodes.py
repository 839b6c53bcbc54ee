"""Episode records: states, snapshots, per-step records and the finals store (no rclpy).

:class:`EpisodeRecords` is what the ROS side waits on: every change (a step, an episode's end)
bumps a version and wakes :meth:`EpisodeRecords.wait_change`, so an action bridge needs no
polling loop.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import threading
from typing import Any

from janusvln_ros.core.types import Action


class EpisodeState(enum.IntEnum):
    """Episode states; values match ``janusvln_interfaces/NavigationStatus``."""

    IDLE = 0
    NAVIGATING = 1
    SUCCEEDED = 2
    STOPPED = 3
    ERROR = 4


FINAL_STATES = frozenset({EpisodeState.SUCCEEDED, EpisodeState.STOPPED, EpisodeState.ERROR})

# Message prefix of an episode that ended on the fallback STOP for an unparseable model output.
UNPARSEABLE_PREFIX = 'unparseable output'


@dataclasses.dataclass(frozen=True)
class EpisodeSnapshot:
    """What the worker reports about the current (or a finished) episode.

    Attributes:
        episode_id: 1-based id of the episode (0 before the first instruction).
        instruction: The episode's instruction.
        state: Episode state.
        step: Steps taken in this episode.
        last_action: Action of the last step (None before the first).
        raw_output: The model's raw text for the last step.
        step_latency_ms: Engine wall time of the last step.
        spatial_memory_frames: Frames in the spatial memory after the last step.
        spatial_memory_capacity: Capacity of the spatial memory.
        frame_stamp: Caller's stamp of the frame used by the last step (None before it).
        message: Human-readable detail (why it stopped, the error...).
    """

    episode_id: int = 0
    instruction: str = ''
    state: EpisodeState = EpisodeState.IDLE
    step: int = 0
    last_action: Action | None = None
    raw_output: str = ''
    step_latency_ms: float = 0.0
    spatial_memory_frames: int = 0
    spatial_memory_capacity: int = 0
    frame_stamp: Any = None
    message: str = ''


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One step of an episode (for per-step feedback)."""

    episode_id: int
    step: int
    action: Action
    latency_ms: float


class EpisodeRecords:
    """Thread-safe store of the current episode's steps and of recent final snapshots.

    Args:
        max_finals: How many final snapshots are kept (oldest dropped first).
    """

    def __init__(self, max_finals: int = 64) -> None:
        """Create an empty store."""
        self._cond = threading.Condition()
        self._max_finals = max_finals
        self._finals: collections.OrderedDict[int, EpisodeSnapshot] = collections.OrderedDict()
        self._episode = 0
        self._history: list[StepRecord] = []
        self._version = 0

    @property
    def version(self) -> int:
        """Counter bumped by every change."""
        with self._cond:
            return self._version

    def start(self, episode_id: int) -> None:
        """Begin the step history of ``episode_id`` (drops the previous episode's)."""
        with self._cond:
            self._episode = episode_id
            self._history = []
            self._bump_locked()

    def add_step(self, record: StepRecord) -> None:
        """Append a step of the current episode."""
        with self._cond:
            if record.episode_id == self._episode:
                self._history.append(record)
                self._bump_locked()

    def finish(self, snap: EpisodeSnapshot) -> None:
        """Record the final snapshot of an episode (the first one recorded wins)."""
        with self._cond:
            if snap.episode_id in self._finals:
                return
            self._finals[snap.episode_id] = snap
            while len(self._finals) > self._max_finals:
                self._finals.popitem(last=False)
            self._bump_locked()

    def notify(self) -> None:
        """Wake the waiters without a change of record (e.g. the node is deactivating)."""
        with self._cond:
            self._bump_locked()

    def final(self, episode_id: int) -> EpisodeSnapshot | None:
        """The final snapshot of an ended (or superseded) episode, else None."""
        with self._cond:
            return self._finals.get(episode_id)

    def history(self, episode_id: int, start: int = 0) -> list[StepRecord]:
        """Step records of ``episode_id`` from index ``start`` (empty if not current)."""
        with self._cond:
            if self._episode != episode_id:
                return []
            return self._history[start:]

    def wait_change(self, version: int, timeout: float | None = None) -> int:
        """Block until the version differs from ``version`` (or timeout); return the version."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != version, timeout)
            return self._version

    def _bump_locked(self) -> None:
        self._version += 1
        self._cond.notify_all()
