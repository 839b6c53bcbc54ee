"""Robot host and GPU host as two network namespaces: latency and image QoS under link faults.

Part 1, closed loop: the sim bridge on the robot host, ``janusvln_node`` (scripted engine, 0.1 s
simulated inference) on the GPU host; one episode per link condition. Reports the
camera-to-command latency measured on the robot host (frame arrival to the first non-zero
``cmd_vel`` arrival), camera-timeout statuses, steps taken, final state, and odometry samples where
the base moved on a stale command (must be 0).

Part 2, image QoS: 224x224 rgb8 frames (150 KB) at 10 Hz from the robot host to the GPU host,
best effort vs reliable, at 0 %, 5 % and 30 % packet loss: delivered fraction, rate, latency.

Run as root from the repository root: ``.venv/bin/python bench/two_host.py [--quick]``.
Prints a table and writes ``bench/results/two_host.json``.
"""

import argparse
import json
import os
import pathlib
import platform
import random
import sys
import tempfile
import time

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


def image_qos(workdir: pathlib.Path, seed: int, duration: float, profile: str) -> list:
    rows = []
    with netlab.TwoHostLab(log_dir=str(workdir), seed=seed, profile=profile) as lab:
        for loss in (0.0, 0.05, 0.30):
            for qos in ('best_effort', 'reliable'):
                tag = f'qos_{qos}_{int(loss * 100)}'
                sub_out, pub_out = workdir / f'{tag}_sub.json', workdir / f'{tag}_pub.json'
                sub = lab.popen(netlab.GPU, [sys.executable, PROBE, 'sub', '--out', str(sub_out),
                                             '--topic', tag, '--qos', qos, '--depth', '1',
                                             '--duration', str(duration + 30)], f'{tag}_sub')
                pub = lab.popen(netlab.ROBOT, [
                    sys.executable, PROBE, 'pub', '--out', str(pub_out), '--topic', tag,
                    '--qos', qos, '--depth', '1', '--duration', str(duration + 3.0),
                    '--rate', '10', '--width', '224', '--height', '224'], f'{tag}_pub')
                time.sleep(3.0)  # discovery on a clean link
                lab.impair(loss=loss)
                t0 = time.time()
                time.sleep(duration)
                t1 = time.time()
                lab.clear()
                pub.wait(timeout=30)
                time.sleep(1.0)
                lab.stop(sub)
                received = json.loads(sub_out.read_text())['received']
                window = [r for r in received if t0 <= r['t'] - r['latency_ms'] / 1e3 <= t1]
                sent = int(round((t1 - t0) * 10))
                rows.append({'profile': profile, 'loss': loss, 'qos': qos, 'sent': sent,
                             'delivered': len(window),
                             'delivered_fraction': len(window) / max(1, sent),
                             'latency_ms': lp.summary([r['latency_ms'] for r in window])})
                sys.stderr.write(f'{tag}: {rows[-1]}\n')
    return rows


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
    parser.add_argument('--profiles', nargs='+', default=['udp', 'udp_small'],
                        choices=sorted(netlab.PROFILES))
    parser.add_argument('--out', default=str(REPO / 'bench' / 'results' / 'two_host.json'))
    args = parser.parse_args()
    random.seed(args.seed)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix='jvln_two_host_'))
    loop_rows, mode = ([], None) if args.skip_loop else closed_loop(workdir / 'loop', args.seed)
    qos_rows = []
    for profile in args.profiles:
        qos_rows += image_qos(workdir / f'qos_{profile}', args.seed, args.qos_seconds, profile)
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
                           'messages); image QoS: udp and udp_small (maxMessageSize 1400)'},
        'node': {'engine': 'scripted', 'script': lp.SCRIPT, 'script_step_delay_s': 0.1,
                 'camera_timeout_s': lp.CAMERA_TIMEOUT_S, 'image_reliability': 'best_effort'},
        'bridge': {'camera': '224x224 rgb8 at 10 Hz', 'cmd_timeout_s': lp.CMD_TIMEOUT_S},
        'host': {'cpus': os.cpu_count(), 'python': platform.python_version(),
                 'kernel': platform.release()},
        'closed_loop': loop_rows,
        'image_qos': qos_rows,
    }
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
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
    print('| DDS profile | loss | image QoS | delivered/sent | latency p50/p90 ms |')
    print('|---|---|---|---|---|')
    for r in qos_rows:
        lat = r['latency_ms']
        print(f'| {r["profile"]} | {r["loss"] * 100:.0f} % | {r["qos"]} | '
              f'{r["delivered"]}/{r["sent"]} | '
              f'{fmt(lat["median"])}/{fmt(lat["p90"])} |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
