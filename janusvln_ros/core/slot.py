"""A one-item, latest-wins mailbox between the image callback and the inference worker.

The image callback only stores the newest frame (milliseconds); the worker waits for a frame
newer than the last one it looked at. Nothing ever queues: a frame that nobody took before the
next one arrived is counted as dropped.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Generic, TypeVar

T = TypeVar('T')


@dataclasses.dataclass(frozen=True)
class SlotItem(Generic[T]):
    """One item taken from a :class:`LatestSlot`.

    Attributes:
        seq: Sequence number of the item (1, 2, ...).
        item: The stored object (a ``(H, W, 3)`` uint8 RGB frame in the node).
        stamp: The caller's stamp (the node stores the Image header stamp).
        capture_s: Capture time in seconds on the consumer's clock, or None when unknown
            (a zero header stamp).
    """

    seq: int
    item: T
    stamp: Any
    capture_s: float | None


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
        self._capture_s: float | None = None
        self._seq = 0
        self._taken_seq = 0
        self._overwritten = 0

    def put(self, item: T, stamp: Any = None, capture_s: float | None = None) -> int:
        """Store ``item`` (dropping any older one); returns its sequence number.

        Args:
            item: The item.
            stamp: Opaque stamp handed back with it.
            capture_s: Capture time in seconds (None: unknown).
        """
        with self._cond:
            if self._seq > self._taken_seq and self._item is not None:
                self._overwritten += 1
            self._item = item
            self._stamp = stamp
            self._capture_s = capture_s
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

    def take_newer(self, mark: int, timeout: float | None = None) -> SlotItem[T] | None:
        """Wait for an item with sequence number > ``mark``; None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > mark and self._item is not None,
                                       timeout):
                return None
            self._taken_seq = self._seq
            return SlotItem(self._seq, self._item, self._stamp, self._capture_s)

    def wait_newer(self, mark: int, timeout: float | None = None) -> tuple[int, T, Any] | None:
        """Wait for an item with sequence number > ``mark``; None on timeout.

        Returns:
            ``(seq, item, stamp)`` of the newest item.
        """
        got = self.take_newer(mark, timeout)
        return None if got is None else (got.seq, got.item, got.stamp)

    def clear(self) -> None:
        """Drop the held item (the sequence number keeps counting)."""
        with self._cond:
            self._item = None
            self._stamp = None
            self._capture_s = None
