"""The closed loop across the link: sim bridge on the robot host, janusvln_node on the GPU host.

Shared by ``test_two_host.py`` and ``bench/two_host.py``: starts both nodes in a
:class:`~netlab.TwoHostLab`, runs one episode at a time through ``robot_probe.py`` (instruction
sent from the robot host) while a fault is applied, and analyses the record: camera-to-command
latency, camera-timeout statuses, and whether the base ever moved on a stale command.
"""

import json
import pathlib
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import netlab

HERE = pathlib.Path(__file__).resolve().parent
ROBOT_PROBE = str(HERE / 'robot_probe.py')
PY = sys.executable
STATE_NAVIGATING, STATE_SUCCEEDED, STATE_STOPPED, STATE_ERROR = 1, 2, 3, 4
FINAL_STATES = (STATE_SUCCEEDED, STATE_STOPPED, STATE_ERROR)
SCRIPT = 'MOVE_FORWARD,TURN_LEFT,MOVE_FORWARD,TURN_RIGHT,MOVE_FORWARD,TURN_LEFT,STOP'
CMD_TIMEOUT_S = 0.5
CAMERA_TIMEOUT_S = 1.0


class Loop:
    """Both nodes running across one lab; :meth:`episode` runs one instruction.

    Args:
        lab: The two hosts.
        workdir: Where probe files go.
        script: The scripted engine's actions (cyclic; the episode ends at STOP).
        step_delay_s: Simulated inference time of the scripted engine per step.
        image_reliability: The node's image subscription QoS.
        engine_args: Extra ``-p name:=value`` parameters of the node (e.g. a real engine).
    """

    def __init__(self, lab: netlab.TwoHostLab, workdir: pathlib.Path, script: str = SCRIPT,
                 step_delay_s: float = 0.1, image_reliability: str = 'best_effort',
                 engine_args: Optional[List[str]] = None,
                 bridge_args: Optional[List[str]] = None) -> None:
        self.lab, self.workdir = lab, workdir
        self.script = script
        self.bridge = lab.popen(netlab.ROBOT, [
            PY, '-m', 'janusvln_ros.sim.bridge_node', '--ros-args',
            '-p', f'cmd_timeout_s:={CMD_TIMEOUT_S}', *(bridge_args or [])], 'bridge')
        params = engine_args or ['-p', 'engine:=scripted', '-p', f'script:={script}',
                                 '-p', f'script_step_delay_s:={step_delay_s}']
        self.node = lab.popen(netlab.GPU, [
            PY, '-m', 'janusvln_ros.ros.janusvln_node', '--ros-args', *params,
            '-p', 'autostart:=true', '-p', f'camera_timeout_s:={CAMERA_TIMEOUT_S}',
            '-p', f'image_reliability:={image_reliability}',
            '-r', 'image_raw:=camera/image_raw'], 'node')
        self.count = 0

    def alive(self) -> Dict[str, bool]:
        """Whether each node process still runs."""
        return {'bridge': self.bridge.poll() is None, 'node': self.node.poll() is None}

    def logs(self) -> str:
        """Tails of both nodes' logs, for assertion messages."""
        return ('--- bridge ---\n' + self.lab.log_text(netlab.ROBOT, 'bridge')[-3000:]
                + '\n--- node ---\n' + self.lab.log_text(netlab.GPU, 'node')[-3000:])

    def episode(self, name: str, before: Optional[Callable[[], None]] = None,
                during: Optional[Callable[[float], None]] = None, timeout: float = 120.0,
                instruction: str = 'walk forward past the table, turn left and stop') -> dict:
        """Run one episode: wait for discovery, apply ``before``, send, call ``during``.

        Args:
            name: Probe name (files ``<name>.json``, log ``robot_<name>.log``).
            before: Called once the probe sees the node's service, before the instruction.
            during: Called right after the go signal with its wall time (may block).
            timeout: Seconds the probe runs at most (it exits 1.5 s after the final status).
            instruction: The instruction.

        Returns:
            The probe's record, plus ``go_t`` (wall time of the go signal).
        """
        self.count += 1
        ready = self.workdir / f'{name}.ready'
        go = self.workdir / f'{name}.go'
        out = self.workdir / f'{name}.json'
        probe = self.lab.popen(netlab.ROBOT, [
            PY, ROBOT_PROBE, '--out', str(out), '--camera', 'camera/image_raw',
            '--cmd-raw', 'cmd_vel', '--odom', 'odom', '--ready-file', str(ready),
            '--go-file', str(go), '--duration', str(timeout), '--exit-after-final', '1.5',
            '--instruction', instruction], name)
        deadline = time.monotonic() + 60.0
        while not ready.exists():  # the service and every watched topic discovered
            assert probe.poll() is None, self.lab.log_text(netlab.ROBOT, name)
            assert time.monotonic() < deadline, 'robot probe never discovered the node'
            time.sleep(0.05)
        if before is not None:
            before()
        go_t = time.time()
        go.write_text('go')
        if during is not None:
            during(go_t)
        assert probe.wait(timeout=timeout + 30.0) == 0, self.lab.log_text(netlab.ROBOT, name)
        rec = json.loads(out.read_text())
        rec['go_t'] = go_t
        return rec


