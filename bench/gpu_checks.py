"""Real-size checks of the GPU benchmark: attention backends, ViT paths, fast paths, agreement.

Each check compares a fast path with the plain one on the same inputs (error and cosine against
the reference, time per call) or counts host synchronisations; :func:`agreement` compares the
first-token logits of two runs (top-1 argmax agreement and cosine), the model's own unforced
logits even when the decode was forced.
"""

from __future__ import annotations

import time
from typing import Any, Callable
import warnings

from bench.gpu_memory import empty_cache, sync
from bench.gpu_report import percentile
import numpy as np
import torch

from janusvln_ros.model.janusvln import JanusVLNForNavigation


def count_syncs(fn: Callable[[], Any]) -> tuple[Any, int, list[str]]:
    """Run ``fn`` with CUDA sync debug mode on; return (result, syncs, first messages)."""
    if not torch.cuda.is_available():
        return fn(), -1, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            result = fn()
        finally:
            torch.cuda.set_sync_debug_mode('default')
    msgs = [str(w.message).split('\n')[0][:160] for w in caught
            if 'synchroniz' in str(w.message).lower()]
    return result, len(msgs), msgs[:12]


def attention_backend_check(model: JanusVLNForNavigation, device: torch.device,
                            reps: int = 5) -> dict[str, Any]:
    """VGGT global attention (ring-buffer view, full window) per backend: time and agreement."""
    from torch.nn import functional as F

    from janusvln_ros.model.fast_attention import sdpa_preference
    agg = model.vggt.aggregator
    heads, hd = agg.cfg.num_heads, agg.cfg.head_dim
    tokens, slots, layers = 1615, 57, model.config.num_vggt_layers
    dtype = model.vggt_dtype
    store = torch.randn(2, 1, heads, slots, tokens, hd, device=device, dtype=dtype)
    q = torch.randn(1, heads, tokens, hd, device=device, dtype=dtype)
    keys, values = store[0].flatten(2, 3), store[1].flatten(2, 3)
    ref = F.scaled_dot_product_attention(q.double(), keys.double(), values.double()).float()
    out: dict[str, Any] = {'shape': f'q (1,{heads},{tokens},{hd}) vs kv {slots}x{tokens}'}
    for pref in ('flash', 'cudnn', 'efficient'):
        with sdpa_preference(pref, device):
            res = F.scaled_dot_product_attention(q, keys, values)
            torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            for _ in range(reps * layers):
                F.scaled_dot_product_attention(q, keys, values)
            torch.cuda.synchronize(device)
            ms = (time.perf_counter() - t0) * 1e3 / reps
        err = ((res.float() - ref).norm() / ref.norm()).item()
        out[pref] = {'ms_per_step_all_layers': ms, 'rel_err_vs_fp64': err}
    del store, keys, values, q, ref
    torch.cuda.empty_cache()
    return out


def vit_check(model: JanusVLNForNavigation, frame: np.ndarray, reps: int = 10) -> dict[str, Any]:
    """One-frame ViT time on the sdpa path vs the varlen path, and their agreement."""
    from janusvln_ros.model import fast_attention
    from janusvln_ros.model.preprocess import prepare_frame
    prep = prepare_frame(frame, model.config.image_width)
    visual = model.qwen.model.visual
    original = fast_attention.vision_attention_name(model.qwen)
    res: dict[str, Any] = {}
    outs = {}
    for name in ('sdpa', 'varlen'):
        if name == 'sdpa':
            for blk in visual.blocks:
                blk.attn.config._attn_implementation = 'sdpa'
            visual.config._attn_implementation = 'sdpa'
        else:
            fast_attention.enable_varlen_vision_attention(model.qwen)
        with torch.inference_mode():
            outs[name] = model.vit_embeds(prep.pixel_values, prep.grid_thw)[0].float()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                model.vit_embeds(prep.pixel_values, prep.grid_thw)
            torch.cuda.synchronize()
        res[name] = {'ms': (time.perf_counter() - t0) * 1e3 / reps}
    a, b = outs['sdpa'], outs['varlen']
    res['rel_err_varlen_vs_sdpa'] = ((a - b).norm() / a.norm()).item()
    res['cosine'] = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()
    if original != fast_attention.VARLEN_VISION_ATTENTION:
        for blk in visual.blocks:
            blk.attn.config._attn_implementation = original
        visual.config._attn_implementation = original
    return res


