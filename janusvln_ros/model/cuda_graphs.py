"""CUDA-graph replay of the two fixed-shape encoders of a step: the Qwen ViT and VGGT.

At batch 1 both encoders launch thousands of small kernels per frame (plus, for the ViT,
transformers' window bookkeeping), so on a fast GPU their host-side launch cost rivals their GPU
time. Both run on inputs of a fixed shape once the camera is fixed, so each is captured
once as a CUDA graph and replayed:

* :class:`FastVisionEncoder` replaces ``model.vit_embeds`` for single-image calls: the window
  bookkeeping of transformers (position ids, cumulative window lengths, their maxima: python
  loops and host syncs) is computed once per image grid and passed in precomputed; with the
  varlen vision attention (:mod:`janusvln_ros.model.fast_attention`) the whole tower is then
  free of host syncs and is captured on its second call for that grid.
* :class:`GraphedSpatialEncoder` replaces ``model.spatial_embeds`` once a
  :class:`~janusvln_ros.model.spatial_memory.RingBufferCache` holds a full window: every later
  frame runs the same kernels on the same buffers (the write slot is a device tensor), so the
  aggregator (23 layers), the 2x2 grouping and the merger are captured once and replayed.
  Frames before the window is full run eagerly (their shapes grow).

Replays compute exactly what the eager code computes (same kernels, same order). Any capture
failure logs a warning and falls back to the eager path for good. CPU tensors always take the
eager path. :func:`install_cuda_graphs` installs both on one model instance (instance attributes
shadowing the methods; ``del model.vit_embeds`` / ``del model.spatial_embeds`` undo it).
"""

from __future__ import annotations

import logging
from typing import Any
import weakref

import torch

from janusvln_ros.model.spatial_memory import RingBufferCache

logger = logging.getLogger(__name__)


