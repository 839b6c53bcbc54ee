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
def tiny_checkpoint(tmp_path_factory):
    """A tiny random JanusVLN checkpoint, created once per test session with the CLI's code."""
    checkpoint_cli = pytest.importorskip('janusvln_ros.cli.checkpoint')
    init_tiny = getattr(checkpoint_cli, 'init_tiny', None)
    if init_tiny is None:
        pytest.skip('janusvln_ros.cli.checkpoint has no init_tiny(directory) yet')
    path = tmp_path_factory.mktemp('tiny') / 'ckpt'
    init_tiny(str(path))
    return path
