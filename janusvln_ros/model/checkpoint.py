"""Checkpoints in the released JanusVLN layout: safetensors only, key names of transformers 4.50.

A checkpoint directory holds:

* ``config.json`` (see :mod:`janusvln_ros.model.config`);
* ``model-0000k-of-0000n.safetensors`` shards and ``model.safetensors.index.json`` (a single
  ``model.safetensors`` is accepted when reading);
* tokenizer files (``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.json``) and
  ``preprocessor_config.json``.

Key names on disk are those of the transformers-4.50 era, mapped both ways onto the 5.x tree:

===============================  =====================================
on disk                          in :class:`JanusVLNForNavigation`
===============================  =====================================
``model.*`` (LLM decoder)        ``qwen.model.language_model.*``
``visual.*`` (Qwen ViT)          ``qwen.model.visual.*``
``lm_head.*``                    ``qwen.lm_head.*``
``vggt.aggregator.*``            ``vggt.aggregator.*``
``merger.*`` (fusion MLP)        ``merger.*``
===============================  =====================================

``merger.*`` is the VGGT fusion MLP; Qwen's own patch merger is ``visual.merger.*``. Keys already
in the 5.x layout (``model.language_model.*``, ``model.visual.*``) are read too. The unused
``vggt.depth_head.*`` and ``vggt.point_head.*`` of released files are skipped with one info line.

Loading never unpickles anything (``*.bin``/``*.pt``/``*.pth`` files are refused), builds the
model with its parameters on the meta device, and assigns tensors shard by shard, so peak host
memory stays about one shard above the model itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pathlib
from typing import Iterator

from safetensors import safe_open
from safetensors.torch import save_file
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from janusvln_ros.model.config import CheckpointError, JanusVLNConfig
from janusvln_ros.model.janusvln import JanusVLNForNavigation
from janusvln_ros.model.preprocess import CLIP_MEAN, CLIP_STD
from janusvln_ros.model.tokenizer import load_tokenizer, save_tokenizer

__all__ = ['CheckpointError', 'from_released_key', 'load_checkpoint', 'load_config',
           'save_checkpoint', 'to_released_key']

logger = logging.getLogger(__name__)

CONFIG_NAME = 'config.json'
INDEX_NAME = 'model.safetensors.index.json'
SINGLE_NAME = 'model.safetensors'
PICKLE_SUFFIXES = ('.bin', '.pt', '.pth', '.ckpt', '.pkl')
SKIPPED_PREFIXES = ('vggt.depth_head.', 'vggt.point_head.')
DEFAULT_MAX_SHARD_BYTES = 5 * 1024 ** 3

# (on-disk prefix, module prefix); the first match wins, so longer prefixes come first.
_READ_MAP = (
    ('model.language_model.', 'qwen.model.language_model.'),
    ('model.visual.', 'qwen.model.visual.'),
    ('visual.', 'qwen.model.visual.'),
    ('model.', 'qwen.model.language_model.'),
    ('lm_head.', 'qwen.lm_head.'),
    ('vggt.aggregator.', 'vggt.aggregator.'),
    ('merger.', 'merger.'),
)
_WRITE_MAP = (
    ('qwen.model.language_model.', 'model.'),
    ('qwen.model.visual.', 'visual.'),
    ('qwen.lm_head.', 'lm_head.'),
    ('vggt.aggregator.', 'vggt.aggregator.'),
    ('merger.', 'merger.'),
)


def from_released_key(key: str) -> str | None:
    """Map an on-disk key to a module name; ``None`` for keys skipped on purpose (DPT heads).

    Raises:
        CheckpointError: For a key that belongs to no known component.
    """
    if key.startswith(SKIPPED_PREFIXES):
        return None
    for disk, module in _READ_MAP:
        if key.startswith(disk):
            return module + key[len(disk):]
    raise CheckpointError(f'unexpected key {key!r}: not part of Qwen2.5-VL, the VGGT aggregator '
                          'or the fusion merger')


def to_released_key(name: str) -> str:
    """Map a module name (``qwen.model.language_model.layers.0...``) to the on-disk key."""
    for module, disk in _WRITE_MAP:
        if name.startswith(module):
            return disk + name[len(module):]
    raise ValueError(f'no on-disk name for module tensor {name!r}')


# ---------------------------------------------------------------------------- building
@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Create every parameter on the meta device; buffers (RoPE tables...) stay real.

    Non-persistent buffers are not in checkpoints, so they must be computed by the modules'
    constructors; parameters are filled from the checkpoint afterwards.
    """
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and param.device.type != 'meta':
            module._parameters[name] = nn.Parameter(param.to('meta'),
                                                    requires_grad=param.requires_grad)

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


