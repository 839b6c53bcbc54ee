"""Operator commands: ``janusvln instruct``, ``janusvln status`` and ``janusvln cancel``.

They talk to a running node over ROS 2 (no ros2cli needed) and never hang: when no node answers
within ``--timeout`` seconds they print why and exit with code 2. Exit codes: 0 success,
1 refused or failed, 2 no node answered, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

EXIT_OK, EXIT_REFUSED, EXIT_NO_NODE, EXIT_INTERRUPTED = 0, 1, 2, 130
STATES = {0: 'IDLE', 1: 'NAVIGATING', 2: 'SUCCEEDED', 3: 'STOPPED', 4: 'ERROR'}
ACTIONS = {0: 'STOP', 1: 'MOVE_FORWARD', 2: 'TURN_LEFT', 3: 'TURN_RIGHT'}


def register(subparsers: Any) -> None:
    """Add the ``instruct``, ``status`` and ``cancel`` subcommands."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument('--namespace', default='',
                       help="namespace of the node (the launch file's namespace argument)")
        p.add_argument('--node', default='janusvln', help='node name (default: janusvln)')
        p.add_argument('--timeout', type=float, default=5.0,
                       help='seconds to wait for the node to answer (default: 5)')

    p = subparsers.add_parser('instruct', help='send a navigation instruction')
    p.add_argument('instruction', help='the natural-language instruction')
    p.add_argument('--no-reset', action='store_true',
                   help='keep the current memory (reset_memory=false)')
    p.add_argument('--wait', action='store_true',
                   help='send a navigate action goal and stream its feedback until the result')
    common(p)
    p.set_defaults(func=run_instruct)

    p = subparsers.add_parser('status', help='print the navigation status')
    p.add_argument('--follow', action='store_true', help='keep printing, one line per step')
    p.add_argument('--count', type=int, default=0,
                   help='with --follow: stop after this many lines (0 = until Ctrl-C)')
    common(p)
    p.set_defaults(func=run_status)

    p = subparsers.add_parser('cancel', help='cancel the running episode')
    common(p)
    p.set_defaults(func=run_cancel)


