"""Types shared by the engine, the node, the simulator and the tools (no rclpy, no torch).

The contract between layers:
    * :class:`Action` holds the four VLN-CE action ids.
    * :class:`StepResult` is what one engine step returns.
    * :class:`Engine` is the protocol every engine implements (the JanusVLN engine, the
      reference step, scripted or oracle policies used for plumbing tests and evaluation).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Protocol, runtime_checkable

import numpy as np


class Action(enum.IntEnum):
    """Discrete VLN-CE actions; values are the ids used on the wire."""

    STOP = 0
    MOVE_FORWARD = 1
    TURN_LEFT = 2
    TURN_RIGHT = 3


@dataclasses.dataclass(frozen=True)
class StepResult:
    """The outcome of one engine step.

    Attributes:
        action: The chosen action.
        raw_output: The model's text for this step (the decoded action string), or a short
            description for non-model policies.
        step: 0-based index of this step within the episode.
        latencies_ms: Per-stage wall times in milliseconds, e.g. ``{'vggt': .., 'vit': ..,
            'prefill': .., 'decode': .., 'total': ..}``; ``'total'`` is always present.
        spatial_memory_frames: Frames held in the spatial (VGGT) memory after the step.
        spatial_memory_capacity: Capacity of the spatial memory in frames.
        semantic_memory_frames: Frames held in the semantic memory after the step.
        semantic_memory_capacity: Capacity of the semantic memory in frames (0 if unbounded).
        memory_nbytes: Bytes held by both memories after the step.
        parsed: False when the model's output was not an action word and ``action`` is the
            released fallback (STOP): the episode then ends as STOPPED ("unparseable output"),
            not as SUCCEEDED.
    """

    action: Action
    raw_output: str
    step: int
    latencies_ms: dict[str, float]
    spatial_memory_frames: int = 0
    spatial_memory_capacity: int = 0
    semantic_memory_frames: int = 0
    semantic_memory_capacity: int = 0
    memory_nbytes: int = 0
    parsed: bool = True

    @property
    def total_ms(self) -> float:
        """Wall time of the whole step in milliseconds."""
        return float(self.latencies_ms.get('total', 0.0))


@runtime_checkable
class Engine(Protocol):
    """A persistent navigation engine driven by one worker thread.

    ``reset`` starts an episode; ``step`` consumes one RGB frame (taken after the previous
    action finished executing) and returns the next action.
    """

    def reset(self, instruction: str) -> None:
        """Start a new episode: clear both memories and set the instruction."""

    def step(self, frame: np.ndarray) -> StepResult:
        """Run one step on an RGB frame.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB image.

        Returns:
            The step's result.
        """

    def close(self) -> None:
        """Free the model and any device memory."""
