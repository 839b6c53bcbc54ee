"""Imitation learning of a navigator (also each DAgger round's retraining), data-parallel.

One process per GPU under ``torchrun`` (``torch.distributed``: NCCL on CUDA, gloo on the CPU),
or a plain single process. Every rank holds the whole dataset's frames on its device as uint8;
each optimizer step takes ``batch_size`` samples in a seeded order, split evenly over the ranks
(DDP averages the per-rank mean losses, which equals the single-process mean). Mixed precision
is bf16 autocast on CUDA. The schedule is AdamW with a linear warm-up over the first 3 % of the
steps and a cosine decay to 10 %. Logs go to ``<out>/train_log.jsonl`` (loss, action accuracy,
learning rate, throughput, and success rate on a few validation episodes when asked). The
model is saved in the released layout under ``<out>/model`` with the optimizer state beside it,
so a run stopped by its time budget resumes where it stopped (same sample order).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import pathlib
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import distributed as dist
from tqdm.auto import tqdm

from janusvln_ros.core.models import resolve_model_path
from janusvln_ros.model.checkpoint import load_checkpoint, save_checkpoint
from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.janusvln import JanusVLNForNavigation
from janusvln_ros.model.prompt import PromptBuilder
from janusvln_ros.model.tokenizer import load_bundled_tokenizer, load_tokenizer
from janusvln_ros.training.batch import PromptCache, sample_tuples
from janusvln_ros.training.dataset import load_datasets, NavigationData
from janusvln_ros.training.forward import NavigatorModule, trainable_groups
from janusvln_ros.training.state import has_trainer_state, load_trainer_state
from janusvln_ros.training.state import save_trainer_state
from janusvln_ros.training.tokens import navigator_token_map
from janusvln_ros.training.vision_attention import enable_training_vision_attention

logger = logging.getLogger(__name__)

MODEL_DIR = 'model'
LOG_NAME = 'train_log.jsonl'


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run.

    Attributes:
        data: Dataset directories (concatenated).
        out: Output directory (``model/``, trainer state, ``train_log.jsonl``).
        init: Checkpoint to start from ('' = a fresh ``small`` model).
        vggt_weights: Pretrained aggregator (``janusvln train geometry`` output) loaded into a
            fresh model ('' = keep the init's aggregator).
        epochs: Passes over the samples (when ``steps`` is 0).
        steps: Optimizer steps (0 = from ``epochs``).
        batch_size: Samples per optimizer step, over all ranks.
        lr: Learning rate of the LLM and ViT (and VGGT when trained).
        projector_lr: Learning rate of the mergers.
        weight_decay: AdamW weight decay.
        warmup: Fraction of the steps with a linear warm-up.
        grad_clip: Gradient-norm clip.
        seed: Seed of the init and of the sample order.
        max_minutes: Stop (and save) after this wall time; 0 = no limit. The run resumes.
        train_vggt: Train the aggregator too (ablation: VGGT from scratch).
        lam: Fusion weight during training (``None``: the model's 0.2; 0: no 3-D features).
        device: ``'cuda'``, ``'cpu'``...
        log_every: Steps between log lines.
        save_dtype: Dtype of the saved weights.
        eval_episodes: Episode JSON file for periodic success-rate checks ('' = none).
        eval_every: Steps between those checks (0 = only at the end).
        eval_count: Episodes per check.
        resume: Continue from ``out`` if it holds a trainer state.
    """

    data: tuple[str, ...]
    out: str
    init: str = ''
    vggt_weights: str = ''
    epochs: float = 1.0
    steps: int = 0
    batch_size: int = 64
    lr: float = 4e-4
    projector_lr: float = 4e-4
    weight_decay: float = 0.01
    warmup: float = 0.03
    grad_clip: float = 1.0
    seed: int = 0
    max_minutes: float = 0.0
    train_vggt: bool = False
    lam: float | None = None
    device: str = 'cuda'
    log_every: int = 20
    save_dtype: str = 'bfloat16'
    eval_episodes: str = ''
    eval_every: int = 0
    eval_count: int = 8
    resume: bool = True


