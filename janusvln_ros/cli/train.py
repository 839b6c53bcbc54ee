"""``janusvln dataset|train|dagger|navbench``: from simulated data to a navigating checkpoint.

* ``janusvln dataset build --split train --out data/train --workers 16`` renders the expert
  trajectories of a split (``janusvln dataset info DIR`` prints a manifest);
* ``janusvln train geometry --data data/train --out runs/geometry`` pretrains the small VGGT
  aggregator on depth and relative pose;
* ``janusvln train navigator --data data/train --vggt-weights runs/geometry/...
  --out runs/il`` trains the navigator by imitation (``torchrun`` for several GPUs);
* ``janusvln dagger --checkpoint runs/il/model --round 1 --beta 0.5 --out data/dagger1``
  collects a DAgger round; retrain with ``--data data/train data/dagger1 --init runs/il/model``;
* ``janusvln navbench`` evaluates policies and checkpoints on the validation splits and writes
  ``bench/results/navigation.{json,md}``.

docs/training.md gives the full recipe and the exact commands used for the shipped model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dataset``, ``train``, ``dagger`` and ``navbench`` subcommands."""
    ds = subparsers.add_parser('dataset', help='build or inspect navigation datasets')
    ds_sub = ds.add_subparsers(dest='dataset_command', required=True)
    build = ds_sub.add_parser('build', help='render the expert trajectories of a split')
    build.add_argument('--split', required=True, choices=('train', 'val_seen', 'val_unseen'))
    build.add_argument('--out', required=True, help='dataset directory')
    build.add_argument('--workers', type=int, default=1, help='render processes')
    build.add_argument('--limit', type=int, default=0, help='first N episodes only')
    build.add_argument('--image-width', type=int, default=224, help="model's image width")
    build.add_argument('--paths-per-shard', type=int, default=16)
    build.set_defaults(func=run_dataset_build)
    info = ds_sub.add_parser('info', help='print a dataset manifest summary')
    info.add_argument('dir')
    info.set_defaults(func=run_dataset_info)
    episodes = ds_sub.add_parser('episodes', help='write the episodes of a split as JSON')
    episodes.add_argument('--split', required=True, choices=('train', 'val_seen', 'val_unseen'))
    episodes.add_argument('--out', required=True, help='output JSON file')
    episodes.add_argument('--workers', type=int, default=1)
    episodes.add_argument('--limit', type=int, default=0)
    episodes.set_defaults(func=run_dataset_episodes)

    tr = subparsers.add_parser('train', help='train the geometry encoder or the navigator')
    tr_sub = tr.add_subparsers(dest='train_command', required=True)
    geo = tr_sub.add_parser('geometry', help='pretrain the small VGGT aggregator')
    geo.add_argument('--data', nargs='+', required=True)
    geo.add_argument('--out', required=True)
    geo.add_argument('--steps', type=int, default=3000)
    geo.add_argument('--batch-size', type=int, default=32)
    geo.add_argument('--frames', type=int, default=8)
    geo.add_argument('--lr', type=float, default=3e-4)
    geo.add_argument('--max-minutes', type=float, default=0.0)
    geo.add_argument('--device', default='cuda')
    geo.add_argument('--seed', type=int, default=0)
    geo.set_defaults(func=run_train_geometry)
    nav = tr_sub.add_parser('navigator', help='imitation learning of the navigator')
    nav.add_argument('--data', nargs='+', required=True, help='dataset directories')
    nav.add_argument('--out', required=True)
    nav.add_argument('--init', default='', help='checkpoint to start from')
    nav.add_argument('--vggt-weights', default='', help='pretrained aggregator (.safetensors)')
    nav.add_argument('--epochs', type=float, default=1.0)
    nav.add_argument('--steps', type=int, default=0)
    nav.add_argument('--batch-size', type=int, default=64)
    nav.add_argument('--lr', type=float, default=4e-4)
    nav.add_argument('--projector-lr', type=float, default=4e-4)
    nav.add_argument('--max-minutes', type=float, default=0.0)
    nav.add_argument('--lam', default='none', help="training fusion weight ('none': 0.2)")
    nav.add_argument('--train-vggt', action='store_true', help='train VGGT too (ablation)')
    nav.add_argument('--device', default='cuda')
    nav.add_argument('--seed', type=int, default=0)
    nav.add_argument('--eval-episodes', default='', help='episode JSON for periodic SR')
    nav.add_argument('--eval-every', type=int, default=0)
    nav.add_argument('--eval-count', type=int, default=8)
    nav.add_argument('--no-resume', action='store_true')
    nav.set_defaults(func=run_train_navigator)

    dg = subparsers.add_parser('dagger', help='collect one DAgger round with a checkpoint')
    dg.add_argument('--checkpoint', required=True)
    dg.add_argument('--round', type=int, required=True)
    dg.add_argument('--beta', type=float, required=True, help='probability of the expert action')
    dg.add_argument('--out', required=True)
    dg.add_argument('--episodes-file', default='', help='episodes (default: the train split)')
    dg.add_argument('--limit', type=int, default=0,
                    help='a seeded subset of N episodes spread over the houses')
    dg.add_argument('--device', default='cpu')
    dg.add_argument('--workers', type=int, default=1)
    dg.add_argument('--seed', type=int, default=0)
    dg.add_argument('--stray-m', type=float, default=3.0,
                    help='end a rollout this far (geodesic m) above its best distance; 0: never')
    dg.add_argument('--spin-limit', type=int, default=24,
                    help='end a rollout after this many turns in a row; 0: never')
    dg.add_argument('--max-minutes', type=float, default=0.0,
                    help='start no new rollout after this wall time; 0: no limit')
    dg.add_argument('--episodes-per-shard', type=int, default=16)
    dg.set_defaults(func=run_dagger)


