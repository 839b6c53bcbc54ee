"""Trainer state without pickle: optimizer tensors in safetensors, the rest in JSON."""

from __future__ import annotations

import json
import pathlib
from typing import Any

from safetensors.torch import load_file, save_file
import torch

STATE_TENSORS = 'trainer_state.safetensors'
STATE_JSON = 'trainer_state.json'


def save_trainer_state(folder: pathlib.Path, optimizer: torch.optim.Optimizer,
                       info: dict[str, Any]) -> None:
    """Write the optimizer state and ``info`` (step, epoch, config...) beside a checkpoint."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state['state'].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f'{index}.{key}'] = value.detach().to('cpu').contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    save_file(tensors, str(folder / STATE_TENSORS))
    groups = [{k: v for k, v in g.items() if k != 'params'} | {'params': list(g['params'])}
              for g in state['param_groups']]
    payload = {'info': info, 'param_groups': groups, 'scalars': scalars}
    (folder / STATE_JSON).write_text(json.dumps(payload, indent=1) + '\n')


def load_trainer_state(folder: pathlib.Path, optimizer: torch.optim.Optimizer
                       ) -> dict[str, Any]:
    """Restore the optimizer from :func:`save_trainer_state`; returns the saved ``info``."""
    payload = json.loads((folder / STATE_JSON).read_text())
    tensors = load_file(str(folder / STATE_TENSORS))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split('.', 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in payload['scalars'].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({'state': state, 'param_groups': payload['param_groups']})
    return payload['info']


def has_trainer_state(folder: pathlib.Path) -> bool:
    """Whether ``folder`` holds a resumable trainer state."""
    return (folder / STATE_JSON).is_file() and (folder / STATE_TENSORS).is_file()