def build_model(config: TrainConfig, tokenizer: Any) -> JanusVLNForNavigation:
    """The model to train: ``init`` if given, else a fresh ``small`` preset (seeded)."""
    if config.init:
        model, _ = load_checkpoint(resolve_model_path(config.init), 'cpu', progress=False)
    else:
        torch.manual_seed(config.seed)
        model = JanusVLNForNavigation.from_config(
            JanusVLNConfig.small(navigator_token_map(tokenizer)))
    if config.vggt_weights:
        load_aggregator(model, config.vggt_weights)
    return model


def start_tokenizer(config: TrainConfig) -> Any:
    """The ``init`` checkpoint's own tokenizer, else the bundled Qwen2 tokenizer."""
    if config.init:
        return load_tokenizer(resolve_model_path(config.init))
    return load_bundled_tokenizer()


def load_aggregator(model: JanusVLNForNavigation, path: str) -> None:
    """Load pretrained aggregator weights (``vggt.aggregator.*`` keys) into ``model``."""
    from safetensors.torch import load_file
    tensors = load_file(path)
    prefix = 'vggt.aggregator.'
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    model.vggt.aggregator.load_state_dict(state, strict=True)
    logger.info('loaded pretrained aggregator from %s (%d tensors)', path, len(state))


class Prefetcher:
    """Builds the next batches on a background thread while the device computes."""

    def __init__(self, make: Any, first: int, total: int, depth: int = 3) -> None:
        import queue
        import threading
        self._queue: Any = queue.Queue(maxsize=depth)
        self._stop = threading.Event()

        def run() -> None:
            for index in range(first, total):
                if self._stop.is_set():
                    return
                try:
                    item = make(index)
                except Exception as exc:  # surfaced in next()
                    self._queue.put(exc)
                    return
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue

        self._thread = threading.Thread(target=run, name='batch-prefetch', daemon=True)
        self._thread.start()

    def next(self) -> Any:
        """The next batch, in order (re-raises a failure of the builder)."""
        item = self._queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        """Stop the builder thread."""
        self._stop.set()
        self._thread.join(timeout=5)


