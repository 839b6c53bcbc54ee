"""The batched training forward of a navigator: the engine's parity step, many samples at once.

Per sample (see :mod:`janusvln_ros.training.batch`): VGGT runs causally over the prompt's
frames and its fused layer at the CURRENT frame becomes the 3-D tokens; the Qwen ViT encodes
every prompt frame; each image's merged tokens get ``lam`` x the current frame's 3-D tokens (the
released fusion rule); the LLM runs over the padded prompts with an explicit causal + padding
mask and the prompt's own M-RoPE positions; the loss is the cross-entropy of the answer tokens
(action word and end token), averaged per sample then over the batch (so data-parallel ranks
with equal batch shares average to the single-process loss).

For ``t <= 8`` the prompt holds every frame so far, and the 3-D tokens equal the engine's
(VGGT's streaming memory then also holds every frame); for later steps the released recipe, and
this one, run VGGT over the sampled frames only while inference streams all frames through the
8 + 48 memory.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from janusvln_ros.model.fusion import spatial_tokens
from janusvln_ros.model.janusvln import JanusVLNForNavigation
from janusvln_ros.model.preprocess import CLIP_MEAN, CLIP_STD, MERGE_SIZE, PATCH_SIZE
from janusvln_ros.model.preprocess import TEMPORAL_PATCH_SIZE
from janusvln_ros.model.spatial_memory import ConcatEvictCache
from janusvln_ros.training.batch import Batch, IGNORE


def frames_to_unit(frames: torch.Tensor) -> torch.Tensor:
    """``(..., h, w, 3)`` uint8 -> ``(..., 3, h, w)`` float32 in [0, 1] (the VGGT input)."""
    x = frames.to(torch.float32) / 255.0
    return x.movedim(-1, -3)


def patchify_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen inputs of ``(M, 3, H, W)`` [0, 1] images (same math as ``preprocess.qwen_inputs``).

    Returns:
        ``(pixel_values (M * gh * gw, 1176), grid_thw (M, 3))``.
    """
    factor = PATCH_SIZE * MERGE_SIZE
    m, c, h, w = images.shape
    h28, w28 = h // factor * factor, w // factor * factor
    x = images[:, :, :h28, :w28]
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    gh, gw = h28 // PATCH_SIZE, w28 // PATCH_SIZE
    t, p, mg = TEMPORAL_PATCH_SIZE, PATCH_SIZE, MERGE_SIZE
    x = x.unsqueeze(1).expand(m, t, c, h28, w28)
    x = x.reshape(m, t, c, gh // mg, mg, p, gw // mg, mg, p)
    # -> (m, gh/mg, gw/mg, mg_row, mg_col, C, T, p_row, p_col)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    pixel_values = x.reshape(m * gh * gw, c * t * p * p)
    grid = torch.tensor([[1, gh, gw]], dtype=torch.long).expand(m, 3).contiguous()
    return pixel_values, grid


class EqualGridVision:
    """Qwen ViT over many frames of one size, with its index tensors built once per count.

    transformers rebuilds the rotary positions and the window index of every image in Python
    loops on each call; for ``M`` equal frames they are the one-image tensors tiled with offsets,
    given to the vision tower as precomputed keyword arguments. Same outputs as
    :meth:`JanusVLNForNavigation.vit_embeds` (tested).
    """

    def __init__(self, visual: Any) -> None:
        self.visual = visual
        self._one: dict[tuple[int, int], dict[str, torch.Tensor]] = {}

    def _single(self, gh: int, gw: int) -> dict[str, torch.Tensor]:
        key = (gh, gw)
        if key not in self._one:
            from transformers.vision_utils import get_vision_position_ids
            from transformers.vision_utils import get_vision_window_index
            grid = torch.tensor([[1, gh, gw]])
            cfg = self.visual.config
            positions = get_vision_position_ids(grid, cfg.spatial_merge_size)
            window, cu_window = get_vision_window_index(grid, cfg.spatial_merge_size,
                                                        cfg.window_size, cfg.patch_size)
            self._one[key] = {'position_ids': positions, 'window_index': window,
                              'cu_window_seqlens': cu_window.to(torch.int32)}
        return self._one[key]

    def __call__(self, pixel_values: torch.Tensor, count: int, gh: int,
                 gw: int) -> torch.Tensor:
        """``(count * gh * gw, 1176)`` patches -> ``(count, gh * gw / 4, hidden)``."""
        one = self._single(gh, gw)
        device = pixel_values.device
        patches = gh * gw
        units = patches // (self.visual.spatial_merge_size ** 2)
        images = torch.arange(count)
        window = (one['window_index'].unsqueeze(0) + units * images.unsqueeze(1)).reshape(-1)
        inner = one['cu_window_seqlens'][1:].to(torch.long)
        cu_window = torch.cat([torch.zeros(1, dtype=torch.long),
                               (inner.unsqueeze(0) + patches * images.unsqueeze(1)).reshape(-1)])
        kwargs = {
            'position_ids': one['position_ids'].repeat(count, 1).to(device),
            'cu_seqlens': (torch.arange(count + 1) * patches).to(device, torch.int32),
            'window_index': window.to(device),
            'cu_window_seqlens': cu_window.to(device, torch.int32),
        }
        grid = torch.tensor([[1, gh, gw]]).expand(count, 3).contiguous().to(device)
        out = self.visual(pixel_values.to(self.visual.patch_embed.proj.weight.dtype),
                          grid_thw=grid, **kwargs)
        return out.pooler_output.reshape(count, units, -1)


class NavigatorModule(nn.Module):
    """The trainable wrapper (one ``forward`` for DDP).

    Args:
        model: The network; VGGT is run without gradients unless ``train_vggt``.
        train_vggt: Train the aggregator too (the "VGGT from scratch" ablation).
        lam: Override of the fusion weight during training (0 trains without 3-D features);
            ``None`` keeps ``model.lam``.
    """

    def __init__(self, model: JanusVLNForNavigation, train_vggt: bool = False,
                 lam: float | None = None) -> None:
        super().__init__()
        self.model = model
        self.train_vggt = train_vggt
        self.lam = model.lam if lam is None else float(lam)
        self.vision = EqualGridVision(model.qwen.model.visual)

    def spatial(self, frames: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``(B, T, hidden)`` 3-D tokens of each sample's current frame (without ``lam``)."""
        model = self.model
        agg = model.vggt.aggregator
        steps = int(batch.num_images.max())
        images = frames_to_unit(frames[batch.vggt_frames[:, :steps]])  # (B, S, 3, h, w)
        # Causal over each sample's frames: stream them through a plain cache (no eviction
        # within 9 frames); frames after a sample's current one never influence it.
        cache = ConcatEvictCache(steps, 1)
        layers = model.config.output_layer + 1
        per_step = []
        with torch.set_grad_enabled(self.train_vggt and torch.is_grad_enabled()):
            for s in range(steps):
                out = agg.forward_frame(images[:, s].to(model.vggt_dtype), cache, layers)
                per_step.append(out[model.config.output_layer])
        layer = torch.stack(per_step, dim=1)  # (B, S, P, 2C)
        current = layer[torch.arange(layer.shape[0], device=layer.device),
                        batch.num_images - 1]
        p = agg.cfg.patch_size
        grid_hw = (images.shape[-2] // p, images.shape[-1] // p)
        tokens = spatial_tokens(current, grid_hw, agg.patch_start_idx, model.spatial_merge_size)
        return model.merger(tokens.to(model.vggt_dtype))

    def forward(self, batch: Batch, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss and per-sample correctness.

        Args:
            batch: A batch on the model's device.
            frames: ``(N, h, w, 3)`` uint8 dataset frames on the same device.

        Returns:
            ``loss`` (scalar), ``correct`` ``(B,)`` bool (every answer token is the argmax),
            ``first_logits`` ``(B, V)`` logits of the first answer token (trimmed vocabulary),
            ``token_loss`` ``(B,)`` per-sample mean cross-entropy.
        """
        model = self.model
        spatial = self.spatial(frames, batch)
        pixels, grid = patchify_batch(frames_to_unit(frames[batch.frames]))
        gh, gw = int(grid[0, 1]), int(grid[0, 2])
        vit = self.vision(pixels, grid.shape[0], gh, gw).to(model.dtype)  # (M, T, hidden)
        fused = vit + self.lam * spatial.to(vit.dtype)[batch.frame_sample]
        embeds = model.text_embeds(batch.ids)
        image_mask = (batch.ids == model.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(image_mask, fused.to(embeds.dtype))
        length = batch.ids.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=embeds.device).tril()
        mask = (causal.unsqueeze(0) & batch.valid.unsqueeze(1)).unsqueeze(1)
        llm = model.qwen.model.language_model
        hidden = llm(inputs_embeds=embeds, position_ids=batch.positions,
                     attention_mask={'full_attention': mask}, use_cache=False).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device).unsqueeze(1)
        picked = hidden[rows, batch.label_pos]  # (B, A, hidden)
        logits = model.qwen.lm_head(picked).float()
        labels = batch.labels
        target = labels.masked_fill(labels == IGNORE, model.image_token_id)  # any kept id
        if model.token_map is not None:
            target = model.token_map.compact(target)
        target = target.masked_fill(labels == IGNORE, IGNORE)
        token_ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE,
                                   reduction='none').view(target.shape)
        counts = (target != IGNORE).sum(dim=1).clamp(min=1)
        per_sample = token_ce.sum(dim=1) / counts
        hits = (logits.argmax(-1) == target) | (target == IGNORE)
        return {'loss': per_sample.mean(), 'correct': hits.all(dim=1),
                'first_logits': logits[:, 0], 'token_loss': per_sample.detach()}


def trainable_groups(model: JanusVLNForNavigation, lr: float, projector_lr: float,
                     train_vggt: bool = False) -> list[dict[str, Any]]:
    """Optimizer parameter groups of the navigator.

    The LLM and the ViT train at ``lr``; every parameter whose name holds ``merger`` (the fusion
    MLP and Qwen's patch merger, the recipe's "projectors") at ``projector_lr``; VGGT is frozen
    unless ``train_vggt`` (then at ``lr``).
    """
    main, projectors = [], []
    for name, param in model.named_parameters():
        if name.startswith('vggt.') and not train_vggt:
            param.requires_grad_(False)
            continue
        param.requires_grad_(True)
        (projectors if 'merger' in name else main).append(param)
    return [{'params': main, 'lr': lr, 'name': 'main'},
            {'params': projectors, 'lr': projector_lr, 'name': 'projectors'}]
