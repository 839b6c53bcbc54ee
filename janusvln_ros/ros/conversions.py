"""Message conversions of the node: Image to RGB arrays, velocity commands, status messages.

The image converter works on any object with the ``sensor_msgs/Image`` fields (rclpy messages,
rosbags messages), honours ``step`` row padding and rejects what it cannot convert with an
:class:`~janusvln_ros.core.errors.InputError` saying what was expected and what was got. Before
anything is allocated it also bounds the aspect ratio (:data:`MAX_ASPECT_RATIO`): the engine
resizes every frame to a fixed width, so a tall, thin frame that is tiny in bytes would otherwise
become gigabytes after the resize. On a
real ROS install where ``cv_bridge`` imports, it does the colour conversion after the same
checks; otherwise the project's own converter does.
"""

from __future__ import annotations

import math
from typing import Any

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist, TwistStamped
from janusvln_interfaces.msg import NavigationStatus
import numpy as np
from sensor_msgs.msg import Image

from janusvln_ros.core.episodes import EpisodeSnapshot
from janusvln_ros.core.errors import InputError

try:  # only on a real ROS install; never required
    from cv_bridge import CvBridge  # type: ignore[import-not-found]
    _BRIDGE: Any = CvBridge()
except Exception:  # noqa: BLE001 - ImportError, or a broken binary module
    _BRIDGE = None

# Accepted encodings -> channels (all 8-bit).
ACCEPTED_ENCODINGS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}
MAX_IMAGE_BYTES = 64 * 1024 * 1024
# Longest side / shortest side. The engine resizes to a fixed width W (644 for the released
# checkpoints), so a frame of height/width r becomes r * W * W pixels: with this bound at most
# 4 * 644 * 644 * 3 bytes = 5 MB of uint8 (20 MB as float32), whatever the message says.
MAX_ASPECT_RATIO = 4.0


def check_image(msg: Any) -> tuple[int, int, int, int]:
    """Validate an Image's geometry; return ``(height, width, channels, step)``.

    Raises:
        InputError: Unsupported encoding, zero size, ``step`` smaller than a row, or a data
            buffer whose length does not match ``step * height``.
    """
    encoding = str(msg.encoding)
    if encoding not in ACCEPTED_ENCODINGS:
        raise InputError(f'image encoding {encoding!r} is not supported; expected one of '
                         f'{sorted(ACCEPTED_ENCODINGS)}')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise InputError(f'image has zero size: {width}x{height}')
    channels = ACCEPTED_ENCODINGS[encoding]
    row = width * channels
    if step < row:
        raise InputError(f'image step {step} is smaller than width*channels = {row} '
                         f'({encoding}, width {width})')
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        raise InputError(f'image aspect ratio {width}x{height} is too extreme ({ratio:.1f}:1, at '
                         f'most {MAX_ASPECT_RATIO:g}:1): resizing it to the model width would '
                         'need an unbounded amount of memory')
    if step * height > MAX_IMAGE_BYTES:
        raise InputError(f'image is too large: {step * height} bytes')
    size = len(msg.data)
    if size < step * height:
        raise InputError(f'image data is truncated: {size} bytes, expected step*height = '
                         f'{step}*{height} = {step * height}')
    if size > step * height:
        raise InputError(f'image data size mismatch: {size} bytes, expected step*height = '
                         f'{step * height}')
    return height, width, channels, step


