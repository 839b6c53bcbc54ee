"""Trainable attention for the Qwen ViT on many equal-size frames (GPU training).

transformers' vision attention, on its plain SDPA path, runs one SDPA call per window segment
(thousands per block for a training batch). This attention function, registered under a name
that selects transformers' packed ``cu_seqlens`` call path, groups the segments by length and
runs one batched SDPA per distinct length (two or three per block for equal-size frames), with
autograd. Same function as per-segment SDPA; only the batching differs.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.nn import functional as F

logger = logging.getLogger(__name__)

GROUPED_VISION_ATTENTION = 'flash_grouped_sdpa'


def grouped_segment_attention(module: Any, query: torch.Tensor, key: torch.Tensor,
                              value: torch.Tensor, attention_mask: torch.Tensor | None = None,
                              scaling: float | None = None, dropout: float = 0.0,
                              cu_seq_lens_q: torch.Tensor | None = None,
                              **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Block-diagonal attention over packed segments, batched by segment length.

    Args:
        module: The calling attention module (unused).
        query: ``(1, H, S, D)`` packed queries.
        key: ``(1, H, S, D)``.
        value: ``(1, H, S, D)``.
        attention_mask: Must be ``None``.
        scaling: Softmax scale.
        dropout: Must be 0.
        cu_seq_lens_q: ``(n + 1,)`` cumulative segment lengths (``None``: one segment).
        **kwargs: Ignored (``cu_seq_lens_k``, ``max_length_*``, ``is_causal``).

    Returns:
        ``((1, S, H, D), None)``.
    """
    if attention_mask is not None or dropout:
        raise ValueError('grouped vision attention supports no mask and no dropout')
    if cu_seq_lens_q is None:
        out = F.scaled_dot_product_attention(query, key, value, scale=scaling)
        return out.transpose(1, 2), None
    bounds = cu_seq_lens_q.tolist()
    starts = torch.tensor(bounds[:-1], dtype=torch.long)
    lengths = torch.tensor(bounds[1:], dtype=torch.long) - starts
    q, k, v = query[0], key[0], value[0]  # (H, S, D)
    out = torch.empty_like(q)
    for length in torch.unique(lengths).tolist():
        first = starts[lengths == length]
        index = (first.unsqueeze(1) + torch.arange(length)).reshape(-1).to(q.device)
        n = first.numel()

        def gather(t: torch.Tensor, index: torch.Tensor = index, n: int = n,
                   length: int = length) -> torch.Tensor:
            return t.index_select(1, index).reshape(t.shape[0], n, length, -1).transpose(0, 1)

        o = F.scaled_dot_product_attention(gather(q), gather(k), gather(v), scale=scaling)
        out = out.index_copy(1, index, o.transpose(0, 1).reshape(q.shape[0], n * length, -1))
    return out.transpose(0, 1).unsqueeze(0), None


def enable_training_vision_attention(qwen: Any) -> None:
    """Switch a Qwen2.5-VL vision tower to :func:`grouped_segment_attention`."""
    from transformers import AttentionInterface
    AttentionInterface.register(GROUPED_VISION_ATTENTION, grouped_segment_attention)
    inner = getattr(qwen, 'model', qwen)
    visual = inner.visual
    configs = {id(visual.config): visual.config}
    for block in visual.blocks:
        configs[id(block.attn.config)] = block.attn.config
    for config in configs.values():
        config._attn_implementation = GROUPED_VISION_ATTENTION
    logger.info('Qwen vision attention for training: %s', GROUPED_VISION_ATTENTION)
