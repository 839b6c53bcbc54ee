"""Training samples as the engine's parity step sees them: prompts, positions, answer labels.

A sample is ``(path, step t, instruction)``. Its prompt holds the frames
:func:`~janusvln_ros.core.history.sample_history` picks at step ``t`` (all frames when at most 8
came before, else 9 ``linspace`` indices), the current frame last, built by the same
:class:`~janusvln_ros.model.prompt.PromptBuilder` and positioned by the same
:func:`~janusvln_ros.model.positions.chunk_positions` as inference. The target is the assistant
turn: the expert's action word followed by ``<|im_end|>``; the loss is taken on those tokens
only (each predicted from the token before it).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from janusvln_ros.core.history import sample_history
from janusvln_ros.model.positions import chunk_positions, text_positions
from janusvln_ros.model.prompt import ACTION_NAMES, PromptBuilder

IGNORE = -100


@dataclasses.dataclass
class Batch:
    """A padded batch (CPU tensors until :meth:`to`).

    Attributes:
        ids: ``(B, L)`` original token ids (padding: the end token).
        positions: ``(3, B, L)`` M-RoPE positions (padding: 0).
        valid: ``(B, L)`` bool, False on padding.
        label_pos: ``(B, A)`` positions whose logits predict the answer tokens.
        labels: ``(B, A)`` original answer token ids, ``-100`` where a shorter answer ends.
        frames: ``(M,)`` int64 dataset frame indices of every prompt image, sample by sample.
        frame_sample: ``(M,)`` the sample each image belongs to.
        last_frame: ``(B,)`` index into ``frames`` of each sample's current frame.
        vggt_frames: ``(B, S)`` frame indices of each sample's images padded with its last
            frame (VGGT runs causally over them; padding after the current frame is ignored).
        num_images: ``(B,)`` images per sample.
        actions: ``(B,)`` expert action ids.
    """

    ids: torch.Tensor
    positions: torch.Tensor
    valid: torch.Tensor
    label_pos: torch.Tensor
    labels: torch.Tensor
    frames: torch.Tensor
    frame_sample: torch.Tensor
    last_frame: torch.Tensor
    vggt_frames: torch.Tensor
    num_images: torch.Tensor
    actions: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        """Move every tensor (non-blocking)."""
        return Batch(**{f.name: getattr(self, f.name).to(device, non_blocking=True)
                        for f in dataclasses.fields(self)})


class PromptCache:
    """Token ids and positions of parity prompts, per (instruction, image count).

    Args:
        prompt: The prompt builder (the checkpoint's template).
        tokens_per_image: Merged LLM tokens of each frame (48 at width 224, 4:3).
        grid_thw: The frames' patch grid ``(1, gh, gw)``.
        merge_size: Qwen's spatial merge (2).
        num_history: Past frames in a prompt (8).
    """

    def __init__(self, prompt: PromptBuilder, tokens_per_image: int,
                 grid_thw: Sequence[int], merge_size: int = 2, num_history: int = 8) -> None:
        self.prompt = prompt
        self.tokens_per_image = int(tokens_per_image)
        self.grid = [int(v) for v in grid_thw]
        self.merge_size = merge_size
        self.num_history = num_history
        end = prompt.tokenizer.convert_tokens_to_ids('<|im_end|>')
        self.end_id = int(end)
        self.answers = {i: prompt.action_token_ids()[name] + [self.end_id]
                        for i, name in enumerate(ACTION_NAMES)}
        self._cache: dict[tuple[str, int], tuple[list[int], torch.Tensor, int]] = {}

    def prompt_ids(self, instruction: str, num_images: int
                   ) -> tuple[list[int], torch.Tensor, int]:
        """``(ids, positions (3, L), next position)`` of a prompt with ``num_images`` images."""
        key = (instruction, num_images)
        hit = self._cache.get(key)
        if hit is None:
            ids = self.prompt.parity_ids(instruction, [self.tokens_per_image] * num_images)
            positions, next_pos = chunk_positions(ids, self.prompt.image_token_id,
                                                  [self.grid] * num_images, 0, self.merge_size)
            hit = (ids.tolist(), positions[:, 0], next_pos)
            self._cache[key] = hit
        return hit

    def collate(self, samples: Sequence[tuple[int, int, str, int]]) -> Batch:
        """A batch from ``(path frame offset, step, instruction, expert action)`` tuples."""
        rows, frames, frame_sample, last_frame, vggt_rows, counts = [], [], [], [], [], []
        max_images = self.num_history + 1
        for b, (offset, step, instruction, action) in enumerate(samples):
            selected = sample_history(step + 1, self.num_history)
            ids, positions, next_pos = self.prompt_ids(instruction, len(selected))
            answer = self.answers[int(action)]
            answer_pos, _ = text_positions(next_pos, len(answer))
            full_ids = ids + answer
            full_pos = torch.cat([positions, answer_pos[:, 0]], dim=1)
            label_pos = list(range(len(ids) - 1, len(ids) - 1 + len(answer)))
            rows.append((full_ids, full_pos, label_pos, answer))
            indices = [offset + s for s in selected]
            frames += indices
            frame_sample += [b] * len(indices)
            last_frame.append(len(frames) - 1)
            counts.append(len(indices))
            vggt_rows.append(indices + [indices[-1]] * (max_images - len(indices)))
        length = max(len(r[0]) for r in rows)
        width = max(len(r[3]) for r in rows)
        n = len(rows)
        ids = torch.full((n, length), self.end_id, dtype=torch.long)
        positions = torch.zeros((3, n, length), dtype=torch.long)
        valid = torch.zeros((n, length), dtype=torch.bool)
        label_pos = torch.zeros((n, width), dtype=torch.long)
        labels = torch.full((n, width), IGNORE, dtype=torch.long)
        for b, (full_ids, full_pos, lpos, answer) in enumerate(rows):
            size = len(full_ids)
            ids[b, :size] = torch.tensor(full_ids)
            positions[:, b, :size] = full_pos
            valid[b, :size] = True
            label_pos[b, :len(lpos)] = torch.tensor(lpos)
            labels[b, :len(answer)] = torch.tensor(answer)
        num_images = torch.tensor(counts, dtype=torch.long)
        return Batch(ids=ids, positions=positions, valid=valid, label_pos=label_pos,
                     labels=labels, frames=torch.tensor(frames, dtype=torch.long),
                     frame_sample=torch.tensor(frame_sample, dtype=torch.long),
                     last_frame=torch.tensor(last_frame, dtype=torch.long),
                     vggt_frames=torch.tensor(vggt_rows, dtype=torch.long),
                     num_images=num_images,
                     actions=torch.tensor([int(s[3]) for s in samples], dtype=torch.long))


def sample_tuples(paths: Sequence[dict], actions: np.ndarray, rows: np.ndarray
                  ) -> list[tuple[int, int, str, int]]:
    """``(offset, step, instruction, action)`` for sample rows ``(path, step, episode)``."""
    out = []
    for p, t, e in rows.tolist():
        path = paths[p]
        offset = int(path['frame_offset'])
        out.append((offset, int(t), path['episodes'][e]['instruction'],
                    int(actions[offset + t])))
    return out
