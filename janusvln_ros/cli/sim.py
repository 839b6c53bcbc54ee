"""``janusvln eval`` and ``janusvln demo``: episodes in the built-in MuJoCo world.

``eval`` runs a policy (the model, the shortest-path oracle, or random actions) on episodes, in
process or (``--ros``) through ``sim_bridge_node`` and the unmodified ``janusvln_node``, prints
a metrics table and writes ``metrics.json`` plus a top-down trajectory PNG per episode.

``demo`` brings up the world and the node, sends one episode's instruction through the node's
real ``set_instruction`` service, and leaves metrics, a trajectory PNG and a GIF of the camera
view in the output folder. By default both use the navigator shipped with the package
(``janusvln_ros:navigator``, trained in this world only) on a 640x480, HFOV 79 camera; the demo
runs a ``val_unseen`` episode (a house never used in training). ``--checkpoint tiny`` creates
the old untrained toy instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import shutil
import sys
import time

from janusvln_ros.core.models import SHIPPED_NAVIGATOR, shipped_val_unseen_episodes


logger = logging.getLogger(__name__)

DEMO_EPISODE = 'val_unseen-5000-s0-g0-coarse'


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` and ``demo`` subcommands."""
    ev = subparsers.add_parser('eval', help='run a policy on simulated episodes, print metrics')
    _common(ev, default_out='runs/eval', default_steps=500)
    ev.add_argument('--ros', action='store_true',
                    help='run through sim_bridge_node and janusvln_node (two processes)')
    ev.add_argument('--episodes', type=int, default=0,
                    help='run the first N episodes (default: all)')
    ev.add_argument('--episode-ids', default='', help='comma-separated episode ids to run')
    ev.add_argument('--policy', choices=('model', 'oracle', 'random'), default='oracle')
    ev.add_argument('--gif', action='store_true', help='also write a camera GIF per episode')
    ev.set_defaults(func=run_eval)

    demo = subparsers.add_parser(
        'demo', help='world + janusvln_node + one instruction; writes metrics, PNG and GIF')
    _common(demo, default_out='runs/demo', default_steps=150,
            default_checkpoint=SHIPPED_NAVIGATOR)
    demo.add_argument('--episode', default=DEMO_EPISODE, help='episode id to run')
    demo.add_argument('--policy', choices=('model', 'oracle', 'random'), default='model',
                      help='engine inside the node (default: the model)')
    demo.set_defaults(func=run_demo, ros=True)


def _common(parser: argparse.ArgumentParser, default_out: str, default_steps: int,
            default_checkpoint: str = '') -> None:
    parser.add_argument('--checkpoint', default=default_checkpoint,
                        help=f'checkpoint directory of the model policy, {SHIPPED_NAVIGATOR!r} '
                        "(the navigator trained in this world) or 'tiny' (an untrained toy); "
                        f'default {default_checkpoint or SHIPPED_NAVIGATOR!r}')
    parser.add_argument('--device', default='cpu', help='torch device of the model')
    parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16', 'float16'),
                        help='model dtype (bfloat16 for a real checkpoint on a GPU)')
    parser.add_argument('--mode', default='parity', choices=('parity', 'streaming'),
                        help='semantic memory mode of the model engine')
    parser.add_argument('--episodes-file', default='', help='episode JSON (default: built-in)')
    parser.add_argument('--max-steps', type=int, default=default_steps,
                        help=f'most actions per episode (default {default_steps})')
    parser.add_argument('--out', default=default_out, help=f'output folder ({default_out})')
    parser.add_argument('--width', type=int, default=640, help='camera width in pixels')
    parser.add_argument('--height', type=int, default=480,
                        help='camera height in pixels (4:3 at HFOV 79, as trained)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random policy')


def _select(args: argparse.Namespace) -> list:
    from janusvln_ros.sim.episodes import find_episode, load_episodes
    episodes = load_episodes(args.episodes_file or None)
    if getattr(args, 'episode_ids', ''):
        episodes = [find_episode(episodes, e.strip()) for e in args.episode_ids.split(',')]
    elif getattr(args, 'episodes', 0):
        episodes = episodes[:args.episodes]
    return episodes


def tiny_checkpoint_dir() -> pathlib.Path:
    """Where ``demo`` keeps its tiny checkpoint: ``$XDG_CACHE_HOME/janusvln_ros`` (~/.cache)."""
    cache = os.environ.get('XDG_CACHE_HOME') or str(pathlib.Path.home() / '.cache')
    return pathlib.Path(cache) / 'janusvln_ros' / 'tiny_checkpoint'