def episode_statuses(rec: dict) -> List[dict]:
    """The status messages of the probe's own episode, in arrival order."""
    ep = (rec.get('instruction') or {}).get('episode_id')
    return [s for s in rec['status'] if s['episode_id'] == ep]


def final_status(rec: dict) -> Optional[dict]:
    """The first final status (SUCCEEDED, STOPPED, ERROR) of the probe's episode."""
    for s in episode_statuses(rec):
        if s['state'] in FINAL_STATES:
            return s
    return None


def camera_timeouts(rec: dict) -> List[dict]:
    """Statuses announcing a camera timeout."""
    return [s for s in rec['status'] if 'camera timeout' in s['message']]


def frame_times(rec: dict) -> Dict[str, float]:
    """Each camera frame's first arrival time on the robot host, by header stamp key."""
    frames: Dict[str, float] = {}
    for key, t in rec['frames']:
        frames.setdefault(key, t)
    return frames


def steps_on_frames_between(rec: dict, t_start: float, t_end: float) -> List[int]:
    """Steps of the probe's episode whose frame reached the robot host side in the interval.

    A step status names its frame by header stamp; the frame's time on the robot host (where
    the bridge published it) says when the step's input was captured, however late the status
    itself arrived back (reliable retransmission under loss can hold it for seconds).
    """
    frames = frame_times(rec)
    return sorted({s['step'] for s in episode_statuses(rec)
                   if s['step'] > 0 and s['stamp'] in frames
                   and t_start <= frames[s['stamp']] <= t_end})


def step_latencies(rec: dict) -> Dict[str, List[float]]:
    """Camera-to-command latency per step, measured on the robot host, in milliseconds.

    For each step, the frame the node used is known from the step status's header stamp (the
    bridge's stamp of that frame); its arrival time at the robot host is the frame time.
    ``status_ms``: until that step's status arrived back at the robot host. ``cmd_ms``: until
    the first non-zero ``cmd_vel`` that arrived after the frame time and not earlier than
    50 ms before that status (STOP steps, with no motion, are skipped).
    """
    frames = frame_times(rec)
    seen = set()
    status_ms, cmd_ms = [], []
    cmds = [(t, lin, ang) for t, lin, ang in rec['cmd_raw'] if lin or ang]
    for s in episode_statuses(rec):
        if s['step'] == 0 or s['step'] in seen or s['stamp'] not in frames:
            continue
        seen.add(s['step'])
        f_t = frames[s['stamp']]
        status_ms.append((s['t'] - f_t) * 1000.0)
        if s['last_action'] != 0:
            after = [t for t, _, _ in cmds if t >= max(f_t, s['t'] - 0.05)]
            if after:
                cmd_ms.append((after[0] - f_t) * 1000.0)
    return {'status_ms': status_ms, 'cmd_ms': cmd_ms}


def stale_motion(rec: dict, slack_s: float = 0.15) -> List[tuple]:
    """Odometry samples where the base moved without a fresh command.

    The bridge reports the twist it applied in ``odom.twist``. A sample is stale when it is
    non-zero and no non-zero command arrived at the robot host in the preceding
    ``CMD_TIMEOUT_S + slack_s`` seconds.
    """
    cmds = [t for t, lin, ang in rec['cmd_raw'] if lin or ang]
    bad = []
    j = 0
    for t, _x, _y, lin, ang in rec['odom']:
        if not (lin or ang):
            continue
        while j + 1 < len(cmds) and cmds[j + 1] <= t:
            j += 1
        last = cmds[j] if cmds and cmds[j] <= t else None
        if last is None or t - last > CMD_TIMEOUT_S + slack_s:
            bad.append((t, lin, ang, None if last is None else t - last))
    return bad


def summary(values: List[float]) -> dict:
    """n, median, p90, max of a list (None entries when empty)."""
    if not values:
        return {'n': 0, 'median': None, 'p90': None, 'max': None}
    ordered = sorted(values)
    return {'n': len(values), 'median': statistics.median(ordered),
            'p90': ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            'max': ordered[-1]}


def frame_rate_between(rec: dict, start: float, end: float) -> float:
    """Frames per second the robot host saw from its own camera (sanity) in [start, end]."""
    n = len([t for _, t in rec['frames'] if start <= t <= end])
    return n / max(1e-6, end - start)
