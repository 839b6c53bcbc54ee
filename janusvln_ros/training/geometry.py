"""Geometry pretraining of the small VGGT aggregator on what the simulator gives for free.

As VGGT itself is a geometry model pretrained on 3-D data and then frozen inside JanusVLN, the
small aggregator is first trained to predict geometry from RGB sequences alone, then frozen
while the navigator trains. Two small heads sit on the aggregator during this stage only and
are dropped at export (like the released depth and point heads, which JanusVLN never runs):

* a depth head on the FUSED layer's patch tokens (the layer JanusVLN adds to Qwen's tokens):
  one linear map to the log-depth of each patch's 2x2 cells of 7 pixels;
* a pose head on the LAST layer's camera token: the frame's position (metres) and heading
  (sin, cos) in the first frame's coordinates.

Sequences are ``frames`` consecutive-with-stride views of dataset paths, run causally (each
frame sees itself and earlier frames, as the streaming memory does at inference). The loss is
L1 on log-depth plus L1 on the pose terms. A held-out 5 % of the paths gives the reported
depth and pose errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import pathlib
import time
from typing import Any

import numpy as np
from safetensors.torch import save_file
import torch
from torch import nn
from tqdm.auto import tqdm

from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.vggt import VGGTAggregator
from janusvln_ros.training.dataset import load_datasets, NavigationData
from janusvln_ros.training.forward import frames_to_unit

logger = logging.getLogger(__name__)

AGGREGATOR_FILE = 'vggt_pretrained.safetensors'
HEADS_FILE = 'geometry_heads.safetensors'
LOG_FILE = 'geometry_log.jsonl'


@dataclasses.dataclass(frozen=True)
class GeometryConfig:
    """A geometry pretraining run.

    Attributes:
        data: Dataset directories.
        out: Output directory.
        frames: Frames per sequence.
        batch_size: Sequences per step.
        steps: Optimizer steps (the time budget may end the run earlier).
        lr: AdamW learning rate.
        max_minutes: Wall-time budget (0: none).
        seed: Seed of the init and the sampling.
        device: Torch device.
        log_every: Steps between log lines.
    """

    data: tuple[str, ...]
    out: str
    frames: int = 8
    batch_size: int = 32
    steps: int = 3000
    lr: float = 3e-4
    max_minutes: float = 0.0
    seed: int = 0
    device: str = 'cuda'
    log_every: int = 50


class GeometryHeads(nn.Module):
    """Depth and pose heads on the aggregator (training only)."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.depth = nn.Linear(2 * embed_dim, 4)
        self.pose = nn.Sequential(nn.Linear(2 * embed_dim, 256), nn.GELU(), nn.Linear(256, 4))


def relative_poses(poses: torch.Tensor) -> torch.Tensor:
    """``(B, S, 3)`` world (x, y, yaw) -> ``(B, S, 4)`` (dx, dy, sin, cos) in frame 0's axes."""
    x0, y0, t0 = poses[:, :1, 0], poses[:, :1, 1], poses[:, :1, 2]
    dx, dy = poses[..., 0] - x0, poses[..., 1] - y0
    c, s = torch.cos(t0), torch.sin(t0)
    rel = poses[..., 2] - t0
    return torch.stack([c * dx + s * dy, -s * dx + c * dy, torch.sin(rel), torch.cos(rel)], -1)


def geometry_losses(agg: VGGTAggregator, heads: GeometryHeads, output_layer: int,
                    images: torch.Tensor, depth: torch.Tensor, poses: torch.Tensor
                    ) -> dict[str, torch.Tensor]:
    """Losses and errors of one batch.

    Args:
        agg: The aggregator.
        heads: The heads.
        output_layer: The fused layer (``depth - 2``).
        images: ``(B, S, 3, h, w)`` in [0, 1].
        depth: ``(B, S, h/7, w/7)`` metres.
        poses: ``(B, S, 3)`` world poses.

    Returns:
        ``loss``, ``depth_l1`` (log), ``abs_rel`` (depth), ``trans_err`` (m), ``yaw_err`` (rad).
    """
    b, s, _, h, w = images.shape
    outputs = agg.forward(images, causal=True)
    p = agg.cfg.patch_size
    gh, gw = h // p, w // p
    fused = outputs[output_layer][:, :, agg.patch_start_idx:]  # (B, S, gh*gw, 2C)
    cells = heads.depth(fused.float()).view(b, s, gh, gw, 2, 2)
    pred_log = cells.permute(0, 1, 2, 4, 3, 5).reshape(b, s, gh * 2, gw * 2)
    target = depth[:, :, :gh * 2, :gw * 2].float().clamp(min=0.05)
    target_log = target.log()
    depth_l1 = (pred_log - target_log).abs().mean()
    camera = outputs[-1][:, :, 0].float()
    pose_pred = heads.pose(camera)
    pose_true = relative_poses(poses.float())
    trans = (pose_pred[..., :2] - pose_true[..., :2]).abs().mean()
    rot = (pose_pred[..., 2:] - pose_true[..., 2:]).abs().mean()
    with torch.no_grad():
        abs_rel = ((pred_log.exp() - target).abs() / target).mean()
        trans_err = (pose_pred[:, 1:, :2] - pose_true[:, 1:, :2]).norm(dim=-1).mean()
        yaw_err = torch.atan2(pose_pred[:, 1:, 2], pose_pred[:, 1:, 3]) - torch.atan2(
            pose_true[:, 1:, 2], pose_true[:, 1:, 3])
        yaw_err = torch.atan2(torch.sin(yaw_err), torch.cos(yaw_err)).abs().mean()
    return {'loss': depth_l1 + trans + rot, 'depth_l1': depth_l1, 'abs_rel': abs_rel,
            'trans_err': trans_err, 'yaw_err': yaw_err}