def ensure_tiny_checkpoint(directory: pathlib.Path) -> pathlib.Path:
    """Create a tiny random (primed, untrained) checkpoint in ``directory`` unless one is there.

    Returns:
        ``directory``.
    """
    if (directory / 'config.json').exists():
        return directory
    from janusvln_ros.model.priming import init_tiny_checkpoint
    sys.stderr.write(f'Creating a tiny untrained checkpoint in {directory} ...\n')
    partial = directory.with_name(directory.name + f'.partial{os.getpid()}')
    directory.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    init_tiny_checkpoint(partial)
    partial.replace(directory)
    return directory


def _engine_params(args: argparse.Namespace, out: pathlib.Path) -> dict[str, str]:
    if args.policy == 'oracle':
        return {'engine': 'janusvln_ros.sim.policies:OracleEngine',
                'script': f'pose_file={out / "pose.json"};episodes={args.episodes_file}'}
    if args.policy == 'random':
        return {'engine': 'janusvln_ros.sim.policies:RandomEngine', 'script': f'seed={args.seed}'}
    return {'engine': 'janusvln', 'model_path': args.checkpoint}


def _table(runs: list, aggregate: dict) -> str:
    lines = [f'{"episode":8} {"steps":>5} {"stop":>4} {"NE":>6} {"SR":>4} {"OS":>4} '
             f'{"SPL":>5} {"nDTW":>5} {"TL":>6} {"geo":>6}']
    for run in runs:
        m = run.metrics
        lines.append(f'{run.episode.episode_id:8} {m.steps:5d} {"yes" if m.stopped else "no":>4} '
                     f'{m.ne:6.2f} {m.sr:4.0f} {m.os:4.0f} {m.spl:5.2f} {m.ndtw:5.2f} '
                     f'{m.path_length:6.2f} {m.geodesic_start:6.2f}')
    if runs:
        a = aggregate
        lines.append(f'{"mean":8} {a["steps"]:5.1f} {"":>4} {a["NE"]:6.2f} {a["SR"]:4.2f} '
                     f'{a["OS"]:4.2f} {a["SPL"]:5.2f} {a["nDTW"]:5.2f} {a["TL"]:6.2f}')
    return '\n'.join(lines)


def _write_outputs(runs: list, out: pathlib.Path, args: argparse.Namespace,
                   extra: dict | None = None, gif: bool = False) -> dict:
    from janusvln_ros.sim.metrics import aggregate
    from janusvln_ros.sim.render import save_gif, top_down_map
    agg = aggregate([r.metrics for r in runs])
    for run in runs:
        e = run.episode
        m = run.metrics
        title = (f'{e.episode_id} {args.policy}: NE {m.ne:.2f} m, SR {m.sr:.0f}, '
                 f'SPL {m.spl:.2f}, nDTW {m.ndtw:.2f}')
        top_down_map(e, run.poses, title=title).save(out / f'{e.episode_id}_topdown.png')
        if gif and run.frames:
            save_gif(run.frames, out / f'{e.episode_id}_camera.gif')
    report = {'policy': args.policy, 'ros': bool(getattr(args, 'ros', False)),
              'checkpoint': args.checkpoint, 'aggregate': agg,
              'episodes': [r.summary() for r in runs], **(extra or {})}
    (out / 'metrics.json').write_text(json.dumps(report, indent=1) + '\n')
    return agg


def run_eval(args: argparse.Namespace) -> int:
    """``janusvln eval``."""
    from janusvln_ros.sim.env import CameraConfig
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.policy == 'model' and not args.checkpoint:
        args.checkpoint = SHIPPED_NAVIGATOR
        sys.stderr.write(f'Model: the shipped navigator ({SHIPPED_NAVIGATOR}), trained in this '
                         'simulated world only\n')
    episodes = _select(args)
    camera = CameraConfig(args.width, args.height)
    if args.ros:
        runs = _run_ros(args, episodes, camera, out, keep_frames=args.gif)
    else:
        from janusvln_ros.sim.runner import engine_factory, LocalEvaluator
        factory = engine_factory(args.policy, args.checkpoint, args.device, args.seed,
                                 args.episodes_file, dtype=args.dtype, mode=args.mode)
        evaluator = LocalEvaluator(factory, camera, args.max_steps,
                                   frame_every=1 if args.gif else 0,
                                   render=args.policy == 'model' or args.gif)
        try:
            runs = [evaluator.run(e) for e in episodes]
        finally:
            evaluator.close()
    agg = _write_outputs(runs, out, args, gif=args.gif)
    sys.stdout.write(_table(runs, agg) + '\n')
    sys.stdout.write(f'wrote {out / "metrics.json"} and {len(runs)} trajectory PNGs\n')
    return 0


