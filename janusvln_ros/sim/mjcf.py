"""MuJoCo emission of a house layout: geoms, lights, procedural textures and the MJCF document.

:func:`house_geometry` draws a :class:`~janusvln_ros.sim.layout.Layout`: floors (textured),
ceilings (geom group 2, hidden in top-down views), walls in each room's colour with door gaps and
lintels, a closed outer shell, a textured painting per room, and each piece of furniture built
from boxes, cylinders and spheres. :func:`textures` makes the floor and painting PNGs;
:func:`document` assembles the MJCF text around them and an optional robot body.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from janusvln_ros.sim.layout import (COLOURS, DOOR_WIDTH, FLOOR_MATERIAL, Layout, LINTEL_HEIGHT,
                                     MAX_LIGHTS, SIZES, WALL_HEIGHT, WALL_RGBA,
                                     WALL_THICKNESS)


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


def textures(rng: np.random.Generator, n_rooms: int) -> dict[str, bytes]:
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


def house_geometry(layout: Layout) -> tuple[list[str], list[str]]:
    """The ``<geom>`` and ``<light>`` lines of a house's world body.

    Args:
        layout: Rooms, doors and furniture placements.

    Returns:
        ``(geoms, lights)``, each a list of MJCF element lines.
    """
    config = layout.config
    s, rows, cols = config.room_size, config.rows, config.cols
    rooms, door_pairs = layout.rooms, layout.door_pairs
    g = _Geoms()
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
    # Outer shell behind the exterior walls, so the house is closed from outside too.
    w_house, h_house = cols * s, rows * s
    shell = '0.6 0.6 0.6 1'
    for x0, y0, x1, y1 in ((0, -q, w_house, -q), (0, h_house + q, w_house, h_house + q),
                           (-q, 0, -q, h_house), (w_house + q, 0, w_house + q, h_house)):
        wall(x0, y0, x1, y1, False, shell)

    by_room: dict[int, list] = {}
    for placement in layout.placements:
        by_room.setdefault(placement.obj.room, []).append(placement)
    for room in rooms:
        for placement in by_room.get(room.index, []):
            obj = placement.obj
            _furniture(g, obj.category, obj.colour, placement.x, placement.y, placement.back)
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
    return g.lines, lights


def document(seed: int, geoms: list[str], lights: list[str], assets: dict[str, bytes],
             robot_xml: str = '', offscreen_size: tuple[int, int] = (640, 480)) -> str:
    """The MJCF document of a house, with ``robot_xml`` inserted into the world body.

    Args:
        seed: The house's seed (its model name).
        geoms: ``<geom>`` lines from :func:`house_geometry`.
        lights: ``<light>`` lines from :func:`house_geometry`.
        assets: Texture PNGs by file name (from :func:`textures`).
        robot_xml: ``<body>`` element(s) of the robot, or '' for the static house.
        offscreen_size: ``(width, height)`` of the largest offscreen render.

    Returns:
        MJCF text; the textures are passed to MuJoCo separately, by file name.
    """
    width, height = max(offscreen_size[0], 640), max(offscreen_size[1], 480)
    texture_lines = ['    <texture name="tiles" type="2d" builtin="checker" '
                     'rgb1="0.9 0.9 0.9" rgb2="0.55 0.6 0.65" width="128" height="128"/>',
                     '    <material name="tiles" texture="tiles" texrepeat="6 6"/>']
    for name in sorted(assets):
        stem = name[:-4]
        repeat = '1 1' if stem.startswith('painting') else '2 2'
        texture_lines.append(f'    <texture name="{stem}" type="2d" file="{name}"/>')
        texture_lines.append(f'    <material name="{stem}" texture="{stem}" '
                             f'texrepeat="{repeat}"/>')
    return '\n'.join([
        f'<mujoco model="janusvln_house_{seed}">',
        '  <compiler angle="radian"/>',
        '  <option gravity="0 0 0"/>',
        '  <visual>',
        f'    <global offwidth="{width}" offheight="{height}"/>',
        '    <headlight ambient="0.45 0.45 0.45" diffuse="0.25 0.25 0.25" '
        'specular="0 0 0"/>',
        '    <quality shadowsize="0" offsamples="0"/>',
        '  </visual>',
        '  <asset>', *texture_lines, '  </asset>',
        '  <worldbody>', *lights, *geoms, robot_xml, '  </worldbody>',
        '</mujoco>', ''])
