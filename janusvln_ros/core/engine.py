"""The JanusVLN engine: dual implicit memory, incremental steps, constrained action decoding.

One persistent object per node (or simulator, or replay tool), driven by ONE worker thread:
``reset(instruction)`` starts an episode, ``step(frame)`` consumes one RGB frame and returns
the next action. It never imports rclpy.

Per step (janusvln-spec.md §2.3-2.4, §3):

1. **preprocess** the frame on the CPU (resize to VGGT width, Qwen patch rows);
2. **vggt**: one frame through the aggregator against the spatial memory, a preallocated ring
   buffer of ``spatial_anchor_frames`` pinned + ``spatial_window_frames`` FIFO slots (keys stored
   after k-norm and RoPE); the merger gives the frame's 3-D tokens ``(n, hidden)``;
3. **vit**: the Qwen ViT on the *current frame only* (``(n, hidden)``);
4. **prefill** and 5. **decode**, which depend on the semantic-memory mode:

   * ``parity`` (default; what the released checkpoints were trained for): the ViT tokens go
     into a per-frame store (:class:`~janusvln_ros.core.semantic_memory.FrameFeatureStore`);
     the history is sampled exactly as released (all frames up to ``num_history`` past frames,
     else ``linspace(0, t, num_history + 1)``); the current frame's 3-D tokens times λ are
     added to every selected frame; the whole prompt is prefilled with ``logits_to_keep=1``;
   * ``streaming`` (the paper's full dual implicit memory; **the released checkpoints were not
     trained for it**): an LLM key/value cache holds the prompt prefix, the first
     ``semantic_anchor_frames`` frames and the last ``semantic_window_frames`` frames; only the
     new frame (fused with its *own* 3-D tokens times λ) is prefilled, at its original
     M-RoPE positions from a global counter; older frames are evicted physically; the query
     is appended, decoded and cropped so that it never accumulates.

   Decoding is :class:`~janusvln_ros.core.decoding.ConstrainedActionDecoder`: the same action
   as "greedy generate, then exact-match parse, else STOP", in at most ``tokens + 1`` passes.

Host synchronisation: one per decoded token (the greedy argmax), nothing else inside a step
(stage times on CUDA come from CUDA events read after the last sync).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.decoding import ConstrainedActionDecoder, DecodeResult
from janusvln_ros.core.errors import InferenceError, InputError, ModelLoadError
from janusvln_ros.core.history import sample_history
from janusvln_ros.core.semantic_memory import FrameFeatureStore, StreamingSemanticMemory
from janusvln_ros.core.types import StepResult
from janusvln_ros.model.checkpoint import load_checkpoint
from janusvln_ros.model.positions import chunk_positions, text_positions
from janusvln_ros.model.preprocess import prepare_frame
from janusvln_ros.model.prompt import PromptBuilder

logger = logging.getLogger(__name__)

DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
STAGES = ('preprocess', 'vggt', 'vit', 'prefill', 'decode')


class _StageTimer:
    """Per-stage wall times; on CUDA, device times from events read after the step's last sync."""

    def __init__(self) -> None:
        self._cpu: dict[str, float] = {}
        self._events: dict[str, tuple[Any, Any]] = {}
        self._open: tuple[str, torch.device, float, Any] | None = None

    def record(self, name: str, ms: float) -> None:
        self._cpu[name] = ms

    def start(self, name: str, device: torch.device) -> None:
        event = None
        if device.type == 'cuda':
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(device))
        self._open = (name, device, time.perf_counter(), event)

    def stop(self) -> None:
        assert self._open is not None
        name, device, t0, event = self._open
        self._cpu[name] = (time.perf_counter() - t0) * 1e3
        if event is not None:
            end = torch.cuda.Event(enable_timing=True)
            end.record(torch.cuda.current_stream(device))
            self._events[name] = (event, end)
        self._open = None

    def results(self) -> dict[str, float]:
        out = dict(self._cpu)
        for name, (start, end) in self._events.items():
            end.synchronize()  # already complete after the decode sync: costs nothing
            out[name] = float(start.elapsed_time(end))
        return out