def _run_ros(args: argparse.Namespace, episodes: list, camera, out: pathlib.Path,
             keep_frames: bool, progress: bool = False) -> list:
    """Run episodes through the two nodes; stops both nodes before returning."""
    import rclpy
    from janusvln_ros.sim.ros_runner import init_ros, RosEpisodeClient, RosStack, StackConfig
    params = _engine_params(args, out.resolve())
    stack = RosStack(StackConfig(
        engine=params['engine'], model_path=params.get('model_path', ''),
        script=params.get('script', ''), device=args.device, dtype=args.dtype, mode=args.mode,
        episodes_file=args.episodes_file,
        camera=camera, pose_file=str(out.resolve() / 'pose.json'), max_steps=args.max_steps,
        log_dir=str(out)))
    init_ros()
    client = RosEpisodeClient(keep_frames=keep_frames)
    runs = []
    bar = None
    try:
        stack.start(episodes[0].episode_id)
        client.wait_ready(alive=stack.check_alive)
        for episode in episodes:
            on_step = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=args.max_steps, desc=episode.episode_id, unit='step')
                on_step = _bar_update(bar)
            runs.append(client.run(episode, args.max_steps, alive=stack.check_alive,
                                   on_step=on_step))
            if bar is not None:
                bar.close()
                bar = None
    finally:
        if bar is not None:
            bar.close()
        codes = stack.stop()
        client.destroy_node()
        rclpy.try_shutdown()
        logger.info('node exit codes: %s', codes)
    return runs


def _bar_update(bar):
    from janusvln_ros.core.types import Action

    def update(step: int, action: int) -> None:
        bar.n = step
        bar.set_postfix_str(Action(action).name)
        bar.refresh()
    return update


def run_demo(args: argparse.Namespace) -> int:
    """``janusvln demo``."""
    from janusvln_ros.sim.env import CameraConfig
    from janusvln_ros.sim.episodes import find_episode, load_episodes
    from janusvln_ros.sim.render import save_gif
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.policy == 'model' and args.checkpoint == 'tiny':
        args.checkpoint = str(ensure_tiny_checkpoint(tiny_checkpoint_dir()).resolve())
        sys.stderr.write('Note: the tiny checkpoint is untrained: the robot moves, it does not '
                         'navigate.\n')
    elif args.policy == 'model':
        sys.stderr.write(f'Model: {args.checkpoint}'
                         + (' (trained in this simulated world only; not a real-world model)'
                            if args.checkpoint == SHIPPED_NAVIGATOR else '') + '\n')
    if not args.episodes_file and args.episode.startswith('val_unseen-'):
        args.episodes_file = str(shipped_val_unseen_episodes())
    episode = find_episode(load_episodes(args.episodes_file or None), args.episode)
    sys.stderr.write(f'Episode {episode.episode_id}: "{episode.instruction}"\n')
    start = time.monotonic()
    runs = _run_ros(args, [episode], CameraConfig(args.width, args.height), out,
                    keep_frames=True, progress=True)
    run = runs[0]
    _write_outputs(runs, out, args, extra={'wall_s': time.monotonic() - start})
    gif = out / 'camera.gif'
    if run.frames:
        save_gif(run.frames, gif)
    (out / f'{episode.episode_id}_topdown.png').replace(out / 'trajectory.png')
    m = run.metrics
    sys.stdout.write(_table(runs, {'steps': m.steps, 'NE': m.ne, 'SR': m.sr, 'OS': m.os,
                                   'SPL': m.spl, 'nDTW': m.ndtw, 'TL': m.path_length}) + '\n')
    sys.stdout.write(f'{"stopped by the policy" if m.stopped else "not stopped"} after '
                     f'{m.steps} steps in {time.monotonic() - start:.0f} s\n'
                     f'wrote {out / "metrics.json"}, {out / "trajectory.png"}'
                     f'{", " + str(gif) if run.frames else ""}\n')
    return 0
