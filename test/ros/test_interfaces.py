"""The three janusvln_interfaces types work across two processes: service, topic, action."""

import pathlib
import signal
import subprocess
import sys
import time

from janusvln_interfaces.action import Navigate
from janusvln_interfaces.msg import NavigationStatus
from janusvln_interfaces.srv import SetInstruction
import pytest
import rclpy
from rclpy.action import ActionClient

SERVER = pathlib.Path(__file__).parent / 'helpers' / 'interface_server.py'


def _wait(node, future, timeout=10.0):
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    assert future.done(), 'no answer from the server process'
    return future.result()


@pytest.fixture(scope='module')
def server_and_node():
    proc = subprocess.Popen([sys.executable, str(SERVER)])
    rclpy.init()
    node = rclpy.create_node('interface_test_client')
    try:
        yield proc, node
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0


def test_constants_match_the_design():
    assert (NavigationStatus.IDLE, NavigationStatus.NAVIGATING, NavigationStatus.SUCCEEDED,
            NavigationStatus.STOPPED, NavigationStatus.ERROR) == (0, 1, 2, 3, 4)
    assert (NavigationStatus.ACTION_STOP, NavigationStatus.ACTION_MOVE_FORWARD,
            NavigationStatus.ACTION_TURN_LEFT, NavigationStatus.ACTION_TURN_RIGHT) == (0, 1, 2, 3)
    fields = NavigationStatus.get_fields_and_field_types()
    assert fields == {
        'header': 'std_msgs/Header', 'episode_id': 'uint32', 'instruction': 'string',
        'state': 'uint8', 'step': 'uint32', 'last_action': 'uint8', 'raw_output': 'string',
        'step_latency_ms': 'float', 'spatial_memory_frames': 'uint32',
        'spatial_memory_capacity': 'uint32', 'message': 'string'}
    assert SetInstruction.Request.get_fields_and_field_types() == {
        'instruction': 'string', 'reset_memory': 'boolean'}
    assert SetInstruction.Response.get_fields_and_field_types() == {
        'accepted': 'boolean', 'message': 'string', 'episode_id': 'uint32'}
    assert Navigate.Goal.get_fields_and_field_types() == {'instruction': 'string'}
    assert Navigate.Result.get_fields_and_field_types() == {
        'final_state': 'uint8', 'steps': 'uint32', 'message': 'string'}
    assert Navigate.Feedback.get_fields_and_field_types() == {
        'step': 'uint32', 'last_action': 'uint8', 'step_latency_ms': 'float'}


def test_service_call_across_processes(server_and_node):
    _, node = server_and_node
    client = node.create_client(SetInstruction, 'set_instruction')
    assert client.wait_for_service(timeout_sec=15.0)
    request = SetInstruction.Request(instruction='walk to the kitchen', reset_memory=True)
    response = _wait(node, client.call_async(request))
    assert response.accepted and response.message == 'reset=True' and response.episode_id >= 1
    refused = _wait(node, client.call_async(SetInstruction.Request(instruction='  ')))
    assert not refused.accepted and refused.message == 'empty instruction'


def test_status_pub_sub_across_processes(server_and_node):
    _, node = server_and_node
    received = []
    sub = node.create_subscription(NavigationStatus, 'status', received.append, 10)
    deadline = time.monotonic() + 15.0
    while not received and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_subscription(sub)
    assert received, 'no NavigationStatus arrived'
    msg = received[-1]
    assert msg.state == NavigationStatus.NAVIGATING and msg.step == 7
    assert msg.last_action == NavigationStatus.ACTION_TURN_LEFT and msg.raw_output == 'TURN_LEFT'
    assert msg.spatial_memory_capacity == 56 and abs(msg.step_latency_ms - 12.5) < 1e-6


def test_action_goal_with_feedback_and_result(server_and_node):
    _, node = server_and_node
    client = ActionClient(node, Navigate, 'navigate')
    assert client.wait_for_server(timeout_sec=15.0)
    feedback = []
    goal_future = client.send_goal_async(Navigate.Goal(instruction='find the sofa'),
                                         feedback_callback=lambda m: feedback.append(m.feedback))
    handle = _wait(node, goal_future)
    assert handle.accepted
    result = _wait(node, handle.get_result_async()).result
    assert result.final_state == NavigationStatus.SUCCEEDED and result.steps == 3
    assert result.message == 'find the sofa'
    deadline = time.monotonic() + 5.0  # feedback and result travel on different topics
    while len(feedback) < 3 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    assert [f.step for f in feedback] == [0, 1, 2]
    client.destroy()
