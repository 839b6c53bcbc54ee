"""Data-parallel training: two gloo processes make the same update as one process."""

import os
import socket

import numpy as np
from safetensors.torch import load_file, save_file
import torch
from torch import distributed as dist
from torch import multiprocessing as mp

from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.janusvln import JanusVLNForNavigation
from janusvln_ros.model.prompt import PromptBuilder
from janusvln_ros.model.tokenizer import load_bundled_tokenizer
from janusvln_ros.training.batch import PromptCache
from janusvln_ros.training.forward import NavigatorModule, trainable_groups
from janusvln_ros.training.tokens import navigator_token_map

INSTRUCTION = 'Exit the office. Your goal is the red sofa in the living room.'
SAMPLES = [(0, 0, INSTRUCTION, 1), (0, 5, INSTRUCTION, 2), (10, 3, INSTRUCTION, 0),
           (10, 9, INSTRUCTION, 3)]


def _setup():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    tokenizer = load_bundled_tokenizer()
    model = JanusVLNForNavigation.from_config(JanusVLNConfig.small(navigator_token_map(tokenizer)))
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (20, 168, 224, 3),
                                                                dtype=np.uint8))
    cache = PromptCache(PromptBuilder(tokenizer), 48, (1, 12, 16))
    return model, frames, cache


def _step(model, frames, cache, samples, wrap=None):
    module = NavigatorModule(model)
    groups = trainable_groups(model, 0.1, 0.1)
    optimizer = torch.optim.SGD([p for g in groups for p in g['params']], lr=0.1)
    runner = wrap(module) if wrap else module
    loss = runner(cache.collate(samples), frames)['loss']
    loss.backward()
    optimizer.step()
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    from torch.nn.parallel import DistributedDataParallel
    model, frames, cache = _setup()
    half = SAMPLES[rank * 2:(rank + 1) * 2]
    params = _step(model, frames, cache, half, wrap=DistributedDataParallel)
    if rank == 0:
        save_file({k: v.contiguous() for k, v in params.items()},
                  os.path.join(out_dir, 'ddp.safetensors'))
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_gloo_processes_make_the_single_process_update(tmp_path):
    model, frames, cache = _setup()
    single = _step(model, frames, cache, SAMPLES)
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2,
                       start_method='spawn', join=True)
    ddp = load_file(str(tmp_path / 'ddp.safetensors'))
    assert set(ddp) == set(single)
    worst = max(float((ddp[n] - single[n]).abs().max()) for n in single)
    moved = max(float((single[n] - p.detach()).abs().max())
                for n, p in _setup()[0].named_parameters() if n in single)
    assert moved > 1e-4          # the step changed the weights
    assert worst < 1e-5, worst   # and both ways changed them alike
