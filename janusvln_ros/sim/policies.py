"""Non-learned policies as engines: the oracle shortest-path follower and a random walker.

Both implement the :class:`~janusvln_ros.core.types.Engine` protocol, so they run in process
(:mod:`janusvln_ros.sim.runner`) or inside the unmodified ROS node
(``engine:=janusvln_ros.sim.policies:OracleEngine``).

The oracle needs the robot's true pose, which an image does not carry. Engines never talk ROS,
so the pose comes through a *pose source*: in process, a callable given by the runner; in the
ROS loop, a small JSON file that ``sim_bridge_node`` rewrites (atomically) on every simulation
tick with the current episode id and the ground-truth pose (bridge parameter ``pose_file``).
The file's path reaches the engine through ``EngineConfig.script`` as ``pose_file=PATH``.
Reading the true pose each step (rather than re-simulating its own actions) keeps the oracle
right when velocity execution over ROS does not move exactly 0.25 m or 15 degrees.
"""

from __future__ import annotations

from collections.abc import Callable
import functools
import json
import logging
import math
import pathlib
import random
import time

import numpy as np

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.errors import ConfigError, InferenceError
from janusvln_ros.core.types import Action, StepResult
from janusvln_ros.sim.env import FORWARD_STEP_M, Pose2D, SimEnv, TURN_STEP_RAD
from janusvln_ros.sim.episodes import Episode, field_for, find_episode, house_for, load_episodes
from janusvln_ros.sim.world import HouseConfig


logger = logging.getLogger(__name__)

STOP_RADIUS_M = 0.3
# VLN-CE's random baseline samples the action distribution of the R2R training set.
RANDOM_PROBS = {Action.STOP: 0.02, Action.MOVE_FORWARD: 0.68, Action.TURN_LEFT: 0.15,
                Action.TURN_RIGHT: 0.15}

PoseSource = Callable[[], tuple[str, Pose2D]]


def parse_options(script: str) -> dict[str, str]:
    """Parse ``'key=value;key=value'`` (the free-form ``EngineConfig.script`` of these engines).

    Raises:
        ConfigError: An item has no ``=``.
    """
    options = {}
    for item in filter(None, (part.strip() for part in script.split(';'))):
        key, sep, value = item.partition('=')
        if not sep:
            raise ConfigError(f'script: expected "key=value;..." items, got {item!r}')
        options[key.strip()] = value.strip()
    return options


@functools.lru_cache(maxsize=8)
def _collision_env(config: HouseConfig) -> SimEnv:
    return SimEnv(house_for(config), render=False)


def oracle_action(episode: Episode, pose: Pose2D, stop_radius: float = STOP_RADIUS_M) -> Action:
    """The shortest-path follower's action at ``pose``.

    Among the 24 headings reachable by 15 degree turns, pick the one whose 0.25 m step (with
    sliding) ends geodesically closest to the goal; move forward if it is the current heading,
    else turn towards it the short way. Stop within ``stop_radius`` of the goal or when no step
    gets closer.

    Args:
        episode: The episode (its goal and house).
        pose: The robot's true pose.
        stop_radius: Geodesic distance at which to stop, metres.

    Returns:
        The action.
    """
    field = field_for(episode)
    env = _collision_env(episode.house)
    here = field.distance(pose.x, pose.y)
    if here < stop_radius:
        return Action.STOP
    best_k, best_d = 0, math.inf
    for k in range(24):
        turn = k if k <= 12 else k - 24  # signed number of 15 degree turns, short way first
        heading = pose.yaw + turn * TURN_STEP_RAD
        end, _ = env.move_result(Pose2D(pose.x, pose.y, heading), FORWARD_STEP_M)
        d = field.distance(end.x, end.y)
        if d < best_d - 1e-9 or (abs(d - best_d) <= 1e-9 and abs(turn) < abs(best_k)):
            best_k, best_d = turn, d
    if best_d >= here - 1e-6:
        return Action.STOP
    if best_k == 0:
        return Action.MOVE_FORWARD
    return Action.TURN_LEFT if best_k > 0 else Action.TURN_RIGHT


def file_pose_source(path: str | pathlib.Path) -> PoseSource:
    """A pose source reading the bridge's JSON pose file.

    The file holds ``{"episode_id": str, "x": float, "y": float, "yaw": float, ...}``.
    """
    path = pathlib.Path(path)

    def read() -> tuple[str, Pose2D]:
        for _ in range(50):
            try:
                data = json.loads(path.read_text())
                return str(data['episode_id']), Pose2D(float(data['x']), float(data['y']),
                                                       float(data['yaw']))
            except (OSError, ValueError, KeyError):
                time.sleep(0.01)  # not written yet
        raise InferenceError(f'no readable pose in {path}')

    return read


class OracleEngine:
    """Shortest-path oracle over discrete actions (ignores the image).

    Args:
        config: ``config.script`` may hold ``episodes=PATH`` (default: the built-in set) and
            ``pose_file=PATH`` (the bridge's pose file; needed unless ``pose_source`` is given).
        pose_source: Callable returning ``(episode_id, true pose)``.
    """

    def __init__(self, config: EngineConfig | None = None,
                 pose_source: PoseSource | None = None) -> None:
        options = parse_options(config.script) if config and '=' in config.script else {}
        self._episodes = load_episodes(options.get('episodes') or None)
        if pose_source is None:
            if not options.get('pose_file'):
                raise ConfigError('OracleEngine: needs pose_file=PATH in script (or a '
                                  'pose_source)')
            pose_source = file_pose_source(options['pose_file'])
        self._pose_source = pose_source
        self._step = 0

    def reset(self, instruction: str) -> None:
        """Start an episode (the episode itself comes with each pose)."""
        self._step = 0

    def step(self, frame: np.ndarray) -> StepResult:
        """Choose the next action from the true pose; ``frame`` is ignored."""
        start = time.perf_counter()
        episode_id, pose = self._pose_source()
        episode = find_episode(self._episodes, episode_id)
        action = oracle_action(episode, pose)
        result = StepResult(action=action, raw_output=f'oracle: {action.name}', step=self._step,
                            latencies_ms={'total': (time.perf_counter() - start) * 1e3})
        self._step += 1
        return result

    def close(self) -> None:
        """Nothing to free."""


class RandomEngine:
    """Random actions with VLN-CE's random-baseline distribution (ignores the image).

    Args:
        config: ``config.script`` may hold ``seed=N`` (default 0).
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        options = parse_options(config.script) if config and '=' in config.script else {}
        self._seed = int(options.get('seed', '0'))
        self._rng = random.Random(self._seed)
        self._step = 0

    def reset(self, instruction: str) -> None:
        """Start an episode: the action sequence depends on the seed and the instruction."""
        self._rng = random.Random(f'{self._seed}:{instruction}')
        self._step = 0

    def step(self, frame: np.ndarray) -> StepResult:
        """Sample an action."""
        action = self._rng.choices(list(RANDOM_PROBS), weights=list(RANDOM_PROBS.values()))[0]
        result = StepResult(action=action, raw_output=f'random: {action.name}', step=self._step,
                            latencies_ms={'total': 0.0})
        self._step += 1
        return result

    def close(self) -> None:
        """Nothing to free."""
