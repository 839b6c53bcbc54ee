"""Frame preprocessing shared by both encoders, as the released JanusVLN evaluation does it.

One RGB frame feeds both the VGGT aggregator (3-D path) and the Qwen2.5-VL vision tower (2-D
path), through a single ``[0, 1]`` tensor:

1. **Resize** with PIL's bicubic filter to a fixed width (644 for the released checkpoints) and a
   height of ``round(H * (width / W) / 14) * 14``, computed in floating point in exactly that order
   (for 640x480 this is ``34.50000000000001 -> 35``, so the image is **644x490**, not 644x476).
   PIL is used on purpose: OpenCV's and torch's bicubic kernels differ from it by a few grey
   levels. The result is converted to float32 in ``[0, 1]``.
2. **VGGT path** (``vggt_image``): that tensor, uncropped (the aggregator normalises with ImageNet
   statistics internally). Its patch grid is ``(H14 / 14, width / 14)``, e.g. 35x46 = 1610 patches.
3. **Qwen path** (``pixel_values``): the same tensor cropped to multiples of 28 by keeping the
   top-left part (644x490 -> 644x476), normalised with the CLIP mean/std, and patchified exactly
   like ``Qwen2VLImageProcessor``: a still image is repeated over the temporal patch (2), and the
   rows are ordered ``(gh/2, gw/2, 2, 2)`` so that every 4 consecutive rows form one 2x2 merge
   group, each row flattened as ``(C, T, 14, 14)`` = 1176 values. For 640x480 the grid is
   ``(1, 34, 46)`` and the LLM sees ``17 * 23 = 391`` tokens.

Other cameras (any resolution and aspect ratio):
    * The width is always rescaled to the target width (644), so the horizontal field of view is
      kept whole and the token count depends only on the aspect ratio:
      ``tokens = (H14 // 28) * (width // 28)``: 4:3 gives 17 x 23 = 391, 16:9 gives fewer rows
      (1920x1080 -> 644x364 -> 13 x 23 = 299 tokens), 1:1 gives 23 x 23 = 529.
    * Portrait frames whose resized height exceeds the target width are centre-cropped to a
      square of ``width x width`` for both paths (the VGGT loader's "crop" mode does the same).
    * A frame so wide that its resized height falls under 28 px cannot be tokenised and raises
      ``ValueError``.
    * The field of view differs from the simulator's (HFOV 79 deg at 4:3) on most real cameras;
      released checkpoints were trained on simulator frames only, so match it where possible.

The 3-D tokens line up one-to-one with the Qwen merged tokens because both use the same patch
grid of the same tensor; the VGGT side crops its (possibly odd) patch grid to the even top-left
part, which is exactly the area the Qwen crop keeps.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from PIL import Image
import torch

logger = logging.getLogger(__name__)

TARGET_WIDTH = 644
PATCH_SIZE = 14
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass(frozen=True)
class PreparedFrame:
    """One frame ready for both encoders.

    Attributes:
        vggt_image: ``(3, H14, W)`` float32 in ``[0, 1]``: the VGGT input (e.g. 3x490x644).
        pixel_values: ``(gh * gw, 1176)`` float32: the Qwen ViT input rows (e.g. 1564 x 1176).
        grid_thw: ``(1, 3)`` int64 ``[[1, gh, gw]]`` (e.g. ``[[1, 34, 46]]``).
        num_tokens: LLM tokens of this image after the 2x2 merge, ``gh * gw // 4`` (e.g. 391).
    """

    vggt_image: torch.Tensor
    pixel_values: torch.Tensor
    grid_thw: torch.Tensor
    num_tokens: int

    @property
    def vggt_grid_hw(self) -> tuple[int, int]:
        """VGGT patch grid ``(rows, cols)`` of ``vggt_image`` (e.g. ``(35, 46)``)."""
        return self.vggt_image.shape[1] // PATCH_SIZE, self.vggt_image.shape[2] // PATCH_SIZE


def resized_size(height: int, width: int, target_width: int = TARGET_WIDTH) -> tuple[int, int]:
    """The ``(height, width)`` a frame is resized to, before any crop.

    The float expression is kept in the upstream order on purpose (see the module docstring).

    Args:
        height: Input height in pixels.
        width: Input width in pixels.
        target_width: Output width (a multiple of 28).

    Returns:
        ``(new_height, target_width)``; ``new_height`` is a multiple of 14.
    """
    new_height = round(height * (target_width / width) / 14) * 14
    return int(new_height), target_width


def load_vggt_image(rgb: np.ndarray, target_width: int = TARGET_WIDTH) -> torch.Tensor:
    """Resize an RGB frame to the shared ``[0, 1]`` tensor (the VGGT input).

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB frame.
        target_width: Output width, a multiple of 28 (644 for released checkpoints).

    Returns:
        ``(3, H14, target_width)`` float32 in ``[0, 1]``; ``H14 <= target_width``.

    Raises:
        ValueError: On a wrong shape, dtype or width, or a frame too wide to tokenise.
    """
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected an (H, W, 3) RGB array, got shape '
                         f'{getattr(rgb, "shape", None)}')
    if rgb.dtype != np.uint8:
        raise ValueError(f'expected a uint8 RGB array, got dtype {rgb.dtype}')
    if target_width <= 0 or target_width % (PATCH_SIZE * MERGE_SIZE):
        raise ValueError(f'target_width must be a positive multiple of 28, got {target_width}')
    height, width = rgb.shape[:2]
    new_height, new_width = resized_size(height, width, target_width)
    if min(new_height, target_width) < PATCH_SIZE * MERGE_SIZE:
        raise ValueError(f'a {width}x{height} frame resizes to {new_width}x{new_height}, which '
                         'is under the 28-pixel minimum; use a less extreme aspect ratio')
    tensor = torch.from_numpy(resize_rgb(rgb, target_width).astype(np.float32) / 255.0)
    tensor = tensor.permute(2, 0, 1)
    if new_height > target_width:
        top = (new_height - target_width) // 2
        tensor = tensor[:, top:top + target_width, :]
    return tensor.contiguous()


def resize_rgb(rgb: np.ndarray, target_width: int = TARGET_WIDTH) -> np.ndarray:
    """The bicubic resize step of :func:`load_vggt_image`, as uint8 (datasets store this).

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB frame (checked by the caller).
        target_width: Output width.

    Returns:
        ``(H', target_width, 3)`` uint8 with ``H'`` from :func:`resized_size` (no crop).
    """
    new_height, new_width = resized_size(rgb.shape[0], rgb.shape[1], target_width)
    image = Image.fromarray(np.ascontiguousarray(rgb), mode='RGB')
    image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def patchify(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Patchify a normalised image in Qwen2.5-VL's row order.

    Args:
        image: ``(3, H, W)`` float tensor, ``H`` and ``W`` multiples of 28.

    Returns:
        ``(pixel_values, grid_thw)``: ``(gh * gw, 3 * 2 * 14 * 14)`` rows ordered
        ``(gh/2, gw/2, 2, 2)``, each flattened as ``(C, T, 14, 14)``; and ``(1, 3)`` int64.
    """
    channels, height, width = image.shape
    gh, gw = height // PATCH_SIZE, width // PATCH_SIZE
    m, p, t = MERGE_SIZE, PATCH_SIZE, TEMPORAL_PATCH_SIZE
    frames = image.unsqueeze(0).expand(t, channels, height, width)
    patches = frames.reshape(t, channels, gh // m, m, p, gw // m, m, p)
    # -> (gh/m, gw/m, m_row, m_col, C, T, p_row, p_col)
    patches = patches.permute(2, 5, 3, 6, 1, 0, 4, 7)
    pixel_values = patches.reshape(gh * gw, channels * t * p * p).contiguous()
    grid_thw = torch.tensor([[1, gh, gw]], dtype=torch.long)
    return pixel_values, grid_thw


def qwen_inputs(vggt_image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The Qwen path of a shared ``[0, 1]`` tensor: crop to 28, CLIP-normalise, patchify.

    Args:
        vggt_image: ``(3, H, W)`` float in ``[0, 1]``, ``H, W >= 28``.

    Returns:
        ``(pixel_values (gh * gw, 1176), grid_thw (1, 3))`` as :func:`patchify`.
    """
    factor = PATCH_SIZE * MERGE_SIZE
    h28 = vggt_image.shape[1] // factor * factor
    w28 = vggt_image.shape[2] // factor * factor
    cropped = vggt_image[:, :h28, :w28]
    mean = torch.tensor(CLIP_MEAN, dtype=cropped.dtype).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=cropped.dtype).view(3, 1, 1)
    return patchify((cropped - mean) / std)


def prepare_frame(rgb: np.ndarray, target_width: int = TARGET_WIDTH) -> PreparedFrame:
    """Prepare one RGB frame for both encoders (see the module docstring).

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB frame of any size and aspect ratio (see module docstring).
        target_width: Resize width (644 for released checkpoints; tiny test models use less).

    Returns:
        The :class:`PreparedFrame` (640x480 -> vggt 3x490x644, grid (1, 34, 46), 391 tokens).
    """
    vggt_image = load_vggt_image(rgb, target_width)
    pixel_values, grid_thw = qwen_inputs(vggt_image)
    num_tokens = int(grid_thw[0, 1] * grid_thw[0, 2]) // (MERGE_SIZE * MERGE_SIZE)
    return PreparedFrame(vggt_image=vggt_image, pixel_values=pixel_values, grid_thw=grid_thw,
                         num_tokens=num_tokens)