class SequenceSampler:
    """Random strided frame windows of dataset paths."""

    def __init__(self, data: NavigationData, path_ids: np.ndarray, frames: int,
                 seed: int) -> None:
        self.data = data
        self.frames = frames
        self.rng = np.random.default_rng(seed)
        self.paths = [p for p in path_ids if data.paths[p]['num_frames'] >= frames]
        if not self.paths:
            raise ValueError(f'no path has {frames} frames')

    def indices(self, batch: int) -> np.ndarray:
        """``(batch, frames)`` global frame indices."""
        out = np.empty((batch, self.frames), dtype=np.int64)
        for b in range(batch):
            path = self.data.paths[self.paths[self.rng.integers(len(self.paths))]]
            n = path['num_frames']
            stride = int(self.rng.integers(1, 4))
            while stride > 1 and (self.frames - 1) * stride >= n:
                stride -= 1
            first = int(self.rng.integers(0, n - (self.frames - 1) * stride))
            out[b] = path['frame_offset'] + first + stride * np.arange(self.frames)
        return out


def pretrain_geometry(config: GeometryConfig, data: NavigationData | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """Pretrain a small aggregator; writes :data:`AGGREGATOR_FILE` and returns the last log."""
    device = torch.device(config.device)
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    data = data if data is not None else load_datasets(config.data, progress=progress)
    model_config = JanusVLNConfig.small()
    torch.manual_seed(config.seed)
    agg = VGGTAggregator(model_config.vggt_config()).to(device).train()
    heads = GeometryHeads(agg.cfg.embed_dim).to(device)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(data.paths))
    held = max(1, len(order) // 20)
    train_sampler = SequenceSampler(data, order[held:], config.frames, config.seed)
    val_sampler = SequenceSampler(data, order[:held], config.frames, config.seed + 1)
    val_idx = val_sampler.indices(min(64, 4 * config.batch_size))
    frames = torch.from_numpy(data.frames).to(device)
    depth = torch.from_numpy(data.depth).to(device)
    poses = torch.from_numpy(data.poses).to(device)
    params = list(agg.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01)
    autocast = (torch.autocast('cuda', dtype=torch.bfloat16) if device.type == 'cuda'
                else contextlib.nullcontext())

    def batch_of(index: np.ndarray) -> tuple[torch.Tensor, ...]:
        idx = torch.from_numpy(index).to(device)
        return frames_to_unit(frames[idx]), depth[idx], poses[idx]

    def validate() -> dict[str, float]:
        agg.eval()
        sums: dict[str, float] = {}
        with torch.no_grad(), autocast:
            for start in range(0, len(val_idx), config.batch_size):
                part = geometry_losses(agg, heads, model_config.output_layer,
                                       *batch_of(val_idx[start:start + config.batch_size]))
                for k, v in part.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(val_idx[start:start
                                                                        + config.batch_size])
        agg.train()
        return {f'val_{k}': v / len(val_idx) for k, v in sums.items()}

    record: dict[str, Any] = {'step': 0, **validate()}
    log = (out / LOG_FILE).open('a')
    log.write(json.dumps(record) + '\n')
    start = time.time()
    bar = tqdm(total=config.steps, desc='geometry', disable=not progress)
    step = 0
    while step < config.steps:
        lr = config.lr * min(1.0, (step + 1) / 100) * (
            0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / config.steps)))
        for group in optimizer.param_groups:
            group['lr'] = lr
        with autocast:
            losses = geometry_losses(agg, heads, model_config.output_layer,
                                     *batch_of(train_sampler.indices(config.batch_size)))
        optimizer.zero_grad(set_to_none=True)
        losses['loss'].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        bar.update(1)
        over = config.max_minutes and time.time() - start > config.max_minutes * 60
        if step % config.log_every == 0 or step == config.steps or over:
            record = {'step': step, 'elapsed_s': time.time() - start,
                      **{k: float(v) for k, v in losses.items()}}
            if step % (config.log_every * 10) == 0 or step == config.steps or over:
                record.update(validate())
            log.write(json.dumps(record) + '\n')
            log.flush()
            bar.set_postfix(loss=f'{record["loss"]:.3f}')
        if over:
            break
    bar.close()
    if 'val_loss' not in record:
        record.update(validate())
    log.write(json.dumps(dict(record, final=True)) + '\n')
    log.close()
    tensors = {f'vggt.aggregator.{k}': v.detach().to('cpu', torch.float32).contiguous()
               for k, v in agg.state_dict().items()}
    save_file(tensors, str(out / AGGREGATOR_FILE))
    save_file({k: v.detach().cpu().contiguous() for k, v in heads.state_dict().items()},
              str(out / HEADS_FILE))
    logger.info('geometry pretraining: %s', {k: round(v, 4) for k, v in record.items()
                                             if isinstance(v, float)})
    return record
