"""DEC-DA's random shifts and rotations: exact on pixel-aligned moves, seeded, image-only."""

import math

import numpy as np
import pytest
import torch

from pipeline.data.augment import affine, random_affine

IMAGE = torch.arange(25.0).reshape(1, 25)


def test_no_move_is_the_identity():
    out = affine(IMAGE, (5, 5), torch.zeros(1), torch.zeros(1, 2))
    assert torch.equal(out, IMAGE)


def test_a_one_pixel_shift_moves_columns_and_repeats_the_edge():
    right = affine(IMAGE, (5, 5), torch.zeros(1), torch.tensor([[1.0, 0.0]])).reshape(5, 5)
    grid = IMAGE.reshape(5, 5)
    assert torch.equal(right[:, 1:], grid[:, :-1]) and torch.equal(right[:, 0], grid[:, 0])
    down = affine(IMAGE, (5, 5), torch.zeros(1), torch.tensor([[0.0, 2.0]])).reshape(5, 5)
    assert torch.equal(down[2:], grid[:-2]) and torch.equal(down[0], grid[0])


def test_a_quarter_turn_is_counter_clockwise():
    out = affine(IMAGE, (5, 5), torch.tensor([math.pi / 2]), torch.zeros(1, 2)).reshape(5, 5)
    torch.testing.assert_close(out, torch.rot90(IMAGE.reshape(5, 5), 1), atol=1e-5, rtol=0)


def test_random_moves_are_seeded_bounded_and_per_image():
    x = torch.rand(64, 64, generator=torch.Generator().manual_seed(1))
    spec = {"rotation": 10, "shift": 0.1}
    a = random_affine(x, (8, 8), spec, torch.Generator().manual_seed(0))
    b = random_affine(x, (8, 8), spec, torch.Generator().manual_seed(0))
    c = random_affine(x, (8, 8), spec, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # bilinear interpolation mixes an image's own pixels: never outside their range
    assert bool((a.min(1).values >= x.min(1).values - 1e-6).all())
    assert bool((a.max(1).values <= x.max(1).values + 1e-6).all())
    # a zero range leaves every image as it was
    still = random_affine(x, (8, 8), {"rotation": 0, "shift": 0.0}, torch.Generator())
    np.testing.assert_allclose(still.numpy(), x.numpy(), atol=1e-6)


@pytest.mark.parametrize("shift", [0.1, 0.25])
def test_shifts_stay_within_the_declared_fraction(shift):
    """A single bright pixel in the centre of a 20 x 20 image lands within shift * 20 pixels."""
    x = torch.zeros(200, 400)
    x[:, 10 * 20 + 10] = 1.0
    out = random_affine(x, (20, 20), {"rotation": 0, "shift": shift}, torch.Generator())
    rows, cols = np.indices((20, 20))
    weights = out.reshape(200, 20, 20).numpy()
    mass = weights.sum((1, 2))
    dy = (weights * rows).sum((1, 2)) / mass - 10
    dx = (weights * cols).sum((1, 2)) / mass - 10
    assert np.abs(dx).max() <= shift * 20 + 1e-4 and np.abs(dy).max() <= shift * 20 + 1e-4
    assert np.abs(dx).max() > 0.7 * shift * 20  # the range is used, not just a corner of it
