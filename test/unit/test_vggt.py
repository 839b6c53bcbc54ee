"""VGGT aggregator: checkpoint names/shapes, streaming == causal oracle, early stop, controls."""

import json
import pathlib

import pytest
import torch

from janusvln_ros.model.spatial_memory import ConcatEvictCache, RingBufferCache
from janusvln_ros.model.vggt import count_parameters, VGGTAggregator, VGGTConfig

# Parameter names and shapes of the released VGGT-1B aggregator (``vggt.aggregator.*`` keys of
# the checkpoint's state dict), stored with the tests.
FACTS = pathlib.Path(__file__).resolve().parent / 'data' / 'vggt_aggregator_param_shapes.json'
TOL = 1e-5


def _tiny(seed: int = 0, **overrides) -> VGGTAggregator:
    """Tiny aggregator with non-negligible special tokens and LayerScales (sensitive tests)."""
    torch.manual_seed(seed)
    cfg = VGGTConfig.from_dict({**VGGTConfig.tiny().to_dict(), **overrides})
    model = VGGTAggregator(cfg).eval()
    with torch.no_grad():
        model.camera_token.normal_()
        model.register_token.normal_()
        for name, param in model.named_parameters():
            if name.endswith('gamma') and not name.startswith('patch_embed'):
                param.uniform_(0.3, 0.7)
    return model


def _stream(model, frames, cache, num_layers=None):
    """Stream frames (B, S, 3, H, W) -> list over frames of lists over layers of (B, P, 2C)."""
    with torch.no_grad():
        return [model.forward_frame(frames[:, f], cache, num_layers)
                for f in range(frames.shape[1])]


def test_real_config_matches_checkpoint_names_and_shapes():
    with torch.device('meta'):
        model = VGGTAggregator(VGGTConfig.real())
    facts = json.loads(FACTS.read_text())
    facts = {k.removeprefix('vggt.aggregator.'): v for k, v in facts.items()}
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert set(shapes) == set(facts)
    assert shapes == facts
    assert len(shapes) == 1210
    assert round(count_parameters(model) / 1e6, 1) == 909.1
    assert model.patch_start_idx == 5
    assert model.cfg.layers_needed() == 23
    assert model.cfg.layers_needed(22) == 23
    assert model.cfg.layers_needed(-1) == 24


def test_config_roundtrip_and_validation():
    cfg = VGGTConfig.tiny()
    assert VGGTConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.depth >= 2  # JanusVLN fuses output [-2]
    assert VGGTConfig.real().pos_embed_grid == 37
    assert cfg.pos_embed_grid == 8
    with pytest.raises(ValueError):
        VGGTConfig.from_dict({'bogus': 1})
    with pytest.raises(ValueError):
        VGGTConfig(img_size=100)  # not a multiple of 14
    with pytest.raises(ValueError):
        VGGTConfig(embed_dim=64, num_heads=32, dino_num_heads=4)  # head_dim 2: no 2-D RoPE
    with pytest.raises(ValueError):
        cfg.layers_needed(5)


@pytest.mark.parametrize('height,width', [(112, 112), (112, 140)])
def test_forward_frame_shapes(height, width):
    model = _tiny()
    cache = RingBufferCache(model.cfg.depth, model.cfg.num_heads, model.cfg.head_dim)
    with torch.no_grad():
        outs = model.forward_frame(torch.rand(2, 3, height, width), cache)
    tokens = 5 + (height // 14) * (width // 14)
    assert len(outs) == model.cfg.depth
    assert all(o.shape == (2, tokens, 2 * model.cfg.embed_dim) for o in outs)
    assert len(cache) == 1


@pytest.mark.parametrize('cache_kind', ['ring', 'concat'])
@pytest.mark.parametrize('height,width,batch', [(112, 112, 1), (112, 140, 1), (112, 140, 2)])
def test_streaming_equals_causal_oracle(cache_kind, height, width, batch):
    model = _tiny()
    torch.manual_seed(1)
    frames = torch.rand(batch, 4, 3, height, width)
    cfg = model.cfg
    cache = (RingBufferCache(cfg.depth, cfg.num_heads, cfg.head_dim) if cache_kind == 'ring'
             else ConcatEvictCache())
    streamed = _stream(model, frames, cache)
    with torch.no_grad():
        oracle = model(frames, causal=True)
        bidirectional = model(frames, causal=False)
    for f, outs in enumerate(streamed):
        for layer, out in enumerate(outs):
            torch.testing.assert_close(out, oracle[layer][:, f], atol=TOL, rtol=0)
    # The oracle is sensitive to causality: the bidirectional pass differs on early frames.
    assert (bidirectional[-1][:, 0] - oracle[-1][:, 0]).abs().max() > 1e-3


def test_first_frame_tokens_after_reset():
    model = _tiny()
    cfg = model.cfg
    torch.manual_seed(2)
    frames = torch.rand(1, 3, 3, 112, 140)
    cache = RingBufferCache(cfg.depth, cfg.num_heads, cfg.head_dim)
    _stream(model, frames, cache)
    assert len(cache) == 3 and not cache.is_empty
    cache.reset()
    assert cache.is_empty and len(cache) == 0
    with torch.no_grad():
        after_reset = model.forward_frame(frames[:, 2], cache)
        fresh = model.forward_frame(frames[:, 2], ConcatEvictCache())
        single = model(frames[:, 2:3])
        as_second = _stream(model, frames[:, 1:3], ConcatEvictCache())[1]
    for a, b, c in zip(after_reset, fresh, single):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)
        torch.testing.assert_close(a, c[:, 0], atol=TOL, rtol=0)
    assert (after_reset[0] - as_second[0]).abs().max() > 1e-3
    # Index 0 of the learned tokens is what marks the first frame.
    with torch.no_grad():
        model.camera_token[:, 0] = model.camera_token[:, 1]
        model.register_token[:, 0] = model.register_token[:, 1]
        swapped = model.forward_frame(frames[:, 2], ConcatEvictCache())
    assert (swapped[0] - fresh[0]).abs().max() > 1e-3


