"""Node overhead: Image-to-engine-input conversion, and camera-to-cmd_vel latency.

1. ``image_to_rgb`` on 640x480 frames of each accepted encoding (in process): p50/p95.
2. The node in its own process (loopback; run inside ``unshare -n`` when possible), a 30 Hz
   640x480 camera and instructions from this process: for every step, the time from the
   publication of the frame the step used (the status header carries its stamp) to the arrival
   of the first non-zero cmd_vel of that step. With ``--model-path`` the real engine runs on
   that checkpoint (e.g. the tiny one from ``janusvln checkpoint init-tiny``); without it the
   scripted engine shows the node's own overhead.

Prints a table and writes ``bench/results/node_overhead.json``.

Usage: python bench/node_overhead.py [--model-path DIR] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
os.environ.setdefault('ROS_DOMAIN_ID', str(50 + os.getpid() % 50))
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(REPO / 'config' / 'fastdds_shm.xml'))
os.environ['PYTHONPATH'] = os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')])

from janusvln_ros.ros.conversions import image_to_rgb, rgb_to_image  # noqa: E402


def conversion_bench(reps: int = 200) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    out = {}
    for encoding in ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8'):
        msg = rgb_to_image(rgb, encoding)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            image_to_rgb(msg)
            times.append((time.perf_counter() - t0) * 1e3)
        out[encoding] = {'p50_ms': float(np.percentile(times, 50)),
                         'p95_ms': float(np.percentile(times, 95))}
    return out


def latency_bench(model_path: str, steps: int) -> dict[str, float | int | str]:
    import rclpy
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import Twist
    from janusvln_interfaces.msg import NavigationStatus
    from janusvln_interfaces.srv import SetInstruction
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    params = ['-p', 'autostart:=true', '-p', 'linear_speed_mps:=2.5',
              '-p', 'angular_speed_radps:=5.0', '-p', 'max_steps:=1000']
    if model_path:
        params += ['-p', 'engine:=janusvln', '-p', f'model_path:={model_path}']
        engine = 'janusvln (tiny)'
    else:
        params += ['-p', 'engine:=scripted', '-p', 'script:=MOVE_FORWARD,TURN_LEFT']
        engine = 'scripted'
    node_exe = str(pathlib.Path(sys.executable).parent / 'janusvln_node')
    proc = subprocess.Popen([node_exe, '--ros-args', *params], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    rclpy.init()
    node = rclpy.create_node('node_overhead_bench')
    statuses: list[tuple[float, NavigationStatus]] = []
    cmds: list[tuple[float, Twist]] = []
    node.create_subscription(NavigationStatus, 'status',
                             lambda m: statuses.append((time.time(), m)), 50)
    node.create_subscription(Twist, 'cmd_vel', lambda m: cmds.append((time.time(), m)), 50)
    pub = node.create_publisher(Image, 'image_raw',
                                QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    client = node.create_client(SetInstruction, 'set_instruction')
    stop = threading.Event()
    rgb = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)

    def camera() -> None:
        nxt = time.monotonic()
        while not stop.is_set():
            now = time.time()
            stamp = Time(sec=int(now), nanosec=int((now % 1) * 1e9))
            pub.publish(rgb_to_image(rgb, stamp=stamp))
            nxt += 1 / 30
            time.sleep(max(0.0, nxt - time.monotonic()))
    cam = threading.Thread(target=camera, daemon=True)
    try:
        if not client.wait_for_service(timeout_sec=120):
            raise RuntimeError('the node did not come up')
        cam.start()
        latencies: list[float] = []
        deadline = time.monotonic() + 600
        episode = 0
        while len(latencies) < steps and time.monotonic() < deadline:
            last = statuses[-1][1] if statuses else None
            if last is None or last.state != NavigationStatus.NAVIGATING or \
                    last.episode_id != episode:
                fut = client.call_async(SetInstruction.Request(
                    instruction='walk down the corridor', reset_memory=True))
                while not fut.done():
                    rclpy.spin_once(node, timeout_sec=0.05)
                episode = fut.result().episode_id
            rclpy.spin_once(node, timeout_sec=0.05)
            latencies = _step_latencies(statuses, cmds)
    finally:
        stop.set()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        node.destroy_node()
        rclpy.try_shutdown()
    lat = np.array(latencies) * 1e3
    return {'engine': engine, 'steps': int(lat.size),
            'p50_ms': float(np.percentile(lat, 50)) if lat.size else float('nan'),
            'p95_ms': float(np.percentile(lat, 95)) if lat.size else float('nan'),
            'node_exit_code': proc.returncode}


def _step_latencies(statuses: list, cmds: list) -> list[float]:
    seen: set[tuple[int, int]] = set()
    out = []
    for wall, msg in list(statuses):
        key = (msg.episode_id, msg.step)
        if msg.step == 0 or key in seen or msg.last_action == 0 or not msg.header.stamp.sec:
            continue
        seen.add(key)
        frame_t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        moving = [t for t, c in list(cmds) if t >= wall - 0.5 and t >= frame_t
                  and (c.linear.x or c.angular.z)]
        if moving:
            out.append(min(moving) - frame_t)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model-path', default='', help='checkpoint for the real engine')
    parser.add_argument('--steps', type=int, default=20)
    args = parser.parse_args()
    conv = conversion_bench()
    lat = latency_bench(args.model_path, args.steps)
    rows = [(f'image_to_rgb 640x480 {enc}', v['p50_ms'], v['p95_ms']) for enc, v in conv.items()]
    rows.append((f'camera -> cmd_vel ({lat["engine"]}, {lat["steps"]} steps)', lat['p50_ms'],
                 lat['p95_ms']))
    print(f'{"measurement":<48} {"p50 ms":>9} {"p95 ms":>9}')
    for name, p50, p95 in rows:
        print(f'{name:<48} {p50:9.2f} {p95:9.2f}')
    result = {'conversion_640x480': conv, 'camera_to_cmd_vel': lat,
              'machine': {'cpu_count': os.cpu_count(), 'python': platform.python_version(),
                          'platform': platform.platform()}}
    out = REPO / 'bench' / 'results' / 'node_overhead.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
