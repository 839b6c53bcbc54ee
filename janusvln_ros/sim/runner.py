"""Run engines on episodes in process: render, step the engine, move the robot, score.

The loop of one episode (as in VLN-CE): render the camera at the current pose, give the frame
to the engine, execute its action (0.25 m forward or a 15 degree turn), until the engine says
STOP or ``max_steps`` actions were taken. Everything, rendering included, runs on the calling
thread.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import logging
import time

import numpy as np

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.types import Action, Engine
from janusvln_ros.sim.env import CameraConfig, Pose2D, SimEnv
from janusvln_ros.sim.episodes import Episode, field_for, house_for
from janusvln_ros.sim.metrics import episode_metrics, EpisodeMetrics
from janusvln_ros.sim.policies import OracleEngine, PoseSource, RandomEngine


logger = logging.getLogger(__name__)

POLICIES = ('model', 'oracle', 'random')


@dataclasses.dataclass
class EpisodeRun:
    """The record of one episode.

    Attributes:
        episode: The episode.
        metrics: Its metrics.
        poses: Ground-truth pose before each action and after the last one.
        actions: Action ids taken, STOP included if called.
        frames: Frames kept for a video, each ``(H, W, 3)`` uint8.
        step_ms: Engine wall time per step in milliseconds.
        wall_s: Wall time of the whole episode.
    """

    episode: Episode
    metrics: EpisodeMetrics
    poses: list[Pose2D]
    actions: list[int]
    frames: list[np.ndarray]
    step_ms: list[float]
    wall_s: float

    def summary(self) -> dict:
        """Return a JSON-ready record of the episode, without frames."""
        return {
            'episode_id': self.episode.episode_id,
            'instruction': self.episode.instruction,
            'metrics': self.metrics.as_dict(),
            'actions': [Action(a).name for a in self.actions],
            'trajectory': [[round(p.x, 4), round(p.y, 4), round(p.yaw, 5)] for p in self.poses],
            'mean_step_ms': float(np.mean(self.step_ms)) if self.step_ms else 0.0,
            'wall_s': self.wall_s,
        }


def score(episode: Episode, poses: list[Pose2D], stopped: bool) -> EpisodeMetrics:
    """Compute the metrics of a trajectory (geodesic distances from the goal's field)."""
    field = field_for(episode)
    positions = np.array([[p.x, p.y] for p in poses], dtype=np.float64)
    distances = [field.distance(p.x, p.y) for p in poses]
    return episode_metrics(positions, distances, episode.reference_positions(), stopped,
                           geodesic_start=distances[0])


class LocalEvaluator:
    """Runs episodes in this process with one environment per house.

    Args:
        engine_factory: Builds the engine, given a pose source (used by the oracle only).
        camera: Camera settings.
        max_steps: Most actions per episode (STOP not counted).
        frame_every: Keep every n-th frame for a video (0: keep none).
        render: Render frames (False: the engine gets a black frame; for pose-only policies).
    """

    def __init__(self, engine_factory: Callable[[PoseSource], Engine],
                 camera: CameraConfig | None = None, max_steps: int = 500,
                 frame_every: int = 0, render: bool = True) -> None:
        self.camera = camera or CameraConfig()
        self.max_steps = max_steps
        self.frame_every = frame_every
        self.render = render
        self._envs: dict = {}
        self._env: SimEnv | None = None
        self._episode: Episode | None = None
        self.engine = engine_factory(self._pose)

    def _pose(self) -> tuple[str, Pose2D]:
        assert self._env is not None and self._episode is not None
        return self._episode.episode_id, self._env.pose

    def _env_for(self, episode: Episode) -> SimEnv:
        if episode.house not in self._envs:
            self._envs[episode.house] = SimEnv(house_for(episode.house), self.camera,
                                               render=self.render)
        return self._envs[episode.house]

    def run(self, episode: Episode,
            on_step: Callable[[int, Action], None] | None = None) -> EpisodeRun:
        """Run one episode to STOP or ``max_steps``.

        Args:
            episode: The episode.
            on_step: Called after each engine step with ``(step index, action)``.

        Returns:
            Its record.
        """
        env = self._env_for(episode)
        env.reset(episode.start_pose)
        self._env, self._episode = env, episode
        self.engine.reset(episode.instruction)
        poses, actions, frames, step_ms = [env.pose], [], [], []
        blank = np.zeros((self.camera.height, self.camera.width, 3), np.uint8)
        stopped = False
        start = time.perf_counter()
        for index in range(self.max_steps + 1):
            frame = env.render() if self.render else blank
            if self.frame_every and index % self.frame_every == 0:
                frames.append(frame)
            t0 = time.perf_counter()
            result = self.engine.step(frame)
            step_ms.append((time.perf_counter() - t0) * 1e3)
            action = Action(int(result.action))
            if on_step is not None:
                on_step(index, action)
            actions.append(int(action))
            if action == Action.STOP:
                stopped = True
                break
            if index == self.max_steps:
                actions.pop()  # the step budget is spent: this action is not executed
                break
            env.step(action)
            poses.append(env.pose)
        wall = time.perf_counter() - start
        metrics = score(episode, poses, stopped)
        logger.info('%s: %d actions, stopped=%s, NE %.2f m, SPL %.2f (%.1f s)',
                    episode.episode_id, len(poses) - 1, stopped, metrics.ne, metrics.spl, wall)
        return EpisodeRun(episode, metrics, poses, actions, frames, step_ms, wall)

    def close(self) -> None:
        """Close the engine and every environment."""
        self.engine.close()
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def engine_factory(policy: str, checkpoint: str = '', device: str = 'cpu', seed: int = 0,
                   episodes_path: str = '', dtype: str = 'float32',
                   mode: str = 'parity') -> Callable[[PoseSource], Engine]:
    """A factory of the engine for a policy name (``'model'``, ``'oracle'``, ``'random'``).

    Raises:
        ValueError: Unknown policy, or ``'model'`` without a checkpoint.
    """
    if policy == 'oracle':
        config = EngineConfig(engine='janusvln_ros.sim.policies:OracleEngine',
                              script=f'episodes={episodes_path}')
        return lambda pose_source: OracleEngine(config, pose_source)
    if policy == 'random':
        config = EngineConfig(engine='janusvln_ros.sim.policies:RandomEngine',
                              script=f'seed={seed}')
        return lambda pose_source: RandomEngine(config)
    if policy == 'model':
        if not checkpoint:
            raise ValueError('policy "model" needs a checkpoint directory')

        def build(pose_source: PoseSource) -> Engine:
            from janusvln_ros.core.factory import build_engine
            return build_engine(EngineConfig(engine='janusvln', model_path=checkpoint,
                                             device=device, dtype=dtype, mode=mode))
        return build
    raise ValueError(f'policy: expected one of {POLICIES}, got {policy!r}')
