"""Test-session environment: loopback-only ROS 2 in a private domain, offline Hugging Face.

Set at import time, before any rclpy participant exists. Subprocesses (nodes started by tests)
inherit these variables; PYTHONPATH points them at this source tree, so console scripts in the
virtual environment run the code under test.
"""

import os
import pathlib
import random
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 101)))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_LOCALHOST_ONLY'] = '1'
os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                      str(REPO_ROOT / 'config' / 'fastdds_shm.xml'))
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('PYOPENGL_PLATFORM', os.environ['MUJOCO_GL'])
_pp = os.environ.get('PYTHONPATH', '')
if str(REPO_ROOT) not in _pp.split(os.pathsep):
    os.environ['PYTHONPATH'] = os.pathsep.join(p for p in (str(REPO_ROOT), _pp) if p)


@pytest.fixture(scope='module')
def ros_context():
    """One rclpy context per test module (ROS and launch tiers; rclpy imported only here)."""
    import rclpy
    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()


@pytest.fixture(scope='session')
def primed_tiny_dir(tmp_path_factory):
    """A primed tiny checkpoint (seed 0) in the released layout, written once per session.

    The same function as ``janusvln checkpoint init-tiny``; shared by every test tier.
    """
    import torch
    from janusvln_ros.model.priming import init_tiny_checkpoint

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = tmp_path_factory.mktemp('primed_tiny')
        init_tiny_checkpoint(path, seed=0, prime=True)
    finally:
        torch.set_num_threads(threads)
    return path


@pytest.fixture(scope='session')
def random_tiny_dir(tmp_path_factory):
    """An unprimed (random) tiny checkpoint (seed 1), written once per session."""
    from janusvln_ros.model.priming import init_tiny_checkpoint

    path = tmp_path_factory.mktemp('random_tiny')
    init_tiny_checkpoint(path, seed=1, prime=False)
    return path
