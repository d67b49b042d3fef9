"""DEC's soft assignment, target and KL, and DCN's centroid update, on exact examples."""

import math

import pytest
import torch

from pipeline.models.dcn import dcn_loss, nearest_centroid, update_centroids
from pipeline.models.dec import kl_divergence, soft_assignment, target_distribution

Z = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
MU = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
# alpha = 1: q_ij proportional to 1 / (1 + d_ij^2); d^2 = [[0, 1], [4, 1]].
Q = torch.tensor([[2 / 3, 1 / 3], [2 / 7, 5 / 7]], dtype=torch.float64)
# f = [20/21, 22/21]; q^2 / f normalised per row, worked out with fractions.
P = torch.tensor([[22 / 27, 5 / 27], [22 / 147, 125 / 147]], dtype=torch.float64)


def test_soft_assignment_alpha_one():
    assert torch.allclose(soft_assignment(Z, MU, 1.0), Q)


def test_soft_assignment_other_alpha_uses_its_exponent():
    z = torch.tensor([[0.0]], dtype=torch.float64)
    mu = torch.tensor([[0.0], [math.sqrt(2.0)]], dtype=torch.float64)
    far = 2.0**-1.5  # (1 + 2 / 2)^(-3 / 2)
    expected = torch.tensor([[1 / (1 + far), far / (1 + far)]], dtype=torch.float64)
    assert torch.allclose(soft_assignment(z, mu, 2.0), expected)


def test_target_distribution():
    assert torch.allclose(target_distribution(Q), P)


def test_kl_divergence_mean_over_samples():
    row0 = 22 / 27 * math.log(11 / 9) + 5 / 27 * math.log(5 / 9)
    row1 = 22 / 147 * math.log(11 / 21) + 125 / 147 * math.log(25 / 21)
    assert kl_divergence(P, Q).item() == pytest.approx((row0 + row1) / 2)


def test_kl_divergence_zero_target_entries_contribute_nothing():
    p = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    assert kl_divergence(p, q).item() == pytest.approx(math.log(2))


def test_dcn_centroid_update_exact():
    centroids = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-5.0, -5.0]], dtype=torch.float64)
    counts = torch.tensor([1.0, 3.0, 7.0], dtype=torch.float64)
    z = torch.tensor([[2.0, 0.0], [4.0, 2.0], [10.0, 14.0]], dtype=torch.float64)
    s = torch.tensor([0, 0, 1])
    # Cluster 0: c=2: m = [1, 0]; c=3: m = [1, 0] - (1/3)([1, 0] - [4, 2]) = [2, 2/3].
    # Cluster 1: c=4: m = [10, 10] - (1/4)([10, 10] - [10, 14]) = [10, 11]. Cluster 2 idle.
    new, new_counts = update_centroids(centroids, counts, z, s)
    expected = torch.tensor([[2.0, 2 / 3], [10.0, 11.0], [-5.0, -5.0]], dtype=torch.float64)
    assert torch.allclose(new, expected)
    assert new_counts.tolist() == [3.0, 4.0, 7.0]


def test_dcn_centroid_update_matches_sequential_algorithm():
    gen = torch.Generator().manual_seed(0)
    centroids = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    counts = torch.tensor([5.0, 1.0, 2.0, 9.0], dtype=torch.float64)
    z = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    s = torch.randint(0, 3, (50,), generator=gen)  # centroid 3 gets no samples
    m, c = centroids.clone(), counts.clone()
    for i in range(len(z)):  # Algorithm 1 of Yang et al., one sample at a time
        k = s[i]
        c[k] += 1
        m[k] = m[k] - (m[k] - z[i]) / c[k]
    new, new_counts = update_centroids(centroids, counts, z, s)
    assert torch.allclose(new, m)
    assert torch.equal(new_counts, c)


def test_nearest_centroid_and_dcn_loss():
    centroids = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    z = torch.tensor([[1.0, 1.0], [3.0, 3.0]])
    s = nearest_centroid(z, centroids)
    assert s.tolist() == [0, 1]
    x = torch.tensor([[1.0, 0.0]])
    total, recon, cluster = dcn_loss(x, torch.tensor([[0.0, 0.0]]), z[:1], centroids[:1], 0.5)
    # recon = 1 + 0 (summed over d = 2); cluster = ||[1, 1]||^2 = 2; total = (1 + 0.5/2 * 2) / 2.
    assert (recon.item(), cluster.item(), total.item()) == pytest.approx((1.0, 2.0, 0.75))


def test_dcn_loss_has_the_reference_scale():
    """boyangumn/DCN-New: mean_i [lbd * sum_j (x_ij - x_hat_ij)^2 + beta * ||z_i - c_i||^2]
    with lbd = beta = 1. Ours with lambda 2 is that, divided by d."""
    g = torch.Generator().manual_seed(0)
    x, x_hat = torch.rand(5, 784, generator=g), torch.rand(5, 784, generator=g)
    z, c = torch.randn(5, 10, generator=g), torch.randn(5, 10, generator=g)
    reference = (((x - x_hat) ** 2).sum(1) + ((z - c) ** 2).sum(1)).mean()
    total, _, _ = dcn_loss(x, x_hat, z, c, 2.0)
    assert total.item() * 784 == pytest.approx(reference.item(), rel=1e-6)
    # The clustering term weighs 1 / d of the old per-element-mean form's lambda 0.05.
    old = ((x - x_hat) ** 2).mean() + 0.5 * 0.05 * ((z - c) ** 2).sum(1).mean()
    assert total.item() != pytest.approx(old.item(), rel=1e-3)
