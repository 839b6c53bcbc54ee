"""CPU benchmark of the reference step and the JanusVLN engine (parity and streaming), tiny preset.

Runs ``--steps`` (200) steps of one episode for each of ``reference``, ``parity`` and
``streaming`` on the same primed tiny checkpoint and the same synthetic frames, then prints
per-stage p50/p95 latencies, the action histogram of each engine and the memory bytes against
the step, and writes everything to ``bench/results/engine_cpu.json``. Timings on a shared CPU
are noisy: no timed asserts.

The frames are the ones the primed tiny model answers with real action words on every engine:
green (``MOVE_FORWARD``) and red (``TURN_LEFT``) frames. It answers blue and grey frames with
junk (``TURN_RIGHT_RIGHT...``), which the parser turns into STOP and which the reference step
decodes to its 24-token budget while the engine stops at the first non-action token, so such
frames would time a decode path a trained model never takes. The primed model was fitted on
parity prompts only and answers junk in ``streaming`` mode, so the ``streaming`` row decodes
with :class:`bench.forced_decoding.ForcedDecoder` following the frame's colour action (the same
forwards as a real answer; ``streaming_free`` is the unforced run, for the record). The run
reports each engine's action histogram and how many outputs were not exact action words, and
fails if the reference and parity actions differ.

Usage::

    .venv/bin/python bench/engine_cpu.py [--model-path DIR] [--steps 200] [--threads 1]

Without ``--model-path`` a primed tiny checkpoint (seed 0) is written to a temporary folder
first (about a minute).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np
import torch

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from janusvln_ros.core.config import EngineConfig  # noqa: E402
from janusvln_ros.core.engine import JanusVLNEngine  # noqa: E402
from janusvln_ros.core.reference import ReferenceEngine  # noqa: E402
from janusvln_ros.model.checkpoint import load_checkpoint  # noqa: E402
from janusvln_ros.model.priming import (colour_rule, init_tiny_checkpoint,  # noqa: E402
                                        synthetic_frame)
from janusvln_ros.model.prompt import ACTION_NAMES  # noqa: E402

STAGES = ('preprocess', 'vggt', 'vit', 'prefill', 'decode', 'total')
MEMORY_STEPS = (1, 2, 5, 10, 20, 50, 56, 57, 100, 150, 200)


#: Frame colours the primed tiny model answers with real action words (see the docstring).
CLIP_ACTIONS = ('MOVE_FORWARD', 'TURN_LEFT')


def frames(steps: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    names = [CLIP_ACTIONS[int(rng.random() < 0.4)] for _ in range(steps)]
    return [synthetic_frame(rng, n, 120, 160) for n in names]


def _follow_colour_rule(engine, forced, forced_ids):
    """A per-frame hook that forces the decode towards the frame's colour action."""
    def before_step(frame: np.ndarray) -> None:
        forced.forced = forced_ids(engine, colour_rule(frame))
    return before_step


