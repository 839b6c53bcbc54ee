"""The reference step: released per-step semantics on the primed tiny checkpoint."""

import numpy as np
import pytest
import torch

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.errors import InferenceError, InputError, ModelLoadError
from janusvln_ros.core.reference import ReferenceEngine, select_history
from janusvln_ros.core.types import Action, Engine
from janusvln_ros.model.checkpoint import load_checkpoint
from janusvln_ros.model.priming import colour_rule, synthetic_frame
from janusvln_ros.model.prompt import ACTION_NAMES

torch.set_num_threads(1)
INSTRUCTION = 'walk to the end of the corridor and stop at the door'


@pytest.fixture(scope='module')
def loaded(primed_tiny_dir):
    return load_checkpoint(primed_tiny_dir, progress=False)


def _engine(loaded, **kwargs):
    model, tokenizer = loaded
    return ReferenceEngine(model, tokenizer, EngineConfig(engine='reference', **kwargs))


def _frames(n, seed=0, size=(48, 64)):
    rng = np.random.default_rng(seed)
    names = rng.choice(ACTION_NAMES, size=n, p=(0.1, 0.5, 0.2, 0.2))
    return [synthetic_frame(rng, str(a), *size) for a in names]


def test_select_history():
    assert select_history(1, 8) == [0]
    assert select_history(9, 8) == list(range(9))
    assert select_history(10, 8) == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    assert select_history(60, 8) == [0, 7, 14, 22, 29, 36, 44, 51, 59]
    assert select_history(60, 8) == np.linspace(0, 59, 9, dtype=int).tolist()


def test_two_frame_episode(loaded):
    engine = _engine(loaded)
    assert isinstance(engine, Engine)
    engine.reset(INSTRUCTION)
    frames = _frames(2, seed=1, size=(480, 640))
    results = [engine.step(f) for f in frames]
    for i, r in enumerate(results):
        assert r.step == i and isinstance(r.action, Action)
        assert set(r.latencies_ms) == {'vggt', 'vit', 'prefill', 'decode', 'total'}
        assert r.total_ms >= r.latencies_ms['prefill'] > 0
        assert r.spatial_memory_frames == i + 1 and r.spatial_memory_capacity == 56
        assert r.semantic_memory_frames == i + 1 and r.semantic_memory_capacity == 9
        assert r.memory_nbytes > 0
    assert engine.last_selected == [0, 1]
    assert engine.last_logits.shape == (151936,) and engine.last_logits.dtype == torch.float32
    assert engine.last_logits.device.type == 'cpu'
    # the parsed action is the exact-match parse of the decoded text
    assert results[-1].raw_output == engine.last_text
    want = results[-1].raw_output.strip()
    assert results[-1].action.name == (want if want in ACTION_NAMES else 'STOP')


def test_primed_model_answers_by_colour(loaded):
    engine = _engine(loaded)
    engine.reset(INSTRUCTION)
    rng = np.random.default_rng(7)
    wanted = ['MOVE_FORWARD', 'TURN_LEFT', 'TURN_RIGHT', 'MOVE_FORWARD', 'TURN_LEFT',
              'TURN_RIGHT', 'MOVE_FORWARD', 'TURN_LEFT']
    got = []
    for name in wanted:
        frame = synthetic_frame(rng, name, 480, 640)
        assert colour_rule(frame) == name
        result = engine.step(frame)
        assert result.raw_output in ACTION_NAMES  # well-formed words, not junk
        got.append(result.action.name)
    assert len(set(got)) >= 2
    assert sum(g == w for g, w in zip(got, wanted)) >= 6


def test_sixty_frame_episode_evicts(loaded):
    engine = _engine(loaded)
    engine.reset(INSTRUCTION)
    sizes = []
    for frame in _frames(60, seed=2):
        result = engine.step(frame)
        sizes.append(result.spatial_memory_frames)
        assert result.semantic_memory_frames == min(result.step + 1, 9)
    assert sizes[:56] == list(range(1, 57))
    assert sizes[56:] == [56] * 4  # anchor 8 + window 48, eviction after each frame
    assert max(len(engine.cache), *sizes) == 56
    assert engine.last_selected == [0, 7, 14, 22, 29, 36, 44, 51, 59]
    engine.reset(INSTRUCTION)
    assert len(engine.cache) == 0 and engine.frames == []


