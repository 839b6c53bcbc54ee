"""Layout of the procedural houses: rooms, doors and furniture, deterministic from a seed.

A house is a grid of square rooms. Doors (1 m gaps with a lintel) come from a random spanning
tree over the rooms plus one extra door, so every room is reachable. Each room has a type (living
room, kitchen, ...) and three pieces of furniture in three of its four corners, recorded as
:class:`SceneObject` (category, colour, room, position), from which episodes and instructions
are generated. Turning a layout into MuJoCo geometry is :mod:`janusvln_ros.sim.mjcf`'s job.

World frame: x east, y north, z up, metres; the house spans ``[0, width] x [0, height]``.
"""

from __future__ import annotations

import dataclasses
import math
import random

from janusvln_ros.core.errors import ConfigError


WALL_THICKNESS = 0.10
WALL_HEIGHT = 2.60
DOOR_WIDTH = 1.00
LINTEL_HEIGHT = 0.45
MAX_LIGHTS = 8  # the classic renderer uses the first 8 lights only

ROOM_TYPES = ('living room', 'kitchen', 'bedroom', 'office', 'bathroom', 'hallway',
              'dining room', 'laundry room')

WALL_RGBA = {
    'living room': (0.85, 0.78, 0.62), 'kitchen': (0.70, 0.85, 0.75),
    'bedroom': (0.70, 0.75, 0.90), 'office': (0.90, 0.88, 0.80),
    'bathroom': (0.80, 0.92, 0.95), 'hallway': (0.92, 0.80, 0.80),
    'dining room': (0.95, 0.90, 0.70), 'laundry room': (0.80, 0.80, 0.86),
}
FLOOR_MATERIAL = {
    'living room': 'wood', 'kitchen': 'tiles', 'bedroom': 'carpet', 'office': 'wood',
    'bathroom': 'tiles', 'hallway': 'stone', 'dining room': 'parquet', 'laundry room': 'stone',
}
# Four candidate objects per room type (category, colour name); three are placed.
FURNITURE = {
    'living room': (('sofa', 'red'), ('armchair', 'orange'), ('tv', 'black'), ('plant', 'green')),
    'kitchen': (('fridge', 'white'), ('counter', 'grey'), ('stove', 'black'),
                ('table', 'brown')),
    'bedroom': (('bed', 'blue'), ('wardrobe', 'brown'), ('lamp', 'yellow'),
                ('dresser', 'purple')),
    'office': (('desk', 'white'), ('bookshelf', 'brown'), ('chair', 'black'),
               ('cabinet', 'blue')),
    'bathroom': (('bathtub', 'white'), ('sink', 'white'), ('toilet', 'white'),
                 ('shelf', 'teal')),
    'hallway': (('bench', 'green'), ('coat rack', 'brown'), ('shoe cabinet', 'yellow'),
                ('plant', 'green')),
    'dining room': (('table', 'brown'), ('cupboard', 'blue'), ('plant', 'green'),
                    ('clock', 'gold')),
    'laundry room': (('washing machine', 'white'), ('dryer', 'silver'), ('basket', 'blue'),
                     ('ironing board', 'grey')),
}
COLOURS = {
    'red': (0.80, 0.10, 0.10), 'orange': (0.95, 0.50, 0.10), 'black': (0.05, 0.05, 0.05),
    'green': (0.15, 0.60, 0.20), 'white': (0.95, 0.95, 0.95), 'grey': (0.45, 0.45, 0.50),
    'brown': (0.50, 0.32, 0.16), 'blue': (0.15, 0.30, 0.80), 'yellow': (0.95, 0.85, 0.20),
    'purple': (0.55, 0.20, 0.65), 'teal': (0.10, 0.60, 0.60), 'silver': (0.75, 0.77, 0.80),
    'gold': (0.85, 0.65, 0.15),
}
# Footprint (x size, y size, height) in metres of each category.
SIZES = {
    'sofa': (1.40, 0.80, 0.80), 'armchair': (0.80, 0.80, 0.85), 'tv': (1.20, 0.45, 1.20),
    'plant': (0.50, 0.50, 1.10), 'fridge': (0.75, 0.70, 1.80), 'counter': (1.40, 0.60, 0.90),
    'stove': (0.70, 0.65, 0.90), 'table': (1.20, 0.80, 0.75), 'bed': (1.40, 1.40, 0.90),
    'wardrobe': (1.20, 0.60, 2.00), 'lamp': (0.40, 0.40, 1.60), 'dresser': (1.00, 0.50, 0.90),
    'desk': (1.30, 0.70, 1.15), 'bookshelf': (1.00, 0.35, 2.00), 'chair': (0.55, 0.55, 0.95),
    'cabinet': (0.60, 0.60, 1.30), 'bathtub': (1.40, 0.75, 0.60), 'sink': (0.60, 0.45, 1.70),
    'toilet': (0.45, 0.65, 0.80), 'shelf': (0.80, 0.35, 1.50), 'bench': (1.30, 0.40, 0.50),
    'coat rack': (0.45, 0.45, 1.80), 'shoe cabinet': (0.90, 0.40, 1.00),
    'cupboard': (1.00, 0.50, 1.90), 'clock': (0.50, 0.40, 1.90),
    'washing machine': (0.65, 0.65, 0.90), 'dryer': (0.65, 0.65, 0.90),
    'basket': (0.50, 0.50, 0.60), 'ironing board': (1.30, 0.40, 0.90),
}


