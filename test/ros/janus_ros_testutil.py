"""Helpers of the ROS tests: start the node as a separate process, drive it from this one."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist
from janusvln_interfaces.action import Navigate
from janusvln_interfaces.msg import NavigationStatus
from janusvln_interfaces.srv import SetInstruction
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
import numpy as np
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from janusvln_ros.ros.conversions import rgb_to_image

NODE_EXE = str(pathlib.Path(sys.executable).parent / 'janusvln_node')
HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIRST_CALL_GRACE_S = 0.5   # before a client's first call: the server matches its reader


def wait_until(pred: Callable[[], Any], timeout: float, poll: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(poll)
    return bool(pred())


def param_args(params: dict[str, Any]) -> list[str]:
    out = []
    for key, value in params.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        elif isinstance(value, str):
            value = f'"{value}"' if value == '' else value
        out += ['-p', f'{key}:={value}']
    return out


class NodeProcess:
    """The janusvln node in its own process (stdout+stderr to a log file)."""

    def __init__(self, tmp_path: pathlib.Path, params: dict[str, Any],
                 extra: list[str] | None = None, name: str = 'node') -> None:
        self.log_path = tmp_path / f'{name}.log'
        self._log = open(self.log_path, 'wb')
        cmd = [NODE_EXE, '--ros-args'] + param_args(params) + list(extra or [])
        env = os.environ.copy()      # test engines ('module:Class') live next to this file
        env['PYTHONPATH'] = os.pathsep.join([str(HERE), env.get('PYTHONPATH', '')])
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def alive(self) -> bool:
        return self.proc.poll() is None

    def sigint(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


class Driver:
    """An rclpy node spun on a background thread, recording cmd_vel and status."""

    def __init__(self, namespace: str = '', name: str = 'driver') -> None:
        self.node = rclpy.create_node(name, namespace=namespace)
        self._called: set[int] = set()          # clients that have made a call
        self.cmds: list[tuple[float, Twist]] = []
        self.status: list[NavigationStatus] = []
        self.node.create_subscription(Twist, 'cmd_vel',
                                      lambda m: self.cmds.append((time.monotonic(), m)), 50)
        self.status_wall: list[float] = []      # arrival wall time of each status
        self.node.create_subscription(NavigationStatus, 'status', self._on_status, 50)
        self.set_instruction = self.node.create_client(SetInstruction, 'set_instruction')
        self.cancel = self.node.create_client(Trigger, 'cancel')
        self.change_state = self.node.create_client(ChangeState, 'janusvln/change_state')
        self.get_state = self.node.create_client(GetState, 'janusvln/get_state')
        self.navigate = ActionClient(self.node, Navigate, 'navigate')
        self.image_pub = self.node.create_publisher(
            rgb_to_image(np.zeros((1, 1, 3), np.uint8)).__class__, 'image_raw',
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._camera: threading.Thread | None = None
        self._camera_stop = threading.Event()
        self.frames_sent = 0

    def _on_status(self, msg: NavigationStatus) -> None:
        self.status_wall.append(time.time())
        self.status.append(msg)

    def _spin(self) -> None:
        while not self._stop.is_set():
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.stop_camera()
        self._stop.set()
        self._thread.join(5)
        self._executor.shutdown()
        self.node.destroy_node()

    def call(self, client: Any, request: Any, timeout: float = 30.0,
             resend_s: float | None = None) -> Any:
        """Call a service and return its response.

        Args:
            client: The service client.
            request: The request.
            timeout: Seconds to wait for the service and for an answer, in all.
            resend_s: For queries that change nothing: send again when no answer came within
                this many seconds. A server that has not yet matched this client's response
                reader drops its answer ("failed to send response (timeout)", seen under load),
                and a service that was just discovered can be in that state.
        """
        assert client.wait_for_service(timeout_sec=timeout), f'{client.srv_name} unavailable'
        if id(client) not in self._called:
            # First call of this client: give the server time to match its response reader
            # (the client only sees its own side of the match; see resend_s).
            self._called.add(id(client))
            time.sleep(FIRST_CALL_GRACE_S)
        deadline = time.monotonic() + timeout
        while True:
            future = client.call_async(request)
            left = deadline - time.monotonic()
            if wait_until(future.done, left if resend_s is None else min(resend_s, left)):
                return future.result()
            client.remove_pending_request(future)
            assert resend_s is not None and time.monotonic() < deadline, \
                f'{client.srv_name} did not answer'

    def instruct(self, text: str, reset: bool = True) -> SetInstruction.Response:
        return self.call(self.set_instruction,
                         SetInstruction.Request(instruction=text, reset_memory=reset))

    def transition(self, transition_id: int) -> bool:
        req = ChangeState.Request()
        req.transition = Transition(id=transition_id)
        return bool(self.call(self.change_state, req, timeout=60.0).success)

    def state(self) -> str:
        return self.call(self.get_state, GetState.Request(),
                         resend_s=3.0).current_state.label

    def configure_activate(self) -> None:
        assert self.transition(Transition.TRANSITION_CONFIGURE)
        assert self.transition(Transition.TRANSITION_ACTIVATE)

    def publish_frame(self, value: int = 0, size: tuple[int, int] = (48, 64),
                      encoding: str = 'rgb8') -> None:
        rgb = np.full(size + (3,), value % 256, np.uint8)
        now = time.time()
        stamp = Time(sec=int(now), nanosec=int((now % 1) * 1e9))
        self.image_pub.publish(rgb_to_image(rgb, encoding, stamp=stamp))
        self.frames_sent += 1

    def start_camera(self, hz: float = 30.0, size: tuple[int, int] = (48, 64)) -> None:
        self._camera_stop.clear()

        def run() -> None:
            period = 1.0 / hz
            nxt = time.monotonic()
            while not self._camera_stop.is_set():
                self.publish_frame(self.frames_sent, size)
                nxt += period
                time.sleep(max(0.0, nxt - time.monotonic()))
        self._camera = threading.Thread(target=run, daemon=True)
        self._camera.start()

    def stop_camera(self) -> None:
        self._camera_stop.set()
        if self._camera is not None:
            self._camera.join(5)
            self._camera = None

    def last_status(self) -> NavigationStatus | None:
        return self.status[-1] if self.status else None

    def wait_status(self, pred: Callable[[NavigationStatus], bool], timeout: float
                    ) -> NavigationStatus | None:
        found: list[NavigationStatus] = []

        def check() -> bool:
            for s in list(self.status):
                if pred(s):
                    found.append(s)
                    return True
            return False
        wait_until(check, timeout)
        return found[0] if found else None
