"""The two-host harness itself: isolation, cleanup, DDS across the link, and each impairment.

Plain rclpy processes (``probe.py``) run on the "robot" and "GPU" hosts; every measurement is
taken on the far side of the link.

Timing: CI shares its cores with other work, so the probes can be descheduled and publish below
their nominal rate. Tests wait for the first delivered message instead of sleeping through
discovery, count deliveries against what was sent (sequence numbers) rather than against the
nominal rate, and bound latencies only where the bound is the property tested (the delay is
there, the clean link adds none of it).
"""

import json
import pathlib
import statistics
import subprocess
import sys
import time

import netlab
from probe import GOT
import pytest

PROBE = str(pathlib.Path(__file__).resolve().parent / 'probe.py')


def _probe(lab, host, cmd, out, name, *args):
    return lab.popen(host, [sys.executable, PROBE, cmd, '--out', str(out), *args], name)


def _stream(lab, tmp_path, tag, duration=4.0, size=(32, 24), qos='reliable', rate=20.0):
    """Images robot -> GPU for ``duration`` s; returns (pub result, sub result)."""
    sub_out, pub_out = tmp_path / f'{tag}_sub.json', tmp_path / f'{tag}_pub.json'
    # Deep histories: a descheduled process must not lose frames to a full keep-last queue.
    sub = _probe(lab, netlab.GPU, 'sub', sub_out, f'{tag}_sub', '--topic', 'img',
                 '--qos', qos, '--duration', str(duration + 90.0), '--depth', '200')
    pub = _probe(lab, netlab.ROBOT, 'pub', pub_out, f'{tag}_pub', '--topic', 'img',
                 '--qos', qos, '--duration', str(duration), '--rate', str(rate),
                 '--width', str(size[0]), '--height', str(size[1]), '--depth', '200')
    assert pub.wait(timeout=duration + 60) == 0, lab.log_text(netlab.ROBOT, f'{tag}_pub')
    sent = json.loads(pub_out.read_text())['sent']
    if qos == 'reliable':  # wait for retransmissions: the last frame sent arrives
        _wait_received(lab, netlab.GPU, f'{tag}_sub', lambda seqs: sent - 1 in seqs, 20.0)
    else:
        time.sleep(1.0)  # best effort: nothing to wait for but frames still in flight
    assert lab.stop(sub) == 0, lab.log_text(netlab.GPU, f'{tag}_sub')
    return json.loads(pub_out.read_text()), json.loads(sub_out.read_text())


def _received(lab, host, name):
    """Sequence numbers the ``sub`` probe ``name`` has logged so far."""
    return [int(line.split()[-1]) for line in lab.log_text(host, name).splitlines()
            if line.startswith(GOT)]


