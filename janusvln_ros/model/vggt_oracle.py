"""The test oracle of the streaming VGGT aggregator: one non-cached pass over a frame sequence.

:func:`full_sequence_forward` runs S frames through the aggregator at once with a (frame x frame)
attention mask in the global blocks: causal by default, bidirectional like the original VGGT, or
any mask that expresses an eviction policy. The streaming path
(:meth:`~janusvln_ros.model.vggt.VGGTAggregator.forward_frame` with a spatial cache) must equal it
frame by frame; the tests compare the two. It is slow (the whole sequence's global attention at
once) and is not used at inference.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from janusvln_ros.model.vggt import VGGTAggregator

logger = logging.getLogger(__name__)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)


def full_sequence_forward(agg: VGGTAggregator, images: torch.Tensor, causal: bool = True,
                          frame_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Non-cached pass of ``agg`` over S frames (the oracle of ``agg.forward_frame``).

    Args:
        agg: The aggregator.
        images: (B, S, 3, H, W) in [0, 1]; frame 0 uses the first-frame tokens.
        causal: Each frame's global attention sees frames <= itself (else all frames, as in
            the original bidirectional VGGT). Ignored when ``frame_mask`` is given.
        frame_mask: Optional (S, S) bool, ``[f, g]`` True when frame f may attend frame g
            (e.g. to express an eviction policy).

    Returns:
        ``depth`` tensors (B, S, P, 2C).
    """
    b, s, _, h, w = images.shape
    grid_h, grid_w = agg._grid(h, w)
    cos, sin = agg.rope_tables(grid_h, grid_w, images.device)
    index = torch.ones(s, dtype=torch.long, device=images.device)
    index[0] = 0
    x = agg._embed(images.flatten(0, 1), index.repeat(b))
    p, c = x.shape[1], x.shape[2]
    if frame_mask is None:
        frame_mask = torch.ones(s, s, dtype=torch.bool, device=images.device)
        if causal:
            frame_mask = frame_mask.tril()
    if frame_mask.shape != (s, s) or frame_mask.dtype != torch.bool:
        raise ValueError(f'frame_mask: expected bool ({s}, {s}), got {frame_mask.dtype} '
                         f'{tuple(frame_mask.shape)}')
    token_mask = frame_mask.repeat_interleave(p, 0).repeat_interleave(p, 1)
    cos_all, sin_all = cos.repeat(s, 1), sin.repeat(s, 1)

    def masked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=token_mask)

    outputs = []
    for i in range(agg.cfg.depth):
        x = agg.frame_blocks[i](x, cos, sin, _sdpa)
        frame_out = x.reshape(b, s, p, c)
        x = agg.global_blocks[i](x.reshape(b, s * p, c), cos_all, sin_all, masked)
        outputs.append(torch.cat((frame_out, x.reshape(b, s, p, c)), dim=-1))
        x = x.reshape(b * s, p, c)
    return outputs
