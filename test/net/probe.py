"""Small rclpy processes for the two-host harness: image publisher/subscriber, service pair.

Each subcommand runs one node, writes its measurements as JSON to ``--out`` and exits 0 on a
clean stop (``--duration`` elapsed or SIGINT/SIGTERM):

* ``pub``: publish ``sensor_msgs/Image`` (``--width`` x ``--height`` rgb8) at ``--rate`` Hz,
  ``header.stamp`` = wall clock, ``header.frame_id`` = sequence number. With ``--format jpeg``
  it publishes ``sensor_msgs/CompressedImage`` instead: each frame JPEG-encoded (Pillow,
  ``--quality``) just before it is sent, from ``--scene`` frames: ``sim`` (views rendered by
  :mod:`janusvln_ros.sim`, turning in place in a generated house) or ``synthetic`` (a smooth
  drawn room; no MuJoCo needed). Random noise would not compress and is not offered for JPEG.
* ``sub``: subscribe such images and record arrival time, sequence number, latency and bytes;
  with ``--format jpeg`` each frame is decoded and its decoded size and decode time recorded.
* ``srv``: a ``std_srvs/Trigger`` server answering ``ok <n>``.
* ``call``: wait for the Trigger service, call it ``--count`` times, record round trips.

Both hosts share this machine's clock, so ``now - stamp`` is a true one-way latency.
"""

import argparse
import io
import json
import os
import signal
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

#: Written to stderr (the log) by ``sub`` for every message, with its sequence number: tests
#: wait on these lines instead of sleeping through discovery or retransmission.
GOT = 'probe: got'


def qos(kind: str, depth: int) -> QoSProfile:
    """A keep-last QoS profile, ``reliable`` or ``best_effort``."""
    rel = ReliabilityPolicy.RELIABLE if kind == 'reliable' else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=rel)


def synthetic_frames(width: int, height: int, count: int) -> list:
    """Smooth drawn room views: shaded wall and floor, a door and furniture that shift per frame.

    Returns:
        ``count`` arrays of shape ``(height, width, 3)``, uint8 RGB.
    """
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    frames = []
    for i in range(count):
        shift = i / max(1, count)
        horizon = 0.55 + 0.05 * np.sin(2 * np.pi * shift)
        wall = np.stack([150 + 40 * xs + 0 * ys, 170 + 30 * ys + 0 * xs,
                         160 - 20 * xs + 0 * ys], axis=-1)
        floor = np.stack([110 + 50 * ys + 0 * xs, 80 + 40 * ys + 0 * xs,
                          50 + 20 * xs + 0 * ys], axis=-1)
        img = np.where((ys > horizon)[..., None], floor, wall)
        x0 = int(((0.3 + shift) % 1.0) * width)
        img[int(0.2 * height):int(horizon * height), x0:x0 + width // 5] = (90, 70, 50)
        cx, cy, r = ((0.7 - shift) % 1.0) * width, 0.75 * height, 0.12 * min(width, height)
        disk = (xs * width - cx) ** 2 + (ys * height - cy) ** 2 < r * r
        img[disk] = (40, 60, 140)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def sim_frames(width: int, height: int, count: int, seed: int = 11) -> list:
    """Views rendered by the simulator: the robot turning in place in a generated house.

    Returns:
        ``count`` arrays of shape ``(height, width, 3)``, uint8 RGB.
    """
    os.environ.setdefault('MUJOCO_GL', 'egl')
    from janusvln_ros.sim.env import CameraConfig, SimEnv
    from janusvln_ros.sim.episodes import house_for
    from janusvln_ros.sim.world import HouseConfig

    env = SimEnv(house_for(HouseConfig(seed=seed)), CameraConfig(width, height))
    try:
        frames = []
        for i in range(count):
            env.reset((2.0, 2.0, 2.0 * np.pi * i / count))
            frames.append(env.render())
        return frames
    finally:
        env.close()


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an ``(H, W, 3)`` uint8 RGB frame."""
    from PIL import Image as PILImage
    buf = io.BytesIO()
    PILImage.fromarray(frame).save(buf, 'JPEG', quality=quality)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB array of JPEG bytes."""
    from PIL import Image as PILImage
    with PILImage.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert('RGB'))


def _stamp_now(msg) -> None:
    t = time.time()
    msg.header.stamp.sec = int(t)
    msg.header.stamp.nanosec = int((t - int(t)) * 1e9)


