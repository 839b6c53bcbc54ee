"""User-space impaired link between two network namespaces: two TAP devices and a forwarder.

Used by :mod:`netlab` when the kernel lacks ``sch_netem``. One TAP device is created inside each
namespace (this process enters the namespace with ``setns`` only to open ``/dev/net/tun``), and
this process copies Ethernet frames between the two file descriptors, applying

* a one-way delay to every frame, in both directions (a timed queue, order kept),
* seeded random loss (each frame, each direction, independently),
* full cuts (every frame dropped while the cut lasts),
* optionally a rate limit (token bucket, bits per second, frames over the queue limit dropped).

The impairment is read from a JSON control file whenever its modification time changes
(``{"delay_ms": 50, "loss": 0.05, "cut_until": <time.time()>, "rate_bps": 0}``); counters are
written atomically to a JSON stats file every ``--stats-period`` seconds and at exit. The TAP
devices are not persistent: they disappear when this process exits, so no cleanup is needed.

Run as root: ``python tapwire.py --ns-a PATH --ns-b PATH --dev-a NAME --dev-b NAME --control F
--stats F``. SIGTERM/SIGINT stop it cleanly.
"""

import argparse
import ctypes
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
MAX_FRAME = 65536
QUEUE_LIMIT = 20000


def open_tap_in_namespace(ns_path: str, name: str) -> int:
    """Create a TAP device named ``name`` inside the namespace at ``ns_path``.

    Args:
        ns_path: Path of a network namespace handle, e.g. ``/var/run/netns/jvln_robot_1``.
        name: Interface name (at most 15 characters).

    Returns:
        A non-blocking file descriptor: reads return one Ethernet frame, writes inject one.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open('/proc/self/ns/net', os.O_RDONLY)
    target = os.open(ns_path, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f'setns({ns_path}): {os.strerror(err)}')
        try:
            fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
            ifr = struct.pack('16sH22x', name.encode(), IFF_TAP | IFF_NO_PI)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), 'setns back to the own namespace failed')
    finally:
        os.close(own)
        os.close(target)
    return fd


class Direction:
    """Counters and the delay queue of one direction of the link."""

    def __init__(self, src: int, dst: int, name: str) -> None:
        self.src, self.dst, self.name = src, dst, name
        self.queue: list = []
        self.seq = 0
        self.tokens = 0.0
        self.token_time = time.monotonic()
        self.rate_free_at = 0.0
        self.stats = {'frames_in': 0, 'bytes_in': 0, 'frames_out': 0, 'bytes_out': 0,
                      'dropped_loss': 0, 'dropped_cut': 0, 'dropped_queue': 0,
                      'dropped_write': 0}


class Wire:
    """The forwarder: two TAP file descriptors and the impairment state."""

    def __init__(self, fd_a: int, fd_b: int, control: str, stats: str, seed: int,
                 stats_period: float) -> None:
        self.dirs = [Direction(fd_a, fd_b, 'a_to_b'), Direction(fd_b, fd_a, 'b_to_a')]
        self.control_path, self.stats_path = control, stats
        self.rng = random.Random(seed)
        self.delay_s = 0.0
        self.loss = 0.0
        self.cut_until = 0.0
        self.rate_bps = 0.0
        self.control_mtime = -1
        self.stats_period = stats_period
        self.next_stats = 0.0
        self.running = True
        self.started = time.time()

    def read_control(self) -> None:
        """Reload the control file when it changed."""
        try:
            mtime = os.stat(self.control_path).st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self.control_mtime:
            return
        try:
            with open(self.control_path, encoding='utf-8') as f:
                ctl = json.load(f)
        except (OSError, ValueError):
            return  # half-written; the writer renames atomically, so retry next time
        self.control_mtime = mtime
        self.delay_s = max(0.0, float(ctl.get('delay_ms', 0.0))) / 1000.0
        self.loss = min(1.0, max(0.0, float(ctl.get('loss', 0.0))))
        self.cut_until = float(ctl.get('cut_until', 0.0))
        self.rate_bps = max(0.0, float(ctl.get('rate_bps', 0.0)))

    def write_stats(self) -> None:
        """Write the counters atomically."""
        data = {d.name: dict(d.stats) for d in self.dirs}
        data.update(pid=os.getpid(), time=time.time(), delay_ms=self.delay_s * 1000.0,
                    loss=self.loss, cut=time.time() < self.cut_until, rate_bps=self.rate_bps)
        tmp = self.stats_path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(data, f)
        os.replace(tmp, self.stats_path)

    def ingest(self, d: Direction, now_mono: float, now_wall: float) -> None:
        """Read every pending frame of one direction and queue or drop it."""
        for _ in range(256):
            try:
                frame = os.read(d.src, MAX_FRAME)
            except BlockingIOError:
                return
            except OSError:
                return
            d.stats['frames_in'] += 1
            d.stats['bytes_in'] += len(frame)
            if now_wall < self.cut_until:
                d.stats['dropped_cut'] += 1
                continue
            if self.loss > 0.0 and self.rng.random() < self.loss:
                d.stats['dropped_loss'] += 1
                continue
            if len(d.queue) >= QUEUE_LIMIT:
                d.stats['dropped_queue'] += 1
                continue
            release = now_mono + self.delay_s
            if self.rate_bps > 0.0:
                # Serialise on a virtual wire: the frame leaves when the previous one has.
                start = max(now_mono, d.rate_free_at)
                if start - now_mono > 1.0:  # more than a second of backlog: tail drop
                    d.stats['dropped_queue'] += 1
                    continue
                d.rate_free_at = start + len(frame) * 8.0 / self.rate_bps
                release = d.rate_free_at + self.delay_s
            d.seq += 1
            heapq.heappush(d.queue, (release, d.seq, frame))

    def flush(self, d: Direction, now_mono: float) -> None:
        """Write every frame whose release time has come."""
        while d.queue and d.queue[0][0] <= now_mono:
            _, _, frame = heapq.heappop(d.queue)
            try:
                os.write(d.dst, frame)
                d.stats['frames_out'] += 1
                d.stats['bytes_out'] += len(frame)
            except OSError:
                d.stats['dropped_write'] += 1

    def run(self) -> None:
        """Forward until stopped."""
        poller = select.poll()
        by_fd = {}
        for d in self.dirs:
            poller.register(d.src, select.POLLIN)
            by_fd[d.src] = d
        self.read_control()
        self.write_stats()
        next_control = 0.0
        while self.running:
            now = time.monotonic()
            timeout = 0.02
            for d in self.dirs:
                if d.queue:
                    timeout = min(timeout, max(0.0, d.queue[0][0] - now))
            try:
                events = poller.poll(timeout * 1000.0)
            except InterruptedError:
                events = []
            now = time.monotonic()
            wall = time.time()
            for fd, _ in events:
                self.ingest(by_fd[fd], now, wall)
            for d in self.dirs:
                self.flush(d, now)
            if now >= next_control:
                self.read_control()
                next_control = now + 0.02
            if now >= self.next_stats:
                self.write_stats()
                self.next_stats = now + self.stats_period
        self.write_stats()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--ns-a', required=True)
    parser.add_argument('--ns-b', required=True)
    parser.add_argument('--dev-a', required=True)
    parser.add_argument('--dev-b', required=True)
    parser.add_argument('--control', required=True)
    parser.add_argument('--stats', required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--stats-period', type=float, default=0.25)
    args = parser.parse_args()
    fd_a = open_tap_in_namespace(args.ns_a, args.dev_a)
    fd_b = open_tap_in_namespace(args.ns_b, args.dev_b)
    wire = Wire(fd_a, fd_b, args.control, args.stats, args.seed, args.stats_period)

    def stop(signum: int, frame: object) -> None:
        wire.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    wire.run()
    os.close(fd_a)
    os.close(fd_b)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
