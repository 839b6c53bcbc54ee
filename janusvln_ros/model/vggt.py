"""The VGGT aggregator (geometry transformer of VGGT-1B), written natively in torch.

Architecture (parameter names equal the released checkpoint's ``vggt.aggregator.*`` minus that
prefix):

* ``patch_embed``: a DINOv2 ViT-L/14 with 4 registers (:class:`~janusvln_ros.model.dinov2.DinoV2`);
  its output is the normed patch tokens only.
* Per frame the aggregator prepends ``camera_token`` (1) and ``register_token`` (4) to the patch
  tokens, so ``patch_start_idx == 5``. Index 0 of those learned tokens marks the first frame of an
  episode (empty spatial cache), index 1 every later frame.
* ``depth`` pairs of (``frame_blocks[i]``, ``global_blocks[i]``): pre-norm blocks (LayerNorm eps
  1e-5) with qk-norm (LayerNorm over the head dimension), 2-D RoPE and LayerScale. Frame blocks
  attend within the frame; global blocks attend the frame's tokens to the cached frames + itself.
  Layer ``i`` outputs ``cat(frame_out_i, global_out_i)``, i.e. 2*C channels.
* 2-D RoPE (frequency 100): positions are (y, x) patch coordinates + 1, special tokens at (0, 0);
  the first half of the head dimension is rotated by y, the second by x, each with the
  rotate-half convention. There is no temporal position anywhere, so cached frames never need
  re-rotation.

JanusVLN reads only layer ``depth - 2`` (``outputs[-2]``, layer 22 of 24). Computing layer 23 is
pure waste for it: pass ``num_layers = cfg.layers_needed()`` (23) to :meth:`forward_frame` and size
the spatial cache with the same number of layers. That skips 1/24 of the aggregator's block time
and of the spatial-memory bytes, and changes nothing in layers 0..22 (each layer depends only on
earlier ones).

The non-cached pass over a whole frame sequence that the streaming path is tested against lives
in :mod:`janusvln_ros.model.vggt_oracle` (:meth:`VGGTAggregator.forward` calls it).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from janusvln_ros.model.dinov2 import DinoV2, LayerScale, Mlp
from janusvln_ros.model.fast_attention import backend_order, sdpa_preference
from janusvln_ros.model.spatial_memory import SpatialCache
from janusvln_ros.model.vggt_oracle import full_sequence_forward

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
JANUS_OUTPUT_LAYER = -2  # JanusVLN fuses aggregator output [-2] (layer 22 of 24)

AttentionCore = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class VGGTConfig:
    """Hyper-parameters of the VGGT aggregator.

    Attributes:
        img_size: Image side the DINOv2 position embedding was trained for; its grid is
            ``img_size // patch_size`` (37 for VGGT-1B).
        patch_size: Patch side in pixels.
        embed_dim: Token width C.
        depth: Frame/global block pairs (and outputs).
        num_heads: Heads of the aggregator blocks.
        mlp_ratio: MLP hidden width / C (both DINOv2 and aggregator blocks).
        num_register_tokens: Register tokens of DINOv2 and of the aggregator.
        dino_depth: DINOv2 blocks.
        dino_num_heads: DINOv2 heads.
        rope_freq: Base frequency of the 2-D RoPE.
        layerscale_init: Initial LayerScale of the aggregator blocks (DINOv2 uses 1.0).
    """

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    dino_depth: int = 24
    dino_num_heads: int = 16
    rope_freq: float = 100.0
    layerscale_init: float = 0.01

    def __post_init__(self) -> None:
        """Validate the fields; raise ValueError naming the bad one."""
        for name in ('img_size', 'patch_size', 'embed_dim', 'depth', 'num_heads', 'dino_depth',
                     'dino_num_heads'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name}: expected an integer >= 1, got {value!r}')
        if not isinstance(self.num_register_tokens, int) or self.num_register_tokens < 0:
            raise ValueError(f'num_register_tokens: expected an integer >= 0, '
                             f'got {self.num_register_tokens!r}')
        if self.img_size % self.patch_size:
            raise ValueError(f'img_size {self.img_size} is not a multiple of patch_size '
                             f'{self.patch_size}')
        if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 4:
            raise ValueError(f'embed_dim {self.embed_dim} / num_heads {self.num_heads} must be '
                             'a multiple of 4 (2-D RoPE rotates two halves pairwise)')
        if self.embed_dim % self.dino_num_heads:
            raise ValueError(f'embed_dim {self.embed_dim} is not divisible by dino_num_heads '
                             f'{self.dino_num_heads}')
        if self.mlp_ratio <= 0 or self.rope_freq <= 0:
            raise ValueError('mlp_ratio and rope_freq must be positive')

    @property
    def head_dim(self) -> int:
        """Head dimension of the aggregator blocks."""
        return self.embed_dim // self.num_heads

    @property
    def pos_embed_grid(self) -> int:
        """Side of DINOv2's trained position-embedding grid (37 for VGGT-1B)."""
        return self.img_size // self.patch_size

    @property
    def patch_start_idx(self) -> int:
        """Index of the first patch token per frame (camera + registers before it)."""
        return 1 + self.num_register_tokens

    def layers_needed(self, output_layer: int = JANUS_OUTPUT_LAYER) -> int:
        """Layers to compute when only ``outputs[output_layer]`` is used.

        Args:
            output_layer: Output index, negative from the end (JanusVLN: -2).

        Returns:
            ``output_layer + 1`` in non-negative form (23 for VGGT-1B and -2).
        """
        index = output_layer % self.depth if output_layer < 0 else output_layer
        if not 0 <= index < self.depth or output_layer < -self.depth:
            raise ValueError(f'output_layer {output_layer} out of range for depth {self.depth}')
        return index + 1

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VGGTConfig:
        """Build from a dict; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f'unknown VGGTConfig keys: {sorted(unknown)}')
        return cls(**dict(data))

    @classmethod
    def real(cls) -> VGGTConfig:
        """VGGT-1B's aggregator (909.1 M parameters)."""
        return cls()

    @classmethod
    def tiny(cls) -> VGGTConfig:
        """A tiny random-weight config for CPU tests (2 block pairs, 112 px position grid)."""
        return cls(img_size=112, embed_dim=64, depth=2, num_heads=4, dino_depth=2,
                   dino_num_heads=4)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)