def run(engine, kind: str, clip: list[np.ndarray], before_step=None) -> dict:
    engine.reset('walk to the end of the corridor and stop at the plant')
    lat = {s: [] for s in STAGES}
    memory = []
    actions = []
    junk = 0
    for i, frame in enumerate(clip):
        if before_step is not None:
            before_step(frame)
        res = engine.step(frame)
        for s in STAGES:
            lat[s].append(res.latencies_ms.get(s, float('nan')))
        actions.append(res.action.name)
        junk += res.raw_output.strip() not in ACTION_NAMES
        if kind == 'reference':
            spatial, semantic = engine.cache.nbytes, 0
        else:
            spatial, semantic = engine.spatial_memory.nbytes, engine.semantic_memory.nbytes
        memory.append({'step': i + 1, 'spatial_frames': res.spatial_memory_frames,
                       'spatial_nbytes': int(spatial),
                       'semantic_frames': res.semantic_memory_frames,
                       'semantic_nbytes': int(semantic)})
    stats = {s: {'p50': float(np.nanpercentile(v, 50)), 'p95': float(np.nanpercentile(v, 95))}
             for s, v in lat.items()}
    histogram = {name: actions.count(name) for name in ACTION_NAMES}
    return {'latency_ms': stats, 'memory': memory, 'actions': actions,
            'action_histogram': histogram, 'non_action_outputs': junk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model-path', default='')
    parser.add_argument('--steps', type=int, default=200)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default=str(REPO / 'bench' / 'results' / 'engine_cpu.json'))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tmp = None
    path = args.model_path
    if not path:
        tmp = tempfile.TemporaryDirectory()
        path = tmp.name
        print('priming a tiny checkpoint ...', flush=True)
        init_tiny_checkpoint(path, seed=0)
    model, tokenizer = load_checkpoint(path, progress=False)
    clip = frames(args.steps)
    config = EngineConfig(spatial_anchor_frames=8, spatial_window_frames=48)
    results = {}
    from bench.forced_decoding import forced_ids, ForcedDecoder
    for kind in ('reference', 'parity', 'streaming', 'streaming_free'):
        before_step = None
        if kind == 'reference':
            engine = ReferenceEngine(model, tokenizer, config)
        else:
            mode = kind.split('_')[0]
            engine = JanusVLNEngine(EngineConfig(mode=mode, spatial_anchor_frames=8,
                                                 spatial_window_frames=48), model, tokenizer)
            if kind == 'streaming':
                forced = ForcedDecoder(engine.decoder, forced_ids(engine))
                engine.decoder = forced
                before_step = _follow_colour_rule(engine, forced, forced_ids)
        t0 = time.perf_counter()
        results[kind] = run(engine, kind, clip, before_step)
        results[kind]['wall_s'] = time.perf_counter() - t0
        print(f'{kind}: {args.steps} steps in {results[kind]["wall_s"]:.1f} s', flush=True)
    same = sum(a == b for a, b in zip(results['reference']['actions'],
                                      results['parity']['actions']))
    print(f'\nparity vs reference: same action on {same}/{args.steps} steps')
    print('actions per engine (outputs that were not an exact action word):')
    for kind, r in results.items():
        print(f'  {kind:<14} {r["action_histogram"]} ({r["non_action_outputs"]})')
    print('\nper-stage latency, ms (p50 / p95)')
    print(f'{"stage":<11}' + ''.join(f'{k:>22}' for k in results))
    for s in STAGES:
        row = ''.join(f'{r["latency_ms"][s]["p50"]:>12.2f} /{r["latency_ms"][s]["p95"]:>8.2f}'
                      for r in results.values())
        print(f'{s:<11}{row}')
    ref_total = results['reference']['latency_ms']['total']['p50']
    ratios = {k: ref_total / r['latency_ms']['total']['p50'] for k, r in results.items()}
    print('speed-up of the p50 step vs reference: '
          + ', '.join(f'{k} {v:.2f}x' for k, v in ratios.items()))
    print('\nmemory bytes against step (spatial + semantic)')
    print(f'{"step":>5}' + ''.join(f'{k + " spatial":>20}{k + " semantic":>20}' for k in results))
    for step in MEMORY_STEPS:
        if step > args.steps:
            continue
        cells = ''
        for r in results.values():
            m = r['memory'][step - 1]
            cells += f'{m["spatial_nbytes"]:>20}{m["semantic_nbytes"]:>20}'
        print(f'{step:>5}{cells}')
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {'steps': args.steps, 'threads': args.threads, 'torch': torch.__version__,
            'machine': platform.machine(), 'processor': platform.processor(),
            'preset': 'tiny', 'frames': f'{"/".join(CLIP_ACTIONS)} colours, 160x120',
            'parity_same_actions': same, 'p50_speedup_vs_reference': ratios}
    for r in results.values():
        r['actions'] = ''.join(str(ACTION_NAMES.index(a)) for a in r['actions'])
    out.write_text(json.dumps({'meta': meta, 'results': results}, indent=1))
    print(f'\nwrote {out}')
    if tmp is not None:
        tmp.cleanup()
    if same != args.steps:
        raise SystemExit(f'parity and reference actions differ on {args.steps - same} steps')


if __name__ == '__main__':
    main()
