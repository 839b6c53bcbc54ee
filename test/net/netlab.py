"""Two network hosts on one machine: a "robot" and a "GPU" namespace joined by an impaired link.

:class:`TwoHostLab` is a context manager that creates two network namespaces (unique names per
run), joins them by one point-to-point link with addresses in a private /30 used only inside those
namespaces, and brings ``lo`` up in both. Nothing else is in them: no default route, no other
interface, so no packet can leave. On exit it stops every process it started (and any other
process left inside its namespaces), stops the link and deletes both namespaces.

The link is impaired either with the kernel's ``tc netem`` on a veth pair (when ``sch_netem``
exists) or, as a fallback, in user space by :mod:`tapwire` (two TAP devices and a forwarder). Both
offer the same controls: :meth:`TwoHostLab.impair` (one-way delay each direction, random loss,
optional rate limit) and :meth:`TwoHostLab.cut` (drop everything for a while).

DDS: :meth:`TwoHostLab.env` returns the environment of a process on either host: a shared
``ROS_DOMAIN_ID``, ``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET`` (multicast discovery over the link) or
``ROS_STATIC_PEERS`` (unicast to the peer), and a Fast DDS profile with UDPv4 only. Shared memory
must be off: the namespaces share ``/dev/shm`` and Fast DDS would otherwise move data over shared
memory between "hosts", bypassing the link.
"""

import contextlib
import json
import logging
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

logger = logging.getLogger(__name__)

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
TAPWIRE = HERE / 'tapwire.py'
PROFILES = {'udp': HERE / 'fastdds_udp.xml',
            'udp_small': REPO_ROOT / 'config' / 'fastdds_udp.xml'}
NETNS_DIR = pathlib.Path('/var/run/netns')
PREFIX = 'jvln_'
SUBNET = '10.213.57.0/30'
ROBOT_ADDR = '10.213.57.1'
GPU_ADDR = '10.213.57.2'
ROBOT, GPU = 'robot', 'gpu'


_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print('ready', flush=True)
try:
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)
except KeyboardInterrupt:
    pass