@dataclasses.dataclass(frozen=True)
class HouseConfig:
    """Which house to build.

    Attributes:
        seed: Seed of every random choice (room types, doors, furniture, textures).
        rows: Rooms along y.
        cols: Rooms along x.
        room_size: Side of each square room in metres.
    """

    seed: int = 0
    rows: int = 2
    cols: int = 3
    room_size: float = 4.0

    def __post_init__(self) -> None:
        """Validate every field; raise :class:`ConfigError` naming the bad one."""
        for name in ('seed', 'rows', 'cols'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (
                    0 if name == 'seed' else 1):
                raise ConfigError(f'{name}: expected a non-negative integer, got {value!r}')
        if self.rows * self.cols < 2 or self.rows * self.cols > len(ROOM_TYPES):
            raise ConfigError(f'rows*cols: expected 2..{len(ROOM_TYPES)} rooms, '
                              f'got {self.rows}x{self.cols}')
        if not 3.0 <= self.room_size <= 8.0:
            raise ConfigError(f'room_size: expected 3..8 m, got {self.room_size}')


@dataclasses.dataclass(frozen=True)
class Room:
    """One room: grid cell ``(row, col)``, type and bounds in the world frame (metres)."""

    index: int
    row: int
    col: int
    kind: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def centre(self) -> tuple[float, float]:
        """Centre of the room."""
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def contains(self, x: float, y: float) -> bool:
        """Whether ``(x, y)`` lies inside the room's cell."""
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1


@dataclasses.dataclass(frozen=True)
class SceneObject:
    """A piece of furniture: a landmark and a possible goal.

    Attributes:
        name: Unique id within the house, e.g. ``'kitchen_fridge'``.
        category: Object category, e.g. ``'fridge'``.
        colour: Colour name used in instructions, e.g. ``'white'``.
        room: Index of the room holding it.
        x: Centre x in metres.
        y: Centre y in metres.
        size_x: Footprint along x in metres.
        size_y: Footprint along y in metres.
    """

    name: str
    category: str
    colour: str
    room: int
    x: float
    y: float
    size_x: float
    size_y: float

    @property
    def label(self) -> str:
        """Words naming the object in an instruction, e.g. ``'white fridge'``."""
        return f'{self.colour} {self.category}'


@dataclasses.dataclass(frozen=True)
class Door:
    """A door gap between two rooms, centred at ``(x, y)``."""

    room_a: int
    room_b: int
    x: float
    y: float


def _door_tree(rng: random.Random, rows: int, cols: int) -> set[tuple[int, int]]:
    """Random spanning tree over the room grid plus one extra edge (room index pairs)."""
    edges = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    edges += [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    rng.shuffle(edges)
    parent = list(range(rows * cols))

    def find(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    doors: set[tuple[int, int]] = set()
    rest = []
    for a, b in edges:
        if find(a) != find(b):
            parent[find(a)] = find(b)
            doors.add((a, b))
        else:
            rest.append((a, b))
    if rest:
        doors.add(rest[0])
    return doors


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one object stands.

    Attributes:
        obj: The object (its position rounded to 0.1 mm).
        x: Exact centre x in metres (the geometry is drawn here).
        y: Exact centre y in metres.
        back: +1 if the object's back faces north, -1 if south.
    """

    obj: SceneObject
    x: float
    y: float
    back: float


@dataclasses.dataclass(frozen=True)
class Layout:
    """The rooms, doors and furniture of one house, before any geometry is emitted.

    Attributes:
        config: The config it was generated from.
        rooms: Rooms in index order (row-major over the grid).
        door_pairs: Room index pairs ``(a, b)``, ``a < b``, joined by a door.
        doors: The door gaps, in emission order.
        placements: Every placed object with its orientation, room by room.
    """

    config: HouseConfig
    rooms: list[Room]
    door_pairs: frozenset[tuple[int, int]]
    doors: list[Door]
    placements: list[Placement]

    @property
    def objects(self) -> list[SceneObject]:
        """The placed objects, room by room."""
        return [p.obj for p in self.placements]


def plan_house(config: HouseConfig) -> Layout:
    """Generate the layout of a house; the same config always gives the same layout.

    Args:
        config: Seed and grid size.

    Returns:
        The rooms, doors and furniture placements.
    """
    rng = random.Random(config.seed)
    s, rows, cols = config.room_size, config.rows, config.cols
    kinds = list(ROOM_TYPES)
    rng.shuffle(kinds)
    rooms = [Room(r * cols + c, r, c, kinds[r * cols + c], c * s, r * s, (c + 1) * s,
                  (r + 1) * s) for r in range(rows) for c in range(cols)]
    door_pairs = _door_tree(rng, rows, cols)
    doors: list[Door] = []
    for room in rooms:
        i = room.index
        if room.row < rows - 1 and (i, i + cols) in door_pairs:
            doors.append(Door(i, i + cols, room.centre[0], room.y1))
        if room.col < cols - 1 and (i, i + 1) in door_pairs:
            doors.append(Door(i, i + 1, room.x1, room.centre[1]))
    placements: list[Placement] = []
    inset = WALL_THICKNESS / 2 + 0.03
    for room in rooms:
        options = list(FURNITURE[room.kind])
        rng.shuffle(options)
        corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
        rng.shuffle(corners)
        for (category, colour), (east, north) in zip(options[:3], corners[:3]):
            sx, sy, _ = SIZES[category]
            x = room.x1 - inset - sx / 2 if east else room.x0 + inset + sx / 2
            y = room.y1 - inset - sy / 2 if north else room.y0 + inset + sy / 2
            name = f'{room.kind.replace(" ", "_")}_{category.replace(" ", "_")}'
            obj = SceneObject(name, category, colour, room.index, round(x, 4), round(y, 4),
                              sx, sy)
            placements.append(Placement(obj, x, y, 1.0 if north else -1.0))
    return Layout(config, rooms, frozenset(door_pairs), doors, placements)


def angle_diff(a: float, b: float) -> float:
    """Return the signed smallest difference ``a - b`` of two angles, in ``[-pi, pi)``."""
    return (a - b + math.pi) % (2 * math.pi) - math.pi
