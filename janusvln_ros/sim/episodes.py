"""VLN episodes in the generated houses: start pose, goal, reference path and instruction.

An episode starts in one room and ends next to a goal object in another. The reference path is
the geodesic shortest path on the occupancy grid (built with the robot's collision test),
string-pulled into straight segments. The instruction is templated from the rooms the path
crosses, the turns it makes and landmarks it passes. Everything is deterministic from the seed.

The built-in set ships as ``janusvln_ros/data/episodes.json``; regenerate it with
``python -m janusvln_ros.sim.episodes OUT.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import dataclasses
import functools
import json
import logging
import math
import pathlib
import random
import sys
from typing import Any

import numpy as np

from janusvln_ros.sim.env import Pose2D, SimEnv
from janusvln_ros.sim.instructions import make_instruction  # re-exported: the old home
from janusvln_ros.sim.navmap import GeodesicField, NavMap, resample_path
from janusvln_ros.sim.world import build_house, House, HouseConfig, SceneObject


logger = logging.getLogger(__name__)

BUILTIN_EPISODES = pathlib.Path(__file__).resolve().parents[1] / 'data' / 'episodes.json'
FORMAT_VERSION = 1
REFERENCE_SPACING_M = 0.25
# The built-in set: (house seed, rows, cols, episodes in that house).
BUILTIN_HOUSES = ((11, 2, 3, 4), (12, 2, 3, 4), (13, 2, 2, 4), (14, 2, 4, 4), (15, 2, 3, 4))


# Optional Episode fields, written only when set.
_OPTIONAL_FIELDS = ('split', 'style', 'path_id')


@dataclasses.dataclass(frozen=True)
class Episode:
    """One navigation episode.

    Attributes:
        episode_id: Unique id, e.g. ``'ep07'``.
        house: The house to build.
        start: Start pose ``(x, y, yaw)`` in metres and radians.
        goal: Goal position ``(x, y)`` in metres.
        goal_object: Name of the object the goal stands next to.
        goal_room: Type of the goal's room.
        instruction: The natural-language instruction.
        reference_path: Waypoints ``((x, y), ...)`` of the shortest path, start to goal.
        geodesic_distance: Geodesic start-to-goal distance in metres.
        split: The split the episode belongs to (:mod:`janusvln_ros.sim.splits`), or ''.
        style: Instruction style, ``'coarse'`` or ``'fine'``, or ''.
        path_id: Id shared by the episodes of one (start, goal) path, or ''.
    """

    episode_id: str
    house: HouseConfig
    start: tuple[float, float, float]
    goal: tuple[float, float]
    goal_object: str
    goal_room: str
    instruction: str
    reference_path: tuple[tuple[float, float], ...]
    geodesic_distance: float
    split: str = ''
    style: str = ''
    path_id: str = ''

    @property
    def start_pose(self) -> Pose2D:
        """The start as a :class:`Pose2D`."""
        return Pose2D(*self.start)

    def reference_positions(self, spacing: float = REFERENCE_SPACING_M) -> np.ndarray:
        """The reference path resampled every ``spacing`` metres: ``(m, 2)`` float64."""
        return resample_path(np.asarray(self.reference_path), spacing)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = dataclasses.asdict(self)
        out['start'] = list(self.start)
        out['goal'] = list(self.goal)
        out['reference_path'] = [list(p) for p in self.reference_path]
        for name in _OPTIONAL_FIELDS:  # left out when unset: older files stay byte-identical
            if not out[name]:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Episode:
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        values['house'] = HouseConfig(**values['house'])
        values['start'] = tuple(float(v) for v in values['start'])
        values['goal'] = tuple(float(v) for v in values['goal'])
        values['reference_path'] = tuple(tuple(float(v) for v in p)
                                         for p in values['reference_path'])
        return cls(**values)


def load_episodes(path: str | pathlib.Path | None = None) -> list[Episode]:
    """Read an episode file (default: the built-in set).

    Raises:
        ValueError: The file has an unknown format version.
    """
    path = pathlib.Path(path) if path else BUILTIN_EPISODES
    data = json.loads(path.read_text())
    if data.get('version') != FORMAT_VERSION:
        raise ValueError(f'{path}: expected episode format version {FORMAT_VERSION}, '
                         f'got {data.get("version")!r}')
    return [Episode.from_dict(e) for e in data['episodes']]


def save_episodes(episodes: Sequence[Episode], path: str | pathlib.Path) -> None:
    """Write episodes as JSON (the format :func:`load_episodes` reads)."""
    data = {'version': FORMAT_VERSION, 'episodes': [e.to_dict() for e in episodes]}
    pathlib.Path(path).write_text(json.dumps(data, indent=1) + '\n')


def find_episode(episodes: Sequence[Episode], episode_id: str) -> Episode:
    """Look an episode up by id.

    Raises:
        KeyError: Unknown id.
    """
    for episode in episodes:
        if episode.episode_id == episode_id:
            return episode
    raise KeyError(f'unknown episode id {episode_id!r}; known: '
                   f'{[e.episode_id for e in episodes]}')


@functools.lru_cache(maxsize=8)
def house_for(config: HouseConfig) -> House:
    """The house of a config (cached)."""
    return build_house(config)


@functools.lru_cache(maxsize=8)
def navmap_for(config: HouseConfig) -> NavMap:
    """The occupancy grid of a house (cached; built with a render-free environment)."""
    return NavMap.from_env(SimEnv(house_for(config), render=False))


@functools.lru_cache(maxsize=32)
def _field(config: HouseConfig, goal: tuple[float, float]) -> GeodesicField:
    return navmap_for(config).distance_field(goal)


def field_for(episode: Episode) -> GeodesicField:
    """The geodesic distance field to an episode's goal (cached)."""
    return _field(episode.house, episode.goal)


