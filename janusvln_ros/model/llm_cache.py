"""The streaming LLM key/value cache: segments, physical eviction, crop.

:class:`StreamingKVCache` wraps a transformers ``DynamicCache`` (what Qwen2.5-VL's forward
updates in place) and records which cached tokens belong to which *segment* (the text prefix,
one frame, a per-step query...). Eviction is physical: every layer's keys and values are
``index_select``-ed down to the kept tokens. The keys were rotated with their original M-RoPE
positions before caching, and new tokens keep taking positions from a global counter
(:mod:`janusvln_ros.model.positions`), so eviction needs no re-rotation and equals attention
masking of the evicted tokens (tested to fp32 round-off in ``test/unit/test_llm_cache.py``).

Batch size 1 only; pass ``attention_mask=None`` to the model (the causal mask is built in index
space, so every remaining cached token is simply "in the past").
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Iterable

import torch
from transformers import DynamicCache

logger = logging.getLogger(__name__)


class CacheLayoutError(RuntimeError):
    """The segment bookkeeping and the cached tensors disagree."""


@dataclasses.dataclass(frozen=True)
class Segment:
    """A run of consecutive cached tokens.

    Attributes:
        kind: ``'prefix'``, ``'frame'``, ``'query'``, ``'decode'`` or any caller label.
        frame_id: Episode frame index for ``'frame'`` segments, else -1.
        length: Number of tokens.
        first_pos: Temporal M-RoPE position of the first token (for bookkeeping and tests).
        end_pos: The position counter after the segment.
    """

    kind: str
    frame_id: int
    length: int
    first_pos: int
    end_pos: int


class StreamingKVCache:
    """A ``DynamicCache`` plus segment bookkeeping and physical eviction.

    Args:
        config: The model (or text) config, passed to ``DynamicCache`` (may be None).
    """

    def __init__(self, config: Any = None) -> None:
        self._config = config
        self.hf_cache = DynamicCache(config=config) if config is not None else DynamicCache()
        self.segments: list[Segment] = []

    def reset(self) -> None:
        """Drop every cached token (a fresh ``DynamicCache``, so memory is released)."""
        self.hf_cache = (DynamicCache(config=self._config) if self._config is not None
                         else DynamicCache())
        self.segments = []

    @property
    def seq_length(self) -> int:
        """Tokens currently cached (from the tensors)."""
        return int(self.hf_cache.get_seq_length())

    @property
    def segment_length(self) -> int:
        """Tokens currently cached (from the bookkeeping)."""
        return sum(s.length for s in self.segments)

    def record(self, kind: str, length: int, first_pos: int, end_pos: int,
               frame_id: int = -1) -> Segment:
        """Register the ``length`` tokens a forward pass has just appended.

        Raises:
            CacheLayoutError: The cache does not hold exactly the recorded tokens.
        """
        seg = Segment(kind, frame_id, int(length), int(first_pos), int(end_pos))
        self.segments.append(seg)
        if self.segment_length != self.seq_length:
            self.segments.pop()
            raise CacheLayoutError(f'cache holds {self.seq_length} tokens, segments '
                                   f'{self.segment_length + seg.length}')
        return seg

    def frame_ids(self) -> list[int]:
        """Ids of the cached frame segments, oldest first."""
        return [s.frame_id for s in self.segments if s.kind == 'frame']

    def keep_segments(self, keep: Callable[[Segment], bool]) -> int:
        """Physically evict every segment for which ``keep`` is false.

        Returns:
            The number of tokens evicted (0: nothing was copied).
        """
        kept_segments = [s for s in self.segments if keep(s)]
        if len(kept_segments) == len(self.segments):
            return 0
        index: list[torch.Tensor] = []
        start = 0
        for seg in self.segments:
            if keep(seg):
                index.append(torch.arange(start, start + seg.length))
            start += seg.length
        removed = self.segment_length - sum(s.length for s in kept_segments)
        keep_idx = torch.cat(index) if index else torch.zeros(0, dtype=torch.long)
        self._index_select(keep_idx)
        self.segments = kept_segments
        return removed

    def _index_select(self, keep_idx: torch.Tensor) -> None:
        for layer in self.hf_cache.layers:
            if layer.keys is None or layer.keys.numel() == 0:
                continue
            idx = keep_idx.to(layer.keys.device, non_blocking=True)  # no host sync
            layer.keys = layer.keys.index_select(-2, idx)
            layer.values = layer.values.index_select(-2, idx)

    def crop_to(self, num_segments: int) -> None:
        """Drop the segments after the first ``num_segments`` (e.g. a query and its answer).

        Also drops unrecorded tokens appended after the last recorded segment.
        """
        self.segments = self.segments[:num_segments]
        self.truncate(self.segment_length)

    def truncate(self, keep_tokens: int) -> None:
        """Keep the first ``keep_tokens`` cached tokens of every layer.

        Unrecorded tokens (e.g. decoded answer tokens fed after the last recorded segment) are
        dropped this way; the bookkeeping is not touched.
        """
        for layer in self.hf_cache.layers:
            if layer.keys is not None and layer.keys.shape[-2] > keep_tokens:
                layer.keys = layer.keys[..., :keep_tokens, :]
                layer.values = layer.values[..., :keep_tokens, :]

    @property
    def nbytes(self) -> int:
        """Bytes of the cached keys and values (the retained tokens, all layers)."""
        total = 0
        for layer in self.hf_cache.layers:
            if layer.keys is not None and layer.keys.numel():
                total += layer.keys.numel() * layer.keys.element_size()
                total += layer.values.numel() * layer.values.element_size()
        return total

    def positions_increasing(self) -> bool:
        """Whether the cached segments' positions strictly increase (scheme A invariant)."""
        last = -1
        for seg in self.segments:
            if seg.length and seg.first_pos <= last:
                return False
            last = max(last, seg.end_pos - 1)
        return True

    def devices(self) -> Iterable[torch.device]:
        """Devices of the cached tensors."""
        return {layer.keys.device for layer in self.hf_cache.layers
                if layer.keys is not None and layer.keys.numel()}
