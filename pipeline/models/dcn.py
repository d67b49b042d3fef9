"""DCN (Yang et al. 2017): k-means in the autoencoder's embedding, optimised jointly.

Loss: ||x - g(f(x))||^2 + (lambda / 2) ||f(x) - M s||^2 per sample, with the squared
reconstruction error summed over the input's d dimensions as in the reference code
(boyangumn/DCN-New: lbd * reconstruction + beta * clustering, lbd = beta = 1, i.e. lambda 2),
and the whole divided by d so that its gradients keep the per-element scale of autoencoder
pretraining (the learning rate keeps its meaning). Minimised by alternating
(Algorithm 1 of the paper): a network step with assignments s and centroids M fixed, then
each sample of the batch is assigned to its nearest centroid, and each centroid moves
towards its samples with step size 1 / c_k, c_k counting the samples it has absorbed.
The training loop is in pipeline.train.clustering.
"""

from __future__ import annotations

import torch


def nearest_centroid(z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the closest centroid (squared Euclidean distance) for every row of z."""
    dist2 = ((z.unsqueeze(1) - centroids.unsqueeze(0)) ** 2).sum(dim=2)
    return dist2.argmin(dim=1)


def update_centroids(
    centroids: torch.Tensor, counts: torch.Tensor, z: torch.Tensor, assignments: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's sequential update m_k <- m_k - (1 / c_k)(m_k - z_i), c_k <- c_k + 1 first,
    over a whole batch at once.

    With step 1 / c_k the sequence is a running mean: after absorbing z_1..z_n the centroid
    is (c_k m_k + sum_i z_i) / (c_k + n) whatever the order, so one scatter-add per batch
    gives exactly the sample-by-sample result. Returns new (centroids, counts).
    """
    sums = torch.zeros_like(centroids).index_add_(0, assignments, z)
    # index_add_ rather than bincount: it has a deterministic CUDA kernel.
    n = torch.zeros_like(counts).index_add_(
        0, assignments, torch.ones_like(z[:, 0], dtype=counts.dtype)
    )
    new_counts = counts + n
    new_centroids = (counts.unsqueeze(1) * centroids + sums) / new_counts.unsqueeze(1)
    return new_centroids, new_counts


def dcn_loss(
    x: torch.Tensor, x_hat: torch.Tensor, z: torch.Tensor, assigned: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, reconstruction, clustering), batch means of per-sample terms:
    reconstruction = sum_j (x_ij - x_hat_ij)^2, clustering = ||z_i - m_{s_i}||^2,
    total = (reconstruction + lam / 2 * clustering) / d."""
    recon = ((x_hat - x) ** 2).sum(dim=1).mean()
    cluster = ((z - assigned) ** 2).sum(dim=1).mean()
    return (recon + 0.5 * lam * cluster) / x.shape[1], recon, cluster
