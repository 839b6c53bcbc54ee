"""DAgger data: roll the learner out, label every visited state with the expert's action.

Each episode runs the learner through the real engine (parity memory, the checkpoint being
improved) in the simulator; at every step the expert (the geodesic shortest-path follower in
the discrete action space) labels the state, and the action executed is the expert's with
probability ``beta`` (decaying over rounds), else the learner's. The episode ends when the
executed action is STOP or after ``max_steps`` frames. Frames, expert labels and poses are
written as a dataset of the same format as the expert data (``source: 'dagger-r<k>'``), so a
round's retraining simply concatenates the directories.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import random
from typing import Any, Sequence

import numpy as np

from janusvln_ros.core.types import Action
from janusvln_ros.sim.episodes import Episode
from janusvln_ros.sim.policies import oracle_action
from janusvln_ros.training.dataset import EnvPool, Recorder, RenderSpec, run_shards
from janusvln_ros.training.dataset import write_manifest
from janusvln_ros.training.evaluate import build_engine, EvalSpec

logger = logging.getLogger(__name__)


def rollout(env: Any, engine: Any, episode: Episode, spec: RenderSpec, beta: float,
            rng: random.Random, recorder: Recorder, source: str) -> dict[str, Any]:
    """One mixed-policy episode recorded with expert labels; returns its summary."""
    env.reset(episode.start_pose)
    engine.reset(episode.instruction)
    offset = len(recorder.frames)
    learner_agree = 0
    steps = 0
    executed = Action.STOP
    for _ in range(spec.max_steps):
        rgb = env.render()
        learner = Action(int(engine.step(rgb).action))
        expert = oracle_action(episode, env.pose)
        recorder.observe(env, spec, int(expert), rgb)
        learner_agree += int(learner == expert)
        steps += 1
        executed = expert if rng.random() < beta else learner
        if executed == Action.STOP:
            break
        env.step(executed)
    summary = {'beta': beta, 'steps': steps, 'stopped': executed == Action.STOP,
               'agreement': learner_agree / max(1, steps)}
    recorder.add_path([episode], offset, source, {'rollout': summary})
    return summary


def _dagger_shard(job: tuple[Any, ...]) -> dict[str, Any]:
    folder, index, episode_dicts, spec_fields, checkpoint, device, beta, seed, source = job
    import torch
    torch.set_num_threads(1)
    spec = RenderSpec(**spec_fields)
    engine = build_engine(EvalSpec(name='learner', checkpoint=checkpoint, device=device))
    pool = EnvPool(spec.camera())
    recorder = Recorder()
    agreement = []
    try:
        for data in episode_dicts:
            episode = Episode.from_dict(data)
            rng = random.Random(f'{seed}:{source}:{episode.episode_id}')
            summary = rollout(pool.get(episode.house), engine, episode, spec, beta, rng,
                              recorder, source)
            agreement.append(summary['agreement'])
    finally:
        pool.close()
        engine.close()
    result = recorder.write(pathlib.Path(folder), index)
    result['agreement'] = float(np.mean(agreement)) if agreement else 0.0
    return result


def collect_dagger(folder: str | os.PathLike[str], episodes: Sequence[Episode], checkpoint: str,
                   round_index: int, beta: float, device: str = 'cpu', workers: int = 1,
                   seed: int = 0, spec: RenderSpec | None = None, episodes_per_shard: int = 16,
                   progress: bool = True) -> dict[str, Any]:
    """Roll out ``checkpoint`` on ``episodes`` and write the DAgger dataset of a round.

    Returns:
        The manifest (with ``learner_agreement``: the fraction of visited states where the
        learner's action equalled the expert's).
    """
    spec = spec or RenderSpec()
    out = pathlib.Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob('shard-*'):
        old.unlink()
    source = f'dagger-r{round_index}'
    jobs = [(str(out), i, [e.to_dict() for e in episodes[s:s + episodes_per_shard]],
             dataclasses.asdict(spec), checkpoint, device, beta, seed, source)
            for i, s in enumerate(range(0, len(episodes), episodes_per_shard))]
    shards = run_shards(_dagger_shard, jobs, workers, progress, source)
    weights = [s['frames'] for s in shards]
    agreement = float(np.average([s['agreement'] for s in shards], weights=weights)) \
        if sum(weights) else 0.0
    manifest = write_manifest(out, 'train', spec, shards,
                              {'source': source, 'beta': beta, 'checkpoint': str(checkpoint),
                               'learner_agreement': agreement})
    logger.info('%s: %d episodes, %d frames, learner agreement %.3f', source,
                manifest['num_episodes'], manifest['num_frames'], agreement)
    return manifest
