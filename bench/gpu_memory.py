"""GPU memory figures of the benchmarks: allocator counters and the driver's per-process figure.

``torch.cuda.max_memory_allocated`` counts only live tensors. What a card must hold is more: the
caching allocator's reserved segments (``memory_reserved``) plus the CUDA context and library
workspaces, which only the driver sees. :func:`nvml_process_bytes` reads the driver's figure for
this process (NVML through ``pynvml``, else ``nvidia-smi``); it is the number to compare with a
card's usable memory (:data:`CARD_USABLE_GIB`). Every function is a no-op (0 or None) on CPU.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import torch

GIB = 2 ** 30

#: Memory a process can actually use on cards a claim may name (driver-reported total minus
#: what the driver keeps), GiB. An A10 reports about 22.5 GiB usable of its 24 GB.
CARD_USABLE_GIB = {'24 GB card (A10)': 22.5}


def _cuda(device: torch.device) -> bool:
    return device.type == 'cuda'


def sync(device: torch.device) -> None:
    """Synchronise a CUDA device (no-op on CPU)."""
    if _cuda(device):
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    """Reset the CUDA peak-memory counter (no-op on CPU)."""
    if _cuda(device):
        torch.cuda.reset_peak_memory_stats(device)


def allocated(device: torch.device) -> int:
    """Bytes allocated by the caching allocator (0 on CPU)."""
    return torch.cuda.memory_allocated(device) if _cuda(device) else 0


def peak_allocated(device: torch.device) -> int:
    """Peak bytes allocated since the last reset (0 on CPU)."""
    return torch.cuda.max_memory_allocated(device) if _cuda(device) else 0


def empty_cache(device: torch.device) -> None:
    """Return cached blocks to the driver (no-op on CPU)."""
    if _cuda(device):
        torch.cuda.empty_cache()


def reserved(device: torch.device) -> int:
    """Bytes the caching allocator holds from the driver now (0 on CPU)."""
    return torch.cuda.memory_reserved(device) if _cuda(device) else 0


def peak_reserved(device: torch.device) -> int:
    """Peak bytes reserved by the caching allocator since the last reset (0 on CPU)."""
    return torch.cuda.max_memory_reserved(device) if _cuda(device) else 0


def _nvml_index(device: torch.device) -> int:
    index = device.index if device.index is not None else torch.cuda.current_device()
    to_nvml = getattr(torch.cuda, '_get_nvml_device_index', None)
    return int(to_nvml(index)) if to_nvml is not None else index


def nvml_process_bytes(device: torch.device) -> int | None:
    """GPU memory the driver attributes to this process on ``device`` (CUDA context included).

    Returns:
        Bytes, or None on CPU or where neither NVML (``pynvml``) nor ``nvidia-smi`` answers.
    """
    if not _cuda(device):
        return None
    pid = os.getpid()
    try:
        import pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(_nvml_index(device))
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        return sum(int(p.usedGpuMemory or 0) for p in procs if p.pid == pid)
    except Exception:  # noqa: B902 - no pynvml, or NVML refused: try nvidia-smi
        pass
    try:
        out = subprocess.run(
            ['nvidia-smi', '-i', str(_nvml_index(device)), '--query-compute-apps=pid,used_memory',
             '--format=csv,noheader,nounits'], capture_output=True, text=True, timeout=10,
            check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    mib = [int(used) for pid_s, used in (line.split(',') for line in out.splitlines() if line)
           if int(pid_s) == pid]
    return sum(mib) * 2 ** 20 if mib else None


def memory_figures(device: torch.device) -> dict[str, Any]:
    """Current allocated/reserved, peaks since the last reset, and NVML's process figure (GiB)."""
    nvml = nvml_process_bytes(device)
    return {'alloc_gib': allocated(device) / GIB, 'peak_alloc_gib': peak_allocated(device) / GIB,
            'reserved_gib': reserved(device) / GIB,
            'peak_reserved_gib': peak_reserved(device) / GIB,
            'nvml_process_gib': None if nvml is None else nvml / GIB}


def fits(nvml_gib: float | None) -> dict[str, bool | None]:
    """Whether the NVML process figure fits each :data:`CARD_USABLE_GIB` card (None: unknown)."""
    return {card: (None if nvml_gib is None else nvml_gib <= usable)
            for card, usable in CARD_USABLE_GIB.items()}
