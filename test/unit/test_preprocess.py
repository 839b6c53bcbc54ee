"""Frame preprocessing: sizes, the float rounding, equality with HF's processor."""

import numpy as np
import pytest
import torch
from transformers import Qwen2VLImageProcessorPil

from janusvln_ros.model.preprocess import (load_vggt_image, patchify, prepare_frame,
                                           resized_size)


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_640x480_gives_644x490_and_391_tokens():
    assert resized_size(480, 640) == (490, 644)  # 34.50000000000001 rounds up, not to 476
    frame = prepare_frame(_rgb(480, 640))
    assert frame.vggt_image.shape == (3, 490, 644)
    assert frame.vggt_image.dtype == torch.float32
    assert 0.0 <= float(frame.vggt_image.min()) and float(frame.vggt_image.max()) <= 1.0
    assert frame.grid_thw.tolist() == [[1, 34, 46]]
    assert frame.pixel_values.shape == (34 * 46, 1176)
    assert frame.num_tokens == 391
    assert frame.vggt_grid_hw == (35, 46)


@pytest.mark.parametrize('h, w', [(480, 640), (1080, 1920), (300, 500)])
def test_equals_hf_image_processor(h, w):
    frame = prepare_frame(_rgb(h, w, seed=h))
    gh, gw = int(frame.grid_thw[0, 1]), int(frame.grid_thw[0, 2])
    cropped = frame.vggt_image[:, :gh * 14, :gw * 14]
    processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=28 * 28 * 16384)
    out = processor(images=[cropped.numpy()], do_rescale=False, return_tensors='pt')
    assert out['image_grid_thw'].tolist() == frame.grid_thw.tolist()
    torch.testing.assert_close(out['pixel_values'], frame.pixel_values, rtol=0, atol=1e-6)


def test_vggt_image_is_pil_bicubic_of_the_frame():
    from PIL import Image
    rgb = _rgb(480, 640, seed=3)
    want = np.asarray(Image.fromarray(rgb).resize((644, 490), Image.Resampling.BICUBIC))
    got = load_vggt_image(rgb)
    np.testing.assert_array_equal((got.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8),
                                  want)


def test_patchify_row_order():
    # A 28x56 image whose value encodes the pixel position: check (gh/2, gw/2, 2, 2) rows.
    ys, xs = torch.meshgrid(torch.arange(28.), torch.arange(56.), indexing='ij')
    image = torch.stack([ys, xs, ys * 0]).float()
    pv, grid = patchify(image)
    assert grid.tolist() == [[1, 2, 4]]
    rows = pv.view(8, 3, 2, 14, 14)
    assert torch.equal(rows[:, :, 0], rows[:, :, 1])  # temporal duplicate
    top_left = [(int(r[0, 0, 0, 0]), int(r[1, 0, 0, 0])) for r in rows]
    # block (0, 0): patches (0,0),(0,1),(1,0),(1,1); then block (0, 1)
    assert top_left == [(0, 0), (0, 14), (14, 0), (14, 14), (0, 28), (0, 42), (14, 28), (14, 42)]


def test_other_cameras():
    wide = prepare_frame(_rgb(1080, 1920))
    assert wide.vggt_image.shape == (3, 364, 644) and wide.num_tokens == 13 * 23
    portrait = prepare_frame(_rgb(1280, 720))  # would resize to 644x1148: centre crop to 644
    assert portrait.vggt_image.shape == (3, 644, 644) and portrait.num_tokens == 23 * 23
    small = prepare_frame(_rgb(48, 64), target_width=140)
    assert small.vggt_image.shape == (3, 112, 140) and small.num_tokens == 20


def test_rejects_bad_frames():
    with pytest.raises(ValueError, match='uint8'):
        prepare_frame(np.zeros((480, 640, 3), np.float32))
    with pytest.raises(ValueError, match='RGB'):
        prepare_frame(np.zeros((480, 640), np.uint8))
    with pytest.raises(ValueError, match='28-pixel'):
        prepare_frame(np.zeros((10, 2000, 3), np.uint8))
