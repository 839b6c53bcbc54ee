"""Tiny test checkpoints, with a short "priming" fit so they answer with action words.

A randomly initialised tiny model emits junk text, which the exact-match parser turns into STOP
at every step: a demo robot would never move and parity tests would only ever compare STOPs. So
:func:`init_tiny_checkpoint` follows the random init with a brief, seeded fit on the CPU (about a
hundred Adam steps on synthetic frames) that teaches the model to answer with one well-formed
action word followed by ``<|im_end|>``, the word depending on the CURRENT frame's mean colour:

* mostly red -> ``TURN_LEFT``; mostly green -> ``MOVE_FORWARD``; mostly blue -> ``TURN_RIGHT``;
* grey (no dominant channel) -> ``STOP``.

**This is a toy.** A primed tiny model knows nothing about navigation or language; it only
exercises every stage of the real pipeline (both encoders, the fusion, the prompt, decoding) and
produces all four actions. The fit trains the LLM layers and the fusion merger through the same
path the reference step runs (the ViT and VGGT stay frozen); the prompt is the default template.
"""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from janusvln_ros.model.checkpoint import save_checkpoint
from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.fusion import spatial_tokens
from janusvln_ros.model.janusvln import JanusVLNForNavigation
from janusvln_ros.model.preprocess import prepare_frame
from janusvln_ros.model.prompt import ACTION_NAMES, PromptBuilder
from janusvln_ros.model.tokenizer import load_bundled_tokenizer

logger = logging.getLogger(__name__)

#: Dominant colour channel (0 R, 1 G, 2 B) -> action name; no dominant channel -> STOP.
CHANNEL_ACTIONS = ('TURN_LEFT', 'MOVE_FORWARD', 'TURN_RIGHT')
GREY_MARGIN = 24.0


def colour_rule(rgb: np.ndarray) -> str:
    """The action a primed tiny model is taught for a frame (see the module docstring)."""
    means = rgb.reshape(-1, 3).astype(np.float64).mean(axis=0)
    if means.max() - np.median(means) < GREY_MARGIN:
        return 'STOP'
    return CHANNEL_ACTIONS[int(means.argmax())]


def synthetic_frame(rng: np.random.Generator, action: str, height: int = 48,
                    width: int = 64) -> np.ndarray:
    """A noisy frame whose colour makes :func:`colour_rule` return ``action``.

    Args:
        rng: Random generator.
        action: One of :data:`ACTION_NAMES`.
        height: Frame height.
        width: Frame width.

    Returns:
        ``(height, width, 3)`` uint8 RGB.
    """
    if action == 'STOP':
        base = np.full(3, rng.uniform(40, 215))
    else:
        base = rng.uniform(20, 110, size=3)
        base[CHANNEL_ACTIONS.index(action)] = rng.uniform(170, 250)
    noise = rng.normal(0.0, 12.0, size=(height, width, 3))
    frame = np.clip(base + noise, 0, 255).astype(np.uint8)
    if colour_rule(frame) != action:  # rare: noise pushed it across a boundary
        return synthetic_frame(rng, action, height, width)
    return frame


def _sample_action(rng: np.random.Generator) -> str:
    # STOP is rare-ish, like in navigation episodes.
    return str(rng.choice(ACTION_NAMES, p=(0.1, 0.4, 0.25, 0.25)))


