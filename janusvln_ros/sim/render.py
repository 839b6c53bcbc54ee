"""Pictures of episodes: a top-down map with the trajectory, and a GIF of the camera view."""

from __future__ import annotations

from collections.abc import Sequence
import math
import pathlib

import numpy as np
from PIL import Image, ImageDraw

from janusvln_ros.sim.env import Pose2D
from janusvln_ros.sim.episodes import Episode, house_for, navmap_for
from janusvln_ros.sim.metrics import SUCCESS_DISTANCE_M
from janusvln_ros.sim.world import COLOURS, WALL_RGBA


def _rgb(values: Sequence[float], factor: float = 1.0) -> tuple[int, int, int]:
    return tuple(int(round(255 * min(1.0, v * factor))) for v in values)  # type: ignore


def top_down_map(episode: Episode, poses: Sequence[Pose2D] = (), scale: float = 40.0,
                 title: str = '') -> Image.Image:
    """Draw the house from above with the reference path and a trajectory.

    Rooms are tinted by their wall colour, blocked space (where the robot cannot stand) is
    grey, furniture is drawn in its colour, the reference path green, the trajectory blue, the
    start a black arrow and the goal a red dot inside its 3 m success circle.

    Args:
        episode: The episode.
        poses: The robot's poses, in order.
        scale: Pixels per metre.
        title: Text written at the top.

    Returns:
        An RGB image.
    """
    house = house_for(episode.house)
    navmap = navmap_for(episode.house)
    margin, header = 20, 24 if title else 0
    width = int(house.width * scale) + 2 * margin
    height = int(house.height * scale) + 2 * margin + header
    image = Image.new('RGB', (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)

    def px(x: float, y: float) -> tuple[float, float]:
        return (margin + x * scale, header + margin + (house.height - y) * scale)

    for room in house.rooms:
        draw.rectangle([px(room.x0, room.y1), px(room.x1, room.y0)],
                       fill=_rgb(WALL_RGBA[room.kind], 1.08))
    blocked = ~navmap.free[::-1]
    overlay = np.zeros((*blocked.shape, 4), np.uint8)
    overlay[blocked] = (90, 90, 90, 110)
    size = (int(house.width * scale), int(house.height * scale))
    layer = Image.fromarray(overlay, 'RGBA').resize(size, Image.NEAREST)
    image.paste(layer, (margin, header + margin), layer)
    for obj in house.objects:
        x0, y0 = px(obj.x - obj.size_x / 2, obj.y + obj.size_y / 2)
        x1, y1 = px(obj.x + obj.size_x / 2, obj.y - obj.size_y / 2)
        draw.rectangle([x0, y0, x1, y1], fill=_rgb(COLOURS[obj.colour]), outline=(0, 0, 0))
    for room in house.rooms:
        x, y = px(room.centre[0], room.centre[1])
        box = draw.textbbox((x, y), room.kind, anchor='mm')
        draw.rectangle([box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1], fill=(255, 255, 255))
        draw.text((x, y), room.kind, fill=(0, 0, 0), anchor='mm')
    gx, gy = episode.goal
    r = SUCCESS_DISTANCE_M * scale
    cx, cy = px(gx, gy)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(220, 40, 40), width=1)
    draw.ellipse([cx - 6, cy - 6, cx + 6, cy + 6], fill=(220, 40, 40))
    reference = [px(x, y) for x, y in episode.reference_path]
    draw.line(reference, fill=(30, 160, 60), width=3)
    if len(poses) > 1:
        draw.line([px(p.x, p.y) for p in poses], fill=(30, 80, 230), width=2)
    for pose, colour in ((episode.start_pose, (0, 0, 0)),) + (
            ((poses[-1], (30, 80, 230)),) if poses else ()):
        sx, sy = px(pose.x, pose.y)
        tip = px(pose.x + 0.45 * math.cos(pose.yaw), pose.y + 0.45 * math.sin(pose.yaw))
        draw.ellipse([sx - 5, sy - 5, sx + 5, sy + 5], fill=colour)
        draw.line([(sx, sy), tip], fill=colour, width=3)
    if title:
        draw.text((margin, 6), title, fill=(0, 0, 0))
    return image


def save_gif(frames: Sequence[np.ndarray], path: str | pathlib.Path,
             frame_ms: int = 150) -> None:
    """Write frames as a looping GIF.

    Args:
        frames: ``(H, W, 3)`` uint8 RGB frames.
        path: Output file.
        frame_ms: Display time of each frame in milliseconds.

    Raises:
        ValueError: No frames.
    """
    if not frames:
        raise ValueError('save_gif: no frames')
    images = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
