"""``janusvln checkpoint``: write tiny test checkpoints and inspect checkpoint sizes.

* ``janusvln checkpoint init-tiny DIR [--seed N] [--no-prime]`` writes a random tiny checkpoint
  in the released layout. By default it then runs a short seeded "priming" fit on the CPU so the
  toy model answers with well-formed action words that depend on the frame's colour (see
  :mod:`janusvln_ros.model.priming`; it is NOT trained for navigation).
* ``janusvln checkpoint inspect DIR|--preset NAME [--json]`` prints parameter counts per component
  (LLM, vision tower, VGGT aggregator, merger). It builds the network on the meta device from the
  config alone (no weights are read), so ``--preset real`` answers in about a second.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
import time
from typing import Any

logger = logging.getLogger(__name__)

ROWS = (('llm', 'LLM (decoder + embeddings + LM head)'),
        ('vision_tower', 'Qwen vision tower (incl. patch merger)'),
        ('qwen2_5_vl', 'Qwen2.5-VL total'),
        ('vggt_aggregator', 'VGGT aggregator'),
        ('merger', 'fusion merger (VGGTMerger)'),
        ('total', 'total'))


def _human(n: int) -> str:
    if n >= 10 ** 9:
        return f'{n / 1e9:.2f} B'
    if n >= 10 ** 6:
        return f'{n / 1e6:.1f} M'
    return f'{n / 1e3:.1f} K'


def run_init_tiny(args: argparse.Namespace) -> int:
    """Write a tiny checkpoint (primed unless ``--no-prime``)."""
    import torch

    from janusvln_ros.model.priming import init_tiny_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    stats = init_tiny_checkpoint(pathlib.Path(args.dir), seed=args.seed, prime=not args.no_prime)
    took = time.perf_counter() - start
    sys.stdout.write(f'wrote tiny checkpoint to {args.dir} in {took:.1f} s (seed {args.seed})\n')
    if stats:
        sys.stdout.write(f'priming: loss {stats["loss_first"]:.3f} -> {stats["loss_last"]:.3f}, '
                         f'first-token accuracy {stats["train_accuracy"]:.2f} (a toy: answers '
                         'by frame colour, untrained for navigation)\n')
    else:
        sys.stdout.write('not primed: the random model answers junk, which parses to STOP\n')
    return 0


def inspect_counts(source: str, preset: bool) -> dict[str, Any]:
    """Parameter counts of a checkpoint directory or preset, built on the meta device."""
    import torch

    from janusvln_ros.model.checkpoint import load_config
    from janusvln_ros.model.config import JanusVLNConfig
    from janusvln_ros.model.janusvln import JanusVLNForNavigation, parameter_counts

    config = JanusVLNConfig.preset(source) if preset else load_config(source)
    with torch.device('meta'):
        model = JanusVLNForNavigation(config)
    result: dict[str, Any] = {'source': f'preset:{source}' if preset else str(source),
                              'parameters': parameter_counts(model),
                              'lam': config.lam, 'output_layer': config.output_layer,
                              'image_width': config.image_width}
    if not preset:
        index = pathlib.Path(source) / 'model.safetensors.index.json'
        if index.is_file():
            data = json.loads(index.read_text(encoding='utf-8'))
            result['shards'] = len(set(data.get('weight_map', {}).values()))
            result['tensors_on_disk'] = len(data.get('weight_map', {}))
            result['bytes_on_disk'] = int(data.get('metadata', {}).get('total_size', 0))
    return result


def run_inspect(args: argparse.Namespace) -> int:
    """Print parameter counts as a table or JSON."""
    from janusvln_ros.model.config import CheckpointError

    if (args.dir is None) == (args.preset is None):
        sys.stderr.write('error: give either a checkpoint DIR or --preset NAME\n')
        return 2
    try:
        result = inspect_counts(args.preset or args.dir, preset=args.preset is not None)
    except CheckpointError as exc:
        sys.stderr.write(f'error: {exc}\n')
        return 1
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + '\n')
        return 0
    counts = result['parameters']
    lines = [f'{result["source"]}', f'{"component":<42}{"parameters":>16}{"":>4}']
    for key, label in ROWS:
        lines.append(f'{label:<42}{counts[key]:>16,}  {_human(counts[key]):>9}')
    for key in ('shards', 'tensors_on_disk', 'bytes_on_disk'):
        if key in result:
            lines.append(f'{key.replace("_", " "):<42}{result[key]:>16,}')
    sys.stdout.write('\n'.join(lines) + '\n')
    return 0


def register(subparsers: Any) -> None:
    """Add ``checkpoint init-tiny`` and ``checkpoint inspect``."""
    parser = subparsers.add_parser('checkpoint', help='tiny test checkpoints, parameter counts')
    sub = parser.add_subparsers(dest='checkpoint_command', required=True)
    init = sub.add_parser('init-tiny', help='write a random (primed) tiny checkpoint')
    init.add_argument('dir', help='output directory')
    init.add_argument('--seed', type=int, default=0, help='seed of the init and priming')
    init.add_argument('--no-prime', action='store_true',
                      help='skip the priming fit (the model then answers junk -> STOP)')
    init.add_argument('--threads', type=int, default=0,
                      help='torch CPU threads (default: torch default)')
    init.set_defaults(func=run_init_tiny)
    insp = sub.add_parser('inspect', help='parameter counts per component')
    insp.add_argument('dir', nargs='?', default=None, help='checkpoint directory')
    insp.add_argument('--preset', choices=('tiny', 'real'), default=None,
                      help='inspect a preset instead of a directory')
    insp.add_argument('--json', action='store_true', help='print JSON')
    insp.set_defaults(func=run_inspect)