def run(args: argparse.Namespace, stop: threading.Event) -> dict:
    """Run one subcommand until ``stop`` is set or the duration elapses; its measurements."""
    node = rclpy.create_node(f'probe_{args.cmd}')
    result: dict = {'cmd': args.cmd, 'start': time.time()}
    deadline = time.monotonic() + args.duration
    try:
        if args.cmd == 'pub':
            jpeg = args.format == 'jpeg'
            pub = node.create_publisher(CompressedImage if jpeg else Image, args.topic,
                                        qos(args.qos, args.depth))
            if jpeg:
                make = sim_frames if args.scene == 'sim' else synthetic_frames
                frames = make(args.width, args.height, 24)
                msg = CompressedImage(format='rgb8; jpeg compressed rgb8')
            else:
                msg = Image(height=args.height, width=args.width, encoding='rgb8',
                            step=args.width * 3)
                rng = np.random.default_rng(0)
                msg.data = rng.integers(0, 255, args.width * args.height * 3,
                                        np.uint8).tobytes()
            sizes, encode_ms = [], []
            period = 1.0 / args.rate
            seq = 0
            next_t = time.monotonic()
            while not stop.is_set() and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=max(0.0, next_t - time.monotonic()))
                if time.monotonic() >= next_t:
                    msg.header.frame_id = str(seq)
                    _stamp_now(msg)
                    if jpeg:
                        t0 = time.perf_counter()
                        msg.data = encode_jpeg(frames[seq % len(frames)], args.quality)
                        encode_ms.append((time.perf_counter() - t0) * 1000.0)
                        sizes.append(len(msg.data))
                    pub.publish(msg)
                    seq += 1
                    next_t += period
            result['sent'] = seq
            result['matched'] = pub.get_subscription_count()
            if args.qos == 'reliable':
                # Stay until the subscribers acknowledged every frame: a node destroyed right
                # after its last publish can take that frame's retransmissions with it.
                result['all_acked'] = bool(pub.wait_for_all_acked(Duration(seconds=15.0)))
            if jpeg:
                result['bytes_per_frame'] = float(np.mean(sizes)) if sizes else None
                result['encode_ms'] = float(np.median(encode_ms)) if encode_ms else None
            else:
                result['bytes_per_frame'] = float(args.width * args.height * 3)
        elif args.cmd == 'sub':
            rows = []
            jpeg = args.format == 'jpeg'

            def on_image(msg) -> None:
                now = time.time()
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                row = {'seq': int(msg.header.frame_id), 't': now,
                       'latency_ms': (now - stamp) * 1000.0, 'bytes': len(msg.data)}
                if jpeg:
                    t0 = time.perf_counter()
                    frame = decode_jpeg(bytes(msg.data))
                    row['decode_ms'] = (time.perf_counter() - t0) * 1000.0
                    row['shape'] = list(frame.shape)
                    row['mean'] = float(frame.mean())
                else:
                    row['shape'] = [msg.height, msg.width, 3]
                sys.stderr.write(f'{GOT} {row["seq"]}\n')
                sys.stderr.flush()
                rows.append(row)

            node.create_subscription(CompressedImage if jpeg else Image, args.topic, on_image,
                                     qos(args.qos, args.depth))
            while not stop.is_set() and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.05)
            result['received'] = rows
        elif args.cmd == 'srv':
            count = [0]

            def on_call(request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
                count[0] += 1
                response.success = True
                response.message = f'ok {count[0]}'
                return response

            node.create_service(Trigger, args.topic, on_call)
            while not stop.is_set() and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.05)
            result['served'] = count[0]
        elif args.cmd == 'call':
            client = node.create_client(Trigger, args.topic)
            t0 = time.monotonic()
            found = client.wait_for_service(timeout_sec=args.duration)
            result['wait_s'] = time.monotonic() - t0
            calls = []
            if found:
                for _ in range(args.count):
                    start = time.monotonic()
                    future = client.call_async(Trigger.Request())
                    rclpy.spin_until_future_complete(node, future, timeout_sec=args.call_timeout)
                    if future.done() and future.result() is not None:
                        calls.append({'rtt_ms': (time.monotonic() - start) * 1000.0,
                                      'message': future.result().message})
                    else:
                        calls.append({'rtt_ms': None, 'message': None})
                        client.remove_pending_request(future)
                    if stop.is_set():
                        break
            result['found'] = found
            result['calls'] = calls
    finally:
        node.destroy_node()
    result['end'] = time.time()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('cmd', choices=('pub', 'sub', 'srv', 'call'))
    parser.add_argument('--out', required=True)
    parser.add_argument('--topic', default='probe')
    parser.add_argument('--qos', choices=('reliable', 'best_effort'), default='reliable')
    parser.add_argument('--depth', type=int, default=5)
    parser.add_argument('--rate', type=float, default=10.0)
    parser.add_argument('--width', type=int, default=64)
    parser.add_argument('--height', type=int, default=48)
    parser.add_argument('--format', choices=('raw', 'jpeg'), default='raw')
    parser.add_argument('--quality', type=int, default=80)
    parser.add_argument('--scene', choices=('sim', 'synthetic'), default='sim')
    parser.add_argument('--duration', type=float, default=10.0)
    parser.add_argument('--count', type=int, default=10)
    parser.add_argument('--call-timeout', type=float, default=5.0)
    args = parser.parse_args()
    stop = threading.Event()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        result = run(args, stop)
    finally:
        rclpy.try_shutdown()
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(result, f)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
