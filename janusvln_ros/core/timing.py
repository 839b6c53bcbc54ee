"""Rolling latency statistics (p50/p95 over the most recent samples)."""

from __future__ import annotations

import collections
import threading

import numpy as np


class RollingStats:
    """Thread-safe rolling window of samples with percentile queries.

    Args:
        window: Number of most recent samples kept.
    """

    def __init__(self, window: int = 100) -> None:
        """Create an empty window."""
        if window < 1:
            raise ValueError(f'window: expected >= 1, got {window}')
        self._samples: collections.deque[float] = collections.deque(maxlen=window)
        self._lock = threading.Lock()
        self._count = 0

    def add(self, value: float) -> None:
        """Add one sample."""
        with self._lock:
            self._samples.append(float(value))
            self._count += 1

    @property
    def count(self) -> int:
        """Samples added since creation (not only those in the window)."""
        with self._lock:
            return self._count

    def percentile(self, q: float) -> float:
        """Return the q-th percentile of the window, q in [0, 100]; NaN when empty."""
        with self._lock:
            if not self._samples:
                return float('nan')
            return float(np.percentile(np.fromiter(self._samples, float), q))

    def summary(self) -> dict[str, float]:
        """Percentiles of the current window: ``{'p50', 'p95', 'max', 'n'}``."""
        with self._lock:
            if not self._samples:
                return {'p50': float('nan'), 'p95': float('nan'), 'max': float('nan'), 'n': 0}
            arr = np.fromiter(self._samples, float)
        return {'p50': float(np.percentile(arr, 50)), 'p95': float(np.percentile(arr, 95)),
                'max': float(arr.max()), 'n': int(arr.size)}