def _rotate_halves(x: torch.Tensor) -> torch.Tensor:
    """Rotate-half within each half of the last dim: [a1 a2 | b1 b2] -> [-a2 a1 | -b2 b1]."""
    x = x.unflatten(-1, (2, 2, x.shape[-1] // 4))
    return torch.stack((-x[..., 1, :], x[..., 0, :]), dim=-2).flatten(-3)


def apply_rope_2d(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply the 2-D RoPE in float32 and return in the dtype of ``x``.

    Args:
        x: (B, H, T, hd) queries or keys.
        cos: (T, hd) float32 table from :func:`rope_2d_table`.
        sin: (T, hd) float32 table.

    Returns:
        (B, H, T, hd) rotated tensor.
    """
    xf = x.float()
    return (xf * cos + _rotate_halves(xf) * sin).to(x.dtype)


def rope_2d_table(grid_h: int, grid_w: int, num_special: int, head_dim: int, freq: float,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Cos/sin tables of the 2-D RoPE for one frame.

    Args:
        grid_h: Patch rows.
        grid_w: Patch columns.
        num_special: Special tokens before the patches (position (0, 0)).
        head_dim: Head dimension; the first half is rotated by y, the second by x.
        freq: RoPE base frequency.
        device: Device of the tables.

    Returns:
        (cos, sin), each (num_special + grid_h * grid_w, head_dim), float32.
    """
    ys = torch.arange(grid_h, device=device, dtype=torch.float32).repeat_interleave(grid_w) + 1
    xs = torch.arange(grid_w, device=device, dtype=torch.float32).repeat(grid_h) + 1
    zeros = torch.zeros(num_special, device=device, dtype=torch.float32)
    ys, xs = torch.cat((zeros, ys)), torch.cat((zeros, xs))
    half = head_dim // 2
    exponents = torch.arange(0, half, 2, device=device, dtype=torch.float32) / half
    inv_freq = 1.0 / (freq ** exponents)
    ang_y = ys[:, None] * inv_freq[None]
    ang_x = xs[:, None] * inv_freq[None]
    angles = torch.cat((ang_y, ang_y, ang_x, ang_x), dim=-1)
    return angles.cos(), angles.sin()


class RopeAttention(nn.Module):
    """Aggregator attention: qkv projection, qk-norm (LayerNorm over hd), 2-D RoPE."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.q_norm = nn.LayerNorm(self.head_dim)
        self.k_norm = nn.LayerNorm(self.head_dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                core: AttentionCore) -> torch.Tensor:
        """Attend (N, T, C) -> (N, T, C); ``core(q, k, v)`` does the attention itself.

        Args:
            x: (N, T, C) normed tokens.
            cos: (T, hd) RoPE table.
            sin: (T, hd) RoPE table.
            core: Maps q, k, v of shape (N, H, T, hd) (normed, rotated) to (N, H, T, hd).
        """
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.num_heads, self.head_dim).permute(
            2, 0, 3, 1, 4).unbind(0)
        q = apply_rope_2d(self.q_norm(q), cos, sin)
        k = apply_rope_2d(self.k_norm(k), cos, sin)
        return self.proj(core(q, k, v).transpose(1, 2).reshape(n, t, c))


class AABlock(nn.Module):
    """Aggregator block (frame or global): LayerNorm eps 1e-5, qk-norm, RoPE, LayerScale."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, ls_init: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = RopeAttention(dim, num_heads)
        self.ls1 = LayerScale(dim, ls_init)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, ls_init)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                core: AttentionCore) -> torch.Tensor:
        """Transform (N, T, C) -> (N, T, C); see :meth:`RopeAttention.forward`."""
        x = x + self.ls1(self.attn(self.norm1(x), cos, sin, core))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VGGTAggregator(nn.Module):
    """VGGT's aggregator with a streaming (causal, cached) global attention.

    Attributes:
        cfg: The configuration.
        patch_start_idx: Index of the first patch token in each frame's token sequence.
        attention_backend: SDPA backend preference of :meth:`forward_frame` on CUDA (one of
            :data:`~janusvln_ros.model.fast_attention.SDPA_PREFERENCES`; ``'cudnn'`` by
            default: the fastest measured for the global attention, see ``bench/results/``).
            Ignored on CPU.
    """

    attention_backend: str = 'cudnn'

    def __init__(self, cfg: VGGTConfig | None = None) -> None:
        """Build the module (works under ``torch.device('meta')``).

        Args:
            cfg: Configuration (default: VGGT-1B).
        """
        super().__init__()
        self.cfg = cfg = cfg if cfg is not None else VGGTConfig.real()
        c = cfg.embed_dim
        self.patch_start_idx = cfg.patch_start_idx
        self.patch_embed = DinoV2(cfg)
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, c))
        self.register_token = nn.Parameter(torch.zeros(1, 2, cfg.num_register_tokens, c))
        self.frame_blocks = nn.ModuleList(
            AABlock(c, cfg.num_heads, cfg.mlp_ratio, cfg.layerscale_init)
            for _ in range(cfg.depth))
        self.global_blocks = nn.ModuleList(
            AABlock(c, cfg.num_heads, cfg.mlp_ratio, cfg.layerscale_init)
            for _ in range(cfg.depth))
        self.register_buffer('_resnet_mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('_resnet_std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)
        self._rope_cache: dict[tuple[int, int, torch.device], tuple[torch.Tensor,
                                                                    torch.Tensor]] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random init in the style of the original (ViT timm init for DINOv2, tiny tokens)."""
        dino = self.patch_embed
        nn.init.trunc_normal_(dino.pos_embed, std=0.02)
        nn.init.normal_(dino.cls_token, std=1e-6)
        nn.init.normal_(dino.register_tokens, std=1e-6)
        nn.init.zeros_(dino.mask_token)
        for module in dino.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.camera_token, std=1e-6)
        nn.init.normal_(self.register_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, LayerScale):
                nn.init.constant_(module.gamma, module.init)
        # Buffers may have been moved to 'meta' or emptied by to_empty(); refill them.
        with torch.no_grad():
            self._resnet_mean.copy_(torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self._resnet_std.copy_(torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self._rope_cache.clear()

    def _apply(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> VGGTAggregator:
        self._rope_cache.clear()  # device moves invalidate the cached tables
        return super()._apply(fn, *args, **kwargs)

    def rope_tables(self, grid_h: int, grid_w: int,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached (cos, sin) float32 tables, each (P, hd), for one frame's token layout."""
        key = (grid_h, grid_w, device)
        tables = self._rope_cache.get(key)
        if tables is None:
            tables = rope_2d_table(grid_h, grid_w, self.patch_start_idx, self.cfg.head_dim,
                                   self.cfg.rope_freq, device)
            self._rope_cache[key] = tables
        return tables

    def _grid(self, height: int, width: int) -> tuple[int, int]:
        p = self.cfg.patch_size
        if height % p or width % p:
            raise ValueError(f'image size {height}x{width} is not a multiple of {p}')
        return height // p, width // p

    def _embed(self, images: torch.Tensor, token_index: torch.Tensor | int) -> torch.Tensor:
        """Frame tokens [camera, registers, patches].

        Args:
            images: (N, 3, H, W) in [0, 1].
            token_index: 0 (first frame) / 1, as an int for all N or an (N,) index tensor.

        Returns:
            (N, P, C) tokens, P = patch_start_idx + (H/p) * (W/p).
        """
        weight = self.patch_embed.patch_embed.proj.weight
        x = (images.float() - self._resnet_mean.float()) / self._resnet_std.float()
        patches = self.patch_embed(x.to(weight.dtype))
        n = patches.shape[0]
        if isinstance(token_index, int):
            cam = self.camera_token[:, token_index].expand(n, -1, -1)
            reg = self.register_token[:, token_index].expand(n, -1, -1)
        else:
            cam = self.camera_token[0, token_index]
            reg = self.register_token[0, token_index]
        return torch.cat((cam.to(patches.dtype), reg.to(patches.dtype), patches), dim=1)

    def _check_layers(self, num_layers: int | None) -> int:
        if num_layers is None:
            return self.cfg.depth
        if not isinstance(num_layers, int) or not 1 <= num_layers <= self.cfg.depth:
            raise ValueError(f'num_layers: expected 1..{self.cfg.depth}, got {num_layers!r}')
        return num_layers

    def forward_frame(self, image: torch.Tensor, cache: SpatialCache,
                      num_layers: int | None = None) -> list[torch.Tensor]:
        """Run one frame through the aggregator, attending to and extending the spatial cache.

        The first-frame camera/register tokens are used when the cache is empty. After the last
        computed layer the cache is committed (the frame becomes held; eviction happens). If this
        call raises mid-way, ``cache.reset()`` before reusing the cache.

        Args:
            image: (B, 3, H, W) frames in [0, 1], H and W multiples of the patch size.
            cache: Spatial cache (:class:`~janusvln_ros.model.spatial_memory.RingBufferCache`
                or :class:`~janusvln_ros.model.spatial_memory.ConcatEvictCache`) with room for
                ``num_layers`` layers.
            num_layers: Layers to compute (default all); stop early when only earlier outputs
                are used (JanusVLN: ``cfg.layers_needed()`` = 23 of 24).

        Returns:
            ``num_layers`` tensors (B, P, 2C), each ``cat(frame_out_i, global_out_i)``, with
            P = patch_start_idx + (H/p) * (W/p).
        """
        n_layers = self._check_layers(num_layers)
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f'image: expected (B, 3, H, W), got {tuple(image.shape)}')
        grid_h, grid_w = self._grid(image.shape[2], image.shape[3])
        backend_order(self.attention_backend)  # validates the preference name
        with sdpa_preference(self.attention_backend, image.device):
            cos, sin = self.rope_tables(grid_h, grid_w, image.device)
            x = self._embed(image, 0 if cache.is_empty else 1)
            outputs = []
            for i in range(n_layers):
                x = self.frame_blocks[i](x, cos, sin, _sdpa)
                frame_out = x
                x = self.global_blocks[i](x, cos, sin,
                                          lambda q, k, v, i=i: cache.attend(i, q, k, v))
                outputs.append(torch.cat((frame_out, x), dim=-1))
        cache.commit()
        return outputs

    def forward(self, images: torch.Tensor, causal: bool = True,
                frame_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Non-cached pass over S frames: the test oracle of :meth:`forward_frame`.

        See :func:`janusvln_ros.model.vggt_oracle.full_sequence_forward` (same arguments).

        Returns:
            ``depth`` tensors (B, S, P, 2C).
        """
        return full_sequence_forward(self, images, causal, frame_mask)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (works on the meta device)."""
    return sum(math.prod(p.shape) for p in module.parameters())
