"""Small rclpy processes for the two-host harness: image publisher/subscriber, service pair.

Each subcommand runs one node, writes its measurements as JSON to ``--out`` and exits 0 on a
clean stop (``--duration`` elapsed or SIGINT/SIGTERM):

* ``pub``: publish ``sensor_msgs/Image`` (``--width`` x ``--height`` rgb8) at ``--rate`` Hz,
  ``header.stamp`` = wall clock, ``header.frame_id`` = sequence number.
* ``sub``: subscribe such images and record arrival time, sequence number and latency.
* ``srv``: a ``std_srvs/Trigger`` server answering ``ok <n>``.
* ``call``: wait for the Trigger service, call it ``--count`` times, record round trips.

Both hosts share this machine's clock, so ``now - stamp`` is a true one-way latency.
"""

import argparse
import json
import signal
import threading
import time

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger


def qos(kind: str, depth: int) -> QoSProfile:
    """A keep-last QoS profile, ``reliable`` or ``best_effort``."""
    rel = ReliabilityPolicy.RELIABLE if kind == 'reliable' else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=rel)


def _stamp_now(msg: Image) -> None:
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
            pub = node.create_publisher(Image, args.topic, qos(args.qos, args.depth))
            msg = Image(height=args.height, width=args.width, encoding='rgb8',
                        step=args.width * 3)
            rng = np.random.default_rng(0)
            msg.data = rng.integers(0, 255, args.width * args.height * 3, np.uint8).tobytes()
            period = 1.0 / args.rate
            seq = 0
            next_t = time.monotonic()
            while not stop.is_set() and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=max(0.0, next_t - time.monotonic()))
                if time.monotonic() >= next_t:
                    msg.header.frame_id = str(seq)
                    _stamp_now(msg)
                    pub.publish(msg)
                    seq += 1
                    next_t += period
            result['sent'] = seq
            result['matched'] = pub.get_subscription_count()
        elif args.cmd == 'sub':
            rows = []

            def on_image(msg: Image) -> None:
                now = time.time()
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                rows.append((int(msg.header.frame_id), now, (now - stamp) * 1000.0))

            node.create_subscription(Image, args.topic, on_image, qos(args.qos, args.depth))
            while not stop.is_set() and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.05)
            result['received'] = [{'seq': s, 't': t, 'latency_ms': lat} for s, t, lat in rows]
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
