"""VLN-CE episode metrics: NE, SR, OS, SPL and nDTW, as VLN-CE (Krantz et al. 2020) defines them.

For an episode with agent positions ``p_0 .. p_T`` (``p_0`` the start), geodesic distances
``d_t`` from ``p_t`` to the goal, and a reference path ``r_1 .. r_M``:

* **NE** (navigation error) = ``d_T``, the geodesic distance to the goal where the agent ended.
* **SR** (success) = 1 if the agent called STOP and ``d_T < 3 m``, else 0 (running out of steps
  is a failure, as in Habitat's ``Success`` measure).
* **OS** (oracle success) = 1 if ``d_t < 3 m`` for some ``t``.
* **SPL** = ``SR * d_0 / max(d_0, L)`` with ``L = sum_t |p_t - p_{t-1}|`` the Euclidean length
  of the path walked.
* **nDTW** = ``exp(-DTW(P, R) / (M * 3 m))`` (Ilharco et al. 2019) where ``P`` is the agent's
  positions with consecutive duplicates removed, ``R`` the reference positions and ``DTW`` the
  dynamic-time-warping cost with Euclidean point distances. VLN-CE computes DTW with
  ``fastdtw``, an approximation; here it is exact.

Positions are 2-D floor coordinates (the camera height is constant).
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import math

import numpy as np


SUCCESS_DISTANCE_M = 3.0


@dataclasses.dataclass(frozen=True)
class EpisodeMetrics:
    """Metrics of one episode (see the module docstring); lengths in metres."""

    ne: float
    sr: float
    os: float
    spl: float
    ndtw: float
    path_length: float
    geodesic_start: float
    steps: int
    stopped: bool

    def as_dict(self) -> dict[str, float | int | bool]:
        """Plain dict for JSON."""
        return dataclasses.asdict(self)


def path_length(positions: np.ndarray) -> float:
    """Euclidean length of a polyline ``(n, 2)`` in metres."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum())


def dtw(query: np.ndarray, reference: np.ndarray) -> float:
    """Exact dynamic-time-warping cost with Euclidean point distances.

    Args:
        query: ``(n, d)`` points.
        reference: ``(m, d)`` points.

    Returns:
        The minimal sum of point distances over monotone alignments of both sequences.
    """
    query = np.asarray(query, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    n, m = len(query), len(reference)
    cost = np.linalg.norm(query[:, None, :] - reference[None, :, :], axis=-1)
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        row_prev, row = acc[i - 1], acc[i]
        c = cost[i - 1]
        for j in range(1, m + 1):
            row[j] = c[j - 1] + min(row_prev[j], row[j - 1], row_prev[j - 1])
    return float(acc[n, m])


def dedupe(positions: np.ndarray) -> np.ndarray:
    """Drop consecutive repeated positions (turning in place adds none), as VLN-CE's NDTW."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) == 0:
        return positions
    keep = np.ones(len(positions), bool)
    keep[1:] = np.any(positions[1:] != positions[:-1], axis=1)
    return positions[keep]


def ndtw(positions: np.ndarray, reference: np.ndarray,
         success_distance: float = SUCCESS_DISTANCE_M) -> float:
    """Normalised DTW of the agent's positions against the reference path, in ``(0, 1]``."""
    reference = np.asarray(reference, dtype=np.float64)
    return math.exp(-dtw(dedupe(positions), reference) / (len(reference) * success_distance))


def episode_metrics(positions: np.ndarray, distances: Sequence[float], reference: np.ndarray,
                    stopped: bool, geodesic_start: float | None = None,
                    success_distance: float = SUCCESS_DISTANCE_M) -> EpisodeMetrics:
    """All metrics of one episode.

    Args:
        positions: ``(T + 1, 2)`` agent positions, the start first, one per step.
        distances: ``T + 1`` geodesic distances to the goal, one per position.
        reference: ``(M, 2)`` reference path positions.
        stopped: Whether the agent called STOP (else it ran out of steps or was cancelled).
        geodesic_start: Geodesic start-to-goal distance (default ``distances[0]``).
        success_distance: Success radius in metres.

    Returns:
        The metrics.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) == 0 or len(positions) != len(distances):
        raise ValueError(f'expected one distance per position, got {len(distances)} distances '
                         f'for {len(positions)} positions')
    d0 = float(distances[0] if geodesic_start is None else geodesic_start)
    ne = float(distances[-1])
    success = float(stopped and ne < success_distance)
    oracle = float(min(distances) < success_distance)
    walked = path_length(positions)
    spl = success * d0 / max(d0, walked) if max(d0, walked) > 0 else success
    return EpisodeMetrics(ne=ne, sr=success, os=oracle, spl=float(spl),
                          ndtw=ndtw(positions, reference, success_distance),
                          path_length=walked, geodesic_start=d0, steps=len(positions) - 1,
                          stopped=bool(stopped))


def aggregate(results: Sequence[EpisodeMetrics]) -> dict[str, float]:
    """Mean of each metric over episodes (the way VLN-CE reports them).

    Returns:
        ``{'episodes', 'NE', 'SR', 'OS', 'SPL', 'nDTW', 'TL', 'steps'}``.
    """
    if not results:
        return {'episodes': 0}
    return {
        'episodes': len(results),
        'NE': float(np.mean([r.ne for r in results])),
        'SR': float(np.mean([r.sr for r in results])),
        'OS': float(np.mean([r.os for r in results])),
        'SPL': float(np.mean([r.spl for r in results])),
        'nDTW': float(np.mean([r.ndtw for r in results])),
        'TL': float(np.mean([r.path_length for r in results])),
        'steps': float(np.mean([r.steps for r in results])),
    }
