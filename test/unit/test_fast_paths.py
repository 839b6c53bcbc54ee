"""CPU checks of the GPU fast paths: precomputed ViT bookkeeping, varlen fallback, eager VGGT."""

from __future__ import annotations

import numpy as np
import torch

from janusvln_ros.model import fast_attention
from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.cuda_graphs import install_cuda_graphs
from janusvln_ros.model.fast_paths import apply_fast_paths, sdpa_scope
from janusvln_ros.model.janusvln import JanusVLNForNavigation
from janusvln_ros.model.preprocess import prepare_frame


def _model() -> JanusVLNForNavigation:
    torch.manual_seed(0)
    return JanusVLNForNavigation.from_config(JanusVLNConfig.tiny())


def test_fast_vision_encoder_equals_vit_embeds_on_cpu() -> None:
    model = _model()
    grid = torch.tensor([[1, 12, 18]])  # several windows of 8x8 patches
    pixels = torch.randn(12 * 18, 1176)
    with torch.inference_mode():
        ref = model.vit_embeds(pixels, grid)[0]
        installed = install_cuda_graphs(model, vggt=False)
        out = model.vit_embeds(pixels, grid)[0]
        fast_attention.enable_varlen_vision_attention(model.qwen)
        out_varlen = model.vit_embeds(pixels, grid)[0]
        out_again = model.vit_embeds(pixels, grid)[0]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_varlen, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_again, ref, rtol=1e-5, atol=1e-5)
    assert installed['vit'].replays == 0  # CPU: never graphed
    two = torch.tensor([[1, 12, 18], [1, 12, 18]])
    with torch.inference_mode():
        both = model.vit_embeds(torch.cat([pixels, pixels]), two)  # multi-image: eager path
    assert len(both) == 2
    torch.testing.assert_close(both[1], ref, rtol=1e-5, atol=1e-5)


def test_backend_order_and_cpu_preference_is_noop() -> None:
    assert fast_attention.backend_order('default') == ()
    assert fast_attention.backend_order('cudnn')[0] == 'cudnn'
    assert fast_attention.backend_order('flash') == ('flash', 'cudnn', 'efficient', 'math')
    with fast_attention.sdpa_preference('cudnn', torch.device('cpu')):
        out = torch.nn.functional.scaled_dot_product_attention(*torch.randn(3, 1, 2, 5, 8))
    assert out.shape == (1, 2, 5, 8)
    try:
        fast_attention.backend_order('fastest')
    except ValueError:
        pass
    else:
        raise AssertionError('unknown preference accepted')


def test_graphed_spatial_encoder_is_eager_on_cpu_and_exact() -> None:
    model = _model()
    rng = np.random.default_rng(0)
    frames = [prepare_frame(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8),
                            model.config.image_width) for _ in range(6)]
    ref_cache = model.new_spatial_cache('ring', 1, 2)
    with torch.inference_mode():
        ref = [model.spatial_embeds(f.vggt_image, ref_cache) for f in frames]
        installed = install_cuda_graphs(model, vit=False)
        cache = model.new_spatial_cache('ring', 1, 2)
        out = [model.spatial_embeds(f.vggt_image, cache) for f in frames]
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b)
    assert installed['vggt'].replays == 0
    assert cache.full_window and cache.frames_seen == 6


def test_installing_fast_paths_leaves_the_process_sdpa_priority_alone() -> None:
    # The devices only name CUDA (nothing runs on them): installation must not touch the
    # process-wide SDPA backend priority; the preference applies inside sdpa_scope only.
    before = list(torch._C._get_sdp_priority_order())
    cuda = torch.device('cuda')
    done = apply_fast_paths(_model(), cuda, cuda)
    assert 'sdpa_cudnn' in done and 'vitgraph' in done and 'vggtgraph' in done
    assert list(torch._C._get_sdp_priority_order()) == before
    with sdpa_scope(done, cuda):
        inside = list(torch._C._get_sdp_priority_order())
    assert inside != before  # cuDNN first inside the scope
    assert list(torch._C._get_sdp_priority_order()) == before
    try:
        with sdpa_scope(done, cuda):
            raise RuntimeError('step failed')
    except RuntimeError:
        pass
    assert list(torch._C._get_sdp_priority_order()) == before
    with sdpa_scope([], cuda):
        assert list(torch._C._get_sdp_priority_order()) == before