def _set_tensor(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    module_name, _, leaf = name.rpartition('.')
    module = model.get_submodule(module_name)
    if leaf in module._parameters:
        module._parameters[leaf] = nn.Parameter(tensor, requires_grad=False)
    else:
        module._buffers[leaf] = tensor


def load_config(path: str | os.PathLike[str]) -> JanusVLNConfig:
    """Read ``config.json`` of a checkpoint directory.

    Raises:
        CheckpointError: If the directory or its config is missing, unreadable, or of another
            model type.
    """
    folder = pathlib.Path(path)
    if not folder.is_dir():
        raise CheckpointError(f'checkpoint directory not found: {folder}')
    config_file = folder / CONFIG_NAME
    if not config_file.is_file():
        raise CheckpointError(f'missing {CONFIG_NAME} in checkpoint directory {folder}')
    try:
        data = json.loads(config_file.read_text(encoding='utf-8'))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f'{config_file} is not valid JSON: {exc}') from exc
    if not isinstance(data, dict):
        raise CheckpointError(f'{config_file}: expected a JSON object')
    return JanusVLNConfig.from_json_dict(data)


def _shard_files(folder: pathlib.Path) -> list[pathlib.Path]:
    """The safetensors files of a checkpoint, checked to exist; refuses pickle checkpoints."""
    index = folder / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding='utf-8'))['weight_map']
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f'{index} is not a valid safetensors index: {exc}') from exc
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CheckpointError(f'missing shard(s) {missing} listed in {index}')
        return [folder / n for n in names]
    if (folder / SINGLE_NAME).is_file():
        return [folder / SINGLE_NAME]
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(f'{folder} holds only pickle weight files {pickles}; they are '
                              'never loaded (unpickling can run code). Convert them to '
                              'safetensors first')
    raise CheckpointError(f'no safetensors weights ({INDEX_NAME} or {SINGLE_NAME}) in {folder}')


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = 'cpu',
                    dtype: torch.dtype = torch.float32, progress: bool = True,
                    vggt_device: str | torch.device | None = None,
                    attn_implementation: str | None = None,
                    ) -> tuple[JanusVLNForNavigation, PreTrainedTokenizerBase]:
    """Load a checkpoint directory in the released layout.

    Args:
        path: The checkpoint directory.
        device: Device of Qwen (and of VGGT unless ``vggt_device`` is given).
        dtype: Dtype of the floating-point weights (RoPE tables stay float32).
        progress: Show a tqdm progress bar over the bytes read.
        vggt_device: Device of the aggregator and merger (default: ``device``).
        attn_implementation: Qwen attention backend (default ``'sdpa'``).

    Returns:
        ``(model, tokenizer)``; the model is in eval mode without gradients.

    Raises:
        CheckpointError: Missing directory/config/shard/key, a wrong shape, an unexpected key, a
            pickle-only checkpoint, or a config of another model type.
    """
    folder = pathlib.Path(path)
    config = load_config(folder)
    shards = _shard_files(folder)
    vggt_device = vggt_device if vggt_device is not None else device
    with _parameters_on_meta():
        model = JanusVLNForNavigation(config, attn_implementation)
    expected = dict(model.named_parameters())
    expected.update((n, b) for n, b in model.state_dict(keep_vars=True).items()
                    if n not in expected)
    if config.tie_word_embeddings:
        expected.pop('qwen.lm_head.weight', None)  # tied to the embeddings after loading
    loaded: set[str] = set()
    skipped = 0
    total = sum(f.stat().st_size for f in shards)
    bar = tqdm(total=total, unit='B', unit_scale=True, desc=f'loading {folder.name}',
               disable=not progress)
    try:
        for shard in shards:
            with safe_open(str(shard), framework='pt', device='cpu') as reader:
                for key in reader.keys():
                    name = from_released_key(key)
                    if name is None:
                        skipped += 1
                        continue
                    if config.tie_word_embeddings and name == 'qwen.lm_head.weight':
                        continue  # tied to the embeddings; some writers store it anyway
                    if name not in expected:
                        raise CheckpointError(f'unexpected key {key!r} in {shard.name} (maps to '
                                              f'{name!r}, which the model does not have)')
                    shape = tuple(reader.get_slice(key).get_shape())
                    want = tuple(expected[name].shape)
                    if shape != want:
                        raise CheckpointError(f'unexpected shape for {key!r} in {shard.name}: '
                                              f'{shape}, the config expects {want}')
                    tensor = reader.get_tensor(key)
                    target = vggt_device if name.startswith(('vggt.', 'merger.')) else device
                    cast = dtype if tensor.is_floating_point() else tensor.dtype
                    _set_tensor(model, name, tensor.to(device=target, dtype=cast))
                    loaded.add(name)
                    bar.update(tensor.numel() * tensor.element_size())
    finally:
        bar.close()
    missing = sorted(set(expected) - loaded)
    if missing:
        raise CheckpointError(f'{len(missing)} key(s) missing from {folder}, e.g. '
                              f'{[to_released_key(n) for n in missing[:5]]}')
    if skipped:
        logger.info('skipped %d unused tensors of vggt.depth_head/vggt.point_head', skipped)
    if config.tie_word_embeddings:
        model.qwen.lm_head.weight = model.qwen.model.language_model.embed_tokens.weight
    model.qwen.to(device)  # moves buffers; keeps their dtypes
    model.vggt.to(vggt_device)
    model.merger.to(vggt_device)
    model.eval().requires_grad_(False)
    logger.info('loaded %s: %d tensors from %d shard(s), dtype %s, device %s / vggt %s',
                folder, len(loaded), len(shards), dtype, device, vggt_device)
    return model, load_tokenizer(folder)


