"""Semantic (Qwen side) memories of the engine: the parity feature store and the streaming cache.

Two modes:

* ``parity`` (:class:`FrameFeatureStore`) - what the released checkpoints were trained for.
  Each frame is encoded by the Qwen ViT **once** and its merged tokens are kept; every step
  re-prefills the sampled history (<= 9 frames) from this store. Because the history is a
  linspace over the whole episode, any frame ``0`` or ``>= floor(h / num_history)`` can still be
  sampled, so the store keeps exactly those (frames ``1 .. floor(h / N) - 1`` can never be
  sampled again and are dropped: :func:`~janusvln_ros.core.history.oldest_sampleable`). The
  store therefore **grows with the episode**, by ``(N - 1) / N`` frame per step on average, and
  is bounded only by the episode's length: after ``n`` frames it holds exactly
  :func:`~janusvln_ros.core.history.held_frames` ``(n)`` frames of ``tokens x hidden`` values
  (the README gives the figure at real size for the node's step cap). No fixed bound exists
  without a step cap: any frame from ``floor(h / N)`` on is sampled again by some later step.
  We keep the ViT features (re-encoding 8 history frames per step would cost the ViT time the
  store saves). ``capacity`` is 0 (not bounded by the store) for this store. The features live
  in **host memory** (``offload=True``, the engine's choice; pinned when CUDA is available);
  the GPU holds only the current frame and the <= 9 frames of the step's prompt (uploaded with
  ``non_blocking=True`` each step), so GPU memory does not grow with the episode.
* ``streaming`` (:class:`StreamingSemanticMemory`) - the paper's dual implicit memory, which
  the released code does not implement and the released checkpoints were **not** trained
  for. The LLM keeps a key/value cache of the prompt prefix + the first ``anchor_frames``
  frames + the last ``window_frames`` frames; each step prefills only the new frame, with
  original M-RoPE positions from a global counter (never re-rotated); older window frames are
  evicted physically; the per-step query and its answer are appended and then cropped.
  Defaults: 1 anchor frame (the first observation, as the VGGT anchor) and a window of 8
  frames, i.e. the same 9-frame budget as the parity prompt.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from janusvln_ros.core.history import oldest_sampleable
from janusvln_ros.model.llm_cache import CacheLayoutError, Segment, StreamingKVCache

logger = logging.getLogger(__name__)


class FrameFeatureStore:
    """Per-frame Qwen ViT outputs of one episode (parity mode).

    Args:
        num_history: History length of the sampling rule (to know which frames can be pruned).
        prune: Drop frames that can never be sampled again (exact; see the module docstring).
        offload: Keep the features in host memory (pinned when CUDA is available); the last
            added frame also stays on its device until the next ``add``. False: keep them where
            they were computed.
    """

    def __init__(self, num_history: int = 8, prune: bool = True, offload: bool = False) -> None:
        self.num_history = num_history
        self.prune = prune
        self.offload = offload
        self._frames: dict[int, torch.Tensor] = {}
        self._grids: dict[int, torch.Tensor | None] = {}
        self._latest: tuple[int, torch.Tensor] | None = None
        self._count = 0

    def reset(self) -> None:
        """Forget every frame."""
        self._frames.clear()
        self._grids.clear()
        self._latest = None
        self._count = 0

    @staticmethod
    def _to_host(tokens: torch.Tensor) -> torch.Tensor:
        """A host copy of ``tokens`` (pinned, asynchronous from CUDA; the tensor itself on CPU)."""
        if tokens.device.type == 'cpu':
            return tokens
        host = torch.empty(tokens.shape, dtype=tokens.dtype, device='cpu',
                           pin_memory=torch.cuda.is_available())
        host.copy_(tokens, non_blocking=True)  # ordered before any later upload on the stream
        return host

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def capacity(self) -> int:
        """0: not bounded by the store (it holds ``held_frames(frames_seen)`` frames)."""
        return 0

    @property
    def frames_seen(self) -> int:
        """Frames added since the last reset."""
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of the stored features (host bytes when offloaded)."""
        return sum(t.numel() * t.element_size() for t in self._frames.values())

    def devices(self) -> set[torch.device]:
        """Devices of the stored features."""
        return {t.device for t in self._frames.values()}

    def add(self, tokens: torch.Tensor, grid_thw: torch.Tensor | None = None) -> int:
        """Store the next frame's ViT tokens.

        Args:
            tokens: ``(n_tokens, hidden)`` merged ViT output of the frame.
            grid_thw: ``(3,)`` its patch grid (kept for the M-RoPE positions).

        Returns:
            The frame's index in the episode.
        """
        index = self._count
        self._frames[index] = self._to_host(tokens) if self.offload else tokens
        self._latest = (index, tokens)
        self._grids[index] = grid_thw
        self._count += 1
        if self.prune:
            oldest = oldest_sampleable(self._count, self.num_history)
            for stale in [i for i in self._frames if 0 < i < oldest]:
                del self._frames[stale]
                del self._grids[stale]
        return index

    def get(self, index: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The ViT tokens of frame ``index``.

        Args:
            index: Frame index.
            device: Where the tokens are wanted (None: where they are stored). An offloaded
                frame is uploaded with ``non_blocking=True``; the last added frame is returned
                from its own device without a copy.

        Raises:
            KeyError: The frame was never added or has been pruned.
        """
        tokens = self._frames[index]
        if device is None:
            return tokens
        device = torch.device(device)
        if self._latest is not None and self._latest[0] == index:
            latest = self._latest[1]
            if latest.device == device or (device.type == latest.device.type
                                           and device.index is None):
                return latest
        return tokens.to(device, non_blocking=True)

    def grid(self, index: int) -> torch.Tensor | None:
        """The ``(3,)`` patch grid stored with frame ``index``."""
        return self._grids[index]

    def indices(self) -> list[int]:
        """Indices of the frames held, oldest first."""
        return sorted(self._frames)


class StreamingSemanticMemory:
    """The streaming LLM memory: prefix + anchor frames + sliding window (scheme A).

    The engine runs the forward passes; this object owns the cache, the global position
    counter and the eviction policy.

    Args:
        anchor_frames: First frames of the episode kept for good (>= 0).
        window_frames: Most recent frames kept (>= 1).
        config: Model config for the ``DynamicCache``.
    """

    def __init__(self, anchor_frames: int = 1, window_frames: int = 8,
                 config: Any = None) -> None:
        if anchor_frames < 0 or window_frames < 1:
            raise ValueError(f'expected anchor_frames >= 0 and window_frames >= 1, got '
                             f'{anchor_frames} and {window_frames}')
        self.anchor_frames = anchor_frames
        self.window_frames = window_frames
        self.kv = StreamingKVCache(config)
        self.next_pos = 0

    def reset(self) -> None:
        """Drop the cache and restart positions at 0."""
        self.kv.reset()
        self.next_pos = 0

    def __len__(self) -> int:
        """Frames currently held in the cache."""
        return len(self.kv.frame_ids())

    @property
    def capacity(self) -> int:
        """Frames held once the window is full."""
        return self.anchor_frames + self.window_frames

    @property
    def nbytes(self) -> int:
        """Bytes of the cached keys and values."""
        return self.kv.nbytes

    @property
    def hf_cache(self) -> Any:
        """The transformers cache object to pass as ``past_key_values``."""
        return self.kv.hf_cache

    @property
    def has_prefix(self) -> bool:
        """Whether the prompt prefix has been prefilled."""
        return any(s.kind == 'prefix' for s in self.kv.segments)

    def record(self, kind: str, length: int, end_pos: int, frame_id: int = -1,
               advance: bool = True) -> Segment:
        """Register a chunk the model has just appended, starting at ``self.next_pos``.

        Args:
            kind: Segment kind.
            length: Tokens appended.
            end_pos: The position counter after the chunk.
            frame_id: Frame index for ``'frame'`` chunks.
            advance: Move ``next_pos`` to ``end_pos`` (False for the transient query, whose
                positions are reused by the next frame once it is cropped).
        """
        seg = self.kv.record(kind, length, self.next_pos, end_pos, frame_id)
        if advance:
            self.next_pos = end_pos
        return seg

    def record_many(self, chunks: list[tuple[str, int, int, int, bool]]) -> list[Segment]:
        """Register several chunks that ONE forward pass has just appended, in order.

        Args:
            chunks: ``(kind, length, end_pos, frame_id, advance)`` per chunk, as for
                :meth:`record`.

        Raises:
            CacheLayoutError: The cache does not hold exactly the recorded tokens (nothing is
                recorded then).
        """
        segments = []
        pos = self.next_pos
        for kind, length, end_pos, frame_id, advance in chunks:
            segments.append(Segment(kind, frame_id, int(length), int(pos), int(end_pos)))
            if advance:
                pos = end_pos
        before = list(self.kv.segments)
        self.kv.segments.extend(segments)
        if self.kv.segment_length != self.kv.seq_length:
            held = self.kv.seq_length
            self.kv.segments[:] = before
            raise CacheLayoutError(f'cache holds {held} tokens, segments '
                                   f'{self.kv.segment_length + sum(s.length for s in segments)}')
        self.next_pos = pos
        return segments

    def evict(self) -> int:
        """Drop frames beyond the anchors and the window; returns the tokens evicted."""
        frames = self.kv.frame_ids()
        if len(frames) <= self.capacity:
            return 0
        keep = set(frames[:self.anchor_frames]) | set(frames[-self.window_frames:])
        return self.kv.keep_segments(lambda s: s.kind != 'frame' or s.frame_id in keep)

    def evicted_by_next_frame(self) -> list[tuple[int, int]]:
        """Token ranges ``[start, end)`` that ``evict()`` drops once one more frame is recorded.

        That is the window's oldest frame once the window is full (else nothing).
        """
        frames = self.kv.frame_ids() + [None]
        if len(frames) <= self.capacity:
            return []
        keep = set(frames[:self.anchor_frames]) | set(frames[-self.window_frames:])
        ranges, start = [], 0
        for seg in self.kv.segments:
            if seg.kind == 'frame' and seg.frame_id not in keep:
                ranges.append((start, start + seg.length))
            start += seg.length
        return ranges

    def mark(self) -> int:
        """A rollback point (number of recorded segments)."""
        return len(self.kv.segments)

    def rollback(self, mark: int) -> None:
        """Crop everything recorded or appended after ``mark`` (query and answer tokens)."""
        self.kv.crop_to(mark)