"""
_PING = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
deadline = time.monotonic() + 10.0
while time.monotonic() < deadline:
    try:
        s.sendto(b'jvln', (sys.argv[1], int(sys.argv[2])))
        if s.recvfrom(2048)[0] == b'jvln':
            sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(['ip', *args], capture_output=True, text=True, check=check)


def _in_ns(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(['ip', 'netns', 'exec', ns, *argv], capture_output=True, text=True,
                          check=check)


def netem_available() -> bool:
    """Whether the kernel offers ``sch_netem`` (checked in a throw-away namespace)."""
    ns = f'{PREFIX}probe_{os.getpid()}_{random.randrange(1 << 30)}'
    if _ip('netns', 'add', ns, check=False).returncode != 0:
        return False
    try:
        _in_ns(ns, 'ip', 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1')
        out = _in_ns(ns, 'tc', 'qdisc', 'add', 'dev', 'p0', 'root', 'netem', 'delay', '1ms',
                     check=False)
        return out.returncode == 0
    finally:
        _ip('netns', 'del', ns, check=False)


def cleanup_stale() -> List[str]:
    """Delete namespaces left by earlier runs of this harness whose owner process is gone.

    Returns:
        The names deleted.
    """
    removed = []
    if not NETNS_DIR.is_dir():
        return removed
    for entry in NETNS_DIR.iterdir():
        parts = entry.name.split('_')
        if not entry.name.startswith(PREFIX) or len(parts) < 3 or not parts[2].isdigit():
            continue
        if pathlib.Path(f'/proc/{parts[2]}').exists():
            continue
        _kill_namespace_processes(entry.name)
        if _ip('netns', 'del', entry.name, check=False).returncode == 0:
            removed.append(entry.name)
    return removed


def _kill_namespace_processes(ns: str) -> None:
    out = _ip('netns', 'pids', ns, check=False)
    for pid in out.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


class TwoHostLab:
    """Two namespaces, ``robot`` and ``gpu``, joined by one impaired link.

    Args:
        mode: ``'auto'`` (netem when available, else user space), ``'netem'`` or ``'userspace'``.
        discovery: ``'subnet'`` (multicast over the link) or ``'static'`` (``ROS_STATIC_PEERS``).
        seed: Seed of the user-space loss generator.
        domain_id: ``ROS_DOMAIN_ID`` shared by both hosts; random when None.
        log_dir: Where process logs go (``<host>_<name>.log``); a temporary folder when None.
        profile: Fast DDS profile of every process: ``'udp'`` (UDPv4 only, default message size)
            or ``'udp_small'`` (UDPv4 only, messages under the MTU: no IP fragmentation).
    """

    def __init__(self, mode: str = 'auto', discovery: str = 'subnet', seed: int = 0,
                 domain_id: Optional[int] = None, log_dir: Optional[str] = None,
                 profile: str = 'udp') -> None:
        if profile not in PROFILES:
            raise ValueError(f'profile must be one of {sorted(PROFILES)}, not {profile!r}')
        self.profile = profile
        if mode not in ('auto', 'netem', 'userspace'):
            raise ValueError(f'mode must be auto, netem or userspace, not {mode!r}')
        if discovery not in ('subnet', 'static'):
            raise ValueError(f'discovery must be subnet or static, not {discovery!r}')
        self.requested_mode = mode
        self.mode = ''
        self.discovery = discovery
        self.seed = seed
        self.domain_id = domain_id if domain_id is not None else random.randint(1, 101)
        tag = f'{os.getpid()}_{random.randrange(1 << 20)}'
        self.ns = {ROBOT: f'{PREFIX}robot_{tag}', GPU: f'{PREFIX}gpu_{tag}'}
        self.addr = {ROBOT: ROBOT_ADDR, GPU: GPU_ADDR}
        self.dev = {ROBOT: 'jr0', GPU: 'jg0'}
        self._log_dir_arg = log_dir
        self.log_dir = pathlib.Path(log_dir) if log_dir else None
        self._tmp: Optional[pathlib.Path] = None
        self._wire: Optional[subprocess.Popen] = None
        self._procs: List[subprocess.Popen] = []
        self._logs: list = []
        self.control_path: Optional[pathlib.Path] = None
        self.stats_path: Optional[pathlib.Path] = None
        self.state = {'delay_ms': 0.0, 'loss': 0.0, 'rate_bps': 0.0, 'cut_until': 0.0}

    # ----------------------------------------------------------------- setup and teardown
    def __enter__(self) -> 'TwoHostLab':
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        import tempfile
        self._tmp = pathlib.Path(tempfile.mkdtemp(prefix='jvln_netlab_'))
        if self.log_dir is None:
            self.log_dir = self._tmp
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cleanup_stale()
        for ns in self.ns.values():
            _ip('netns', 'add', ns)
            _in_ns(ns, 'ip', 'link', 'set', 'lo', 'up')
        use_netem = self.requested_mode == 'netem' or (
            self.requested_mode == 'auto' and netem_available())
        if use_netem:
            self._setup_veth()
            self.mode = 'netem'
        else:
            self._setup_tapwire()
            self.mode = 'userspace'
        for host in (ROBOT, GPU):
            ns, dev = self.ns[host], self.dev[host]
            _in_ns(ns, 'ip', 'addr', 'add', f'{self.addr[host]}/30', 'dev', dev)
            _in_ns(ns, 'ip', 'link', 'set', dev, 'up')
            # DDS multicast discovery needs a route for 239.255.0.1; no default route exists.
            _in_ns(ns, 'ip', 'route', 'add', '224.0.0.0/4', 'dev', dev)
        self._wait_link()
        logger.info('lab up: %s (%s), %s', self.ns, self.mode, self.discovery)

    def _setup_veth(self) -> None:
        r, g = self.ns[ROBOT], self.ns[GPU]
        _in_ns(r, 'ip', 'link', 'add', self.dev[ROBOT], 'type', 'veth', 'peer', 'name',
               self.dev[GPU], 'netns', g)
        self._apply_netem()

    def _setup_tapwire(self) -> None:
        assert self._tmp is not None
        self.control_path = self._tmp / 'wire_control.json'
        self.stats_path = self._tmp / 'wire_stats.json'
        self._write_control(confirm=False)
        log = open(self._tmp / 'tapwire.log', 'w', encoding='utf-8')
        self._logs.append(log)
        self._wire = subprocess.Popen(
            [sys.executable, str(TAPWIRE), '--ns-a', str(NETNS_DIR / self.ns[ROBOT]),
             '--ns-b', str(NETNS_DIR / self.ns[GPU]), '--dev-a', self.dev[ROBOT],
             '--dev-b', self.dev[GPU], '--control', str(self.control_path),
             '--stats', str(self.stats_path), '--seed', str(self.seed)],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10.0
        while not self.stats_path.exists():
            if self._wire.poll() is not None:
                raise RuntimeError('tapwire exited: '
                                   + (self._tmp / 'tapwire.log').read_text())
            if time.monotonic() > deadline:
                raise RuntimeError('tapwire did not start within 10 s')
            time.sleep(0.02)

    def _wait_link(self) -> None:
        """Check that a UDP datagram crosses the link both ways (there is no ping here)."""
        port = 17000 + random.randrange(1000)
        echo = subprocess.Popen(
            ['ip', 'netns', 'exec', self.ns[GPU], sys.executable, '-S', '-c', _ECHO,
             self.addr[GPU], str(port)], stdout=subprocess.PIPE, text=True)
        try:
            assert echo.stdout is not None
            echo.stdout.readline()  # 'ready'
            out = _in_ns(self.ns[ROBOT], sys.executable, '-S', '-c', _PING, self.addr[GPU],
                         str(port), check=False)
            if out.returncode != 0:
                raise RuntimeError(f'link does not carry UDP: {out.stdout}{out.stderr}')
        finally:
            self._stop(echo, timeout=2.0)

    def close(self) -> None:
        """Stop every process, the link and delete the namespaces (idempotent)."""
        for proc in reversed(self._procs):
            self._stop(proc, timeout=5.0)
        self._procs.clear()
        for ns in self.ns.values():
            if (NETNS_DIR / ns).exists():
                _kill_namespace_processes(ns)
        if self._wire is not None:
            self._stop(self._wire, timeout=5.0)
            self._wire = None
        for ns in self.ns.values():
            if (NETNS_DIR / ns).exists():
                _ip('netns', 'del', ns, check=False)
        for log in self._logs:
            log.close()
        self._logs.clear()

    @staticmethod
    def _stop(proc: subprocess.Popen, timeout: float) -> Optional[int]:
        if proc.poll() is not None:
            return proc.returncode
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
        return proc.poll()

    # ----------------------------------------------------------------- processes
    def env(self, host: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """Environment of a ROS process on ``host``.

        Args:
            host: ``'robot'`` or ``'gpu'``.
            extra: Variables added last.

        Returns:
            A full environment (a copy of this process's, with the DDS variables replaced).
        """
        env = dict(os.environ)
        for key in ('ROS_LOCALHOST_ONLY', 'ROS_STATIC_PEERS', 'FASTDDS_BUILTIN_TRANSPORTS'):
            env.pop(key, None)
        env['ROS_DOMAIN_ID'] = str(self.domain_id)
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(PROFILES[self.profile])
        if self.discovery == 'subnet':
            env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'SUBNET'
        else:
            env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
            env['ROS_STATIC_PEERS'] = self.addr[GPU if host == ROBOT else ROBOT]
        pp = env.get('PYTHONPATH', '')
        if str(REPO_ROOT) not in pp.split(os.pathsep):
            env['PYTHONPATH'] = os.pathsep.join(p for p in (str(REPO_ROOT), pp) if p)
        env.setdefault('AMENT_PREFIX_PATH', sys.prefix)
        env['PYTHONUNBUFFERED'] = '1'
        if extra:
            env.update(extra)
        return env

    def popen(self, host: str, argv: Sequence[str], name: str,
              extra_env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        """Start ``argv`` inside ``host``'s namespace; it is stopped by :meth:`close`.

        Args:
            host: ``'robot'`` or ``'gpu'``.
            argv: The command.
            name: A short name for the log file ``<host>_<name>.log``.
            extra_env: Variables added to :meth:`env`.

        Returns:
            The process (``ip netns exec`` execs the command, so the pid is the command's).
        """
        assert self.log_dir is not None
        log = open(self.log_dir / f'{host}_{name}.log', 'w', encoding='utf-8')
        self._logs.append(log)
        proc = subprocess.Popen(['ip', 'netns', 'exec', self.ns[host], *argv],
                                env=self.env(host, extra_env), stdout=log,
                                stderr=subprocess.STDOUT)
        self._procs.append(proc)
        return proc

    def run(self, host: str, argv: Sequence[str], timeout: float = 60.0,
            extra_env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        """Run ``argv`` to completion inside ``host``'s namespace and capture its output."""
        return subprocess.run(['ip', 'netns', 'exec', self.ns[host], *argv],
                              env=self.env(host, extra_env), capture_output=True, text=True,
                              timeout=timeout)

    def log_text(self, host: str, name: str) -> str:
        """The log so far of the process started as ``name`` on ``host``."""
        assert self.log_dir is not None
        path = self.log_dir / f'{host}_{name}.log'
        return path.read_text(errors='replace') if path.exists() else ''

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0) -> Optional[int]:
        """Stop one process started by :meth:`popen` (SIGINT, then harder); its exit code."""
        code = self._stop(proc, timeout)
        if proc in self._procs:
            self._procs.remove(proc)
        return code

    # ----------------------------------------------------------------- impairment
    def impair(self, delay_ms: float = 0.0, loss: float = 0.0, rate_bps: float = 0.0) -> None:
        """Set the link impairment, applied in both directions.

        Args:
            delay_ms: One-way delay added to each packet (the round trip grows by twice this).
            loss: Probability in [0, 1] that a packet is dropped, each direction independently.
            rate_bps: Rate limit in bits per second; 0 for none.
        """
        if not 0.0 <= loss <= 1.0 or delay_ms < 0.0 or rate_bps < 0.0:
            raise ValueError(f'bad impairment delay_ms={delay_ms} loss={loss} rate={rate_bps}')
        self.state.update(delay_ms=float(delay_ms), loss=float(loss), rate_bps=float(rate_bps))
        self._apply()

    def cut(self, seconds: float) -> float:
        """Drop every packet in both directions for ``seconds`` from now (non-blocking).

        Returns:
            The wall-clock time (``time.time()``) at which the link returns.
        """
        until = time.time() + seconds
        self.state['cut_until'] = until
        self._apply()
        if self.mode == 'netem':
            # netem has no timer of its own: restore from a short-lived helper thread.
            import threading
            timer = threading.Timer(seconds, self._apply)
            timer.daemon = True
            timer.start()
        return until

    def clear(self) -> None:
        """Remove every impairment (and end a cut)."""
        self.state.update(delay_ms=0.0, loss=0.0, rate_bps=0.0, cut_until=0.0)
        self._apply()

    def _apply(self) -> None:
        if self.mode == 'netem':
            self._apply_netem()
        else:
            self._write_control()

    def _write_control(self, confirm: bool = True) -> None:
        assert self.control_path is not None
        tmp = self.control_path.with_suffix('.tmp')
        tmp.write_text(json.dumps(self.state), encoding='utf-8')
        os.replace(tmp, self.control_path)
        if not confirm:
            return
        # The forwarder polls every 20 ms; wait until it reports the new state.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            stats = self.wire_stats()
            if (stats and abs(stats.get('delay_ms', -1) - self.state['delay_ms']) < 1e-6
                    and abs(stats.get('loss', -1) - self.state['loss']) < 1e-9
                    and abs(stats.get('rate_bps', -1) - self.state['rate_bps']) < 1e-6
                    and stats.get('time', 0) > os.stat(self.control_path).st_mtime):
                return
            time.sleep(0.02)
        logger.warning('tapwire did not confirm the new impairment within 2 s')

    def _apply_netem(self) -> None:
        cut = time.time() < self.state['cut_until']
        loss = 100.0 if cut else self.state['loss'] * 100.0
        for host in (ROBOT, GPU):
            args = ['tc', 'qdisc', 'replace', 'dev', self.dev[host], 'root', 'netem',
                    'limit', '100000', 'delay', f'{self.state["delay_ms"]:.3f}ms',
                    'loss', f'{loss:.4f}%']
            if self.state['rate_bps'] > 0:
                args += ['rate', f'{int(self.state["rate_bps"])}bit']
            _in_ns(self.ns[host], *args)

    def wire_stats(self) -> Optional[dict]:
        """Counters of the user-space link (None in netem mode): frames and bytes per direction.

        ``a_to_b`` is robot to GPU, ``b_to_a`` GPU to robot.
        """
        if self.stats_path is None or not self.stats_path.exists():
            return self._netem_stats() if self.mode == 'netem' else None
        try:
            return json.loads(self.stats_path.read_text(encoding='utf-8'))
        except ValueError:
            return None

    def _netem_stats(self) -> dict:
        data = {}
        for host, key in ((ROBOT, 'a_to_b'), (GPU, 'b_to_a')):
            out = _in_ns(self.ns[host], 'cat', f'/sys/class/net/{self.dev[host]}/statistics/'
                         'tx_bytes', check=False)
            data[key] = {'bytes_out': int(out.stdout.strip() or 0)}
        return data

    def link_bytes(self) -> Dict[str, int]:
        """Bytes that crossed the link so far: ``{'robot_to_gpu': n, 'gpu_to_robot': n}``."""
        stats = self.wire_stats() or {}
        return {'robot_to_gpu': int(stats.get('a_to_b', {}).get('bytes_out', 0)),
                'gpu_to_robot': int(stats.get('b_to_a', {}).get('bytes_out', 0))}

    def interfaces(self, host: str) -> List[str]:
        """Names of the network interfaces inside ``host``'s namespace."""
        out = _in_ns(self.ns[host], 'ip', '-o', 'link', 'show')
        return [line.split(':')[1].strip().split('@')[0] for line in out.stdout.splitlines()]

    def routes(self, host: str) -> List[str]:
        """The IPv4 routing table (all tables) inside ``host``'s namespace."""
        out = _in_ns(self.ns[host], 'ip', 'route', 'show', 'table', 'all')
        return [line for line in out.stdout.splitlines() if line.strip()]
