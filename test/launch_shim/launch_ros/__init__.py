"""Test-only stand-in for ROS 2 ``launch_ros`` (Node and FindPackageShare)."""

SHIM = True

from . import actions, substitutions  # noqa: E402,F401,I100,I202
