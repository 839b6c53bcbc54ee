"""The JanusVLN network: module names, shapes, fusion, and agreement with HF's own paths."""

import numpy as np
import pytest
import torch
from transformers import DynamicCache

from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.fusion import spatial_tokens
from janusvln_ros.model.janusvln import (cache_kwarg_name, JanusVLNForNavigation,
                                         parameter_counts, truncate_cache)
from janusvln_ros.model.preprocess import prepare_frame
from janusvln_ros.model.spatial_memory import ConcatEvictCache, RingBufferCache

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return JanusVLNForNavigation.from_config(JanusVLNConfig.tiny())


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [prepare_frame(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), 140)
            for _ in range(n)]


def test_module_tree_and_names(model):
    names = set(model.state_dict())
    assert 'qwen.model.language_model.embed_tokens.weight' in names
    assert 'qwen.model.language_model.layers.1.mlp.down_proj.weight' in names
    assert 'qwen.model.visual.merger.mlp.2.weight' in names
    assert 'qwen.lm_head.weight' in names
    assert 'vggt.aggregator.register_token' in names
    assert {n for n in names if n.startswith('merger.')} == {
        'merger.ln_q.weight', 'merger.mlp.0.weight', 'merger.mlp.0.bias',
        'merger.mlp.2.weight', 'merger.mlp.2.bias'}
    assert model.merger.mlp[0].in_features == 4 * 2 * 64  # 2x2 group of 2C channels
    assert model.lam == pytest.approx(0.2)
    assert (model.image_token_id, model.vision_start_token_id, model.vision_end_token_id) == \
        (151655, 151652, 151653)
    assert cache_kwarg_name() in ('past_key_values', 'cache')


def test_real_preset_counts_on_meta():
    with torch.device('meta'):
        real = JanusVLNForNavigation(JanusVLNConfig.real())
    counts = parameter_counts(real)
    assert counts['qwen2_5_vl'] == 8_292_166_656          # 8.29 B (vision tower included)
    assert counts['vision_tower'] == 676_550_144
    assert counts['vggt_aggregator'] == 909_112_320       # 909.1 M
    assert counts['merger'] == 48_244_224                 # 48.2 M
    assert real.config.output_layer == 22 and real.config.num_vggt_layers == 23
    assert real.config.image_width == 644


def test_encoder_shapes_and_fusion(model):
    frames = _frames(2)
    with torch.no_grad():
        vit = model.vit_embeds(torch.cat([f.pixel_values for f in frames]),
                               torch.cat([f.grid_thw for f in frames]))
        cache = model.new_spatial_cache('concat', 8, 48)
        spatial = model.spatial_embeds(frames[-1].vggt_image, cache)
        fused = model.fuse(vit, spatial)
    assert [tuple(v.shape) for v in vit] == [(20, 64), (20, 64)]
    assert spatial.shape == (20, 64) and len(cache) == 1
    for v, f in zip(vit, fused):
        torch.testing.assert_close(f, v + 0.2 * spatial)
    assert isinstance(model.new_spatial_cache('ring', 2, 3), RingBufferCache)
    assert isinstance(model.new_spatial_cache('concat', 2, 3), ConcatEvictCache)


def test_spatial_embeds_equal_a_causal_pass(model):
    """Streaming 3 frames through the cache == one causal pass, layer output_layer, merger."""
    frames = _frames(3, seed=4)
    cache = model.new_spatial_cache('concat', 8, 48)
    with torch.no_grad():
        streamed = [model.spatial_embeds(f.vggt_image, cache) for f in frames]
        images = torch.stack([f.vggt_image for f in frames]).unsqueeze(0)
        outs = model.vggt.aggregator(images, causal=True)
        agg = model.vggt.aggregator
        for i, f in enumerate(frames):
            layer = outs[model.config.output_layer][:, i]
            want = model.merger(spatial_tokens(layer, f.vggt_grid_hw, agg.patch_start_idx))[0]
            torch.testing.assert_close(streamed[i], want, rtol=1e-5, atol=1e-5)
    # the history matters (otherwise the cache would be pointless)
    with torch.no_grad():
        alone = model.spatial_embeds(frames[2].vggt_image, model.new_spatial_cache('concat'))
    assert (alone - streamed[2]).abs().max() > 1e-4


