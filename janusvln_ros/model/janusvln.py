"""The JanusVLN network on transformers 5.x: Qwen2.5-VL + the VGGT aggregator + the fusion MLP.

Module tree (state-dict names; ``model/checkpoint.py`` maps them to and from the released
transformers-4.50 names)::

    JanusVLNForNavigation
     ├─ qwen: Qwen2_5_VLForConditionalGeneration
     │   ├─ model.visual          (Qwen ViT + its 2x2 patch merger)      <- visual.*
     │   ├─ model.language_model  (the LLM decoder)                       <- model.*
     │   └─ lm_head                                                        <- lm_head.*
     ├─ vggt.aggregator: VGGTAggregator                                    <- vggt.aggregator.*
     └─ merger: VGGTMerger (RMSNorm -> Linear -> GELU -> Linear)          <- merger.*

Per step the released model fuses the current frame's 3-D features into EVERY image
of the prompt: ``fused_i = vit_embeds_i + lam * spatial_embeds(current)``. This class offers the
building blocks (:meth:`vit_embeds`, :meth:`spatial_embeds`, :meth:`fuse`, :meth:`text_embeds`,
:meth:`scatter_images`, :meth:`rope_index`, :meth:`llm_forward`); engines compose them. VGGT and
the merger may live on another device than Qwen (``vggt_device``); :meth:`fuse` moves the 3-D
tokens to the Qwen device.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Sequence

import torch
from torch import nn
from transformers import Qwen2_5_VLForConditionalGeneration

from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.fusion import spatial_tokens, VGGTMerger
from janusvln_ros.model.spatial_memory import ConcatEvictCache, RingBufferCache, SpatialCache
from janusvln_ros.model.vggt import VGGTAggregator

logger = logging.getLogger(__name__)


def cache_kwarg_name(model_cls: type = Qwen2_5_VLForConditionalGeneration) -> str:
    """The forward keyword that takes the LLM KV cache.

    transformers 5.24 renamed ``past_key_values=`` to ``cache=``; in 5.17 ``cache=`` is silently
    ignored without an error, so the name is detected from the signature.
    """
    params = inspect.signature(model_cls.forward).parameters
    return 'cache' if 'cache' in params else 'past_key_values'


class VGGT(nn.Module):
    """Holder of the aggregator, so that parameter names read ``vggt.aggregator.*``.

    The released checkpoints also carry ``vggt.depth_head.*`` / ``vggt.point_head.*``; JanusVLN
    never runs them, so they are not built (the loader skips them).
    """

    def __init__(self, aggregator: VGGTAggregator) -> None:
        super().__init__()
        self.aggregator = aggregator


class JanusVLNForNavigation(nn.Module):
    """Qwen2.5-VL-7B (2-D semantics) + VGGT aggregator (3-D geometry) + fusion MLP.

    Build with :meth:`from_config` (random or meta weights) or
    :func:`janusvln_ros.model.checkpoint.load_checkpoint`.

    Attributes:
        config: The :class:`JanusVLNConfig`.
        qwen: ``Qwen2_5_VLForConditionalGeneration`` (5.x tree).
        vggt: Holder whose ``aggregator`` is the :class:`VGGTAggregator`.
        merger: The fusion :class:`VGGTMerger` (2C*4 -> hidden -> LLM hidden).
        lam: Fusion weight (``config.lam``).
    """

    def __init__(self, config: JanusVLNConfig, attn_implementation: str | None = None) -> None:
        """Build the modules with freshly initialised weights on the current default device.

        Args:
            config: Network configuration.
            attn_implementation: Qwen attention backend (default ``'sdpa'``).
        """
        super().__init__()
        self.config = config
        self.qwen = Qwen2_5_VLForConditionalGeneration(config.qwen_config(attn_implementation))
        vggt_cfg = config.vggt_config()
        self.vggt = VGGT(VGGTAggregator(vggt_cfg))
        self.merger = VGGTMerger(2 * vggt_cfg.embed_dim, config.vggt_merger_hidden_dim,
                                 config.hidden_size)
        self.lam = float(config.lam)
        self.token_map = config.token_map
        self._cache_kwarg = cache_kwarg_name(type(self.qwen))

    @classmethod
    def from_config(cls, config: JanusVLNConfig, device: str | torch.device = 'cpu',
                    dtype: torch.dtype = torch.float32,
                    attn_implementation: str | None = None) -> JanusVLNForNavigation:
        """Build with random weights (``device='meta'``: shapes only, instantly, even for 7B).

        Args:
            config: Network configuration.
            device: Target device; ``'meta'`` allocates nothing.
            dtype: Parameter dtype (buffers such as RoPE frequencies stay float32).
            attn_implementation: Qwen attention backend.
        """
        with torch.device(device):
            model = cls(config, attn_implementation)
        if str(device) != 'meta':
            for param in model.parameters():
                param.data = param.data.to(dtype)
        return model.eval()

    # ------------------------------------------------------------------ properties
    @property
    def llm_device(self) -> torch.device:
        """Device of Qwen (ViT, LLM, LM head)."""
        return self.qwen.lm_head.weight.device

    @property
    def vggt_device(self) -> torch.device:
        """Device of the aggregator and the merger."""
        return self.merger.mlp[0].weight.device

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype of the LLM."""
        return self.qwen.lm_head.weight.dtype

    @property
    def vggt_dtype(self) -> torch.dtype:
        """Compute dtype of the aggregator."""
        return self.merger.mlp[0].weight.dtype

    @property
    def image_token_id(self) -> int:
        """``<|image_pad|>`` id."""
        return self.config.image_token_id

    @property
    def vision_start_token_id(self) -> int:
        """``<|vision_start|>`` id."""
        return self.config.vision_start_token_id

    @property
    def vision_end_token_id(self) -> int:
        """``<|vision_end|>`` id."""
        return self.config.vision_end_token_id

    @property
    def spatial_merge_size(self) -> int:
        """Qwen's 2x2 patch merge."""
        return int(self.config.vision['spatial_merge_size'])

    def place(self, llm_device: str | torch.device,
              vggt_device: str | torch.device | None = None) -> JanusVLNForNavigation:
        """Move Qwen to ``llm_device`` and VGGT + merger to ``vggt_device`` (default the same)."""
        self.qwen.to(llm_device)
        self.vggt.to(vggt_device or llm_device)
        self.merger.to(vggt_device or llm_device)
        return self

    # ------------------------------------------------------------------ encoders
    def vit_embeds(self, pixel_values: torch.Tensor,
                   grid_thw: torch.Tensor) -> list[torch.Tensor]:
        """Qwen ViT + patch merger over one or more images.

        Args:
            pixel_values: ``(sum_i gh_i * gw_i, 1176)`` rows of all images, concatenated.
            grid_thw: ``(n_img, 3)`` grids ``(1, gh_i, gw_i)``; pass the CPU tensor: the
                fast encoder (:mod:`janusvln_ros.model.cuda_graphs`) reads it on the host, so a
                device copy would cost a host synchronisation.

        Returns:
            ``n_img`` tensors ``(gh_i * gw_i / 4, hidden)`` on the LLM device, LLM dtype.
        """
        visual = self.qwen.model.visual
        pixel_values = pixel_values.to(self.llm_device, visual.patch_embed.proj.weight.dtype)
        grid_thw = grid_thw.to(self.llm_device, non_blocking=True)
        out = self.qwen.model.get_image_features(pixel_values, grid_thw)
        return [t.to(self.dtype) for t in out.pooler_output]

    def new_spatial_cache(self, kind: str = 'ring', anchor_frames: int = 8,
                          window_frames: int = 48) -> SpatialCache:
        """An empty spatial (VGGT) memory sized for this model.

        Args:
            kind: ``'ring'`` (preallocated :class:`RingBufferCache`) or ``'concat'`` (the plain
                :class:`ConcatEvictCache` of the released code).
            anchor_frames: First frames never evicted (8).
            window_frames: Most recent frames kept (48).
        """
        if kind == 'concat':
            return ConcatEvictCache(anchor_frames, window_frames)
        if kind == 'ring':
            vcfg = self.vggt.aggregator.cfg
            return RingBufferCache(self.config.num_vggt_layers, vcfg.num_heads, vcfg.head_dim,
                                   anchor_frames, window_frames, device=self.vggt_device,
                                   dtype=self.vggt_dtype)
        raise ValueError(f"kind: expected 'ring' or 'concat', got {kind!r}")

    def spatial_embeds(self, vggt_image: torch.Tensor, cache: SpatialCache) -> torch.Tensor:
        """3-D tokens of ONE frame, streamed through the spatial memory (WITHOUT ``lam``).

        Runs the aggregator only up to ``config.output_layer`` (layer 22 = ``[-2]`` for VGGT-1B),
        which also appends the frame to ``cache`` (evicting per its policy), then groups the
        patch features 2x2 like Qwen's merged tokens and applies the merger.

        Args:
            vggt_image: ``(3, H, W)`` in ``[0, 1]`` (``PreparedFrame.vggt_image``).
            cache: The episode's spatial memory.

        Returns:
            ``(tokens, hidden)`` on the VGGT device, where ``tokens`` = ``(H/28) * (W/28)``
            (391 at 644x490), in the merger's dtype.
        """
        agg = self.vggt.aggregator
        image = vggt_image.to(self.vggt_device).unsqueeze(0)
        feats = agg.forward_frame(image, cache, num_layers=self.config.num_vggt_layers)
        layer = feats[self.config.output_layer]
        p = agg.cfg.patch_size
        grid_hw = (vggt_image.shape[-2] // p, vggt_image.shape[-1] // p)
        tokens = spatial_tokens(layer, grid_hw, agg.patch_start_idx, self.spatial_merge_size)
        return self.merger(tokens.to(self.vggt_dtype))[0]

    def fuse(self, vit: Sequence[torch.Tensor], spatial: torch.Tensor) -> list[torch.Tensor]:
        """``vit_i + lam * spatial`` for every image (the released fusion rule).

        Args:
            vit: Per-image ViT embeddings, each ``(tokens, hidden)``.
            spatial: ``(tokens, hidden)`` 3-D tokens of the current frame (any device).

        Returns:
            The fused per-image embeddings on the LLM device.
        """
        spatial = spatial.to(self.llm_device, self.dtype)
        fused = []
        for emb in vit:
            if emb.shape != spatial.shape:
                raise ValueError(f'ViT tokens {tuple(emb.shape)} and 3-D tokens '
                                 f'{tuple(spatial.shape)} differ: both encoders must see the '
                                 'same prepared frame size')
            fused.append(emb + self.lam * spatial)
        return fused

    # ------------------------------------------------------------------ LLM
    def text_embeds(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings. ``(B, L)`` int64 original ids -> ``(B, L, hidden)``.

        Raises:
            VocabularyError: With a trimmed vocabulary, an id outside it (checked before the
                ids leave the host).
        """
        embed = self.qwen.model.language_model.embed_tokens
        if self.token_map is not None:
            input_ids = self.token_map.compact(input_ids)
        return embed(input_ids.to(self.llm_device, non_blocking=True))

    def full_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """LM-head logits over the full vocabulary (identity without a trimmed vocabulary)."""
        if self.token_map is None:
            return logits
        return self.token_map.expand_logits(logits)

    def scatter_images(self, input_ids: torch.Tensor,
                       image_embeds: Sequence[torch.Tensor]) -> torch.Tensor:
        """Embed ``input_ids`` and write the image embeddings at the ``<|image_pad|>`` positions.

        Args:
            input_ids: ``(1, L)`` with ``sum_i tokens_i`` image pads (on the CPU, the pad
                positions are found on the host: no device synchronisation).
            image_embeds: Per-image ``(tokens_i, hidden)`` in prompt order.

        Returns:
            ``(1, L, hidden)`` inputs embeddings.
        """
        embeds = self.text_embeds(input_ids)
        flat = torch.cat([e.to(embeds.device, embeds.dtype) for e in image_embeds], dim=0)
        if input_ids.device.type == 'cpu':
            # positions known on the host: no count/boolean-index synchronisation on the device
            index = (input_ids.reshape(-1) == self.image_token_id).nonzero().reshape(-1)
            if index.numel() != flat.shape[0]:
                raise ValueError(f'{index.numel()} image pads in the prompt but {flat.shape[0]} '
                                 'image tokens')
            index = index.to(embeds.device, non_blocking=True)
            return embeds.index_copy(1, index, flat.unsqueeze(0))
        mask = input_ids.to(self.llm_device) == self.image_token_id
        if int(mask.sum()) != flat.shape[0]:
            raise ValueError(f'{int(mask.sum())} image pads in the prompt but {flat.shape[0]} '
                             'image tokens')
        embeds = embeds.clone()
        embeds[mask] = flat
        return embeds

    def rope_index(self, input_ids: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """3-D M-RoPE positions of a full prompt (HF ``get_rope_index``).

        Args:
            input_ids: ``(1, L)``.
            grid_thw: ``(n_img, 3)`` grids of the prompt's images in order.

        Returns:
            ``(3, 1, L)`` int64 on the LLM device.
        """
        ids = input_ids.to(self.llm_device)
        mm_token_type_ids = (ids == self.image_token_id).int()
        positions, _ = self.qwen.model.get_rope_index(
            ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=grid_thw.to(ids.device))
        return positions

    def _text_config(self) -> Any:
        config = self.qwen.config
        return getattr(config, 'text_config', None) or config

    def supports_attention_mask(self) -> bool:
        """Whether :meth:`llm_forward` accepts ``allowed`` (sdpa or eager, full attention)."""
        text = self._text_config()
        impl = getattr(text, '_attn_implementation', None) or 'sdpa'
        layer_types = set(getattr(text, 'layer_types', None) or ['full_attention'])
        return impl in ('sdpa', 'eager') and layer_types == {'full_attention'}

    def _layer_masks(self, allowed: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """``allowed`` as the prepared per-layer-type 4-D mask transformers takes as is."""
        if not self.supports_attention_mask():
            raise ValueError('custom attention masks need the sdpa or eager attention and full '
                             'attention layers')
        mask = allowed.to(self.llm_device, non_blocking=True)[None, None]
        text = self._text_config()
        if (getattr(text, '_attn_implementation', None) or 'sdpa') == 'eager':
            zero = torch.zeros((), dtype=dtype, device=mask.device)
            mask = torch.where(mask, zero, torch.finfo(dtype).min)
        return {'full_attention': mask}

    def llm_forward(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor,
                    past_key_values: Any = None, logits_to_keep: int = 1,
                    allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """One LLM call with explicit 3-D positions (prefill, chunk or decode step).

        Args:
            inputs_embeds: ``(1, L, hidden)``.
            position_ids: ``(3, 1, L)`` explicit M-RoPE positions (never inferred by HF).
            past_key_values: An HF cache (e.g. ``DynamicCache``) updated in place, or ``None``
                for a fresh one.
            logits_to_keep: Last positions whose logits are computed (1 avoids the 152k-wide
                logits of the whole prompt).
            allowed: Optional ``(L, past + L)`` bool: which cached + new tokens each new token
                may attend to (True = attend), replacing the causal mask (see
                :meth:`supports_attention_mask`); None: plain causal attention.

        Returns:
            ``(logits (1, k, vocab), cache)``; with a trimmed vocabulary the logits are
            expanded to the full vocabulary (original token ids).
        """
        kwargs: dict[str, Any] = {self._cache_kwarg: past_key_values}
        if allowed is not None:
            kwargs['attention_mask'] = self._layer_masks(allowed, inputs_embeds.dtype)
        out = self.qwen(inputs_embeds=inputs_embeds.to(self.llm_device),
                        position_ids=position_ids.to(self.llm_device, non_blocking=True),
                        use_cache=True, logits_to_keep=logits_to_keep, **kwargs)
        cache = getattr(out, 'cache', None) if self._cache_kwarg == 'cache' else None
        if cache is None:
            cache = out.past_key_values
        return self.full_logits(out.logits), cache


def truncate_cache(cache: Any, keep_tokens: int) -> None:
    """Keep the first ``keep_tokens`` tokens of every layer of an HF ``DynamicCache``."""
    for layer in cache.layers:
        if layer.keys is not None and layer.keys.shape[-2] > keep_tokens:
            layer.keys = layer.keys[..., :keep_tokens, :]
            layer.values = layer.values[..., :keep_tokens, :]


def parameter_counts(model: JanusVLNForNavigation) -> dict[str, int]:
    """Parameters per component (works on the meta device).

    Returns:
        ``llm`` (decoder with embeddings + LM head), ``vision_tower`` (Qwen ViT with its patch
        merger), ``qwen2_5_vl`` (their sum; 8.29 B for the 7B), ``vggt_aggregator`` (909.1 M for
        VGGT-1B), ``merger`` (the fusion MLP, 48.2 M) and ``total``.
    """
    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    qwen = count(model.qwen)  # counts a tied LM head once
    vision = count(model.qwen.model.visual)
    counts = {'llm': qwen - vision, 'vision_tower': vision, 'qwen2_5_vl': qwen,
              'vggt_aggregator': count(model.vggt.aggregator), 'merger': count(model.merger)}
    counts['total'] = qwen + counts['vggt_aggregator'] + counts['merger']
    return counts
