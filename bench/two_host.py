"""Robot host and GPU host as two network namespaces: latency and image QoS under link faults.

Part 1, closed loop: the sim bridge on the robot host, ``janusvln_node`` (scripted engine, 0.1 s
simulated inference) on the GPU host; one episode per link condition. Reports the
camera-to-command latency measured on the robot host (frame arrival to the first non-zero
``cmd_vel`` arrival), camera-timeout statuses, steps taken, final state, and odometry samples where
the base moved on a stale command (must be 0).

Part 2, image QoS: images at 10 Hz from the robot host to the GPU host, best effort vs reliable
(KEEP_LAST depth 1, like the node's image subscription), at 0 %, 5 % and 30 % packet loss, with
both Fast DDS profiles: delivered fraction, latency, bytes per frame (payload and on the wire).
Image kinds (``--images``): ``raw`` 224x224 rgb8 (150 KB of noise: raw size does not depend on
content), ``jpeg`` 224x224 ``sensor_msgs/CompressedImage`` (JPEG quality 80 of frames rendered by
the simulator, encoded per frame with Pillow, decoded on the GPU host) and ``jpeg640`` the same
at 640x480.

Run as root from the repository root: ``.venv/bin/python bench/two_host.py`` (all, ~12 min) or
``.venv/bin/python bench/two_host.py --only-qos --images jpeg`` (one part). Prints tables and
writes ``bench/results/two_host.json``, merging into it: image-QoS rows not re-measured and, with
``--only-qos``, the closed-loop results are kept from the existing file.
"""

import argparse
import json
import os
import pathlib
import platform
import random
import statistics
import sys
import tempfile
import time
from typing import Optional

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'test' / 'net'))
os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ['HF_HUB_OFFLINE'] = '1'
_pp = os.environ.get('PYTHONPATH', '')
if str(REPO) not in _pp.split(os.pathsep):
    os.environ['PYTHONPATH'] = os.pathsep.join(p for p in (str(REPO), _pp) if p)

import loop as lp  # noqa: E402
import netlab  # noqa: E402

PROBE = str(REPO / 'test' / 'net' / 'probe.py')
CONDITIONS = [
    ('clean', {}),
    ('delay 50 ms', {'delay_ms': 50.0}),
    ('delay 200 ms', {'delay_ms': 200.0}),
    ('loss 5 %', {'loss': 0.05}),
    ('loss 30 %', {'loss': 0.30}),
    ('cut 3 s', {'cut_s': 3.0}),
]
# name: (format, width, height)
IMAGES = {'raw': ('raw', 224, 224), 'jpeg': ('jpeg', 224, 224), 'jpeg640': ('jpeg', 640, 480)}
JPEG_QUALITY = 80


def closed_loop(workdir: pathlib.Path, seed: int) -> list:
    rows = []
    with netlab.TwoHostLab(log_dir=str(workdir), seed=seed) as lab:
        loop = lp.Loop(lab, workdir)
        for name, cond in CONDITIONS:
            fault = {}

            def before(cond: dict = cond) -> None:
                if 'delay_ms' in cond or 'loss' in cond:
                    lab.impair(delay_ms=cond.get('delay_ms', 0.0), loss=cond.get('loss', 0.0))

            def during(go_t: float, cond: dict = cond, fault: dict = fault) -> None:
                if 'cut_s' in cond:
                    time.sleep(2.0)
                    fault['start'] = time.time()
                    fault['end'] = lab.cut(cond['cut_s'])
                    time.sleep(cond['cut_s'])
                elif 'loss' in cond:
                    fault['start'] = go_t
                    time.sleep(6.0)
                    fault['end'] = time.time()
                    lab.clear()

            tag = name.replace(' ', '').replace('%', 'pct')
            rec = loop.episode(tag, before=before, during=during, timeout=60.0)
            lab.clear()
            final = lp.final_status(rec)
            lat = lp.step_latencies(rec)
            statuses = lp.episode_statuses(rec)
            end = fault.get('end')
            rows.append({
                'condition': name, **cond,
                'final_state': None if final is None else final['state'],
                'steps': None if final is None else final['step'],
                'episode_s': None if final is None else final['t'] - rec['go_t'],
                'cmd_latency_ms': lp.summary(lat['cmd_ms']),
                'status_latency_ms': lp.summary(lat['status_ms']),
                'camera_timeouts': len(lp.camera_timeouts(rec)),
                'steps_during_fault': (None if end is None else max(
                    (s['step'] for s in statuses if s['t'] <= end), default=0)),
                'stale_motion_samples': len(lp.stale_motion(rec)),
                'nodes_alive': loop.alive(),
            })
            sys.stderr.write(f'{name}: {rows[-1]}\n')
        lab.stop(loop.node, timeout=15)
        lab.stop(loop.bridge, timeout=15)
        mode = lab.mode
    return rows, mode


