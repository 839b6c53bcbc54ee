"""DINOv2 ViT-L/14 with registers: the patch embedding of the VGGT aggregator.

Conv patch projection, ``cls_token`` + ``pos_embed`` (bicubic, antialiased interpolation of the
trained square grid to the input's patch grid), ``register_tokens`` inserted after the cls token
without position, pre-norm blocks (LayerNorm eps 1e-6, LayerScale), a final ``norm``. Its output
is the normed patch tokens only. Parameter names equal the released checkpoint's
``vggt.aggregator.patch_embed.*``. :class:`Mlp` and :class:`LayerScale` are shared with the
aggregator's own blocks (:mod:`janusvln_ros.model.vggt`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from janusvln_ros.model.vggt import VGGTConfig

logger = logging.getLogger(__name__)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (..., dim) -> (..., dim)."""
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel scale ``gamma``."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.init = init
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale (..., dim) by gamma."""
        return x * self.gamma


class DinoAttention(nn.Module):
    """Plain multi-head self-attention of DINOv2 (no qk-norm, no RoPE)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend (N, T, C) -> (N, T, C)."""
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.num_heads, c // self.num_heads).permute(
            2, 0, 3, 1, 4).unbind(0)
        return self.proj(_sdpa(q, k, v).transpose(1, 2).reshape(n, t, c))


class DinoBlock(nn.Module):
    """DINOv2 pre-norm block (LayerNorm eps 1e-6, LayerScale init 1.0)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DinoAttention(dim, num_heads)
        self.ls1 = LayerScale(dim, 1.0)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Transform (N, T, C) -> (N, T, C)."""
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchProjection(nn.Module):
    """Non-overlapping conv patchify: (N, 3, H, W) -> (N, H/p * W/p, C), row-major patches."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patchify and project."""
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoV2(nn.Module):
    """DINOv2 ViT with registers, returning the normed patch tokens ("x_norm_patchtokens")."""

    def __init__(self, cfg: VGGTConfig) -> None:
        super().__init__()
        c = cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.grid = cfg.pos_embed_grid
        self.num_register_tokens = cfg.num_register_tokens
        self.patch_embed = PatchProjection(cfg.patch_size, c)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, c))
        self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, c))
        self.mask_token = nn.Parameter(torch.zeros(1, c))  # unused; kept for checkpoint names
        self.blocks = nn.ModuleList(
            DinoBlock(c, cfg.dino_num_heads, cfg.mlp_ratio) for _ in range(cfg.dino_depth))
        self.norm = nn.LayerNorm(c, eps=1e-6)

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Position embedding of [cls, patches] for a (grid_h, grid_w) patch grid.

        The patch part is interpolated bicubically with antialias to an explicit size, in float32;
        the trained grid (square) is returned unchanged.

        Returns:
            (1, 1 + grid_h * grid_w, C) in the parameter's dtype.
        """
        if grid_h == self.grid and grid_w == self.grid:
            return self.pos_embed
        pos = self.pos_embed.float()
        dim = pos.shape[-1]
        patch = pos[:, 1:].reshape(1, self.grid, self.grid, dim).permute(0, 3, 1, 2)
        patch = F.interpolate(patch, size=(grid_h, grid_w), mode='bicubic', antialias=True)
        patch = patch.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
        return torch.cat((pos[:, :1], patch), dim=1).to(self.pos_embed.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode normalised images.

        Args:
            x: (N, 3, H, W) ImageNet-normalised images, H and W multiples of the patch size.

        Returns:
            (N, (H/p) * (W/p), C) normed patch tokens (cls and registers dropped).
        """
        n, _, h, w = x.shape
        grid_h, grid_w = h // self.patch_size, w // self.patch_size
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(n, -1, -1), tokens), dim=1)
        tokens = tokens + self.position_embedding(grid_h, grid_w)
        tokens = torch.cat(
            (tokens[:, :1], self.register_tokens.expand(n, -1, -1), tokens[:, 1:]), dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 1 + self.num_register_tokens:]
