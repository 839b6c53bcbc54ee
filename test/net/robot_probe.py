"""The operator and recorder on the robot host: sends an instruction, records the loop.

Subscribes (all local to the robot host except where noted) and records, with wall-clock arrival
times (both hosts share this machine's clock):

* ``--camera`` images (``sensor_msgs/Image``): header stamp and arrival time;
* ``--cmd-raw`` commands as they arrive from the GPU host (``geometry_msgs/Twist``, best effort);
* ``--cmd-base`` commands as the base gets them (after the robot-side watchdog), if given;
* ``status`` (``janusvln_interfaces/NavigationStatus``, from the GPU host).

It calls ``set_instruction`` with ``--instruction`` once the service is up (after ``--delay``
seconds), and stops ``--exit-after-final`` seconds after a final status (SUCCEEDED, STOPPED or
ERROR) of its episode, or after ``--duration``. Optionally it is the camera itself
(``--fake-camera-rate`` > 0: publishes noise images stamped with wall time). Writes JSON to
``--out``.
"""

import argparse
import json
import os
import signal
import threading
import time

from geometry_msgs.msg import Twist
from janusvln_interfaces.msg import NavigationStatus
from janusvln_interfaces.srv import SetInstruction
from nav_msgs.msg import Odometry
import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image

FINAL = (NavigationStatus.SUCCEEDED, NavigationStatus.STOPPED, NavigationStatus.ERROR)


def stamp_key(stamp: object) -> str:
    """A header stamp as a string key ``sec.nanosec``."""
    return f'{stamp.sec}.{stamp.nanosec:09d}'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True)
    parser.add_argument('--instruction', default='go forward then turn left and stop')
    parser.add_argument('--delay', type=float, default=0.0)
    parser.add_argument('--duration', type=float, default=60.0)
    parser.add_argument('--exit-after-final', type=float, default=1.0)
    parser.add_argument('--camera', default='camera/image_raw')
    parser.add_argument('--cmd-raw', default='cmd_vel_raw')
    parser.add_argument('--cmd-base', default='')
    parser.add_argument('--fake-camera-rate', type=float, default=0.0)
    parser.add_argument('--fake-camera-size', type=int, nargs=2, default=(64, 48))
    parser.add_argument('--fake-camera-qos', choices=('reliable', 'best_effort'),
                        default='best_effort')
    parser.add_argument('--no-instruction', action='store_true')
    parser.add_argument('--odom', default='', help='odometry topic to record (pose and twist)')
    parser.add_argument('--ready-file', default='',
                        help='created once set_instruction is discovered')
    parser.add_argument('--go-file', default='',
                        help='send the instruction only once this file exists')
    args = parser.parse_args()

    stop = threading.Event()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rec: dict = {'frames': [], 'cmd_raw': [], 'cmd_base': [], 'status': [], 'instruction': None,
                 'odom': [],
                 'start': time.time(), 'published_frames': 0}
    node = rclpy.create_node('robot_probe')
    try:
        best = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                          history=HistoryPolicy.KEEP_LAST)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(
            Image, args.camera,
            lambda m: rec['frames'].append((stamp_key(m.header.stamp), time.time())), best)
        node.create_subscription(
            Twist, args.cmd_raw,
            lambda m: rec['cmd_raw'].append((time.time(), m.linear.x, m.angular.z)), best)
        if args.cmd_base:
            node.create_subscription(
                Twist, args.cmd_base,
                lambda m: rec['cmd_base'].append((time.time(), m.linear.x, m.angular.z)), best)
        if args.odom:
            node.create_subscription(
                Odometry, args.odom,
                lambda m: rec['odom'].append((time.time(), m.pose.pose.position.x,
                                              m.pose.pose.position.y, m.twist.twist.linear.x,
                                              m.twist.twist.angular.z)), 10)
        episode = {'id': None, 'final_t': None}

        def on_status(m: NavigationStatus) -> None:
            now = time.time()
            rec['status'].append({'t': now, 'episode_id': m.episode_id, 'state': m.state,
                                  'step': m.step, 'last_action': m.last_action,
                                  'message': m.message, 'stamp': stamp_key(m.header.stamp),
                                  'raw_output': m.raw_output,
                                  'spatial_capacity': m.spatial_memory_capacity,
                                  'latency_ms': m.step_latency_ms})
            if (episode['id'] is not None and m.episode_id == episode['id']
                    and m.state in FINAL and episode['final_t'] is None):
                episode['final_t'] = now

        node.create_subscription(NavigationStatus, 'status', on_status, reliable)
        camera_pub = None
        image = None
        if args.fake_camera_rate > 0:
            rel = (ReliabilityPolicy.RELIABLE if args.fake_camera_qos == 'reliable'
                   else ReliabilityPolicy.BEST_EFFORT)
            camera_pub = node.create_publisher(
                Image, args.camera, QoSProfile(depth=1, reliability=rel))
            w, h = args.fake_camera_size
            image = Image(width=w, height=h, encoding='rgb8', step=w * 3)
            image.data = np.random.default_rng(0).integers(0, 255, w * h * 3,
                                                           np.uint8).tobytes()
        client = node.create_client(SetInstruction, 'set_instruction')
        watched = [args.cmd_raw, 'status'] + [t for t in (args.cmd_base, args.odom) if t]
        if camera_pub is None:
            watched.append(args.camera)
        sent = False
        t0 = time.monotonic()
        deadline = t0 + args.duration
        next_frame = t0
        while not stop.is_set() and time.monotonic() < deadline:
            timeout = 0.02 if camera_pub is not None else 0.05
            rclpy.spin_once(node, timeout_sec=timeout)
            now = time.monotonic()
            if camera_pub is not None and now >= next_frame:
                wall = time.time()
                image.header.stamp.sec = int(wall)
                image.header.stamp.nanosec = int((wall - int(wall)) * 1e9)
                camera_pub.publish(image)
                rec['published_frames'] += 1
                next_frame = max(next_frame + 1.0 / args.fake_camera_rate, now - 0.5)
            # Ready once the service is up and every watched topic has a publisher, so that a
            # test can start the episode without sleeping through discovery.
            ready = client.service_is_ready() and all(
                node.count_publishers(topic) > 0 for topic in watched)
            if ready and args.ready_file and not os.path.exists(args.ready_file):
                with open(args.ready_file, 'w', encoding='utf-8') as f:
                    f.write('ready')
            go = not args.go_file or os.path.exists(args.go_file)
            if (not args.no_instruction and not sent and now - t0 >= args.delay and ready
                    and go):
                sent = True
                call_t = time.time()
                future = client.call_async(SetInstruction.Request(
                    instruction=args.instruction, reset_memory=True))

                def on_done(fut: object, call_t: float = call_t) -> None:
                    res = fut.result()
                    rec['instruction'] = {'t': call_t, 'rtt_ms': (time.time() - call_t) * 1e3,
                                          'accepted': bool(res.accepted),
                                          'message': res.message,
                                          'episode_id': int(res.episode_id)}
                    episode['id'] = int(res.episode_id)
                    # A final status may have arrived before the response.
                    for s in rec['status']:
                        if s['episode_id'] == episode['id'] and s['state'] in FINAL:
                            episode['final_t'] = episode['final_t'] or s['t']

                future.add_done_callback(on_done)
            if (episode['final_t'] is not None
                    and time.time() - episode['final_t'] >= args.exit_after_final):
                break
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    rec['end'] = time.time()
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(rec, f)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