# -- generation ---------------------------------------------------------------------------------
def _goal_point(house: House, navmap: NavMap, obj: SceneObject) -> tuple[float, float] | None:
    """A free point in front of an object (towards its room's centre), or None."""
    room = house.rooms[obj.room]
    cx, cy = room.centre
    dx, dy = cx - obj.x, cy - obj.y
    norm = math.hypot(dx, dy) or 1.0
    reach = 0.5 * max(obj.size_x, obj.size_y) + 0.35
    j, i = navmap.nearest_free(obj.x + dx / norm * reach, obj.y + dy / norm * reach)
    x, y = navmap.centre_of(j, i)
    if not room.contains(x, y) or math.hypot(x - obj.x, y - obj.y) > reach + 0.6:
        return None
    return (round(x, 3), round(y, 3))


def _has_clearance(navmap: NavMap, j: int, i: int, cells: int) -> bool:
    ny, nx = navmap.free.shape
    if j < cells or i < cells or j >= ny - cells or i >= nx - cells:
        return False
    return bool(navmap.free[j - cells:j + cells + 1, i - cells:i + cells + 1].all())


def generate_episodes(config: HouseConfig, count: int, first_id: int = 0,
                      min_distance: float = 4.0, max_distance: float = 16.0) -> list[Episode]:
    """Generate ``count`` episodes in one house, deterministically from ``config.seed``.

    Args:
        config: The house.
        count: Number of episodes.
        first_id: Number of the first episode id (``ep{n:02d}``).
        min_distance: Smallest geodesic start-to-goal distance in metres.
        max_distance: Largest geodesic start-to-goal distance in metres.

    Returns:
        The episodes.

    Raises:
        RuntimeError: The house has no room for that many distinct episodes.
    """
    house = house_for(config)
    navmap = navmap_for(config)
    rng = random.Random(config.seed * 7919 + 17)
    episodes: list[Episode] = []
    used: set[str] = set()
    free_cells = np.argwhere(navmap.free)
    for _ in range(400):
        if len(episodes) == count:
            break
        goal_obj = rng.choice(house.objects)
        if goal_obj.name in used:
            continue
        goal = _goal_point(house, navmap, goal_obj)
        if goal is None:
            continue
        j, i = free_cells[rng.randrange(len(free_cells))]
        start_room = house.room_at(*navmap.centre_of(int(j), int(i)))
        if (start_room is None or start_room.index == goal_obj.room
                or not _has_clearance(navmap, int(j), int(i), 6)):
            continue
        sx, sy = navmap.centre_of(int(j), int(i))
        yaw = math.radians(15 * rng.randrange(-12, 12))
        field = _field(config, goal)
        distance = field.distance(sx, sy)
        if not min_distance <= distance <= max_distance:
            continue
        path = field.shortest_path(sx, sy)
        instruction = make_instruction(house, path, yaw, goal_obj, rng)
        used.add(goal_obj.name)
        episodes.append(Episode(
            episode_id=f'ep{first_id + len(episodes):02d}', house=config,
            start=(round(sx, 3), round(sy, 3), round(yaw, 6)), goal=goal,
            goal_object=goal_obj.name, goal_room=house.rooms[goal_obj.room].kind,
            instruction=instruction,
            reference_path=tuple((round(float(x), 3), round(float(y), 3)) for x, y in path),
            geodesic_distance=round(distance, 3)))
    if len(episodes) < count:
        raise RuntimeError(f'house seed {config.seed}: made {len(episodes)} of {count} episodes')
    return episodes


def generate_builtin() -> list[Episode]:
    """Generate the built-in episode set (what ``data/episodes.json`` holds)."""
    episodes: list[Episode] = []
    for seed, rows, cols, count in BUILTIN_HOUSES:
        episodes += generate_episodes(HouseConfig(seed=seed, rows=rows, cols=cols), count,
                                      first_id=len(episodes))
    return episodes


def main(argv: list[str] | None = None) -> int:
    """Write the built-in episode set to a file."""
    parser = argparse.ArgumentParser(description='Generate the built-in VLN episode set.')
    parser.add_argument('out', help='output JSON file')
    args = parser.parse_args(argv)
    save_episodes(generate_builtin(), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
