"""Navigation benchmark: NE, SR, OS, SPL, nDTW (and SR at 1 m) on the validation splits.

Two verbs, so that rows can run in parallel processes or on another machine:

* ``python bench/navigation.py row --name NAME --split val_unseen --episodes FILE
  [--policy model --checkpoint DIR --mode parity --anchors 8 --window 48 --lam 0.2]
  --json OUT.json`` evaluates one configuration (through the real engine for models) and
  writes its aggregate and per-episode results;
* ``python bench/navigation.py subset ROW.json --first N --name NAME --json OUT.json`` keeps a
  row's first N episodes (to compare with rows run on N);
* ``python bench/navigation.py report ROW.json ... --out bench/results/navigation`` merges rows
  into ``navigation.json`` and ``navigation.md`` and prints the table.

Without ``--episodes`` the split is generated (``janusvln_ros.sim.splits``). ``--limit N`` runs
the first N episodes of the split (documented in the row).
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from janusvln_ros.sim.episodes import load_episodes  # noqa: E402
from janusvln_ros.training.evaluate import EvalSpec, evaluate  # noqa: E402

logger = logging.getLogger('bench.navigation')
METRICS = ('SR', 'SR_1m', 'OS', 'SPL', 'nDTW', 'NE', 'TL', 'steps')


def run_row(args: argparse.Namespace) -> int:
    """Evaluate one configuration and write its JSON."""
    if args.episodes:
        episodes = load_episodes(args.episodes)
    else:
        from janusvln_ros.sim.splits import generate_split
        episodes = generate_split(args.split, workers=args.workers)
    if args.limit:
        episodes = episodes[:args.limit]
    lam = None if args.lam in ('', 'none') else float(args.lam)
    spec = EvalSpec(name=args.name, policy=args.policy, checkpoint=args.checkpoint,
                    mode=args.mode, anchors=args.anchors, window=args.window, lam=lam,
                    device=args.device, max_steps=args.max_steps, seed=args.seed)
    start = time.time()
    result = evaluate(spec, episodes, workers=args.workers, progress=not args.quiet)
    result.update({'split': args.split, 'wall_s': time.time() - start,
                   'note': args.note, 'limit': args.limit})
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps(result) + '\n')
    agg = result['aggregate']
    sys.stdout.write(f'{args.name} [{args.split}, {agg["episodes"]} episodes]: '
                     + ', '.join(f'{k} {agg[k]:.3f}' for k in METRICS if k in agg) + '\n')
    return 0


def table(rows: list[dict]) -> str:
    """Markdown table of rows (one line per row)."""
    head = ('| row | split | episodes | ' + ' | '.join(METRICS) + ' | mode | memory | lam |\n'
            '|---|---|---|' + '---|' * len(METRICS) + '---|---|---|\n')
    lines = []
    for row in rows:
        agg, spec = row['aggregate'], row['spec']
        model = spec['policy'] == 'model'
        lam = '' if not model else ('ckpt' if spec['lam'] is None else f'{spec["lam"]:g}')
        lines.append(f'| {spec["name"]} | {row["split"]} | {agg["episodes"]} | '
                     + ' | '.join(f'{agg[m]:.2f}' for m in METRICS) + ' | '
                     + (spec['mode'] if model else '') + ' | '
                     + (f'{spec["anchors"]}+{spec["window"]}' if model else '') + f' | {lam} |')
    return head + '\n'.join(lines) + '\n'


def run_report(args: argparse.Namespace) -> int:
    """Merge row files into the JSON and Markdown report."""
    rows = [json.loads(pathlib.Path(p).read_text()) for p in args.rows]
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    slim = [{k: v for k, v in r.items() if k != 'episodes'} | {
        'episodes': [{k: v for k, v in e.items() if k != 'actions'} for e in r['episodes']]}
        for r in rows]
    out.with_suffix('.json').write_text(json.dumps({'rows': slim}, indent=1) + '\n')
    text = table(rows)
    intro = pathlib.Path(args.intro).read_text() if args.intro else ''
    out.with_suffix('.md').write_text(intro + text)
    sys.stdout.write(text)
    return 0


def run_subset(args: argparse.Namespace) -> int:
    """A row restricted to its first N episodes (to compare with rows run on N)."""
    import dataclasses

    import numpy as np

    from janusvln_ros.sim.metrics import aggregate, EpisodeMetrics
    row = json.loads(pathlib.Path(args.row).read_text())
    episodes = row['episodes'][:args.first]
    fields = {f.name for f in dataclasses.fields(EpisodeMetrics)}
    agg = aggregate([EpisodeMetrics(**{k: v for k, v in e.items() if k in fields})
                     for e in episodes])
    agg['SR_1m'] = float(np.mean([e['sr_1m'] for e in episodes]))
    row.update(aggregate=agg, episodes=episodes, limit=args.first,
               note=f'first {args.first} episodes of {args.row}')
    row['spec']['name'] = args.name
    pathlib.Path(args.json).write_text(json.dumps(row) + '\n')
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='verb', required=True)
    row = sub.add_parser('row')
    row.add_argument('--name', required=True)
    row.add_argument('--split', required=True, choices=('val_seen', 'val_unseen', 'train'))
    row.add_argument('--episodes', default='', help='episode JSON (default: generate)')
    row.add_argument('--policy', default='model', choices=('model', 'oracle', 'random'))
    row.add_argument('--checkpoint', default='')
    row.add_argument('--mode', default='parity', choices=('parity', 'streaming'))
    row.add_argument('--anchors', type=int, default=8)
    row.add_argument('--window', type=int, default=48)
    row.add_argument('--lam', default='none')
    row.add_argument('--device', default='cpu')
    row.add_argument('--workers', type=int, default=1)
    row.add_argument('--limit', type=int, default=0)
    row.add_argument('--max-steps', type=int, default=200)
    row.add_argument('--seed', type=int, default=0)
    row.add_argument('--note', default='')
    row.add_argument('--quiet', action='store_true')
    row.add_argument('--json', required=True)
    row.set_defaults(func=run_row)
    subset = sub.add_parser('subset')
    subset.add_argument('row')
    subset.add_argument('--first', type=int, required=True)
    subset.add_argument('--name', required=True)
    subset.add_argument('--json', required=True)
    subset.set_defaults(func=run_subset)
    rep = sub.add_parser('report')
    rep.add_argument('rows', nargs='+')
    rep.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'navigation'))
    rep.add_argument('--intro', default='', help='Markdown placed above the table')
    rep.set_defaults(func=run_report)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='[%(levelname)s] %(name)s: %(message)s')
    return int(args.func(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