def image_qos(workdir: pathlib.Path, seed: int, duration: float, profile: str,
              image: str) -> list:
    """Stream ``image`` frames robot -> GPU per loss and QoS; one row each."""
    fmt_, width, height = IMAGES[image]
    rows = []
    with netlab.TwoHostLab(log_dir=str(workdir), seed=seed, profile=profile) as lab:
        for loss in (0.0, 0.05, 0.30):
            for qos in ('best_effort', 'reliable'):
                tag = f'qos_{image}_{qos}_{int(loss * 100)}'
                sub_out, pub_out = workdir / f'{tag}_sub.json', workdir / f'{tag}_pub.json'
                common = ['--topic', tag, '--qos', qos, '--depth', '1', '--format', fmt_]
                sub = lab.popen(netlab.GPU, [sys.executable, PROBE, 'sub', '--out', str(sub_out),
                                             *common, '--duration', str(duration + 30)],
                                f'{tag}_sub')
                pub = lab.popen(netlab.ROBOT, [
                    sys.executable, PROBE, 'pub', '--out', str(pub_out), *common,
                    '--duration', str(duration + 3.0), '--rate', '10', '--width', str(width),
                    '--height', str(height), '--quality', str(JPEG_QUALITY), '--scene', 'sim'],
                    f'{tag}_pub')
                time.sleep(3.0)  # discovery on a clean link
                lab.impair(loss=loss)
                t0, wire0 = time.time(), _link_counts(lab)
                time.sleep(duration)
                t1, wire1 = time.time(), _link_counts(lab)
                lab.clear()
                pub.wait(timeout=30)
                time.sleep(1.0)
                lab.stop(sub)
                received = json.loads(sub_out.read_text())['received']
                published = json.loads(pub_out.read_text())
                window = [r for r in received if t0 <= r['t'] - r['latency_ms'] / 1e3 <= t1]
                sent = int(round((t1 - t0) * 10))
                decode = [r['decode_ms'] for r in window if 'decode_ms' in r]
                rows.append({
                    'profile': profile, 'format': fmt_, 'width': width, 'height': height,
                    'quality': JPEG_QUALITY if fmt_ == 'jpeg' else None,
                    'scene': 'sim' if fmt_ == 'jpeg' else 'noise',
                    'loss': loss, 'qos': qos, 'sent': sent, 'delivered': len(window),
                    'delivered_fraction': len(window) / max(1, sent),
                    'latency_ms': lp.summary([r['latency_ms'] for r in window]),
                    'bytes_per_frame': published.get('bytes_per_frame'),
                    'link_bytes_in_per_frame': _per_frame(wire0, wire1, 'bytes_in', sent),
                    'link_bytes_out_per_frame': _per_frame(wire0, wire1, 'bytes_out', sent),
                    'encode_ms_median': published.get('encode_ms'),
                    'decode_ms_median': statistics.median(decode) if decode else None,
                    'decoded_shapes_ok': all(r['shape'] == [height, width, 3] for r in window),
                })
                sys.stderr.write(f'{profile} {tag}: {rows[-1]}\n')
    return rows


def _link_counts(lab: netlab.TwoHostLab) -> dict:
    """Robot-to-GPU counters of the user-space link ({} with netem)."""
    return dict((lab.wire_stats() or {}).get('a_to_b', {})) if lab.mode == 'userspace' else {}


def _per_frame(before: dict, after: dict, key: str, frames: int) -> Optional[float]:
    if key not in before or key not in after:
        return None
    return (after[key] - before[key]) / max(1, frames)


def _row_key(row: dict) -> tuple:
    return (row.get('profile', 'udp'), row.get('format', 'raw'), row.get('width', 224),
            row.get('height', 224), row['loss'], row['qos'])


def merge_qos(old: list, new: list) -> list:
    """``old`` rows not re-measured in ``new``, then ``new``.

    Rows are keyed by profile, format, size, loss and QoS; rows written before formats existed
    are raw 224x224 on the ``udp`` profile.
    """
    fresh = {_row_key(r) for r in new}
    kept = []
    for row in old:
        row = {'profile': 'udp', 'format': 'raw', 'width': 224, 'height': 224, **row}
        if _row_key(row) not in fresh:
            kept.append(row)
    return kept + new


