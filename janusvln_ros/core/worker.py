"""The inference worker: one owned thread runs the engine behind a latest-wins frame slot.

Step protocol (house style §3.2): the image callback only stores the newest frame in a
:class:`LatestSlot`. The :class:`InferenceWorker` thread waits until the previous primitive has
finished executing, then takes the newest frame that arrived *after* that moment (one frame per
executed primitive, as the model was trained), runs ``engine.step`` and hands the action to the
:class:`~janusvln_ros.core.motion.ActionExecutor`. Instructions, preemptions and cancellations
are queued and applied by the worker between steps, never during one. The worker never touches
ROS entities: it reports through the ``on_event`` callback, which must only hand data over.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import threading
import time
from typing import Any, Callable, Generic, TypeVar
import unicodedata

from janusvln_ros.core.errors import InputError
from janusvln_ros.core.motion import ActionExecutor
from janusvln_ros.core.timing import RollingStats
from janusvln_ros.core.types import Action, Engine, StepResult

logger = logging.getLogger(__name__)

T = TypeVar('T')


class EpisodeState(enum.IntEnum):
    """Episode states; values match ``janusvln_interfaces/NavigationStatus``."""

    IDLE = 0
    NAVIGATING = 1
    SUCCEEDED = 2
    STOPPED = 3
    ERROR = 4


FINAL_STATES = frozenset({EpisodeState.SUCCEEDED, EpisodeState.STOPPED, EpisodeState.ERROR})


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


def validate_instruction(text: str | bytes, max_chars: int) -> str:
    """Check an instruction; return it as ``str`` or raise :class:`InputError` with the reason.

    Args:
        text: The instruction. ``bytes`` must be valid UTF-8. A ``str`` holding U+FFFD
            (what rclpy decodes invalid UTF-8 on the wire into) or lone surrogates is rejected.
        max_chars: Longest accepted length in characters.

    Returns:
        The instruction, unchanged.

    Raises:
        InputError: Empty or whitespace only, too long, not valid UTF-8, or control characters.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode('utf-8')
        except UnicodeDecodeError as exc:
            raise InputError(f'instruction is not valid UTF-8: {exc.reason} at byte '
                             f'{exc.start}') from None
    if not isinstance(text, str):
        raise InputError(f'instruction: expected text, got {type(text).__name__}')
    if '\ufffd' in text:
        raise InputError('instruction is not valid UTF-8 (it holds U+FFFD replacement '
                         'characters, which is how invalid bytes arrive)')
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise InputError('instruction is not valid UTF-8 (lone surrogate code points)')
    if not text.strip():
        raise InputError('instruction is empty or whitespace only')
    if len(text) > max_chars:
        raise InputError(f'instruction is too long: {len(text)} characters, '
                         f'max_instruction_chars is {max_chars}')
    bad = [c for c in text if unicodedata.category(c) == 'Cc' and c not in '\t\n\r']
    if bad:
        raise InputError(f'instruction holds {len(bad)} control character(s), '
                         f'e.g. {bad[0]!r}')
    return text


class LatestSlot(Generic[T]):
    """A one-item, latest-wins mailbox: ``put`` overwrites, readers wait for a newer item.

    Each ``put`` gets a sequence number (1, 2, ...); :meth:`wait_newer` returns the newest item
    whose sequence number is larger than the caller's mark.
    """

    def __init__(self) -> None:
        """Create an empty slot."""
        self._cond = threading.Condition()
        self._item: T | None = None
        self._stamp: Any = None
        self._seq = 0
        self._taken_seq = 0
        self._overwritten = 0

    def put(self, item: T, stamp: Any = None) -> int:
        """Store ``item`` (dropping any older one); returns its sequence number."""
        with self._cond:
            if self._seq > self._taken_seq and self._item is not None:
                self._overwritten += 1
            self._item = item
            self._stamp = stamp
            self._seq += 1
            self._cond.notify_all()
            return self._seq

    @property
    def seq(self) -> int:
        """Sequence number of the newest item (0 when nothing was put)."""
        with self._cond:
            return self._seq

    @property
    def overwritten(self) -> int:
        """Items replaced before anyone took them (dropped frames)."""
        with self._cond:
            return self._overwritten

    def __len__(self) -> int:
        """Number of items held: 0 or 1 (the slot never queues)."""
        with self._cond:
            return 0 if self._item is None else 1

    def wait_newer(self, mark: int, timeout: float | None = None) -> tuple[int, T, Any] | None:
        """Wait for an item with sequence number > ``mark``; None on timeout.

        Returns:
            ``(seq, item, stamp)`` of the newest item.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > mark and self._item is not None,
                                       timeout):
                return None
            self._taken_seq = self._seq
            return self._seq, self._item, self._stamp

    def clear(self) -> None:
        """Drop the held item (the sequence number keeps counting)."""
        with self._cond:
            self._item = None
            self._stamp = None


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One step of an episode (for per-step feedback)."""

    episode_id: int
    step: int
    action: Action
    latency_ms: float


