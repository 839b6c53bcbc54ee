"""3-D -> 2-D fusion: VGGT patch features grouped like Qwen2.5-VL's merged tokens, then an MLP.

JanusVLN adds ``lam * VGGTMerger(spatial_tokens(aggregator_outputs[-2]))`` to the Qwen2.5-VL
image embeddings. Both encoders patchify the same [0, 1] tensor with patch 14, so after cropping
the VGGT patch grid to even sides (top-left part, as the Qwen path crops the image) its 2x2 blocks
line up one-to-one with Qwen's merged vision tokens: 644x490 -> 35x46 VGGT patches -> 34x46 ->
17x23 = 391 tokens.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

MERGE_SIZE = 2  # Qwen2.5-VL spatial merge (2x2 patches per LLM token)


class RMSNorm(nn.Module):
    """RMSNorm computed in float32 and cast back (as Qwen2's), with a learned ``weight``."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise (..., dim) over the last dim."""
        dtype = x.dtype
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(dtype)


class VGGTMerger(nn.Module):
    """JanusVLN's fusion MLP: per-patch RMSNorm, then Linear(4*ctx, hidden) -> GELU -> Linear.

    Parameter names: ``ln_q.weight``, ``mlp.0.{weight,bias}``, ``mlp.2.{weight,bias}``.
    With context 2048, hidden 4096 and out 3584 (Qwen2.5-VL-7B) it has 48.2 M parameters.
    """

    def __init__(self, context_dim: int, hidden_dim: int, out_dim: int,
                 merge_size: int = MERGE_SIZE) -> None:
        """Build the merger.

        Args:
            context_dim: Channels per VGGT patch (2C = 2048 for VGGT-1B).
            hidden_dim: MLP hidden width (``vggt_merger_hidden_dim``, 4096).
            out_dim: LLM hidden size (3584 for the 7B).
            merge_size: Side of the merged patch block.
        """
        super().__init__()
        for name, value in (('context_dim', context_dim), ('hidden_dim', hidden_dim),
                            ('out_dim', out_dim), ('merge_size', merge_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name}: expected a positive integer, got {value!r}')
        self.context_dim = context_dim
        self.group = merge_size * merge_size
        self.ln_q = RMSNorm(context_dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(context_dim * self.group, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project grouped patch features.

        Args:
            x: (..., group * context_dim) from :func:`spatial_tokens`.

        Returns:
            (..., out_dim).
        """
        if x.shape[-1] != self.group * self.context_dim:
            raise ValueError(f'expected last dim {self.group * self.context_dim}, '
                             f'got {tuple(x.shape)}')
        x = self.ln_q(x.unflatten(-1, (self.group, self.context_dim))).flatten(-2)
        return self.mlp(x)


def spatial_tokens(layer_feats: torch.Tensor, grid_hw: tuple[int, int], patch_start_idx: int,
                   merge_size: int = MERGE_SIZE) -> torch.Tensor:
    """Group VGGT patch features into Qwen2.5-VL's merged-token order.

    Drops the special tokens, crops the patch grid to multiples of ``merge_size`` keeping the
    top-left patches, and concatenates each 2x2 block in the order (r, c), (r, c+1), (r+1, c),
    (r+1, c+1); blocks are row-major. This equals Qwen's ``pixel_values`` row order
    (gh/2, gw/2, 2, 2) whose 4 consecutive rows the vision merger concatenates.

    Args:
        layer_feats: (B, P, D) one aggregator output, P = patch_start_idx + gh * gw.
        grid_hw: (gh, gw) VGGT patch grid of the frame.
        patch_start_idx: Special tokens before the patches (5 for VGGT).
        merge_size: Merge block side (2).

    Returns:
        (B, (gh // 2) * (gw // 2), 4 * D).
    """
    gh, gw = grid_hw
    b, p, d = layer_feats.shape
    if p != patch_start_idx + gh * gw:
        raise ValueError(f'{p} tokens do not match {patch_start_idx} + {gh}x{gw} patches')
    mh, mw = gh // merge_size, gw // merge_size
    if mh == 0 or mw == 0:
        raise ValueError(f'patch grid {gh}x{gw} smaller than the {merge_size}x{merge_size} merge')
    grid = layer_feats[:, patch_start_idx:].reshape(b, gh, gw, d)
    grid = grid[:, :mh * merge_size, :mw * merge_size]
    grid = grid.reshape(b, mh, merge_size, mw, merge_size, d).permute(0, 1, 3, 2, 4, 5)
    return grid.reshape(b, mh * mw, merge_size * merge_size * d)
