"""Figure helpers write complete PNGs, deterministically, and skip data that are not images."""

import numpy as np

from pipeline.evaluate.clustering import (
    curves_figure,
    embedding_figure,
    gallery_figure,
    gallery_mosaic,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_gallery_written_for_square_images_only(tmp_path):
    rng = np.random.default_rng(0)
    x, pred = rng.random((30, 16)), np.repeat(np.arange(3), 10)
    assert gallery_figure(x, pred, (4, 4), tmp_path / "g.png", per_cluster=5)
    assert (tmp_path / "g.png").read_bytes().startswith(PNG)
    assert not gallery_figure(rng.random((30, 15)), pred, None, tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "g.png"]  # no temp file left behind


def test_gallery_mosaic_tiles_each_clusters_first_members_in_order():
    x = np.arange(7 * 4, dtype=float).reshape(7, 4)  # 2x2 images, each its own values
    pred = np.array([5, 2, 5, 2, 5, 5, 9])
    mosaic = gallery_mosaic(x, pred, (2, 2), per_cluster=3)
    assert mosaic.shape == (3 * 3, 3 * 3)  # clusters 2, 5, 9; tiles of 2 plus a gap
    tile = lambda r, c: mosaic[r * 3:r * 3 + 2, c * 3:c * 3 + 2]  # noqa: E731
    expected = {0: [1, 3], 1: [0, 2, 4], 2: [6]}  # members in data order, 3 at most
    for row, members in expected.items():
        for col in range(3):
            if col < len(members):
                assert np.array_equal(tile(row, col), x[members[col]].reshape(2, 2))
            else:
                assert np.isnan(tile(row, col)).all()
    assert np.isnan(mosaic[2::3, :]).all() and np.isnan(mosaic[:, 2::3]).all()  # the gaps


def test_embedding_figure_is_deterministic(tmp_path):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(60, 5)).astype(np.float32)
    labels = np.arange(60) % 3
    embedding_figure(z, labels, labels[::-1], tmp_path / "a.png", seed=0)
    embedding_figure(z, labels, labels[::-1], tmp_path / "b.png", seed=0)
    a = (tmp_path / "a.png").read_bytes()
    assert a.startswith(PNG) and a == (tmp_path / "b.png").read_bytes()


def test_curves_figure_draws_only_series_that_are_curves(tmp_path):
    assert curves_figure({"loss": [3.0, 2.0, 1.5], "acc": [0.1, 0.5], "one": [2.0], "empty": []},
                         tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes().startswith(PNG)
    # k-means records one inertia and one score: no curve, so no (empty) figure at all
    assert not curves_figure({"inertia": [5.0], "acc": [0.8]}, tmp_path / "k.png")
    assert list(tmp_path.iterdir()) == [tmp_path / "c.png"]
