"""Explicit 3-D M-RoPE positions for Qwen2.5-VL, computed chunk by chunk from a global counter.

Hugging Face computes Qwen2.5-VL positions from the *whole* ``input_ids`` (``get_rope_index``)
and falls back to 1-D positions for later chunks once a cache exists, which is wrong for
streaming prefill and for any cache whose middle has been evicted. The
helpers here compute the same positions explicitly, starting at an arbitrary ``next_pos``:

* a text token gets ``t = h = w = p`` and advances ``p`` by 1;
* an image whose merged grid is ``H' x W'`` (``H' = grid_h // merge``) gets ``t = p``,
  ``h = p + row``, ``w = p + col`` for its ``H' * W'`` tokens (row-major), then ``p`` advances by
  ``max(H', W')``.

Run over a full prompt from ``next_pos = 0`` this equals ``Qwen2_5_VLModel.get_rope_index``
(tested in ``test/unit/test_positions.py``); run chunk by chunk with the returned counter, it
gives every chunk the positions it would have had in the full sequence, so keys cached under
these positions never need re-rotation when tokens before them are evicted.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch

logger = logging.getLogger(__name__)


class PositionError(ValueError):
    """The token ids and the image grids of a chunk do not agree."""


def text_positions(next_pos: int, length: int,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, int]:
    """Positions of ``length`` text tokens starting at ``next_pos``.

    Args:
        next_pos: Position of the first token.
        length: Number of tokens (>= 0).
        device: Device of the returned tensor.

    Returns:
        ``(positions, next_pos)``: ``positions`` is ``(3, 1, length)`` int64 with all three rows
        equal to ``next_pos + arange(length)``; the counter advanced by ``length``.
    """
    row = torch.arange(next_pos, next_pos + length, dtype=torch.long, device=device)
    return row.view(1, 1, -1).expand(3, 1, -1).contiguous(), next_pos + length


def image_positions(next_pos: int, grid_thw: Sequence[int] | torch.Tensor,
                    spatial_merge_size: int = 2,
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, int]:
    """Positions of one image's LLM tokens starting at ``next_pos``.

    Args:
        next_pos: Temporal position of the image (and the origin of its rows/columns).
        grid_thw: The image's patch grid ``(t, h, w)`` before merging (``t`` is 1 for a still
            image; larger ``t`` repeats the block with ``t = next_pos + i``, as HF does for
            images).
        spatial_merge_size: The vision merger's spatial merge factor (2 in Qwen2.5-VL).
        device: Device of the returned tensor.

    Returns:
        ``(positions, next_pos)``: ``positions`` is ``(3, 1, t * H' * W')`` int64 in row-major
        token order; the counter advanced by ``max(H', W')``.
    """
    t, h, w = (int(v) for v in (grid_thw.tolist() if isinstance(grid_thw, torch.Tensor)
                                else grid_thw))
    hh, ww = h // spatial_merge_size, w // spatial_merge_size
    if t < 1 or hh < 1 or ww < 1:
        raise PositionError(f'image grid {(t, h, w)} gives an empty merged grid '
                            f'with merge size {spatial_merge_size}')
    tt = torch.arange(t, dtype=torch.long, device=device)
    rows = torch.arange(hh, dtype=torch.long, device=device)
    cols = torch.arange(ww, dtype=torch.long, device=device)
    grid_t, grid_h, grid_w = torch.meshgrid(tt, rows, cols, indexing='ij')
    pos = torch.stack([grid_t, grid_h, grid_w]).reshape(3, 1, -1) + next_pos
    return pos, next_pos + max(hh, ww)


def merged_token_count(grid_thw: Sequence[int] | torch.Tensor, spatial_merge_size: int = 2) -> int:
    """Number of LLM tokens of an image with patch grid ``grid_thw`` (``t * H' * W'``)."""
    t, h, w = (int(v) for v in (grid_thw.tolist() if isinstance(grid_thw, torch.Tensor)
                                else grid_thw))
    return t * (h // spatial_merge_size) * (w // spatial_merge_size)


def chunk_positions(input_ids: torch.Tensor | Sequence[int], image_token_id: int,
                    image_grid_thw: torch.Tensor | Sequence[Sequence[int]] | None = None,
                    next_pos: int = 0, spatial_merge_size: int = 2,
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, int]:
    """Positions of a chunk of token ids (text and image placeholders) starting at ``next_pos``.

    Image placeholders (``image_token_id``) are consumed image by image in the order of
    ``image_grid_thw``; each image takes exactly ``t * H' * W'`` consecutive placeholders, so two
    images with no text between them are still told apart.

    Args:
        input_ids: ``(L,)`` or ``(1, L)`` token ids of the chunk.
        image_token_id: Id of the ``<|image_pad|>`` placeholder.
        image_grid_thw: ``(num_images, 3)`` patch grids of the chunk's images, in order.
        next_pos: Position of the chunk's first token.
        spatial_merge_size: The vision merger's spatial merge factor.
        device: Device of the returned tensor (default: that of ``input_ids`` if a tensor).

    Returns:
        ``(positions, next_pos)``: ``(3, 1, L)`` int64 positions and the advanced counter.

    Raises:
        PositionError: The placeholders do not match the grids.
    """
    if isinstance(input_ids, torch.Tensor):
        if device is None:
            device = input_ids.device
        ids = input_ids.reshape(-1).tolist()
    else:
        ids = list(input_ids)
    grids = [] if image_grid_thw is None else [
        [int(v) for v in (g.tolist() if isinstance(g, torch.Tensor) else g)]
        for g in image_grid_thw]
    pieces: list[torch.Tensor] = []
    pos = next_pos
    i = 0
    n = len(ids)
    image_index = 0
    while i < n:
        if ids[i] == image_token_id:
            if image_index >= len(grids):
                raise PositionError(f'more image placeholders than image grids ({len(grids)})')
            grid = grids[image_index]
            count = merged_token_count(grid, spatial_merge_size)
            if ids[i:i + count] != [image_token_id] * count:
                raise PositionError(f'image {image_index} with grid {grid} needs {count} '
                                    f'placeholders at token {i}; fewer were found')
            piece, pos = image_positions(pos, grid, spatial_merge_size, device)
            pieces.append(piece)
            i += count
            image_index += 1
        else:
            j = i
            while j < n and ids[j] != image_token_id:
                j += 1
            piece, pos = text_positions(pos, j - i, device)
            pieces.append(piece)
            i = j
    if image_index != len(grids):
        raise PositionError(f'{len(grids)} image grids but {image_index} images in the ids')
    if not pieces:
        return torch.zeros(3, 1, 0, dtype=torch.long, device=device), next_pos
    return torch.cat(pieces, dim=2), pos
