"""On-disk navigation datasets: expert (or DAgger) trajectories rendered in the built-in world.

Format ``janusvln-navigation-dataset`` version 1, one directory::

    dataset.json           format, version, split, camera, image size, counts, shard list
    shard-00000.npz        np.savez_compressed (zlib) arrays of the shard's frames, in order:
        frames   uint8   (N, h, w, 3)  camera frames after the model's resize (640x480 camera ->
                                       width ``image_width``, bicubic: exactly the engine's
                                       preprocessing before normalisation)
        depth    float16 (N, h/7, w/7) metric depth (m), box-averaged to 7-pixel cells
        actions  uint8   (N,)          expert action AT this frame (0 STOP, 1 MOVE_FORWARD,
                                       2 TURN_LEFT, 3 TURN_RIGHT); the frame is the observation
                                       before the action, as in the released recipe
        poses    float32 (N, 3)        ground-truth (x, y, yaw) of the camera's robot
    shard-00000.json       the shard's paths, in frame order: ``path_id``, ``house`` (HouseConfig
                           fields), ``start``, ``goal``, ``frame_offset`` and ``num_frames``
                           (within the shard), ``episodes`` (``episode_id``, ``instruction``,
                           ``style``) and ``source`` (``'expert'`` or ``'dagger-r<k>'``)

A path is one trajectory; its frames serve every instruction of its episodes (a coarse and a
fine instruction for the same path, for instance). Shards are written by parallel worker
processes (each renders whole houses with its own EGL context) and are reproducible bit for bit
from the episode list (same MuJoCo and Mesa/driver versions).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import pathlib
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from janusvln_ros.core.types import Action
from janusvln_ros.model.preprocess import resize_rgb
from janusvln_ros.sim.env import CameraConfig, Pose2D, SimEnv
from janusvln_ros.sim.episodes import Episode, house_for
from janusvln_ros.sim.policies import oracle_action
from janusvln_ros.sim.world import HouseConfig

logger = logging.getLogger(__name__)

FORMAT = 'janusvln-navigation-dataset'
VERSION = 1
DEPTH_CELL = 7
MANIFEST = 'dataset.json'


@dataclasses.dataclass(frozen=True)
class RenderSpec:
    """How frames are made.

    Attributes:
        image_width: The model's preprocessing width (frames are stored at it).
        camera_width: Rendered width (4:3 camera).
        camera_height: Rendered height.
        hfov_deg: Horizontal field of view.
        max_steps: Longest trajectory (frames), expert or learner.
    """

    image_width: int = 224
    camera_width: int = 640
    camera_height: int = 480
    hfov_deg: float = 79.0
    max_steps: int = 200

    def camera(self) -> CameraConfig:
        """The :class:`CameraConfig` rendered."""
        return CameraConfig(width=self.camera_width, height=self.camera_height,
                            hfov_deg=self.hfov_deg)


def path_key(episode: Episode) -> str:
    """The path an episode follows: its ``path_id`` if set, else its house, start and goal."""
    path_id = getattr(episode, 'path_id', '')
    if path_id:
        return path_id
    return f'{episode.house.seed}-{episode.start}-{episode.goal}'


def group_paths(episodes: Iterable[Episode]) -> list[list[Episode]]:
    """Episodes grouped by path, in first-seen order."""
    groups: dict[str, list[Episode]] = {}
    for episode in episodes:
        groups.setdefault(path_key(episode), []).append(episode)
    return list(groups.values())


def depth_cells(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Box-average a depth map to ``(height // 7, width // 7)`` float16 cells."""
    image = Image.fromarray(depth.astype(np.float32), mode='F')
    small = image.resize((width // DEPTH_CELL, height // DEPTH_CELL), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float16)


class Recorder:
    """Accumulates the frames of one shard."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.depth: list[np.ndarray] = []
        self.actions: list[int] = []
        self.poses: list[tuple[float, float, float]] = []
        self.paths: list[dict[str, Any]] = []

    def observe(self, env: SimEnv, spec: RenderSpec, action: int,
                rgb: np.ndarray | None = None) -> None:
        """Store the current frame (rendered now unless given) with its action label."""
        rgb = env.render() if rgb is None else rgb
        small = resize_rgb(rgb, spec.image_width)
        self.frames.append(small)
        self.depth.append(depth_cells(env.render_depth(), small.shape[0], small.shape[1]))
        self.actions.append(int(action))
        pose = env.pose
        self.poses.append((pose.x, pose.y, pose.yaw))

    def add_path(self, episodes: Sequence[Episode], offset: int, source: str,
                 extra: dict[str, Any] | None = None) -> None:
        """Record the metadata of the path whose frames start at ``offset``."""
        first = episodes[0]
        self.paths.append({
            'path_id': path_key(first), 'house': dataclasses.asdict(first.house),
            'start': list(first.start), 'goal': list(first.goal), 'frame_offset': offset,
            'num_frames': len(self.frames) - offset, 'source': source,
            'episodes': [{'episode_id': e.episode_id, 'instruction': e.instruction,
                          'style': getattr(e, 'style', '')} for e in episodes],
            **(extra or {})})

    def write(self, folder: pathlib.Path, index: int) -> dict[str, Any]:
        """Write ``shard-<index>.npz`` and ``.json``; return the shard summary."""
        name = f'shard-{index:05d}'
        frames = np.stack(self.frames) if self.frames else np.zeros((0, 1, 1, 3), np.uint8)
        depth = np.stack(self.depth) if self.depth else np.zeros((0, 1, 1), np.float16)
        np.savez_compressed(folder / f'{name}.npz', frames=frames, depth=depth,
                            actions=np.asarray(self.actions, np.uint8),
                            poses=np.asarray(self.poses, np.float32).reshape(-1, 3))
        (folder / f'{name}.json').write_text(json.dumps({'paths': self.paths}) + '\n')
        return {'name': name, 'frames': len(self.frames), 'paths': len(self.paths),
                'episodes': sum(len(p['episodes']) for p in self.paths)}


def expert_path(env: SimEnv, episodes: Sequence[Episode], spec: RenderSpec,
                recorder: Recorder) -> None:
    """Render the expert's trajectory of one path (to STOP or ``max_steps`` frames)."""
    episode = episodes[0]
    env.reset(episode.start_pose)
    offset = len(recorder.frames)
    for _ in range(spec.max_steps):
        action = oracle_action(episode, env.pose)
        recorder.observe(env, spec, int(action))
        if action == Action.STOP:
            break
        env.step(action)
    recorder.add_path(episodes, offset, 'expert')


class EnvPool:
    """One rendering :class:`SimEnv` per house, created on first use (one thread)."""

    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        self._envs: dict[HouseConfig, SimEnv] = {}

    def get(self, house: HouseConfig) -> SimEnv:
        """The environment of a house."""
        env = self._envs.get(house)
        if env is None:
            if len(self._envs) >= 4:  # houses come in order: keep the GL memory bounded
                old = next(iter(self._envs))
                self._envs.pop(old).close()
            env = SimEnv(house_for(house), self.camera)
            self._envs[house] = env
        return env

    def close(self) -> None:
        """Free every renderer."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def _expert_shard(job: tuple[str, int, list[list[dict[str, Any]]], dict[str, Any]]
                  ) -> dict[str, Any]:
    folder, index, paths, spec_fields = job
    spec = RenderSpec(**spec_fields)
    pool = EnvPool(spec.camera())
    recorder = Recorder()
    try:
        for path in paths:
            episodes = [Episode.from_dict(e) for e in path]
            expert_path(pool.get(episodes[0].house), episodes, spec, recorder)
    finally:
        pool.close()
    return recorder.write(pathlib.Path(folder), index)


def run_shards(worker: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], workers: int,
               progress: bool, desc: str) -> list[dict[str, Any]]:
    """Run shard jobs in ``workers`` spawned processes (in order of completion), with a bar."""
    results: list[dict[str, Any]] = []
    bar = tqdm(total=len(jobs), desc=desc, unit='shard', disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                results.append(worker(job))
                bar.update(1)
        else:
            ctx = multiprocessing.get_context('spawn')
            with ctx.Pool(workers) as pool:
                for summary in pool.imap_unordered(worker, jobs):
                    results.append(summary)
                    bar.update(1)
    finally:
        bar.close()
    return sorted(results, key=lambda s: s['name'])


def write_manifest(folder: pathlib.Path, split: str, spec: RenderSpec,
                   shards: Sequence[dict[str, Any]], extra: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Write ``dataset.json`` for the shards present."""
    manifest = {'format': FORMAT, 'version': VERSION, 'split': split,
                'render': dataclasses.asdict(spec), 'depth_cell': DEPTH_CELL,
                'shards': list(shards),
                'num_frames': sum(s['frames'] for s in shards),
                'num_paths': sum(s['paths'] for s in shards),
                'num_episodes': sum(s['episodes'] for s in shards), **(extra or {})}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + '\n')
    return manifest


def write_expert_dataset(folder: str | os.PathLike[str], episodes: Sequence[Episode],
                         split: str = '', spec: RenderSpec | None = None, workers: int = 1,
                         paths_per_shard: int = 16, progress: bool = True) -> dict[str, Any]:
    """Render the expert trajectories of ``episodes`` into a dataset directory.

    Args:
        folder: Output directory (created; existing shards are replaced).
        episodes: Episodes; those sharing a path are rendered once.
        split: Split name recorded in the manifest.
        spec: Render settings.
        workers: Worker processes (each with its own EGL context).
        paths_per_shard: Paths per shard file.
        progress: Show a progress bar.

    Returns:
        The manifest.
    """
    spec = spec or RenderSpec()
    out = pathlib.Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob('shard-*'):
        old.unlink()
    groups = group_paths(episodes)
    jobs = []
    for index, start in enumerate(range(0, len(groups), paths_per_shard)):
        paths = [[e.to_dict() for e in group] for group in groups[start:start + paths_per_shard]]
        jobs.append((str(out), index, paths, dataclasses.asdict(spec)))
    shards = run_shards(_expert_shard, jobs, workers, progress, f'expert {split}')
    manifest = write_manifest(out, split, spec, shards)
    logger.info('dataset %s: %d paths, %d episodes, %d frames in %d shards', out,
                manifest['num_paths'], manifest['num_episodes'], manifest['num_frames'],
                len(shards))
    return manifest


@dataclasses.dataclass
class NavigationData:
    """A dataset in memory (one or more directories concatenated).

    Attributes:
        frames: ``(N, h, w, 3)`` uint8.
        depth: ``(N, h/7, w/7)`` float16.
        actions: ``(N,)`` uint8 expert actions.
        poses: ``(N, 3)`` float32.
        paths: Path records (``frame_offset`` made global).
        image_width: Frame width.
    """

    frames: np.ndarray
    depth: np.ndarray
    actions: np.ndarray
    poses: np.ndarray
    paths: list[dict[str, Any]]
    image_width: int

    def samples(self) -> np.ndarray:
        """``(S, 3)`` int64 rows ``(path index, step, episode index within the path)``.

        One sample per frame and instruction: the prompt of step ``step`` of that path.
        """
        rows = [(p, t, e) for p, path in enumerate(self.paths)
                for e in range(len(path['episodes'])) for t in range(path['num_frames'])]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``dataset.json``.

    Raises:
        ValueError: Not a dataset of this format and version.
    """
    path = pathlib.Path(folder) / MANIFEST
    manifest = json.loads(path.read_text())
    if manifest.get('format') != FORMAT or manifest.get('version') != VERSION:
        raise ValueError(f'{path}: expected {FORMAT} version {VERSION}, got '
                         f'{manifest.get("format")!r} version {manifest.get("version")!r}')
    return manifest


def load_datasets(folders: Sequence[str | os.PathLike[str]],
                  progress: bool = False) -> NavigationData:
    """Load and concatenate dataset directories.

    Raises:
        ValueError: Unknown format, or directories with different frame widths.
    """
    frames, depth, actions, poses, paths = [], [], [], [], []
    width = None
    offset = 0
    shard_files = []
    for folder in folders:
        manifest = read_manifest(folder)
        w = int(manifest['render']['image_width'])
        if width is not None and w != width:
            raise ValueError(f'{folder}: image width {w} differs from {width}')
        width = w
        shard_files += [pathlib.Path(folder) / s['name'] for s in manifest['shards']]
    for base in tqdm(shard_files, desc='loading shards', disable=not progress):
        with np.load(f'{base}.npz') as data:
            frames.append(data['frames'])
            depth.append(data['depth'])
            actions.append(data['actions'])
            poses.append(data['poses'])
        for path in json.loads(pathlib.Path(f'{base}.json').read_text())['paths']:
            path = dict(path)
            path['frame_offset'] += offset
            paths.append(path)
        offset += len(frames[-1])
    if width is None:
        raise ValueError('no dataset directories given')
    return NavigationData(np.concatenate(frames), np.concatenate(depth),
                          np.concatenate(actions), np.concatenate(poses), paths, width)


def pose_of(path: dict[str, Any]) -> Pose2D:
    """The start pose of a path record."""
    return Pose2D(*path['start'])
