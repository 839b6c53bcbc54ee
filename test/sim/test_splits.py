"""Episode splits: fixed seed ranges, deterministic generation, disjointness, well-formed paths."""

import math

import numpy as np
import pytest

from janusvln_ros.sim.episodes import (Episode, field_for, house_for, navmap_for,
                                       save_episodes)
from janusvln_ros.sim.metrics import aggregate
from janusvln_ros.sim.runner import engine_factory, LocalEvaluator
from janusvln_ros.sim.splits import (generate_house_episodes, generate_split, house_config,
                                     LAYOUTS, MAX_DISTANCE_M, MIN_DISTANCE_M,
                                     split_house_seeds, SPLIT_SIZES, SPLITS,
                                     VAL_SEEN_MIN_START_GAP_M)

# One house of each layout per split (seed % 5 picks the layout).
FEW = {'train': range(1000, 1005), 'val_seen': range(1000, 1005),
       'val_unseen': range(5000, 5005)}


@pytest.fixture(scope='module')
def generated():
    """``{split: {seed: episodes}}`` for a few houses of each split."""
    return {split: {seed: generate_house_episodes(split, seed) for seed in seeds}
            for split, seeds in FEW.items()}


def test_seed_ranges_are_fixed_and_disjoint():
    train, seen, unseen = (split_house_seeds(s) for s in SPLITS)
    assert train == list(range(1000, 1240)) and unseen == list(range(5000, 5050))
    assert seen == train[:50]
    assert not set(unseen) & set(train)
    # The documented sizes: paths x 2 styles.
    sizes = {s: len(split_house_seeds(s)) * SPLIT_SIZES[s][0] * SPLIT_SIZES[s][1] * 2
             for s in SPLITS}
    assert sizes == {'train': 2880, 'val_seen': 200, 'val_unseen': 200}
    with pytest.raises(ValueError):
        split_house_seeds('test')
    with pytest.raises(ValueError):
        generate_house_episodes('val', 1000)


def test_house_config_varies_the_layout_deterministically():
    configs = [house_config(seed) for seed in range(1000, 1010)]
    assert configs == [house_config(seed) for seed in range(1000, 1010)]
    assert {(c.rows, c.cols) for c in configs} == set(LAYOUTS)
    assert all(c.room_size == 4.0 and c.seed == s for c, s in zip(configs, range(1000, 1010)))


def test_generation_is_deterministic(generated):
    again = generate_house_episodes('train', 1003)
    assert [e.to_dict() for e in again] == [e.to_dict() for e in generated['train'][1003]]


def test_worker_count_does_not_change_the_result(generated):
    """Spawned workers also run under other hash seeds: nothing may depend on them."""
    one = generate_split('val_unseen', limit=6, workers=1)
    two = generate_split('val_unseen', limit=6, workers=2)
    assert len(one) == 6
    assert [e.to_dict() for e in one] == [e.to_dict() for e in two]
    assert one[:4] == generated['val_unseen'][5000]


def test_sizes_ids_and_styles(generated):
    for split, houses in generated.items():
        starts, goals = SPLIT_SIZES[split]
        for seed, episodes in houses.items():
            assert len(episodes) == starts * goals * 2
            for k, e in enumerate(episodes):
                path = k // 2
                path_id = f'{split}-{seed}-s{path // goals}-g{path % goals}'
                style = ('coarse', 'fine')[k % 2]
                assert e.episode_id == f'{path_id}-{style}'
                assert (e.split, e.style, e.path_id) == (split, style, path_id)
                assert e.house == house_config(seed)
            for coarse, fine in zip(episodes[::2], episodes[1::2]):
                assert coarse.instruction != fine.instruction
                assert coarse.start == fine.start and coarse.goal == fine.goal
                assert coarse.reference_path == fine.reference_path


def test_different_goals_from_each_start(generated):
    for houses in generated.values():
        for episodes in houses.values():
            by_start: dict = {}
            for e in episodes[::2]:
                by_start.setdefault(e.start, []).append(e.goal_object)
            for goals in by_start.values():
                assert len(goals) == len(set(goals)) >= 2


def test_val_seen_paths_are_new(generated):
    for seed, seen in generated['val_seen'].items():
        train = generated['train'][seed]
        assert not {(e.start, e.goal_object) for e in seen} & {
            (e.start, e.goal_object) for e in train}
        for e in seen:
            assert min(math.dist(e.start[:2], t.start[:2]) for t in train) >= \
                VAL_SEEN_MIN_START_GAP_M


def test_episodes_are_well_formed(generated):
    for houses in generated.values():
        for episodes in houses.values():
            for e in episodes:
                house, navmap = house_for(e.house), navmap_for(e.house)
                goal_obj = house.object_by_name(e.goal_object)
                start_room = house.room_at(*e.start[:2])
                assert house.rooms[goal_obj.room].kind == e.goal_room != start_room.kind
                assert round(math.degrees(e.start[2]), 4) % 15 == 0
                j, i = navmap.cell_of(*e.start[:2])
                assert navmap.free[j - 6:j + 7, i - 6:i + 7].all()  # 0.3 m clearance
                assert navmap.is_free(*e.goal)
                assert MIN_DISTANCE_M <= e.geodesic_distance <= MAX_DISTANCE_M
                assert field_for(e).distance(*e.start[:2]) == pytest.approx(
                    e.geodesic_distance, abs=1e-3)
                ref = e.reference_positions()
                assert np.allclose(ref[0], e.start[:2]) and math.dist(ref[-1], e.goal) < 0.05
                length = float(np.linalg.norm(np.diff(ref, axis=0), axis=1).sum())
                assert length == pytest.approx(e.geodesic_distance, rel=0.04)
                assert Episode.from_dict(e.to_dict()) == e


def test_optional_fields_stay_out_of_older_dicts(generated):
    e = generated['val_unseen'][5000][0]
    plain = Episode.from_dict({k: v for k, v in e.to_dict().items()
                               if k not in ('split', 'style', 'path_id')})
    assert plain.split == plain.style == plain.path_id == ''
    assert not {'split', 'style', 'path_id'} & set(plain.to_dict())


def test_oracle_reaches_every_goal(generated, tmp_path):
    episodes = [e for house in generated['val_unseen'].values() for e in house[1::2]]
    save_episodes(episodes, tmp_path / 'episodes.json')
    evaluator = LocalEvaluator(engine_factory('oracle', episodes_path=str(
        tmp_path / 'episodes.json')), render=False)
    try:
        runs = [evaluator.run(e) for e in episodes]
    finally:
        evaluator.close()
    agg = aggregate([r.metrics for r in runs])
    assert agg['SR'] == 1.0 and agg['SPL'] > 0.95
