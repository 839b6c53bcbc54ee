"""Separate devices for VGGT and Qwen (``vggt_device`` / ``llm_device``), exercised on the CPU.

Two GPUs are not available to CI; these tests run the split code path with both devices set
explicitly and check it changes nothing, and that the load and placement honour each device.
"""

import numpy as np
import pytest
import torch

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.engine import JanusVLNEngine
from janusvln_ros.model.checkpoint import load_checkpoint
from janusvln_ros.model.priming import synthetic_frame
from janusvln_ros.model.prompt import ACTION_NAMES


def _frames(n):
    rng = np.random.default_rng(3)
    return [synthetic_frame(rng, ACTION_NAMES[i % 4]) for i in range(n)]


@pytest.mark.parametrize('mode', ['parity', 'streaming'])
def test_explicit_devices_give_the_same_steps(primed_tiny_dir, mode):
    base = dict(engine='janusvln', model_path=str(primed_tiny_dir), mode=mode,
                spatial_anchor_frames=2, spatial_window_frames=3)
    plain = JanusVLNEngine(EngineConfig(**base))
    split = JanusVLNEngine(EngineConfig(**base, vggt_device='cpu', llm_device='cpu'))
    assert split.vggt_device == torch.device('cpu') and split.llm_device == torch.device('cpu')
    plain.reset('walk to the red chair')
    split.reset('walk to the red chair')
    for frame in _frames(8):
        a, b = plain.step(frame), split.step(frame)
        assert a.action == b.action and a.raw_output == b.raw_output
        assert torch.equal(plain.last_logits, split.last_logits)
    assert len(split.spatial_memory) == len(plain.spatial_memory) == 5


def test_load_places_vggt_and_qwen_on_their_devices(primed_tiny_dir):
    model, _ = load_checkpoint(primed_tiny_dir, device='cpu', vggt_device='cpu', progress=False)
    assert model.vggt_device == torch.device('cpu') and model.llm_device == torch.device('cpu')
    model.place('meta', 'cpu')
    assert model.llm_device == torch.device('meta')
    assert model.vggt_device == torch.device('cpu')
    assert next(model.vggt.parameters()).device == torch.device('cpu')
