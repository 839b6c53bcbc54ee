"""The inference worker: one owned thread runs the engine behind a latest-wins frame slot.

Step protocol: the image callback only stores the newest frame in a
:class:`~janusvln_ros.core.slot.LatestSlot`. The :class:`InferenceWorker` thread waits until the
previous primitive has finished executing, then takes the first frame **captured** after that
moment (by its capture stamp, see :data:`FRAME_STAMP_TOLERANCE_S`; by arrival order when stamps
are missing or from another clock), runs ``engine.step`` and hands the action to the
:class:`~janusvln_ros.core.motion.ActionExecutor`: one frame per executed primitive, as the model
was trained. Instructions, preemptions and cancellations are queued and applied by the worker
between steps, never during one. The worker never touches ROS entities: it reports through the
``on_event`` callback, which must only hand data over, and through
:class:`~janusvln_ros.core.episodes.EpisodeRecords`, which waiters block on.

The names that used to live here (:class:`LatestSlot`, :class:`EpisodeSnapshot`,
:func:`validate_instruction`...) are re-exported for callers of the old module.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable

from janusvln_ros.core.episodes import (EpisodeRecords, EpisodeSnapshot, EpisodeState,
                                        FINAL_STATES, StepRecord, UNPARSEABLE_PREFIX)
from janusvln_ros.core.errors import InputError
from janusvln_ros.core.instructions import validate_instruction
from janusvln_ros.core.motion import ActionExecutor
from janusvln_ros.core.slot import LatestSlot, SlotItem
from janusvln_ros.core.timing import RollingStats
from janusvln_ros.core.types import Action, Engine, StepResult

logger = logging.getLogger(__name__)

__all__ = ['EpisodeRecords', 'EpisodeSnapshot', 'EpisodeState', 'FINAL_STATES',
           'FRAME_STAMP_TOLERANCE_S', 'InferenceWorker', 'LatestSlot', 'StepRecord',
           'validate_instruction']

# A frame counts as captured after the primitive ended if its stamp is at most this much older
# than the end (control-tick granularity and camera exposure; one 20 Hz control period). Not
# applied when the primitive ended on odometry reporting the robot at rest: that time is exact.
FRAME_STAMP_TOLERANCE_S = 0.05
# Stamps further than this from the worker's clock are taken to be from another clock (a bag,
# an unsynchronised camera host): the worker then falls back to arrival order, with a warning.
FOREIGN_CLOCK_S = 10.0
STAMP_WARN_PERIOD_S = 10.0


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
        slot: Where the image callback puts ``(H, W, 3)`` uint8 RGB frames with their capture
            time (``capture_s``) on ``clock``.
        motion: Executes the chosen actions (it must be driven on the same clock as ``clock``).
        max_steps: Episode step cap (the episode ends as STOPPED).
        on_event: Called from the worker thread with a snapshot after each step or change of
            episode state; it must return quickly and touch no ROS entity.
        poll_s: How often blocking waits re-check for stop and pending commands.
        clock: Current time in seconds, the clock of the frames' ``capture_s`` (the node's ROS
            clock).
    """

    def __init__(self, engine: Engine, slot: LatestSlot, motion: ActionExecutor,
                 max_steps: int = 400,
                 on_event: Callable[[EpisodeSnapshot], None] | None = None,
                 poll_s: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        """Create a stopped worker."""
        self._engine = engine
        self._slot = slot
        self._motion = motion
        self._max_steps = int(max_steps)
        self._on_event = on_event
        self._poll_s = poll_s
        self._clock = clock
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: _Pending | None = None
        self._next_episode = 1
        self._snap = EpisodeSnapshot()
        self.records = EpisodeRecords()
        self._frame_mark = 0
        self._after_s: float | None = None     # frames must be captured after this time
        self._after_tolerance_s = FRAME_STAMP_TOLERANCE_S
        self._mark_after_idle = False
        self._in_step = False
        self._step_started = 0.0
        self._last_stamp_warning = -1e9
        self.step_stats = RollingStats(200)
        self.steps_total = 0
        self.unparseable_total = 0
        self.stale_frames_skipped = 0

    # ----------------------------------------------------------------- control (any thread)
    def start(self) -> None:
        """Start the worker thread.

        Raises:
            RuntimeError: The thread is still running (e.g. stuck inside ``engine.step``).
        """
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError('worker already running')
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name='janusvln-inference', daemon=True)
        self._thread.start()

    def stop(self, reason: str = 'worker stopped') -> None:
        """Ask the thread to stop, end running and queued episodes as STOPPED, stop the motion."""
        self._stop.set()
        with self._lock:
            pending = self._pending
            self._pending = None
            self._lock.notify_all()
        self._motion.stop(reason)
        if pending is not None and pending.kind == 'instruction':
            self.records.finish(EpisodeSnapshot(
                episode_id=pending.episode_id, instruction=pending.text,
                state=EpisodeState.STOPPED, message=reason))
        self._finish_current(EpisodeState.STOPPED, reason)
        self.records.notify()

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

    @property
    def step_running_s(self) -> float:
        """Seconds the current ``engine.step`` has been running (0 when none runs)."""
        with self._lock:
            return time.monotonic() - self._step_started if self._in_step else 0.0

    @property
    def engine(self) -> Engine:
        """The engine this worker drives."""
        return self._engine

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
            self.records.finish(EpisodeSnapshot(
                episode_id=superseded.episode_id, instruction=superseded.text,
                state=EpisodeState.STOPPED, message=f'preempted by episode {episode_id}'))
        self._motion.stop(f'preempted by episode {episode_id}')
        return episode_id

    def cancel(self, reason: str = 'cancelled', episode_id: int | None = None) -> bool:
        """Cancel an episode, queued (submitted, not yet applied) or running.

        Args:
            reason: The cancelled episode's final message.
            episode_id: The episode to cancel; None cancels the queued and the running one.

        Returns:
            False if there was nothing to cancel (no such episode queued or running).
        """
        with self._lock:
            pending, snap = self._pending, self._snap
            running = snap.state == EpisodeState.NAVIGATING
            queued = pending if pending is not None and pending.kind == 'instruction' else None
            if episode_id is not None and queued is not None \
                    and queued.episode_id != episode_id:
                queued = None
            cancel_running = running and (episode_id is None or snap.episode_id == episode_id)
            if queued is None and not cancel_running:
                return False
            if queued is not None:
                # the running episode was stopped when this one was queued: it ends too
                self._pending = None
                if running and not cancel_running:
                    self._pending = _Pending('cancel', snap.episode_id,
                                             reason=f'preempted by episode {queued.episode_id}')
            # (a running episode behind a queued instruction ends as preempted by it)
            if cancel_running and (self._pending is None or self._pending.kind == 'cancel'):
                self._pending = _Pending('cancel', snap.episode_id, reason=reason)
            self._lock.notify_all()
        self._motion.stop(reason)
        if queued is not None:
            self.records.finish(EpisodeSnapshot(
                episode_id=queued.episode_id, instruction=queued.text,
                state=EpisodeState.STOPPED, message=reason))
            logger.info('queued episode %d cancelled before it started (%s)',
                        queued.episode_id, reason)
        return True

    def abort(self, message: str) -> None:
        """End the running episode as ERROR now (an unexpected fault outside the worker)."""
        with self._lock:
            pending = self._pending
            if pending is not None and pending.kind == 'cancel':
                self._pending = None
        self._motion.stop(message)
        self._finish_current(EpisodeState.ERROR, message)

    def snapshot(self) -> EpisodeSnapshot:
        """The current episode's state."""
        with self._lock:
            return self._snap

    def final(self, episode_id: int) -> EpisodeSnapshot | None:
        """The final snapshot of an ended (or superseded) episode, else None."""
        return self.records.final(episode_id)

    def history(self, episode_id: int, start: int = 0) -> list[StepRecord]:
        """Step records of ``episode_id`` from index ``start`` (empty if not current)."""
        return self.records.history(episode_id, start)

    def wait_change(self, version: int, timeout: float | None = None) -> int:
        """Block until the episode records change after ``version``; return the new version."""
        return self.records.wait_change(version, timeout)

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
            end = self._motion.last_end_s
            self._after_s = end if end is not None else self._clock()
            self._after_tolerance_s = 0.0 if self._motion.last_end_settled \
                else FRAME_STAMP_TOLERANCE_S
            self._mark_after_idle = False
        item = self._slot.take_newer(self._frame_mark, self._poll_s)
        if item is None or self._stop.is_set():
            return
        if not self._captured_after(item):
            self._frame_mark = item.seq        # taken mid-motion: wait for a later one
            self.stale_frames_skipped += 1
            return
        with self._lock:
            if self._pending is not None or self._snap.state != EpisodeState.NAVIGATING:
                return
            episode_id = self._snap.episode_id
            self._in_step = True
            self._step_started = time.monotonic()
        self._frame_mark = item.seq
        try:
            result = self._engine.step(item.item)
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
        self._handle_result(episode_id, result, item.stamp)

    def _captured_after(self, item: SlotItem) -> bool:
        """Whether ``item`` may be used for the next step (captured after the primitive)."""
        after = self._after_s
        if after is None:
            return True
        capture = item.capture_s
        now = self._clock()
        if capture is None or abs(capture - now) > FOREIGN_CLOCK_S:
            t = time.monotonic()
            if t - self._last_stamp_warning >= STAMP_WARN_PERIOD_S:
                self._last_stamp_warning = t
                why = ('has no capture stamp' if capture is None else
                       f'is stamped {capture - now:+.1f} s from this clock (another clock?)')
                logger.warning('frame %s: using arrival order, so a frame taken during the '
                               'last primitive may be used', why)
            return True
        return capture >= after - self._after_tolerance_s

    def _handle_result(self, episode_id: int, result: StepResult, stamp: Any) -> None:
        self.step_stats.add(result.total_ms)
        self.steps_total += 1
        fallback = result.action == Action.STOP and not getattr(result, 'parsed', True)
        with self._lock:
            snap = self._snap
            if self._pending is not None or snap.episode_id != episode_id \
                    or snap.state != EpisodeState.NAVIGATING or self._stop.is_set():
                logger.info('dropping the result of step %d of episode %d (superseded)',
                            result.step, episode_id)
                return
            steps = snap.step + 1
            state, message = EpisodeState.NAVIGATING, ''
            if fallback:
                self.unparseable_total += 1
                state = EpisodeState.STOPPED
                message = (f'{UNPARSEABLE_PREFIX} {result.raw_output[:80]!r}: stopped by the '
                           f'STOP fallback ({self.unparseable_total} unparseable so far)')
            elif result.action == Action.STOP:
                state, message = EpisodeState.SUCCEEDED, 'the model said STOP'
            elif steps >= self._max_steps:
                state, message = EpisodeState.STOPPED, f'max_steps ({self._max_steps}) reached'
            self._snap = dataclasses.replace(
                snap, state=state, step=steps, last_action=result.action,
                raw_output=result.raw_output, step_latency_ms=result.total_ms,
                spatial_memory_frames=result.spatial_memory_frames,
                spatial_memory_capacity=result.spatial_memory_capacity,
                frame_stamp=stamp, message=message)
            self.records.add_step(StepRecord(episode_id, steps, result.action, result.total_ms))
            if state == EpisodeState.NAVIGATING:
                self._motion.execute(result.action)
                self._mark_after_idle = True
            else:
                self.records.finish(self._snap)
            snap = self._snap
        logger.debug('episode %d step %d: %s (%.1f ms)', episode_id, steps,
                     result.action.name, result.total_ms)
        if fallback:
            logger.warning('episode %d: %s', episode_id, message)
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
            self._finish_current(EpisodeState.STOPPED, pending.reason,
                                 only_episode=pending.episode_id or None)
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
            self.records.start(pending.episode_id)
            self.records.finish(snap)
            self._emit(snap)
            return True
        snap = EpisodeSnapshot(episode_id=pending.episode_id, instruction=pending.text,
                               state=EpisodeState.NAVIGATING, message='started')
        with self._lock:
            self._snap = snap
            self.records.start(pending.episode_id)
            self._frame_mark = self._slot.seq
            self._after_s = self._motion.last_end_s    # when the preempted primitive stopped
            self._after_tolerance_s = FRAME_STAMP_TOLERANCE_S
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
            self.records.finish(self._snap)
            snap = self._snap
        logger.info('episode %d ended: %s (%s)', snap.episode_id, state.name, message)
        self._emit(snap)

    def _emit(self, snap: EpisodeSnapshot) -> None:
        if self._on_event is not None:
            try:
                self._on_event(snap)
            except Exception:  # noqa: BLE001
                logger.exception('on_event callback failed')
