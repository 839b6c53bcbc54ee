"""``janusvln replay BAG --instruction ...``: feed a recorded camera stream through the engine.

Reads a rosbag2 folder (sqlite3 or mcap storage, read with ``rosbags``; no ROS needed), converts
each ``sensor_msgs/Image`` with the node's converter, runs one engine step per used frame and
prints one line per step (or JSON lines with ``--json``). It stops at the first STOP unless
``--no-stop``. Offline there is no motion between frames, so ``--stride N`` uses every N-th frame
(e.g. the camera rate times the duration of one primitive).
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
from typing import Any, Iterator

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``replay`` subcommand."""
    p = subparsers.add_parser('replay', help='run the engine on a rosbag2 camera stream')
    p.add_argument('bag', help='rosbag2 folder (or its .db3/.mcap file)')
    p.add_argument('--instruction', required=True, help='the navigation instruction')
    p.add_argument('--topic', default='', help='image topic (default: the only Image topic)')
    p.add_argument('--engine', default='janusvln',
                   help="janusvln, reference, scripted or 'module:Class' (default: janusvln)")
    p.add_argument('--model-path', default='', help='checkpoint directory')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    p.add_argument('--dtype', default='float32', help='float32, bfloat16 or float16')
    p.add_argument('--mode', default='parity', help='parity or streaming')
    p.add_argument('--script', default='', help='scripted engine: the action script')
    p.add_argument('--stride', type=int, default=1, help='use every N-th frame (default 1)')
    p.add_argument('--max-steps', type=int, default=400, help='episode step cap (default 400)')
    p.add_argument('--no-stop', action='store_true', help='keep going after STOP')
    p.add_argument('--json', action='store_true', help='print JSON lines')
    p.set_defaults(func=run_replay)


def iter_bag_images(bag: str | pathlib.Path, topic: str = '') -> Iterator[tuple[int, Any]]:
    """Yield ``(timestamp_ns, image_message)`` of one Image topic of a rosbag2 bag.

    Raises:
        ValueError: The bag has no Image topic, several and no ``topic`` was given, or
            ``topic`` is not an Image topic of the bag.
    """
    from rosbags.highlevel import AnyReader
    path = pathlib.Path(bag)
    if path.is_file():
        path = path.parent
    with AnyReader([path]) as reader:
        images = [c for c in reader.connections if c.msgtype == 'sensor_msgs/msg/Image']
        if topic:
            images = [c for c in images if c.topic == topic]
            if not images:
                raise ValueError(f'bag {str(path)!r} has no sensor_msgs/Image topic {topic!r}; '
                                 f'topics: {sorted({c.topic for c in reader.connections})}')
        elif not images:
            raise ValueError(f'bag {str(path)!r} has no sensor_msgs/Image topic')
        elif len({c.topic for c in images}) > 1:
            raise ValueError(f'bag has several image topics {sorted({c.topic for c in images})}; '
                             'choose one with --topic')
        for connection, timestamp, raw in reader.messages(connections=images):
            yield timestamp, reader.deserialize(raw, connection.msgtype)


def run_replay(args: argparse.Namespace) -> int:
    """Run the engine over the bag's frames and print the actions."""
    from janusvln_ros.core.config import EngineConfig
    from janusvln_ros.core.errors import JanusVLNError
    from janusvln_ros.core.factory import build_engine
    from janusvln_ros.core.types import Action
    from janusvln_ros.ros.conversions import image_to_rgb

    if args.stride < 1 or args.max_steps < 1:
        sys.stderr.write('error: --stride and --max-steps must be >= 1\n')
        return 2
    values: dict[str, Any] = {'engine': args.engine, 'model_path': args.model_path,
                              'device': args.device, 'dtype': args.dtype, 'mode': args.mode}
    if args.script:
        values['script'] = args.script
    try:
        engine = build_engine(EngineConfig(**values))
    except (JanusVLNError, ValueError, OSError) as exc:
        sys.stderr.write(f'error: cannot build the engine: {exc}\n')
        return 1
    steps = 0
    try:
        engine.reset(args.instruction)
        t0 = None
        for index, (stamp_ns, msg) in enumerate(iter_bag_images(args.bag, args.topic)):
            if index % args.stride:
                continue
            t0 = stamp_ns if t0 is None else t0
            try:
                frame = image_to_rgb(msg)
            except JanusVLNError as exc:
                sys.stderr.write(f'frame {index}: skipped: {exc}\n')
                continue
            result = engine.step(frame)
            steps += 1
            record = {'step': steps, 'frame': index, 't_s': round((stamp_ns - t0) * 1e-9, 3),
                      'action': result.action.name, 'raw_output': result.raw_output,
                      'latency_ms': round(result.total_ms, 2)}
            if args.json:
                sys.stdout.write(json.dumps(record) + '\n')
            else:
                t_s = record['t_s']
                sys.stdout.write(f'step {steps:>3}  frame {index:>5}  t {t_s:8.3f} s  '
                                 f'{result.action.name:<12} {result.total_ms:8.1f} ms\n')
            if (result.action == Action.STOP and not args.no_stop) or steps >= args.max_steps:
                break
    except (ValueError, OSError) as exc:
        sys.stderr.write(f'error: {exc}\n')
        return 1
    except JanusVLNError as exc:
        sys.stderr.write(f'error: engine failed at step {steps + 1}: {exc}\n')
        return 1
    finally:
        engine.close()
    if steps == 0:
        sys.stderr.write('error: no usable frame in the bag\n')
        return 1
    return 0
