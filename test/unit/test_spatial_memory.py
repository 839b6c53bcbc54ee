"""Spatial memory: ring buffer == concat/evict oracle == masked causal pass, fixed storage."""

import pytest
from test_vggt import _tiny  # the sensitive tiny aggregator of the VGGT tests
import torch
from torch.nn import functional as F

from janusvln_ros.model.spatial_memory import (
    ConcatEvictCache, RingBufferCache, SpatialCache, SpatialMemoryError)

TOL = 1e-5


def _policy_mask(frames: int, anchor: int, window: int) -> torch.Tensor:
    """[f, g]: frame f sees g when g == f, or g < f and g is an anchor or among the last window."""
    f = torch.arange(frames)[:, None]
    g = torch.arange(frames)[None, :]
    return (g == f) | ((g < f) & ((g < anchor) | (g >= f - window)))


def test_protocol_and_capacity():
    ring = RingBufferCache(2, 4, 16, anchor_frames=8, window_frames=48)
    concat = ConcatEvictCache()
    for cache in (ring, concat):
        assert isinstance(cache, SpatialCache)
        assert cache.capacity == 56
        assert cache.is_empty and len(cache) == 0 and cache.nbytes == 0
    assert ring.slots == 57
    with pytest.raises(ValueError):
        RingBufferCache(2, 4, 16, window_frames=0)
    with pytest.raises(ValueError):
        ConcatEvictCache(anchor_frames=-1)


def test_ring_attention_matches_explicit_frame_set():
    """Model-free: every step attends exactly the policy's frames + itself (many wraps)."""
    torch.manual_seed(0)
    anchor, window, layers, heads, tokens, hd = 3, 4, 2, 2, 5, 8
    ring = RingBufferCache(layers, heads, hd, anchor_frames=anchor, window_frames=window)
    keys, values = [], []  # per frame: per layer (k, v)
    ptr = None
    for frame in range(25):
        held = [g for g in range(frame) if g < anchor or g >= frame - window]
        assert len(ring) == len(held)
        keys.append([torch.randn(1, heads, tokens, hd) for _ in range(layers)])
        values.append([torch.randn(1, heads, tokens, hd) for _ in range(layers)])
        for layer in range(layers):
            q = torch.randn(1, heads, tokens, hd)
            out = ring.attend(layer, q, keys[frame][layer], values[frame][layer])
            k_ref = torch.cat([keys[g][layer] for g in held + [frame]], dim=2)
            v_ref = torch.cat([values[g][layer] for g in held + [frame]], dim=2)
            torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k_ref, v_ref))
        ring.commit()
        if ptr is None:
            ptr, nbytes = ring.storage.data_ptr(), ring.nbytes
        assert ring.storage.data_ptr() == ptr and ring.nbytes == nbytes
    assert nbytes == layers * 2 * heads * (anchor + window + 1) * tokens * hd * 4


@pytest.mark.parametrize('height,width', [(112, 112), (112, 140)])
def test_ring_equals_concat_across_eviction(height, width):
    model = _tiny()
    cfg = model.cfg
    anchor, window, frames = 2, 3, 12
    torch.manual_seed(1)
    images = torch.rand(1, frames, 3, height, width)
    ring = RingBufferCache(cfg.depth, cfg.num_heads, cfg.head_dim, anchor_frames=anchor,
                           window_frames=window)
    concat = ConcatEvictCache(anchor_frames=anchor, window_frames=window)
    no_evict = ConcatEvictCache(anchor_frames=frames, window_frames=frames)
    ptr = nbytes = None
    max_diff_no_evict = 0.0
    with torch.no_grad():
        for f in range(frames):
            a = model.forward_frame(images[:, f], ring)
            b = model.forward_frame(images[:, f], concat)
            c = model.forward_frame(images[:, f], no_evict)
            for x, y in zip(a, b):
                torch.testing.assert_close(x, y, atol=TOL, rtol=0)
            max_diff_no_evict = max(max_diff_no_evict, (a[-1] - c[-1]).abs().max().item())
            assert len(ring) == len(concat) == min(f + 1, anchor + window)
            if ptr is None:
                ptr, nbytes = ring.storage.data_ptr(), ring.nbytes
            assert ring.storage.data_ptr() == ptr and ring.nbytes == nbytes
    # Eviction really happened and mattered (so the equality above is not vacuous).
    assert max_diff_no_evict > 1e-4


def test_concat_evict_equals_masked_oracle():
    model = _tiny()
    anchor, window, frames = 2, 3, 9
    torch.manual_seed(2)
    images = torch.rand(1, frames, 3, 112, 140)
    cache = ConcatEvictCache(anchor_frames=anchor, window_frames=window)
    with torch.no_grad():
        streamed = [model.forward_frame(images[:, f], cache) for f in range(frames)]
        oracle = model(images, frame_mask=_policy_mask(frames, anchor, window))
    for f in range(frames):
        for layer, out in enumerate(streamed[f]):
            torch.testing.assert_close(out, oracle[layer][:, f], atol=TOL, rtol=0)


def test_reset_keeps_allocation_and_size_change_rules():
    model = _tiny()
    cfg = model.cfg
    ring = RingBufferCache(cfg.depth, cfg.num_heads, cfg.head_dim, anchor_frames=1,
                           window_frames=2)
    with torch.no_grad():
        for _ in range(4):
            model.forward_frame(torch.rand(1, 3, 112, 112), ring)
        ptr, nbytes = ring.storage.data_ptr(), ring.nbytes
        with pytest.raises(SpatialMemoryError):
            model.forward_frame(torch.rand(1, 3, 112, 140), ring)  # mid-episode size change
        ring.reset()
        assert ring.is_empty and len(ring) == 0
        assert ring.storage.data_ptr() == ptr and ring.nbytes == nbytes
        model.forward_frame(torch.rand(1, 3, 112, 112), ring)
        assert ring.storage.data_ptr() == ptr and len(ring) == 1
        ring.reset()
        model.forward_frame(torch.rand(1, 3, 112, 140), ring)  # new episode, new size
        assert ring.nbytes == nbytes // 69 * 85 and len(ring) == 1


def test_protocol_misuse_is_an_error():
    ring = RingBufferCache(2, 2, 8)
    concat = ConcatEvictCache()
    qkv = [torch.randn(1, 2, 3, 8) for _ in range(3)]
    for cache in (ring, concat):
        cache.attend(0, *qkv)
        with pytest.raises(SpatialMemoryError):
            cache.attend(0, *qkv)
    with pytest.raises(SpatialMemoryError):
        ring.commit()  # layer 1 not attended
    with pytest.raises(SpatialMemoryError):
        ring.attend(2, *qkv)  # only 2 layers cached
    concat.attend(1, *qkv)
    concat.commit()
    concat.attend(0, *qkv)
    with pytest.raises(SpatialMemoryError):
        concat.commit()  # layer 1 missing this frame
    with pytest.raises(SpatialMemoryError):
        RingBufferCache(2, 4, 8).attend(0, *qkv)  # wrong head count


def test_storage_dtype_is_respected():
    ring = RingBufferCache(1, 2, 8, dtype=torch.bfloat16)
    q, k, v = (torch.randn(1, 2, 3, 8) for _ in range(3))
    out = ring.attend(0, q, k, v)
    ring.commit()
    assert ring.storage.dtype == torch.bfloat16 and out.dtype == torch.float32
    assert ring.nbytes == 1 * 2 * 1 * 2 * 57 * 3 * 8 * 2