def lr_factor(step: int, total: int, warmup: float, time_fraction: float = 0.0) -> float:
    """Linear warm-up, then cosine from 1 to 0.1.

    The cosine follows the step count or, when a time budget is set, the spent fraction of
    it, whichever is further along, so that a run ended by its budget has still annealed.
    """
    warm = max(1, int(total * warmup))
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, max((step - warm) / max(1, total - warm), time_fraction))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def sample_order(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The seeded permutation of epoch ``epoch``."""
    return np.random.default_rng([seed, epoch]).permutation(num_samples)


class DistContext:
    """Rank, world size and device of this process (``torchrun`` environment, or single)."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get('WORLD_SIZE', '1'))
        self.rank = int(os.environ.get('RANK', '0'))
        local = int(os.environ.get('LOCAL_RANK', '0'))
        if device.startswith('cuda'):
            torch.cuda.set_device(local)
            self.device = torch.device('cuda', local)
        else:
            self.device = torch.device(device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group('nccl' if self.device.type == 'cuda' else 'gloo')

    @property
    def main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    def any_true(self, flag: bool) -> bool:
        """Logical OR of ``flag`` over the ranks."""
        if self.world == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)


def wrap_ddp(module: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DDP around ``module`` when there is more than one rank."""
    if ctx.world == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel
    ids = [ctx.device.index] if ctx.device.type == 'cuda' else None
    return DistributedDataParallel(module, device_ids=ids)


def train(config: TrainConfig, data: NavigationData | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a training run; returns the final log record.

    Args:
        config: The run.
        data: Already loaded data (default: load ``config.data``).
        progress: Show a progress bar (rank 0).
    """
    ctx = DistContext(config.device)
    out = pathlib.Path(config.out)
    model_dir = out / MODEL_DIR
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
    tokenizer = start_tokenizer(config)
    resume = config.resume and has_trainer_state(model_dir)
    if resume:
        model, _ = load_checkpoint(model_dir, 'cpu', progress=False)
    else:
        model = build_model(config, tokenizer)
    if ctx.device.type == 'cuda':
        enable_training_vision_attention(model.qwen)
    model.to(ctx.device).train()
    data = data if data is not None else load_datasets(config.data, progress=ctx.main)
    frames = torch.from_numpy(data.frames).to(ctx.device)
    rows = data.samples()
    per_rank = config.batch_size // ctx.world
    if per_rank * ctx.world != config.batch_size:
        raise ValueError(f'batch_size {config.batch_size} is not divisible by {ctx.world} ranks')
    steps_per_epoch = max(1, len(rows) // config.batch_size)
    total = config.steps or max(1, int(round(config.epochs * steps_per_epoch)))
    groups = trainable_groups(model, config.lr, config.projector_lr, config.train_vggt)
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay, betas=(0.9, 0.98))
    step = 0
    if resume:
        info = load_trainer_state(model_dir, optimizer)
        step = int(info['step'])
        logger.info('resuming %s at step %d of %d', out, step, total)
    if config.lam is not None and config.lam != model.lam:
        # The checkpoint records the fusion weight it was trained with (0: without 3-D).
        model.config = dataclasses.replace(model.config, lam=float(config.lam))
        model.lam = float(config.lam)
    module = NavigatorModule(model, config.train_vggt, config.lam)
    wrapped = wrap_ddp(module, ctx)
    prompt = PromptBuilder(tokenizer)
    grid_h = data.frames.shape[1] // 14
    grid_w = data.frames.shape[2] // 14
    tokens = (grid_h // 2) * (grid_w // 2)
    cache = PromptCache(prompt, tokens, (1, grid_h // 2 * 2, grid_w // 2 * 2),
                        model.spatial_merge_size)
    autocast = (torch.autocast('cuda', dtype=torch.bfloat16) if ctx.device.type == 'cuda'
                else contextlib.nullcontext())
    log_path = out / LOG_NAME
    start = time.time()
    bar = tqdm(total=total, initial=step, desc='train', disable=not (progress and ctx.main))
    window: list[tuple[float, float, int]] = []
    window_start = time.time()
    record: dict[str, Any] = {}
    stop_early = False

    def make_batch(index: int) -> tuple[Any, int]:
        epoch, within = divmod(index, steps_per_epoch)
        order = sample_order(len(rows), config.seed, epoch)
        chosen = order[within * config.batch_size:(within + 1) * config.batch_size]
        mine = chosen[ctx.rank * per_rank:(ctx.rank + 1) * per_rank]
        return cache.collate(sample_tuples(data.paths, data.actions, rows[mine])), len(mine)

    prefetch = Prefetcher(make_batch, step, total)
    while step < total:
        batch, count = prefetch.next()
        batch = batch.to(ctx.device)
        spent = ((time.time() - start) / (config.max_minutes * 60)) if config.max_minutes else 0.0
        for group in optimizer.param_groups:
            base = config.lr if group.get('name') == 'main' else config.projector_lr
            group['lr'] = base * lr_factor(step, total, config.warmup, spent)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            result = wrapped(batch, frames)
        result['loss'].backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g['params']],
                                       config.grad_clip)
        optimizer.step()
        step += 1
        window.append((float(result['loss'].detach()),
                       float(result['correct'].float().mean()), count))
        bar.update(1)
        if step % config.log_every == 0 or step == total:
            elapsed = time.time() - start
            record = {'step': step, 'of': total, 'epoch': step / steps_per_epoch,
                      'loss': float(np.mean([w[0] for w in window])),
                      'accuracy': float(np.mean([w[1] for w in window])),
                      'lr': optimizer.param_groups[0]['lr'],
                      'samples_per_s': sum(w[2] for w in window) * ctx.world
                      / max(1e-9, time.time() - window_start),
                      'elapsed_s': elapsed}
            window = []
            window_start = time.time()
            bar.set_postfix(loss=f'{record["loss"]:.3f}', acc=f'{record["accuracy"]:.2f}')
            if (config.eval_every and step % config.eval_every == 0 and ctx.main
                    and config.eval_episodes):
                record['val'] = quick_success_rate(model, tokenizer, config, ctx.device)
                model.train()
            if ctx.main:
                with log_path.open('a') as f:
                    f.write(json.dumps(record) + '\n')
        if config.max_minutes and step < total:
            stop_early = ctx.any_true(time.time() - start > config.max_minutes * 60)
            if stop_early:
                break
    bar.close()
    prefetch.close()
    if ctx.main:
        save_run(model, tokenizer, optimizer, model_dir, config, step, total)
        if config.eval_episodes and not stop_early:
            record = dict(record, val=quick_success_rate(model, tokenizer, config, ctx.device))
            with log_path.open('a') as f:
                f.write(json.dumps(dict(record, final=True)) + '\n')
    if ctx.world > 1:
        dist.barrier()
    record['finished'] = step >= total
    return record


def save_run(model: JanusVLNForNavigation, tokenizer: Any, optimizer: torch.optim.Optimizer,
             model_dir: pathlib.Path, config: TrainConfig, step: int, total: int) -> None:
    """Save the weights (``config.save_dtype``) and the optimizer state."""
    import copy
    export = copy.deepcopy(model).to('cpu', getattr(torch, config.save_dtype))
    # Shards under 12 MiB: each file fits the GPU machine's 16 MiB transfer limit.
    save_checkpoint(export, tokenizer, model_dir, max_shard_bytes=12 * 1024 ** 2)
    info = {'step': step, 'total': total, 'config': dataclasses.asdict(config)}
    save_trainer_state(model_dir, optimizer, info)
    logger.info('saved %s at step %d of %d', model_dir, step, total)


def quick_success_rate(model: JanusVLNForNavigation, tokenizer: Any, config: TrainConfig,
                       device: torch.device) -> dict[str, float]:
    """SR / SPL of the current weights on the first ``eval_count`` episodes (parity, fp32)."""
    import copy

    from janusvln_ros.core.config import EngineConfig
    from janusvln_ros.core.engine import JanusVLNEngine
    from janusvln_ros.sim.episodes import load_episodes
    from janusvln_ros.sim.metrics import aggregate
    from janusvln_ros.sim.runner import LocalEvaluator
    from janusvln_ros.training.evaluate import EVAL_CAMERA
    episodes = load_episodes(config.eval_episodes)[:config.eval_count]
    clone = copy.deepcopy(model).float().eval().requires_grad_(False)
    engine = JanusVLNEngine(EngineConfig(engine='janusvln', device=str(device),
                                         fast_paths=False), model=clone, tokenizer=tokenizer)
    evaluator = LocalEvaluator(lambda _s: engine, EVAL_CAMERA, max_steps=200)
    try:
        runs = [evaluator.run(e) for e in episodes]
    finally:
        evaluator.close()
    agg = aggregate([r.metrics for r in runs])
    return {'SR': agg['SR'], 'SPL': agg['SPL'], 'NE': agg['NE'], 'episodes': len(runs)}


def parse_lam(text: str | None) -> float | None:
    """``'none'``/``''`` -> None, else a float."""
    if text is None or str(text).lower() in ('', 'none'):
        return None
    return float(text)


def train_from_args(data: Sequence[str], out: str, **kwargs: Any) -> dict[str, Any]:
    """Convenience wrapper for the CLI."""
    return train(TrainConfig(data=tuple(data), out=out, **kwargs))
