"""Fusion: VGGTMerger names/size, per-patch RMSNorm, grouping order == Qwen2.5-VL's patch order."""

import numpy as np
import pytest
import torch

from janusvln_ros.model.fusion import spatial_tokens, VGGTMerger
from janusvln_ros.model.spatial_memory import RingBufferCache
from janusvln_ros.model.vggt import count_parameters, VGGTAggregator, VGGTConfig


def _index_features(gh: int, gw: int, special: int = 5) -> torch.Tensor:
    """(1, special + gh*gw, 2) features holding each patch's (row, col); specials are -1."""
    rows = torch.arange(gh).repeat_interleave(gw)
    cols = torch.arange(gw).repeat(gh)
    patches = torch.stack((rows, cols), dim=-1).float()
    return torch.cat((torch.full((special, 2), -1.0), patches))[None]


def _qwen_patch_order(gh: int, gw: int) -> torch.Tensor:
    """(gh*gw, 2) (row, col) of each pixel_values row of Qwen2-VL's image processor."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil)
    image = np.zeros((gh * 14, gw * 14, 3), np.float32)
    for r in range(gh):
        for c in range(gw):
            image[r * 14:(r + 1) * 14, c * 14:(c + 1) * 14, 0] = r
            image[r * 14:(r + 1) * 14, c * 14:(c + 1) * 14, 1] = c
    proc = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=4096 * 28 * 28)
    out = proc(images=[image], return_tensors='pt', do_resize=False, do_rescale=False,
               do_normalize=False)
    assert out['image_grid_thw'].tolist() == [[1, gh, gw]]
    pixel_values = out['pixel_values'].view(gh * gw, 3, 2, 14, 14)
    return pixel_values[:, :2, 0, 0, 0]  # channel 0 = row, channel 1 = col


@pytest.mark.parametrize('gh,gw', [(6, 8), (7, 9), (35, 46)])
def test_grouping_matches_qwen_processor_order(gh, gw):
    """VGGT sees the full grid; Qwen sees the image cropped top-left to multiples of 28."""
    grouped = spatial_tokens(_index_features(gh, gw), (gh, gw), patch_start_idx=5)
    mh, mw = gh // 2, gw // 2
    assert grouped.shape == (1, mh * mw, 4 * 2)
    qwen = _qwen_patch_order(2 * mh, 2 * mw)
    # Qwen's merger concatenates 4 consecutive pixel_values rows into one LLM token.
    torch.testing.assert_close(grouped[0].reshape(mh * mw * 4, 2), qwen, atol=0, rtol=0)


def test_grouping_order_explicit():
    grouped = spatial_tokens(_index_features(4, 6), (4, 6), patch_start_idx=5)[0].view(-1, 4, 2)
    # token 1 = block (row 0, col 2..3): (0,2),(0,3),(1,2),(1,3)
    assert grouped[1].tolist() == [[0, 2], [0, 3], [1, 2], [1, 3]]
    # token 3 = second block row, first block: (2,0),(2,1),(3,0),(3,1)
    assert grouped[3].tolist() == [[2, 0], [2, 1], [3, 0], [3, 1]]


def test_janusvln_frame_gives_391_tokens():
    feats = torch.randn(1, 5 + 35 * 46, 16)
    assert spatial_tokens(feats, (35, 46), 5).shape == (1, 391, 64)
    with pytest.raises(ValueError):
        spatial_tokens(feats, (34, 46), 5)


def test_merger_names_and_size_on_meta():
    with torch.device('meta'):
        merger = VGGTMerger(2048, 4096, 3584)
    shapes = {k: tuple(v.shape) for k, v in merger.state_dict().items()}
    assert shapes == {
        'ln_q.weight': (2048,),
        'mlp.0.weight': (4096, 8192), 'mlp.0.bias': (4096,),
        'mlp.2.weight': (3584, 4096), 'mlp.2.bias': (3584,),
    }
    assert round(count_parameters(merger) / 1e6, 1) == 48.2


def test_merger_normalises_each_patch_separately():
    torch.manual_seed(0)
    merger = VGGTMerger(8, 16, 12)
    x = torch.randn(2, 5, 4 * 8)
    scaled = x.clone()
    scaled[..., 8:16] *= 10.0  # one patch of each group, scaled: RMSNorm per patch undoes it
    torch.testing.assert_close(merger(scaled), merger(x), atol=1e-5, rtol=1e-5)
    # but scaling across patches differently is not a no-op for a norm over the whole group:
    rms_group = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    wrong = merger.mlp(x * rms_group)
    assert (wrong - merger(x)).abs().max() > 1e-3
    assert merger(x).shape == (2, 5, 12)
    with pytest.raises(ValueError):
        merger(torch.randn(2, 5, 31))


def test_rmsnorm_bf16_computes_in_fp32():
    merger = VGGTMerger(8, 16, 12)
    x = torch.randn(3, 8) * 100
    ref = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(merger.ln_q(x.bfloat16()).float(), ref, atol=2e-2, rtol=1e-2)


def test_aggregator_to_merger_feature_path():
    torch.manual_seed(0)
    cfg = VGGTConfig.tiny()
    model = VGGTAggregator(cfg).eval()
    merger = VGGTMerger(2 * cfg.embed_dim, 32, 24)
    cache = RingBufferCache(cfg.layers_needed(), cfg.num_heads, cfg.head_dim)
    with torch.no_grad():
        outs = model.forward_frame(torch.rand(1, 3, 126, 140), cache, cfg.layers_needed())
        tokens = merger(spatial_tokens(outs[-1], (9, 10), model.patch_start_idx))
    assert tokens.shape == (1, 4 * 5, 24)
    assert torch.isfinite(tokens).all()
