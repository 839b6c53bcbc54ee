"""Fixtures of the ROS tests: one rclpy context per test module, a driver node per test."""

import pytest
import rclpy


@pytest.fixture(scope='module')
def ros_context():
    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()


@pytest.fixture
def driver(ros_context, request):
    from janus_ros_testutil import Driver
    d = Driver(name=f'driver_{request.node.name[:40]}'.replace('[', '_').replace(']', '_')
               .replace('-', '_'))
    try:
        yield d
    finally:
        d.close()


@pytest.fixture(scope='session')
def tiny_checkpoint(primed_tiny_dir):
    """The session's primed tiny JanusVLN checkpoint (``janusvln checkpoint init-tiny``)."""
    return primed_tiny_dir