def image_to_rgb(msg: Any) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` to an RGB array.

    Args:
        msg: An Image (rclpy or rosbags message, or any object with its fields).

    Returns:
        ``(H, W, 3)`` uint8 RGB array, writable and never sharing memory with the message.

    Raises:
        InputError: See :func:`check_image`.
    """
    height, width, channels, step = check_image(msg)
    if _BRIDGE is not None:
        return np.ascontiguousarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding='rgb8'))
    data = msg.data
    buf = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    rows = buf.reshape(height, step)[:, :width * channels]
    pixels = rows.reshape(height, width, channels)
    encoding = str(msg.encoding)
    if encoding == 'rgb8':
        out = pixels
    elif encoding == 'bgr8':
        out = pixels[:, :, ::-1]
    elif encoding == 'rgba8':
        out = pixels[:, :, :3]
    elif encoding == 'bgra8':
        out = pixels[:, :, 2::-1]
    else:  # mono8
        out = np.repeat(pixels, 3, axis=2)
    out = np.ascontiguousarray(out)
    if np.shares_memory(out, buf):       # rgb8 without padding: still a view of the message
        out = out.copy()
    return out


def rgb_to_image(rgb: np.ndarray, encoding: str = 'rgb8', stamp: Time | None = None,
                 frame_id: str = '', step_padding: int = 0) -> Image:
    """Build a ``sensor_msgs/Image`` from an RGB array (tests, bench, simulator).

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB image.
        encoding: One of :data:`ACCEPTED_ENCODINGS`; colours are converted into it.
        stamp: Header stamp.
        frame_id: Header frame id.
        step_padding: Extra bytes at the end of each row.

    Returns:
        The message (``data`` assigned as ``bytes``, the fast path).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(f'rgb: expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}')
    if encoding == 'rgb8':
        pix = rgb
    elif encoding == 'bgr8':
        pix = rgb[:, :, ::-1]
    elif encoding == 'rgba8':
        pix = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    elif encoding == 'bgra8':
        pix = np.concatenate([rgb[:, :, ::-1], np.full(rgb.shape[:2] + (1,), 255, np.uint8)],
                             axis=2)
    elif encoding == 'mono8':
        pix = rgb.mean(axis=2, dtype=np.float32).round().astype(np.uint8)[:, :, None]
    else:
        raise InputError(f'encoding {encoding!r} is not supported by rgb_to_image')
    height, width, channels = pix.shape
    rows = np.ascontiguousarray(pix).reshape(height, width * channels)
    if step_padding:
        rows = np.concatenate([rows, np.zeros((height, step_padding), np.uint8)], axis=1)
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = height, width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = width * channels + step_padding
    msg.data = np.ascontiguousarray(rows).tobytes()
    return msg


def stamp_seconds(stamp: Any) -> float | None:
    """A ``builtin_interfaces/Time`` in seconds; None for the zero stamp ("not stamped")."""
    sec, nanosec = int(stamp.sec), int(stamp.nanosec)
    if sec == 0 and nanosec == 0:
        return None
    return sec + nanosec * 1e-9


def make_cmd_vel(linear: float, angular: float, stamped: bool, stamp: Time | None = None,
                 frame_id: str = 'base_link') -> Twist | TwistStamped:
    """A velocity command: Twist, or TwistStamped with ``stamp`` and ``frame_id``."""
    twist = Twist()
    twist.linear.x = float(linear)
    twist.angular.z = float(angular)
    if not stamped:
        return twist
    msg = TwistStamped()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.twist = twist
    return msg


def snapshot_to_status(snap: EpisodeSnapshot, stamp: Time | None = None,
                       message: str | None = None) -> NavigationStatus:
    """Convert a worker snapshot to ``janusvln_interfaces/NavigationStatus``.

    Args:
        snap: The episode snapshot.
        stamp: Header stamp; defaults to the stamp of the frame used by the last step.
        message: Overrides ``snap.message`` (e.g. a camera-timeout warning).
    """
    msg = NavigationStatus()
    if stamp is not None:
        msg.header.stamp = stamp
    elif isinstance(snap.frame_stamp, Time):
        msg.header.stamp = snap.frame_stamp
    msg.episode_id = int(snap.episode_id)
    msg.instruction = snap.instruction
    msg.state = int(snap.state)
    msg.step = int(snap.step)
    msg.last_action = int(snap.last_action) if snap.last_action is not None else 0
    msg.raw_output = snap.raw_output
    msg.step_latency_ms = float(snap.step_latency_ms)
    msg.spatial_memory_frames = int(snap.spatial_memory_frames)
    msg.spatial_memory_capacity = int(snap.spatial_memory_capacity)
    msg.message = snap.message if message is None else message
    return msg


def odometry_to_pose(msg: Any) -> tuple[float, float, float]:
    """``nav_msgs/Odometry`` to planar ``(x, y, yaw)`` in metres and radians."""
    p = msg.pose.pose.position
    q = msg.pose.pose.orientation
    yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
    return float(p.x), float(p.y), yaw
