"""The parity ViT store: exactly the frames a later step can sample, and its bytes at real size."""

import torch

from janusvln_ros.core.history import held_frames, sample_history
from janusvln_ros.core.semantic_memory import FrameFeatureStore

# Merged Qwen tokens of a 640x480 frame at width 644 (17 x 23) and Qwen2.5-VL-7B's hidden size.
REAL_TOKENS, REAL_HIDDEN = 391, 3584
BF16_BYTES = 2
DEFAULT_MAX_STEPS = 400  # NodeConfig.max_steps: the worker ends the episode at this step


def test_store_holds_exactly_the_frames_a_later_step_samples():
    num_history, horizon, checked = 8, 1200, 140
    needed: list[set[int]] = [set() for _ in range(horizon + 2)]
    for n in range(horizon, 0, -1):  # frames sampled by step n or any later one (to the horizon)
        needed[n] = needed[n + 1] | set(sample_history(n, num_history))
    store = FrameFeatureStore(num_history)
    for n in range(1, checked + 1):
        store.add(torch.zeros(1, 2))
        assert store.indices() == sorted(i for i in needed[n] if i < n), n
        assert len(store) == held_frames(n, num_history)


def test_parity_store_bytes_at_real_size_follow_the_exact_count():
    store = FrameFeatureStore(num_history=8, offload=False)
    frame = torch.empty(REAL_TOKENS, REAL_HIDDEN, dtype=torch.bfloat16, device='meta')
    per_frame = REAL_TOKENS * REAL_HIDDEN * BF16_BYTES
    counts = []
    for n in range(1, DEFAULT_MAX_STEPS + 1):
        store.add(frame)
        assert len(store) == held_frames(n)
        assert store.nbytes == held_frames(n) * per_frame
        counts.append(len(store))
    assert counts == sorted(counts)  # never shrinks: the last count is the episode's maximum
    # The README's figure: at the default step cap, 352 frames, 986,546,176 B (0.92 GiB).
    assert counts[-1] == 352
    assert store.nbytes == 986_546_176
    assert store.capacity == 0  # not bounded by the store itself
