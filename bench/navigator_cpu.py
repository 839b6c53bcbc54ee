"""CPU step latency of the shipped navigator at full memory (parity and streaming).

Renders a ``val_unseen`` episode's frames along the expert's path (640x480, HFOV 79: real
scenes, so the model answers real action words), then runs the engine over ``--steps`` frames
and reports per-stage p50/p95 over the steps taken once the spatial memory holds its full
8 + 48 frames (``--full-from``, default 56). Prints a table; writes
``bench/results/navigator_cpu.{json,md}``.

    python bench/navigator_cpu.py --threads 2 --steps 90
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import platform
import sys

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault('MUJOCO_GL', 'egl')

from janusvln_ros.core.config import EngineConfig  # noqa: E402
from janusvln_ros.core.engine import JanusVLNEngine  # noqa: E402
from janusvln_ros.core.models import SHIPPED_NAVIGATOR  # noqa: E402
from janusvln_ros.core.models import shipped_val_unseen_episodes  # noqa: E402
from janusvln_ros.core.types import Action  # noqa: E402
from janusvln_ros.sim.env import SimEnv  # noqa: E402
from janusvln_ros.sim.episodes import house_for, load_episodes  # noqa: E402
from janusvln_ros.sim.policies import oracle_action  # noqa: E402
from janusvln_ros.training.evaluate import EVAL_CAMERA  # noqa: E402


def frames_along_expert(count: int) -> tuple[str, list[np.ndarray]]:
    """``count`` real frames: the expert's path of a val_unseen episode, then turns in place.

    The episode is the longest of the first 20; after the expert stops, the robot turns so the
    memory keeps filling with real views.
    """
    episodes = load_episodes(shipped_val_unseen_episodes())[:20]
    episode = max(episodes, key=lambda e: e.geodesic_distance)
    env = SimEnv(house_for(episode.house), EVAL_CAMERA)
    env.reset(episode.start_pose)
    frames = []
    try:
        while len(frames) < count:
            frames.append(env.render())
            action = oracle_action(episode, env.pose)
            env.step(Action.TURN_LEFT if action == Action.STOP else action)
    finally:
        env.close()
    return episode, frames


def run(mode: str, episode, frames: list[np.ndarray], full_from: int) -> dict:
    engine = JanusVLNEngine(EngineConfig(engine='janusvln', model_path=SHIPPED_NAVIGATOR,
                                         mode=mode))
    engine.reset(episode.instruction)
    stages: dict[str, list[float]] = collections.defaultdict(list)
    actions = collections.Counter()
    for index, frame in enumerate(frames):
        result = engine.step(frame)
        actions[Action(int(result.action)).name] += 1
        if index >= full_from:
            for name, ms in result.latencies_ms.items():
                stages[name].append(ms)
    engine.close()
    return {'steps_measured': len(stages['total']),
            'p50_ms': {k: float(np.percentile(v, 50)) for k, v in stages.items()},
            'p95_ms': {k: float(np.percentile(v, 95)) for k, v in stages.items()},
            'actions': dict(actions)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=90)
    parser.add_argument('--full-from', type=int, default=56)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'navigator_cpu'))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    episode, frames = frames_along_expert(args.steps)
    results = {mode: run(mode, episode, frames, args.full_from)
               for mode in ('parity', 'streaming')}
    meta = {'episode': episode.episode_id, 'threads': args.threads, 'steps': args.steps,
            'full_from': args.full_from, 'cpu': platform.processor() or platform.machine(),
            'cpu_count': os.cpu_count(), 'torch': torch.__version__}
    out = pathlib.Path(args.out)
    out.with_suffix('.json').write_text(json.dumps({'meta': meta, 'results': results},
                                                   indent=1) + '\n')
    names = ['preprocess', 'vggt', 'vit', 'prefill', 'decode', 'total']
    lines = ['| mode | steps | ' + ' | '.join(f'{n} p50' for n in names) + ' | total p95 |',
             '|---|---|' + '---|' * (len(names) + 1)]
    for mode, r in results.items():
        lines.append(f'| {mode} | {r["steps_measured"]} | '
                     + ' | '.join(f'{r["p50_ms"].get(n, 0.0):.1f}' for n in names)
                     + f' | {r["p95_ms"]["total"]:.1f} |')
    text = (f'Shipped navigator on the CPU, {args.threads} threads, full 8 + 48 spatial memory '
            f'(steps {args.full_from}..{args.steps - 1} of {episode.episode_id} frames), '
            f'milliseconds.\n\n' + '\n'.join(lines) + '\n\nActions: '
            + '; '.join(f'{m}: {r["actions"]}' for m, r in results.items()) + '\n')
    out.with_suffix('.md').write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
