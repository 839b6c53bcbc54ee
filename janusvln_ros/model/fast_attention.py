"""GPU attention speed-ups that keep the model's numerics: backend preference and varlen ViT.

Two independent switches, both no-ops on the CPU:

* :func:`sdpa_preference` / :data:`SDPA_PREFERENCES`: a priority order of PyTorch SDPA backends
  for the VGGT aggregator (frame, DINOv2 and global attention); cuDNN first is the default,
  the fastest backend on Hopper GPUs for VGGT's long global attention (figures in
  ``bench/results/``). Every preference ends with the default backends, so a shape or layout one
  backend rejects silently falls back to the next.
* :func:`enable_varlen_vision_attention`: transformers' Qwen2.5-VL vision attention, on its
  ``sdpa`` path, splits the window blocks with ``lengths.tolist()`` (one host sync per block)
  and runs one small SDPA call per window (dozens per block, for every window block). This
  registers an attention function that runs all windows of a block in ONE call of PyTorch's
  built-in FlashAttention-2 varlen kernel (``aten._flash_attention_forward`` with cumulative
  sequence lengths), the same kernel family as the ``flash_attention_2`` path the released
  checkpoints were run with. transformers then computes the two maximum window lengths once per
  ViT call (two syncs per frame instead of 32).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Sequence

import torch
from torch.nn import functional as F

logger = logging.getLogger(__name__)

#: Registered transformers attention name ("flash" in it selects the cu_seqlens call path).
VARLEN_VISION_ATTENTION = 'flash_varlen_torch'

_BACKENDS = {
    'cudnn': 'CUDNN_ATTENTION',
    'flash': 'FLASH_ATTENTION',
    'efficient': 'EFFICIENT_ATTENTION',
    'math': 'MATH',
}
_DEFAULT_ORDER = ('flash', 'efficient', 'math')

#: Named SDPA preferences: ``'default'`` = PyTorch's own choice (no context manager).
SDPA_PREFERENCES = ('default', 'cudnn', 'flash', 'efficient')


def backend_order(preference: str) -> tuple[str, ...]:
    """SDPA backend names in priority order for a named preference (``()`` for ``default``).

    Raises:
        ValueError: Unknown preference.
    """
    if preference not in SDPA_PREFERENCES:
        raise ValueError(f'sdpa preference: expected one of {SDPA_PREFERENCES}, '
                         f'got {preference!r}')
    if preference == 'default':
        return ()
    return (preference,) + tuple(b for b in ('cudnn',) + _DEFAULT_ORDER if b != preference)


@contextlib.contextmanager
def sdpa_preference(preference: str, device: torch.device) -> Iterator[None]:
    """Run the enclosed SDPA calls with ``preference`` first (CUDA only; else a no-op).

    Args:
        preference: One of :data:`SDPA_PREFERENCES`.
        device: Device of the tensors; nothing is changed unless it is CUDA.
    """
    order = backend_order(preference)
    if not order or device.type != 'cuda':
        yield
        return
    from torch.nn.attention import sdpa_kernel, SDPBackend
    backends = [getattr(SDPBackend, _BACKENDS[name]) for name in order]
    # torch 2.11's sdpa_kernel(set_priority=True) restores the enabled flags but NOT the
    # priority order (measured: cuDNN stayed first for every later SDPA call, the LLM's too),
    # so the order is saved and restored here.
    get_order = getattr(torch._C, '_get_sdp_priority_order', None)
    set_order = getattr(torch._C, '_set_sdp_priority_order', None)
    previous = get_order() if get_order is not None else None
    try:
        with sdpa_kernel(backends, set_priority=True):
            yield
    finally:
        if previous is not None and set_order is not None:
            set_order(previous)


def set_global_sdpa_preference(preference: str) -> list[int] | None:
    """Make ``preference`` the process-wide first SDPA backend (CUDA calls everywhere).

    Backends that cannot take a call are skipped as usual. Prefer :func:`sdpa_preference`,
    which restores the previous order when its block ends.

    Args:
        preference: One of :data:`SDPA_PREFERENCES` (``'default'``: PyTorch's own order).

    Returns:
        The previous priority order (pass it to ``torch._C._set_sdp_priority_order`` to undo),
        or None where this torch has no priority API.
    """
    get_order = getattr(torch._C, '_get_sdp_priority_order', None)
    set_order = getattr(torch._C, '_set_sdp_priority_order', None)
    if get_order is None or set_order is None:
        return None
    previous = list(get_order())
    if preference == 'default':
        return previous
    from torch.nn.attention import SDPBackend
    first = [int(getattr(SDPBackend, _BACKENDS[name])) for name in backend_order(preference)]
    set_order(first + [b for b in previous if b not in first])
    return previous


def _segments_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   cu_seqlens: torch.Tensor, scale: float | None) -> torch.Tensor:
    """Exact fallback: one SDPA per segment. (1, H, S, D) -> (S, H, D)."""
    bounds = [int(b) for b in cu_seqlens.tolist()]
    outs = [F.scaled_dot_product_attention(query[:, :, a:b], key[:, :, a:b], value[:, :, a:b],
                                           scale=scale)
            for a, b in zip(bounds[:-1], bounds[1:])]
    return torch.cat(outs, dim=2)[0].transpose(0, 1)


def varlen_vision_attention(module: Any, query: torch.Tensor, key: torch.Tensor,
                            value: torch.Tensor, attention_mask: torch.Tensor | None = None,
                            scaling: float | None = None, dropout: float = 0.0,
                            cu_seq_lens_q: torch.Tensor | None = None,
                            cu_seq_lens_k: torch.Tensor | None = None,
                            max_length_q: int | None = None, max_length_k: int | None = None,
                            is_causal: bool = False, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Attention function for transformers: packed variable-length attention in one kernel.

    Args:
        module: The calling attention module (unused).
        query: ``(1, H, S, D)`` packed queries of all segments.
        key: ``(1, H, S, D)``.
        value: ``(1, H, S, D)``.
        attention_mask: Must be ``None`` (segments are given by ``cu_seq_lens_*``).
        scaling: Softmax scale.
        dropout: Must be 0 (inference).
        cu_seq_lens_q: ``(n + 1,)`` cumulative segment lengths (int32 or int64).
        cu_seq_lens_k: Same as ``cu_seq_lens_q`` (self-attention).
        max_length_q: Longest segment (a python int).
        max_length_k: Longest segment.
        is_causal: Must be False for the ViT.

    Returns:
        ``((1, S, H, D) output, None)``.
    """
    if attention_mask is not None or dropout:
        raise ValueError('varlen vision attention supports no mask and no dropout')
    if cu_seq_lens_q is None:
        out = F.scaled_dot_product_attention(query, key, value, scale=scaling,
                                             is_causal=is_causal)
        return out.transpose(1, 2), None
    fast = (query.is_cuda and query.dtype in (torch.float16, torch.bfloat16)
            and max_length_q is not None and max_length_k is not None and not is_causal)
    if not fast:
        return _segments_sdpa(query, key, value, cu_seq_lens_q, scaling).unsqueeze(0), None
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (S, H, D)
    q, k, v = (t if t.stride(-1) == 1 and t.is_contiguous() else t.contiguous()
               for t in (q, k, v))
    cu_q = cu_seq_lens_q.to(device=q.device, dtype=torch.int32)
    cu_k = cu_q
    if cu_seq_lens_k is not None:
        cu_k = cu_seq_lens_k.to(device=q.device, dtype=torch.int32)
    out = torch.ops.aten._flash_attention_forward(
        q, k, v, cu_q, cu_k, int(max_length_q), int(max_length_k), 0.0, False, False,
        scale=scaling)[0]
    return out.unsqueeze(0), None


def enable_varlen_vision_attention(qwen: Any) -> bool:
    """Switch a Qwen2.5-VL model's vision tower to :func:`varlen_vision_attention`.

    The language model keeps its own attention implementation. Safe to call more than once.

    Args:
        qwen: A ``Qwen2_5_VLForConditionalGeneration`` (or its ``.model``).

    Returns:
        True when the switch was made (the tower's blocks now read the new implementation).
    """
    from transformers import AttentionInterface
    AttentionInterface.register(VARLEN_VISION_ATTENTION, varlen_vision_attention)
    inner = getattr(qwen, 'model', qwen)
    visual = getattr(inner, 'visual', None)
    if visual is None:
        raise ValueError('no vision tower (.model.visual) on this model')
    configs = {id(visual.config): visual.config}
    for block in visual.blocks:
        configs[id(block.attn.config)] = block.attn.config
    for config in configs.values():
        config._attn_implementation = VARLEN_VISION_ATTENTION
    logger.info('Qwen vision attention: %s (%d config objects)', VARLEN_VISION_ATTENTION,
                len(configs))
    return True


def vision_attention_name(qwen: Any) -> str:
    """The attention implementation the vision tower's blocks currently use."""
    inner = getattr(qwen, 'model', qwen)
    return str(inner.visual.blocks[0].attn.config._attn_implementation)


def describe_backends(names: Sequence[str]) -> str:
    """Human-readable priority list (for logs)."""
    return ' > '.join(names) if names else 'pytorch default'