class FastVisionEncoder:
    """Single-image ViT calls with precomputed window bookkeeping and CUDA-graph replay.

    Args:
        model: A ``JanusVLNForNavigation``.
        use_graphs: Capture and replay CUDA graphs (CUDA and varlen vision attention only).
    """

    def __init__(self, model: Any, use_graphs: bool = True) -> None:
        self.model = model
        self.enabled = True
        self.use_graphs = use_graphs
        self._eager = type(model).vit_embeds.__get__(model)
        self._plans: dict[tuple[int, ...], dict[str, Any]] = {}
        self.replays = 0

    @property
    def visual(self) -> Any:
        """The Qwen vision tower."""
        return self.model.qwen.model.visual

    def _plan(self, key: tuple[int, ...]) -> dict[str, Any]:
        from transformers.vision_utils import (get_max_seqlen, get_vision_attention_seqlens,
                                               get_vision_position_ids, get_vision_window_index)
        visual = self.visual
        grid = torch.tensor([key], dtype=torch.long, device=self.model.llm_device)
        cu, max_len = get_vision_attention_seqlens(grid, visual.config)
        window_index, cu_window = get_vision_window_index(
            grid, spatial_merge_size=visual.spatial_merge_size, window_size=visual.window_size,
            patch_size=visual.patch_size)
        pre = {'position_ids': get_vision_position_ids(grid, visual.spatial_merge_size),
               'cu_seqlens': cu, 'window_index': window_index, 'cu_window_seqlens': cu_window}
        # transformers builds some of these on the CPU: move them once (no per-call copies)
        pre = {k: v.to(grid.device) for k, v in pre.items()}
        max_window = get_max_seqlen(cu_window, visual.config)
        if max_len is not None and max_window is not None:
            pre['max_seqlen'] = int(max_len)
            pre['max_window_seqlen'] = int(max_window)
        plan = {'grid': grid, 'pre': pre, 'calls': 0, 'graph': None}
        self._plans[key] = plan
        return plan

    def _run(self, pixels: torch.Tensor, plan: dict[str, Any]) -> torch.Tensor:
        out = self.visual(pixels, grid_thw=plan['grid'], **plan['pre'])
        return out.pooler_output.to(self.model.dtype)

    def _capture(self, pixels: torch.Tensor, plan: dict[str, Any]) -> None:
        from janusvln_ros.model.fast_attention import (VARLEN_VISION_ATTENTION,
                                                       vision_attention_name)
        if vision_attention_name(self.model.qwen) != VARLEN_VISION_ATTENTION:
            return  # the sdpa path syncs inside every window block: not capturable
        try:
            with torch.cuda.device(pixels.device):
                self._capture_on_device(pixels, plan)
        except Exception as exc:  # noqa: BLE001 - any capture failure means: stay eager
            logger.warning('ViT CUDA graph capture failed (%s); staying eager', exc)
            self.use_graphs = False

    def _capture_on_device(self, pixels: torch.Tensor, plan: dict[str, Any]) -> None:
        static_in = pixels.clone()
        stream = torch.cuda.Stream(pixels.device)
        stream.wait_stream(torch.cuda.current_stream(pixels.device))
        with torch.cuda.stream(stream):
            self._run(static_in, plan)  # warm-up on the capture stream
        torch.cuda.current_stream(pixels.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            static_out = self._run(static_in, plan)
        plan.update(graph=graph, static_in=static_in, static_out=static_out)
        logger.info('ViT CUDA graph captured for grid %s', tuple(plan['grid'][0].tolist()))

    def __call__(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> list[torch.Tensor]:
        """Same contract as ``JanusVLNForNavigation.vit_embeds``."""
        if not self.enabled or grid_thw.reshape(-1, 3).shape[0] != 1:
            return self._eager(pixel_values, grid_thw)
        key = tuple(int(v) for v in grid_thw.reshape(-1).tolist())
        plan = self._plans.get(key) or self._plan(key)
        pixels = pixel_values.to(self.model.llm_device, self.visual.patch_embed.proj.weight.dtype)
        if plan['graph'] is not None:
            plan['static_in'].copy_(pixels)
            plan['graph'].replay()
            self.replays += 1
            return [plan['static_out'].clone()]
        out = self._run(pixels, plan)
        plan['calls'] += 1
        if self.use_graphs and pixels.is_cuda and plan['calls'] >= 2:
            self._capture(pixels, plan)
        return [out]


class GraphedSpatialEncoder:
    """``spatial_embeds`` with CUDA-graph replay once the ring-buffer window is full.

    Args:
        model: A ``JanusVLNForNavigation``.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.enabled = True
        self._eager = type(model).spatial_embeds.__get__(model)
        # One plan per live cache (a dead cache takes its graph with it).
        self._plans: weakref.WeakKeyDictionary[Any, dict[str, Any]] = (
            weakref.WeakKeyDictionary())
        self._stream: torch.cuda.Stream | None = None
        self.replays = 0

    def __call__(self, vggt_image: torch.Tensor, cache: Any) -> torch.Tensor:
        """Same contract as ``JanusVLNForNavigation.spatial_embeds``."""
        device = self.model.vggt_device
        if (not self.enabled or device.type != 'cuda' or not isinstance(cache, RingBufferCache)
                or not cache.full_window or cache.storage is None):
            return self._eager(vggt_image, cache)
        image = vggt_image.to(device)
        key = (cache.storage.data_ptr(), tuple(image.shape))
        plan = self._plans.get(cache)
        if plan is None or plan['key'] != key:
            # First full-window frame: eager, on the stream the capture will use (lazy
            # per-stream library state is created outside the capture).
            if self._stream is None:
                self._stream = torch.cuda.Stream(device)
            current = torch.cuda.current_stream(device)
            self._stream.wait_stream(current)
            with torch.cuda.device(device), torch.cuda.stream(self._stream):
                out = self._eager(image, cache)
            current.wait_stream(self._stream)
            self._plans[cache] = {'graph': None, 'key': key}
            return out
        if plan['graph'] is None:
            return self._capture(image, cache, plan)
        cache.set_next_slot()
        plan['static_in'].copy_(image)
        plan['graph'].replay()
        cache.count_replayed_frame()
        self.replays += 1
        return plan['static_out'].clone()

    def _capture(self, image: torch.Tensor, cache: RingBufferCache,
                 plan: dict[str, Any]) -> torch.Tensor:
        seen = cache.frames_seen
        static_in = image.clone()
        cache.set_next_slot()
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.device(image.device), torch.cuda.graph(graph, stream=self._stream):
                static_out = self._eager(static_in, cache)  # python bookkeeping runs once
        except Exception as exc:  # noqa: BLE001 - any capture failure means: stay eager
            logger.warning('VGGT CUDA graph capture failed (%s); staying eager', exc)
            torch.cuda.synchronize(image.device)
            cache.abort_frame(seen)
            self.enabled = False
            return self._eager(image, cache)
        plan.update(graph=graph, static_in=static_in, static_out=static_out)
        graph.replay()  # the captured frame's GPU work
        self.replays += 1
        logger.info('VGGT CUDA graph captured (full window, %d slots)', cache.slots)
        return static_out.clone()


def install_cuda_graphs(model: Any, vit: bool = True, vggt: bool = True) -> dict[str, Any]:
    """Install :class:`FastVisionEncoder` and :class:`GraphedSpatialEncoder` on ``model``.

    Args:
        model: A ``JanusVLNForNavigation`` (on CUDA for graphs to be used).
        vit: Replace ``vit_embeds``.
        vggt: Replace ``spatial_embeds``.

    Returns:
        The installed objects by name (``'vit'``, ``'vggt'``).
    """
    installed: dict[str, Any] = {}
    if vit:
        installed['vit'] = model.vit_embeds = FastVisionEncoder(model)
    if vggt:
        installed['vggt'] = model.spatial_embeds = GraphedSpatialEncoder(model)
    return installed
