r"""Real-size GPU benchmark: reference step vs the parity and streaming engines (issue 11).

One process, one model object (random weights of the real shapes, bf16) shared by every engine,
run one engine after another over the same pseudo-random 640x480 frames; only one engine's
memories are alive at a time, so each engine's peak GPU memory is its own (weights included).

Per step it records the engine's stage times (``StepResult.latencies_ms``: vggt, vit, prefill,
decode), the wall time of ``engine.step`` (frame preprocessing included; the step ends with the
host reading the last greedy token), the LLM forwards, the allocated and peak GPU memory.

Decoding with random weights: the greedy text is junk, so the constrained decoder of the
JanusVLN engines exits after the first token (0 decode forwards), which would flatter the
decode stage. A trained model answers ``MOVE_FORWARD`` as 2 tokens + the EOS check; the engines'
decoder verifies ``MOVE`` + ``_FORWARD`` speculatively in ONE decode forward after the prefill
(``decode fwd`` column). ``--decode forced`` (default) makes the engines' own decoder follow
exactly that path: the logits it reads get a large bonus on the next token of
``MOVE_FORWARD<|im_end|>``, nothing else changes (same forwards, same host syncs). Every
``--free-every``-th step runs unforced, to report the junk-text figure too. The reference step
generates like the released code (``max_new_tokens`` 24; random weights rarely hit EOS), and
every ``--ref-short-every``-th step runs with ``max_new_tokens`` 4 (a one-word answer's budget).

Fast paths (``--fast``, engines only unless ``--fast-reference``): ``vitgraph`` / ``vggtgraph``
replay the encoders as CUDA graphs (:mod:`janusvln_ros.model.cuda_graphs`). Model-level kernel
choices (varlen ViT attention, the VGGT SDPA backend) apply to every engine, the reference
included.

Usage (GPU machine, repo root)::

    PYTHONPATH=. python3 bench/engine_gpu.py --engines reference,parity,streaming \
        --steps 501 --ref-steps 210 --tokenizer .dev/gpu/tokenizer --out bench/results

Writes ``<tag>.json`` (all per-step data + summaries) and ``<tag>.md`` (tables).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import pathlib
import platform
import statistics
import sys
import time
from typing import Any, Callable
import warnings

import numpy as np
import torch

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.janusvln import JanusVLNForNavigation

logger = logging.getLogger('bench.engine_gpu')

INSTRUCTION = ('Walk out of the bedroom and turn left, go down the hallway past the painting, '
               'then enter the kitchen and stop next to the round wooden table by the window.')
STAGES = ('vggt', 'vit', 'prefill', 'decode', 'total')
GROWTH_STEPS = (10, 60, 200, 500)
GIB = 2 ** 30


# ---------------------------------------------------------------------------------- helpers
def _cuda(device: torch.device) -> bool:
    return device.type == 'cuda'


def sync(device: torch.device) -> None:
    """Synchronise a CUDA device (no-op on CPU)."""
    if _cuda(device):
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    """Reset the CUDA peak-memory counter (no-op on CPU)."""
    if _cuda(device):
        torch.cuda.reset_peak_memory_stats(device)


def allocated(device: torch.device) -> int:
    """Bytes allocated by the caching allocator (0 on CPU)."""
    return torch.cuda.memory_allocated(device) if _cuda(device) else 0


def peak_allocated(device: torch.device) -> int:
    """Peak bytes allocated since the last reset (0 on CPU)."""
    return torch.cuda.max_memory_allocated(device) if _cuda(device) else 0


def empty_cache(device: torch.device) -> None:
    """Return cached blocks to the driver (no-op on CPU)."""
    if _cuda(device):
        torch.cuda.empty_cache()


def percentile(values: list[float], q: float) -> float:
    """Return the linear-interpolated percentile ``q`` (0..100) of ``values``."""
    data = sorted(values)
    if not data:
        return float('nan')
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(rows: list[dict[str, Any]], keys: tuple[str, ...] = STAGES) -> dict[str, Any]:
    """p50/p95/mean of each stage over ``rows``."""
    out: dict[str, Any] = {'n': len(rows)}
    for key in keys + ('preprocess', 'engine_total'):
        vals = [r['ms'][key] for r in rows if key in r['ms']]
        if vals:
            out[key] = {'p50': percentile(vals, 50), 'p95': percentile(vals, 95),
                        'mean': statistics.fmean(vals)}
    for key in ('llm_forwards', 'decode_forwards'):
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            out[key] = {'p50': percentile(vals, 50), 'mean': statistics.fmean(vals)}
    return out


class ForwardCounter:
    """Counts ``model.llm_forward`` calls (instance attribute shadowing the method)."""

    def __init__(self, model: JanusVLNForNavigation) -> None:
        self.count = 0
        self._inner = model.llm_forward

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return self._inner(*args, **kwargs)

        model.llm_forward = counted  # type: ignore[method-assign]


class ForcedDecoder:
    """Wraps the engine's decoder so that greedy decoding follows ``forced`` token ids.

    The wrapped decoder does all its own work (argmax, text checks, forwards, speculative
    verification of the rest of a word); only the logits it reads get ``+bonus`` at the forced
    token of their position: row ``j`` of a ``feed(ids)`` call predicts answer token
    ``cached + j + 1``, where ``cached`` counts the answer tokens in the cache (fed minus
    discarded). ``enabled`` switches it per step.
    """

    def __init__(self, inner: Any, forced: list[int], bonus: float = 1e4) -> None:
        self.inner = inner
        self.forced = list(forced)
        self.bonus = bonus
        self.enabled = True

    def _force(self, logits: torch.Tensor, index: int) -> torch.Tensor:
        out = logits.clone()
        rows = out.view(-1, out.shape[-1])
        for j in range(rows.shape[0]):
            k = index + j - rows.shape[0] + 1  # the answer index the row predicts
            if 0 <= k < len(self.forced):
                rows[j, self.forced[k]] += self.bonus
        return out

    def decode(self, first_logits: torch.Tensor,
               step: Callable[[int], torch.Tensor] | None = None,
               feed: Callable[[Any], torch.Tensor] | None = None,
               discard: Callable[[int], None] | None = None) -> Any:
        """Same as the wrapped decoder's ``decode``, on forced logits when enabled."""
        if not self.enabled:
            return self.inner.decode(first_logits, step=step, feed=feed, discard=discard)
        state = {'cached': 0}

        def forced_step(token: int) -> torch.Tensor:
            assert step is not None
            state['cached'] += 1
            return self._force(step(token).reshape(1, -1), state['cached'])

        def forced_feed(ids: Any) -> torch.Tensor:
            assert feed is not None
            state['cached'] += len(ids)
            return self._force(feed(ids), state['cached'])

        def forced_discard(n: int) -> None:
            assert discard is not None
            state['cached'] -= n
            discard(n)

        first = self._force(first_logits.reshape(-1, first_logits.shape[-1])[-1:], 0)
        return self.inner.decode(first, step=forced_step if step is not None else None,
                                 feed=forced_feed if feed is not None else None,
                                 discard=forced_discard if discard is not None else None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


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


def make_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` random 640x480 RGB uint8 frames (fixed seed), blocky so that they look like images."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        base = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
        big = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
        noise = rng.integers(0, 32, big.shape, dtype=np.uint8)
        frames.append(np.ascontiguousarray(big // 2 + noise))
    return frames


# ---------------------------------------------------------------------------------- engines
def build_engine(kind: str, model: JanusVLNForNavigation, tokenizer: Any,
                 cfg: EngineConfig) -> Any:
    """A reference/parity/streaming engine over the shared model."""
    if kind == 'reference':
        from janusvln_ros.core.reference import ReferenceEngine
        return ReferenceEngine(model, tokenizer, cfg)
    from janusvln_ros.core.engine import JanusVLNEngine
    return JanusVLNEngine(dataclasses.replace(cfg, mode=kind), model=model, tokenizer=tokenizer)


def forced_ids(engine: Any) -> list[int]:
    """``MOVE_FORWARD`` tokens then ``<|im_end|>``."""
    words = engine.prompt.action_token_ids()
    return list(words['MOVE_FORWARD']) + [engine.prompt.eos_token_ids[0]]


def _close_reference(engine: Any) -> None:
    """Free the reference engine's cache without touching the shared model."""
    engine.cache.reset()
    engine.frames = []


def run_engine(kind: str, model: JanusVLNForNavigation, tokenizer: Any, cfg: EngineConfig,
               frames: list[np.ndarray], steps: int, counter: ForwardCounter,
               args: argparse.Namespace, keep_logits: range | None = None,
               label: str | None = None) -> dict[str, Any]:
    """Run one episode of ``steps`` steps (after a 3-step warm-up episode) and collect data."""
    label = label or kind
    device = torch.device(cfg.device)
    engine = build_engine(kind, model, tokenizer, cfg)
    forced = None
    if kind != 'reference':
        forced = ForcedDecoder(engine.decoder, forced_ids(engine))
        engine.decoder = forced
    base_cfg = getattr(engine, 'config', cfg)
    short_cfg = dataclasses.replace(base_cfg, max_new_tokens=4)

    engine.reset(INSTRUCTION)
    for i in range(3):  # warm-up (handles, kernels, allocator, ViT graph)
        engine.step(frames[i % len(frames)])
    sync(device)
    engine.reset(INSTRUCTION)
    empty_cache(device)
    reset_peak(device)
    mem_start = allocated(device)

    rows: list[dict[str, Any]] = []
    logits: dict[int, torch.Tensor] = {}
    sync_report: dict[str, Any] = {}
    episode_peak = 0
    t_run = time.perf_counter()
    for step in range(steps):
        free = args.free_every > 0 and step % args.free_every == args.free_every - 1
        short = (kind == 'reference' and args.ref_short_every > 0
                 and step % args.ref_short_every == args.ref_short_every - 1)
        variant = 'main'
        if forced is not None:
            forced.enabled = args.decode == 'forced' and not free
            variant = 'forced' if forced.enabled else 'free'
        if kind == 'reference':
            engine.config = short_cfg if short else base_cfg
            variant = 'tokens4' if short else 'tokens24'
        frame = frames[step % len(frames)]
        reset_peak(device)
        before = counter.count
        if args.profile_step == step and kind != 'reference':
            from torch.profiler import profile, ProfilerActivity
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                                   if _cuda(device) else [])
            t0 = time.perf_counter()
            with profile(activities=activities) as prof:
                result = engine.step(frame)
            wall = (time.perf_counter() - t0) * 1e3
            sort = 'cuda_time_total' if _cuda(device) else 'cpu_time_total'
            table = prof.key_averages().table(sort_by=sort, row_limit=45,
                                              max_name_column_width=70)
            path = pathlib.Path(args.out) / f'{args.tag}_profile_{label.replace(" ", "_")}.txt'
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f'{label} step {step} (profiled wall {wall:.1f} ms)\n{table}\n')
        elif args.sync_check_step == step:
            t0 = time.perf_counter()
            result, n_sync, msgs = count_syncs(functools.partial(engine.step, frame))
            wall = (time.perf_counter() - t0) * 1e3
            sync_report = {'step': step, 'syncs': n_sync, 'first': msgs,
                           'llm_forwards': counter.count - before}
        else:
            t0 = time.perf_counter()
            result = engine.step(frame)
            wall = (time.perf_counter() - t0) * 1e3
        n_fwd = counter.count - before
        peak = peak_allocated(device)
        episode_peak = max(episode_peak, peak)
        ms = {k: float(v) for k, v in result.latencies_ms.items()}
        ms['engine_total'] = ms.get('total', wall)
        ms['total'] = wall
        decode_fwd = None
        if kind == 'reference':
            decode_fwd = n_fwd - 1
        elif getattr(engine, 'last_decode', None) is not None:
            decode_fwd = engine.last_decode.forward_passes
        instrumented = step in (args.profile_step, args.sync_check_step)
        rows.append({'step': step, 'variant': variant, 'ms': ms, 'llm_forwards': n_fwd,
                     'instrumented': instrumented, 'decode_forwards': decode_fwd,
                     'alloc_gib': allocated(device) / GIB,
                     'peak_gib': peak / GIB, 'spatial_frames': result.spatial_memory_frames,
                     'semantic_frames': result.semantic_memory_frames,
                     'action': result.action.name})
        if keep_logits is not None and step in keep_logits:
            last = engine.last_logits
            if last is not None:
                logits[step] = last.float().cpu().clone()
        if args.progress and step % args.progress == 0:
            logger.info('%s step %d: %.1f ms (%s) peak %.2f GiB', label, step, wall,
                        ' '.join(f'{k}={v:.1f}' for k, v in ms.items() if k in STAGES[:-1]),
                        peak / GIB)
        if args.time_limit and time.perf_counter() - t_run > args.time_limit:
            logger.warning('%s: stopping at step %d on the time limit', label, step)
            break
    run_s = time.perf_counter() - t_run
    reserved = torch.cuda.memory_reserved(device) if _cuda(device) else 0
    memory = getattr(engine, 'spatial_memory', None) or getattr(engine, 'cache', None)
    spatial_nbytes = int(getattr(memory, 'nbytes', 0) or 0)
    if kind == 'reference':
        _close_reference(engine)
    else:
        engine.close()
    del engine
    empty_cache(device)
    fill = cfg.spatial_anchor_frames + cfg.spatial_window_frames + 1  # first full-window step
    full = [r for r in rows if r['step'] >= fill and not r['instrumented']]
    by_variant: dict[str, Any] = {}
    for variant in sorted({r['variant'] for r in rows}):
        by_variant[variant] = summarize([r for r in full if r['variant'] == variant])
    growth = {}
    for s in GROWTH_STEPS:
        match = [r for r in rows if r['step'] == s]
        if match:
            r = match[0]
            growth[str(s)] = {'total_ms': r['ms']['total'], 'vggt_ms': r['ms'].get('vggt'),
                              'alloc_gib': r['alloc_gib'], 'peak_gib': r['peak_gib'],
                              'variant': r['variant']}
    return {'label': label, 'kind': kind, 'steps_run': len(rows), 'run_s': run_s,
            'full_window_from_step': fill, 'summary': by_variant, 'growth': growth,
            'peak_gib': episode_peak / GIB, 'start_alloc_gib': mem_start / GIB,
            'reserved_gib_end': reserved / GIB, 'spatial_cache_gib': spatial_nbytes / GIB,
            'sync_check': sync_report, 'config': dataclasses.asdict(cfg),
            'rows': rows, '_logits': logits}


# ---------------------------------------------------------------------------------- checks
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


# ---------------------------------------------------------------------------------- report
def card_name() -> str:
    """GPU name, memory and SM count (or the CPU)."""
    if not torch.cuda.is_available():
        return f'CPU ({platform.processor() or platform.machine()})'
    props = torch.cuda.get_device_properties(0)
    return f'{props.name} ({props.total_memory / GIB:.1f} GiB, {props.multi_processor_count} SMs)'


def markdown(report: dict[str, Any]) -> str:
    """The tables of the markdown report."""
    opts = report['options']
    lines = ['# Real-size JanusVLN per-step latency and memory on the GPU',
             '',
             f"Card: **{report['card']}**; torch {report['torch']}, transformers "
             f"{report['transformers']}, Python {report['python']}. Random weights of the real "
             'sizes (Qwen2.5-VL-7B + VGGT-1B aggregator (23 of 24 layers) + merger), bf16, '
             '640x480 frames (VGGT 644x490, Qwen 644x476 = 391 tokens). '
             f"VGGT SDPA preference: `{opts['vggt_attention']}`; ViT attention: "
             f"`{opts['vit_attention']}`; LLM SDPA priority: "
             f"`{opts.get('llm_attention', 'default')}`; engine fast paths: "
             f"`{','.join(opts.get('fast_paths', [])) or 'none'}` (reference: "
             f"{'same' if opts.get('fast_paths_in_reference') else 'none'}). "
             f"Date {report['date']}.",
             '',
             'Stage times: CUDA events around each stage inside `step()` (engines), '
             'synchronised wall clock (reference); **total = wall time of `engine.step(frame)`**, '
             'frame preprocessing included. Statistics over the steps after the spatial window '
             'is full (step >= 57), profiled and sync-checked steps excluded.', '']
    if report.get('merged_from'):
        lines += ['Merged from processes run one after another on the same machine: ' +
                  '; '.join(f"`{m['file']}` ({m['date']}, engines "
                            f"{m['args'].get('engines')})" for m in report['merged_from']) +
                  '.', '']
    lines += ['| engine | decode variant | n | VGGT p50/p95 | ViT p50/p95 | prefill p50/p95 | '
              'decode p50/p95 | decode fwd | **total p50** | total p95 | peak GiB |',
              '|---|---|---|---|---|---|---|---|---|---|---|']
    for run in report['runs']:
        for variant, s in run['summary'].items():
            if not s.get('n'):
                continue

            def cell(k: str, s: dict[str, Any] = s) -> str:
                v = s.get(k)
                return f"{v['p50']:.1f} / {v['p95']:.1f}" if v else '-'
            fwd = s.get('decode_forwards', {}).get('p50', float('nan'))
            lines.append(f"| {run['label']} | {variant} | {s['n']} | {cell('vggt')} | "
                         f"{cell('vit')} | {cell('prefill')} | {cell('decode')} | {fwd:.0f} | "
                         f"**{s['total']['p50']:.1f}** | {s['total']['p95']:.1f} | "
                         f"{run['peak_gib']:.2f} |")
    lines += ['', '## Growth (one step each; `variant` as above)', '',
              '| engine | step | total ms | VGGT ms | allocated GiB | step peak GiB |',
              '|---|---|---|---|---|---|']
    for run in report['runs']:
        for step, g in run['growth'].items():
            vggt = f"{g['vggt_ms']:.1f}" if g.get('vggt_ms') is not None else '-'
            lines.append(f"| {run['label']} | {step} ({g['variant']}) | {g['total_ms']:.1f} | "
                         f"{vggt} | {g['alloc_gib']:.2f} | {g['peak_gib']:.2f} |")
    if report.get('speedups'):
        lines += ['', '## Ratios (total p50; same machine and card)', '']
        for k, v in report['speedups'].items():
            lines.append(f'- {k}: **{v:.2f}x**')
    for key, title in (('attention_check', 'VGGT global attention by SDPA backend'),
                       ('vit_check', 'Qwen ViT, one frame: sdpa path vs varlen path'),
                       ('fast_path_check', 'Fast paths vs plain paths at real size'),
                       ('agreement', 'Smaller-window option vs bf16 full window'),
                       ('agreement_tiny_cpu', 'Smaller-window option, tiny preset on CPU')):
        if report.get(key):
            lines += ['', f'## {title}', '', '```', json.dumps(report[key], indent=1), '```']
    syncs = {r['label']: r['sync_check'] for r in report['runs'] if r.get('sync_check')}
    if syncs:
        lines += ['', '## Host synchronisations in one step (torch sync debug mode)', '']
        for label, s in syncs.items():
            lines.append(f"- {label}, step {s['step']}: {s['syncs']} syncs, "
                         f"{s['llm_forwards']} LLM forwards")
    lines += ['', '## Notes', '', report['decode_note'], '']
    lines += [f'- {note}' for note in report.get('notes', [])]
    return '\n'.join(lines) + '\n'


def write_report(report: dict[str, Any], args: argparse.Namespace, final: bool = False) -> None:
    """Add the ratios and notes, write ``<tag>.json`` and ``<tag>.md`` (also mid-run)."""
    summ = {r['label']: r['summary'] for r in report['runs']}
    ref = summ.get('reference', {}).get('tokens24', {}).get('total', {}).get('p50')
    ref4 = summ.get('reference', {}).get('tokens4', {}).get('total', {}).get('p50')
    speed = {}
    for label in ('parity', 'streaming'):
        p = summ.get(label, {}).get('forced', {}).get('total', {}).get('p50')
        if p and ref:
            speed[f'reference (24 tokens) / {label} (forced MOVE_FORWARD)'] = ref / p
        if p and ref4:
            speed[f'reference (4 tokens) / {label} (forced MOVE_FORWARD)'] = ref4 / p
    report['speedups'] = speed
    report['complete'] = final
    report['decode_note'] = (
        'Decode: `forced` rows make the constrained decoder of the engines follow the path '
        'of a trained model answering MOVE_FORWARD (2 tokens, then the EOS check; the engines '
        'verify both tokens and the EOS in one speculative decode forward, see `decode fwd`), '
        'the same forwards and host syncs as a real answer; '
        '`free` rows are the random-weight junk answer, where the decoder stops at the first '
        'non-action token (0 decode forwards): not representative. The reference generates '
        'like the released code: `tokens24` rows with max_new_tokens 24 (random weights '
        'rarely stop early, see decode fwd), `tokens4` rows with max_new_tokens 4.')
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f'{args.tag}.json').write_text(json.dumps(report, indent=1) + '\n')
    (out / f'{args.tag}.md').write_text(markdown(report))
    if final:
        sys.stdout.write(markdown(report))


def merge_reports(paths: list[pathlib.Path], args: argparse.Namespace) -> int:
    """Merge reports of several processes (same card) into one ``<tag>`` report."""
    parts = [json.loads(p.read_text()) for p in paths]
    cards = {p['card'] for p in parts}
    if len(cards) != 1:
        logger.error('reports come from different cards: %s', cards)
        return 2
    report = dict(parts[0])
    report['runs'] = [run for p in parts for run in p['runs']]
    for part in parts[1:]:
        for key, value in part.items():
            if key not in report or key in ('agreement',):
                report[key] = value
    report['merged_from'] = [{'file': p.name, 'date': q['date'], 'args': q['args']}
                             for p, q in zip(paths, parts)]
    if 'agreement' in report and not any(r['label'] == 'parity' for r in parts[-1]['runs']):
        report['agreement'] = {k: v for k, v in report['agreement'].items()
                               if k == 'note' or v.get('first_token_logits_vs_window_48', {})
                               .get('n')}
    write_report(report, args, final=True)
    return 0


# ---------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--engines', default='reference,parity,streaming')
    parser.add_argument('--preset', default='real', choices=('real', 'tiny'))
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--dtype', default='bfloat16',
                        choices=('bfloat16', 'float16', 'float32'))
    parser.add_argument('--steps', type=int, default=501, help='steps of parity/streaming')
    parser.add_argument('--ref-steps', type=int, default=210, help='steps of the reference')
    parser.add_argument('--ref-short-every', type=int, default=5,
                        help='every Nth reference step with max_new_tokens 4 (0: never)')
    parser.add_argument('--decode', default='forced', choices=('forced', 'free'))
    parser.add_argument('--free-every', type=int, default=4,
                        help='every Nth engine step unforced (0: never)')
    parser.add_argument('--vggt-attention', default='cudnn',
                        choices=('default', 'cudnn', 'flash', 'efficient'))
    parser.add_argument('--vit-attention', default='varlen', choices=('varlen', 'sdpa'))
    parser.add_argument('--llm-attention', default='cudnn', choices=('default', 'cudnn', 'flash'),
                        help='process-wide SDPA priority (the LLM prefill and decode use it)')
    parser.add_argument('--fast', default='vitgraph,vggtgraph',
                        help='fast paths for the engines: vitgraph, vggtgraph (CUDA graphs); '
                             'empty: none')
    parser.add_argument('--fast-reference', action='store_true',
                        help='also give the reference the fast paths')
    parser.add_argument('--window-variants', default='24',
                        help='comma list of smaller spatial windows to measure (parity)')
    parser.add_argument('--variant-steps', type=int, default=90)
    parser.add_argument('--checks', action='store_true',
                        help='attention / ViT / fast-path micro-checks first')
    parser.add_argument('--sync-check-step', type=int, default=60)
    parser.add_argument('--profile-step', type=int, default=-1,
                        help='profile this step of each engine (torch.profiler table)')
    parser.add_argument('--time-limit', type=float, default=0.0,
                        help='seconds per engine run before stopping early (0: none)')
    parser.add_argument('--tokenizer', default='', help='tokenizer folder (default: bundled)')
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--progress', type=int, default=50)
    parser.add_argument('--out', default='bench/results')
    parser.add_argument('--tag', default='engine_gpu')
    parser.add_argument('--merge', nargs='+', default=[],
                        help='merge these report JSONs (runs of several processes) into <tag>')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s', stream=sys.stdout)
    if args.merge:
        return merge_reports([pathlib.Path(p) for p in args.merge], args)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    device = torch.device(args.device)
    if _cuda(device) and not torch.cuda.is_available():
        logger.error('CUDA is not available')
        return 2
    dtype = {'bfloat16': torch.bfloat16, 'float16': torch.float16,
             'float32': torch.float32}[args.dtype]

    from janusvln_ros.model.tokenizer import load_bundled_tokenizer, load_tokenizer
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else load_bundled_tokenizer()
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = JanusVLNForNavigation.from_config(JanusVLNConfig.preset(args.preset), device, dtype)
    sync(device)
    build_s = time.perf_counter() - t0
    empty_cache(device)
    weights_gib = allocated(device) / GIB
    logger.info('model built in %.1f s: %.2f GiB allocated', build_s, weights_gib)
    model.vggt.aggregator.attention_backend = args.vggt_attention
    from janusvln_ros.model.fast_attention import set_global_sdpa_preference
    set_global_sdpa_preference(args.llm_attention)
    frames = make_frames(args.frames)

    report: dict[str, Any] = {
        'card': card_name(), 'torch': torch.__version__,
        'transformers': __import__('transformers').__version__,
        'python': platform.python_version(),
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        'preset': args.preset, 'dtype': args.dtype, 'build_s': build_s,
        'weights_gib': weights_gib, 'args': vars(args),
        'options': {'vggt_attention': args.vggt_attention, 'vit_attention': args.vit_attention,
                    'llm_attention': args.llm_attention},
        'runs': []}
    if args.checks and _cuda(device):
        report['attention_check'] = attention_backend_check(model, device)
        report['vit_check'] = vit_check(model, frames[0])
        logger.info('checks: %s %s', report['attention_check'], report['vit_check'])
    if args.vit_attention == 'varlen':
        from janusvln_ros.model.fast_attention import enable_varlen_vision_attention
        enable_varlen_vision_attention(model.qwen)
    if args.checks and _cuda(device):
        report['fast_path_check'] = fast_path_check(model, frames)
        logger.info('fast path check: %s', report['fast_path_check'])
    fast = [f for f in args.fast.split(',') if f]
    graphs: dict[str, Any] = {}
    if 'vitgraph' in fast or 'vggtgraph' in fast:
        from janusvln_ros.model.cuda_graphs import install_cuda_graphs
        graphs = install_cuda_graphs(model, vit='vitgraph' in fast, vggt='vggtgraph' in fast)
    report['options']['fast_paths'] = fast
    report['options']['fast_paths_in_reference'] = bool(args.fast_reference)

    def set_fast(on: bool) -> None:
        for obj in graphs.values():
            obj.enabled = on

    counter = ForwardCounter(model)
    # the bench installs its own fast-path choices above (and toggles them per engine)
    base = EngineConfig(engine='janusvln', device=args.device, dtype=args.dtype,
                        fast_paths=False)
    keep = range(40, 40 + args.variant_steps)
    logits_main: dict[int, torch.Tensor] = {}
    actions_main: dict[int, str] = {}
    for kind in [e for e in args.engines.split(',') if e]:
        steps = args.ref_steps if kind == 'reference' else args.steps
        set_fast(kind != 'reference' or args.fast_reference)
        run = run_engine(kind, model, tokenizer, base, frames, steps, counter, args,
                         keep_logits=keep if kind == 'parity' else None)
        if kind == 'parity':
            logits_main = run['_logits']
            actions_main = {r['step']: r['action'] for r in run['rows'] if r['step'] in keep}
        run.pop('_logits')
        if graphs:
            run['graph_replays'] = {k: getattr(v, 'replays', 0) for k, v in graphs.items()}
        report['runs'].append(run)
        write_report(report, args)
        logger.info('%s done: %d steps in %.0f s, peak %.2f GiB: %s', kind, run['steps_run'],
                    run['run_s'], run['peak_gib'],
                    {v: round(s['total']['p50'], 1) for v, s in run['summary'].items()
                     if s.get('n')})
    set_fast(True)
    agree: dict[str, Any] = {}
    for w in [int(x) for x in args.window_variants.split(',') if x.strip()]:
        cfg = dataclasses.replace(base, spatial_window_frames=w)
        run = run_engine('parity', model, tokenizer, cfg, frames, 40 + args.variant_steps,
                         counter, args, keep_logits=keep, label=f'parity window {w}')
        other = run.pop('_logits')
        rows = run.pop('rows')
        report['runs'].append(run)
        same = [actions_main[r['step']] == r['action'] for r in rows if r['step'] in actions_main]
        agree[f'window_{w}'] = {'peak_gib': run['peak_gib'],
                                'first_token_logits_vs_window_48': agreement(logits_main, other),
                                'action_agreement': {'n': len(same), 'equal': sum(same)}}
    if agree:
        agree['note'] = ('first-token logits of the parity engine, same frames, steps 40.., '
                         'random weights: measures how far the smaller spatial memory moves '
                         'the output, not navigation quality')
        report['agreement'] = agree
    write_report(report, args, final=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
