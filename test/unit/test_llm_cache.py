"""Streaming LLM cache: physical eviction equals masking, positions increase, size is fixed."""

import pytest
from test_positions import IMAGE, tiny_qwen, VEND, VSTART
import torch

from janusvln_ros.core.semantic_memory import StreamingSemanticMemory
from janusvln_ros.model.positions import chunk_positions, text_positions

GRID = (1, 4, 6)  # merged 2 x 3 -> 6 image tokens; non-square on purpose
FRAME_IDS = [VSTART] + [IMAGE] * 6 + [VEND]
PREFIX, QUERY = 5, 4


def _visible(segs, kept_frames):
    """Token mask of the segments visible to a chunk: prefix + kept frames."""
    return torch.cat([torch.full((s[2],), s[0] == 'prefix'
                                 or (s[0] == 'frame' and s[1] in kept_frames))
                      for s in segs])


def _kept(frames, anchors, window):
    return set(frames[:anchors]) | set(frames[-window:])


@pytest.mark.parametrize('anchors,window', [(1, 3), (0, 2), (2, 2)])
def test_physical_eviction_equals_masking(anchors, window):
    model = tiny_qwen(2)
    hidden = model.config.text_config.hidden_size
    gen = torch.Generator().manual_seed(anchors * 10 + window)
    steps = 9
    frames = [torch.randn(1, len(FRAME_IDS), hidden, generator=gen) for _ in range(steps)]
    queries = [torch.randn(1, QUERY, hidden, generator=gen) for _ in range(steps)]
    answer = torch.randn(1, 2, hidden, generator=gen)
    prefix = torch.randn(1, PREFIX, hidden, generator=gen)
    mem = StreamingSemanticMemory(anchors, window, config=model.config)
    sizes = []
    with torch.no_grad():
        pos, end = text_positions(0, PREFIX)
        model(inputs_embeds=prefix, position_ids=pos, past_key_values=mem.hf_cache,
              use_cache=True)
        mem.record('prefix', PREFIX, end)
        # full-sequence reference: segments (kind, frame_id, length, embeds, positions)
        ref_segs = [('prefix', -1, PREFIX, prefix, pos)]
        ref_rows = [torch.ones(PREFIX, PREFIX).tril().bool()]
        for t in range(steps):
            kept_before = _kept(list(range(t)), anchors, window)
            pos, end = chunk_positions(FRAME_IDS, IMAGE, [GRID], mem.next_pos)
            model(inputs_embeds=frames[t], position_ids=pos, past_key_values=mem.hf_cache,
                  use_cache=True, logits_to_keep=1)
            mem.record('frame', len(FRAME_IDS), end, frame_id=t)
            mem.evict()
            vis = _visible(ref_segs, kept_before)
            n = len(FRAME_IDS)
            ref_rows.append(torch.cat([vis.expand(n, -1), torch.ones(n, n).tril().bool()], 1))
            ref_segs.append(('frame', t, n, frames[t], pos))
            assert mem.kv.frame_ids() == sorted(_kept(list(range(t + 1)), anchors, window))
            # query + two answer tokens, then rollback
            mark = mem.mark()
            qpos, qend = text_positions(mem.next_pos, QUERY)
            got = model(inputs_embeds=queries[t], position_ids=qpos,
                        past_key_values=mem.hf_cache, use_cache=True).logits
            mem.record('query', QUERY, qend, advance=False)
            apos, _ = text_positions(qend, 2)
            model(inputs_embeds=answer, position_ids=apos, past_key_values=mem.hf_cache,
                  use_cache=True)
            mem.rollback(mark)
            assert mem.kv.seq_length == mem.kv.segment_length
            assert mem.kv.positions_increasing()
            sizes.append((len(mem), mem.nbytes, mem.kv.seq_length))
            # reference: every token ever kept in the sequence, hidden by a 4-D float mask
            vis = _visible(ref_segs, _kept(list(range(t + 1)), anchors, window))
            rows = ref_rows + [torch.cat([vis.expand(QUERY, -1),
                                          torch.ones(QUERY, QUERY).tril().bool()], 1)]
            total = sum(s[2] for s in ref_segs) + QUERY
            mask = torch.zeros(total, total, dtype=torch.bool)
            r = 0
            for row in rows:
                mask[r:r + row.shape[0], :row.shape[1]] = row
                r += row.shape[0]
            fmask = torch.zeros(1, 1, total, total).masked_fill(
                ~mask, torch.finfo(torch.float32).min)
            embeds = torch.cat([s[3] for s in ref_segs] + [queries[t]], 1)
            positions = torch.cat([s[4] for s in ref_segs] + [qpos], 2)
            ref = model(inputs_embeds=embeds, position_ids=positions,
                        attention_mask=fmask).logits[:, -QUERY:]
            assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5), (t, (got - ref).abs().max())
    full = anchors + window
    filled = [s for s in sizes if s[0] == full]
    assert len(filled) >= steps - full
    assert len(set(filled)) == 1  # frames, bytes and tokens identical once the window is full
    assert max(s[1] for s in sizes) == filled[0][1]


def test_masking_reference_is_sensitive():
    """Negative control: not evicting gives different query logits once frames are dropped."""
    model = tiny_qwen(2)
    hidden = model.config.text_config.hidden_size
    gen = torch.Generator().manual_seed(5)
    outs = []
    for evict in (True, False):
        g = torch.Generator().manual_seed(7)
        mem = StreamingSemanticMemory(1, 1, config=model.config)
        with torch.no_grad():
            for t in range(3):
                pos, end = chunk_positions(FRAME_IDS, IMAGE, [GRID], mem.next_pos)
                model(inputs_embeds=torch.randn(1, 8, hidden, generator=g), position_ids=pos,
                      past_key_values=mem.hf_cache, use_cache=True)
                mem.record('frame', 8, end, frame_id=t)
                if evict:
                    mem.evict()
            qpos, _ = text_positions(mem.next_pos, 3)
            outs.append(model(inputs_embeds=torch.randn(1, 3, hidden, generator=gen),
                              position_ids=qpos, past_key_values=mem.hf_cache).logits)
        gen = torch.Generator().manual_seed(5)
    assert (outs[0] - outs[1]).abs().max() > 1e-3


def test_reset_and_validation():
    model = tiny_qwen(0)
    mem = StreamingSemanticMemory(1, 2, config=model.config)
    with torch.no_grad():
        pos, end = text_positions(0, 3)
        model(inputs_embeds=torch.randn(1, 3, 64), position_ids=pos,
              past_key_values=mem.hf_cache, use_cache=True)
    mem.record('prefix', 3, end)
    assert mem.nbytes > 0 and mem.next_pos == 3 and mem.has_prefix
    with pytest.raises(RuntimeError):
        mem.record('frame', 5, 8, frame_id=0)  # the cache holds no such tokens
    mem.reset()
    assert mem.nbytes == 0 and len(mem) == 0 and mem.next_pos == 0 and not mem.has_prefix
    assert mem.capacity == 3
    with pytest.raises(ValueError):
        StreamingSemanticMemory(0, 0)