class JanusVLNEngine:
    """The dual-memory JanusVLN engine (see the module docstring).

    Args:
        config: Engine configuration (``mode``, devices, dtype, memory sizes...).
        model: A loaded ``JanusVLNForNavigation`` (default: loaded from ``config.model_path``).
        tokenizer: Its tokenizer (required when ``model`` is given).

    Attributes:
        spatial_memory: The VGGT ring-buffer cache (``reset()``, ``len()``, ``capacity``,
            ``nbytes``).
        semantic_memory: :class:`FrameFeatureStore` (parity) or
            :class:`StreamingSemanticMemory` (streaming), same interface.
        last_selected: Frame indices in the last parity prompt (streaming: cached frame ids).
        last_decode: The last :class:`DecodeResult`.
    """

    def __init__(self, config: EngineConfig, model: Any = None, tokenizer: Any = None) -> None:
        self.config = config
        self.vggt_device = torch.device(config.resolved_vggt_device)
        self.llm_device = torch.device(config.resolved_llm_device)
        dtype = DTYPES[config.dtype]
        if model is None:
            if not config.model_path:
                raise ModelLoadError('model_path: required by the janusvln engine')
            try:
                model, tokenizer = load_checkpoint(config.model_path, self.llm_device, dtype,
                                                   vggt_device=self.vggt_device)
            except (ValueError, OSError) as exc:
                raise ModelLoadError(f'cannot load {config.model_path!r}: {exc}') from exc
        elif tokenizer is None:
            raise ModelLoadError('a tokenizer is required when a model is given')
        self.model = model
        self.tokenizer = tokenizer
        self._place_model()
        self.prompt = PromptBuilder(tokenizer, config.prompt_template or None)
        self.decoder = ConstrainedActionDecoder(self.prompt.decode, self.prompt.eos_token_ids,
                                                max_new_tokens=config.max_new_tokens, strip=True)
        self.spatial_memory = self._new_spatial_memory()
        if config.mode == 'parity':
            self.semantic_memory: FrameFeatureStore | StreamingSemanticMemory = (
                FrameFeatureStore(config.num_history))
        else:
            self.semantic_memory = StreamingSemanticMemory(
                config.semantic_anchor_frames, config.semantic_window_frames,
                config=self._llm_config())
        self._instruction: str | None = None
        self._step = 0
        self._last_logits: torch.Tensor | None = None
        self.last_selected: list[int] = []
        self.last_decode: DecodeResult | None = None
        logger.info('JanusVLN engine ready: mode=%s vggt=%s llm=%s dtype=%s', config.mode,
                    self.vggt_device, self.llm_device, config.dtype)

    # ------------------------------------------------------------------ model plumbing
    def _place_model(self) -> None:
        """Put Qwen on ``llm_device`` and VGGT + merger on ``vggt_device``."""
        self.model.place(self.llm_device, self.vggt_device)

    def _llm_config(self) -> Any:
        return self.model.qwen.config

    def _new_spatial_memory(self) -> Any:
        return self.model.new_spatial_cache('ring', self.config.spatial_anchor_frames,
                                            self.config.spatial_window_frames)

    @property
    def last_logits(self) -> torch.Tensor | None:
        """``(vocab,)`` float32 CPU logits of the first generated token of the last step."""
        if self._last_logits is None:
            return None
        return self._last_logits.detach().float().cpu()

    # ------------------------------------------------------------------ episode API
    def reset(self, instruction: str) -> None:
        """Start an episode: clear both memories (the next frame is VGGT's first frame)."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise InputError(f'instruction: expected a non-empty string, got {instruction!r}')
        self.spatial_memory.reset()
        self.semantic_memory.reset()
        self._instruction = instruction.strip()
        self._step = 0
        self._last_logits = None
        self.last_selected = []
        self.last_decode = None

    def step(self, frame: np.ndarray) -> StepResult:
        """Run one step on an RGB frame ``(H, W, 3)`` uint8 and return the next action.

        Raises:
            InputError: The frame is not an ``(H, W, 3)`` uint8 array (memories untouched).
            InferenceError: No episode was started, or the model failed; the memories may then
                be inconsistent: call ``reset`` before the next step.
        """
        if self._instruction is None:
            raise InferenceError('step() before reset(instruction)')
        t0 = time.perf_counter()
        try:
            prep = prepare_frame(frame, self.model.config.image_width)
        except (ValueError, TypeError) as exc:
            raise InputError(f'frame: {exc}') from exc
        try:
            return self._step_impl(prep, t0)
        except (InputError, InferenceError):
            raise
        except Exception as exc:
            raise InferenceError(f'step {self._step} failed: {exc}') from exc

    def close(self) -> None:
        """Drop the model and the memories; empty the CUDA cache."""
        self.model = None
        self.spatial_memory = None
        self.semantic_memory = None
        self._last_logits = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ one step
    @torch.inference_mode()
    def _step_impl(self, prep: Any, t0: float) -> StepResult:
        timer = _StageTimer()
        timer.record('preprocess', (time.perf_counter() - t0) * 1e3)

        timer.start('vggt', self.vggt_device)
        image = prep.vggt_image.to(self.vggt_device, non_blocking=True)
        spatial = self.model.spatial_embeds(image, self.spatial_memory)
        spatial = spatial.to(self.llm_device, non_blocking=True)
        timer.stop()

        timer.start('vit', self.llm_device)
        pixels = prep.pixel_values.to(self.llm_device, non_blocking=True)
        grid = prep.grid_thw.to(self.llm_device)
        vit = self.model.vit_embeds(pixels, grid)[0]
        timer.stop()

        if self.config.mode == 'parity':
            result = self._parity(vit, spatial, prep.grid_thw, timer)
        else:
            result = self._streaming(vit, spatial, prep.grid_thw, timer)
        latencies = timer.results()
        latencies['total'] = (time.perf_counter() - t0) * 1e3
        self.last_decode = result
        step = self._step
        self._step += 1
        spatial_mem, semantic_mem = self.spatial_memory, self.semantic_memory
        return StepResult(
            action=result.action, raw_output=result.text, step=step, latencies_ms=latencies,
            spatial_memory_frames=len(spatial_mem), spatial_memory_capacity=spatial_mem.capacity,
            semantic_memory_frames=len(semantic_mem),
            semantic_memory_capacity=semantic_mem.capacity,
            memory_nbytes=int(spatial_mem.nbytes + semantic_mem.nbytes))

    def _embed(self, ids: torch.Tensor, images: list[torch.Tensor] | None) -> torch.Tensor:
        """Embeddings ``(1, L, hidden)`` of ``ids`` with the image placeholders filled."""
        ids = ids.view(1, -1)
        if not images:
            return self.model.text_embeds(ids)
        return self.model.scatter_images(ids, images)

    def _forward(self, embeds: torch.Tensor, positions: torch.Tensor,
                 past: Any) -> tuple[torch.Tensor, Any]:
        logits, past = self.model.llm_forward(embeds, positions.to(self.llm_device),
                                              past_key_values=past, logits_to_keep=1)
        return logits.reshape(-1, logits.shape[-1])[-1], past

    def _decode(self, first_logits: torch.Tensor, past: Any, next_pos: int) -> DecodeResult:
        self._last_logits = first_logits
        state = {'pos': next_pos}

        def feed(token: int) -> torch.Tensor:
            ids = torch.tensor([[token]], dtype=torch.long)
            pos, state['pos'] = text_positions(state['pos'], 1)
            logits, _ = self._forward(self._embed(ids, None), pos, past)
            return logits

        return self.decoder.decode(first_logits, feed)

    def _parity(self, vit: torch.Tensor, spatial: torch.Tensor, grid: torch.Tensor,
                timer: _StageTimer) -> DecodeResult:
        store = self.semantic_memory
        assert isinstance(store, FrameFeatureStore)
        timer.start('prefill', self.llm_device)
        store.add(vit, grid.view(-1, 3)[0].cpu())
        selected = sample_history(store.frames_seen, self.config.num_history)
        self.last_selected = selected
        feats = [store.get(i) for i in selected]
        ids = self.prompt.parity_ids(self._instruction, [f.shape[0] for f in feats])
        grids = torch.stack([store.grid(i) for i in selected])
        embeds = self._embed(ids, self.model.fuse(feats, spatial))
        positions, next_pos = chunk_positions(ids, self.model.image_token_id, grids, 0,
                                              self.model.spatial_merge_size)
        logits, past = self._forward(embeds, positions, None)
        timer.stop()
        timer.start('decode', self.llm_device)
        result = self._decode(logits, past, next_pos)
        timer.stop()
        return result

    def _streaming(self, vit: torch.Tensor, spatial: torch.Tensor, grid: torch.Tensor,
                   timer: _StageTimer) -> DecodeResult:
        mem = self.semantic_memory
        assert isinstance(mem, StreamingSemanticMemory)
        timer.start('prefill', self.llm_device)
        if not mem.has_prefix:
            ids = self.prompt.prefix_ids(self._instruction)
            positions, end = text_positions(mem.next_pos, ids.numel())
            self._forward(self._embed(ids, None), positions, mem.hf_cache)
            mem.record('prefix', ids.numel(), end)
        ids = self.prompt.frame_ids(vit.shape[0])
        positions, end = chunk_positions(ids, self.model.image_token_id, grid.view(-1, 3).cpu(),
                                         mem.next_pos, self.model.spatial_merge_size)
        self._forward(self._embed(ids, self.model.fuse([vit], spatial)), positions,
                      mem.hf_cache)
        mem.record('frame', ids.numel(), end, frame_id=self._step)
        mem.evict()
        self.last_selected = mem.kv.frame_ids()
        mark = mem.mark()
        ids = self.prompt.query_ids()
        positions, end = text_positions(mem.next_pos, ids.numel())
        logits, _ = self._forward(self._embed(ids, None), positions, mem.hf_cache)
        mem.record('query', ids.numel(), end, advance=False)
        timer.stop()
        timer.start('decode', self.llm_device)
        result = self._decode(logits, mem.hf_cache, end)
        mem.rollback(mark)
        timer.stop()
        return result
