"""Navigation evaluation of a model in the built-in world, through the real engine.

Each episode runs :class:`~janusvln_ros.core.engine.JanusVLNEngine` (``parity`` or
``streaming``, any spatial-memory size) on frames the simulator renders with a 640x480, HFOV 79
camera, exactly as the ROS node would see them, until the model says STOP or ``max_steps``.
Metrics are VLN-CE's (NE, SR and OS at 3 m, SPL, nDTW) plus SR at 1 m. Work is spread over
worker processes (each with its own model copy and EGL context) in a fixed episode order, so
results do not depend on the worker count.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.sim.env import CameraConfig
from janusvln_ros.sim.episodes import Episode
from janusvln_ros.sim.metrics import aggregate

logger = logging.getLogger(__name__)

EVAL_CAMERA = CameraConfig(width=640, height=480, hfov_deg=79.0)


@dataclasses.dataclass(frozen=True)
class EvalSpec:
    """One evaluated configuration.

    Attributes:
        name: Row name in reports.
        policy: ``'model'``, ``'oracle'`` or ``'random'``.
        checkpoint: Model directory (``'model'`` only).
        mode: ``'parity'`` or ``'streaming'``.
        anchors: Spatial-memory anchor frames.
        window: Spatial-memory recent frames.
        lam: Fusion weight at inference (``None``: the checkpoint's).
        device: Torch device of the engine.
        max_steps: Most actions per episode.
        seed: Seed of the random walker.
    """

    name: str
    policy: str = 'model'
    checkpoint: str = ''
    mode: str = 'parity'
    anchors: int = 8
    window: int = 48
    lam: float | None = None
    device: str = 'cpu'
    max_steps: int = 200
    seed: int = 0


def build_engine(spec: EvalSpec) -> Any:
    """The engine of a spec (the model's ``lam`` overridden when ``spec.lam`` is set)."""
    from janusvln_ros.core.engine import JanusVLNEngine
    from janusvln_ros.core.models import resolve_model_path
    from janusvln_ros.model.checkpoint import load_checkpoint
    config = EngineConfig(engine='janusvln', model_path=spec.checkpoint, device=spec.device,
                          mode=spec.mode, spatial_anchor_frames=spec.anchors,
                          spatial_window_frames=spec.window, fast_paths=False)
    model, tokenizer = load_checkpoint(resolve_model_path(spec.checkpoint), spec.device,
                                       progress=False)
    if spec.lam is not None:
        model.lam = float(spec.lam)
    return JanusVLNEngine(config, model=model, tokenizer=tokenizer)


def _run_chunk(job: tuple[dict[str, Any], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    spec_fields, episode_dicts = job
    import torch
    torch.set_num_threads(1)
    from janusvln_ros.sim.runner import engine_factory, LocalEvaluator
    spec = EvalSpec(**spec_fields)
    episodes = [Episode.from_dict(e) for e in episode_dicts]
    if spec.policy == 'model':
        engine = build_engine(spec)
        factory = (lambda _source: engine)
    else:
        factory = engine_factory(spec.policy, seed=spec.seed, episodes_path='')
    evaluator = LocalEvaluator(factory, EVAL_CAMERA, max_steps=spec.max_steps,
                               render=spec.policy == 'model')
    if spec.policy == 'oracle':
        evaluator.engine._episodes = list(episodes)  # not only the built-in set
    out = []
    try:
        for episode in episodes:
            run = evaluator.run(episode)
            row = run.metrics.as_dict()
            row['sr_1m'] = float(run.metrics.stopped and run.metrics.ne < 1.0)
            row['episode_id'] = episode.episode_id
            row['actions'] = run.actions
            row['mean_step_ms'] = float(np.mean(run.step_ms)) if run.step_ms else 0.0
            out.append(row)
    finally:
        evaluator.close()
    return out


def evaluate(spec: EvalSpec, episodes: Sequence[Episode], workers: int = 1,
             progress: bool = True) -> dict[str, Any]:
    """Run ``episodes`` under ``spec``; returns ``{'spec', 'aggregate', 'episodes'}``.

    ``aggregate`` holds NE, SR, OS, SPL, nDTW, TL, steps and ``SR_1m``.
    """
    chunks = max(1, min(len(episodes), workers * 4))
    jobs = [(dataclasses.asdict(spec), [e.to_dict() for e in episodes[i::chunks]])
            for i in range(chunks)]
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(episodes), desc=spec.name, unit='ep', disable=not progress)
    if workers <= 1:
        for job in jobs:
            rows += _run_chunk(job)
            bar.update(len(job[1]))
    else:
        ctx = multiprocessing.get_context('spawn')
        with ctx.Pool(workers) as pool:
            for part in pool.imap_unordered(_run_chunk, jobs):
                rows += part
                bar.update(len(part))
    bar.close()
    order = {e.episode_id: i for i, e in enumerate(episodes)}
    rows.sort(key=lambda r: order[r['episode_id']])
    from janusvln_ros.sim.metrics import EpisodeMetrics
    fields = {f.name for f in dataclasses.fields(EpisodeMetrics)}
    metrics = [EpisodeMetrics(**{k: v for k, v in r.items() if k in fields}) for r in rows]
    agg = aggregate(metrics)
    agg['SR_1m'] = float(np.mean([r['sr_1m'] for r in rows])) if rows else 0.0
    logger.info('%s: %s', spec.name, {k: round(v, 3) for k, v in agg.items()})
    return {'spec': dataclasses.asdict(spec), 'aggregate': agg, 'episodes': rows}


def default_workers() -> int:
    """Worker processes for evaluation on this machine."""
    return max(1, (os.cpu_count() or 1) - 1)
