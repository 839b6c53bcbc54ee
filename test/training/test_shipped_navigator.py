"""End-to-end guard of the shipped navigator: engine, memories, prompt and checkpoint fit.

The first five ``val_unseen`` episodes (houses never used in training), run in process through
the real engine on 640x480 frames, deterministic on the CPU. The shipped model succeeds on 4 of
them (see bench/results/navigation.md for its success rate over the split); fewer than 3 means
something between the checkpoint and the engine changed.
"""

import random
from types import SimpleNamespace

import numpy as np
import pytest

from janusvln_ros.core.models import SHIPPED_NAVIGATOR, shipped_navigator_dir
from janusvln_ros.core.models import shipped_val_unseen_episodes
from janusvln_ros.core.types import Action
from janusvln_ros.sim.episodes import load_episodes
from janusvln_ros.sim.splits import generate_house_episodes
from janusvln_ros.training.dagger import rollout
from janusvln_ros.training.dataset import EnvPool, Recorder, RenderSpec
from janusvln_ros.training.evaluate import build_engine, EvalSpec, evaluate

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_shipped_checkpoint_is_small_and_named():
    files = list(shipped_navigator_dir().iterdir())
    assert sum(f.stat().st_size for f in files) <= 48 * 1024 ** 2
    assert not [f for f in files if f.suffix in ('.bin', '.pt', '.pth', '.pkl')]


def test_shipped_val_unseen_episodes_are_the_generated_split():
    shipped = load_episodes(shipped_val_unseen_episodes())
    assert len(shipped) == 200
    for seed in (5000, 5049):
        fresh = [e.to_dict() for e in generate_house_episodes('val_unseen', seed)]
        assert [e.to_dict() for e in shipped if e.house.seed == seed] == fresh


def test_shipped_navigator_reaches_the_goal_on_fixed_val_unseen_episodes():
    episodes = load_episodes(shipped_val_unseen_episodes())[:5]
    result = evaluate(EvalSpec(name='guard', checkpoint=SHIPPED_NAVIGATOR, max_steps=150),
                      episodes, workers=1, progress=False)
    successes = [e['episode_id'] for e in result['episodes'] if e['sr']]
    assert len(successes) >= 3, result['episodes']
    assert all(e['stopped'] for e in result['episodes'] if e['sr'])


def test_dagger_rollout_labels_visited_states_with_the_expert():
    episode = load_episodes(shipped_val_unseen_episodes())[1]
    spec = RenderSpec(max_steps=25)
    engine = build_engine(EvalSpec(name='learner', checkpoint=SHIPPED_NAVIGATOR))
    pool = EnvPool(spec.camera())
    try:
        expert_only = Recorder()
        summary = rollout(pool.get(episode.house), engine, episode, spec, 1.0,
                          random.Random(0), expert_only, 'dagger-r1')
        learner = Recorder()
        rollout(pool.get(episode.house), engine, episode, spec, 0.0, random.Random(0),
                learner, 'dagger-r1')
    finally:
        pool.close()
        engine.close()
    assert summary['steps'] == len(expert_only.frames) <= 25
    assert expert_only.paths[0]['source'] == 'dagger-r1'
    # with beta 1 the executed actions are the labels: the poses follow the expert's path
    assert 0.0 <= summary['agreement'] <= 1.0
    assert len(learner.frames) == len(learner.actions) == len(learner.poses)
    assert np.asarray(learner.frames[0]).shape == (168, 224, 3)


class _Spinner:
    """A learner that only ever turns left (the failure the spin cut is for)."""

    def reset(self, instruction: str) -> None:
        del instruction

    def step(self, rgb: np.ndarray) -> SimpleNamespace:
        del rgb
        return SimpleNamespace(action=Action.TURN_LEFT)


def test_dagger_rollout_ends_a_full_spin_in_place():
    episode = load_episodes(shipped_val_unseen_episodes())[1]
    spec = RenderSpec(max_steps=30)
    pool = EnvPool(spec.camera())
    try:
        cut, full = Recorder(), Recorder()
        spun = rollout(pool.get(episode.house), _Spinner(), episode, spec, 0.0,
                       random.Random(0), cut, 'dagger-r1', spin_limit=24)
        kept = rollout(pool.get(episode.house), _Spinner(), episode, spec, 0.0,
                       random.Random(0), full, 'dagger-r1', spin_limit=0)
    finally:
        pool.close()
    assert (spun['ended'], spun['steps'], len(cut.frames)) == ('spin', 24, 24)
    assert (kept['ended'], kept['steps'], len(full.frames)) == ('max_steps', 30, 30)
    # every visited state, the last included, carries the expert's label
    assert len(cut.actions) == 24 and not spun['stopped']
