"""The on-disk navigation dataset: expert trajectories rendered by worker processes."""

import json

import numpy as np
import pytest

from janusvln_ros.sim.splits import generate_house_episodes
from janusvln_ros.training.dataset import load_datasets, read_manifest, RenderSpec
from janusvln_ros.training.dataset import write_expert_dataset

pytestmark = pytest.mark.sim


@pytest.fixture(scope='module')
def episodes():
    return generate_house_episodes('val_unseen', 5000)[:4]  # 2 paths x 2 instructions


def test_expert_dataset_round_trip_and_reproducibility(episodes, tmp_path):
    spec = RenderSpec(max_steps=60)
    first = write_expert_dataset(tmp_path / 'a', episodes, 'val_unseen', spec, workers=2,
                                 paths_per_shard=1, progress=False)
    write_expert_dataset(tmp_path / 'b', episodes, 'val_unseen', spec, workers=1,
                         paths_per_shard=1, progress=False)
    assert first['num_paths'] == 2 and first['num_episodes'] == 4
    assert read_manifest(tmp_path / 'a')['render']['image_width'] == 224
    a, b = load_datasets([tmp_path / 'a']), load_datasets([tmp_path / 'b'])
    assert a.frames.shape[1:] == (168, 224, 3) and a.frames.dtype == np.uint8
    assert a.depth.shape[1:] == (24, 32) and 0.05 < float(a.depth.min()) < 10
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.actions, b.actions)
    for path in a.paths:
        acts = a.actions[path['frame_offset']:path['frame_offset'] + path['num_frames']]
        assert acts[-1] == 0 and (acts[:-1] != 0).all()  # the expert stops once, at the end
        assert {e['style'] for e in path['episodes']} == {'coarse', 'fine'}
    assert len(a.samples()) == 2 * len(a.frames)
    shard = json.loads((tmp_path / 'a' / 'shard-00000.json').read_text())
    assert shard['paths'][0]['source'] == 'expert'