def fmt(v: object) -> str:
    if v is None:
        return '-'
    if isinstance(v, float):
        return f'{v:.0f}' if abs(v) >= 10 else f'{v:.2f}'
    return str(v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seed', type=int, default=3)
    parser.add_argument('--qos-seconds', type=float, default=8.0)
    parser.add_argument('--skip-loop', action='store_true')
    parser.add_argument('--only-qos', action='store_true',
                        help='skip the closed loop and keep its results from --out')
    parser.add_argument('--images', nargs='+', default=sorted(IMAGES), choices=sorted(IMAGES))
    parser.add_argument('--profiles', nargs='+', default=['udp', 'udp_small'],
                        choices=sorted(netlab.PROFILES))
    parser.add_argument('--out', default=str(REPO / 'bench' / 'results' / 'two_host.json'))
    args = parser.parse_args()
    random.seed(args.seed)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix='jvln_two_host_'))
    out = pathlib.Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    skip_loop = args.skip_loop or args.only_qos
    loop_rows, mode = ([], None) if skip_loop else closed_loop(workdir / 'loop', args.seed)
    if args.only_qos:
        loop_rows = previous.get('closed_loop', [])
    qos_rows = []
    for image in args.images:
        for profile in args.profiles:
            qos_rows += image_qos(workdir / f'qos_{image}_{profile}', args.seed,
                                  args.qos_seconds, profile, image)
    qos_rows = merge_qos(previous.get('image_qos', []), qos_rows)
    result = {
        'impairment': mode or ('netem' if netlab.netem_available() else 'userspace'),
        'impairment_note': ('kernel tc netem on a veth pair' if mode == 'netem' else
                            'user-space TAP forwarder (test/net/tapwire.py); the kernel has no '
                            'sch_netem'),
        'delay_semantics': 'one-way delay added in each direction (RTT grows by twice it)',
        'loss_semantics': 'each Ethernet frame (IP packet or fragment) dropped independently, '
                          'each direction; MTU 1500',
        'dds': {'discovery': 'ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET',
                'profile': 'closed loop: test/net/fastdds_udp.xml (UDPv4 only, default 64 KB '
                           'messages); image QoS: udp (test/net/fastdds_udp.xml) and udp_small '
                           '(config/fastdds_udp.xml, maxMessageSize 1400)'},
        'image_qos_setup': {'rate_hz': 10, 'history': 'KEEP_LAST', 'depth': 1,
                            'window_s': args.qos_seconds,
                            'jpeg': f'sensor_msgs/CompressedImage, Pillow JPEG quality '
                                    f'{JPEG_QUALITY}, frames rendered by janusvln_ros.sim '
                                    '(turning in place, 24 views), encoded per frame',
                            'link_bytes': 'robot-to-GPU Ethernet bytes in the window / frames '
                                          'sent: _in = offered to the link (RTPS and IP '
                                          'headers, retransmissions, discovery), _out = '
                                          'delivered after loss'},
        'node': {'engine': 'scripted', 'script': lp.SCRIPT, 'script_step_delay_s': 0.1,
                 'camera_timeout_s': lp.CAMERA_TIMEOUT_S, 'image_reliability': 'best_effort'},
        'bridge': {'camera': '224x224 rgb8 at 10 Hz', 'cmd_timeout_s': lp.CMD_TIMEOUT_S},
        'host': {'cpus': os.cpu_count(), 'python': platform.python_version(),
                 'kernel': platform.release()},
        'closed_loop': loop_rows,
        'image_qos': qos_rows,
    }
    if args.only_qos:
        for key in ('impairment', 'node', 'bridge'):
            result[key] = previous.get(key, result[key])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f'impairment: {result["impairment"]}')
    if loop_rows:
        print('| condition | final | steps | episode s | cmd latency p50/p90 ms | '
              'camera timeouts | steps under fault | stale motion |')
        print('|---|---|---|---|---|---|---|---|')
        for r in loop_rows:
            lat = r['cmd_latency_ms']
            print(f'| {r["condition"]} | {fmt(r["final_state"])} | {fmt(r["steps"])} | '
                  f'{fmt(r["episode_s"])} | {fmt(lat["median"])}/{fmt(lat["p90"])} | '
                  f'{r["camera_timeouts"]} | {fmt(r["steps_during_fault"])} | '
                  f'{r["stale_motion_samples"]} |')
    print('| image | DDS profile | loss | image QoS | delivered/sent | latency p50/p90 ms | '
          'bytes/frame | link bytes in/out per frame |')
    print('|---|---|---|---|---|---|---|---|')
    for r in qos_rows:
        lat = r['latency_ms']
        print(f'| {r["format"]} {r["width"]}x{r["height"]} | {r["profile"]} | '
              f'{r["loss"] * 100:.0f} % | {r["qos"]} | {r["delivered"]}/{r["sent"]} | '
              f'{fmt(lat["median"])}/{fmt(lat["p90"])} | {fmt(r.get("bytes_per_frame"))} | '
              f'{fmt(r.get("link_bytes_in_per_frame"))}/'
              f'{fmt(r.get("link_bytes_out_per_frame"))} |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