def test_num_layers_early_stop_equals_full_computation():
    model = _tiny(depth=3)
    cfg = model.cfg
    torch.manual_seed(3)
    frames = torch.rand(1, 4, 3, 112, 140)
    needed = cfg.layers_needed()  # output [-2] -> 2 of 3 layers
    assert needed == 2
    full = _stream(model, frames, RingBufferCache(cfg.depth, cfg.num_heads, cfg.head_dim))
    short_cache = RingBufferCache(needed, cfg.num_heads, cfg.head_dim)
    short = _stream(model, frames, short_cache, num_layers=needed)
    full_cache_bytes = RingBufferCache(cfg.depth, cfg.num_heads, cfg.head_dim)
    _stream(model, frames[:, :1], full_cache_bytes)
    assert short_cache.nbytes * cfg.depth == full_cache_bytes.nbytes * needed
    for f in range(frames.shape[1]):
        assert len(short[f]) == needed
        for layer in range(needed):
            torch.testing.assert_close(short[f][layer], full[f][layer], atol=TOL, rtol=0)
    with pytest.raises(ValueError):
        model.forward_frame(frames[:, 0], ConcatEvictCache(), num_layers=0)


def test_wrong_rope_frequency_changes_outputs():
    model = _tiny()
    wrong = VGGTAggregator(VGGTConfig.from_dict({**model.cfg.to_dict(), 'rope_freq': 10.0}))
    wrong.load_state_dict(model.state_dict())
    wrong.eval()
    torch.manual_seed(4)
    frames = torch.rand(1, 2, 3, 112, 140)
    cfg = model.cfg
    right = _stream(model, frames, ConcatEvictCache())
    bad = _stream(wrong, frames, ConcatEvictCache())
    assert (right[1][-1] - bad[1][-1]).abs().max() > 1e-3
    # Same weights, same frequency: identical (the difference above is the frequency's).
    again = VGGTAggregator(cfg)
    again.load_state_dict(model.state_dict())
    same = _stream(again.eval(), frames, ConcatEvictCache())
    torch.testing.assert_close(same[1][-1], right[1][-1], atol=0, rtol=0)


def test_rope_positions_order_y_then_x():
    """First half of head_dim rotates with the row (y), the second with the column (x)."""
    model = _tiny()
    cos, sin = model.rope_tables(2, 3, torch.device('cpu'))
    hd = model.cfg.head_dim
    assert cos.shape == (5 + 6, hd)
    # special tokens at position 0: identity rotation
    torch.testing.assert_close(cos[:5], torch.ones(5, hd))
    # patch (r=0, c=2) is token 5 + 2: y = 1, x = 3; the lowest frequency-0 angle equals the pos
    assert torch.isclose(cos[7, 0], torch.cos(torch.tensor(1.0)))
    assert torch.isclose(cos[7, hd // 2], torch.cos(torch.tensor(3.0)))
    # patch (r=1, c=0): y = 2, x = 1
    assert torch.isclose(cos[8, 0], torch.cos(torch.tensor(2.0)))
    assert torch.isclose(cos[8, hd // 2], torch.cos(torch.tensor(1.0)))


def test_rejects_bad_inputs():
    model = _tiny()
    with pytest.raises(ValueError):
        model.forward_frame(torch.rand(1, 3, 113, 112), ConcatEvictCache())
    with pytest.raises(ValueError):
        model.forward_frame(torch.rand(3, 112, 112), ConcatEvictCache())


def test_pos_embed_interpolation_only_off_grid():
    model = _tiny()
    dino = model.patch_embed
    assert dino.position_embedding(8, 8) is dino.pos_embed
    pos = dino.position_embedding(8, 10)
    assert pos.shape == (1, 1 + 80, model.cfg.embed_dim)
    torch.testing.assert_close(pos[:, 0], dino.pos_embed[:, 0])
