"""DAgger data: roll the learner out, label every visited state with the expert's action.

Each episode runs the learner through the real engine (parity memory, the checkpoint being
improved) in the simulator; at every step the expert (the geodesic shortest-path follower in
the discrete action space) labels the state, and the action executed is the expert's with
probability ``beta`` (decaying over rounds), else the learner's. The episode ends when the
executed action is STOP, after ``max_steps`` frames, or when the learner has strayed: a full turn
in place (``spin_limit`` turns in a row) or a geodesic distance to the goal ``stray_m`` metres
above the best reached. Without that cut a weak learner's 150-step spins fill a round with turn
labels (measured: docs/training.md). Frames, expert labels and poses are
written as a dataset of the same format as the expert data (``source: 'dagger-r<k>'``), so a
round's retraining simply concatenates the directories.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import pathlib
import random
import time
from typing import Any, Sequence

import numpy as np

from janusvln_ros.core.types import Action
from janusvln_ros.sim.episodes import Episode, field_for
from janusvln_ros.sim.policies import oracle_action
from janusvln_ros.training.dataset import EnvPool, Recorder, RenderSpec, run_shards
from janusvln_ros.training.dataset import write_manifest
from janusvln_ros.training.evaluate import build_engine, EvalSpec

logger = logging.getLogger(__name__)


def rollout(env: Any, engine: Any, episode: Episode, spec: RenderSpec, beta: float,
            rng: random.Random, recorder: Recorder, source: str, stray_m: float = 0.0,
            spin_limit: int = 0) -> dict[str, Any]:
    """One mixed-policy episode recorded with expert labels; returns its summary.

    Args:
        stray_m: End when the geodesic distance exceeds the best so far by this much (0: never).
        spin_limit: End after this many executed turns in a row (0: never).

    Returns:
        ``beta``, ``steps``, ``stopped``, ``agreement`` (learner == expert, per visited state)
        and ``ended`` (``stop``, ``max_steps``, ``stray`` or ``spin``).
    """
    env.reset(episode.start_pose)
    engine.reset(episode.instruction)
    field = field_for(episode)
    offset = len(recorder.frames)
    learner_agree = 0
    steps = 0
    turns = 0
    best = math.inf
    ended = 'max_steps'
    for _ in range(spec.max_steps):
        rgb = env.render()
        learner = Action(int(engine.step(rgb).action))
        expert = oracle_action(episode, env.pose)
        recorder.observe(env, spec, int(expert), rgb)
        learner_agree += int(learner == expert)
        steps += 1
        distance = field.distance(env.pose.x, env.pose.y)
        best = min(best, distance)
        if stray_m > 0 and distance > best + stray_m:
            ended = 'stray'
            break
        executed = expert if rng.random() < beta else learner
        if executed == Action.STOP:
            ended = 'stop'
            break
        turns = turns + 1 if executed in (Action.TURN_LEFT, Action.TURN_RIGHT) else 0
        if spin_limit > 0 and turns >= spin_limit:
            ended = 'spin'
            break
        env.step(executed)
    summary = {'beta': beta, 'steps': steps, 'stopped': ended == 'stop',
               'agreement': learner_agree / max(1, steps), 'ended': ended}
    recorder.add_path([episode], offset, source, {'rollout': summary})
    return summary


def _dagger_shard(job: tuple[Any, ...]) -> dict[str, Any]:
    (folder, index, episode_dicts, spec_fields, checkpoint, device, beta, seed, source, stray_m,
     spin_limit, deadline) = job
    import torch
    torch.set_num_threads(1)
    spec = RenderSpec(**spec_fields)
    engine = build_engine(EvalSpec(name='learner', checkpoint=checkpoint, device=device))
    pool = EnvPool(spec.camera())
    recorder = Recorder()
    agreement, ends = [], []
    try:
        for data in episode_dicts:
            if deadline and time.time() > deadline:
                break
            episode = Episode.from_dict(data)
            rng = random.Random(f'{seed}:{source}:{episode.episode_id}')
            summary = rollout(pool.get(episode.house), engine, episode, spec, beta, rng,
                              recorder, source, stray_m, spin_limit)
            agreement.append(summary['agreement'])
            ends.append(summary['ended'])
    finally:
        pool.close()
        engine.close()
    if not recorder.paths:
        return {'name': f'shard-{index:05d}', 'frames': 0, 'paths': 0, 'episodes': 0,
                'agreement': 0.0, 'ends': {}, 'empty': True}
    result = recorder.write(pathlib.Path(folder), index)
    result['agreement'] = float(np.mean(agreement)) if agreement else 0.0
    result['ends'] = dict(collections.Counter(ends))
    return result


def collect_dagger(folder: str | os.PathLike[str], episodes: Sequence[Episode], checkpoint: str,
                   round_index: int, beta: float, device: str = 'cpu', workers: int = 1,
                   seed: int = 0, spec: RenderSpec | None = None, episodes_per_shard: int = 16,
                   progress: bool = True, stray_m: float = 3.0, spin_limit: int = 24,
                   max_minutes: float = 0.0) -> dict[str, Any]:
    """Roll out ``checkpoint`` on ``episodes`` and write the DAgger dataset of a round.

    Args:
        stray_m: See :func:`rollout` (0 keeps every rollout to STOP or ``max_steps``).
        spin_limit: See :func:`rollout`.
        max_minutes: Start no new episode after this wall time (0: no limit); the episodes
            finished by then are written.

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
    deadline = time.time() + max_minutes * 60 if max_minutes else 0.0
    jobs = [(str(out), i, [e.to_dict() for e in episodes[s:s + episodes_per_shard]],
             dataclasses.asdict(spec), checkpoint, device, beta, seed, source, stray_m,
             spin_limit, deadline)
            for i, s in enumerate(range(0, len(episodes), episodes_per_shard))]
    shards = [s for s in run_shards(_dagger_shard, jobs, workers, progress, source)
              if not s.pop('empty', False)]
    ends = dict(sum((collections.Counter(s['ends']) for s in shards), collections.Counter()))
    weights = [s['frames'] for s in shards]
    agreement = float(np.average([s['agreement'] for s in shards], weights=weights)) \
        if sum(weights) else 0.0
    manifest = write_manifest(out, 'train', spec, shards,
                              {'source': source, 'beta': beta, 'checkpoint': str(checkpoint),
                               'learner_agreement': agreement, 'ended': ends,
                               'stray_m': stray_m, 'spin_limit': spin_limit})
    logger.info('%s: %d episodes, %d frames, learner agreement %.3f, ended %s', source,
                manifest['num_episodes'], manifest['num_frames'], agreement, ends)
    return manifest