def test_small_window_matches_a_masked_recomputation(loaded):
    """With anchor 2 + window 3, step 9's logits equal an independent from-scratch computation.

    The oracle runs VGGT non-cached over all frames with a frame mask expressing the eviction
    policy, and lets HF's own multimodal forward compute positions, with a hook adding the
    3-D tokens to the ViT output of every image.
    """
    model, _ = loaded
    engine = _engine(loaded, spatial_anchor_frames=2, spatial_window_frames=3)
    engine.reset(INSTRUCTION)
    frames = _frames(10, seed=3)
    for frame in frames:
        engine.step(frame)
    assert len(engine.cache) == 5 and engine.last_selected == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    prepared = engine.frames
    n = len(prepared)
    mask = torch.zeros(n, n, dtype=torch.bool)
    for f in range(n):  # frame f sees the frames held after f-1 steps, and itself
        held = [g for g in range(f) if g < 2 or g >= f - 3]
        mask[f, held + [f]] = True
    agg = model.vggt.aggregator
    with torch.no_grad():
        outs = agg(torch.stack([p.vggt_image for p in prepared]).unsqueeze(0), frame_mask=mask)
        from janusvln_ros.model.fusion import spatial_tokens
        layer = outs[model.config.output_layer][:, -1]
        spatial = model.merger(spatial_tokens(layer, prepared[-1].vggt_grid_hw,
                                              agg.patch_start_idx))[0]
        images = [prepared[i] for i in engine.last_selected]
        ids = engine.prompt.parity_ids(INSTRUCTION, [p.num_tokens for p in images])[None]

        def add_3d(module, args, output):
            output.pooler_output = output.pooler_output + 0.2 * spatial.repeat(len(images), 1)
            return output

        handle = model.qwen.model.visual.register_forward_hook(add_3d)
        try:
            logits = model.qwen(input_ids=ids,
                                pixel_values=torch.cat([p.pixel_values for p in images]),
                                image_grid_thw=torch.cat([p.grid_thw for p in images]),
                                mm_token_type_ids=(ids == 151655).int(),
                                logits_to_keep=1).logits[0, -1]
        finally:
            handle.remove()
    torch.testing.assert_close(engine.last_logits, logits.float(), rtol=1e-4, atol=1e-4)


def test_deterministic_and_reset(loaded):
    engine = _engine(loaded)
    frames = _frames(4, seed=5)
    runs = []
    for _ in range(2):
        engine.reset(INSTRUCTION)
        runs.append([(engine.step(f).raw_output, engine.last_logits.clone()) for f in frames])
    for (t1, l1), (t2, l2) in zip(*runs):
        assert t1 == t2 and torch.equal(l1, l2)


def test_errors(loaded, tmp_path):
    engine = _engine(loaded)
    with pytest.raises(InferenceError, match='reset'):
        engine.step(_frames(1)[0])
    with pytest.raises(InputError):
        engine.reset('   ')
    engine.reset(INSTRUCTION)
    with pytest.raises(InputError, match='uint8'):
        engine.step(np.zeros((48, 64, 3), np.float32))
    assert len(engine.cache) == 0 and engine.frames == []  # nothing changed
    with pytest.raises(ModelLoadError):
        ReferenceEngine.from_config(EngineConfig(engine='reference',
                                                 model_path=str(tmp_path / 'missing')))
    engine.close()


def test_from_config(primed_tiny_dir):
    engine = ReferenceEngine.from_config(EngineConfig(engine='reference',
                                                      model_path=str(primed_tiny_dir)))
    engine.reset(INSTRUCTION)
    assert engine.step(_frames(1, seed=9)[0]).action in set(Action)
    engine.close()
