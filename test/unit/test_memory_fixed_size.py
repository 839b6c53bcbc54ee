"""Fixed-size memory over a 1000-step tiny episode: identical bytes once full, RSS within 5 %."""

import dataclasses
import gc

import numpy as np
import psutil
import pytest
import torch

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.engine import JanusVLNEngine
from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.janusvln import JanusVLNForNavigation
from janusvln_ros.model.tokenizer import load_bundled_tokenizer

STEPS = 1000
WARMUP = 100


@pytest.fixture(scope='module')
def small_model():
    torch.manual_seed(0)
    cfg = dataclasses.replace(JanusVLNConfig.tiny(), image_width=56)
    return JanusVLNForNavigation.from_config(cfg), load_bundled_tokenizer()


def _run(engine, steps):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (42, 56, 3), dtype=np.uint8) for _ in range(16)]
    proc = psutil.Process()
    rows = []
    engine.reset('walk past the sofa and stop at the door')
    for i in range(steps):
        res = engine.step(frames[i % len(frames)])
        rows.append((len(engine.spatial_memory), engine.spatial_memory.nbytes,
                     len(engine.semantic_memory), engine.semantic_memory.nbytes,
                     res.memory_nbytes, proc.memory_info().rss))
        if i == WARMUP:
            gc.collect()
    return rows


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['streaming', 'parity'])
def test_memory_is_fixed_over_1000_steps(small_model, mode):
    model, tokenizer = small_model
    config = EngineConfig(mode=mode, spatial_anchor_frames=2, spatial_window_frames=4,
                          semantic_anchor_frames=1, semantic_window_frames=3, num_history=8)
    engine = JanusVLNEngine(config, model, tokenizer)
    rows = _run(engine, STEPS)
    spatial_full = config.spatial_anchor_frames + config.spatial_window_frames
    first = next(i for i, r in enumerate(rows) if r[0] == spatial_full)
    assert first == spatial_full - 1
    assert len({r[1] for r in rows[first:]}) == 1 and rows[first][1] > 0
    assert all(r[0] == spatial_full for r in rows[first:])
    if mode == 'streaming':
        semantic_full = config.semantic_anchor_frames + config.semantic_window_frames
        first_sem = next(i for i, r in enumerate(rows) if r[2] == semantic_full)
        assert first_sem == semantic_full - 1
        assert len({r[3] for r in rows[first_sem:]}) == 1
        assert max(r[3] for r in rows) == rows[first_sem][3]
        start = max(first, first_sem)
        assert len({r[4] for r in rows[start:]}) == 1
    else:
        # parity: the per-frame ViT store keeps frame 0 and every frame >= floor(h / 8)
        # (those can still be sampled); it grows by 7/8 frame per step, as documented.
        held = [r[2] for r in rows]
        for i, n in enumerate(held):
            h = i  # history length after step i
            assert n == (i + 1 if h < 16 else 1 + (h - max(1, h // 8) + 1)), (i, n)
        per_frame = rows[0][3]
        assert rows[-1][3] == held[-1] * per_frame
    rss = [r[5] for r in rows[WARMUP:]]
    base = rss[0]
    assert max(rss) <= base * 1.05 and min(rss) >= base * 0.95, (base, min(rss), max(rss))
    engine.close()