def resolve(namespace: str, name: str) -> str:
    """Absolute name of ``name`` in ``namespace``."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return f'{ns}/{name}'


def status_line(msg: Any) -> str:
    """One readable line for a ``NavigationStatus`` message."""
    state = STATES.get(msg.state, str(msg.state))
    action = ACTIONS.get(msg.last_action, str(msg.last_action)) if msg.step else '-'
    cap = msg.spatial_memory_capacity
    line = (f'episode {msg.episode_id} {state:<10} step {msg.step:>3} action {action:<12} '
            f'latency {msg.step_latency_ms:7.1f} ms  memory {msg.spatial_memory_frames}/{cap}')
    if msg.message:
        line += f'  ({msg.message})'
    return line


class _Session:
    """An rclpy context and node for one command; always shut down."""

    def __enter__(self) -> _Session:
        import rclpy
        self.rclpy = rclpy
        rclpy.init()
        self.node = rclpy.create_node(f'janusvln_operator_{time.monotonic_ns() % 10**9}')
        return self

    def __exit__(self, *exc: Any) -> None:
        self.node.destroy_node()
        self.rclpy.try_shutdown()

    def spin_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self.rclpy.spin_once(self.node, timeout_sec=0.05)
        return True

    def call(self, srv_type: Any, name: str, request: Any, timeout: float) -> Any | None:
        client = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        future = client.call_async(request)
        if not self.spin_until(future.done, timeout):
            return None
        return future.result()


def _no_node(what: str, args: argparse.Namespace) -> int:
    sys.stderr.write(f'error: no janusvln node answered on {what} within {args.timeout:g} s '
                     f'(node {resolve(args.namespace, args.node)}; is it running, active and '
                     f'in this ROS_DOMAIN_ID?)\n')
    return EXIT_NO_NODE


def run_instruct(args: argparse.Namespace) -> int:
    """Send an instruction (service), or a navigate goal with ``--wait``."""
    if args.wait:
        return _run_navigate(args)
    from janusvln_interfaces.srv import SetInstruction
    name = resolve(args.namespace, 'set_instruction')
    try:
        with _Session() as s:
            request = SetInstruction.Request(instruction=args.instruction,
                                             reset_memory=not args.no_reset)
            response = s.call(SetInstruction, name, request, args.timeout)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if response is None:
        return _no_node(name, args)
    if not response.accepted:
        sys.stdout.write(f'refused: {response.message}\n')
        return EXIT_REFUSED
    sys.stdout.write(f'accepted: episode {response.episode_id} ({response.message})\n')
    return EXIT_OK


def _run_navigate(args: argparse.Namespace) -> int:
    from janusvln_interfaces.action import Navigate
    from rclpy.action import ActionClient
    name = resolve(args.namespace, 'navigate')
    with _Session() as s:
        client = ActionClient(s.node, Navigate, name)
        if not client.wait_for_server(timeout_sec=args.timeout):
            return _no_node(name, args)

        def feedback(msg: Any) -> None:
            fb = msg.feedback
            sys.stdout.write(f'step {fb.step:>3} {ACTIONS.get(fb.last_action, "?"):<12} '
                             f'{fb.step_latency_ms:7.1f} ms\n')
            sys.stdout.flush()
        goal_future = client.send_goal_async(Navigate.Goal(instruction=args.instruction),
                                             feedback_callback=feedback)
        if not s.spin_until(goal_future.done, args.timeout):
            return _no_node(name, args)
        handle = goal_future.result()
        if not handle.accepted:
            sys.stdout.write('refused: the node rejected the goal (invalid instruction or '
                             'node not active; see its log)\n')
            return EXIT_REFUSED
        sys.stdout.write('accepted: navigating\n')
        result_future = handle.get_result_async()
        try:
            lost_since = None
            while not result_future.done():
                s.rclpy.spin_once(s.node, timeout_sec=0.1)
                if client.server_is_ready():
                    lost_since = None
                elif lost_since is None:
                    lost_since = time.monotonic()
                elif time.monotonic() - lost_since > args.timeout:
                    return _no_node(name, args)
        except KeyboardInterrupt:
            cancel = handle.cancel_goal_async()
            s.spin_until(cancel.done, args.timeout)
            sys.stdout.write('cancelled\n')
            return EXIT_INTERRUPTED
        result = result_future.result().result
        state = STATES.get(result.final_state, str(result.final_state))
        sys.stdout.write(f'result: {state} after {result.steps} steps ({result.message})\n')
        return EXIT_OK if result.final_state == 2 else EXIT_REFUSED


def run_status(args: argparse.Namespace) -> int:
    """Print the latest status, or follow it with one line per step."""
    from janusvln_interfaces.msg import NavigationStatus
    name = resolve(args.namespace, 'status')
    lines: list[str] = []
    last_key: list[Any] = [None]

    def on_status(msg: Any) -> None:
        key = (msg.episode_id, msg.state, msg.step, msg.message)
        if key != last_key[0]:
            last_key[0] = key
            lines.append(status_line(msg))
    try:
        with _Session() as s:
            s.node.create_subscription(NavigationStatus, name, on_status, 10)
            if not s.spin_until(lambda: bool(lines), args.timeout):
                return _no_node(name, args)
            printed = 0
            while True:
                while printed < len(lines):
                    sys.stdout.write(lines[printed] + '\n')
                    sys.stdout.flush()
                    printed += 1
                    if not args.follow or (args.count and printed >= args.count):
                        return EXIT_OK
                s.rclpy.spin_once(s.node, timeout_sec=0.1)
    except KeyboardInterrupt:
        return EXIT_OK


def run_cancel(args: argparse.Namespace) -> int:
    """Cancel the running episode."""
    from std_srvs.srv import Trigger
    name = resolve(args.namespace, 'cancel')
    try:
        with _Session() as s:
            response = s.call(Trigger, name, Trigger.Request(), args.timeout)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if response is None:
        return _no_node(name, args)
    sys.stdout.write(('cancelled: ' if response.success else 'nothing cancelled: ')
                     + response.message + '\n')
    return EXIT_OK if response.success else EXIT_REFUSED