def _wait_received(lab, host, name, done, timeout=60.0):
    """Wait until ``done(sequence numbers received so far)`` holds (generous deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done(_received(lab, host, name)):
            return
        time.sleep(0.05)
    raise AssertionError(f'{name}: condition not met within {timeout} s: '
                         f'{_received(lab, host, name)[-10:]}')


def _steady(sub, skip_s=1.0):
    """Received rows after discovery settled (the first ``skip_s`` seconds dropped)."""
    rows = sub['received']
    if not rows:
        return rows
    return [r for r in rows if r['t'] >= rows[0]['t'] + skip_s]


def test_namespaces_are_isolated_and_removed(tmp_path):
    with netlab.TwoHostLab(log_dir=str(tmp_path)) as lab:
        names = dict(lab.ns)
        for host in (netlab.ROBOT, netlab.GPU):
            assert sorted(lab.interfaces(host)) == sorted(['lo', lab.dev[host]])
            routes = lab.routes(host)
            assert not [r for r in routes if r.startswith('default')], routes
            main_v4 = [r for r in routes if 'table' not in r and ':' not in r.split()[0]]
            assert sorted(r.split()[0] for r in main_v4) == ['10.213.57.0/30', '224.0.0.0/4']
        listed = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout
        assert names[netlab.ROBOT] in listed and names[netlab.GPU] in listed
        assert lab.mode in ('netem', 'userspace')
        assert lab.mode == ('netem' if netlab.netem_available() else 'userspace')
        wire = lab._wire
    listed = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout
    assert names[netlab.ROBOT] not in listed and names[netlab.GPU] not in listed
    if wire is not None:
        assert wire.poll() is not None, 'the link forwarder outlived the lab'


def test_cleanup_happens_on_error_and_kills_leftovers(tmp_path):
    with pytest.raises(RuntimeError, match='boom'):
        with netlab.TwoHostLab(log_dir=str(tmp_path)) as lab:
            names = dict(lab.ns)
            sleeper = lab.popen(netlab.GPU, ['sleep', '300'], 'sleeper')
            raise RuntimeError('boom')
    assert sleeper.poll() is not None
    listed = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout
    assert names[netlab.GPU] not in listed


def test_images_and_a_service_cross_the_link_without_shared_memory(tmp_path):
    with netlab.TwoHostLab(log_dir=str(tmp_path)) as lab:
        before = lab.link_bytes()
        pub, sub = _stream(lab, tmp_path, 'clean', duration=4.0, size=(160, 120))
        after = lab.link_bytes()
        seqs = [r['seq'] for r in sub['received']]
        assert pub['matched'] == 1
        # The publisher does not wait for the match: frames sent before discovery finished are
        # not delivered (volatile). Count from the first delivered one; every later one arrives.
        assert seqs and seqs[0] < pub['sent'] // 2, (seqs[:5], pub['sent'])
        assert seqs == list(range(seqs[0], pub['sent'])), (seqs[:5], seqs[-5:], pub['sent'])
        assert seqs == sorted(seqs)
        # Every frame's bytes went through the link: no shared-memory shortcut between hosts.
        if lab.mode == 'userspace':
            crossed = after['robot_to_gpu'] - before['robot_to_gpu']
            assert crossed >= len(seqs) * 160 * 120 * 3, (crossed, len(seqs))
        # The clean link adds no delay: far below the 50 ms the delay test injects, with room
        # for a loaded machine's scheduling.
        assert statistics.median(r['latency_ms'] for r in sub['received']) < 45.0

        srv = _probe(lab, netlab.GPU, 'srv', tmp_path / 'srv.json', 'srv', '--topic', 'trig',
                     '--duration', '30')
        call_out = tmp_path / 'call.json'
        call = _probe(lab, netlab.ROBOT, 'call', call_out, 'call', '--topic', 'trig',
                      '--count', '5', '--duration', '20')
        assert call.wait(timeout=40) == 0, lab.log_text(netlab.ROBOT, 'call')
        assert lab.stop(srv) == 0
        result = json.loads(call_out.read_text())
        assert result['found']
        assert [c['message'] for c in result['calls']] == [f'ok {i}' for i in range(1, 6)]


def test_static_peers_discovery_without_multicast(tmp_path):
    with netlab.TwoHostLab(log_dir=str(tmp_path), discovery='static') as lab:
        env = lab.env(netlab.ROBOT)
        assert env['ROS_STATIC_PEERS'] == netlab.GPU_ADDR
        assert lab.env(netlab.GPU)['ROS_STATIC_PEERS'] == netlab.ROBOT_ADDR
        pub, sub = _stream(lab, tmp_path, 'static', duration=6.0)
        seqs = [r['seq'] for r in sub['received']]
        assert seqs, 'nothing crossed the link with static peers'
        # Unicast discovery can take a moment after the publisher first matched: count from the
        # first delivered message, and require that discovery finished within half the stream
        # (3 s; generous for a loaded machine).
        assert seqs[0] < pub['sent'] // 2, (seqs[:5], pub['sent'])
        assert len(seqs) >= pub['sent'] - seqs[0] - 2, (len(seqs), pub['sent'], seqs[0])


def test_delay_loss_and_cut_are_applied(tmp_path):
    """One best-effort stream of one-packet frames while the impairment changes under it."""
    with netlab.TwoHostLab(log_dir=str(tmp_path), seed=7) as lab:
        sub_out = tmp_path / 'phases_sub.json'
        # A deep history: a descheduled subscriber must not drop what the link delivered.
        sub = _probe(lab, netlab.GPU, 'sub', sub_out, 'phases_sub', '--topic', 'img',
                     '--qos', 'best_effort', '--duration', '90', '--depth', '400')
        pub = _probe(lab, netlab.ROBOT, 'pub', tmp_path / 'phases_pub.json', 'phases_pub',
                     '--topic', 'img', '--qos', 'best_effort', '--duration', '90',
                     '--rate', '40', '--width', '16', '--height', '16', '--depth', '400')
        phases = {}

        def phase(name, seconds, **impairment):
            if name == 'cut':
                lab.clear()
                start = time.time()
                end = lab.cut(seconds)
            else:
                lab.impair(**impairment)
                start = time.time()
                end = start + seconds
            time.sleep(max(0.0, end - time.time()))
            phases[name] = (start, end)

        _wait_received(lab, netlab.GPU, 'phases_sub', bool)  # discovery on a clean link
        time.sleep(0.5)  # past the first message's matching burst
        phase('clean', 2.0)
        phase('delay', 2.5, delay_ms=50.0)
        phase('loss', 4.0, loss=0.30)
        phase('cut', 2.0)
        phase('after', 2.0)
        lab.stop(pub)
        assert lab.stop(sub) == 0, lab.log_text(netlab.GPU, 'phases_sub')
        rows = json.loads(sub_out.read_text())['received']
        for r in rows:
            r['sent'] = r['t'] - r['latency_ms'] / 1000.0

        def within(name, margin=0.3):
            start, end = phases[name]
            return [r for r in rows if start + margin <= r['sent'] <= end - margin]

        def complete(rows_in):
            """Every frame sent in the phase arrived (a loaded publisher may send fewer)."""
            seqs = [r['seq'] for r in rows_in]
            return len(seqs) >= 10 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))

        clean = within('clean')
        assert complete(clean), [r['seq'] for r in clean]
        assert statistics.median(r['latency_ms'] for r in clean) < 45.0
        delayed = within('delay')
        assert complete(delayed), [r['seq'] for r in delayed]
        assert min(r['latency_ms'] for r in delayed) >= 49.0
        assert statistics.median(r['latency_ms'] for r in delayed) < 150.0
        lossy = within('loss')
        span = lossy[-1]['seq'] - lossy[0]['seq'] + 1
        assert 0.55 < len(lossy) / span < 0.85, (len(lossy), span)
        cut_start, cut_end = phases['cut']
        arrived = [r['t'] for r in rows]
        assert [t for t in arrived if cut_start + 0.1 < t < cut_end - 0.1] == []
        after = within('after')
        assert complete(after), [r['seq'] for r in after]
        if lab.mode == 'userspace':
            stats = lab.wire_stats()
            assert stats['a_to_b']['dropped_loss'] > 0 and stats['a_to_b']['dropped_cut'] > 0
