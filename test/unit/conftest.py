"""Fixtures shared by the unit tests: tiny checkpoints built once per test session."""

import pathlib

import pytest
import torch


@pytest.fixture(scope='session')
def primed_tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A primed tiny checkpoint (seed 0) in the released layout, written once per session."""
    from janusvln_ros.model.priming import init_tiny_checkpoint

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp('primed_tiny')
    init_tiny_checkpoint(path, seed=0, prime=True)
    return path


@pytest.fixture(scope='session')
def random_tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """An unprimed (random) tiny checkpoint (seed 1), written once per session."""
    from janusvln_ros.model.priming import init_tiny_checkpoint

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp('random_tiny')
    init_tiny_checkpoint(path, seed=1, prime=False)
    return path
