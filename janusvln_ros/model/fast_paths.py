"""The CUDA fast paths of one model instance, and the scope of their SDPA backend preference.

:func:`apply_fast_paths` installs, on one model instance
(:class:`~janusvln_ros.model.janusvln.JanusVLNForNavigation`), the fast paths that keep the
model's numerics: the varlen ViT attention and CUDA-graph replay of the ViT (LLM device on CUDA)
and of VGGT (VGGT device on CUDA). It changes nothing outside that instance. The cuDNN-first
SDPA preference of the fast paths is process state in PyTorch, so it is not set when the paths
are installed: :func:`sdpa_scope` applies it around the calls that want it (one engine step)
and restores the previous backend order afterwards.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Sequence

import torch

from janusvln_ros.model import cuda_graphs, fast_attention

logger = logging.getLogger(__name__)

#: Name of the SDPA preference in the list :func:`apply_fast_paths` returns.
SDPA_FAST_PATH = 'sdpa_cudnn'


def apply_fast_paths(model: Any, llm_device: torch.device,
                     vggt_device: torch.device) -> list[str]:
    """Install the CUDA fast paths on ``model`` (idempotent; nothing on CPU devices).

    What is already installed (e.g. by the GPU benchmark) is left as it is. No process-wide
    setting changes: the SDPA preference is applied per call by :func:`sdpa_scope`.

    Args:
        model: A ``JanusVLNForNavigation`` already placed on its devices.
        llm_device: Device of Qwen (ViT + LLM).
        vggt_device: Device of VGGT and the merger.

    Returns:
        The names of the fast paths in effect: ``sdpa_cudnn`` (inside :func:`sdpa_scope`),
        ``vit_varlen``, ``vitgraph``, ``vggtgraph``.
    """
    done: list[str] = []
    if llm_device.type == 'cuda' or vggt_device.type == 'cuda':
        done.append(SDPA_FAST_PATH)
    if llm_device.type == 'cuda':
        if (fast_attention.vision_attention_name(model.qwen)
                != fast_attention.VARLEN_VISION_ATTENTION):
            fast_attention.enable_varlen_vision_attention(model.qwen)
        done.append('vit_varlen')
    installed = vars(model)
    vit_done = isinstance(installed.get('vit_embeds'), cuda_graphs.FastVisionEncoder)
    vggt_done = isinstance(installed.get('spatial_embeds'), cuda_graphs.GraphedSpatialEncoder)
    vit = llm_device.type == 'cuda' and not vit_done
    vggt = vggt_device.type == 'cuda' and not vggt_done
    if vit or vggt:
        cuda_graphs.install_cuda_graphs(model, vit=vit, vggt=vggt)
    graphs = (('vitgraph', 'vit_embeds', llm_device),
              ('vggtgraph', 'spatial_embeds', vggt_device))
    done += [name for name, key, dev in graphs if dev.type == 'cuda' and key in installed]
    if done:
        logger.info('fast paths: %s', ', '.join(done))
    return done


@contextlib.contextmanager
def sdpa_scope(fast_paths: Sequence[str], device: torch.device) -> Iterator[None]:
    """Run the enclosed SDPA calls with cuDNN first if ``fast_paths`` holds ``sdpa_cudnn``.

    The previous backend priority is restored when the block ends (also on an exception). The
    priority is PyTorch process state: SDPA calls of other threads during the block see it too.

    Args:
        fast_paths: What :func:`apply_fast_paths` returned.
        device: The CUDA device of the calls (nothing changes on other devices).
    """
    if SDPA_FAST_PATH not in fast_paths:
        yield
        return
    with fast_attention.sdpa_preference('cudnn', device):
        yield
