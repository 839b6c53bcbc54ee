r"""Real-size GPU benchmark: reference step vs the parity and streaming engines (issue 11).

One process, one model object (random weights of the real shapes, bf16) shared by every engine,
run one engine after another over the same pseudo-random 640x480 frames; only one engine's
memories are alive at a time, so each engine's peak GPU memory is its own (weights included).

Per step it records the engine's stage times (``StepResult.latencies_ms``: vggt, vit, prefill,
decode), the wall time of ``engine.step`` (frame preprocessing included; the step ends with the
host reading the last greedy token), the LLM forwards and the GPU memory: allocated, peak
allocated, reserved and the driver's (NVML) figure for the process (:mod:`bench.gpu_memory`).

Decoding with random weights: the greedy text is junk, so the constrained decoder of the
JanusVLN engines exits after the first token (0 decode forwards), which would flatter the
decode stage. A trained model answers ``MOVE_FORWARD`` as 2 tokens + the EOS check; the engines'
decoder verifies ``MOVE`` + ``_FORWARD`` speculatively in ONE decode forward after the prefill
(``decode fwd`` column). ``--decode forced`` (default) makes the engines' own decoder follow
exactly that path: the logits it reads get a large bonus on the next token of
``MOVE_FORWARD<|im_end|>``, nothing else changes (same forwards, same host syncs). Every
``--free-every``-th step runs unforced, to report the junk-text figure too. The reference step
generates like the released code (``max_new_tokens`` 24; random weights rarely hit EOS), except
on steps whose index is a multiple of ``--ref-short-every`` (default 2: every other step), which
run with ``max_new_tokens`` 4, a one-word answer's budget: the realistic comparison. The
reference runs as many steps as the engines unless ``--ref-steps`` says otherwise, and ratios
are taken over the step indices both runs share (:func:`bench.gpu_report.speed_ratios`).

Fast paths (``--fast``, engines only unless ``--fast-reference``): ``vitgraph`` / ``vggtgraph``
replay the encoders as CUDA graphs (:mod:`janusvln_ros.model.cuda_graphs`). Model-level kernel
choices (varlen ViT attention, the VGGT SDPA backend) apply to every engine, the reference
included.

The parts: this file is the harness (engines, the step loop, the command line);
:mod:`bench.forced_decoding` the forced decoder; :mod:`bench.gpu_checks` the micro-checks;
:mod:`bench.gpu_memory` the memory figures; :mod:`bench.gpu_report` statistics, ratios, the
markdown report and the merging of reports written by several processes.

Usage (GPU machine, repo root)::

    PYTHONPATH=. python3 bench/engine_gpu.py --engines reference,parity,streaming \
        --steps 501 --tokenizer .dev/gpu/tokenizer --out bench/results

Writes ``<tag>.json`` (all per-step data + summaries) and ``<tag>.md`` (tables).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import pathlib
import platform
import sys
import time
from typing import Any

from bench.forced_decoding import forced_ids, ForcedDecoder, ForwardCounter
from bench.gpu_checks import (agreement, attention_backend_check, count_syncs,
                              fast_path_check, vit_check)
from bench.gpu_memory import (allocated, empty_cache, fits, GIB, memory_figures,
                              peak_allocated, reset_peak, sync)
from bench.gpu_report import card_name, merge_reports, STAGES, summarize, write_report
import numpy as np
import torch

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.janusvln import JanusVLNForNavigation

logger = logging.getLogger('bench.engine_gpu')

INSTRUCTION = ('Walk out of the bedroom and turn left, go down the hallway past the painting, '
               'then enter the kitchen and stop next to the round wooden table by the window.')
GROWTH_STEPS = (10, 60, 200, 500)


def _cuda(device: torch.device) -> bool:
    return device.type == 'cuda'


# ---------------------------------------------------------------------------------- engines
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


def build_engine(kind: str, model: JanusVLNForNavigation, tokenizer: Any,
                 cfg: EngineConfig) -> Any:
    """A reference/parity/streaming engine over the shared model."""
    if kind == 'reference':
        from janusvln_ros.core.reference import ReferenceEngine
        return ReferenceEngine(model, tokenizer, cfg)
    from janusvln_ros.core.engine import JanusVLNEngine
    return JanusVLNEngine(dataclasses.replace(cfg, mode=kind), model=model, tokenizer=tokenizer)


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
    episode_reserved = 0.0
    episode_nvml: float | None = None
    t_run = time.perf_counter()
    for step in range(steps):
        free = args.free_every > 0 and step % args.free_every == args.free_every - 1
        short = (kind == 'reference' and args.ref_short_every > 0
                 and step % args.ref_short_every == 0)
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
        mem = memory_figures(device)  # after the step's timing: reads the driver too
        peak = peak_allocated(device)
        episode_peak = max(episode_peak, peak)
        episode_reserved = max(episode_reserved, mem['peak_reserved_gib'])
        if mem['nvml_process_gib'] is not None:
            episode_nvml = max(episode_nvml or 0.0, mem['nvml_process_gib'])
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
                     'alloc_gib': mem['alloc_gib'], 'peak_gib': peak / GIB,
                     'reserved_gib': mem['reserved_gib'],
                     'nvml_process_gib': mem['nvml_process_gib'],
                     'spatial_frames': result.spatial_memory_frames,
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
                              'reserved_gib': r['reserved_gib'],
                              'nvml_process_gib': r['nvml_process_gib'],
                              'variant': r['variant']}
    return {'label': label, 'kind': kind, 'steps_run': len(rows), 'run_s': run_s,
            'full_window_from_step': fill, 'summary': by_variant, 'growth': growth,
            'peak_gib': episode_peak / GIB, 'start_alloc_gib': mem_start / GIB,
            'reserved_gib_end': reserved / GIB, 'peak_reserved_gib': episode_reserved,
            'nvml_process_gib_max': episode_nvml, 'fits': fits(episode_nvml),
            'spatial_cache_gib': spatial_nbytes / GIB,
            'sync_check': sync_report, 'config': dataclasses.asdict(cfg),
            'rows': rows, '_logits': logits}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--engines', default='reference,parity,streaming')
    parser.add_argument('--preset', default='real', choices=('real', 'tiny'))
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--dtype', default='bfloat16',
                        choices=('bfloat16', 'float16', 'float32'))
    parser.add_argument('--steps', type=int, default=501, help='steps of parity/streaming')
    parser.add_argument('--ref-steps', type=int, default=0,
                        help='steps of the reference (0: as many as --steps)')
    parser.add_argument('--ref-short-every', type=int, default=2,
                        help='every Nth reference step with max_new_tokens 4, the others 24 '
                             '(1: all 4; 0: all 24)')
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
    for kind in [e for e in args.engines.split(',') if e]:
        steps = (args.ref_steps or args.steps) if kind == 'reference' else args.steps
        set_fast(kind != 'reference' or args.fast_reference)
        run = run_engine(kind, model, tokenizer, base, frames, steps, counter, args,
                         keep_logits=keep if kind == 'parity' else None)
        if kind == 'parity':
            logits_main = run['_logits']
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
        run.pop('rows')
        report['runs'].append(run)
        # Actions are not compared: the forced decode makes them equal by construction.
        agree[f'window_{w}'] = {'peak_gib': run['peak_gib'],
                                'peak_reserved_gib': run['peak_reserved_gib'],
                                'nvml_process_gib_max': run['nvml_process_gib_max'],
                                'first_token_logits_vs_window_48': agreement(logits_main, other)}
    if agree:
        agree['note'] = ('unforced first-token logits of the parity engine (read before the '
                         'forced decode), same frames, steps 40..: top-1 argmax agreement and '
                         'cosine; random weights: measures how far the smaller spatial memory '
                         'moves the output, not navigation quality')
        report['agreement'] = agree
    write_report(report, args, final=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
