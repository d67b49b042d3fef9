"""Random shifts and rotations of image rows, as in DEC-DA (Guo et al., ACML 2018).

DEC-DA draws Keras' ImageDataGenerator(rotation_range=10, width_shift_range=0.1,
height_shift_range=0.1): per image, an angle uniform in +-rotation degrees and shifts
uniform in +-shift of the width and height, bilinear interpolation, edge pixels repeated
outside the image. Here the draw comes from a seeded torch generator, so the augmented
batches are part of the seed's replicable stream.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch.nn import functional as F


def affine(
    x: torch.Tensor, image_shape: tuple[int, int], angle: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """Rows of ``x`` (n, h*w) as h x w images, each turned by ``angle`` (radians,
    counter-clockwise) about its centre and moved by ``shift`` (n, 2: right, down; pixels).
    Bilinear interpolation; outside the image the edge pixels repeat."""
    n = len(x)
    h, w = image_shape
    cos, sin = angle.cos(), angle.sin()
    # affine_grid maps output to input coordinates in [-1, 1] (x right, y down).
    tx, ty = -2 * shift[:, 0] / w, -2 * shift[:, 1] / h
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), [n, 1, h, w], align_corners=False)
    images = x.reshape(n, 1, h, w)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(n, h * w)


def random_affine(
    x: torch.Tensor,
    image_shape: tuple[int, int],
    spec: Mapping[str, Any],
    generator: torch.Generator,
) -> torch.Tensor:
    """Each row turned by up to +-``spec["rotation"]`` degrees and moved by up to
    +-``spec["shift"]`` of the width and height, uniformly at random."""
    u = torch.rand(len(x), 3, generator=generator, dtype=torch.float32).to(x.device) * 2 - 1
    angle = u[:, 0] * math.radians(spec["rotation"])
    h, w = image_shape
    shift = u[:, 1:] * spec["shift"] * torch.tensor([w, h], dtype=u.dtype, device=u.device)
    return affine(x, image_shape, angle, shift)
