"""Statistics, ratios and the markdown report of the GPU benchmark; merging reports of processes.

Memory is reported three ways per run: the peak of ``max_memory_allocated`` (live tensors), the
peak of ``max_memory_reserved`` (what the caching allocator took from the driver) and the
largest NVML figure for the process (reserved memory plus the CUDA context and workspaces: the
number a card must hold). A card size is named only from the NVML figure
(:func:`bench.gpu_memory.fits`). Speed ratios are taken over the same step indices of both runs
(full window, not instrumented), and their ``n`` is reported with them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import pathlib
import platform
import statistics
import sys
from typing import Any

from bench.gpu_memory import fits, GIB
import torch

logger = logging.getLogger('bench.gpu_report')

STAGES = ('vggt', 'vit', 'prefill', 'decode', 'total')


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


def card_name() -> str:
    """GPU name, memory and SM count (or the CPU)."""
    if not torch.cuda.is_available():
        return f'CPU ({platform.processor() or platform.machine()})'
    props = torch.cuda.get_device_properties(0)
    return f'{props.name} ({props.total_memory / GIB:.1f} GiB, {props.multi_processor_count} SMs)'


def _gib(value: float | None) -> str:
    return 'not measured' if value is None else f'{value:.2f}'


def _fits(run: dict[str, Any]) -> str:
    verdict = fits(run.get('nvml_process_gib_max'))
    return ', '.join(f"{card}: {'not measured' if ok is None else ('yes' if ok else 'no')}"
                     for card, ok in verdict.items())


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
              'decode p50/p95 | decode fwd | **total p50** | total p95 |',
              '|---|---|---|---|---|---|---|---|---|---|']
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
                         f"**{s['total']['p50']:.1f}** | {s['total']['p95']:.1f} |")
    lines += ['', '## GPU memory per run (GiB; weights included)', '',
              'Peak allocated = `max_memory_allocated` (live tensors); peak reserved = '
              '`max_memory_reserved` (the caching allocator); NVML = the largest figure the '
              'driver gave for this process after a step (reserved + CUDA context and '
              'workspaces). A card fits only if the NVML figure does.', '',
              '| engine | peak allocated | peak reserved | NVML process | fits |',
              '|---|---|---|---|---|']
    for run in report['runs']:
        lines.append(f"| {run['label']} | {run['peak_gib']:.2f} | "
                     f"{_gib(run.get('peak_reserved_gib'))} | "
                     f"{_gib(run.get('nvml_process_gib_max'))} | {_fits(run)} |")
    lines += ['', '## Growth (one step each; `variant` as above)', '',
              '| engine | step | total ms | VGGT ms | allocated GiB | step peak GiB | '
              'reserved GiB | NVML GiB |',
              '|---|---|---|---|---|---|---|---|']
    for run in report['runs']:
        for step, g in run['growth'].items():
            vggt = f"{g['vggt_ms']:.1f}" if g.get('vggt_ms') is not None else '-'
            lines.append(f"| {run['label']} | {step} ({g['variant']}) | {g['total_ms']:.1f} | "
                         f"{vggt} | {g['alloc_gib']:.2f} | {g['peak_gib']:.2f} | "
                         f"{_gib(g.get('reserved_gib'))} | {_gib(g.get('nvml_process_gib'))} |")
    if report.get('speedups'):
        lines += ['', '## Ratios (total p50 over the same step indices; same machine and card)',
                  '']
        for k, v in report['speedups'].items():
            if isinstance(v, dict):
                lines.append(f"- {k}: **{v['ratio']:.2f}x** (n = {v['n']} steps, "
                             f"{v['reference_p50_ms']:.1f} / {v['engine_p50_ms']:.1f} ms)")
            else:  # reports written before the same-step ratios
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


def _full_window_totals(run: dict[str, Any], variant: str) -> dict[int, float]:
    """Step index -> total ms of ``run``'s full-window, uninstrumented rows of ``variant``."""
    return {r['step']: r['ms']['total'] for r in run.get('rows', [])
            if r['variant'] == variant and r['step'] >= run['full_window_from_step']
            and not r['instrumented']}


def ratio_same_steps(ref: dict[str, Any], ref_variant: str, run: dict[str, Any],
                     variant: str) -> dict[str, Any] | None:
    """p50 ratio reference / engine over the step indices both runs have (None: none shared)."""
    a, b = _full_window_totals(ref, ref_variant), _full_window_totals(run, variant)
    common = sorted(set(a) & set(b))
    if not common:
        return None
    ref_p50 = percentile([a[s] for s in common], 50)
    run_p50 = percentile([b[s] for s in common], 50)
    return {'ratio': ref_p50 / run_p50, 'n': len(common), 'reference_p50_ms': ref_p50,
            'engine_p50_ms': run_p50, 'steps': [common[0], common[-1]]}


def speed_ratios(report: dict[str, Any]) -> dict[str, Any]:
    """Reference / engine ratios, the realistic one (4-token reference) first."""
    runs = {r['label']: r for r in report['runs']}
    ref = runs.get('reference')
    out: dict[str, Any] = {}
    if ref is None:
        return out
    for tokens in ('tokens4', 'tokens24'):
        for label in ('parity', 'streaming'):
            if label in runs:
                res = ratio_same_steps(ref, tokens, runs[label], 'forced')
                if res is not None:
                    out[f'reference ({tokens[6:]} tokens) / {label} (forced MOVE_FORWARD)'] = res
    return out


def write_report(report: dict[str, Any], args: argparse.Namespace, final: bool = False) -> None:
    """Add the ratios and notes, write ``<tag>.json`` and ``<tag>.md`` (also mid-run)."""
    report['speedups'] = speed_ratios(report)
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
