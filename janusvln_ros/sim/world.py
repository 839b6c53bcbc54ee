"""Procedural multi-room houses as MuJoCo MJCF, deterministic from a seed.

A house is a grid of square rooms. Doors (1 m gaps with a lintel) come from a random spanning
tree over the rooms plus one extra door, so every room is reachable. Each room has a type (living
room, kitchen, ...), its own wall colour and floor texture, a ceiling (geom group 2, hidden in
top-down views), a textured painting, and three pieces of furniture built from primitives in three
of its four corners. The furniture is recorded as :class:`SceneObject` (category, colour, room,
position), from which episodes and instructions are generated.

World frame: x east, y north, z up, metres; the house spans ``[0, width] x [0, height]``.
"""

from __future__ import annotations

import dataclasses
import io
import math
import random

import numpy as np
from PIL import Image

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


def _rgba(rgb: tuple[float, float, float], alpha: float = 1.0) -> str:
    return ' '.join(f'{v:.3f}' for v in (*rgb, alpha))


def _shade(rgb: tuple[float, float, float], factor: float) -> tuple[float, float, float]:
    return tuple(min(1.0, max(0.0, v * factor)) for v in rgb)  # type: ignore[return-value]


class _Geoms:
    """Collects ``<geom>`` elements of the world body."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def box(self, cx: float, cy: float, cz: float, sx: float, sy: float, sz: float, *,
            rgba: str = '', material: str = '', collide: bool = True, name: str = '',
            group: int = 0) -> None:
        """Add a box centred at ``(cx, cy, cz)`` with full sizes ``(sx, sy, sz)``."""
        attrs = [f'type="box" pos="{cx:.4f} {cy:.4f} {cz:.4f}"',
                 f'size="{sx / 2:.4f} {sy / 2:.4f} {sz / 2:.4f}"']
        self._finish(attrs, rgba, material, collide, name, group)

    def cylinder(self, cx: float, cy: float, cz: float, radius: float, height: float, *,
                 rgba: str, collide: bool = True) -> None:
        """Add an upright cylinder centred at ``(cx, cy, cz)``."""
        attrs = [f'type="cylinder" pos="{cx:.4f} {cy:.4f} {cz:.4f}"',
                 f'size="{radius:.4f} {height / 2:.4f}"']
        self._finish(attrs, rgba, '', collide, '', 0)

    def sphere(self, cx: float, cy: float, cz: float, radius: float, *, rgba: str,
               collide: bool = True) -> None:
        """Add a sphere centred at ``(cx, cy, cz)``."""
        attrs = [f'type="sphere" pos="{cx:.4f} {cy:.4f} {cz:.4f}" size="{radius:.4f}"']
        self._finish(attrs, rgba, '', collide, '', 0)

    def _finish(self, attrs: list[str], rgba: str, material: str, collide: bool, name: str,
                group: int) -> None:
        if name:
            attrs.insert(0, f'name="{name}"')
        if material:
            attrs.append(f'material="{material}"')
        else:
            attrs.append(f'rgba="{rgba or "0.5 0.5 0.5 1"}"')
        if not collide:
            attrs.append('contype="0" conaffinity="0"')
        if group:
            attrs.append(f'group="{group}"')
        self.lines.append('    <geom ' + ' '.join(attrs) + '/>')


def _furniture(g: _Geoms, category: str, colour: str, cx: float, cy: float,
               back: float) -> None:
    """Draw one object from primitives; ``back`` is +1 if its back faces north, else -1."""
    sx, sy, h = SIZES[category]
    base = COLOURS[colour]
    main, dark = _rgba(base), _rgba(_shade(base, 0.6))
    white, black = _rgba(COLOURS['white']), _rgba(COLOURS['black'])
    bx = cy + back * (sy / 2 - 0.08)  # y of a backrest or headboard against the wall
    if category in ('sofa', 'armchair'):
        g.box(cx, cy, 0.22, sx, sy, 0.44, rgba=main)
        g.box(cx, bx, 0.6, sx, 0.16, 0.4, rgba=dark)
    elif category == 'tv':
        g.box(cx, cy, 0.25, sx, sy, 0.5, rgba=_rgba(COLOURS['brown']))
        g.box(cx, cy, 0.85, sx * 0.9, 0.06, 0.65, rgba=main)
    elif category == 'plant':
        g.cylinder(cx, cy, 0.2, 0.18, 0.4, rgba=_rgba(COLOURS['brown']))
        g.sphere(cx, cy, 0.75, 0.3, rgba=main)
    elif category == 'table':
        g.box(cx, cy, h - 0.02, sx, sy * 0.8, 0.04, rgba=main)
        for ox in (-1, 1):
            for oy in (-1, 1):
                g.box(cx + ox * (sx / 2 - 0.06), cy + oy * (sy * 0.4 - 0.06), (h - 0.04) / 2,
                      0.05, 0.05, h - 0.04, rgba=dark)
        g.box(cx - sx / 2 + 0.25, cy + sy * 0.45, 0.45, 0.4, 0.1, 0.9, rgba=dark)
    elif category == 'bed':
        g.box(cx, cy, 0.25, sx, sy, 0.5, rgba=white)
        g.box(cx, cy - back * 0.25, 0.52, sx, sy * 0.6, 0.06, rgba=main)
        g.box(cx, bx, 0.45, sx, 0.1, 0.9, rgba=_rgba(COLOURS['brown']))
    elif category == 'lamp':
        g.cylinder(cx, cy, 0.7, 0.03, 1.4, rgba=black)
        g.cylinder(cx, cy, 1.45, 0.2, 0.3, rgba=main)
    elif category == 'desk':
        g.box(cx, cy, 0.73, sx, sy, 0.04, rgba=main)
        g.box(cx - sx / 2 + 0.25, cy, 0.36, 0.45, sy, 0.72, rgba=main)
        g.box(cx + sx / 2 - 0.04, cy, 0.36, 0.05, sy, 0.72, rgba=main)
        g.box(cx, bx, 0.98, 0.6, 0.05, 0.38, rgba=black)
    elif category == 'bookshelf':
        g.box(cx, cy, h / 2, sx, sy, h, rgba=main)
        for k, book in enumerate(('red', 'blue', 'yellow', 'green')):
            g.box(cx, cy - back * (sy / 2 + 0.005), 0.35 + k * 0.45, sx * 0.8, 0.01, 0.3,
                  rgba=_rgba(COLOURS[book]), collide=False)
    elif category == 'chair':
        g.box(cx, cy, 0.45, sx, sy, 0.06, rgba=main)
        g.cylinder(cx, cy, 0.22, 0.05, 0.44, rgba=dark)
        g.box(cx, bx, 0.72, sx, 0.06, 0.5, rgba=main)
    elif category == 'bathtub':
        g.box(cx, cy, 0.3, sx, sy, 0.6, rgba=main)
        g.box(cx, cy, 0.59, sx - 0.16, sy - 0.16, 0.03, rgba=_rgba((0.6, 0.8, 0.95)),
              collide=False)
    elif category == 'sink':
        g.box(cx, cy, 0.42, sx, sy, 0.85, rgba=main)
        g.box(cx, bx + back * 0.05, 1.35, sx, 0.02, 0.6, rgba=_rgba((0.7, 0.85, 0.95)),
              collide=False)
    elif category == 'toilet':
        g.cylinder(cx, cy - back * 0.1, 0.2, 0.2, 0.4, rgba=main)
        g.box(cx, bx, 0.55, sx, 0.18, 0.5, rgba=main)
    elif category == 'bench':
        g.box(cx, cy, 0.42, sx, sy, 0.08, rgba=main)
        g.box(cx, cy, 0.19, sx * 0.9, sy * 0.7, 0.38, rgba=dark)
    elif category == 'coat rack':
        g.cylinder(cx, cy, 0.9, 0.03, 1.8, rgba=main)
        g.sphere(cx, cy, 1.75, 0.15, rgba=dark)
        g.cylinder(cx, cy, 0.02, 0.2, 0.04, rgba=dark)
    elif category in ('washing machine', 'dryer'):
        g.box(cx, cy, h / 2, sx, sy, h, rgba=main)
        g.cylinder(cx, cy - back * (sy / 2), 0.45, 0.2, 0.02, rgba=black, collide=False)
    elif category == 'basket':
        g.cylinder(cx, cy, h / 2, 0.25, h, rgba=main)
    elif category == 'ironing board':
        g.box(cx, cy, h - 0.02, sx, sy * 0.8, 0.04, rgba=main)
        g.box(cx, cy, (h - 0.04) / 2, 0.06, 0.06, h - 0.04, rgba=dark)
    elif category == 'clock':
        g.box(cx, cy, h / 2, sx, sy, h, rgba=_rgba(COLOURS['brown']))
        g.cylinder(cx, cy - back * (sy / 2), 1.55, 0.18, 0.02, rgba=main, collide=False)
    else:  # boxy furniture: fridge, counter, stove, wardrobe, dresser, cabinet, shelf...
        g.box(cx, cy, h / 2, sx, sy, h, rgba=main)
        g.box(cx, cy - back * (sy / 2), h * 0.55, sx * 0.9, 0.01, h * 0.7, rgba=dark,
              collide=False)
        if category == 'stove':
            for ox in (-0.15, 0.15):
                for oy in (-0.12, 0.12):
                    g.cylinder(cx + ox, cy + oy, h + 0.005, 0.09, 0.01,
                               rgba=_rgba(COLOURS['red']), collide=False)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(buffer, format='PNG')
    return buffer.getvalue()


def _textures(rng: np.random.Generator, n_rooms: int) -> dict[str, bytes]:
    """Procedural PNG textures: floors and one painting per room.

    Returns:
        ``{file name: PNG bytes}``; every image is ``(128, 128, 3)`` uint8.
    """
    n = 128
    yy = np.mgrid[0:n, 0:n][0]
    grain = rng.standard_normal((n, n)).cumsum(axis=1) * 0.5
    stripes = np.sin((yy + grain) * 0.4) * 0.5 + 0.5
    wood = np.stack([150 + 60 * stripes, 95 + 40 * stripes, 50 + 20 * stripes], -1)
    carpet = np.stack([110 + 20 * rng.standard_normal((n, n))] * 3, -1)
    carpet[..., 2] += 45
    blotch = rng.standard_normal((n // 16, n // 16)).repeat(16, 0).repeat(16, 1)
    stone = np.stack([140 + 25 * blotch] * 3, -1)
    planks = (np.arange(n)[None, :] // 16 % 2).repeat(n, 0)
    parquet = np.stack([120 + 40 * planks, 80 + 25 * planks, 40 + 10 * planks], -1) + stripes[
        ..., None] * 20
    out = {'wood.png': _png(wood), 'carpet.png': _png(carpet), 'stone.png': _png(stone),
           'parquet.png': _png(parquet)}
    for i in range(n_rooms):
        blocks = rng.integers(0, 256, (4, 4, 3)).repeat(n // 4, 0).repeat(n // 4, 1)
        out[f'painting{i}.png'] = _png(blocks)
    return out


class House:
    """A generated house: rooms, doors, objects and its MJCF world.

    Build with :func:`build_house`; the robot is added by :mod:`janusvln_ros.sim.env`.
    """

    def __init__(self, config: HouseConfig, rooms: list[Room], doors: list[Door],
                 objects: list[SceneObject], geoms: list[str], lights: list[str],
                 assets: dict[str, bytes]) -> None:
        self.config = config
        self.rooms = rooms
        self.doors = doors
        self.objects = objects
        self._geoms = geoms
        self._lights = lights
        self.assets = assets

    @property
    def width(self) -> float:
        """Extent along x in metres."""
        return self.config.cols * self.config.room_size

    @property
    def height(self) -> float:
        """Extent along y in metres."""
        return self.config.rows * self.config.room_size

    def room_at(self, x: float, y: float) -> Room | None:
        """The room whose cell holds ``(x, y)``, or None outside the house."""
        for room in self.rooms:
            if room.contains(x, y):
                return room
        return None

    def object_by_name(self, name: str) -> SceneObject:
        """Look an object up by its unique name.

        Raises:
            KeyError: No object has that name.
        """
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(f'no object named {name!r} in house seed {self.config.seed}')

    def mjcf(self, robot_xml: str = '', offscreen_size: tuple[int, int] = (640, 480)) -> str:
        """The MJCF document of the house, with ``robot_xml`` inserted into the world body.

        Args:
            robot_xml: ``<body>`` element(s) of the robot, or '' for the static house.
            offscreen_size: ``(width, height)`` of the largest offscreen render.

        Returns:
            MJCF text; textures are passed separately as :attr:`assets`.
        """
        width, height = max(offscreen_size[0], 640), max(offscreen_size[1], 480)
        textures = ['    <texture name="tiles" type="2d" builtin="checker" '
                    'rgb1="0.9 0.9 0.9" rgb2="0.55 0.6 0.65" width="128" height="128"/>',
                    '    <material name="tiles" texture="tiles" texrepeat="6 6"/>']
        for name in sorted(self.assets):
            stem = name[:-4]
            repeat = '1 1' if stem.startswith('painting') else '2 2'
            textures.append(f'    <texture name="{stem}" type="2d" file="{name}"/>')
            textures.append(f'    <material name="{stem}" texture="{stem}" '
                            f'texrepeat="{repeat}"/>')
        return '\n'.join([
            f'<mujoco model="janusvln_house_{self.config.seed}">',
            '  <compiler angle="radian"/>',
            '  <option gravity="0 0 0"/>',
            '  <visual>',
            f'    <global offwidth="{width}" offheight="{height}"/>',
            '    <headlight ambient="0.45 0.45 0.45" diffuse="0.25 0.25 0.25" '
            'specular="0 0 0"/>',
            '    <quality shadowsize="0" offsamples="0"/>',
            '  </visual>',
            '  <asset>', *textures, '  </asset>',
            '  <worldbody>', *self._lights, *self._geoms, robot_xml, '  </worldbody>',
            '</mujoco>', ''])


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


def build_house(config: HouseConfig) -> House:
    """Generate a house; the same config always gives the same house.

    Args:
        config: Seed and grid size.

    Returns:
        The house (MJCF text via :meth:`House.mjcf`).
    """
    rng = random.Random(config.seed)
    np_rng = np.random.default_rng(config.seed)
    s, rows, cols = config.room_size, config.rows, config.cols
    n_rooms = rows * cols
    kinds = list(ROOM_TYPES)
    rng.shuffle(kinds)
    rooms = [Room(r * cols + c, r, c, kinds[r * cols + c], c * s, r * s, (c + 1) * s,
                  (r + 1) * s) for r in range(rows) for c in range(cols)]
    door_pairs = _door_tree(rng, rows, cols)
    g = _Geoms()
    doors: list[Door] = []
    for room in rooms:
        cx, cy = room.centre
        g.box(cx, cy, -0.005, s, s, 0.01, material=FLOOR_MATERIAL[room.kind], collide=False,
              name=f'floor_{room.index}')
        g.box(cx, cy, WALL_HEIGHT + 0.01, s, s, 0.02, rgba='0.97 0.97 0.95 1', collide=False,
              name=f'ceiling_{room.index}', group=2)

    def wall(x0: float, y0: float, x1: float, y1: float, gap: bool, rgba: str) -> None:
        """Add an axis-aligned wall along its centre line, split by a door if ``gap``."""
        along_x = abs(y1 - y0) < 1e-9
        a, b = (x0, x1) if along_x else (y0, y1)
        mid = (a + b) / 2
        spans = [(a, mid - DOOR_WIDTH / 2), (mid + DOOR_WIDTH / 2, b)] if gap else [(a, b)]
        for lo, hi in spans:
            c = (lo + hi) / 2
            if along_x:
                g.box(c, y0, WALL_HEIGHT / 2, hi - lo, WALL_THICKNESS / 2, WALL_HEIGHT, rgba=rgba)
            else:
                g.box(x0, c, WALL_HEIGHT / 2, WALL_THICKNESS / 2, hi - lo, WALL_HEIGHT, rgba=rgba)
        if gap:
            z = WALL_HEIGHT - LINTEL_HEIGHT / 2
            if along_x:
                g.box(mid, y0, z, DOOR_WIDTH, WALL_THICKNESS / 2, LINTEL_HEIGHT, rgba=rgba)
            else:
                g.box(x0, mid, z, WALL_THICKNESS / 2, DOOR_WIDTH, LINTEL_HEIGHT, rgba=rgba)

    # Each room draws the inner half of its four walls in its own colour.
    q = WALL_THICKNESS / 4
    for room in rooms:
        rgba = _rgba(WALL_RGBA[room.kind])
        r, c, i = room.row, room.col, room.index
        south = r > 0 and (min(i, i - cols), max(i, i - cols)) in door_pairs
        north = r < rows - 1 and (i, i + cols) in door_pairs
        west = c > 0 and (i - 1, i) in door_pairs
        east = c < cols - 1 and (i, i + 1) in door_pairs
        wall(room.x0, room.y0 + q, room.x1, room.y0 + q, south, rgba)
        wall(room.x0, room.y1 - q, room.x1, room.y1 - q, north, rgba)
        wall(room.x0 + q, room.y0, room.x0 + q, room.y1, west, rgba)
        wall(room.x1 - q, room.y0, room.x1 - q, room.y1, east, rgba)
        if north:
            doors.append(Door(i, i + cols, room.centre[0], room.y1))
        if east:
            doors.append(Door(i, i + 1, room.x1, room.centre[1]))
    # Outer shell behind the exterior walls, so the house is closed from outside too.
    w_house, h_house = cols * s, rows * s
    shell = '0.6 0.6 0.6 1'
    for x0, y0, x1, y1 in ((0, -q, w_house, -q), (0, h_house + q, w_house, h_house + q),
                           (-q, 0, -q, h_house), (w_house + q, 0, w_house + q, h_house)):
        wall(x0, y0, x1, y1, False, shell)

    objects: list[SceneObject] = []
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
            _furniture(g, category, colour, x, y, 1.0 if north else -1.0)
            name = f'{room.kind.replace(" ", "_")}_{category.replace(" ", "_")}'
            objects.append(SceneObject(name, category, colour, room.index, round(x, 4),
                                       round(y, 4), sx, sy))
        # A painting on the middle of the south wall's inner face (a door may be there:
        # then on the west wall, then the north wall).
        cx, cy = room.centre
        spot = (cx - 1.2, room.y0 + WALL_THICKNESS / 2 + 0.012, 0.8, 0.02)
        g.box(spot[0], spot[1], 1.55, spot[2], spot[3], 0.6, material=f'painting{room.index}',
              collide=False, name=f'painting_{room.index}')
    lights = []
    for room in rooms[:MAX_LIGHTS]:
        cx, cy = room.centre
        lights.append(f'    <light pos="{cx:.3f} {cy:.3f} {WALL_HEIGHT - 0.1:.3f}" dir="0 0 -1" '
                      'diffuse="0.35 0.35 0.35" specular="0 0 0" castshadow="false"/>')
    assets = _textures(np_rng, n_rooms)
    return House(config, rooms, doors, objects, g.lines, lights, assets)


def angle_diff(a: float, b: float) -> float:
    """Return the signed smallest difference ``a - b`` of two angles, in ``[-pi, pi)``."""
    return (a - b + math.pi) % (2 * math.pi) - math.pi
