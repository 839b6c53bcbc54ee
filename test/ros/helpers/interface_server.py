"""A minimal server of the three janusvln_interfaces types, run as a separate process by tests.

Serves ``set_instruction`` (echoes the instruction and counts episodes), publishes a
``NavigationStatus`` on ``status`` at 20 Hz, and serves the ``navigate`` action with three feedback
messages and a SUCCEEDED result. Exits 0 on SIGINT/SIGTERM.
"""

import signal
import threading
import time

from janusvln_interfaces.action import Navigate
from janusvln_interfaces.msg import NavigationStatus
from janusvln_interfaces.srv import SetInstruction
import rclpy
from rclpy.action import ActionServer
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


class InterfaceServer(Node):
    """Serves the project's service, topic and action with predictable content."""

    def __init__(self) -> None:
        super().__init__('interface_server')
        self._episode = 0
        self._instruction = ''
        self._srv = self.create_service(SetInstruction, 'set_instruction', self._set_callback)
        self._pub = self.create_publisher(NavigationStatus, 'status', 10)
        self._timer = self.create_timer(0.05, self._status_callback)
        self._action = ActionServer(self, Navigate, 'navigate', self._execute_callback)

    def _set_callback(self, request, response):
        if not request.instruction.strip():
            response.accepted = False
            response.message = 'empty instruction'
            return response
        self._episode += 1
        self._instruction = request.instruction
        response.accepted = True
        response.message = f'reset={request.reset_memory}'
        response.episode_id = self._episode
        return response

    def _status_callback(self) -> None:
        msg = NavigationStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.episode_id = self._episode
        msg.instruction = self._instruction
        msg.state = NavigationStatus.NAVIGATING
        msg.step = 7
        msg.last_action = NavigationStatus.ACTION_TURN_LEFT
        msg.raw_output = 'TURN_LEFT'
        msg.step_latency_ms = 12.5
        msg.spatial_memory_frames = 8
        msg.spatial_memory_capacity = 56
        msg.message = 'ok'
        self._pub.publish(msg)

    def _execute_callback(self, goal_handle):
        for step in range(3):
            feedback = Navigate.Feedback()
            feedback.step = step
            feedback.last_action = NavigationStatus.ACTION_MOVE_FORWARD
            feedback.step_latency_ms = 1.0 + step
            goal_handle.publish_feedback(feedback)
            time.sleep(0.05)
        goal_handle.succeed()
        result = Navigate.Result()
        result.final_state = NavigationStatus.SUCCEEDED
        result.steps = 3
        result.message = goal_handle.request.instruction
        return result


def main() -> None:
    """Run the server until SIGINT or SIGTERM."""
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = InterfaceServer()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
