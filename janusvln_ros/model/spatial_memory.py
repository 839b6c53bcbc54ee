"""Spatial memory: the key/value caches of the VGGT aggregator's global-attention blocks.

The aggregator runs one frame at a time. In each of its global blocks the current frame's tokens
attend to the tokens of the frames held in the cache plus themselves. VGGT has no temporal position
encoding (its 2-D RoPE uses in-frame patch coordinates only), so the order of cached frames is
irrelevant and evicting a frame needs no position bookkeeping. Keys are stored after k-norm and
RoPE: that is exact, because a key's rotation depends only on its in-frame position.

Eviction policy (the released JanusVLN code): after each frame, keep the first ``anchor_frames``
frames of the episode and the last ``window_frames`` frames; drop the frames in between. The frame
being processed attends to the held frames and to itself, i.e. to at most
``anchor_frames + window_frames + 1`` frames.

Two implementations share the :class:`SpatialCache` protocol used by
:meth:`janusvln_ros.model.vggt.VGGTAggregator.forward_frame`:

* :class:`ConcatEvictCache`: the deliberately plain oracle (concatenate, then slice).
* :class:`RingBufferCache`: one preallocated tensor, pinned anchor slots and a FIFO ring, no
  allocation, concatenation or host synchronisation per step.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import torch
from torch.nn import functional as F

logger = logging.getLogger(__name__)


class SpatialMemoryError(RuntimeError):
    """Raised when a spatial cache is used against its protocol (shapes, layer order)."""


@runtime_checkable
class SpatialCache(Protocol):
    """Protocol between the aggregator's global blocks and a spatial key/value cache.

    Per frame the aggregator calls :meth:`attend` once for each computed global layer
    (``0 .. n - 1``, the same ``n`` for every frame of an episode), then :meth:`commit` once.
    """

    @property
    def is_empty(self) -> bool:
        """Whether no frame is held (the next frame uses the first-frame tokens)."""

    @property
    def capacity(self) -> int:
        """Most frames held between two frames (anchors + window)."""

    @property
    def nbytes(self) -> int:
        """Bytes of key/value storage currently allocated."""

    def attend(self, layer_idx: int, q: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor) -> torch.Tensor:
        """Store the current frame's keys/values and attend over held frames + current.

        Args:
            layer_idx: Global block index.
            q: Queries of the current frame, (B, H, T, hd), after q-norm and RoPE.
            k: Keys of the current frame, (B, H, T, hd), after k-norm and RoPE.
            v: Values of the current frame, (B, H, T, hd).

        Returns:
            Attention output, (B, H, T, hd).
        """

    def commit(self) -> None:
        """Close the current frame: count it as held and evict per the policy."""

    def reset(self) -> None:
        """Forget every frame (start of a new episode)."""

    def __len__(self) -> int:
        """Frames held."""


def _check_policy(anchor_frames: int, window_frames: int) -> None:
    for name, value, low in (('anchor_frames', anchor_frames, 0),
                             ('window_frames', window_frames, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f'{name}: expected an integer >= {low}, got {value!r}')


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.shape != v.shape or q.shape != k.shape:
        raise SpatialMemoryError(
            f'attend expects q, k, v of one shape (B, H, T, hd); got {tuple(q.shape)}, '
            f'{tuple(k.shape)}, {tuple(v.shape)}')


class ConcatEvictCache:
    """Plain oracle cache: per-layer tensors concatenated along a frame axis, then sliced.

    Mirrors the released code's behaviour (concatenate the new frame, keep the first
    ``anchor_frames`` and the last ``window_frames`` frames after each frame). It copies the whole
    per-layer cache every step; use it as the reference for tests, not in the engine.

    Per layer, keys and values are held as (B, H, S, T, hd) with S frames of T tokens.
    """

    def __init__(self, anchor_frames: int = 8, window_frames: int = 48) -> None:
        """Create an empty cache.

        Args:
            anchor_frames: First frames of an episode that are never evicted.
            window_frames: Most recent frames kept.
        """
        _check_policy(anchor_frames, window_frames)
        self.anchor_frames = anchor_frames
        self.window_frames = window_frames
        self._keys: dict[int, torch.Tensor] = {}
        self._values: dict[int, torch.Tensor] = {}
        self._pending: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._frames = 0

    @property
    def is_empty(self) -> bool:
        """Whether no frame is held."""
        return self._frames == 0

    @property
    def capacity(self) -> int:
        """Most frames held between two frames."""
        return self.anchor_frames + self.window_frames

    @property
    def nbytes(self) -> int:
        """Bytes held by the committed keys and values."""
        return sum(t.numel() * t.element_size()
                   for store in (self._keys, self._values) for t in store.values())

    def __len__(self) -> int:
        """Frames held."""
        return self._frames

    def attend(self, layer_idx: int, q: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor) -> torch.Tensor:
        """Concatenate the current frame to the layer's cache and attend over all of it.

        Args:
            layer_idx: Global block index.
            q: (B, H, T, hd) queries after q-norm and RoPE.
            k: (B, H, T, hd) keys after k-norm and RoPE.
            v: (B, H, T, hd) values.

        Returns:
            (B, H, T, hd) attention output.
        """
        _check_qkv(q, k, v)
        if layer_idx in self._pending:
            raise SpatialMemoryError(f'layer {layer_idx} attended twice in one frame')
        if self._frames > 0 and layer_idx not in self._keys:
            raise SpatialMemoryError(f'layer {layer_idx} was not cached for earlier frames')
        k_all, v_all = k.unsqueeze(2), v.unsqueeze(2)
        if layer_idx in self._keys:
            k_all = torch.cat((self._keys[layer_idx], k_all), dim=2)
            v_all = torch.cat((self._values[layer_idx], v_all), dim=2)
        self._pending[layer_idx] = (k_all, v_all)
        return F.scaled_dot_product_attention(q, k_all.flatten(2, 3), v_all.flatten(2, 3))

    def commit(self) -> None:
        """Keep the current frame and evict the middle frames beyond the capacity."""
        if self._frames > 0 and set(self._pending) != set(self._keys):
            raise SpatialMemoryError(
                f'frame attended layers {sorted(self._pending)}, earlier frames '
                f'{sorted(self._keys)}')
        a, w = self.anchor_frames, self.window_frames
        for layer_idx, (k_all, v_all) in self._pending.items():
            if k_all.shape[2] > a + w:
                k_all = torch.cat((k_all[:, :, :a], k_all[:, :, -w:]), dim=2)
                v_all = torch.cat((v_all[:, :, :a], v_all[:, :, -w:]), dim=2)
            self._keys[layer_idx], self._values[layer_idx] = k_all, v_all
        self._pending.clear()
        self._frames = min(self._frames + 1, a + w)

    def reset(self) -> None:
        """Drop every frame."""
        self._keys.clear()
        self._values.clear()
        self._pending.clear()
        self._frames = 0


def _capturing(t: torch.Tensor) -> bool:
    return t.is_cuda and torch.cuda.is_current_stream_capturing()


class RingBufferCache:
    """Preallocated spatial cache: pinned anchor slots plus a FIFO ring of window slots.

    Storage is ONE tensor of shape ``(num_layers, 2, B, H, slots, T, hd)`` (2 = keys, values) with
    ``slots = anchor_frames + window_frames + 1``: the extra slot is the working slot of the frame
    being processed, so that it can attend to all ``anchor + window`` held frames plus itself
    without any concatenation. Frame ``f`` of an episode is written to slot ``f`` while
    ``f < anchor_frames``; later frames cycle through the ``window_frames + 1`` ring slots, each
    overwriting the frame that the policy has just evicted. Attention reads a contiguous view of
    the first ``min(f + 1, slots)`` slots; slot order does not matter (no temporal position).

    The tensor is allocated on the first frame, when B and T become known, and kept for the life
    of the object: :meth:`reset` only marks it empty. A new frame size is accepted only on the
    first frame after :meth:`reset` (it reallocates); mid-episode it is an error. Counters are
    python ints, so :meth:`attend` never synchronises with the device.
    """

    def __init__(self, num_layers: int, num_heads: int, head_dim: int, anchor_frames: int = 8,
                 window_frames: int = 48, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        """Create an empty cache; storage is allocated on the first frame.

        Args:
            num_layers: Global layers cached (the aggregator's computed layers, e.g. 23 when
                JanusVLN's output layer 22 is the last one needed).
            num_heads: Attention heads H.
            head_dim: Head dimension hd.
            anchor_frames: First frames of an episode that are never evicted.
            window_frames: Most recent frames kept.
            device: Storage device (default: the device of the first keys).
            dtype: Storage dtype (default: the dtype of the first keys).
        """
        _check_policy(anchor_frames, window_frames)
        for name, value in (('num_layers', num_layers), ('num_heads', num_heads),
                            ('head_dim', head_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name}: expected an integer >= 1, got {value!r}')
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.anchor_frames = anchor_frames
        self.window_frames = window_frames
        self.device = torch.device(device) if device is not None else None
        self.dtype = dtype
        self.storage: torch.Tensor | None = None
        self._slot_index: torch.Tensor | None = None  # (1,) long, on the storage device
        self._seen = 0  # frames committed since reset()
        self._attended: list[bool] = [False] * num_layers

    @property
    def slots(self) -> int:
        """Frame slots in the storage (capacity + the working slot)."""
        return self.anchor_frames + self.window_frames + 1

    @property
    def capacity(self) -> int:
        """Most frames held between two frames."""
        return self.anchor_frames + self.window_frames

    @property
    def is_empty(self) -> bool:
        """Whether no frame is held."""
        return self._seen == 0

    @property
    def nbytes(self) -> int:
        """Bytes of the storage tensor (0 before the first frame)."""
        if self.storage is None:
            return 0
        return self.storage.numel() * self.storage.element_size()

    def __len__(self) -> int:
        """Frames held."""
        return min(self._seen, self.capacity)

    def _slot(self, frame: int) -> int:
        a = self.anchor_frames
        return frame if frame < a else a + (frame - a) % (self.window_frames + 1)

    def _ensure_storage(self, k: torch.Tensor) -> None:
        batch, heads, tokens, head_dim = k.shape
        if heads != self.num_heads or head_dim != self.head_dim:
            raise SpatialMemoryError(
                f'cache built for {self.num_heads} heads of {self.head_dim}, got keys '
                f'{tuple(k.shape)}')
        shape = (self.num_layers, 2, batch, heads, self.slots, tokens, head_dim)
        if self.storage is not None and tuple(self.storage.shape) == shape:
            return
        if self.storage is not None and self._seen > 0:
            raise SpatialMemoryError(
                f'frame of {tokens} tokens (batch {batch}) in an episode of '
                f'{self.storage.shape[5]} tokens (batch {self.storage.shape[2]}); '
                'call reset() before changing the frame size')
        device = self.device if self.device is not None else k.device
        dtype = self.dtype if self.dtype is not None else k.dtype
        self.storage = None  # free the old allocation first
        self.storage = torch.empty(shape, device=device, dtype=dtype)
        self._slot_index = torch.zeros(1, dtype=torch.long, device=device)
        logger.debug('spatial ring buffer allocated: shape %s, %.1f MiB', shape,
                     self.nbytes / 2**20)

    def attend(self, layer_idx: int, q: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor) -> torch.Tensor:
        """Write the current frame into its slot and attend over the valid slots.

        Args:
            layer_idx: Global block index, ``0 <= layer_idx < num_layers``.
            q: (B, H, T, hd) queries after q-norm and RoPE.
            k: (B, H, T, hd) keys after k-norm and RoPE.
            v: (B, H, T, hd) values.

        Returns:
            (B, H, T, hd) attention output, in the dtype of ``q``.
        """
        _check_qkv(q, k, v)
        if not 0 <= layer_idx < self.num_layers:
            raise SpatialMemoryError(
                f'layer {layer_idx} outside the {self.num_layers} cached layers')
        if self._attended[layer_idx]:
            raise SpatialMemoryError(f'layer {layer_idx} attended twice in one frame')
        if layer_idx == 0:
            self._ensure_storage(k)
        elif self.storage is None or tuple(self.storage.shape[2:]) != (
                k.shape[0], k.shape[1], self.slots, k.shape[2], k.shape[3]):
            raise SpatialMemoryError(
                f'keys {tuple(k.shape)} do not match the storage; layer 0 must come first')
        self._attended[layer_idx] = True
        store = self.storage[layer_idx]
        valid = min(self._seen + 1, self.slots)
        if valid == self.slots:
            # Full window: the write slot comes from a device tensor, so that the same kernels
            # serve every later frame (a CUDA graph captured once replays them).
            if layer_idx == 0 and not _capturing(k):
                self.set_next_slot()
            index = self._slot_index
            assert index is not None
            store[0].index_copy_(2, index, k.unsqueeze(2).to(store.dtype))
            store[1].index_copy_(2, index, v.unsqueeze(2).to(store.dtype))
        else:
            slot = self._slot(self._seen)
            store[0, :, :, slot].copy_(k)
            store[1, :, :, slot].copy_(v)
        keys = store[0, :, :, :valid].flatten(2, 3)  # a view: (B, H, valid * T, hd)
        values = store[1, :, :, :valid].flatten(2, 3)
        out = F.scaled_dot_product_attention(q.to(store.dtype), keys, values)
        return out.to(q.dtype)

    @property
    def frames_seen(self) -> int:
        """Frames committed since :meth:`reset` (not capped by the capacity)."""
        return self._seen

    @property
    def full_window(self) -> bool:
        """Whether the next frame attends over every slot (the steady, fixed-shape state)."""
        return self._seen >= self.capacity

    def set_next_slot(self) -> None:
        """Write the next frame's slot into the device-side slot index (full window only)."""
        if self._slot_index is None:
            raise SpatialMemoryError('no storage yet')
        self._slot_index.fill_(self._slot(self._seen))

    def count_replayed_frame(self) -> None:
        """Count a full-window frame whose attend calls ran inside a replayed CUDA graph."""
        if not self.full_window:
            raise SpatialMemoryError('graph replays are valid only with a full window')
        self._attended = [False] * self.num_layers
        self._seen += 1

    def abort_frame(self, seen: int) -> None:
        """Forget a partly processed frame: restore the frame count to ``seen``."""
        self._attended = [False] * self.num_layers
        self._seen = seen

    def commit(self) -> None:
        """Count the current frame as held; the next frame overwrites the oldest window slot."""
        if not all(self._attended):
            missing = [i for i, done in enumerate(self._attended) if not done]
            raise SpatialMemoryError(f'commit before attending layers {missing}')
        self._attended = [False] * self.num_layers
        self._seen += 1

    def reset(self) -> None:
        """Mark the storage empty (kept allocated); the next frame is an episode's first."""
        self._seen = 0
        self._attended = [False] * self.num_layers
