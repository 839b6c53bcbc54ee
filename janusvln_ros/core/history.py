"""History sampling of the released JanusVLN step loop.

With ``t + 1`` frames seen so far (frame ``t`` is the current one), the prompt holds every frame
while the history ``t`` is at most ``num_history``; beyond that it holds the ``num_history + 1``
indices ``floor(linspace(0, t, num_history + 1))``, which always include frame 0 and frame ``t``.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


def sample_history(num_frames: int, num_history: int = 8) -> list[int]:
    """Indices of the frames that enter this step's prompt, oldest first.

    Args:
        num_frames: Frames seen in the episode so far, the current one included (>= 1).
        num_history: Past frames kept in the prompt (8 in the released code).

    Returns:
        Sorted frame indices; the last one is always ``num_frames - 1``.

    Raises:
        ValueError: ``num_frames`` or ``num_history`` is below 1.
    """
    if num_frames < 1 or num_history < 1:
        raise ValueError(f'expected num_frames >= 1 and num_history >= 1, '
                         f'got {num_frames} and {num_history}')
    history = num_frames - 1
    if history <= num_history:
        return list(range(num_frames))
    return [int(i) for i in np.linspace(0, history, num_history + 1, dtype=int)]


def oldest_sampleable(num_frames: int, num_history: int = 8) -> int:
    """Smallest frame index ``> 0`` that this or any later step can still sample.

    For a history ``h' >= h``, ``floor(k h' / N)`` (``N = num_history``) is smallest for
    ``k = 1``, and ``floor(h' / N)`` takes every integer value ``>= floor(h / N)``. Frames
    ``1 .. floor(h / N) - 1`` can therefore never be sampled again; frame 0 always can. This
    lets the per-frame feature store drop them (an exact saving of about ``1 / N``).

    Args:
        num_frames: Frames seen so far, the current one included.
        num_history: As in :func:`sample_history`.

    Returns:
        The index (>= 1) of the oldest non-anchor frame that must be kept.
    """
    history = max(num_frames - 1, 0)
    return max(1, history // num_history)


def held_frames(num_frames: int, num_history: int = 8) -> int:
    """Frames a pruned per-frame store holds after ``num_frames`` frames of one episode.

    The store keeps frame 0 and frames ``oldest_sampleable(num_frames) .. num_frames - 1``: every
    frame this or a later step can still sample, and no other. The count never decreases from
    one frame to the next (it grows by 1 per frame, minus 1 every ``num_history`` frames), so
    ``held_frames(max_frames)`` is the most frames the store ever holds in an episode of at most
    ``max_frames`` frames: for the node's default step cap of 400 and ``num_history`` 8, 352.

    Args:
        num_frames: Frames seen so far in the episode (>= 0).
        num_history: As in :func:`sample_history`.

    Returns:
        The number of frames held.
    """
    if num_frames <= 1:
        return max(num_frames, 0)
    return num_frames + 1 - oldest_sampleable(num_frames, num_history)