def _cmp(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    a, b = a.float().flatten(), b.float().flatten()
    return {'rel_err': ((a - b).norm() / b.norm()).item(),
            'cosine': torch.nn.functional.cosine_similarity(a, b, dim=0).item(),
            'max_abs': (a - b).abs().max().item()}


def fast_path_check(model: JanusVLNForNavigation, frames: list[np.ndarray],
                    n_frames: int = 60) -> dict[str, Any]:
    """Real-size agreement and speed of the fast paths against the plain ones (same inputs)."""
    from janusvln_ros.model.cuda_graphs import FastVisionEncoder, GraphedSpatialEncoder
    from janusvln_ros.model.preprocess import prepare_frame
    out: dict[str, Any] = {}
    device = model.llm_device
    with torch.inference_mode():
        # ViT: eager vs captured graph replay
        prep = prepare_frame(frames[1], model.config.image_width)
        eager_vit = type(model).vit_embeds(model, prep.pixel_values, prep.grid_thw)[0]
        enc = FastVisionEncoder(model)
        outs = [enc(prep.pixel_values, prep.grid_thw)[0] for _ in range(4)]
        out['vit_graph_vs_eager'] = _cmp(outs[-1], eager_vit)
        out['vit_graph_replays'] = enc.replays
        sync(device)
        t0 = time.perf_counter()
        for _ in range(10):
            enc(prep.pixel_values, prep.grid_thw)
        sync(device)
        out['vit_graph_ms'] = (time.perf_counter() - t0) * 100
        # VGGT: eager vs graphed over n_frames (two full ring buffers)
        graphed = GraphedSpatialEncoder(model)
        c_eager = model.new_spatial_cache('ring', 8, 48)
        c_graph = model.new_spatial_cache('ring', 8, 48)
        worst: dict[str, float] = {}
        eager_ms, graph_ms = [], []
        for i in range(n_frames):
            img = prepare_frame(frames[i % len(frames)], model.config.image_width).vggt_image
            img = img.to(device)
            sync(device)
            t0 = time.perf_counter()
            a = type(model).spatial_embeds(model, img, c_eager)
            sync(device)
            t1 = time.perf_counter()
            b = graphed(img, c_graph)
            sync(device)
            eager_ms.append((t1 - t0) * 1e3)
            graph_ms.append((time.perf_counter() - t1) * 1e3)
            if i >= 56:
                res = _cmp(b, a)
                if res['rel_err'] >= worst.get('rel_err', -1.0):
                    worst = res
        out['vggt_graph_vs_eager_worst_frames_56plus'] = worst
        out['vggt_graph_replays'] = graphed.replays
        out['vggt_ms_last_frame'] = {'eager': eager_ms[-1], 'graph': graph_ms[-1]}
        del c_eager, c_graph, graphed
    empty_cache(device)
    return out


def agreement(a: dict[int, torch.Tensor], b: dict[int, torch.Tensor]) -> dict[str, Any]:
    """Top-1 agreement and cosine of first-token logits over the common steps."""
    common = sorted(set(a) & set(b))
    if not common:
        return {'n': 0}
    top1 = [int(a[s].argmax()) == int(b[s].argmax()) for s in common]
    cos = [torch.nn.functional.cosine_similarity(a[s].double(), b[s].double(), dim=0).item()
           for s in common]
    return {'n': len(common), 'steps': [common[0], common[-1]],
            'top1_agreement': sum(top1) / len(top1), 'cosine_p50': percentile(cos, 50),
            'cosine_min': min(cos)}