def _make_group(model: JanusVLNForNavigation, prompt: PromptBuilder, rng: np.random.Generator,
                answers: dict[str, list[int]], num_frames: int, size: int) -> dict[str, Any]:
    """A batch of ``size`` episodes of ``num_frames`` frames; targets = last frames' actions.

    To keep priming fast, VGGT streams only the last two frames of each episode (the colour cue
    the fit relies on reaches the LLM through both encoders anyway).
    """
    agg = model.vggt.aggregator
    p = agg.cfg.patch_size
    end = answers['STOP'][-1]
    width = max(len(a) for a in answers.values())
    pixel_values, grids, tokens, targets = [], [], [], []
    for _ in range(size):
        actions = [_sample_action(rng) for _ in range(num_frames)]
        frames = [prepare_frame(synthetic_frame(rng, a), model.config.image_width)
                  for a in actions]
        cache = model.new_spatial_cache('concat', 8, 48)
        for f in frames[-2:]:
            feats = agg.forward_frame(f.vggt_image.unsqueeze(0), cache,
                                      num_layers=model.config.num_vggt_layers)
        grid_hw = (frames[-1].vggt_image.shape[1] // p, frames[-1].vggt_image.shape[2] // p)
        tokens.append(spatial_tokens(feats[model.config.output_layer], grid_hw,
                                     agg.patch_start_idx))
        pixel_values += [f.pixel_values for f in frames]
        grids += [f.grid_thw for f in frames]
        answer = answers[actions[-1]]
        targets.append(answer + [-100] * (width - len(answer)))
    ids = prompt.parity_ids('go to the goal', [f.num_tokens for f in frames])
    target = torch.tensor(targets, dtype=torch.long)
    vit = model.vit_embeds(torch.cat(pixel_values), torch.cat(grids))  # frozen: computed once
    full = torch.cat([ids.unsqueeze(0).expand(size, -1),
                      target.clamp(min=0).masked_fill(target < 0, end)], dim=1)
    positions = model.rope_index(full[:1], torch.cat(grids[:num_frames]))
    return {'ids': full, 'target': target, 'vit': vit, 'tokens': torch.cat(tokens),
            'positions': positions.expand(3, size, -1), 'num_frames': num_frames}


def _group_logits(model: JanusVLNForNavigation, group: dict[str, Any],
                  keep: int) -> torch.Tensor:
    """Logits ``(B, keep, vocab)`` of the last ``keep`` positions of a group's sequences."""
    k = group['num_frames']
    spatial = model.merger(group['tokens'])
    vit = group['vit']
    embeds = torch.cat([model.scatter_images(group['ids'][b:b + 1],
                                             model.fuse(vit[b * k:(b + 1) * k], spatial[b]))
                        for b in range(group['ids'].shape[0])])
    hidden = model.qwen.model(inputs_embeds=embeds, position_ids=group['positions'],
                              use_cache=False).last_hidden_state[:, -keep:]
    # A 2-D matmul: the batched 3-D path of the 152k-row LM head is several times slower on CPU.
    logits = F.linear(hidden.reshape(-1, hidden.shape[-1]), model.qwen.lm_head.weight)
    return logits.view(hidden.shape[0], keep, -1)


def prime_tiny(model: JanusVLNForNavigation, tokenizer: Any, seed: int = 0, steps: int = 140,
               groups: int = 18, group_size: int = 4, lr: float = 4e-3,
               norm_lr: float = 0.25) -> dict[str, float]:
    """Fit a tiny model to answer ``<ACTION><|im_end|>`` by the current frame's colour.

    The LLM layers, the final norm and the fusion merger are trained; the embeddings, the LM
    head, the Qwen ViT and VGGT stay as initialised (so their outputs are computed once).

    Args:
        model: A tiny network (trained in place, left in eval mode without gradients).
        tokenizer: Its tokenizer.
        seed: Seed of the synthetic data and of the batch order.
        steps: Adam steps (one group of episodes per step).
        groups: Synthetic groups; group ``i`` has ``i % 9 + 1`` frames per episode, so prompts
            with 1 to 9 images are all seen.
        group_size: Episodes per group.
        lr: Adam learning rate.
        norm_lr: Adam learning rate of the LLM's final norm (sets the logit scale).

    Returns:
        ``{'loss_first': ..., 'loss_last': ..., 'train_accuracy': ...}``: mean loss of the
        first and last 10 steps, and the fraction of training episodes whose greedy first
        answer token is right after the fit.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    prompt = PromptBuilder(tokenizer)
    end = tokenizer.convert_tokens_to_ids('<|im_end|>')
    answers = {name: ids + [end] for name, ids in prompt.action_token_ids().items()}
    width = max(len(a) for a in answers.values())
    model.eval()
    with torch.no_grad():
        data = [_make_group(model, prompt, rng, answers, i % 9 + 1, group_size)
                for i in range(groups)]
    model.requires_grad_(False)
    llm = model.qwen.model.language_model
    trainable = [model.merger, *llm.layers]
    params = [p for m in trainable for p in m.parameters()]
    # The LM head stays frozen (its Adam state alone would cost more than the rest), so the
    # final norm must grow the logit scale: it gets a much larger step.
    groups_ = [{'params': params, 'lr': lr}, {'params': list(llm.norm.parameters()),
                                              'lr': norm_lr}]
    for group in groups_:
        for p in group['params']:
            p.requires_grad_(True)
    optimiser = torch.optim.Adam(groups_)
    losses = []
    order = np.random.default_rng(seed + 1)
    for _ in range(steps):
        group = data[int(order.integers(groups))]
        optimiser.zero_grad(set_to_none=True)
        logits = _group_logits(model, group, width + 1)[:, :width]
        loss = F.cross_entropy(logits.flatten(0, 1).float(), group['target'].flatten(),
                               ignore_index=-100)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    model.requires_grad_(False)
    with torch.no_grad():
        right = sum(int((_group_logits(model, g, width + 1)[:, 0].argmax(-1)
                         == g['target'][:, 0]).sum()) for g in data)
    stats = {'loss_first': float(np.mean(losses[:10])), 'loss_last': float(np.mean(losses[-10:])),
             'train_accuracy': right / (groups * group_size)}
    logger.info('primed tiny model: loss %.3f -> %.3f, first-token accuracy %.2f',
                stats['loss_first'], stats['loss_last'], stats['train_accuracy'])
    return stats


def init_tiny_checkpoint(path: str | os.PathLike[str], seed: int = 0, prime: bool = True,
                         max_shard_bytes: int = 50 * 1024 ** 2) -> dict[str, float]:
    """Write a random (and by default primed) tiny checkpoint in the released layout.

    Args:
        path: Output directory.
        seed: Seed of the random init and of the priming fit.
        prime: Run :func:`prime_tiny` (else the model answers junk, parsed as STOP).
        max_shard_bytes: Shard size (the default gives 2 shards, exercising the index).

    Returns:
        The priming statistics (empty without priming).
    """
    torch.manual_seed(seed)
    model = JanusVLNForNavigation.from_config(JanusVLNConfig.tiny())
    tokenizer = load_bundled_tokenizer()
    stats: dict[str, float] = {}
    if prime:
        stats = prime_tiny(model, tokenizer, seed=seed)
    save_checkpoint(model, tokenizer, pathlib.Path(path), max_shard_bytes=max_shard_bytes)
    return stats