def _split_episodes(split: str, limit: int, workers: int, episodes_file: str = '') -> list:
    from janusvln_ros.sim.episodes import load_episodes
    from janusvln_ros.sim.splits import generate_split
    if episodes_file:
        episodes = load_episodes(episodes_file)
        return episodes[:limit] if limit else episodes
    return generate_split(split, limit=limit or None, workers=workers, progress=True)


def run_dataset_build(args: argparse.Namespace) -> int:
    """Render a split's expert dataset."""
    from janusvln_ros.training.dataset import RenderSpec, write_expert_dataset
    episodes = _split_episodes(args.split, args.limit, args.workers)
    manifest = write_expert_dataset(args.out, episodes, args.split,
                                    RenderSpec(image_width=args.image_width),
                                    workers=args.workers, paths_per_shard=args.paths_per_shard)
    sys.stdout.write(f'{args.out}: {manifest["num_paths"]} paths, {manifest["num_episodes"]} '
                     f'episodes, {manifest["num_frames"]} frames\n')
    return 0


def run_dataset_info(args: argparse.Namespace) -> int:
    """Print a dataset's manifest (without the shard list)."""
    from janusvln_ros.training.dataset import read_manifest
    manifest = read_manifest(args.dir)
    manifest = {k: v for k, v in manifest.items() if k != 'shards'}
    sys.stdout.write(json.dumps(manifest, indent=1) + '\n')
    return 0


def run_dataset_episodes(args: argparse.Namespace) -> int:
    """Write a split's episodes as JSON."""
    from janusvln_ros.sim.episodes import save_episodes
    episodes = _split_episodes(args.split, args.limit, args.workers)
    save_episodes(episodes, args.out)
    sys.stdout.write(f'{args.out}: {len(episodes)} episodes\n')
    return 0


def run_train_geometry(args: argparse.Namespace) -> int:
    """Geometry pretraining."""
    from janusvln_ros.training.geometry import GeometryConfig, pretrain_geometry
    record = pretrain_geometry(GeometryConfig(
        data=tuple(args.data), out=args.out, frames=args.frames, batch_size=args.batch_size,
        steps=args.steps, lr=args.lr, max_minutes=args.max_minutes, seed=args.seed,
        device=args.device))
    sys.stdout.write(json.dumps(record) + '\n')
    return 0


def run_train_navigator(args: argparse.Namespace) -> int:
    """Imitation learning (one DAgger retraining is the same command with more data)."""
    from janusvln_ros.training.trainer import parse_lam, train, TrainConfig
    record = train(TrainConfig(
        data=tuple(args.data), out=args.out, init=args.init, vggt_weights=args.vggt_weights,
        epochs=args.epochs, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        projector_lr=args.projector_lr, max_minutes=args.max_minutes,
        train_vggt=args.train_vggt, lam=parse_lam(args.lam), device=args.device,
        seed=args.seed, eval_episodes=args.eval_episodes, eval_every=args.eval_every,
        eval_count=args.eval_count, resume=not args.no_resume))
    sys.stdout.write(json.dumps(record) + '\n')
    return 0


def run_dagger(args: argparse.Namespace) -> int:
    """Collect one DAgger round."""
    from janusvln_ros.training.dagger import collect_dagger
    episodes = _split_episodes('train', 0, args.workers, args.episodes_file)
    if args.limit and args.limit < len(episodes):
        # A seeded subset spread over every house (the first N would cover few houses).
        import numpy as np
        keep = np.random.default_rng([args.seed, args.round]).choice(len(episodes), args.limit,
                                                                     replace=False)
        episodes = [episodes[i] for i in sorted(keep)]
    manifest = collect_dagger(args.out, episodes, args.checkpoint, args.round, args.beta,
                              device=args.device, workers=args.workers, seed=args.seed,
                              episodes_per_shard=args.episodes_per_shard, stray_m=args.stray_m,
                              spin_limit=args.spin_limit, max_minutes=args.max_minutes)
    sys.stdout.write(f'{args.out}: {manifest["num_episodes"]} rollouts, '
                     f'{manifest["num_frames"]} frames, learner agreement '
                     f'{manifest["learner_agreement"]:.3f}\n')
    return 0
