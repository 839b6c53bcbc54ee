"""Fixtures of the ROS tests: a driver node per test (``ros_context`` is in test/conftest.py)."""

import pytest


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
