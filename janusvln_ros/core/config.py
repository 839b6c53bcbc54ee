"""Engine configuration: a validated frozen dataclass; ROS parameters are declared from it."""

from __future__ import annotations

import dataclasses
from typing import Any

from janusvln_ros.core.errors import ConfigError

ENGINE_KINDS = ('janusvln', 'reference', 'scripted')
MODES = ('parity', 'streaming')
DTYPES = ('float32', 'bfloat16', 'float16')


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """How to build and run the navigation engine.

    Attributes:
        engine: ``'janusvln'`` (the dual-memory engine), ``'reference'`` (the plain reference
            step of the released code), ``'scripted'`` (a fixed action script, for plumbing
            checks without a model) or ``'package.module:Class'`` (any class implementing the
            :class:`~janusvln_ros.core.types.Engine` protocol, built as ``Class(config)``).
        model_path: Checkpoint directory in the released layout.
        device: Torch device of the whole model (``'cpu'``, ``'cuda'``, ``'cuda:1'``...).
        dtype: Weight and compute dtype.
        vggt_device: Device of the VGGT aggregator and the spatial memory ('' = ``device``).
        llm_device: Device of Qwen (ViT + LLM) and the semantic memory ('' = ``device``).
        mode: Semantic memory of the ``'janusvln'`` engine: ``'parity'`` (default; what the
            released checkpoints were trained for: per-frame ViT store, released history
            sampling, full re-prefill, same actions as the reference) or ``'streaming'`` (the
            paper's LLM key/value memory of prefix + anchor frames + sliding window, one new
            frame prefilled per step; the released checkpoints were NOT trained for it).
        spatial_anchor_frames: Frames pinned at the start of the spatial memory.
        spatial_window_frames: Most recent frames kept in the spatial memory (FIFO).
        num_history: Past frames sampled into the prompt in parity mode.
        semantic_anchor_frames: Streaming mode: first frames kept in the LLM cache (default 1,
            the first observation, like the VGGT anchor).
        semantic_window_frames: Streaming mode: most recent frames kept in the LLM cache
            (default 8: with the anchor, the same 9-frame budget as the parity prompt).
        prompt_template: Path of a prompt template file ('' = the installed default).
        max_new_tokens: Decoding budget of the reference step.
        fast_paths: On CUDA: cuDNN SDPA preference, one varlen attention call per ViT block,
            CUDA graphs for the ViT and VGGT; no effect on CPU.
        script: ``'scripted'`` engine: comma-separated action names, repeated cyclically
            unless the last one is STOP.
        script_step_delay_s: ``'scripted'`` engine: simulated inference time per step.
    """

    engine: str = 'janusvln'
    model_path: str = ''
    device: str = 'cpu'
    dtype: str = 'float32'
    vggt_device: str = ''
    llm_device: str = ''
    mode: str = 'parity'
    spatial_anchor_frames: int = 8
    spatial_window_frames: int = 48
    num_history: int = 8
    semantic_anchor_frames: int = 1
    semantic_window_frames: int = 8
    prompt_template: str = ''
    max_new_tokens: int = 24
    fast_paths: bool = True
    script: str = 'MOVE_FORWARD,TURN_LEFT,MOVE_FORWARD,STOP'
    script_step_delay_s: float = 0.0

    def __post_init__(self) -> None:
        """Validate every field; raise :class:`ConfigError` naming the bad one."""
        if self.engine not in ENGINE_KINDS and ':' not in self.engine:
            raise ConfigError(f'engine: expected one of {ENGINE_KINDS} or "module:Class", '
                              f'got {self.engine!r}')
        if self.mode not in MODES:
            raise ConfigError(f'mode: expected one of {MODES}, got {self.mode!r}')
        if self.dtype not in DTYPES:
            raise ConfigError(f'dtype: expected one of {DTYPES}, got {self.dtype!r}')
        for name in ('device', 'vggt_device', 'llm_device'):
            value = getattr(self, name)
            if value and not (value == 'cpu' or value == 'cuda' or value.startswith('cuda:')):
                raise ConfigError(f'{name}: expected cpu, cuda or cuda:N, got {value!r}')
        if not self.device:
            raise ConfigError('device: must not be empty')
        for name, low in (('spatial_anchor_frames', 1), ('spatial_window_frames', 1),
                          ('num_history', 1), ('semantic_anchor_frames', 0),
                          ('semantic_window_frames', 1), ('max_new_tokens', 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f'{name}: expected an integer >= {low}, got {value!r}')
        if not isinstance(self.fast_paths, bool):
            raise ConfigError(f'fast_paths: expected a bool, got {self.fast_paths!r}')
        if self.script_step_delay_s < 0:
            raise ConfigError(
                f'script_step_delay_s: expected >= 0, got {self.script_step_delay_s}')

    @property
    def resolved_vggt_device(self) -> str:
        """Device of VGGT and the spatial memory."""
        return self.vggt_device or self.device

    @property
    def resolved_llm_device(self) -> str:
        """Device of Qwen and the semantic memory."""
        return self.llm_device or self.device

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EngineConfig:
        """Build from a mapping, rejecting unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f'unknown engine config keys: {unknown}')
        return cls(**values)
