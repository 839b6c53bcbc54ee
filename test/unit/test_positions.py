"""The explicit M-RoPE position helper equals HF ``get_rope_index``; chunked prefill is exact."""

import pytest
import torch
import transformers

from janusvln_ros.model.positions import (chunk_positions, image_positions, PositionError,
                                          text_positions)

IMAGE, VSTART, VEND = 5, 3, 4


def tiny_qwen(seed: int = 0) -> transformers.Qwen2_5_VLForConditionalGeneration:
    """A 2-layer random Qwen2.5-VL with the real patch/merge structure (2x2 merge)."""
    torch.manual_seed(seed)
    cfg = transformers.Qwen2_5_VLConfig(
        text_config=dict(vocab_size=512, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters={'rope_type': 'default', 'rope_theta': 1e6,
                                          'mrope_section': [2, 3, 3]},
                         bos_token_id=1, eos_token_id=2, pad_token_id=0),
        vision_config=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           window_size=112, out_hidden_size=64, fullatt_block_indexes=[1]),
        image_token_id=IMAGE, video_token_id=6, vision_start_token_id=VSTART,
        vision_end_token_id=VEND)
    cfg._attn_implementation = 'sdpa'
    model = transformers.Qwen2_5_VLForConditionalGeneration(cfg).eval()
    return model


def _prompt(grids: list[tuple[int, int, int]], gen: torch.Generator) -> list[int]:
    ids = torch.randint(10, 500, (7,), generator=gen).tolist()
    for t, h, w in grids:
        ids += [VSTART] + [IMAGE] * (t * (h // 2) * (w // 2)) + [VEND]
        ids += torch.randint(10, 500, (3,), generator=gen).tolist()
    return ids + torch.randint(10, 500, (5,), generator=gen).tolist()


def test_text_and_image_blocks():
    pos, nxt = text_positions(7, 3)
    assert pos.shape == (3, 1, 3) and nxt == 10
    assert pos[:, 0].tolist() == [[7, 8, 9]] * 3
    pos, nxt = image_positions(10, (1, 4, 6))  # merged 2 x 3
    assert nxt == 13
    assert pos[0, 0].tolist() == [10] * 6
    assert pos[1, 0].tolist() == [10, 10, 10, 11, 11, 11]
    assert pos[2, 0].tolist() == [10, 11, 12, 10, 11, 12]


@pytest.mark.parametrize('grids', [
    [(1, 8, 10)],
    [(1, 8, 10), (1, 10, 8), (1, 8, 8)],
    [(1, 4, 4), (1, 4, 4)],
    [(1, 16, 22), (1, 22, 16), (1, 16, 22), (1, 6, 4)],
])
def test_equals_hf_get_rope_index(grids):
    model = tiny_qwen()
    gen = torch.Generator().manual_seed(len(grids))
    ids = torch.tensor([_prompt(grids, gen)])
    grid_t = torch.tensor(grids)
    ref, _ = model.model.get_rope_index(ids, mm_token_type_ids=(ids == IMAGE).int(),
                                        image_grid_thw=grid_t)
    mine, nxt = chunk_positions(ids, IMAGE, grid_t)
    assert torch.equal(mine, ref)
    assert nxt == int(ref.max()) + 1


def test_adjacent_images_are_split_by_grid():
    grids = [(1, 4, 6), (1, 6, 4)]
    ids = [9] + [IMAGE] * 12 + [9]
    pos, nxt = chunk_positions(ids, IMAGE, grids)
    assert pos.shape[2] == 14
    # first image: t = 1 for all 6 tokens, second: t = 1 + 3 = 4
    assert pos[0, 0, 1:7].tolist() == [1] * 6 and pos[0, 0, 7:13].tolist() == [4] * 6
    assert nxt == 4 + 3 + 1


def test_mismatch_raises():
    with pytest.raises(PositionError):
        chunk_positions([IMAGE] * 5, IMAGE, [(1, 4, 4)])
    with pytest.raises(PositionError):
        chunk_positions([1, 2], IMAGE, [(1, 4, 4)])
    with pytest.raises(PositionError):
        chunk_positions([IMAGE] * 4, IMAGE, [])


def test_chunked_prefill_with_explicit_positions_equals_full_forward():
    model = tiny_qwen(1)
    gen = torch.Generator().manual_seed(3)
    grids = [(1, 8, 10), (1, 10, 8), (1, 8, 8)]
    ids = torch.tensor([_prompt(grids, gen)])
    pix = torch.randn(sum(t * h * w for t, h, w in grids), 3 * 2 * 14 * 14, generator=gen)
    grid_t = torch.tensor(grids)
    with torch.no_grad():
        embeds = model.model.get_input_embeddings()(ids)
        img = torch.cat(model.model.get_image_features(pix, grid_t).pooler_output)
        embeds = embeds.masked_scatter((ids == IMAGE)[..., None].expand_as(embeds), img)
        full = model(inputs_embeds=embeds, input_ids=None,
                     position_ids=chunk_positions(ids, IMAGE, grid_t)[0]).logits
        ref = model(input_ids=ids, pixel_values=pix, image_grid_thw=grid_t,
                    mm_token_type_ids=(ids == IMAGE).int()).logits
        assert torch.allclose(full, ref, atol=1e-5)
        cache = transformers.DynamicCache(config=model.config)
        next_pos, out = 0, []
        vstarts = [k for k in range(ids.shape[1]) if ids[0, k] == VSTART]
        cuts = [0, 3] + vstarts[1:] + [vstarts[-1] + 1, ids.shape[1] - 2, ids.shape[1]]
        for a, b in zip(cuts[:-1], cuts[1:]):
            chunk = ids[:, a:b]
            n_before = int((ids[0, :a] == IMAGE).sum())
            # grids of the images that start inside this chunk (cuts fall outside images here)
            starts = [k for k in range(a, b) if ids[0, k] == IMAGE and ids[0, k - 1] != IMAGE]
            first = sum(1 for k in range(a) if ids[0, k] == IMAGE and ids[0, k - 1] != IMAGE)
            assert n_before == sum(t * h * w // 4 for t, h, w in grids[:first])
            pos, next_pos = chunk_positions(chunk, IMAGE, grid_t[first:first + len(starts)],
                                            next_pos)
            out.append(model(inputs_embeds=embeds[:, a:b], position_ids=pos,
                             past_key_values=cache, use_cache=True).logits)
        chunked = torch.cat(out, dim=1)
    assert torch.allclose(chunked, full, atol=2e-5), (chunked - full).abs().max()