# ---------------------------------------------------------------------------- saving
def _preprocessor_config() -> dict[str, object]:
    return {'image_processor_type': 'Qwen2VLImageProcessor',
            'processor_class': 'Qwen2_5_VLProcessor', 'do_resize': True, 'do_rescale': True,
            'rescale_factor': 1 / 255, 'do_normalize': True, 'do_convert_rgb': True,
            'image_mean': list(CLIP_MEAN), 'image_std': list(CLIP_STD), 'min_pixels': 784,
            'max_pixels': 1605632, 'patch_size': 14, 'temporal_patch_size': 2, 'merge_size': 2}


def save_checkpoint(model: JanusVLNForNavigation, tokenizer: PreTrainedTokenizerBase | None,
                    path: str | os.PathLike[str],
                    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list[pathlib.Path]:
    """Write a checkpoint in the released layout (always sharded, with an index).

    Args:
        model: The network (tensors are copied to the CPU, dtypes kept).
        tokenizer: Written beside the weights with its chat template (``None``: skip).
        path: Output directory (created; existing weight files of the same names are replaced).
        max_shard_bytes: Upper bound of one shard (a single larger tensor gets its own shard).

    Returns:
        The shard paths.
    """
    folder = pathlib.Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if model.config.tie_word_embeddings and name == 'qwen.lm_head.weight':
            continue
        tensors[to_released_key(name)] = tensor.detach().to('cpu').contiguous()
    groups: list[list[str]] = [[]]
    size = 0
    for key in tensors:
        nbytes = tensors[key].numel() * tensors[key].element_size()
        if groups[-1] and size + nbytes > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(key)
        size += nbytes
    n = len(groups)
    weight_map: dict[str, str] = {}
    shards = []
    for i, keys in enumerate(groups, start=1):
        name = f'model-{i:05d}-of-{n:05d}.safetensors'
        save_file({k: tensors[k] for k in keys}, str(folder / name), metadata={'format': 'pt'})
        weight_map.update((k, name) for k in keys)
        shards.append(folder / name)
    total = sum(math.prod(t.shape) * t.element_size() for t in tensors.values())
    index = {'metadata': {'total_size': total}, 'weight_map': dict(sorted(weight_map.items()))}
    (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + '\n', encoding='utf-8')
    config = model.config.to_json_dict()
    config['torch_dtype'] = str(model.dtype).replace('torch.', '')
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + '\n', encoding='utf-8')
    (folder / 'preprocessor_config.json').write_text(
        json.dumps(_preprocessor_config(), indent=2) + '\n', encoding='utf-8')
    if tokenizer is not None:
        save_tokenizer(tokenizer, folder)
    logger.info('saved %s: %d tensors in %d shard(s)', folder, len(tensors), n)
    return shards