def test_manual_pipeline_equals_hf_forward_without_3d(model):
    """With lam = 0, our scatter + get_rope_index path equals Qwen's own multimodal forward."""
    frames = _frames(2, seed=2)
    pv = torch.cat([f.pixel_values for f in frames])
    grid = torch.cat([f.grid_thw for f in frames])
    ids = [151644, 872, 198]
    for f in frames:
        ids += [151652] + [151655] * f.num_tokens + [151653]
    ids = torch.tensor([ids + [3838, 311, 653, 30, 151645, 198, 151644, 77091, 198]])
    with torch.no_grad():
        embeds = model.scatter_images(ids, model.vit_embeds(pv, grid))
        positions = model.rope_index(ids, grid)
        ours, _ = model.llm_forward(embeds, positions, None, logits_to_keep=1)
        hf = model.qwen(input_ids=ids, pixel_values=pv, image_grid_thw=grid,
                        mm_token_type_ids=(ids == 151655).int(), logits_to_keep=1).logits
    torch.testing.assert_close(ours, hf, rtol=1e-5, atol=1e-5)
    # image tokens get 3-D positions: rows and columns differ inside an image
    img = positions[:, 0, ids[0] == 151655]
    assert not torch.equal(img[1], img[2])


def test_llm_forward_cache_decode_equals_full(model):
    torch.manual_seed(3)
    ids = torch.randint(0, 151000, (1, 12))
    pos = torch.arange(12).view(1, 1, -1).expand(3, 1, -1)
    with torch.no_grad():
        full, _ = model.llm_forward(model.text_embeds(ids), pos, None, logits_to_keep=12)
        logits, cache = model.llm_forward(model.text_embeds(ids[:, :9]), pos[:, :, :9], None)
        assert isinstance(cache, DynamicCache) and cache.get_seq_length() == 9
        torch.testing.assert_close(logits[0, -1], full[0, 8], rtol=1e-5, atol=1e-5)
        for i in range(9, 12):
            logits, cache = model.llm_forward(model.text_embeds(ids[:, i:i + 1]),
                                              pos[:, :, i:i + 1], cache)
            torch.testing.assert_close(logits[0, -1], full[0, i], rtol=1e-5, atol=1e-5)
    assert cache.get_seq_length() == 12


def test_fuse_rejects_mismatched_sizes(model):
    with pytest.raises(ValueError, match='same prepared frame size'):
        model.fuse([torch.zeros(20, 64)], torch.zeros(12, 64))


def test_scatter_on_host_positions_is_bit_identical(model):
    """CPU ids: pad positions found on the host, same tensor as boolean-mask scattering."""
    torch.manual_seed(5)
    ids = torch.tensor([[1, 151655, 151655, 7, 151655, 9, 151655, 151655, 151655]])
    images = [torch.randn(2, model.config.hidden_size), torch.randn(4, model.config.hidden_size)]
    with torch.no_grad():
        got = model.scatter_images(ids, images)
        want = model.text_embeds(ids).clone()
        want[ids == 151655] = torch.cat(images)
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match='image pads'):
        model.scatter_images(ids, images[:1])


def test_custom_mask_and_truncate(model):
    """Custom ``allowed`` masks and ``truncate_cache``.

    ``allowed`` = causal reproduces the default; blocking a cached run for the last new tokens
    equals dropping it from the cache between two forwards (the engine's streaming eviction);
    ``truncate_cache`` undoes appended tokens.
    """
    torch.manual_seed(4)
    assert model.supports_attention_mask()
    ids = torch.randint(0, 151000, (1, 14))
    pos = torch.arange(14).view(1, 1, -1).expand(3, 1, -1)
    emb = model.text_embeds(ids)
    with torch.no_grad():
        _, cache = model.llm_forward(emb[:, :10], pos[:, :, :10], None)
        plain, _ = model.llm_forward(emb[:, 10:], pos[:, :, 10:], cache, logits_to_keep=4)
        truncate_cache(cache, 10)
        assert cache.get_seq_length() == 10
        allowed = torch.ones(4, 14, dtype=torch.bool)
        allowed[:, 10:] = torch.ones(4, 4, dtype=torch.bool).tril()
        masked, _ = model.llm_forward(emb[:, 10:], pos[:, :, 10:], cache, logits_to_keep=4,
                                      allowed=allowed)
        torch.testing.assert_close(masked, plain, rtol=1e-5, atol=1e-5)
        # block cached tokens 3..6 for the last two new tokens == those tokens never cached
        truncate_cache(cache, 10)
        allowed[2:, 3:6] = False
        blocked, _ = model.llm_forward(emb[:, 10:], pos[:, :, 10:], cache, logits_to_keep=4,
                                       allowed=allowed)
        # reference: tokens 10-11 with everything cached, evict 3..5, then tokens 12-13
        truncate_cache(cache, 10)
        model.llm_forward(emb[:, 10:12], pos[:, :, 10:12], cache)
        keep = torch.cat([torch.arange(3), torch.arange(6, 12)])
        for layer in cache.layers:
            layer.keys = layer.keys.index_select(-2, keep)
            layer.values = layer.values.index_select(-2, keep)
        ref, _ = model.llm_forward(emb[:, 12:], pos[:, :, 12:], cache, logits_to_keep=2)
    torch.testing.assert_close(blocked[:, :2], plain[:, :2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(blocked[:, 2:], ref, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(blocked[:, 2:], plain[:, 2:], atol=1e-3)
