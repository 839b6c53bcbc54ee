"""The reference step: a deliberately plain re-statement of the released per-step semantics.

This engine is the oracle the fast engine is tested against, so it favours being obviously right
over being fast. Per step:

1. Prepare the frame (width 644 resize, :mod:`janusvln_ros.model.preprocess`) and append it to
   the episode's frame list.
2. VGGT on the current frame only, through a concatenate-and-evict spatial memory
   (:class:`~janusvln_ros.model.spatial_memory.ConcatEvictCache`, 8 anchor + 48 recent frames
   by default); layer ``output_layer`` patch tokens -> 2x2 grouping -> fusion MLP.
3. Pick the prompt images: all frames while there are at most ``num_history`` (8) past frames,
   else ``np.linspace(0, h, num_history + 1, dtype=int)`` (always the first and the current).
4. Re-encode ALL selected images with the Qwen ViT, and add ``lam`` x the current frame's 3-D
   tokens to every one of them.
5. Build the full prompt, scatter the fused image tokens, compute 3-D M-RoPE positions with HF's
   ``get_rope_index`` (``mm_token_type_ids`` = image pads), prefill the whole prompt.
6. Greedy decoding up to ``max_new_tokens`` (24) with a manual loop and the HF cache; stop at
   ``<|im_end|>``/``<|endoftext|>``; decode; exact-match parse; anything else is STOP.

After each step ``last_logits`` holds the float32 CPU logits ``(vocab,)`` of the first generated
token and ``last_selected`` the frame indices placed in the prompt.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.errors import InferenceError, InputError, ModelLoadError
from janusvln_ros.core.models import resolve_model_path
from janusvln_ros.core.types import Action, StepResult
from janusvln_ros.model.checkpoint import CheckpointError, load_checkpoint
from janusvln_ros.model.janusvln import JanusVLNForNavigation
from janusvln_ros.model.preprocess import prepare_frame, PreparedFrame
from janusvln_ros.model.prompt import (ACTION_NAMES, parse_action_name, PromptBuilder,
                                       PromptError)

logger = logging.getLogger(__name__)

TORCH_DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16,
                'float16': torch.float16}


def select_history(num_frames: int, num_history: int) -> list[int]:
    """Indices of the frames placed in the prompt (released sampling rule).

    Args:
        num_frames: Frames seen so far in the episode, the current one included (>= 1).
        num_history: Most past frames kept verbatim (8).

    Returns:
        ``range(num_frames)`` while ``num_frames - 1 <= num_history``, else the
        ``num_history + 1`` indices ``np.linspace(0, num_frames - 1, num_history + 1,
        dtype=int)`` (first and current included).
    """
    h = num_frames - 1
    if h <= num_history:
        return list(range(num_frames))
    return [int(i) for i in np.linspace(0, h, num_history + 1, dtype=int)]


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


class ReferenceEngine:
    """The plain per-step engine of the released checkpoints (implements ``Engine``).

    Args:
        model: The network.
        tokenizer: Its tokenizer (with a chat template).
        config: Engine settings used here: ``spatial_anchor_frames``, ``spatial_window_frames``,
            ``num_history``, ``max_new_tokens``, ``prompt_template``.

    Attributes:
        last_logits: ``(vocab,)`` float32 CPU logits of the first generated token of the last
            step (``None`` before the first step).
        last_selected: Frame indices placed in the last step's prompt.
        last_text: The decoded answer of the last step.
    """

    def __init__(self, model: JanusVLNForNavigation, tokenizer: Any,
                 config: EngineConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        try:
            self.prompt = PromptBuilder(tokenizer, config.prompt_template or None)
        except PromptError as exc:
            raise ModelLoadError(f'prompt template: {exc}') from exc
        self.eos_ids = set(self.prompt.eos_token_ids)
        self.cache = model.new_spatial_cache('concat', config.spatial_anchor_frames,
                                             config.spatial_window_frames)
        self.frames: list[PreparedFrame] = []
        self.instruction: str | None = None
        self.last_logits: torch.Tensor | None = None
        self.last_selected: list[int] = []
        self.last_text = ''

    @classmethod
    def from_config(cls, config: EngineConfig) -> ReferenceEngine:
        """Load ``config.model_path`` on ``config``'s devices and dtype and build the engine.

        Raises:
            ModelLoadError: If the checkpoint cannot be loaded.
        """
        try:
            model, tokenizer = load_checkpoint(
                resolve_model_path(config.model_path), device=config.resolved_llm_device,
                dtype=TORCH_DTYPES[config.dtype], vggt_device=config.resolved_vggt_device)
        except (CheckpointError, OSError) as exc:
            raise ModelLoadError(f'cannot load {config.model_path!r}: {exc}') from exc
        return cls(model, tokenizer, config)

    # ------------------------------------------------------------------ Engine protocol
    def reset(self, instruction: str) -> None:
        """Start an episode: empty the spatial memory and the frame list."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise InputError(f'instruction: expected a non-empty string, got {instruction!r}')
        self.instruction = instruction.strip()
        self.cache.reset()
        self.frames = []
        self.last_logits = None
        self.last_selected = []
        self.last_text = ''

    @torch.inference_mode()
    def step(self, frame: np.ndarray) -> StepResult:
        """Run one step on an ``(H, W, 3)`` uint8 RGB frame and return the action."""
        if self.instruction is None:
            raise InferenceError('step() before reset(instruction)')
        try:
            prepared = prepare_frame(frame, self.model.config.image_width)
        except ValueError as exc:
            raise InputError(f'frame: {exc}') from exc
        model = self.model
        lat: dict[str, float] = {}
        t_start = time.perf_counter()
        self.frames.append(prepared)

        spatial = model.spatial_embeds(prepared.vggt_image, self.cache)
        _sync(model.vggt_device)
        t_vggt = time.perf_counter()
        lat['vggt'] = (t_vggt - t_start) * 1e3

        selected = select_history(len(self.frames), self.config.num_history)
        images = [self.frames[i] for i in selected]
        pixel_values = torch.cat([f.pixel_values for f in images])
        grid_thw = torch.cat([f.grid_thw for f in images])
        fused = model.fuse(model.vit_embeds(pixel_values, grid_thw), spatial)
        _sync(model.llm_device)
        t_vit = time.perf_counter()
        lat['vit'] = (t_vit - t_vggt) * 1e3

        input_ids = self.prompt.parity_ids(self.instruction,
                                           [f.num_tokens for f in images]).unsqueeze(0)
        embeds = model.scatter_images(input_ids, fused)
        positions = model.rope_index(input_ids, grid_thw)
        logits, kv = model.llm_forward(embeds, positions, None, logits_to_keep=1)
        self.last_logits = logits[0, -1].float().cpu()
        _sync(model.llm_device)
        t_prefill = time.perf_counter()
        lat['prefill'] = (t_prefill - t_vit) * 1e3

        generated: list[int] = []
        token = int(logits[0, -1].argmax())
        next_pos = int(positions.max()) + 1
        while True:
            if token in self.eos_ids:
                break
            generated.append(token)
            if len(generated) >= self.config.max_new_tokens:
                break
            ids = torch.tensor([[token]], dtype=torch.long)
            pos = torch.full((3, 1, 1), next_pos, dtype=torch.long)
            next_pos += 1
            logits, kv = model.llm_forward(model.text_embeds(ids), pos, kv, logits_to_keep=1)
            token = int(logits[0, -1].argmax())
        text = self.prompt.decode(generated)
        _sync(model.llm_device)
        t_end = time.perf_counter()
        lat['decode'] = (t_end - t_prefill) * 1e3
        lat['total'] = (t_end - t_start) * 1e3

        self.last_selected = selected
        self.last_text = text
        action = Action[parse_action_name(text)]
        return StepResult(action=action, raw_output=text, step=len(self.frames) - 1,
                          latencies_ms=lat, spatial_memory_frames=len(self.cache),
                          spatial_memory_capacity=self.cache.capacity,
                          semantic_memory_frames=len(selected),
                          semantic_memory_capacity=self.config.num_history + 1,
                          memory_nbytes=int(self.cache.nbytes),
                          parsed=text.strip() in ACTION_NAMES)

    def close(self) -> None:
        """Drop the model and the memories (frees device memory once no one else holds them)."""
        device = self.model.llm_device if self.model is not None else None
        self.cache.reset()
        self.frames = []
        self.model = None  # type: ignore[assignment]
        if device is not None and device.type == 'cuda':
            torch.cuda.empty_cache()
