"""A scripted engine: plays a fixed action sequence (plumbing checks without a model).

``EngineConfig.script`` is a comma-separated list of action names (``STOP``, ``MOVE_FORWARD``,
``TURN_LEFT``, ``TURN_RIGHT``), played cyclically unless the last one is ``STOP``; the special
name ``RAISE`` makes that step raise :class:`~janusvln_ros.core.errors.InferenceError` (fault
injection for tests). ``EngineConfig.script_step_delay_s`` simulates inference time.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

import numpy as np

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.errors import ConfigError, InferenceError, InputError
from janusvln_ros.core.types import Action, StepResult

logger = logging.getLogger(__name__)

RAISE = 'RAISE'


def parse_script(script: str) -> list[Action | None]:
    """Parse a comma-separated action script.

    Args:
        script: E.g. ``'MOVE_FORWARD,TURN_LEFT,STOP'``; ``RAISE`` marks a failing step.

    Returns:
        One entry per step: an :class:`Action`, or ``None`` for ``RAISE``.

    Raises:
        ConfigError: The script is empty or names an unknown action.
    """
    names = [part.strip().upper() for part in script.split(',') if part.strip()]
    if not names:
        raise ConfigError(f'script: expected comma-separated action names, got {script!r}')
    steps: list[Action | None] = []
    for name in names:
        if name == RAISE:
            steps.append(None)
        elif name in Action.__members__:
            steps.append(Action[name])
        else:
            raise ConfigError(f'script: unknown action {name!r}; expected one of '
                              f'{list(Action.__members__) + [RAISE]}')
    return steps


class ScriptedEngine:
    """Engine protocol implementation that replays ``config.script``.

    Attributes:
        frames_seen: Number of frames consumed by :meth:`step` in the current episode.
        frame_marks: Recent ``frame[0, 0, 0]`` values (for tests that check which frame was used).
        instructions: Instructions of the episodes started so far (most recent last, bounded).
    """

    def __init__(self, config: EngineConfig) -> None:
        """Parse the script; raise :class:`ConfigError` if it is invalid."""
        self._config = config
        self._script = parse_script(config.script)
        self._cyclic = self._script[-1] is not Action.STOP
        self._delay_s = float(config.script_step_delay_s)
        self._capacity = config.spatial_anchor_frames + config.spatial_window_frames
        self._lock = threading.Lock()
        self._instruction: str | None = None
        self._step = 0
        self._closed = False
        self.frames_seen = 0
        self.frame_marks: collections.deque[int] = collections.deque(maxlen=1000)
        self.instructions: collections.deque[str] = collections.deque(maxlen=100)

    def reset(self, instruction: str) -> None:
        """Start a new episode at the beginning of the script."""
        with self._lock:
            self._check_open()
            self._instruction = instruction
            self._step = 0
            self.frames_seen = 0
            self.instructions.append(instruction)

    def set_instruction(self, instruction: str) -> None:
        """Change the instruction and keep the memory (the script position)."""
        with self._lock:
            self._check_open()
            if self._instruction is None:
                raise InferenceError('set_instruction: no episode to continue; call reset first')
            self._instruction = instruction
            self.instructions.append(instruction)

    def step(self, frame: np.ndarray) -> StepResult:
        """Return the next scripted action for ``frame``.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB image.

        Returns:
            The step's result; memory counts grow by one frame per step up to the capacity.

        Raises:
            InputError: ``frame`` is not an ``(H, W, 3)`` uint8 array.
            InferenceError: No episode was started, or the script says ``RAISE`` here.
        """
        t0 = time.perf_counter()
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 \
                or frame.shape[2] != 3 or frame.size == 0:
            got = (getattr(frame, 'shape', None), getattr(frame, 'dtype', type(frame)))
            raise InputError(f'frame: expected a non-empty (H, W, 3) uint8 array, got {got}')
        with self._lock:
            self._check_open()
            if self._instruction is None:
                raise InferenceError('step: no episode; call reset(instruction) first')
            index = self._step
            if self._cyclic:
                entry = self._script[index % len(self._script)]
            else:
                entry = self._script[min(index, len(self._script) - 1)]
            self._step += 1
            self.frames_seen += 1
            self.frame_marks.append(int(frame[0, 0, 0]))
        if self._delay_s > 0:
            time.sleep(self._delay_s)
        if entry is None:
            raise InferenceError(f'scripted fault injected at step {index}')
        held = min(index + 1, self._capacity)
        total_ms = (time.perf_counter() - t0) * 1e3
        return StepResult(action=entry, raw_output=entry.name, step=index,
                          latencies_ms={'total': total_ms}, spatial_memory_frames=held,
                          spatial_memory_capacity=self._capacity, semantic_memory_frames=held,
                          semantic_memory_capacity=self._capacity,
                          memory_nbytes=held * int(frame.nbytes))

    def close(self) -> None:
        """Mark the engine closed; later calls raise :class:`InferenceError`."""
        with self._lock:
            self._closed = True
            self._instruction = None

    def _check_open(self) -> None:
        if self._closed:
            raise InferenceError('engine is closed')
