"""The JanusVLN engine: dual implicit memory, incremental steps, constrained action decoding.

One persistent object per node (or simulator, or replay tool), driven by ONE worker thread:
``reset(instruction)`` starts an episode, ``step(frame)`` consumes one RGB frame and returns
the next action. It never imports rclpy.

Per step:

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
     ``semantic_anchor_frames`` frames and the last ``semantic_window_frames`` frames; the new
     frame (fused with its *own* 3-D tokens times λ) and the action query are prefilled in ONE
     forward (the prefix too, on the first step), at their original M-RoPE positions from a
     global counter; when the window is full, the query rows of that forward's attention mask
     hide the frame this step evicts (exactly the old order "frame, evict, query"), which is then
     evicted physically; the query and the answer are cropped after decoding, so they never
     accumulate (the next frame reuses the query's positions).

   Decoding is :class:`~janusvln_ros.core.decoding.ConstrainedActionDecoder`: the same action
   as "greedy generate, then exact-match parse, else STOP", with the rest of a started action
   word verified speculatively in one forward.

LLM forwards per step (a trained model's one-word answer): 1 prefill + 1 decode for ``STOP``,
``MOVE_FORWARD`` and ``TURN_LEFT``, + 2 for ``TURN_RIGHT``; a non-action first token: the
prefill only. Both modes.

Host synchronisation: one for the first greedy token, one per decode forward (the argmax of
its rows); the CPU-side token ids give the image-pad positions, the ViT grid stays on the CPU,
and CPU->GPU copies are ``non_blocking`` (stage times on CUDA come from CUDA events read after
the last sync). Fast paths (``EngineConfig.fast_paths``, CUDA only) are installed on the model
when the engine is built (:func:`~janusvln_ros.model.fast_paths.apply_fast_paths`); their SDPA
backend preference is applied around each step only and restored after it
(:func:`~janusvln_ros.model.fast_paths.sdpa_scope`).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np
import torch

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.decoding import ConstrainedActionDecoder, DecodeResult
from janusvln_ros.core.errors import InferenceError, InputError, ModelLoadError
from janusvln_ros.core.history import sample_history
from janusvln_ros.core.models import resolve_model_path
from janusvln_ros.core.semantic_memory import FrameFeatureStore, StreamingSemanticMemory
from janusvln_ros.core.types import StepResult
from janusvln_ros.model.checkpoint import load_checkpoint
from janusvln_ros.model.fast_paths import apply_fast_paths, sdpa_scope
from janusvln_ros.model.janusvln import truncate_cache
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
        last_decode: The last :class:`DecodeResult` (``forward_passes``: decode forwards).
        fast_paths: Names of the CUDA fast paths in effect (``[]`` on CPU).
    """

    def __init__(self, config: EngineConfig, model: Any = None, tokenizer: Any = None) -> None:
        self.config = config
        self.vggt_device = torch.device(config.resolved_vggt_device)
        self.llm_device = torch.device(config.resolved_llm_device)
        dtype = DTYPES[config.dtype]
        if model is None:
            if not config.model_path:
                raise ModelLoadError('model_path: required by the janusvln engine')
            path = resolve_model_path(config.model_path)
            logger.info('loading model %s%s', config.model_path,
                        f' ({path})' if path != config.model_path else '')
            try:
                model, tokenizer = load_checkpoint(path, self.llm_device, dtype,
                                                   vggt_device=self.vggt_device)
            except (ValueError, OSError) as exc:
                raise ModelLoadError(f'cannot load {config.model_path!r}: {exc}') from exc
        elif tokenizer is None:
            raise ModelLoadError('a tokenizer is required when a model is given')
        self.model = model
        self.tokenizer = tokenizer
        self.fast_paths: list[str] = []
        self._place_model()
        self.prompt = PromptBuilder(tokenizer, config.prompt_template or None)
        self.decoder = ConstrainedActionDecoder(self.prompt.decode, self.prompt.eos_token_ids,
                                                max_new_tokens=config.max_new_tokens, strip=True,
                                                action_token_ids=self.prompt.action_token_ids())
        self._masks = bool(self.model.supports_attention_mask())
        self.spatial_memory = self._new_spatial_memory()
        if config.mode == 'parity':
            self.semantic_memory: FrameFeatureStore | StreamingSemanticMemory = (
                FrameFeatureStore(config.num_history, offload=True))
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
        """Put Qwen on ``llm_device`` and VGGT + merger on ``vggt_device``; fast paths."""
        self.model.place(self.llm_device, self.vggt_device)
        if self.config.fast_paths:
            self.fast_paths = apply_fast_paths(self.model, self.llm_device, self.vggt_device)

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
        self._check_vocabulary(instruction.strip())
        self.spatial_memory.reset()
        self.semantic_memory.reset()
        self._instruction = instruction.strip()
        self._step = 0
        self._last_logits = None
        self.last_selected = []
        self.last_decode = None

    def _check_vocabulary(self, instruction: str) -> None:
        """Refuse text a trimmed-vocabulary checkpoint cannot read (memories untouched).

        Raises:
            InputError: Naming the words whose tokens are outside the checkpoint's vocabulary.
        """
        token_map = getattr(self.model, 'token_map', None)
        if token_map is None:
            return
        ids = self.tokenizer.encode(instruction, add_special_tokens=False)
        unknown = set(token_map.unknown(ids))
        if not unknown:
            return
        words = [w for w in instruction.split()
                 if set(self.tokenizer.encode(' ' + w, add_special_tokens=False)) & unknown
                 or set(self.tokenizer.encode(w, add_special_tokens=False)) & unknown]
        shown = ', '.join(repr(w) for w in words[:8]) or repr(instruction)
        raise InputError(f'instruction: this model was trained on a fixed vocabulary and cannot '
                         f'read {shown}; use the words of its training instructions (rooms, '
                         'objects, colours, turns)')

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
        device = self.llm_device if self.llm_device.type == 'cuda' else self.vggt_device
        try:
            with sdpa_scope(self.fast_paths, device):
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
        vit = self.model.vit_embeds(pixels, prep.grid_thw)[0]  # CPU grid: no host sync
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
            memory_nbytes=int(spatial_mem.nbytes + semantic_mem.nbytes), parsed=result.accepted)

    def _embed(self, ids: torch.Tensor, images: list[torch.Tensor] | None) -> torch.Tensor:
        """Embeddings ``(1, L, hidden)`` of ``ids`` with the image placeholders filled."""
        ids = ids.view(1, -1)
        if not images:
            return self.model.text_embeds(ids)
        return self.model.scatter_images(ids, images)

    def _forward(self, embeds: torch.Tensor, positions: torch.Tensor, past: Any,
                 keep: int = 1, allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """One LLM forward; returns the last ``keep`` rows of logits ``(keep, vocab)``."""
        logits, past = self.model.llm_forward(embeds, positions, past_key_values=past,
                                              logits_to_keep=keep, allowed=allowed)
        return logits.reshape(-1, logits.shape[-1])[-keep:], past

    def _decode(self, first_logits: torch.Tensor, past: Any, next_pos: int) -> DecodeResult:
        """Constrained greedy decoding after the prefill (the answer is appended to ``past``)."""
        self._last_logits = first_logits.reshape(-1, first_logits.shape[-1])[-1]
        state = {'pos': next_pos}

        def feed(tokens: Sequence[int]) -> torch.Tensor:
            ids = torch.tensor([list(tokens)], dtype=torch.long)
            pos, state['pos'] = text_positions(state['pos'], len(tokens))
            logits, _ = self._forward(self._embed(ids, None), pos, past, keep=len(tokens))
            return logits

        def discard(n: int) -> None:
            truncate_cache(past, int(past.get_seq_length()) - n)
            state['pos'] -= n

        return self.decoder.decode(first_logits, feed=feed, discard=discard)

    def _parity(self, vit: torch.Tensor, spatial: torch.Tensor, grid: torch.Tensor,
                timer: _StageTimer) -> DecodeResult:
        store = self.semantic_memory
        assert isinstance(store, FrameFeatureStore)
        timer.start('prefill', self.llm_device)
        store.add(vit, grid.view(-1, 3)[0].cpu())
        selected = sample_history(store.frames_seen, self.config.num_history)
        self.last_selected = selected
        feats = [store.get(i, self.llm_device) for i in selected]
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

    def _query_mask(self, past_len: int, new_len: int, query_start: int,
                    blocked: list[tuple[int, int]]) -> torch.Tensor:
        """The ``(new, past + new)`` bool attention mask of the one-forward streaming prefill.

        Causal, except that the tokens from ``query_start`` on (the query) do not see the
        cached ``blocked`` ranges (the frame this step evicts), as if it were already evicted.
        """
        allowed = torch.ones(new_len, past_len + new_len, dtype=torch.bool,
                             device=self.llm_device)
        allowed[:, past_len:] = torch.ones(new_len, new_len, dtype=torch.bool,
                                           device=self.llm_device).tril()
        for start, end in blocked:
            allowed[query_start:, start:end] = False
        return allowed

    def _streaming(self, vit: torch.Tensor, spatial: torch.Tensor, grid: torch.Tensor,
                   timer: _StageTimer) -> DecodeResult:
        mem = self.semantic_memory
        assert isinstance(mem, StreamingSemanticMemory)
        timer.start('prefill', self.llm_device)
        image_grid = grid.view(-1, 3).cpu()
        fused = self.model.fuse([vit], spatial)
        blocked = mem.evicted_by_next_frame()
        if not self._masks:
            return self._streaming_two_forwards(fused, image_grid, timer)
        # ONE forward: [prefix on the first step] + the new frame + the query
        chunks: list[tuple[str, torch.Tensor, torch.Tensor, int]] = []
        pos = mem.next_pos
        if not mem.has_prefix:
            ids = self.prompt.prefix_ids(self._instruction)
            positions, end = text_positions(pos, ids.numel())
            chunks.append(('prefix', ids, positions, end))
            pos = end
        ids = self.prompt.frame_ids(vit.shape[0])
        positions, end = chunk_positions(ids, self.model.image_token_id, image_grid, pos,
                                         self.model.spatial_merge_size)
        chunks.append(('frame', ids, positions, end))
        ids = self.prompt.query_ids()
        positions, query_end = text_positions(end, ids.numel())
        chunks.append(('query', ids, positions, query_end))
        all_ids = torch.cat([c[1] for c in chunks])
        all_pos = torch.cat([c[2] for c in chunks], dim=-1)
        allowed = None
        if blocked:
            past_len = mem.kv.seq_length
            allowed = self._query_mask(past_len, all_ids.numel(),
                                       all_ids.numel() - chunks[-1][1].numel(), blocked)
        logits, _ = self._forward(self._embed(all_ids, fused), all_pos, mem.hf_cache,
                                  allowed=allowed)
        mem.record_many([(kind, ids.numel(), end, self._step if kind == 'frame' else -1,
                          kind != 'query') for kind, ids, _, end in chunks])
        mem.evict()  # the query's keys were computed without the evicted frame (mask)
        mark = mem.mark() - 1  # the query stays; crop it and the answer after decoding
        self.last_selected = mem.kv.frame_ids()
        timer.stop()
        timer.start('decode', self.llm_device)
        result = self._decode(logits, mem.hf_cache, query_end)
        mem.rollback(mark)
        timer.stop()
        return result

    def _streaming_two_forwards(self, fused: list[torch.Tensor], image_grid: torch.Tensor,
                                timer: _StageTimer) -> DecodeResult:
        """Frame forward, evict, query forward (the path before the one-forward prefill).

        Used for attention backends without custom masks, and as the reference of the
        one-forward path in the tests.
        """
        mem = self.semantic_memory
        assert isinstance(mem, StreamingSemanticMemory)
        if not mem.has_prefix:
            ids = self.prompt.prefix_ids(self._instruction)
            positions, end = text_positions(mem.next_pos, ids.numel())
            self._forward(self._embed(ids, None), positions, mem.hf_cache)
            mem.record('prefix', ids.numel(), end)
        ids = self.prompt.frame_ids(fused[0].shape[0])
        positions, end = chunk_positions(ids, self.model.image_token_id, image_grid,
                                         mem.next_pos, self.model.spatial_merge_size)
        self._forward(self._embed(ids, fused), positions, mem.hf_cache)
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
