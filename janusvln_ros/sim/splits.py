"""Training and validation splits of VLN episodes in the procedural houses, by house seed.

Fixed house-seed ranges (never change them: trained models and reported numbers refer to them):

============  =============  ======  =======================  ===========================
split         house seeds    houses  per house                episodes (paths x 2 styles)
============  =============  ======  =======================  ===========================
train         1000 - 1239    240     3 starts x 2 goals       2,880 (1,440 paths)
val_seen      1000 - 1049    50      1 start x 2 goals        200 (100 paths)
val_unseen    5000 - 5049    50      1 start x 2 goals        200 (100 paths)
============  =============  ======  =======================  ===========================

(Episode counts as measured: every house of every split gives its full set.) A house takes about
0.4 s on one core, 0.3 s of it the occupancy grid (:meth:`NavMap.from_env`); a whole split
scales with ``workers``.

* ``val_seen`` holds new episodes in the first 50 *training* houses: drawn from another random
  stream, and every val_seen start lies at least ``VAL_SEEN_MIN_START_GAP_M`` from every train
  start of that house, so no (start, goal) pair of val_seen is a train one.
* ``val_unseen`` houses are never used in training.
* The layout of a house depends on its seed only: ``LAYOUTS[seed % 5]`` (2x2, 2x3, 3x2, 2x4 or
  4x2 rooms of 4 m); see :func:`house_config`.

Per house, each start pose is a free cell with 0.3 m clearance (start rooms are drawn in a random
order so that starts spread over rooms; heading a multiple of 15 degrees). From each start,
``goals_per_start`` different goal objects in other rooms are drawn, at a geodesic distance of
3 to 14 m. Each (start, goal) path gives two episodes sharing a ``path_id``: a coarse and a fine
instruction (:mod:`janusvln_ros.sim.instructions`). Episode ids are
``'{split}-{seed}-s{start}-g{goal}-{style}'``.

Everything is deterministic bit for bit: string-seeded :class:`random.Random` streams (hashed
with SHA-512 by Python, independent of ``PYTHONHASHSEED``), one per (split, house, purpose), and
the same result for any number of worker processes.

Write a split to a file: ``python -m janusvln_ros.sim.splits val_unseen OUT.json --workers 4``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
import dataclasses
import functools
import logging
import math
import multiprocessing
import random
import sys
import time

import numpy as np
from scipy.ndimage import binary_erosion

from janusvln_ros.sim.episodes import (_goal_point, Episode, house_for, navmap_for,
                                       save_episodes)
from janusvln_ros.sim.instructions import coarse_instruction, fine_instruction
from janusvln_ros.sim.navmap import GeodesicField, NavMap
from janusvln_ros.sim.world import House, HouseConfig, SceneObject


logger = logging.getLogger(__name__)

SPLITS = ('train', 'val_seen', 'val_unseen')
STYLES = ('coarse', 'fine')
# House seeds of each split (see the module docstring's table).
SPLIT_SEEDS = {
    'train': range(1000, 1240),
    'val_seen': range(1000, 1050),
    'val_unseen': range(5000, 5050),
}
# Default (starts per house, goals per start) of each split.
SPLIT_SIZES = {'train': (3, 2), 'val_seen': (1, 2), 'val_unseen': (1, 2)}
# Room grids (rows, cols); a house's layout is LAYOUTS[seed % len(LAYOUTS)].
LAYOUTS = ((2, 2), (2, 3), (3, 2), (2, 4), (4, 2))
ROOM_SIZE_M = 4.0
MIN_DISTANCE_M = 3.0
MAX_DISTANCE_M = 14.0
START_CLEARANCE_CELLS = 6  # 0.3 m at the navmap's 5 cm cells
VAL_SEEN_MIN_START_GAP_M = 1.0
MAX_START_ATTEMPTS = 40


def house_config(seed: int) -> HouseConfig:
    """The house of a seed: layout ``LAYOUTS[seed % 5]``, 4 m rooms."""
    rows, cols = LAYOUTS[seed % len(LAYOUTS)]
    return HouseConfig(seed=seed, rows=rows, cols=cols, room_size=ROOM_SIZE_M)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r}; expected one of {SPLITS}')


def split_house_seeds(split: str) -> list[int]:
    """The house seeds of a split, in order.

    Raises:
        ValueError: Unknown split.
    """
    _check_split(split)
    return list(SPLIT_SEEDS[split])


@dataclasses.dataclass(frozen=True)
class _Path:
    """One chosen (start, goal) pair of a house."""

    start_index: int
    goal_index: int
    start: tuple[float, float, float]
    goal_obj: SceneObject
    goal: tuple[float, float]


class _HouseGeometry:
    """What path selection needs of one house: start cells per room, goal points and fields."""

    def __init__(self, config: HouseConfig) -> None:
        self.config = config
        self.house: House = house_for(config)
        self.navmap: NavMap = navmap_for(config)
        size = 2 * START_CLEARANCE_CELLS + 1
        clear = binary_erosion(self.navmap.free, structure=np.ones((size, size), bool),
                               border_value=0)
        cells = np.argwhere(clear)  # row-major (j, i): deterministic order
        xy = (cells[:, ::-1] + 0.5) * self.navmap.resolution
        self.start_cells: dict[int, np.ndarray] = {}
        for room in self.house.rooms:
            inside = ((xy[:, 0] >= room.x0) & (xy[:, 0] < room.x1)
                      & (xy[:, 1] >= room.y0) & (xy[:, 1] < room.y1))
            self.start_cells[room.index] = cells[inside]
        self.goals: list[tuple[SceneObject, tuple[float, float]]] = []
        for obj in self.house.objects:
            point = _goal_point(self.house, self.navmap, obj)
            if point is not None:
                self.goals.append((obj, point))
        self.goal_cells = [self.navmap.nearest_free(*point) for _, point in self.goals]
        self._fields: dict[str, GeodesicField] = {}

    def field(self, obj: SceneObject, point: tuple[float, float]) -> GeodesicField:
        """The geodesic field to a goal point (computed once per house)."""
        if obj.name not in self._fields:
            self._fields[obj.name] = self.navmap.distance_field(point)
        return self._fields[obj.name]


def _stream(split: str, seed: int, purpose: str) -> random.Random:
    """A random stream of its own for (split, house, purpose); str seeds hash with SHA-512."""
    return random.Random(f'janusvln/{split}/{seed}/{purpose}')


def _select_paths(geo: _HouseGeometry, split: str, starts: int, goals_per_start: int,
                  avoid_starts: tuple[tuple[float, float], ...] = ()) -> list[_Path]:
    """Choose the (start, goal) pairs of one house for one split.

    Args:
        geo: The house.
        split: The split (names the random stream).
        starts: Start poses wanted.
        goals_per_start: Different goal objects wanted per start.
        avoid_starts: Starts must be at least ``VAL_SEEN_MIN_START_GAP_M`` from these.

    Returns:
        Up to ``starts * goals_per_start`` paths; a start is kept only with a full set of goals.
    """
    rng = _stream(split, geo.config.seed, 'paths')
    rooms = [r.index for r in geo.house.rooms]
    rng.shuffle(rooms)
    chosen: list[_Path] = []
    n_starts = 0
    for attempt in range(MAX_START_ATTEMPTS):
        if n_starts == starts:
            break
        room = rooms[attempt % len(rooms)]
        cells = geo.start_cells[room]
        yaw = math.radians(15 * rng.randrange(-12, 12))
        if not len(cells):
            continue
        j, i = cells[rng.randrange(len(cells))]
        sx, sy = geo.navmap.centre_of(int(j), int(i))
        if any(math.hypot(sx - ax, sy - ay) < VAL_SEEN_MIN_START_GAP_M
               for ax, ay in avoid_starts):
            continue
        # One Dijkstra from the start gives the distance to every goal (the graph is
        # undirected); the goal's own field is computed only for the goals chosen.
        from_start = geo.navmap.distance_field((sx, sy)).field
        eligible = []
        for (obj, point), (gj, gi) in zip(geo.goals, geo.goal_cells):
            if obj.room != room and MIN_DISTANCE_M <= from_start[gj, gi] <= MAX_DISTANCE_M:
                eligible.append((obj, point))
        if len(eligible) < goals_per_start:
            continue
        start = (round(sx, 3), round(sy, 3), round(yaw, 6))
        for g, (obj, point) in enumerate(rng.sample(eligible, goals_per_start)):
            chosen.append(_Path(n_starts, g, start, obj, point))
        n_starts += 1
    if n_starts < starts:
        logger.debug('house seed %d (%s): %d of %d starts', geo.config.seed, split, n_starts,
                     starts)
    return chosen


def generate_house_episodes(split: str, seed: int, starts: int | None = None,
                            goals_per_start: int | None = None) -> list[Episode]:
    """All episodes of one house for a split, deterministic bit for bit.

    Args:
        split: One of :data:`SPLITS`.
        seed: The house seed.
        starts: Start poses (default: the split's, :data:`SPLIT_SIZES`).
        goals_per_start: Different goals per start (default: the split's).

    Returns:
        Two episodes (coarse, fine) per path, ordered by start, goal, style. A house that cannot
        give a full set gives what it can (logged at debug level).

    Raises:
        ValueError: Unknown split.
    """
    _check_split(split)
    default_starts, default_goals = SPLIT_SIZES[split]
    starts = default_starts if starts is None else starts
    goals_per_start = default_goals if goals_per_start is None else goals_per_start
    geo = _HouseGeometry(house_config(seed))
    avoid: tuple[tuple[float, float], ...] = ()
    if split == 'val_seen':
        train_starts, train_goals = SPLIT_SIZES['train']
        avoid = tuple(dict.fromkeys(p.start[:2] for p in _select_paths(
            geo, 'train', train_starts, train_goals)))
    episodes: list[Episode] = []
    for path in _select_paths(geo, split, starts, goals_per_start, avoid):
        field = geo.field(path.goal_obj, path.goal)
        sx, sy, yaw = path.start
        waypoints = field.shortest_path(sx, sy)
        reference = tuple((round(float(x), 3), round(float(y), 3)) for x, y in waypoints)
        path_id = f'{split}-{seed}-s{path.start_index}-g{path.goal_index}'
        rng = _stream(split, seed, f's{path.start_index}-g{path.goal_index}/words')
        start_room = geo.house.room_at(sx, sy)
        texts = {'coarse': coarse_instruction(geo.house, path.goal_obj, rng, start_room),
                 'fine': fine_instruction(geo.house, waypoints, yaw, path.goal_obj, rng)}
        for style in STYLES:
            episodes.append(Episode(
                episode_id=f'{path_id}-{style}', house=geo.config, start=path.start,
                goal=path.goal, goal_object=path.goal_obj.name,
                goal_room=geo.house.rooms[path.goal_obj.room].kind, instruction=texts[style],
                reference_path=reference, geodesic_distance=round(field.distance(sx, sy), 3),
                split=split, style=style, path_id=path_id))
    return episodes


def _iter_houses(split: str, seeds: list[int], workers: int) -> Iterator[list[Episode]]:
    job = functools.partial(generate_house_episodes, split)
    if workers <= 1:
        yield from map(job, seeds)
        return
    # spawn: safe whatever threads (torch, MuJoCo renderers) the parent already runs.
    with multiprocessing.get_context('spawn').Pool(workers) as pool:
        yield from pool.imap(job, seeds)


def generate_split(split: str, limit: int | None = None, workers: int = 1,
                   progress: bool = False) -> list[Episode]:
    """All episodes of a split, house by house in seed order.

    Args:
        split: One of :data:`SPLITS`.
        limit: Keep only the first ``limit`` episodes (and stop generating once reached).
        workers: Worker processes, spawned (not forked: safe under threads the caller may
            run; the caller's script needs the usual ``if __name__ == '__main__'`` guard).
            Results come in seed order, identical for any count.
        progress: Show a tqdm progress bar over the houses.

    Returns:
        The episodes.

    Raises:
        ValueError: Unknown split.
    """
    seeds = split_house_seeds(split)
    houses = _iter_houses(split, seeds, workers)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(seeds), desc=split, unit='house')
    episodes: list[Episode] = []
    try:
        for batch in houses:
            episodes += batch
            if bar is not None:
                bar.update()
            if limit is not None and len(episodes) >= limit:
                break
    finally:
        houses.close()  # stops the pool when the limit ends the loop early
        if bar is not None:
            bar.close()
    return episodes if limit is None else episodes[:limit]


def main(argv: list[str] | None = None) -> int:
    """Write one split's episodes to a JSON file (the format ``load_episodes`` reads)."""
    parser = argparse.ArgumentParser(description='Generate the episodes of a split.')
    parser.add_argument('split', choices=SPLITS)
    parser.add_argument('out', help='output JSON file')
    parser.add_argument('--workers', type=int, default=1, help='worker processes')
    parser.add_argument('--limit', type=int, default=None, help='keep the first N episodes')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    t0 = time.perf_counter()
    episodes = generate_split(args.split, args.limit, args.workers, progress=True)
    save_episodes(episodes, args.out)
    logger.info('%s: %d episodes in %.1f s -> %s', args.split, len(episodes),
                time.perf_counter() - t0, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