@dataclasses.dataclass(frozen=True)
class _Pending:
    kind: str                   # 'instruction' or 'cancel'
    episode_id: int = 0
    text: str = ''
    reset_memory: bool = True
    reason: str = ''


class InferenceWorker:
    """Runs the engine on its own thread, one step per executed primitive.

    Args:
        engine: The engine (used only from the worker thread once started).
        slot: Where the image callback puts ``(H, W, 3)`` uint8 RGB frames.
        motion: Executes the chosen actions.
        max_steps: Episode step cap (the episode ends as STOPPED).
        on_event: Called from the worker thread with a snapshot after each step or change of
            episode state; it must return quickly and touch no ROS entity.
        poll_s: How often blocking waits re-check for stop and pending commands.
    """

    def __init__(self, engine: Engine, slot: LatestSlot, motion: ActionExecutor,
                 max_steps: int = 400,
                 on_event: Callable[[EpisodeSnapshot], None] | None = None,
                 poll_s: float = 0.05) -> None:
        """Create a stopped worker."""
        self._engine = engine
        self._slot = slot
        self._motion = motion
        self._max_steps = int(max_steps)
        self._on_event = on_event
        self._poll_s = poll_s
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: _Pending | None = None
        self._next_episode = 1
        self._snap = EpisodeSnapshot()
        self._history: list[StepRecord] = []
        self._finals: collections.OrderedDict[int, EpisodeSnapshot] = collections.OrderedDict()
        self._frame_mark = 0
        self._mark_after_idle = False
        self._in_step = False
        self.step_stats = RollingStats(200)
        self.steps_total = 0

    # ----------------------------------------------------------------- control (any thread)
    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError('worker already running')
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name='janusvln-inference', daemon=True)
        self._thread.start()

    def stop(self, reason: str = 'worker stopped') -> None:
        """Ask the thread to stop, end a running episode as STOPPED and stop the motion."""
        self._stop.set()
        with self._lock:
            self._pending = None
            self._lock.notify_all()
        self._motion.stop(reason)
        self._finish_current(EpisodeState.STOPPED, reason)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; returns False if it is still running (a long step)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def in_step(self) -> bool:
        """True while ``engine.step`` runs."""
        with self._lock:
            return self._in_step

    def set_max_steps(self, max_steps: int) -> None:
        """Change the step cap (applies to the running episode too)."""
        with self._lock:
            self._max_steps = int(max_steps)

    def supports_keep_memory(self) -> bool:
        """True if the engine can change the instruction without clearing its memory."""
        return callable(getattr(self._engine, 'set_instruction', None))

    def submit(self, instruction: str, reset_memory: bool = True) -> int:
        """Queue a (validated) instruction; the worker applies it before its next step.

        A running episode is preempted: its motion stops now, and it ends as STOPPED when the
        worker applies the new one (between steps).

        Returns:
            The new episode's id.

        Raises:
            InputError: ``reset_memory`` is False and the engine cannot keep its memory across
                instructions (with no episode yet, ``reset_memory=False`` starts a plain one).
        """
        with self._lock:
            if not reset_memory:
                if not self.supports_keep_memory():
                    raise InputError('reset_memory=false: this engine cannot keep its memory '
                                     'across instructions; send reset_memory=true')
                if self._snap.episode_id == 0 and self._pending is None:
                    reset_memory = True    # nothing to keep yet: a plain first episode
            episode_id = self._next_episode
            self._next_episode += 1
            superseded = self._pending
            self._pending = _Pending('instruction', episode_id, instruction, reset_memory)
            self._lock.notify_all()
        if superseded is not None and superseded.kind == 'instruction':
            self._record_final(EpisodeSnapshot(
                episode_id=superseded.episode_id, instruction=superseded.text,
                state=EpisodeState.STOPPED, message=f'preempted by episode {episode_id}'))
        self._motion.stop(f'preempted by episode {episode_id}')
        return episode_id

    def cancel(self, reason: str = 'cancelled') -> bool:
        """Cancel the running or queued episode; returns False if there was none."""
        with self._lock:
            pending = self._pending
            running = self._snap.state == EpisodeState.NAVIGATING
            if pending is None and not running:
                return False
            if pending is not None and pending.kind == 'instruction':
                self._pending = None
            if running:
                self._pending = _Pending('cancel', reason=reason)
            self._lock.notify_all()
        if pending is not None and pending.kind == 'instruction':
            self._record_final(EpisodeSnapshot(
                episode_id=pending.episode_id, instruction=pending.text,
                state=EpisodeState.STOPPED, message=reason))
        self._motion.stop(reason)
        return True

    def snapshot(self) -> EpisodeSnapshot:
        """The current episode's state."""
        with self._lock:
            return self._snap

    def final(self, episode_id: int) -> EpisodeSnapshot | None:
        """The final snapshot of an ended (or superseded) episode, else None."""
        with self._lock:
            return self._finals.get(episode_id)

    def history(self, episode_id: int, start: int = 0) -> list[StepRecord]:
        """Step records of ``episode_id`` from index ``start`` (empty if not current)."""
        with self._lock:
            if self._snap.episode_id != episode_id:
                return []
            return self._history[start:]

    # ----------------------------------------------------------------- worker thread
    def _run(self) -> None:
        logger.debug('inference worker started')
        while not self._stop.is_set():
            try:
                self._iterate()
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                logger.exception('inference worker iteration failed')
                self._motion.stop('worker error')
                self._finish_current(EpisodeState.ERROR, f'worker error: {exc}')
        logger.debug('inference worker stopped')

    def _iterate(self) -> None:
        if self._apply_pending():
            return
        with self._lock:
            navigating = self._snap.state == EpisodeState.NAVIGATING
            if not navigating:
                self._lock.wait_for(lambda: self._pending is not None or self._stop.is_set(),
                                    self._poll_s)
                return
        if not self._motion.wait_idle(self._poll_s):
            return
        if self._mark_after_idle:
            self._frame_mark = self._slot.seq
            self._mark_after_idle = False
        item = self._slot.wait_newer(self._frame_mark, self._poll_s)
        if item is None or self._stop.is_set():
            return
        seq, frame, stamp = item
        with self._lock:
            if self._pending is not None or self._snap.state != EpisodeState.NAVIGATING:
                return
            episode_id = self._snap.episode_id
            self._in_step = True
        self._frame_mark = seq
        try:
            result = self._engine.step(frame)
        except Exception as exc:  # noqa: BLE001 - any engine failure ends the episode
            logger.error('engine step failed in episode %d: %s', episode_id, exc)
            with self._lock:
                self._in_step = False
            self._motion.stop('engine error')
            self._finish_current(EpisodeState.ERROR, f'engine error: {exc}',
                                 only_episode=episode_id)
            return
        finally:
            with self._lock:
                self._in_step = False
        self._handle_result(episode_id, result, stamp)

    def _handle_result(self, episode_id: int, result: StepResult, stamp: Any) -> None:
        self.step_stats.add(result.total_ms)
        self.steps_total += 1
        with self._lock:
            snap = self._snap
            if self._pending is not None or snap.episode_id != episode_id \
                    or snap.state != EpisodeState.NAVIGATING or self._stop.is_set():
                logger.info('dropping the result of step %d of episode %d (superseded)',
                            result.step, episode_id)
                return
            steps = snap.step + 1
            state, message = EpisodeState.NAVIGATING, ''
            if result.action == Action.STOP:
                state, message = EpisodeState.SUCCEEDED, 'the model said STOP'
            elif steps >= self._max_steps:
                state, message = EpisodeState.STOPPED, f'max_steps ({self._max_steps}) reached'
            self._snap = dataclasses.replace(
                snap, state=state, step=steps, last_action=result.action,
                raw_output=result.raw_output, step_latency_ms=result.total_ms,
                spatial_memory_frames=result.spatial_memory_frames,
                spatial_memory_capacity=result.spatial_memory_capacity,
                frame_stamp=stamp, message=message)
            self._history.append(StepRecord(episode_id, steps, result.action, result.total_ms))
            if state == EpisodeState.NAVIGATING:
                self._motion.execute(result.action)
                self._mark_after_idle = True
            else:
                self._remember_final_locked(self._snap)
            snap = self._snap
        logger.debug('episode %d step %d: %s (%.1f ms)', episode_id, steps,
                     result.action.name, result.total_ms)
        if state != EpisodeState.NAVIGATING:
            logger.info('episode %d ended: %s after %d steps (%s)', episode_id, state.name,
                        steps, message)
        self._emit(snap)

    def _apply_pending(self) -> bool:
        with self._lock:
            pending = self._pending
            self._pending = None
        if pending is None:
            return False
        if pending.kind == 'cancel':
            self._motion.stop(pending.reason)
            self._finish_current(EpisodeState.STOPPED, pending.reason)
            return True
        self._finish_current(EpisodeState.STOPPED,
                             f'preempted by episode {pending.episode_id}')
        self._motion.stop('new instruction')
        try:
            if pending.reset_memory:
                self._engine.reset(pending.text)
            else:
                self._engine.set_instruction(pending.text)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001
            logger.error('engine reset failed for episode %d: %s', pending.episode_id, exc)
            snap = EpisodeSnapshot(episode_id=pending.episode_id, instruction=pending.text,
                                   state=EpisodeState.ERROR, message=f'engine error: {exc}')
            with self._lock:
                self._snap = snap
                self._history = []
                self._remember_final_locked(snap)
            self._emit(snap)
            return True
        snap = EpisodeSnapshot(episode_id=pending.episode_id, instruction=pending.text,
                               state=EpisodeState.NAVIGATING, message='started')
        with self._lock:
            self._snap = snap
            self._history = []
            self._frame_mark = self._slot.seq
            self._mark_after_idle = False
        logger.info('episode %d started: %r', pending.episode_id, pending.text[:80])
        self._emit(snap)
        return True

    def _finish_current(self, state: EpisodeState, message: str,
                        only_episode: int | None = None) -> None:
        with self._lock:
            snap = self._snap
            if snap.state != EpisodeState.NAVIGATING:
                return
            if only_episode is not None and snap.episode_id != only_episode:
                return
            self._snap = dataclasses.replace(snap, state=state, message=message)
            self._remember_final_locked(self._snap)
            snap = self._snap
        logger.info('episode %d ended: %s (%s)', snap.episode_id, state.name, message)
        self._emit(snap)

    def _record_final(self, snap: EpisodeSnapshot) -> None:
        with self._lock:
            self._remember_final_locked(snap)

    def _remember_final_locked(self, snap: EpisodeSnapshot) -> None:
        self._finals[snap.episode_id] = snap
        while len(self._finals) > 64:
            self._finals.popitem(last=False)

    def _emit(self, snap: EpisodeSnapshot) -> None:
        if self._on_event is not None:
            try:
                self._on_event(snap)
            except Exception:  # noqa: BLE001
                logger.exception('on_event callback failed')


def wait_until(predicate: Callable[[], bool], timeout: float, poll_s: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())
