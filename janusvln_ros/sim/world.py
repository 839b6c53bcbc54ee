"""Procedural multi-room houses as MuJoCo MJCF, deterministic from a seed.

A house is a grid of square rooms. Doors (1 m gaps with a lintel) come from a random spanning
tree over the rooms plus one extra door, so every room is reachable. Each room has a type (living
room, kitchen, ...), its own wall colour and floor texture, a ceiling (geom group 2, hidden in
top-down views), a textured painting, and three pieces of furniture built from primitives in three
of its four corners. The furniture is recorded as :class:`SceneObject` (category, colour, room,
position), from which episodes and instructions are generated.

Two modules do the work: :mod:`janusvln_ros.sim.layout` generates the layout (rooms, doors,
furniture placement) and :mod:`janusvln_ros.sim.mjcf` emits its geometry, textures and MJCF text.
This module joins them (:func:`build_house`, :class:`House`) and re-exports their public names,
so ``from janusvln_ros.sim.world import ...`` keeps working for every name it offered.

World frame: x east, y north, z up, metres; the house spans ``[0, width] x [0, height]``.
"""

from __future__ import annotations

import numpy as np

from janusvln_ros.sim import mjcf
from janusvln_ros.sim.layout import (angle_diff, COLOURS, Door, DOOR_WIDTH, FLOOR_MATERIAL,
                                     FURNITURE, HouseConfig, Layout, LINTEL_HEIGHT, MAX_LIGHTS,
                                     Placement, plan_house, Room, ROOM_TYPES, SceneObject, SIZES,
                                     WALL_HEIGHT, WALL_RGBA, WALL_THICKNESS)

__all__ = ['angle_diff', 'build_house', 'COLOURS', 'Door', 'DOOR_WIDTH', 'FLOOR_MATERIAL',
           'FURNITURE', 'House', 'HouseConfig', 'Layout', 'LINTEL_HEIGHT', 'MAX_LIGHTS',
           'Placement', 'plan_house', 'Room', 'ROOM_TYPES', 'SceneObject', 'SIZES', 'WALL_HEIGHT',
           'WALL_RGBA', 'WALL_THICKNESS']


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
        return mjcf.document(self.config.seed, self._geoms, self._lights, self.assets,
                             robot_xml, offscreen_size)


def build_house(config: HouseConfig) -> House:
    """Generate a house; the same config always gives the same house.

    Args:
        config: Seed and grid size.

    Returns:
        The house (MJCF text via :meth:`House.mjcf`).
    """
    layout = plan_house(config)
    geoms, lights = mjcf.house_geometry(layout)
    assets = mjcf.textures(np.random.default_rng(config.seed), config.rows * config.cols)
    return House(config, layout.rooms, layout.doors, layout.objects, geoms, lights, assets)
